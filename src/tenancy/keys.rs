//! Virtual key lifecycle: create (shown once, stored as a keyed hash), list, revoke.
//! Every change is recorded as an admin event.

use super::directory::Directory;
use crate::store::instance_key::hex;
use crate::store::{StoreError, now_unix};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use rusqlite::{Connection, OptionalExtension, params};

/// Prefix of every virtual key, so leaked keys are easy to recognise in scanners.
pub const KEY_PREFIX: &str = "ak-";

/// What to create.
#[derive(Debug, Clone, Default)]
pub struct NewKey {
    pub tenant: String,
    pub name: String,
    /// Logical models the key may use; `None` means all.
    pub models: Option<Vec<String>>,
    /// Unix seconds after which the key stops working.
    pub expires_at: Option<i64>,
    /// The tenant's team the key is issued to (by name).
    pub team: Option<String>,
    /// The tenant's user (a person) the key is issued to and acts for (by name).
    pub user: Option<String>,
}

/// A freshly created key; `secret` is shown once and never stored.
#[derive(Debug)]
pub struct CreatedKey {
    pub info: KeyInfo,
    pub secret: String,
}

/// A key as listed (never the secret).
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyInfo {
    pub id: String,
    pub tenant_id: String,
    pub tenant: String,
    pub name: String,
    /// The team the key is issued to, if any.
    pub team: Option<String>,
    /// The user (person) the key is issued to, if any.
    pub user: Option<String>,
    pub prefix: String,
    pub models: Option<Vec<String>>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// Key operations on the state database.
pub struct KeyStore<'a> {
    conn: &'a Connection,
    hmac_key: hmac::Key,
}

/// Computes the stored hash of a presented key (or admin token).
pub(super) fn key_hash(hmac_key: &hmac::Key, secret: &str) -> [u8; 32] {
    let tag = hmac::sign(hmac_key, secret.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

/// `bytes` random bytes as hex, for ids.
pub fn random_hex(bytes: usize) -> Result<String, StoreError> {
    let mut buf = vec![0u8; bytes];
    SystemRandom::new()
        .fill(&mut buf)
        .map_err(|_| StoreError::Invalid("the system random generator failed".into()))?;
    Ok(hex(&buf))
}

impl<'a> KeyStore<'a> {
    pub fn new(conn: &'a Connection, key_hash_secret: &[u8; 32]) -> Self {
        Self {
            conn,
            hmac_key: hmac::Key::new(hmac::HMAC_SHA256, key_hash_secret),
        }
    }

    /// Creates a key for a tenant (creating the tenant if needed).
    pub fn create(&self, new: &NewKey, actor: &str) -> Result<CreatedKey, StoreError> {
        atomically(self.conn, || self.create_now(new, actor))
    }

    fn create_now(&self, new: &NewKey, actor: &str) -> Result<CreatedKey, StoreError> {
        let people = Directory::new(self.conn);
        let tenant_id = people.ensure_tenant_now(&new.tenant, actor)?;
        let (team_id, user_id) = match (&new.team, &new.user) {
            (Some(_), Some(_)) => {
                return Err(StoreError::Invalid(
                    "a key is issued to a team or to a user, not both (a user's key acts in their team)".into(),
                ));
            }
            (Some(team), None) => (Some(people.team(&tenant_id, team)?), None),
            (None, Some(user)) => (None, Some(people.user(&tenant_id, user)?)),
            (None, None) => (None, None),
        };
        let secret = format!("{KEY_PREFIX}{}", random_hex(24)?);
        let id = format!("key_{}", random_hex(8)?);
        let prefix: String = secret.chars().take(KEY_PREFIX.len() + 6).collect();
        let models_json = new
            .models
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        let created_at = now_unix();
        self.conn.execute(
            "INSERT INTO virtual_keys
                (id, tenant_id, name, prefix, hash, models, created_at, expires_at, team_id, user_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                id,
                tenant_id,
                new.name,
                prefix,
                key_hash(&self.hmac_key, &secret).as_slice(),
                models_json,
                created_at,
                new.expires_at,
                team_id,
                user_id
            ],
        )?;
        admin_event(
            self.conn,
            actor,
            "key.create",
            &id,
            Some(&tenant_id),
            Some(&new.name),
        )?;
        Ok(CreatedKey {
            info: KeyInfo {
                id,
                tenant_id,
                tenant: new.tenant.trim().to_string(),
                name: new.name.clone(),
                team: new.team.clone(),
                user: new.user.clone(),
                prefix,
                models: new.models.clone(),
                created_at,
                expires_at: new.expires_at,
                revoked_at: None,
            },
            secret,
        })
    }

    /// Lists keys, optionally of one tenant, newest first.
    pub fn list(&self, tenant: Option<&str>) -> Result<Vec<KeyInfo>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT k.id, k.tenant_id, t.name, k.name, k.prefix, k.models, k.created_at,
                    k.expires_at, k.revoked_at, tm.name, u.name
             FROM virtual_keys k JOIN tenants t ON t.id = k.tenant_id
             LEFT JOIN teams tm ON tm.id = k.team_id
             LEFT JOIN users u ON u.id = k.user_id
             WHERE ?1 IS NULL OR t.name = ?1
             ORDER BY k.created_at DESC, k.id",
        )?;
        let rows = stmt.query_map([tenant], |r| {
            let models: Option<String> = r.get(5)?;
            Ok(KeyInfo {
                id: r.get(0)?,
                tenant_id: r.get(1)?,
                tenant: r.get(2)?,
                name: r.get(3)?,
                team: r.get(9)?,
                user: r.get(10)?,
                prefix: r.get(4)?,
                models: models.and_then(|m| serde_json::from_str(&m).ok()),
                created_at: r.get(6)?,
                expires_at: r.get(7)?,
                revoked_at: r.get(8)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The tenant a key belongs to, if the key exists.
    pub fn tenant_of(&self, key_id: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT tenant_id FROM virtual_keys WHERE id = ?1",
                [key_id],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Revokes a key by id; revoking twice is an error so scripts notice typos.
    pub fn revoke(&self, key_id: &str, actor: &str) -> Result<(), StoreError> {
        revoke(self.conn, Credential::Key, key_id, actor)
    }
}

/// What can be revoked: a virtual key, an admin token, or the admin token a request
/// came with (logging out).
#[derive(Debug, Clone, Copy)]
pub(super) enum Credential {
    Key,
    AdminToken,
    OwnAdminToken,
}

/// Revokes an active credential and records who did it, in one transaction.
pub(super) fn revoke(
    conn: &Connection,
    credential: Credential,
    id: &str,
    actor: &str,
) -> Result<(), StoreError> {
    let (table, action, what) = match credential {
        Credential::Key => ("virtual_keys", "key.revoke", "key"),
        Credential::AdminToken => ("admin_tokens", "admin_token.revoke", "admin token"),
        Credential::OwnAdminToken => ("admin_tokens", "admin.logout", "admin token"),
    };
    let sql = format!(
        "UPDATE {table} SET revoked_at = ?1 WHERE id = ?2 AND revoked_at IS NULL
         RETURNING tenant_id"
    );
    atomically(conn, || {
        let tenant: Option<String> = conn
            .query_row(&sql, params![now_unix(), id], |r| r.get(0))
            .optional()?
            .ok_or_else(|| StoreError::Invalid(format!("no active {what} with id `{id}`")))?;
        admin_event(conn, actor, action, id, tenant.as_deref(), None)
    })
}

/// Runs a change and its admin event as one transaction, taking the write lock first
/// (the gateway writes this database too: a read upgraded to a write could not wait).
pub fn atomically<T>(
    conn: &Connection,
    change: impl FnOnce() -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
    let done = change()?;
    tx.commit()?;
    Ok(done)
}

/// Records an administrative change: who, what, on which object, in which tenant. The
/// audit log copies it in (`audit::admin_events`).
pub fn admin_event(
    conn: &Connection,
    actor: &str,
    action: &str,
    target: &str,
    tenant: Option<&str>,
    detail: Option<&str>,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO admin_events (ts, ts_ms, actor, action, target, tenant_id, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            now_unix(),
            crate::store::now_unix_ms(),
            actor,
            action,
            target,
            tenant,
            detail
        ],
    )?;
    Ok(())
}
