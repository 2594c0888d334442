//! Provider credential lifecycle in the state database: create, list, rotate (the old
//! key in a grace period), revoke; secrets sealed (AES-256-GCM, bound to id, tenant and
//! provider), listed by fingerprint only, every change an admin event.

use crate::store::instance_key::hex;
use crate::store::{StoreError, now_unix_ms};
use crate::tenancy::keys::random_hex;
use crate::tenancy::{admin_event, atomically};
use rusqlite::{Connection, OptionalExtension, Row, params};

/// How long a rotated-out key keeps working unless the rotation says otherwise.
pub const DEFAULT_GRACE_SECS: u64 = 300;
/// Longest secret accepted.
const MAX_SECRET_BYTES: usize = 4096;

/// A credential's state as callers see it (a grace period that ended reads `retired`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialState {
    /// Chosen for requests.
    Active,
    /// Rotated out: tried only when every active key of its pool failed, until
    /// `grace_until_ms`.
    Grace,
    /// Rotated out and its grace period over: never used.
    Retired,
    /// Revoked: never used.
    Revoked,
}

impl CredentialState {
    fn stored(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Grace => "grace",
            Self::Retired => "retired",
            Self::Revoked => "revoked",
        }
    }

    /// The state of a stored row at `now_ms`.
    fn effective(stored: &str, grace_until_ms: Option<i64>, now_ms: i64) -> Self {
        match stored {
            "active" => Self::Active,
            "grace" if grace_until_ms.is_some_and(|t| t > now_ms) => Self::Grace,
            "revoked" => Self::Revoked,
            _ => Self::Retired,
        }
    }
}

/// What to create. The secret is the provider's own key, given by the caller.
#[derive(Debug, Clone)]
pub struct NewCredential {
    /// The tenant's id; `None` makes an instance-wide credential (routes name it).
    pub tenant_id: Option<String>,
    /// The upstream it authenticates to (its name under `upstreams:`).
    pub provider: String,
    pub name: String,
}

/// A credential as listed: never its secret, only its fingerprint.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CredentialInfo {
    pub id: String,
    pub tenant_id: Option<String>,
    pub tenant: Option<String>,
    pub provider: String,
    pub name: String,
    pub fingerprint: String,
    pub state: CredentialState,
    pub grace_until_ms: Option<i64>,
    pub created_ms: i64,
    pub rotated_ms: Option<i64>,
    pub revoked_ms: Option<i64>,
    /// The credential this one replaced in a rotation.
    pub replaces: Option<String>,
}

/// `sha256:` and the first 12 hex digits of the secret's SHA-256: enough to tell keys
/// apart, far too little to recover one.
pub fn fingerprint(secret: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, secret.as_bytes());
    format!("sha256:{}", &hex(digest.as_ref())[..12])
}

/// What a sealed secret is bound to: moving it to another row, tenant or provider
/// makes it unopenable.
pub(super) fn aad(id: &str, tenant_id: Option<&str>, provider: &str) -> Vec<u8> {
    format!(
        "airlock provider credential v1\0{id}\0{}\0{provider}",
        tenant_id.unwrap_or("")
    )
    .into_bytes()
}

/// Checks a secret can travel in an HTTP header (`Bearer <secret>` included).
fn check_secret(secret: &str) -> Result<(), StoreError> {
    if secret.is_empty() || secret.len() > MAX_SECRET_BYTES {
        return Err(StoreError::Invalid(format!(
            "the secret must be 1 to {MAX_SECRET_BYTES} bytes"
        )));
    }
    if !secret.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(StoreError::Invalid(
            "the secret must be printable ASCII without spaces".into(),
        ));
    }
    Ok(())
}

const COLUMNS: &str = "c.id, c.tenant_id, t.name, c.provider, c.name, c.fingerprint, c.state,
    c.grace_until_ms, c.created_ms, c.rotated_ms, c.revoked_ms, c.replaces";

fn info(row: &Row<'_>, now_ms: i64) -> rusqlite::Result<CredentialInfo> {
    let stored: String = row.get(6)?;
    let grace_until_ms: Option<i64> = row.get(7)?;
    Ok(CredentialInfo {
        id: row.get(0)?,
        tenant_id: row.get(1)?,
        tenant: row.get(2)?,
        provider: row.get(3)?,
        name: row.get(4)?,
        fingerprint: row.get(5)?,
        state: CredentialState::effective(&stored, grace_until_ms, now_ms),
        grace_until_ms,
        created_ms: row.get(8)?,
        rotated_ms: row.get(9)?,
        revoked_ms: row.get(10)?,
        replaces: row.get(11)?,
    })
}

/// Credential operations on the state database.
pub struct CredentialStore<'a> {
    conn: &'a Connection,
    seal_key: &'a [u8; 32],
}

impl<'a> CredentialStore<'a> {
    pub fn new(conn: &'a Connection, seal_key: &'a [u8; 32]) -> Self {
        Self { conn, seal_key }
    }

    /// Stores a provider's key, sealed; the answer shows its fingerprint only.
    pub fn create(
        &self,
        new: &NewCredential,
        secret: &str,
        actor: &str,
    ) -> Result<CredentialInfo, StoreError> {
        check_secret(secret)?;
        if new.provider.is_empty() || new.name.trim().is_empty() {
            return Err(StoreError::Invalid(
                "a credential needs a provider and a name".into(),
            ));
        }
        atomically(self.conn, || {
            self.retire_expired()?;
            let taken: Option<String> = self
                .conn
                .query_row(
                    "SELECT id FROM provider_credentials WHERE tenant_id IS ?1 AND provider = ?2
                     AND name = ?3 AND state = 'active'",
                    params![new.tenant_id, new.provider, new.name],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(id) = taken {
                return Err(StoreError::Invalid(format!(
                    "an active credential `{}` for `{}` exists already ({id}): rotate it instead",
                    new.name, new.provider
                )));
            }
            let id = self.insert(new, secret, None)?;
            let print = fingerprint(secret);
            admin_event(
                self.conn,
                actor,
                "credential.create",
                &id,
                new.tenant_id.as_deref(),
                Some(&format!(
                    "provider={} name={} fingerprint={print}",
                    new.provider, new.name
                )),
            )?;
            self.get_now(&id)
        })
    }

    fn insert(
        &self,
        new: &NewCredential,
        secret: &str,
        replaces: Option<&str>,
    ) -> Result<String, StoreError> {
        let id = format!("cred_{}", random_hex(8)?);
        let sealed = crate::audit::keys::seal(
            self.seal_key,
            &aad(&id, new.tenant_id.as_deref(), &new.provider),
            secret.as_bytes(),
        )?;
        self.conn.execute(
            "INSERT INTO provider_credentials (id, tenant_id, provider, name, sealed, fingerprint,
                 state, created_ms, replaces)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'active', ?7, ?8)",
            params![
                id,
                new.tenant_id,
                new.provider,
                new.name,
                sealed,
                fingerprint(secret),
                now_unix_ms(),
                replaces
            ],
        )?;
        Ok(id)
    }

    /// Lists credentials (of one tenant when given; `Some(None)` for instance-wide
    /// ones only), newest first.
    pub fn list(&self, tenant_id: Option<Option<&str>>) -> Result<Vec<CredentialInfo>, StoreError> {
        let now = now_unix_ms();
        let (all, tenant) = match tenant_id {
            None => (true, None),
            Some(t) => (false, t),
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM provider_credentials c LEFT JOIN tenants t ON t.id = c.tenant_id
             WHERE ?1 OR c.tenant_id IS ?2 ORDER BY c.created_ms DESC, c.id"
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map(params![all, tenant], |r| info(r, now))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One credential, if it exists.
    pub fn get(&self, id: &str) -> Result<Option<CredentialInfo>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM provider_credentials c LEFT JOIN tenants t ON t.id = c.tenant_id
             WHERE c.id = ?1"
        );
        let now = now_unix_ms();
        Ok(self
            .conn
            .query_row(&sql, [id], |r| info(r, now))
            .optional()?)
    }

    fn get_now(&self, id: &str) -> Result<CredentialInfo, StoreError> {
        self.get(id)?
            .ok_or_else(|| StoreError::Invalid(format!("no credential with id `{id}`")))
    }

    /// Replaces an active credential's secret: a new credential (same tenant, provider
    /// and name) becomes active, and the old one stays usable as a fallback for
    /// `grace_secs` (0: retired at once). Returns the new one and the old one.
    pub fn rotate(
        &self,
        id: &str,
        secret: &str,
        grace_secs: u64,
        actor: &str,
    ) -> Result<(CredentialInfo, CredentialInfo), StoreError> {
        check_secret(secret)?;
        atomically(self.conn, || {
            self.retire_expired()?;
            let old = self.get_now(id)?;
            if old.state != CredentialState::Active {
                return Err(StoreError::Invalid(format!(
                    "credential `{id}` is {}: only an active credential can be rotated",
                    old.state.stored()
                )));
            }
            let now = now_unix_ms();
            let grace_ms = i64::try_from(grace_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
            let (state, until) = if grace_secs == 0 {
                (CredentialState::Retired, None)
            } else {
                (CredentialState::Grace, Some(now.saturating_add(grace_ms)))
            };
            // The old one leaves `active` first: one active credential per name.
            self.conn.execute(
                "UPDATE provider_credentials SET state = ?1, grace_until_ms = ?2, rotated_ms = ?3
                 WHERE id = ?4",
                params![state.stored(), until, now, id],
            )?;
            let new = NewCredential {
                tenant_id: old.tenant_id.clone(),
                provider: old.provider.clone(),
                name: old.name.clone(),
            };
            let new_id = self.insert(&new, secret, Some(id))?;
            admin_event(
                self.conn,
                actor,
                "credential.rotate",
                &new_id,
                old.tenant_id.as_deref(),
                Some(&format!(
                    "replaces={id} grace_secs={grace_secs} fingerprint={}",
                    fingerprint(secret)
                )),
            )?;
            Ok((self.get_now(&new_id)?, self.get_now(id)?))
        })
    }

    /// Revokes a credential at once (a key in its grace period too). Revoking twice is
    /// an error, so scripts notice typos.
    pub fn revoke(&self, id: &str, actor: &str) -> Result<CredentialInfo, StoreError> {
        atomically(self.conn, || {
            let tenant: Option<Option<String>> = self
                .conn
                .query_row(
                    "UPDATE provider_credentials SET state = 'revoked', revoked_ms = ?1
                     WHERE id = ?2 AND state != 'revoked' RETURNING tenant_id",
                    params![now_unix_ms(), id],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(tenant) = tenant else {
                return Err(StoreError::Invalid(format!(
                    "no unrevoked credential with id `{id}`"
                )));
            };
            admin_event(
                self.conn,
                actor,
                "credential.revoke",
                id,
                tenant.as_deref(),
                None,
            )?;
            self.get_now(id)
        })
    }

    /// Marks keys whose grace period ended as retired (within the caller's transaction).
    fn retire_expired(&self) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE provider_credentials SET state = 'retired'
             WHERE state = 'grace' AND grace_until_ms <= ?1",
            [now_unix_ms()],
        )?;
        Ok(())
    }
}

/// A usable credential, opened, as the gateway holds it in memory.
pub(super) struct Opened {
    pub id: String,
    pub tenant_id: Option<String>,
    pub provider: String,
    pub name: String,
    pub secret: String,
    /// `Some` while in a grace period.
    pub grace_until_ms: Option<i64>,
}

/// Every active credential and every one in its grace period, opened. A credential that
/// does not open (altered, or sealed under another key) is left out and logged by id.
pub(super) fn load_usable(
    conn: &Connection,
    seal_key: &[u8; 32],
) -> Result<Vec<Opened>, StoreError> {
    let now = now_unix_ms();
    let mut stmt = conn.prepare(
        "SELECT id, tenant_id, provider, name, sealed, state, grace_until_ms
         FROM provider_credentials WHERE state IN ('active', 'grace')
         ORDER BY created_ms, rowid",
    )?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let id: String = row.get(0)?;
        let tenant_id: Option<String> = row.get(1)?;
        let provider: String = row.get(2)?;
        let state: String = row.get(5)?;
        let grace_until_ms: Option<i64> = row.get(6)?;
        if CredentialState::effective(&state, grace_until_ms, now) == CredentialState::Retired {
            continue;
        }
        let sealed: Vec<u8> = row.get(4)?;
        let opened = crate::audit::keys::open(
            seal_key,
            &aad(&id, tenant_id.as_deref(), &provider),
            &sealed,
        )
        .and_then(|plain| String::from_utf8(plain).ok());
        let Some(secret) = opened else {
            tracing::error!(credential = %id, "a provider credential does not open with this instance's seal key; it is not used");
            continue;
        };
        out.push(Opened {
            id,
            tenant_id,
            provider,
            name: row.get(3)?,
            secret,
            grace_until_ms: (state == "grace").then_some(grace_until_ms).flatten(),
        });
    }
    Ok(out)
}
