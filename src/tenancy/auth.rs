//! Authenticating a presented key against an in-memory snapshot of all keys, reloaded
//! whenever another connection (the CLI, the admin API) changed the state database.

use super::change_watch::ChangeWatch;
use super::keys::key_hash;
use crate::store::{StoreError, now_unix};
use arc_swap::ArcSwap;
use ring::hmac;
use rusqlite::Connection;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The identity a valid key grants.
#[derive(Debug, Clone)]
pub struct Principal {
    pub key_id: Arc<str>,
    pub tenant_id: Arc<str>,
    /// Logical models allowed; `None` means all.
    pub models: Option<Arc<[String]>>,
    pub expires_at: Option<i64>,
    pub revoked: bool,
}

impl Principal {
    /// Whether this key may use a logical model.
    pub fn may_use(&self, model: &str) -> bool {
        self.models
            .as_ref()
            .is_none_or(|m| m.iter().any(|x| x == model))
    }
}

/// Why a key was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing API key: send `Authorization: Bearer <key>` or `x-api-key: <key>`")]
    Missing,
    #[error("invalid API key")]
    Invalid,
    #[error("this API key has been revoked")]
    Revoked,
    #[error("this API key has expired")]
    Expired,
    #[error("key store unavailable")]
    Unavailable,
}

struct Snapshot {
    keys: HashMap<[u8; 32], Principal>,
}

/// The database connection, what tells us it changed, and the versions last seen, used
/// together under one lock.
struct Source {
    conn: Connection,
    watch: ChangeWatch,
    /// SQLite's `data_version` (the fallback's signal).
    data_version: i64,
    /// The keys' own counter (`state_versions`): only when it moved are keys reloaded.
    keys_version: i64,
}

/// Keys in memory, kept in step with the database.
pub struct KeyCache {
    source: Mutex<Source>,
    hmac_key: hmac::Key,
    snapshot: ArcSwap<Snapshot>,
}

impl KeyCache {
    /// Loads every key from the state database at `db_path` (opened as `conn`).
    pub fn new(
        conn: Connection,
        db_path: &std::path::Path,
        key_hash_secret: &[u8; 32],
    ) -> Result<Self, StoreError> {
        // Watch first, then load: a change between the two is seen, not missed.
        Self::with_watch(conn, ChangeWatch::new(db_path), key_hash_secret)
    }

    fn with_watch(
        conn: Connection,
        watch: ChangeWatch,
        key_hash_secret: &[u8; 32],
    ) -> Result<Self, StoreError> {
        let (data_version, keys_version) = (data_version(&conn)?, keys_version(&conn)?);
        let snapshot = load(&conn)?;
        Ok(Self {
            source: Mutex::new(Source {
                conn,
                watch,
                data_version,
                keys_version,
            }),
            hmac_key: hmac::Key::new(hmac::HMAC_SHA256, key_hash_secret),
            snapshot: ArcSwap::from_pointee(snapshot),
        })
    }

    /// Returns the principal for a presented key. Asks the change watch first, so a key
    /// revoked by another process is refused from the very next request.
    pub fn authenticate(&self, presented: &str) -> Result<Principal, AuthError> {
        self.refresh_if_changed()?;
        let hash = key_hash(&self.hmac_key, presented);
        let snapshot = self.snapshot.load();
        let principal = snapshot.keys.get(&hash).ok_or(AuthError::Invalid)?;
        if principal.revoked {
            return Err(AuthError::Revoked);
        }
        if principal.expires_at.is_some_and(|t| t <= now_unix()) {
            return Err(AuthError::Expired);
        }
        Ok(principal.clone())
    }

    fn refresh_if_changed(&self) -> Result<(), AuthError> {
        let mut source = self.source.lock().map_err(|_| AuthError::Unavailable)?;
        let Source {
            conn,
            watch,
            data_version: known_data,
            keys_version: known_keys,
        } = &mut *source;
        let unavailable = |e: rusqlite::Error| {
            tracing::error!(error = %e, "cannot tell whether keys changed");
            AuthError::Unavailable
        };
        let changed = watch
            .changed(|| data_version(conn).map(|v| v != *known_data))
            .map_err(unavailable)?;
        if !changed {
            return Ok(());
        }
        // Read the counters before the keys: a change in between is seen next time.
        *known_data = data_version(conn).map_err(unavailable)?;
        let version = keys_version(conn).map_err(unavailable)?;
        if version == *known_keys {
            return Ok(());
        }
        match load(conn) {
            Ok(s) => {
                self.snapshot.store(Arc::new(s));
                *known_keys = version;
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot reload keys");
                Err(AuthError::Unavailable)
            }
        }
    }
}

fn data_version(conn: &Connection) -> Result<i64, rusqlite::Error> {
    conn.prepare_cached("PRAGMA data_version")?
        .query_row([], |r| r.get(0))
}

/// How often the keys table changed, counted by its triggers.
fn keys_version(conn: &Connection) -> Result<i64, rusqlite::Error> {
    conn.prepare_cached("SELECT version FROM state_versions WHERE name = 'virtual_keys'")?
        .query_row([], |r| r.get(0))
}

fn load(conn: &Connection) -> Result<Snapshot, StoreError> {
    let mut stmt = conn
        .prepare("SELECT id, tenant_id, hash, models, expires_at, revoked_at FROM virtual_keys")?;
    let mut keys = HashMap::new();
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let hash: Vec<u8> = row.get(2)?;
        let Ok(hash) = <[u8; 32]>::try_from(hash.as_slice()) else {
            continue;
        };
        let models: Option<String> = row.get(3)?;
        let models = match models {
            None => None,
            Some(text) => Some(
                serde_json::from_str::<Vec<String>>(&text)
                    .map_err(|e| StoreError::Invalid(format!("bad model list on a key: {e}")))?
                    .into(),
            ),
        };
        let id: String = row.get(0)?;
        let tenant_id: String = row.get(1)?;
        keys.insert(
            hash,
            Principal {
                key_id: id.into(),
                tenant_id: tenant_id.into(),
                models,
                expires_at: row.get(4)?,
                revoked: row.get::<_, Option<i64>>(5)?.is_some(),
            },
        );
    }
    Ok(Snapshot { keys })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenancy::{KeyStore, NewKey, STATE_MIGRATIONS};

    #[test]
    fn revocation_by_another_connection_applies_to_the_next_request() {
        revocation_applies_to_the_next_request(true);
    }

    #[test]
    fn revocation_applies_to_the_next_request_without_inotify() {
        revocation_applies_to_the_next_request(false);
    }

    fn revocation_applies_to_the_next_request(inotify: bool) {
        let dir = crate::store::scratch_dir(if inotify { "auth-inotify" } else { "auth-dv" });
        let path = dir.join("airlock.db");
        let secret = [7u8; 32];
        let admin = crate::store::open(&path, STATE_MIGRATIONS).unwrap();
        let store = KeyStore::new(&admin, &secret);
        let created = store
            .create(
                &NewKey {
                    tenant: "acme".into(),
                    name: "ci".into(),
                    models: Some(vec!["llama".into()]),
                    expires_at: None,
                },
                "test",
            )
            .unwrap();
        let conn = crate::store::open(&path, STATE_MIGRATIONS).unwrap();
        let cache = if inotify {
            KeyCache::new(conn, &path, &secret).unwrap()
        } else {
            KeyCache::with_watch(conn, ChangeWatch::DataVersion, &secret).unwrap()
        };
        let watching = matches!(
            cache.source.lock().unwrap().watch,
            ChangeWatch::Inotify { .. }
        );
        assert_eq!(watching, inotify);
        let p = cache.authenticate(&created.secret).unwrap();
        assert!(p.may_use("llama") && !p.may_use("gpt"));
        assert_eq!(
            cache.authenticate("ak-nope").unwrap_err(),
            AuthError::Invalid
        );

        // Other writes to the database (the vault's, events) wake the cache but reload
        // no keys.
        let before = cache.snapshot.load_full();
        admin
            .execute(
                "INSERT INTO pii_vault VALUES ('acme', 's', '<PERSON_1>', x'00', 0, 1)",
                [],
            )
            .unwrap();
        cache.authenticate(&created.secret).unwrap();
        assert!(Arc::ptr_eq(&before, &cache.snapshot.load_full()));

        store.revoke(&created.info.id, "test").unwrap();
        assert_eq!(
            cache.authenticate(&created.secret).unwrap_err(),
            AuthError::Revoked
        );
        assert!(!Arc::ptr_eq(&before, &cache.snapshot.load_full()));

        let expired = store
            .create(
                &NewKey {
                    tenant: "acme".into(),
                    name: "old".into(),
                    models: None,
                    expires_at: Some(now_unix() - 1),
                },
                "test",
            )
            .unwrap();
        assert_eq!(
            cache.authenticate(&expired.secret).unwrap_err(),
            AuthError::Expired
        );
        let listed = store.list(Some("acme")).unwrap();
        assert_eq!(listed.len(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
