//! `airlock tenants`: list tenants; create and list a tenant's teams and users; move a
//! user to another team.

use super::terminal::row;
use crate::tenancy::Directory;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct TenantsArgs {
    /// Path to airlock.yaml.
    #[arg(long, short, env = "AIRLOCK_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Print JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: TenantsCommand,
}

#[derive(Debug, clap::Subcommand)]
enum TenantsCommand {
    /// List tenants.
    List,
    /// Create a tenant (keys created for a new tenant create it too).
    Create { name: String },
    /// Create or list a tenant's teams.
    Teams {
        #[arg(long)]
        tenant: String,
        /// Create this team (lists the tenant's teams when omitted).
        #[arg(long)]
        create: Option<String>,
    },
    /// Create, move or list a tenant's users (people, named by their directory id).
    Users {
        #[arg(long)]
        tenant: String,
        /// Register this person (their e-mail or employee number).
        #[arg(long, conflicts_with = "move_user")]
        create: Option<String>,
        /// Move this user to `--team` (or out of any team without it).
        #[arg(long = "move", value_name = "USER")]
        move_user: Option<String>,
        /// The team to create the user in or move them to.
        #[arg(long)]
        team: Option<String>,
    },
}

pub fn run(args: TenantsArgs) -> anyhow::Result<()> {
    let state = super::open_state(args.config)?;
    let people = Directory::new(&state.conn);
    let actor = super::cli_actor();
    let json = args.json;
    match args.command {
        TenantsCommand::List => {
            let tenants = people.tenants(None)?;
            print(json, &tenants, |t| format!("{:<21} {}", t.id, t.name))?;
        }
        TenantsCommand::Create { name } => {
            let id = people.ensure_tenant(&name, &actor)?;
            super::audit_admin_changes(&state);
            row!("{id}");
        }
        TenantsCommand::Teams { tenant, create } => {
            let tenant_id = people.tenant(&tenant)?;
            if let Some(name) = create {
                let team = people.create_team(&tenant_id, &name, &actor)?;
                super::audit_admin_changes(&state);
                row!("{}", team.id);
            } else {
                let teams = people.teams(Some(&tenant_id))?;
                print(json, &teams, |t| format!("{:<22} {}", t.id, t.name))?;
            }
        }
        TenantsCommand::Users {
            tenant,
            create,
            move_user,
            team,
        } => {
            let tenant_id = people.tenant(&tenant)?;
            let changed = match (create, move_user) {
                (Some(name), _) => {
                    Some(people.create_user(&tenant_id, &name, team.as_deref(), &actor)?)
                }
                (None, Some(name)) => {
                    Some(people.set_team(&tenant_id, &name, team.as_deref(), &actor)?)
                }
                (None, None) => None,
            };
            if let Some(user) = changed {
                super::audit_admin_changes(&state);
                row!("{}", user.id);
            } else {
                let users = people.users(Some(&tenant_id))?;
                print(json, &users, |u| {
                    format!(
                        "{:<21} {:<32} {}",
                        u.id,
                        u.name,
                        u.team.as_deref().unwrap_or("-")
                    )
                })?;
            }
        }
    }
    Ok(())
}

/// Prints rows as pretty JSON or one line each.
fn print<T: serde::Serialize>(
    json: bool,
    rows: &[T],
    line: impl Fn(&T) -> String,
) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(rows)?);
    } else {
        for row in rows {
            row!("{}", line(row));
        }
    }
    Ok(())
}
