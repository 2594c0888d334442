//! Copies the audit log's write-ahead log into the database file from a thread of its
//! own, on its own connection, every second: commits only ever append to the WAL, so the
//! writer — and the requests waiting on it — do not wait behind that copy and its fsync.
//! A passive copy never blocks the writer, but under steady load it never catches the
//! WAL's end either, so the WAL would grow for ever: once it passes a size, the copy of
//! the little left is finished with the writer held, and the WAL starts over.

use super::log::open_audit_db;
use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

const EVERY: Duration = Duration::from_secs(1);
/// WAL size past which the WAL is emptied (briefly holding the writer).
const RESTART_ABOVE: u64 = 16 << 20;

/// The folding thread; dropping it (or [`WalFolder::stop`]) folds once more and stops.
pub struct WalFolder {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl WalFolder {
    pub fn start(audit_db: &Path) -> std::io::Result<Self> {
        let conn = open_audit_db(audit_db).map_err(std::io::Error::other)?;
        let mut wal_path = audit_db.as_os_str().to_owned();
        wal_path.push("-wal");
        let wal_path = std::path::PathBuf::from(wal_path);
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("airlock-audit-wal".into())
            .spawn(move || {
                loop {
                    let last =
                        !matches!(stopped.recv_timeout(EVERY), Err(RecvTimeoutError::Timeout));
                    // PASSIVE: copies what it can without waiting for the writer.
                    if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE);") {
                        tracing::warn!("audit WAL checkpoint failed: {e}");
                    }
                    let size = std::fs::metadata(&wal_path).map_or(0, |m| m.len());
                    if size > RESTART_ABOVE
                        && let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(RESTART);")
                    {
                        tracing::warn!("audit WAL restart failed: {e}");
                    }
                    if last {
                        return;
                    }
                }
            })?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Folds once more and waits for the thread to end.
    pub fn stop(mut self) {
        self.shut();
    }

    fn shut(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the audit WAL thread panicked");
        }
    }
}

impl Drop for WalFolder {
    fn drop(&mut self) {
        self.shut();
    }
}
