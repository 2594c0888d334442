//! `airlock admin token`: create, list and revoke admin API tokens of an instance.

use super::keys::time;
use crate::tenancy::rbac::Role;
use crate::tenancy::{AdminTokenInfo, AdminTokenStore};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct AdminArgs {
    /// Path to airlock.yaml.
    #[arg(long, short, env = "AIRLOCK_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Debug, clap::Subcommand)]
enum AdminCommand {
    /// Admin API tokens (separate from virtual keys).
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Debug, clap::Subcommand)]
enum TokenCommand {
    /// Create a token; the secret is printed once and never stored.
    Create {
        /// A label for people.
        #[arg(long)]
        name: String,
        /// super-admin, tenant-admin, operator, auditor or viewer.
        #[arg(long)]
        role: Role,
        /// The tenant a tenant-admin acts for.
        #[arg(long)]
        tenant: Option<String>,
        /// Lifetime, e.g. `30d`, `12h`; no expiry when omitted.
        #[arg(long, value_parser = humantime::parse_duration)]
        expires_in: Option<Duration>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List tokens (never their secrets).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by id; effective for the next admin request.
    Revoke {
        /// The token id (`adt_…`).
        id: String,
    },
}

pub fn run(args: AdminArgs) -> anyhow::Result<()> {
    let state = super::open_state(args.config)?;
    let store = AdminTokenStore::new(&state.conn, &state.instance_key.key_hash_secret);
    let actor = super::cli_actor();
    let AdminCommand::Token(command) = args.command;
    match command {
        TokenCommand::Create {
            name,
            role,
            tenant,
            expires_in,
            json,
        } => {
            let expires_at = expires_in.map(|d| crate::store::now_unix() + d.as_secs() as i64);
            let (info, secret) =
                store.create(&name, role, tenant.as_deref(), expires_at, &actor)?;
            super::audit_admin_changes(&state);
            if json {
                let mut value = serde_json::to_value(&info)?;
                value["token"] = secret.into();
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                println!("id:    {}", info.id);
                println!("role:  {}", info.role);
                println!("token: {secret}");
                println!("Store the token now: it is not shown again.");
            }
        }
        TokenCommand::List { json } => {
            let tokens = store.list()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&tokens)?);
            } else {
                print_table(&tokens);
            }
        }
        TokenCommand::Revoke { id } => {
            store.revoke(&id, &actor)?;
            super::audit_admin_changes(&state);
            println!("revoked {id}");
        }
    }
    Ok(())
}

fn print_table(tokens: &[AdminTokenInfo]) {
    println!(
        "{:<21} {:<16} {:<13} {:<16} {:<11} {:<20} {:<20} REVOKED",
        "ID", "NAME", "ROLE", "TENANT", "PREFIX", "CREATED", "EXPIRES"
    );
    for t in tokens {
        println!(
            "{:<21} {:<16} {:<13} {:<16} {:<11} {:<20} {:<20} {}",
            t.id,
            t.name,
            t.role,
            t.tenant.as_deref().unwrap_or("*"),
            t.prefix,
            time(Some(t.created_at)),
            time(t.expires_at),
            time(t.revoked_at),
        );
    }
}
