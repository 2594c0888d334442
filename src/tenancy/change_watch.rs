//! Knowing, cheaply and without a race, whether the state database changed: inotify on
//! its directory, read without blocking on every check (one system call that usually
//! finds nothing), with SQLite's `PRAGMA data_version` as the fallback where inotify is
//! unavailable. A write finished by another process before a check is always seen by it.

use inotify::{Inotify, WatchMask};
use std::ffi::OsString;
use std::io::ErrorKind;
use std::path::Path;

/// How changes to the state database are noticed.
pub enum ChangeWatch {
    /// inotify events for the database's directory, filtered to the database's files.
    Inotify {
        inotify: Inotify,
        /// The database file name; its `-wal`, `-shm` and `-journal` files share it.
        db_name: OsString,
        buffer: Box<[u8; 4096]>,
    },
    /// Ask SQLite (a shared lock and a header read: a few microseconds).
    DataVersion,
}

impl ChangeWatch {
    /// Watches the directory of `db_path`, or falls back to `DataVersion`.
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
            let mask =
                WatchMask::MODIFY | WatchMask::CREATE | WatchMask::DELETE | WatchMask::MOVED_TO;
            inotify.watches().add(dir, mask)?;
            Ok(inotify)
        });
        match watch {
            Ok(inotify) => Self::Inotify {
                inotify,
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
                    for event in events {
                        let ours = event.name.is_none_or(|n| {
                            n.as_encoded_bytes().starts_with(db_name.as_encoded_bytes())
                        });
                        changed |= ours;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(changed),
                Err(e) => {
                    // A broken watch must not hide a revocation: fall back for good.
                    tracing::warn!(error = %e, "inotify read failed; checking the key store on every request instead");
                    *self = Self::DataVersion;
                    return Ok(true);
                }
            }
        }
    }
}
