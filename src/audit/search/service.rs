//! The search index in a running gateway: the thread that indexes new records every few
//! seconds (reporting its lag, applying retention, rebuilding the index from the log when
//! its directory is deleted), and the handle searches go through.

use super::indexer::Indexer;
use super::partitions::Partitions;
use super::personal::PersonalData;
use super::query::{SearchError, SearchRequest, search};
use crate::audit::log::{open_audit_db, records_by_seq};
use crate::audit::record::AuditRecord;
use crate::audit::values::ValueKeys;
use crate::config::{AuditSearchConfig, LoadedConfig};
use crate::store::StoreError;
use crate::telemetry::metrics::AuditIndexMetrics;
use rusqlite::{Connection, OptionalExtension};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often retention runs.
const RETENTION_EVERY: Duration = Duration::from_secs(3600);

/// Searches over an instance's index, reading the matching records from its log.
pub struct SearchHandle {
    parts: Mutex<Partitions>,
    audit: Mutex<Connection>,
    /// Values in queries are searched by their keyed hashes.
    keys: ValueKeys,
}

/// A page of search results.
#[derive(Debug, serde::Serialize)]
pub struct Found {
    pub total: u64,
    pub records: Vec<AuditRecord>,
}

impl SearchHandle {
    /// Searches over the instance `loaded` configures, whose seal key is `seal_key`.
    pub fn open(loaded: &LoadedConfig, seal_key: &[u8; 32]) -> Result<Self, StoreError> {
        Ok(Self {
            parts: Mutex::new(Partitions::open(&loaded.audit_index_dir())?),
            audit: Mutex::new(open_audit_db(&loaded.audit_db_path())?),
            keys: ValueKeys::derive(seal_key),
        })
    }

    /// Runs a search (blocking: call from a blocking context).
    pub fn run(&self, request: &SearchRequest) -> Result<Found, SearchError> {
        let page = {
            let mut parts = self
                .parts
                .lock()
                .map_err(|_| StoreError::Invalid("search index lock poisoned".into()))?;
            search(&mut parts, request, &self.keys)?
        };
        let audit = self
            .audit
            .lock()
            .map_err(|_| StoreError::Invalid("audit database lock poisoned".into()))?;
        Ok(Found {
            total: page.total,
            records: records_by_seq(&audit, &page.seqs)?,
        })
    }
}

/// The gateway's indexing thread; [`IndexerThread::finish`] indexes what is left and
/// stops it.
pub struct IndexerThread {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl IndexerThread {
    /// Starts indexing the instance `loaded` configures, opening payloads with data keys
    /// sealed by `seal_key` and taking out the personal data `personal` finds.
    pub fn start(
        loaded: &LoadedConfig,
        seal_key: [u8; 32],
        personal: PersonalData,
        metrics: AuditIndexMetrics,
    ) -> std::io::Result<Self> {
        let (stop, stopped) = mpsc::channel();
        let config = loaded.config.audit.search.clone();
        let (index_dir, audit_db) = (loaded.audit_index_dir(), loaded.audit_db_path());
        let thread = std::thread::Builder::new()
            .name("airlock-audit-index".into())
            .spawn(move || {
                lower_priority();
                let mut work = Work {
                    index_dir,
                    seal_key,
                    personal,
                    metrics,
                };
                run(&mut work, &audit_db, &config, &stopped);
            })?;
        Ok(Self { stop, thread })
    }

    /// Indexes what is left, then stops.
    pub fn finish(self) {
        let _ = self.stop.send(());
        if self.thread.join().is_err() {
            tracing::error!("the audit index thread panicked");
        }
    }
}

/// What the indexing thread works with.
struct Work {
    index_dir: PathBuf,
    seal_key: [u8; 32],
    personal: PersonalData,
    metrics: AuditIndexMetrics,
}

/// Indexes a round every `commit_interval_secs` (retention hourly) until told to stop,
/// then a last round.
fn run(work: &mut Work, audit_db: &Path, config: &AuditSearchConfig, stopped: &mpsc::Receiver<()>) {
    let interval = Duration::from_secs(config.commit_interval_secs.max(1));
    let mut indexer: Option<Indexer> = None;
    let mut audit = None;
    let mut retention_at: Option<Instant> = None;
    loop {
        if indexer.as_ref().is_some_and(Indexer::vanished) {
            tracing::warn!(
                dir = %work.index_dir.display(),
                "the audit search index directory was deleted; rebuilding it from the log"
            );
            indexer = None;
        }
        if indexer.is_none() {
            indexer = work.open_indexer();
        }
        if audit.is_none() {
            audit = open_audit_db(audit_db)
                .inspect_err(|e| tracing::error!("audit index cannot read the log: {e}"))
                .ok();
        }
        if let (Some(indexer), Some(audit)) = (indexer.as_mut(), audit.as_ref()) {
            work.round(indexer, audit);
            if config.retention_days > 0
                && retention_at.is_none_or(|at| at.elapsed() >= RETENTION_EVERY)
            {
                retention_at = Some(Instant::now());
                match indexer.apply_retention(config.retention_days) {
                    Ok(dropped) if !dropped.is_empty() => {
                        tracing::info!(?dropped, "audit index retention dropped days")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::error!("audit index retention failed: {e}"),
                }
            }
        }
        if !matches!(
            stopped.recv_timeout(interval),
            Err(RecvTimeoutError::Timeout)
        ) {
            break;
        }
    }
    // The last round: what was written before the writer stopped.
    if let (Some(indexer), Some(audit)) = (indexer.as_mut(), audit.as_ref()) {
        work.round(indexer, audit);
    }
}

/// Lowers the calling thread's CPU priority (nice 10), and so that of the index
/// writers' threads it starts: indexing yields the cores to requests.
fn lower_priority() {
    let thread = rustix::thread::gettid();
    if let Err(e) = rustix::process::setpriority_process(Some(thread), 10) {
        tracing::debug!("audit indexer keeps its priority: {e}");
    }
}

impl Work {
    fn open_indexer(&self) -> Option<Indexer> {
        match Indexer::open(&self.index_dir, self.seal_key) {
            Ok(Ok(indexer)) => Some(indexer),
            Ok(Err(_busy)) => {
                tracing::warn!("another process is indexing the audit log (a reindex?); waiting");
                None
            }
            Err(e) => {
                tracing::error!("audit index cannot open: {e}");
                None
            }
        }
    }

    /// One indexing round: report the lag found, then catch up.
    fn round(&mut self, indexer: &mut Indexer, audit: &Connection) {
        match lag(audit, indexer.watermark()) {
            Ok((records, seconds)) => {
                self.metrics.lag_records.set(records as i64);
                self.metrics.lag_seconds.set(seconds);
            }
            Err(e) => tracing::warn!("audit index lag unknown: {e}"),
        }
        match indexer.catch_up(audit, &mut self.personal, &mut |_, _| {}) {
            Ok(indexed) => {
                self.metrics.indexed.inc_by(indexed);
            }
            Err(e) => tracing::error!("audit indexing failed: {e}"),
        }
    }
}

/// Records after `watermark`, and the age in seconds of the first of them.
pub fn lag(audit: &Connection, watermark: u64) -> Result<(u64, f64), StoreError> {
    let last: i64 = audit.query_row("SELECT COALESCE(MAX(seq), 0) FROM records", [], |r| {
        r.get(0)
    })?;
    let oldest: Option<i64> = audit
        .query_row(
            "SELECT ts_ms FROM records WHERE seq > ?1 ORDER BY seq LIMIT 1",
            [watermark as i64],
            |r| r.get(0),
        )
        .optional()?;
    let age = oldest.map_or(0.0, |ts| {
        (crate::store::now_unix_ms() - ts).max(0) as f64 / 1000.0
    });
    Ok(((last as u64).saturating_sub(watermark), age))
}
