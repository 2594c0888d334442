//! Knowing, cheaply and without a race, whether the state database changed: inotify on
//! the database file and its WAL (writes) and on its directory (files created, deleted or
//! renamed), read without blocking on every check (one system call that usually finds
//! nothing), with SQLite's `PRAGMA data_version` as the fallback where inotify is
//! unavailable. A write finished by another process before a check is always seen by it.
//! Writes to other files in the directory (the request log's) raise no events at all.

use inotify::{Inotify, WatchMask};
use std::ffi::{OsStr, OsString};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

/// How changes to the state database are noticed.
pub enum ChangeWatch {
    /// inotify events for the database's files.
    Inotify {
        inotify: Inotify,
        /// The database's directory.
        dir: PathBuf,
        /// The database file name; its `-wal`, `-shm` and `-journal` files share it.
        db_name: OsString,
        buffer: Box<[u8; 4096]>,
    },
    /// Ask SQLite (a shared lock and a header read: a few microseconds).
    DataVersion,
}

impl ChangeWatch {
    /// Watches `db_path`, its WAL and its directory, or falls back to `DataVersion`.
    pub fn new(db_path: &Path) -> Self {
        let (Some(dir), Some(name)) = (db_path.parent(), db_path.file_name()) else {
            return Self::DataVersion;
        };
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let watch = Inotify::init().and_then(|inotify| {
            // Files appearing, vanishing or replaced: names are filtered when read. Not
            // MODIFY: that would report every write to every file in the directory.
            let mask =
                WatchMask::CREATE | WatchMask::DELETE | WatchMask::MOVED_TO | WatchMask::MOVED_FROM;
            inotify.watches().add(dir, mask)?;
            // The WAL may not exist yet; its creation is seen and watched then.
            watch_writes(&inotify, dir, name)?;
            Ok(inotify)
        });
        match watch {
            Ok(inotify) => Self::Inotify {
                inotify,
                dir: dir.to_path_buf(),
                db_name: name.to_os_string(),
                buffer: Box::new([0; 4096]),
            },
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "inotify unavailable; checking the key store on every request instead");
                Self::DataVersion
            }
        }
    }

    /// Whether the database may have changed since the last call. `data_version_changed`
    /// answers for the fallback.
    pub fn changed(
        &mut self,
        data_version_changed: impl FnOnce() -> Result<bool, rusqlite::Error>,
    ) -> Result<bool, rusqlite::Error> {
        let Self::Inotify {
            inotify,
            dir,
            db_name,
            buffer,
        } = self
        else {
            return data_version_changed();
        };
        let mut changed = false;
        loop {
            match inotify.read_events(&mut buffer[..]) {
                Ok(events) => {
                    let mut appeared = false;
                    for event in events {
                        // Events of the file watches carry no name.
                        let ours = event.name.is_none_or(|n| {
                            n.as_encoded_bytes().starts_with(db_name.as_encoded_bytes())
                        });
                        changed |= ours;
                        appeared |= ours
                            && (event.mask.contains(inotify::EventMask::CREATE)
                                || event.mask.contains(inotify::EventMask::MOVED_TO));
                    }
                    // A database file or WAL created or moved in is a new file: watched
                    // before the caller reloads, so any later write raises an event.
                    if appeared && let Err(e) = watch_writes(inotify, dir, db_name) {
                        return Ok(self.give_up(&e));
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(changed),
                Err(e) => return Ok(self.give_up(&e)),
            }
        }
    }
}

impl ChangeWatch {
    /// A broken watch must not hide a revocation: falls back for good and reports a
    /// change.
    fn give_up(&mut self, error: &std::io::Error) -> bool {
        tracing::warn!(%error, "inotify failed; checking the key store on every request instead");
        *self = Self::DataVersion;
        true
    }
}

/// The name of a database's write-ahead log.
fn wal_name(db_name: &OsStr) -> OsString {
    let mut name = db_name.to_os_string();
    name.push("-wal");
    name
}

/// Adds write watches on the database file and its WAL, each if it exists (a missing
/// file is watched once it appears); re-adding one follows a replaced file.
fn watch_writes(inotify: &Inotify, dir: &Path, db_name: &OsStr) -> std::io::Result<()> {
    for path in [dir.join(db_name), dir.join(wal_name(db_name))] {
        match inotify.watches().add(&path, WatchMask::MODIFY) {
            Err(e) if e.kind() != ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn append(path: &Path) {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        file.write_all(b"x").unwrap();
    }

    #[test]
    fn sees_the_database_and_its_wal_but_not_its_neighbours() {
        let dir = crate::store::scratch_dir("change-watch");
        let db = dir.join("airlock.db");
        append(&db);
        let mut watch = ChangeWatch::new(&db);
        assert!(matches!(watch, ChangeWatch::Inotify { .. }));
        let mut changed = || watch.changed(|| unreachable!()).unwrap();
        assert!(!changed());
        append(&dir.join("requests.db"));
        append(&dir.join("requests.db-wal"));
        assert!(!changed(), "writes to another database are not ours");
        append(&db);
        assert!(changed());
        assert!(!changed());
        append(&dir.join("airlock.db-wal")); // created: seen, and watched from now on
        assert!(changed());
        append(&dir.join("airlock.db-wal"));
        assert!(
            changed(),
            "writes to the WAL created after the start are seen"
        );
        std::fs::remove_file(dir.join("airlock.db-wal")).unwrap();
        assert!(changed());
        // A database file replaced by a rename is a new file: its writes are seen too.
        append(&dir.join("fresh"));
        std::fs::rename(dir.join("fresh"), &db).unwrap();
        assert!(changed());
        append(&db);
        assert!(changed(), "writes to the replacing file are seen");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
