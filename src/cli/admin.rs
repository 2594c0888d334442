//! `airlock admin token` and `airlock admin user`: admin API tokens (create, list,
//! revoke) and local admin users who log in for session tokens (create, passwd, disable,
//! list).

use super::keys::time;
use super::terminal::row;
use crate::tenancy::rbac::Role;
use crate::tenancy::{AdminTokenInfo, AdminTokenStore, AdminUserInfo, AdminUserStore};
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
    /// Local admin users, who log in (`POST /admin/login`) for 8-hour session tokens.
    #[command(subcommand)]
    User(UserCommand),
}

#[derive(Debug, clap::Subcommand)]
enum UserCommand {
    /// Create a user; the password is prompted for (twice, not echoed) or read from stdin.
    Create {
        /// The login name: letters, digits, `.`, `_`, `-`, `@`.
        #[arg(long)]
        name: String,
        /// super-admin, tenant-admin, operator, auditor or viewer.
        #[arg(long)]
        role: Role,
        /// The tenant a tenant-admin acts for.
        #[arg(long)]
        tenant: Option<String>,
        /// Read the password from stdin (one trailing newline dropped) instead of a prompt.
        #[arg(long)]
        password_stdin: bool,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Set a user's password; this lifts a lockout and ends the user's sessions.
    Passwd {
        /// The user's name.
        name: String,
        /// Read the password from stdin (one trailing newline dropped) instead of a prompt.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Disable a user for good; its sessions end at once.
    Disable {
        /// The user's name.
        name: String,
    },
    /// List users (never their password hashes).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
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
    match args.command {
        AdminCommand::Token(command) => token(&state, command),
        AdminCommand::User(command) => user(&state, command),
    }
}

fn token(state: &super::StateAccess, command: TokenCommand) -> anyhow::Result<()> {
    let store = AdminTokenStore::new(&state.conn, &state.instance_key.key_hash_secret);
    let actor = super::cli_actor();
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
            super::audit_admin_changes(state);
            if json {
                let mut value = serde_json::to_value(&info)?;
                value["token"] = secret.into();
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                row!("id:    {}", info.id);
                row!("role:  {}", info.role);
                row!("token: {secret}");
                row!("Store the token now: it is not shown again.");
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
            super::audit_admin_changes(state);
            row!("revoked {id}");
        }
    }
    Ok(())
}

fn user(state: &super::StateAccess, command: UserCommand) -> anyhow::Result<()> {
    let store = AdminUserStore::new(&state.conn, &state.instance_key.key_hash_secret);
    let actor = super::cli_actor();
    match command {
        UserCommand::Create {
            name,
            role,
            tenant,
            password_stdin,
            json,
        } => {
            let password = super::password::read(password_stdin)?;
            let info = store.create(&name, role, tenant.as_deref(), &password, &actor)?;
            super::audit_admin_changes(state);
            if json {
                println!("{}", serde_json::to_string_pretty(&info)?);
            } else {
                row!(
                    "created admin user {} ({}, {})",
                    info.name,
                    info.id,
                    info.role
                );
            }
        }
        UserCommand::Passwd {
            name,
            password_stdin,
        } => {
            let password = super::password::read(password_stdin)?;
            store.set_password(&name, &password, &actor)?;
            super::audit_admin_changes(state);
            row!("password of {name} changed; its sessions ended");
        }
        UserCommand::Disable { name } => {
            store.disable(&name, &actor)?;
            super::audit_admin_changes(state);
            row!("disabled {name}; its sessions ended");
        }
        UserCommand::List { json } => {
            let users = store.list()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&users)?);
            } else {
                print_users(&users);
            }
        }
    }
    Ok(())
}

fn print_users(users: &[AdminUserInfo]) {
    row!(
        "{:<21} {:<16} {:<13} {:<16} {:<20} {:<20} {:<20} DISABLED",
        "ID",
        "NAME",
        "ROLE",
        "TENANT",
        "CREATED",
        "LAST LOGIN",
        "LOCKED UNTIL"
    );
    for u in users {
        row!(
            "{:<21} {:<16} {:<13} {:<16} {:<20} {:<20} {:<20} {}",
            u.id,
            u.name,
            u.role,
            u.tenant.as_deref().unwrap_or("*"),
            time(Some(u.created_at)),
            time(u.last_login_at),
            time(u.locked_until.filter(|t| *t > crate::store::now_unix())),
            time(u.disabled_at),
        );
    }
}

fn print_table(tokens: &[AdminTokenInfo]) {
    row!(
        "{:<21} {:<16} {:<13} {:<16} {:<16} {:<11} {:<20} {:<20} REVOKED",
        "ID",
        "NAME",
        "ROLE",
        "TENANT",
        "SESSION OF",
        "PREFIX",
        "CREATED",
        "EXPIRES"
    );
    for t in tokens {
        row!(
            "{:<21} {:<16} {:<13} {:<16} {:<16} {:<11} {:<20} {:<20} {}",
            t.id,
            t.name,
            t.role,
            t.tenant.as_deref().unwrap_or("*"),
            t.user.as_deref().unwrap_or("-"),
            t.prefix,
            time(Some(t.created_at)),
            time(t.expires_at),
            time(t.revoked_at),
        );
    }
}
