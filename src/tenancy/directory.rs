//! A tenant's people: tenants themselves, their teams, and their users (a person, named by
//! their id in the organisation's directory). Every change is an admin event.

use super::keys::{admin_event, atomically, random_hex};
use crate::store::{StoreError, now_unix};
use rusqlite::{Connection, OptionalExtension, params};

/// Longest tenant, team or user name.
const MAX_NAME: usize = 128;

/// A tenant as listed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TenantInfo {
    pub id: String,
    pub name: String,
    pub created_at: i64,
}

/// A team as listed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TeamInfo {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub created_at: i64,
}

/// A user as listed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct UserInfo {
    pub id: String,
    pub tenant_id: String,
    /// Their id in the organisation's directory (e-mail, employee number): what records
    /// carry as the user.
    pub name: String,
    pub team_id: Option<String>,
    pub team: Option<String>,
    pub created_at: i64,
}

/// Tenant, team and user operations on the state database.
pub struct Directory<'a> {
    conn: &'a Connection,
}

fn valid_name<'n>(what: &str, name: &'n str) -> Result<&'n str, StoreError> {
    let name = name.trim();
    if name.is_empty() || name.len() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(StoreError::Invalid(format!(
            "{what} name must be 1 to {MAX_NAME} printable characters"
        )));
    }
    Ok(name)
}

impl<'a> Directory<'a> {
    pub fn new(conn: &'a Connection) -> Self {
        Self { conn }
    }

    /// Returns the tenant's id, creating the tenant when it does not exist yet.
    pub fn ensure_tenant(&self, name: &str, actor: &str) -> Result<String, StoreError> {
        atomically(self.conn, || self.ensure_tenant_now(name, actor))
    }

    /// `ensure_tenant` inside a transaction already open.
    pub(super) fn ensure_tenant_now(&self, name: &str, actor: &str) -> Result<String, StoreError> {
        let name = valid_name("tenant", name)?;
        if let Some(id) = self.find_tenant(name)? {
            return Ok(id);
        }
        let id = format!("ten_{}", random_hex(8)?);
        self.conn.execute(
            "INSERT INTO tenants (id, name, created_at) VALUES (?1, ?2, ?3)",
            params![id, name, now_unix()],
        )?;
        admin_event(
            self.conn,
            actor,
            "tenant.create",
            &id,
            Some(&id),
            Some(name),
        )?;
        Ok(id)
    }

    /// The id of the tenant with this name, if there is one.
    pub fn find_tenant(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT id FROM tenants WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()?)
    }

    /// The id of the tenant named by its name or its id, if there is one.
    pub fn find_tenant_named(&self, named: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT id FROM tenants WHERE name = ?1 OR id = ?1",
                [named],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// The id of the tenant with this name, or an error naming it.
    pub fn tenant(&self, name: &str) -> Result<String, StoreError> {
        self.find_tenant(name)?
            .ok_or_else(|| StoreError::Invalid(format!("no tenant named `{name}`")))
    }

    /// Every tenant, or only the one with this id, by name.
    pub fn tenants(&self, only: Option<&str>) -> Result<Vec<TenantInfo>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, name, created_at FROM tenants WHERE ?1 IS NULL OR id = ?1 ORDER BY name",
        )?;
        let rows = stmt.query_map([only], |r| {
            Ok(TenantInfo {
                id: r.get(0)?,
                name: r.get(1)?,
                created_at: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Creates a team in a tenant.
    pub fn create_team(
        &self,
        tenant_id: &str,
        name: &str,
        actor: &str,
    ) -> Result<TeamInfo, StoreError> {
        let name = valid_name("team", name)?;
        atomically(self.conn, || {
            if self.find_team(tenant_id, name)?.is_some() {
                return Err(StoreError::Invalid(format!("team `{name}` already exists")));
            }
            let team = TeamInfo {
                id: format!("team_{}", random_hex(8)?),
                tenant_id: tenant_id.to_string(),
                name: name.to_string(),
                created_at: now_unix(),
            };
            self.conn.execute(
                "INSERT INTO teams (id, tenant_id, name, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![team.id, team.tenant_id, team.name, team.created_at],
            )?;
            admin_event(
                self.conn,
                actor,
                "team.create",
                &team.id,
                Some(tenant_id),
                Some(name),
            )?;
            Ok(team)
        })
    }

    fn find_team(&self, tenant_id: &str, name: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT id FROM teams WHERE tenant_id = ?1 AND name = ?2",
                [tenant_id, name],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// The id of a tenant's team, by name.
    pub fn team(&self, tenant_id: &str, name: &str) -> Result<String, StoreError> {
        self.find_team(tenant_id, name)?
            .ok_or_else(|| StoreError::Invalid(format!("no team named `{name}` in this tenant")))
    }

    /// A tenant's teams (every tenant's with `None`), by name.
    pub fn teams(&self, tenant_id: Option<&str>) -> Result<Vec<TeamInfo>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, tenant_id, name, created_at FROM teams
             WHERE ?1 IS NULL OR tenant_id = ?1 ORDER BY tenant_id, name",
        )?;
        let rows = stmt.query_map([tenant_id], |r| {
            Ok(TeamInfo {
                id: r.get(0)?,
                tenant_id: r.get(1)?,
                name: r.get(2)?,
                created_at: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Registers a person in a tenant, optionally in one of its teams (by name).
    pub fn create_user(
        &self,
        tenant_id: &str,
        name: &str,
        team: Option<&str>,
        actor: &str,
    ) -> Result<UserInfo, StoreError> {
        let name = valid_name("user", name)?;
        atomically(self.conn, || {
            if self.find_user(tenant_id, name)?.is_some() {
                return Err(StoreError::Invalid(format!("user `{name}` already exists")));
            }
            let team_id = team.map(|t| self.team(tenant_id, t)).transpose()?;
            let id = format!("usr_{}", random_hex(8)?);
            self.conn.execute(
                "INSERT INTO users (id, tenant_id, team_id, name, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, tenant_id, team_id, name, now_unix()],
            )?;
            admin_event(
                self.conn,
                actor,
                "user.create",
                &id,
                Some(tenant_id),
                Some(name),
            )?;
            self.user_info(&id)
        })
    }

    /// Moves a user to another team of their tenant, or out of any team.
    pub fn set_team(
        &self,
        tenant_id: &str,
        user: &str,
        team: Option<&str>,
        actor: &str,
    ) -> Result<UserInfo, StoreError> {
        atomically(self.conn, || {
            let id = self.user(tenant_id, user)?;
            let team_id = team.map(|t| self.team(tenant_id, t)).transpose()?;
            self.conn.execute(
                "UPDATE users SET team_id = ?1 WHERE id = ?2",
                params![team_id, id],
            )?;
            admin_event(
                self.conn,
                actor,
                "user.team",
                &id,
                Some(tenant_id),
                Some(team.unwrap_or("-")),
            )?;
            self.user_info(&id)
        })
    }

    fn find_user(&self, tenant_id: &str, name: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT id FROM users WHERE tenant_id = ?1 AND name = ?2",
                [tenant_id, name],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// The id of a tenant's user, by name.
    pub fn user(&self, tenant_id: &str, name: &str) -> Result<String, StoreError> {
        self.find_user(tenant_id, name)?
            .ok_or_else(|| StoreError::Invalid(format!("no user named `{name}` in this tenant")))
    }

    fn user_info(&self, id: &str) -> Result<UserInfo, StoreError> {
        self.users_where("u.id = ?1", Some(id))?
            .pop()
            .ok_or_else(|| StoreError::Invalid(format!("no user with id `{id}`")))
    }

    /// A tenant's users (every tenant's with `None`), by name.
    pub fn users(&self, tenant_id: Option<&str>) -> Result<Vec<UserInfo>, StoreError> {
        self.users_where("?1 IS NULL OR u.tenant_id = ?1", tenant_id)
    }

    fn users_where(
        &self,
        condition: &str,
        value: Option<&str>,
    ) -> Result<Vec<UserInfo>, StoreError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT u.id, u.tenant_id, u.name, u.team_id, t.name, u.created_at
             FROM users u LEFT JOIN teams t ON t.id = u.team_id
             WHERE {condition} ORDER BY u.tenant_id, u.name"
        ))?;
        let rows = stmt.query_map([value], |r| {
            Ok(UserInfo {
                id: r.get(0)?,
                tenant_id: r.get(1)?,
                name: r.get(2)?,
                team_id: r.get(3)?,
                team: r.get(4)?,
                created_at: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenancy::STATE_MIGRATIONS;

    #[test]
    fn teams_and_users_belong_to_one_tenant() {
        let dir = crate::store::scratch_dir("directory");
        let conn = crate::store::open(&dir.join("airlock.db"), STATE_MIGRATIONS).unwrap();
        let people = Directory::new(&conn);
        let acme = people.ensure_tenant("acme", "test").unwrap();
        let other = people.ensure_tenant("other", "test").unwrap();
        assert_eq!(people.ensure_tenant(" acme ", "test").unwrap(), acme);
        assert!(people.ensure_tenant("", "test").is_err());
        assert!(people.ensure_tenant("a\nb", "test").is_err());

        let risk = people.create_team(&acme, "risk", "test").unwrap();
        assert!(people.create_team(&acme, "risk", "test").is_err());
        people.create_team(&other, "risk", "test").unwrap();
        let alice = people
            .create_user(&acme, "alice@acme.example", Some("risk"), "test")
            .unwrap();
        assert_eq!(alice.team_id.as_deref(), Some(risk.id.as_str()));
        // Another tenant's team of the same name is not this tenant's.
        assert!(
            people
                .create_user(&other, "bob", Some("ops"), "test")
                .is_err()
        );
        let moved = people
            .set_team(&acme, "alice@acme.example", None, "test")
            .unwrap();
        assert_eq!(moved.team, None);
        assert!(
            people
                .set_team(&other, "alice@acme.example", None, "test")
                .is_err()
        );

        assert_eq!(people.teams(Some(&acme)).unwrap().len(), 1);
        assert_eq!(people.teams(None).unwrap().len(), 2);
        assert_eq!(people.users(Some(&other)).unwrap().len(), 0);
        let events: i64 = conn
            .query_row(
                "SELECT count(*) FROM admin_events WHERE action IN ('team.create', 'user.create', 'user.team')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(events, 4);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
