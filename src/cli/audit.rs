//! `airlock audit`: verify the audit trail offline, and print the key that checks its
//! checkpoints elsewhere.

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
}

pub fn run(args: AuditArgs) -> anyhow::Result<bool> {
    let state = super::open_state(args.config)?;
    match args.command {
        AuditCommand::PublicKey => {
            println!("{}", state.instance_key.public_key_hex());
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
