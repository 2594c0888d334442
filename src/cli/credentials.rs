//! `airlock credentials`: create, list, rotate and revoke provider credentials (BYOK),
//! secrets read from standard input and never printed.

use super::terminal::row;
use crate::tenancy::credentials::{CredentialInfo, CredentialStore, NewCredential};
use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct CredentialsArgs {
    /// Path to airlock.yaml.
    #[arg(long, short, env = "AIRLOCK_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: CredentialsCommand,
}

#[derive(Debug, clap::Subcommand)]
enum CredentialsCommand {
    /// Store a provider's key (read from standard input); only its fingerprint is shown.
    Create {
        /// The upstream it authenticates to (a name under `upstreams:`).
        #[arg(long)]
        provider: String,
        /// A name; routes with `credential: NAME` use instance-wide credentials by it.
        #[arg(long)]
        name: String,
        /// The tenant (by name) whose requests use it; instance-wide when omitted.
        #[arg(long)]
        tenant: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List credentials: fingerprints and states, never secrets.
    List {
        /// Only this tenant's (by name).
        #[arg(long)]
        tenant: Option<String>,
        /// Only this provider's.
        #[arg(long)]
        provider: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Replace a credential's key (read from standard input); the old key stays usable
    /// as a fallback for the grace period, then is retired.
    Rotate {
        /// The credential id (`cred_…`).
        id: String,
        /// How long the old key stays usable, e.g. `5m`, `0s`.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "5m")]
        grace: Duration,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a credential: a running gateway stops using it at once.
    Revoke {
        /// The credential id (`cred_…`).
        id: String,
    },
}

pub fn run(args: CredentialsArgs) -> anyhow::Result<()> {
    let state = super::open_state(args.config)?;
    let store = CredentialStore::new(&state.conn, &state.instance_key.seal_key);
    let actor = super::cli_actor();
    let tenant_id = |named: &str| -> anyhow::Result<String> {
        Ok(crate::tenancy::Directory::new(&state.conn).tenant(named)?)
    };
    match args.command {
        CredentialsCommand::Create {
            provider,
            name,
            tenant,
            json,
        } => {
            if !state.loaded.config.upstreams.contains_key(&provider) {
                anyhow::bail!(
                    "unknown provider `{provider}`: name an upstream of {}",
                    state.config_path.display()
                );
            }
            let tenant_id = tenant.as_deref().map(tenant_id).transpose()?;
            let secret = read_secret()?;
            let new = NewCredential {
                tenant_id,
                provider,
                name,
            };
            let info = store.create(&new, &secret, &actor)?;
            super::audit_admin_changes(&state);
            print(&[info], json)?;
        }
        CredentialsCommand::List {
            tenant,
            provider,
            json,
        } => {
            let tenant_id = tenant.as_deref().map(tenant_id).transpose()?;
            let mut listed = store.list(tenant_id.as_deref().map(Some))?;
            if let Some(provider) = provider {
                listed.retain(|c| c.provider == provider);
            }
            print(&listed, json)?;
        }
        CredentialsCommand::Rotate { id, grace, json } => {
            let secret = read_secret()?;
            let (new, old) = store.rotate(&id, &secret, grace.as_secs(), &actor)?;
            super::audit_admin_changes(&state);
            print(&[new, old], json)?;
        }
        CredentialsCommand::Revoke { id } => {
            store.revoke(&id, &actor)?;
            super::audit_admin_changes(&state);
            row!("revoked {id}");
        }
    }
    Ok(())
}

/// The secret: the first line of standard input, trimmed (prompted for on a terminal).
fn read_secret() -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprintln!("Paste the provider's key and press Enter (it is not echoed back later):");
    }
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    let secret = line.trim().to_string();
    anyhow::ensure!(
        !secret.is_empty(),
        "no secret on standard input: pipe the provider's key in (e.g. `< key.txt`)"
    );
    Ok(secret)
}

fn print(credentials: &[CredentialInfo], json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(credentials)?);
        return Ok(());
    }
    row!(
        "{:<22} {:<16} {:<14} {:<16} {:<20} {:<8} CREATED",
        "ID",
        "TENANT",
        "PROVIDER",
        "NAME",
        "FINGERPRINT",
        "STATE"
    );
    for c in credentials {
        let state = serde_json::to_value(c.state)?;
        row!(
            "{:<22} {:<16} {:<14} {:<16} {:<20} {:<8} {}",
            c.id,
            c.tenant.as_deref().unwrap_or("(instance)"),
            c.provider,
            c.name,
            c.fingerprint,
            state.as_str().unwrap_or("?"),
            super::keys::time(Some(c.created_ms / 1000)),
        );
    }
    Ok(())
}
