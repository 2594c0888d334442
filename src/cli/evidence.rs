//! `airlock evidence`: export an evidence package for an auditor, and verify one offline.

use super::terminal::row;
use crate::audit::log::open_audit_db;
use crate::evidence::export::{Request, Sources, export};
use crate::evidence::{Framework, archive, check};
use std::path::PathBuf;
use std::time::UNIX_EPOCH;

#[derive(Debug, clap::Args)]
pub struct EvidenceArgs {
    #[command(subcommand)]
    command: EvidenceCommand,
}

#[derive(Debug, clap::Subcommand)]
enum EvidenceCommand {
    /// Write one tar archive for an auditor: control matrix, audit extract with signed
    /// checkpoints and a verification report, access inventories and their history, PII
    /// statistics, the config without secrets, and a signed manifest of SHA-256 digests.
    Export {
        /// Path to airlock.yaml.
        #[arg(long, short, env = "AIRLOCK_CONFIG")]
        config: Option<PathBuf>,
        /// The framework whose clauses the control matrix maps to.
        #[arg(long, value_enum)]
        framework: Framework,
        /// Start of the window, RFC 3339 (e.g. 2025-01-01T00:00:00Z), inclusive.
        #[arg(long)]
        from: String,
        /// End of the window, RFC 3339, inclusive.
        #[arg(long)]
        to: String,
        /// The archive to write (e.g. evidence-soc2-2025q1.tar).
        #[arg(long)]
        out: PathBuf,
    },
    /// Check a package offline, without any database: the manifest signature, every
    /// file's digest, the checkpoints' signatures, Merkle roots and links. Exits 1 when
    /// anything fails.
    Verify {
        /// The package (tar archive).
        file: PathBuf,
        /// The instance public key (hex), obtained apart from the package (`airlock
        /// audit public-key` on the instance).
        #[arg(long)]
        public_key: Option<String>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs the command; `false` when a package does not verify.
pub fn run(args: EvidenceArgs) -> anyhow::Result<bool> {
    match args.command {
        EvidenceCommand::Export {
            config,
            framework,
            from,
            to,
            out,
        } => {
            let (from_ms, to_ms) = (parse_time("--from", &from)?, parse_time("--to", &to)?);
            if from_ms > to_ms {
                anyhow::bail!("--from ({from}) is after --to ({to})");
            }
            let state = super::open_state(config)?;
            let audit = open_audit_db(&state.loaded.audit_db_path())?;
            let sources = Sources {
                audit: &audit,
                state: &state.conn,
                instance: &state.instance_key,
                config_path: &state.config_path,
            };
            let request = Request {
                framework,
                from,
                to,
                from_ms,
                to_ms,
            };
            let summary = export(&sources, &request, &out)?;
            super::record_access(
                &state,
                "evidence.export",
                &out.display().to_string(),
                Some(&format!(
                    "framework {}; {} to {}",
                    framework.name(),
                    request.from,
                    request.to
                )),
            );
            row!(
                "wrote {} ({} files, framework {})",
                out.display(),
                summary.files,
                framework.name()
            );
            row!(
                "audit extract: {} records in the window; {} records and {} checkpoints in the package",
                summary.window_records,
                summary.records,
                summary.checkpoints
            );
            if summary.uncovered_records > 0 {
                row!(
                    "note: {} records are after the last checkpoint and not yet signed; \
                     export again after the next checkpoint to cover them",
                    summary.uncovered_records
                );
            }
            for finding in &summary.report.findings {
                row!(
                    "FAIL {:?} at {}: {}",
                    finding.problem,
                    finding.seq,
                    finding.detail
                );
            }
            if !summary.report.ok() {
                anyhow::bail!(
                    "the audit log does not verify over the exported range; the package records this"
                );
            }
            row!("public key: {}", state.instance_key.public_key_hex());
            Ok(true)
        }
        EvidenceCommand::Verify {
            file,
            public_key,
            json,
        } => {
            let files = archive::read(&file).map_err(|e| anyhow::anyhow!("{e}"))?;
            let report = check::check(&files, public_key.as_deref());
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                for c in &report.checks {
                    row!("{} {}", if c.ok { "ok  " } else { "FAIL" }, c.what);
                }
                for warning in &report.warnings {
                    eprintln!("WARNING: {warning}");
                }
                if report.ok() {
                    row!("OK: {} verifies", file.display());
                }
            }
            Ok(report.ok())
        }
    }
}

/// Milliseconds since the epoch of an RFC 3339 time.
fn parse_time(flag: &str, text: &str) -> anyhow::Result<i64> {
    let time = humantime::parse_rfc3339_weak(text).map_err(|e| {
        anyhow::anyhow!("{flag} {text:?}: {e} (expected RFC 3339, e.g. 2025-01-31T23:59:59Z)")
    })?;
    let ms = time
        .duration_since(UNIX_EPOCH)
        .map_err(|_| anyhow::anyhow!("{flag} {text:?} is before 1970"))?
        .as_millis();
    i64::try_from(ms).map_err(|_| anyhow::anyhow!("{flag} {text:?} is too far in the future"))
}
