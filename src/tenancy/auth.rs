//! Authenticating a presented key against an in-memory snapshot of all keys, which the
//! state mirror reloads whenever another connection (the CLI, the admin API) changed them.

use super::keys::key_hash;
use super::mirror::Mirrored;
use crate::store::{StoreError, now_unix};
use arc_swap::ArcSwap;
use ring::hmac;
use rusqlite::Connection;
use std::collections::HashMap;
use std::sync::Arc;

/// The identity a valid key grants.
#[derive(Debug, Clone)]
pub struct Principal {
    pub key_id: Arc<str>,
    pub tenant_id: Arc<str>,
    /// The team the key acts in: its own, or its user's.
    pub team_id: Option<Arc<str>>,
    /// The person a user's key acts for (their directory id, `users.name`): it goes into
    /// every record in place of any caller-given user.
    pub user: Option<Arc<str>>,
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

/// A refused key: why, and whose it is when it is a known one (revoked or expired).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRefused {
    pub error: AuthError,
    pub key_id: Option<Arc<str>>,
    pub tenant_id: Option<Arc<str>>,
}

impl From<AuthError> for KeyRefused {
    fn from(error: AuthError) -> Self {
        Self {
            error,
            key_id: None,
            tenant_id: None,
        }
    }
}

struct Snapshot {
    keys: HashMap<[u8; 32], Principal>,
}

/// Every key in memory, kept in step with the database by the state mirror.
pub struct KeyCache {
    hmac_key: hmac::Key,
    snapshot: ArcSwap<Snapshot>,
}

impl KeyCache {
    /// An empty cache; the state mirror loads it.
    pub fn new(key_hash_secret: &[u8; 32]) -> Self {
        Self {
            hmac_key: hmac::Key::new(hmac::HMAC_SHA256, key_hash_secret),
            snapshot: ArcSwap::from_pointee(Snapshot {
                keys: HashMap::new(),
            }),
        }
    }

    /// Returns the principal for a presented key, as of the last refresh of the state
    /// mirror (which the data path does first, so a revocation applies to the very next
    /// request).
    pub fn authenticate(&self, presented: &str) -> Result<Principal, KeyRefused> {
        let hash = key_hash(&self.hmac_key, presented);
        let snapshot = self.snapshot.load();
        let principal = snapshot.keys.get(&hash).ok_or(AuthError::Invalid)?;
        let refused = |error| KeyRefused {
            error,
            key_id: Some(principal.key_id.clone()),
            tenant_id: Some(principal.tenant_id.clone()),
        };
        if principal.revoked {
            return Err(refused(AuthError::Revoked));
        }
        if principal.expires_at.is_some_and(|t| t <= now_unix()) {
            return Err(refused(AuthError::Expired));
        }
        Ok(principal.clone())
    }
}

impl Mirrored for KeyCache {
    fn counter(&self) -> &'static str {
        "virtual_keys"
    }

    fn reload(&self, conn: &Connection) -> Result<(), StoreError> {
        self.snapshot.store(Arc::new(load(conn)?));
        Ok(())
    }
}

fn load(conn: &Connection) -> Result<Snapshot, StoreError> {
    // A user's keys act in the user's team; a team's keys in the team.
    let mut stmt = conn.prepare(
        "SELECT k.id, k.tenant_id, k.hash, k.models, k.expires_at, k.revoked_at,
                COALESCE(k.team_id, u.team_id), u.name
         FROM virtual_keys k LEFT JOIN users u ON u.id = k.user_id",
    )?;
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
        let text = |i| {
            row.get::<_, Option<String>>(i)
                .map(|v| v.map(Arc::<str>::from))
        };
        keys.insert(
            hash,
            Principal {
                key_id: row.get::<_, String>(0)?.into(),
                tenant_id: row.get::<_, String>(1)?.into(),
                team_id: text(6)?,
                user: text(7)?,
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
    use crate::tenancy::change_watch::ChangeWatch;
    use crate::tenancy::mirror::StateMirror;
    use crate::tenancy::{KeyStore, NewKey, STATE_MIGRATIONS};

    /// Keys as the data path sees them: the mirror refreshed, then the snapshot asked.
    struct Cache {
        mirror: StateMirror,
        keys: Arc<KeyCache>,
    }

    impl Cache {
        fn authenticate(&self, secret: &str) -> Result<Principal, AuthError> {
            self.mirror.refresh().unwrap();
            self.keys
                .authenticate(secret)
                .map_err(|refused| refused.error)
        }
    }

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
                    ..Default::default()
                },
                "test",
            )
            .unwrap();
        let conn = crate::store::open(&path, STATE_MIGRATIONS).unwrap();
        let keys = Arc::new(KeyCache::new(&secret));
        let mirrored: Vec<Arc<dyn Mirrored>> = vec![keys.clone()];
        let mirror = if inotify {
            StateMirror::new(conn, &path, mirrored).unwrap()
        } else {
            StateMirror::with_watch(conn, ChangeWatch::DataVersion, mirrored).unwrap()
        };
        assert_eq!(mirror.watches_with_inotify(), inotify);
        let cache = Cache { mirror, keys };
        let p = cache.authenticate(&created.secret).unwrap();
        assert!(p.may_use("llama") && !p.may_use("gpt"));
        assert_eq!(
            cache.authenticate("ak-nope").unwrap_err(),
            AuthError::Invalid
        );

        // Other writes to the database (the vault's, events) wake the cache but reload
        // no keys.
        let before = cache.keys.snapshot.load_full();
        admin
            .execute(
                "INSERT INTO pii_vault VALUES ('acme', 'k', '', 's', '<PERSON_1>', x'00', 0, 1)",
                [],
            )
            .unwrap();
        cache.authenticate(&created.secret).unwrap();
        assert!(Arc::ptr_eq(&before, &cache.keys.snapshot.load_full()));

        store.revoke(&created.info.id, "test").unwrap();
        assert_eq!(
            cache.authenticate(&created.secret).unwrap_err(),
            AuthError::Revoked
        );
        assert!(!Arc::ptr_eq(&before, &cache.keys.snapshot.load_full()));

        let expired = store
            .create(
                &NewKey {
                    tenant: "acme".into(),
                    name: "old".into(),
                    models: None,
                    expires_at: Some(now_unix() - 1),
                    ..Default::default()
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
