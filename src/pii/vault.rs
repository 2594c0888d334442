//! The tokenisation vault: sessions per tenant and owner (the key and person that named
//! them) in memory (bounded, least recently used evicted, expiring), written behind to
//! SQLite sealed with AES-256-GCM, loaded back lazily, and erased on demand.

use super::keys::PiiKeys;
use super::session::{Session, SessionName, SessionOwner};
use super::vault_store::{Disk, Op, SessionRows, VaultWriter};
use crate::store::instance_key::InstanceKey;
use crate::store::{StoreError, now_unix_ms};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// Longest session id accepted, in bytes.
pub const MAX_SESSION_ID_LEN: usize = 128;

/// A vault failure. Never carries a value.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("session ids are 1 to {MAX_SESSION_ID_LEN} printable ASCII characters")]
    BadSessionId,
    #[error("the vault's writer thread has stopped")]
    WriterStopped,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Bounds of the vault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultConfig {
    /// A session expires this long after it last tokenised, in memory and on disk.
    pub ttl: Duration,
    /// Sessions kept in memory; the least recently used beyond it are dropped from
    /// memory (their rows stay on disk and load again when used).
    pub max_sessions: usize,
    /// Placeholders per session; values beyond it are masked instead.
    pub max_entries_per_session: usize,
}

impl Default for VaultConfig {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(24 * 3600),
            max_sessions: 10_000,
            max_entries_per_session: 1_000,
        }
    }
}

/// The vault. Cheap to clone; every method is safe to call from async code (the disk is
/// reached only through the writer thread, awaited, never blocking a runtime thread).
#[derive(Clone)]
pub struct Vault {
    shared: Arc<Shared>,
}

struct Shared {
    config: VaultConfig,
    keys: PiiKeys,
    memory: Mutex<Memory>,
    disk: Option<Disk>,
}

/// A named session in memory: its tenant, owner and id.
type SessionKey = (String, SessionName);

#[derive(Default)]
struct Memory {
    sessions: HashMap<SessionKey, Resident>,
    /// Last use → session, oldest first.
    by_use: BTreeMap<u64, SessionKey>,
    clock: u64,
    /// Erasures per tenant, so a load that raced one is not kept.
    erasures: HashMap<String, u64>,
}

struct Resident {
    session: Arc<Session>,
    used: u64,
}

fn check_session_id(id: &str) -> Result<(), VaultError> {
    let printable = id.bytes().all(|b| b.is_ascii_graphic());
    if id.is_empty() || id.len() > MAX_SESSION_ID_LEN || !printable {
        return Err(VaultError::BadSessionId);
    }
    Ok(())
}

impl Memory {
    fn erasures_of(&self, tenant: &str) -> u64 {
        self.erasures.get(tenant).copied().unwrap_or(0)
    }

    fn touch(&mut self, key: &SessionKey) -> Option<Arc<Session>> {
        self.clock += 1;
        let clock = self.clock;
        let resident = self.sessions.get_mut(key)?;
        self.by_use.remove(&resident.used);
        resident.used = clock;
        self.by_use.insert(clock, key.clone());
        Some(resident.session.clone())
    }

    fn remove(&mut self, key: &SessionKey) {
        if let Some(resident) = self.sessions.remove(key) {
            self.by_use.remove(&resident.used);
            resident.session.entries().erase();
        }
    }

    fn insert(&mut self, key: SessionKey, session: Arc<Session>, max: usize) {
        while self.sessions.len() >= max.max(1) {
            let Some((_, oldest)) = self.by_use.pop_first() else {
                break;
            };
            // Evicted, not erased: its rows stay on disk.
            self.sessions.remove(&oldest);
        }
        self.clock += 1;
        self.by_use.insert(self.clock, key.clone());
        self.sessions.insert(
            key,
            Resident {
                session,
                used: self.clock,
            },
        );
    }
}

impl Vault {
    /// A vault persisted in the state database at `state_db`. Blocks (opens the database,
    /// purges expired rows): call at start-up.
    pub fn open(
        state_db: &Path,
        instance: &InstanceKey,
        config: VaultConfig,
    ) -> Result<(Self, VaultWriter), VaultError> {
        let keys = PiiKeys::derive(instance);
        let (disk, writer) = super::vault_store::start(state_db, keys.vault_key())?;
        Ok((Self::with(keys, config, Some(disk)), writer))
    }

    /// A vault kept in memory only (sessions are lost on restart).
    pub fn in_memory(instance: &InstanceKey, config: VaultConfig) -> Self {
        Self::with(PiiKeys::derive(instance), config, None)
    }

    fn with(keys: PiiKeys, config: VaultConfig, disk: Option<Disk>) -> Self {
        Self {
            shared: Arc::new(Shared {
                config,
                keys,
                memory: Mutex::new(Memory::default()),
                disk,
            }),
        }
    }

    fn memory(&self) -> MutexGuard<'_, Memory> {
        self.shared
            .memory
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn new_session(&self, tenant: &str, name: Option<SessionName>) -> Session {
        let config = &self.shared.config;
        Session::new(
            tenant,
            name,
            self.shared.keys.tenant_hash_key(tenant),
            config.max_entries_per_session,
            i64::try_from(config.ttl.as_millis()).unwrap_or(i64::MAX),
            now_unix_ms(),
        )
    }

    /// A session for one request without a session id: memory only, never saved, gone
    /// when the last `Arc` is dropped.
    pub fn ephemeral(&self, tenant: &str) -> Arc<Session> {
        Arc::new(self.new_session(tenant, None))
    }

    /// The session `session_id` that `owner` named in `tenant`: from memory, else loaded
    /// from disk, else new. The same id named by another key or person is another session.
    /// Waits for the writer thread only when the session is not in memory.
    pub async fn session(
        &self,
        tenant: &str,
        owner: &SessionOwner,
        session_id: &str,
    ) -> Result<Arc<Session>, VaultError> {
        check_session_id(session_id)?;
        let name = SessionName {
            owner: owner.clone(),
            id: session_id.to_owned(),
        };
        let key = (tenant.to_owned(), name);
        loop {
            let erasures = {
                let mut memory = self.memory();
                if let Some(session) = memory.touch(&key) {
                    if !session.entries().expired(now_unix_ms()) {
                        return Ok(session);
                    }
                    memory.remove(&key);
                }
                memory.erasures_of(tenant)
            };
            let session = self.new_session(tenant, Some(key.1.clone()));
            if let Some(disk) = &self.shared.disk {
                let (tenant, name) = key.clone();
                let loaded = disk
                    .ask(|reply| Op::Load {
                        tenant,
                        session: name,
                        reply,
                    })
                    .await?;
                if let Some(loaded) = loaded {
                    let mut entries = session.entries();
                    entries.set_disk_expiry(loaded.expires_ms);
                    for (placeholder, value) in loaded.rows {
                        entries.insert_loaded(placeholder, value);
                    }
                }
            }
            let mut memory = self.memory();
            if memory.erasures_of(tenant) != erasures {
                continue; // erased while loading: load again
            }
            if let Some(raced) = memory.touch(&key) {
                return Ok(raced); // another request loaded it first
            }
            let session = Arc::new(session);
            memory.insert(key, session.clone(), self.shared.config.max_sessions);
            return Ok(session);
        }
    }

    /// Hands the session's new placeholders (and a moved expiry) to the writer thread.
    /// Call after [`super::apply`]; waits only when the writer's queue is full. Does
    /// nothing for an ephemeral session or an in-memory vault.
    pub async fn commit(&self, session: &Session) -> Result<(), VaultError> {
        let (Some(disk), Some(name)) = (&self.shared.disk, session.name()) else {
            return Ok(());
        };
        let Some(unsaved) = session.entries().take_unsaved() else {
            return Ok(());
        };
        disk.save(SessionRows {
            tenant: session.tenant().to_owned(),
            session: name.clone(),
            rows: unsaved.rows,
            expires_ms: unsaved.expires_ms,
        })
        .await
    }

    /// Drops a tenant's sessions named `session_id` (by any owner), or all its sessions,
    /// from memory, marking them erased, and tells loads in flight for that tenant to load
    /// again.
    fn forget(&self, tenant: &str, session_id: Option<&str>) {
        let mut memory = self.memory();
        *memory.erasures.entry(tenant.to_owned()).or_default() += 1;
        let keys: Vec<_> = memory
            .sessions
            .keys()
            .filter(|(t, name)| t == tenant && session_id.is_none_or(|id| id == name.id))
            .cloned()
            .collect();
        for key in &keys {
            memory.remove(key);
        }
    }

    /// Erases from memory, then disk, then memory again: a load that read the rows just
    /// before the disk erasure is either dropped by the second pass or told to load again.
    async fn erase(&self, tenant: &str, session_id: Option<&str>) -> Result<usize, VaultError> {
        self.forget(tenant, session_id);
        let deleted = match &self.shared.disk {
            None => 0,
            Some(disk) => {
                let tenant = tenant.to_owned();
                match session_id {
                    Some(id) => {
                        let session = id.to_owned();
                        disk.ask(|reply| Op::EraseSession {
                            tenant,
                            session,
                            reply,
                        })
                        .await?
                    }
                    None => disk.ask(|reply| Op::EraseTenant { tenant, reply }).await?,
                }
            }
        };
        self.forget(tenant, session_id);
        Ok(deleted)
    }

    /// Erases the sessions a tenant's callers named `session_id` (whichever key or person
    /// named them) from memory and disk; returns the rows deleted from disk.
    pub async fn erase_session(&self, tenant: &str, session_id: &str) -> Result<usize, VaultError> {
        self.erase(tenant, Some(session_id)).await
    }

    /// Erases every session of a tenant from memory and disk; returns the rows deleted
    /// from disk.
    pub async fn erase_tenant(&self, tenant: &str) -> Result<usize, VaultError> {
        self.erase(tenant, None).await
    }

    /// Drops expired sessions from memory and deletes expired rows; returns the rows
    /// deleted. The writer also does this by itself every minute or so while busy.
    pub async fn purge_expired(&self) -> Result<usize, VaultError> {
        {
            let mut memory = self.memory();
            let now = now_unix_ms();
            let expired: Vec<_> = memory
                .sessions
                .iter()
                .filter(|(_, r)| r.session.entries().expired(now))
                .map(|(k, _)| k.clone())
                .collect();
            for key in &expired {
                memory.remove(key);
            }
        }
        let Some(disk) = &self.shared.disk else {
            return Ok(0);
        };
        disk.ask(|reply| Op::Purge { reply }).await
    }
}

#[cfg(test)]
mod tests;
