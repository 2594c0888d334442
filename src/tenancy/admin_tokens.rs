//! Admin tokens: bearer credentials for the admin API, separate from virtual keys (a
//! virtual key never opens `/admin`). Created with a role (and a tenant for
//! tenant-admins), shown once, stored as a keyed hash; listed and revoked. Every change
//! is an admin event.

use super::directory::Directory;
use super::keys::{Credential, admin_event, atomically, key_hash, random_hex, revoke};
use super::rbac::Role;
use crate::store::{StoreError, now_unix};
use ring::hmac;
use rusqlite::{Connection, OptionalExtension, params};

/// Prefix of every admin token, so it is told apart from a virtual key at a glance.
pub const ADMIN_TOKEN_PREFIX: &str = "adm-";

/// An admin token as listed (never the secret).
#[derive(Debug, Clone, serde::Serialize)]
pub struct AdminTokenInfo {
    pub id: String,
    pub name: String,
    pub role: String,
    /// The tenant a tenant-admin acts for.
    pub tenant: Option<String>,
    /// The admin user whose login session this is (`None`: a token made by the CLI).
    pub user: Option<String>,
    pub prefix: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// Who an admin request comes from.
#[derive(Debug, Clone)]
pub struct Admin {
    pub token_id: String,
    pub name: String,
    pub role: Role,
    pub tenant_id: Option<String>,
    /// The admin user who logged in, when the token is a login session.
    pub user_id: Option<String>,
}

impl Admin {
    /// How admin events name this admin.
    pub fn actor(&self) -> String {
        token_actor(&self.token_id, &self.name, self.user_id.is_some())
    }
}

/// How audit records name the admin behind a token: a login session by its user (the
/// token's name is the user's), any other token by its id and name.
fn token_actor(id: &str, name: &str, session: bool) -> String {
    if session {
        format!("{} (session {id})", super::admin_users::user_actor(name))
    } else {
        format!("admin-token:{id} ({name})")
    }
}

/// The tenant id an admin of `role` is bound to: a tenant-admin needs an existing
/// tenant, every other role acts across tenants.
pub(super) fn tenant_for(
    conn: &Connection,
    role: Role,
    tenant: Option<&str>,
) -> Result<Option<String>, StoreError> {
    match (role, tenant) {
        (Role::TenantAdmin, Some(tenant)) => Ok(Some(Directory::new(conn).tenant(tenant)?)),
        (Role::TenantAdmin, None) => {
            Err(StoreError::Invalid("a tenant-admin needs --tenant".into()))
        }
        (_, Some(_)) => Err(StoreError::Invalid(format!(
            "only tenant-admins are bound to a tenant; a {role} acts across tenants"
        ))),
        (_, None) => Ok(None),
    }
}

/// Why an admin token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminAuthError {
    Unknown,
    Revoked,
    Expired,
    /// A login session of an admin user disabled since.
    Disabled,
}

impl AdminAuthError {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown token",
            Self::Revoked => "revoked token",
            Self::Expired => "expired token",
            Self::Disabled => "token of a disabled admin user",
        }
    }
}

/// A refused admin token: why, and whose it is when it is a known one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedToken {
    pub reason: AdminAuthError,
    /// The token (`admin-token:ID (NAME)`), unless it is unknown.
    pub actor: Option<String>,
    pub tenant_id: Option<String>,
}

/// Admin token operations on the state database.
pub struct AdminTokenStore<'a> {
    conn: &'a Connection,
    hmac_key: hmac::Key,
}

impl<'a> AdminTokenStore<'a> {
    pub fn new(conn: &'a Connection, key_hash_secret: &[u8; 32]) -> Self {
        Self {
            conn,
            hmac_key: hmac::Key::new(hmac::HMAC_SHA256, key_hash_secret),
        }
    }

    /// Creates a token; the secret is returned once. A tenant-admin needs a tenant (an
    /// existing one); other roles act across tenants.
    pub fn create(
        &self,
        name: &str,
        role: Role,
        tenant: Option<&str>,
        expires_at: Option<i64>,
        actor: &str,
    ) -> Result<(AdminTokenInfo, String), StoreError> {
        atomically(self.conn, || {
            let tenant_id = tenant_for(self.conn, role, tenant)?;
            let (info, secret) = self.insert(name, role, tenant_id.as_deref(), expires_at, None)?;
            admin_event(
                self.conn,
                actor,
                "admin_token.create",
                &info.id,
                tenant_id.as_deref(),
                Some(role.name()),
            )?;
            Ok((
                AdminTokenInfo {
                    tenant: tenant.map(str::to_string),
                    ..info
                },
                secret,
            ))
        })
    }

    /// Stores a new token (inside the caller's transaction, which records the event);
    /// the secret is returned once. `user_id` links a login session to its admin user.
    /// The listing's tenant and user names are left for the caller to fill.
    pub(super) fn insert(
        &self,
        name: &str,
        role: Role,
        tenant_id: Option<&str>,
        expires_at: Option<i64>,
        user_id: Option<&str>,
    ) -> Result<(AdminTokenInfo, String), StoreError> {
        let secret = format!("{ADMIN_TOKEN_PREFIX}{}", random_hex(24)?);
        let id = format!("adt_{}", random_hex(8)?);
        let prefix: String = secret.chars().take(ADMIN_TOKEN_PREFIX.len() + 6).collect();
        let created_at = now_unix();
        self.conn.execute(
            "INSERT INTO admin_tokens
                (id, name, role, tenant_id, prefix, hash, created_at, expires_at, admin_user_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                id,
                name,
                role.name(),
                tenant_id,
                prefix,
                key_hash(&self.hmac_key, &secret).as_slice(),
                created_at,
                expires_at,
                user_id
            ],
        )?;
        let info = AdminTokenInfo {
            id,
            name: name.into(),
            role: role.name().into(),
            tenant: None,
            user: None,
            prefix,
            created_at,
            expires_at,
            revoked_at: None,
        };
        Ok((info, secret))
    }

    /// Every token, newest first.
    pub fn list(&self) -> Result<Vec<AdminTokenInfo>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT a.id, a.name, a.role, t.name, u.name, a.prefix, a.created_at, a.expires_at,
                    a.revoked_at
             FROM admin_tokens a LEFT JOIN tenants t ON t.id = a.tenant_id
                  LEFT JOIN admin_users u ON u.id = a.admin_user_id
             ORDER BY a.created_at DESC, a.id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(AdminTokenInfo {
                id: r.get(0)?,
                name: r.get(1)?,
                role: r.get(2)?,
                tenant: r.get(3)?,
                user: r.get(4)?,
                prefix: r.get(5)?,
                created_at: r.get(6)?,
                expires_at: r.get(7)?,
                revoked_at: r.get(8)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Revokes a token by id; effective for the next admin request.
    pub fn revoke(&self, id: &str, actor: &str) -> Result<(), StoreError> {
        revoke(self.conn, Credential::AdminToken, id, actor)
    }

    /// Revokes the token an admin request came with (`POST /admin/logout`).
    pub fn logout(&self, admin: &Admin) -> Result<(), StoreError> {
        revoke(
            self.conn,
            Credential::OwnAdminToken,
            &admin.token_id,
            &admin.actor(),
        )
    }

    /// The admin a presented token belongs to. A refusal writes nothing: the caller
    /// counts it (refusals are recorded in aggregate, so a flood cannot fill the disk).
    pub fn authenticate(&self, secret: &str) -> Result<Result<Admin, RefusedToken>, StoreError> {
        let hash = key_hash(&self.hmac_key, secret);
        let row = self
            .conn
            .query_row(
                "SELECT a.id, a.name, a.role, a.tenant_id, a.expires_at, a.revoked_at,
                        a.admin_user_id, u.disabled_at
                 FROM admin_tokens a LEFT JOIN admin_users u ON u.id = a.admin_user_id
                 WHERE a.hash = ?1",
                [hash.as_slice()],
                |r| {
                    Ok((
                        (
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, Option<String>>(3)?,
                        ),
                        r.get::<_, Option<i64>>(4)?,
                        r.get::<_, Option<i64>>(5)?,
                        r.get::<_, Option<String>>(6)?,
                        r.get::<_, Option<i64>>(7)?,
                    ))
                },
            )
            .optional()?;
        let Some(((token_id, name, role, tenant_id), expires_at, revoked_at, user_id, disabled_at)) =
            row
        else {
            return Ok(Err(RefusedToken {
                reason: AdminAuthError::Unknown,
                actor: None,
                tenant_id: None,
            }));
        };
        let actor = token_actor(&token_id, &name, user_id.is_some());
        // Disabling a user revokes its sessions; this also refuses one logged in while
        // the user was being disabled.
        let refused = if revoked_at.is_some() {
            Some(AdminAuthError::Revoked)
        } else if expires_at.is_some_and(|t| t <= now_unix()) {
            Some(AdminAuthError::Expired)
        } else if disabled_at.is_some() {
            Some(AdminAuthError::Disabled)
        } else {
            None
        };
        if let Some(reason) = refused {
            return Ok(Err(RefusedToken {
                reason,
                actor: Some(actor),
                tenant_id,
            }));
        }
        let role = role
            .parse()
            .map_err(|e: String| StoreError::Invalid(format!("admin token {token_id}: {e}")))?;
        Ok(Ok(Admin {
            token_id,
            name,
            role,
            tenant_id,
            user_id,
        }))
    }

    /// Records an admin action taken through the admin API.
    pub fn record(
        &self,
        admin: &Admin,
        action: &str,
        target: &str,
        detail: Option<&str>,
    ) -> Result<(), StoreError> {
        admin_event(
            self.conn,
            &admin.actor(),
            action,
            target,
            admin.tenant_id.as_deref(),
            detail,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenancy::{KeyStore, NewKey, STATE_MIGRATIONS};

    #[test]
    fn tokens_are_shown_once_scoped_and_revocable() {
        let dir = crate::store::scratch_dir("admin-tokens");
        let conn = crate::store::open(&dir.join("airlock.db"), STATE_MIGRATIONS).unwrap();
        let secret = [9u8; 32];
        let store = AdminTokenStore::new(&conn, &secret);
        let (info, token) = store
            .create("ops", Role::Operator, None, None, "test")
            .unwrap();
        assert!(token.starts_with(ADMIN_TOKEN_PREFIX) && info.prefix.len() == 10);
        let admin = store.authenticate(&token).unwrap().unwrap();
        assert_eq!((admin.role, admin.name.as_str()), (Role::Operator, "ops"));

        // A virtual key is not an admin token.
        let key = KeyStore::new(&conn, &secret)
            .create(
                &NewKey {
                    tenant: "acme".into(),
                    ..NewKey::default()
                },
                "test",
            )
            .unwrap();
        assert_eq!(
            store.authenticate(&key.secret).unwrap().unwrap_err().reason,
            AdminAuthError::Unknown
        );

        assert!(
            store
                .create("t", Role::TenantAdmin, None, None, "test")
                .is_err()
        );
        assert!(
            store
                .create("t", Role::Viewer, Some("acme"), None, "test")
                .is_err()
        );
        assert!(
            store
                .create("t", Role::TenantAdmin, Some("nobody"), None, "test")
                .is_err()
        );
        let (scoped, _) = store
            .create("t", Role::TenantAdmin, Some("acme"), None, "test")
            .unwrap();
        assert_eq!(scoped.tenant.as_deref(), Some("acme"));
        let (_, old) = store
            .create("old", Role::Viewer, None, Some(now_unix() - 1), "test")
            .unwrap();
        assert_eq!(
            store.authenticate(&old).unwrap().unwrap_err().reason,
            AdminAuthError::Expired
        );

        store.revoke(&info.id, "test").unwrap();
        assert_eq!(
            store.authenticate(&token).unwrap().unwrap_err().reason,
            AdminAuthError::Revoked
        );
        assert!(store.revoke(&info.id, "test").is_err());
        assert_eq!(store.list().unwrap().len(), 3);
        let events: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM admin_events WHERE action LIKE 'admin_token.%'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(events, 4);
    }
}
