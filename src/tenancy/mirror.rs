//! Tables of the state database mirrored in memory (keys, prices, budgets): one change
//! watch and one connection for all of them, each reloaded only when its own counter in
//! `state_versions` moved, so a write to one table (or to the vault) reloads nothing else.

use super::change_watch::ChangeWatch;
use crate::store::StoreError;
use rusqlite::Connection;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Something kept in step with the state database.
pub trait Mirrored: Send + Sync {
    /// The `state_versions` row its tables' triggers bump.
    fn counter(&self) -> &'static str;
    /// Re-reads its tables and swaps its snapshot in.
    fn reload(&self, conn: &Connection) -> Result<(), StoreError>;
}

/// The database connection, what tells us it changed, and the versions last loaded,
/// used together under one lock.
struct Source {
    conn: Connection,
    watch: ChangeWatch,
    /// SQLite's `data_version` (the fallback's signal).
    data_version: i64,
    /// Per mirror (same order), the counter value its snapshot reflects.
    loaded: Vec<i64>,
}

/// Every mirror of the state database, refreshed together.
pub struct StateMirror {
    source: Mutex<Source>,
    mirrors: Vec<Arc<dyn Mirrored>>,
}

impl StateMirror {
    /// Loads every mirror from the state database at `db_path` (opened as `conn`).
    pub fn new(
        conn: Connection,
        db_path: &std::path::Path,
        mirrors: Vec<Arc<dyn Mirrored>>,
    ) -> Result<Self, StoreError> {
        // Watch first, then load: a change between the two is seen, not missed.
        Self::with_watch(conn, ChangeWatch::new(db_path), mirrors)
    }

    pub(super) fn with_watch(
        conn: Connection,
        watch: ChangeWatch,
        mirrors: Vec<Arc<dyn Mirrored>>,
    ) -> Result<Self, StoreError> {
        let data_version = data_version(&conn)?;
        let versions = versions(&conn)?;
        let mut loaded = Vec::with_capacity(mirrors.len());
        for mirror in &mirrors {
            loaded.push(versions.get(mirror.counter()).copied().unwrap_or(0));
            mirror.reload(&conn)?;
        }
        Ok(Self {
            source: Mutex::new(Source {
                conn,
                watch,
                data_version,
                loaded,
            }),
            mirrors,
        })
    }

    /// Brings every mirror up to date if the database changed since the last call (one
    /// non-blocking system call when it did not): a key revoked or a price changed by
    /// another process applies from the very next request.
    pub fn refresh(&self) -> Result<(), StoreError> {
        let mut source = self.lock()?;
        let Source {
            conn,
            watch,
            data_version: known,
            ..
        } = &mut *source;
        let changed = watch.changed(|| data_version(conn).map(|v| v != *known))?;
        if changed {
            // Read the counters before the tables: a change in between is seen next time.
            source.data_version = data_version(&source.conn)?;
            self.reload_moved(&mut source)?;
        }
        Ok(())
    }

    /// Reloads what moved now, without waiting for the watch: for changes this process
    /// just made (an admin API call), so they apply before the call returns.
    pub fn refresh_now(&self) -> Result<(), StoreError> {
        let mut source = self.lock()?;
        self.reload_moved(&mut source)
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Source>, StoreError> {
        self.source
            .lock()
            .map_err(|_| StoreError::Invalid("the state mirror's lock is poisoned".into()))
    }

    fn reload_moved(&self, source: &mut Source) -> Result<(), StoreError> {
        let versions = versions(&source.conn)?;
        for (mirror, loaded) in self.mirrors.iter().zip(source.loaded.iter_mut()) {
            let version = versions.get(mirror.counter()).copied().unwrap_or(0);
            if version != *loaded {
                mirror.reload(&source.conn).inspect_err(|e| {
                    tracing::error!(table = mirror.counter(), error = %e, "cannot reload");
                })?;
                *loaded = version;
            }
        }
        Ok(())
    }

    #[cfg(test)]
    pub(super) fn watches_with_inotify(&self) -> bool {
        self.source
            .lock()
            .is_ok_and(|s| matches!(s.watch, ChangeWatch::Inotify { .. }))
    }
}

fn data_version(conn: &Connection) -> Result<i64, rusqlite::Error> {
    conn.prepare_cached("PRAGMA data_version")?
        .query_row([], |r| r.get(0))
}

/// Every table counter (a handful of rows).
fn versions(conn: &Connection) -> Result<HashMap<String, i64>, rusqlite::Error> {
    let mut stmt = conn.prepare_cached("SELECT name, version FROM state_versions")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}
