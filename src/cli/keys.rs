//! `airlock keys`: create, list and revoke virtual keys of an instance.

use super::terminal::row;
use crate::tenancy::{KeyInfo, KeyStore, NewKey};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

#[derive(Debug, clap::Args)]
pub struct KeysArgs {
    /// Path to airlock.yaml.
    #[arg(long, short, env = "AIRLOCK_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Debug, clap::Subcommand)]
enum KeysCommand {
    /// Create a key; the secret is printed once and never stored.
    Create {
        /// Tenant the key belongs to (created if new).
        #[arg(long)]
        tenant: String,
        /// A label for people.
        #[arg(long, default_value = "")]
        name: String,
        /// Issue the key to one of the tenant's teams (`airlock tenants teams`).
        #[arg(long, conflicts_with = "user")]
        team: Option<String>,
        /// Issue the key to one of the tenant's users: it acts for that person, whose id
        /// goes into every record (`airlock tenants users`).
        #[arg(long)]
        user: Option<String>,
        /// Logical models the key may use (comma-separated); all when omitted.
        #[arg(long, value_delimiter = ',')]
        models: Option<Vec<String>>,
        /// Lifetime, e.g. `90d`, `12h`, `30m`; no expiry when omitted.
        #[arg(long, value_parser = humantime::parse_duration)]
        expires_in: Option<Duration>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List keys (never their secrets).
    List {
        /// Only this tenant's keys.
        #[arg(long)]
        tenant: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by id; effective for the very next request.
    Revoke {
        /// The key id (`key_…`) shown by `keys create` and `keys list`.
        key_id: String,
    },
}

pub fn run(args: KeysArgs) -> anyhow::Result<()> {
    let state = super::open_state(args.config)?;
    let store = KeyStore::new(&state.conn, &state.instance_key.key_hash_secret);
    let actor = super::cli_actor();
    match args.command {
        KeysCommand::Create {
            tenant,
            name,
            team,
            user,
            models,
            expires_in,
            json,
        } => {
            if let Some(models) = &models {
                for m in models {
                    if !state.loaded.config.models.contains_key(m) {
                        eprintln!(
                            "warning: model `{m}` is not in {}",
                            state.config_path.display()
                        );
                    }
                }
            }
            let expires_at = expires_in.map(|d| crate::store::now_unix() + d.as_secs() as i64);
            let created = store.create(
                &NewKey {
                    tenant,
                    name,
                    models,
                    expires_at,
                    team,
                    user,
                },
                &actor,
            )?;
            super::audit_admin_changes(&state);
            if json {
                let mut value = serde_json::to_value(&created.info)?;
                value["key"] = created.secret.clone().into();
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                row!("id:     {}", created.info.id);
                row!("tenant: {}", created.info.tenant);
                row!("key:    {}", created.secret);
                row!("Store the key now: it is not shown again.");
            }
        }
        KeysCommand::List { tenant, json } => {
            let keys = store.list(tenant.as_deref())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&keys)?);
            } else {
                print_table(&keys);
            }
        }
        KeysCommand::Revoke { key_id } => {
            store.revoke(&key_id, &actor)?;
            super::audit_admin_changes(&state);
            row!("revoked {key_id}");
        }
    }
    Ok(())
}

/// A unix time as RFC 3339, or `-`.
pub(super) fn time(unix: Option<i64>) -> String {
    match unix {
        None => "-".into(),
        Some(t) => humantime::format_rfc3339_seconds(
            SystemTime::UNIX_EPOCH + Duration::from_secs(t.max(0) as u64),
        )
        .to_string(),
    }
}

fn print_table(keys: &[KeyInfo]) {
    row!(
        "{:<21} {:<16} {:<16} {:<24} {:<12} {:<20} {:<20} {:<20} MODELS",
        "ID",
        "TENANT",
        "NAME",
        "ISSUED TO",
        "PREFIX",
        "CREATED",
        "EXPIRES",
        "REVOKED"
    );
    for k in keys {
        let owner = match (&k.team, &k.user) {
            (_, Some(user)) => format!("user {user}"),
            (Some(team), None) => format!("team {team}"),
            (None, None) => "tenant".to_string(),
        };
        row!(
            "{:<21} {:<16} {:<16} {:<24} {:<12} {:<20} {:<20} {:<20} {}",
            k.id,
            k.tenant,
            if k.name.is_empty() { "-" } else { &k.name },
            owner,
            k.prefix,
            time(Some(k.created_at)),
            time(k.expires_at),
            time(k.revoked_at),
            k.models.as_ref().map_or("*".to_string(), |m| m.join(",")),
        );
    }
}
