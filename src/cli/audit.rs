//! `airlock audit`: verify the audit trail offline, list a session's records, and print
//! the key that checks its checkpoints elsewhere.

use crate::audit::log::open_audit_db;
use crate::audit::verify::{instance_keys, verify};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// Path to airlock.yaml.
    #[arg(long, short, env = "AIRLOCK_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Debug, clap::Subcommand)]
enum AuditCommand {
    /// Check the MAC chain, every checkpoint's Merkle root and signature, and the head:
    /// names the first bad record and what is wrong. Exits 1 when anything is.
    Verify {
        /// First sequence number to check.
        #[arg(long)]
        from: Option<u64>,
        /// Last sequence number to check.
        #[arg(long)]
        to: Option<u64>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the instance's Ed25519 public key (hex), which verifies checkpoints.
    PublicKey,
    /// List one session's records in order (requests that named it in `x-session-id`).
    Session {
        /// The session id.
        id: String,
        /// Print the records as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(args: AuditArgs) -> anyhow::Result<bool> {
    let state = super::open_state(args.config)?;
    match args.command {
        AuditCommand::PublicKey => {
            println!("{}", state.instance_key.public_key_hex());
            Ok(true)
        }
        AuditCommand::Session { id, json } => {
            let audit = open_audit_db(&state.loaded.audit_db_path())?;
            let records = crate::audit::log::session_records(&audit, &id)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&records)?);
            } else {
                print_session(&records);
            }
            Ok(true)
        }
        AuditCommand::Verify { from, to, json } => {
            let audit = open_audit_db(&state.loaded.audit_db_path())?;
            let (key, public) = instance_keys(&state.instance_key);
            let report = verify(&audit, &state.conn, &key, &public, from, to)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!(
                    "{} records ({}..{}), {} checkpoints",
                    report.records,
                    report.first_seq.unwrap_or(0),
                    report.last_seq.unwrap_or(0),
                    report.checkpoints
                );
                for finding in &report.findings {
                    println!(
                        "FAIL {:?} at {}: {}",
                        finding.problem, finding.seq, finding.detail
                    );
                }
                if report.ok() {
                    println!("OK: the chain, every checkpoint and the head verify");
                }
            }
            Ok(report.ok())
        }
    }
}

fn print_session(records: &[crate::audit::record::AuditRecord]) {
    println!(
        "{:>8} {:<24} {:<16} {:<16} {:>6} {:<8} {:>8} {:>8} {:>10}",
        "SEQ", "TIME", "ENDPOINT", "MODEL", "STATUS", "DECISION", "IN", "OUT", "LATENCY"
    );
    for r in records {
        let time = humantime::format_rfc3339_millis(
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(r.ts_ms.max(0) as u64),
        );
        let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        let num = |v: Option<u64>| v.map_or_else(|| "-".into(), |n| n.to_string());
        println!(
            "{:>8} {:<24} {:<16} {:<16} {:>6} {:<8} {:>8} {:>8} {:>8.1}ms",
            r.seq,
            time.to_string(),
            or_dash(&r.endpoint),
            or_dash(&r.model),
            r.status.map_or_else(|| "-".into(), |s| s.to_string()),
            or_dash(&r.decision),
            num(r.prompt_tokens),
            num(r.completion_tokens),
            r.latency_ms.unwrap_or(0.0),
        );
    }
}
