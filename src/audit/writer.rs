//! The audit writer: one thread appending events in batches (group commit: whatever
//! arrived while the previous batch was being made durable goes in the next
//! transaction), acknowledging each event once its batch is on disk, signing checkpoints
//! on time, copying admin actions in from the state database every second, and deleting
//! payloads past their tenant's retention every hour. Requests wait for room when it
//! falls behind (bounded queue, `audit.queue_capacity`; each wait counted) and, in durable
//! mode, for their acknowledgement. While appends fail (a full disk) readiness says so;
//! the writer keeps trying every second, and its first record once it can write again
//! says since when and how many events went unrecorded (`audit.outage`).

use super::log::AuditLog;
use super::record::{AuditEvent, AuditRecord, kind};
use super::retention::RetentionSweep;
use super::wal::WalFolder;
use crate::config::{AuditConfig, AuditMode, AuditRetentionConfig, OnAuditFailure};
use prometheus_client::metrics::counter::Counter;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Most events in one transaction.
const MAX_BATCH: usize = 1024;
/// How often payload retention runs.
const RETENTION_EVERY: Duration = Duration::from_secs(3600);
/// How often admin events are copied in from the state database.
const ADMIN_EVENTS_EVERY: Duration = Duration::from_secs(1);

/// An event and, in durable mode, who waits for it to be on disk.
struct Pending {
    event: AuditEvent,
    ack: Option<oneshot::Sender<bool>>,
}

/// The audit record could not be written; the request is refused (fail closed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditUnavailable;

/// Whether the writer can write, shared between it and readiness.
#[derive(Debug, Default)]
struct Health {
    /// When appends began to fail (ms since the epoch); 0 while they succeed.
    failing_since_ms: AtomicI64,
    /// Events that could not be written since then.
    unwritten: AtomicU64,
}

impl Health {
    fn failed(&self, events: usize) {
        let now = crate::store::now_unix_ms().max(1);
        let _ =
            self.failing_since_ms
                .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
        self.unwritten.fetch_add(events as u64, Ordering::Relaxed);
    }

    fn recovered(&self) {
        self.unwritten.store(0, Ordering::Relaxed);
        self.failing_since_ms.store(0, Ordering::Relaxed);
    }

    /// The record of the outage so far, while appends fail.
    fn outage(&self) -> Option<AuditEvent> {
        let since = self.failing_since_ms.load(Ordering::Relaxed);
        (since != 0).then(|| AuditEvent {
            record: AuditRecord {
                kind: kind::AUDIT_OUTAGE.into(),
                action: Some(kind::AUDIT_OUTAGE.into()),
                actor: Some("airlock".into()),
                detail: Some(format!(
                    "since_ms={since};unrecorded_events={}",
                    self.unwritten.load(Ordering::Relaxed)
                )),
                ..AuditRecord::default()
            },
            ..AuditEvent::default()
        })
    }
}

/// Where requests hand their audit events. Cheap to clone.
#[derive(Clone)]
pub struct AuditSink {
    tx: mpsc::Sender<Pending>,
    mode: AuditMode,
    on_failure: OnAuditFailure,
    health: Arc<Health>,
    /// Counts events that found the queue full.
    queue_waits: Counter,
}

impl AuditSink {
    /// Whether the writer's last append succeeded (false while a full disk, say, stops
    /// it).
    pub fn writable(&self) -> bool {
        self.health.failing_since_ms.load(Ordering::Relaxed) == 0
    }

    /// Whether requests are refused while records cannot be written.
    pub fn fails_closed(&self) -> bool {
        self.on_failure == OnAuditFailure::FailClosed
    }

    /// Queues `pending`, waiting (and counting the wait) while the queue is full; false
    /// once the writer is gone.
    async fn enqueue(&self, pending: Pending) -> bool {
        match self.tx.try_send(pending) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(pending)) => {
                self.queue_waits.inc();
                self.tx.send(pending).await.is_ok()
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Records `event`: waits for room in the queue and, in durable mode, until it is on
    /// disk. Fails only when the record could not be written and failures close.
    pub async fn record(&self, event: AuditEvent) -> Result<(), AuditUnavailable> {
        let durable = self.mode == AuditMode::Durable;
        let (ack, done) = if durable {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let written = self.enqueue(Pending { event, ack }).await
            && match done {
                None => true,
                Some(done) => done.await.unwrap_or(false),
            };
        if written || self.on_failure == OnAuditFailure::FailOpen {
            if !written {
                tracing::error!(
                    "audit record not written; serving anyway (audit.on_failure: fail_open)"
                );
            }
            return Ok(());
        }
        Err(AuditUnavailable)
    }

    /// Records `event` without waiting for the disk (a request that ended without a
    /// delivered response, e.g. the client went away).
    pub fn record_detached(&self, event: AuditEvent) {
        if let Err(mpsc::error::TrySendError::Full(pending)) =
            self.tx.try_send(Pending { event, ack: None })
        {
            self.queue_waits.inc();
            let tx = self.tx.clone();
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let _ = tx.send(pending).await;
                });
            }
        }
    }
}

/// The writer thread; [`AuditWriter::finish`] waits until every queued event is written
/// and the last checkpoint signed.
pub struct AuditWriter {
    thread: JoinHandle<()>,
    wal: WalFolder,
}

impl AuditWriter {
    /// Starts the writer on `log`, as `config` says; `queue_waits` counts events that
    /// found its queue full.
    pub fn start(
        log: AuditLog,
        config: &AuditConfig,
        audit_db: &std::path::Path,
        queue_waits: Counter,
    ) -> std::io::Result<(AuditSink, Self)> {
        let wal = WalFolder::start(audit_db)?;
        let (tx, rx) = mpsc::channel(config.queue_capacity.get());
        let retention = config.retention.clone();
        let health = Arc::new(Health::default());
        let writer_health = health.clone();
        let thread = std::thread::Builder::new()
            .name("airlock-audit".into())
            .spawn(move || run(log, rx, retention, &writer_health))?;
        Ok((
            AuditSink {
                tx,
                mode: config.mode,
                on_failure: config.on_failure,
                health,
                queue_waits,
            },
            Self { thread, wal },
        ))
    }

    /// Waits for the writer to drain (every sink must be dropped first).
    pub fn finish(self) {
        if self.thread.join().is_err() {
            tracing::error!("the audit writer thread panicked");
        }
        self.wal.stop();
    }
}

fn run(
    mut log: AuditLog,
    mut rx: mpsc::Receiver<Pending>,
    retention: AuditRetentionConfig,
    health: &Health,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!("audit writer cannot start: {e}");
            return;
        }
    };
    let mut batch: Vec<Pending> = Vec::with_capacity(MAX_BATCH);
    let mut admin_events_read = Instant::now();
    ingest_admin_events(&mut log);
    let mut swept: Option<Instant> = None;
    let mut sweep: Option<RetentionSweep> = None;
    loop {
        // Wait for the next event, waking for a due checkpoint.
        // A retention sweep under way goes on between batches without waiting.
        let wait = if sweep.is_some() {
            Duration::ZERO
        } else {
            Duration::from_secs(1)
        };
        let first = runtime.block_on(async { tokio::time::timeout(wait, rx.recv()).await });
        match first {
            Ok(Some(pending)) => batch.push(pending),
            Ok(None) => break,
            Err(_) => {
                if let Err(e) = log.anchor_if_behind() {
                    tracing::error!("anchoring the audit head failed: {e}");
                }
            }
        }
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(pending) => batch.push(pending),
                Err(_) => break,
            }
        }
        write(&mut log, &mut batch, health);
        if admin_events_read.elapsed() >= ADMIN_EVENTS_EVERY {
            admin_events_read = Instant::now();
            ingest_admin_events(&mut log);
        }
        if retention.any() && swept.is_none_or(|at| at.elapsed() >= RETENTION_EVERY) {
            swept = Some(Instant::now());
            match RetentionSweep::start(&log, |tenant| retention.payload_days_of(tenant)) {
                Ok(started) => sweep = Some(started),
                Err(e) => tracing::error!("audit payload retention failed: {e}"),
            }
        }
        // One chunk per round: no request waits behind more than that.
        if let Some(running) = sweep.as_mut() {
            match running.step(&mut log) {
                Ok(Some(_)) => {}
                Ok(None) => {
                    if running.expired > 0 {
                        tracing::info!(running.expired, "audit payload retention applied");
                    }
                    sweep = None;
                }
                Err(e) => {
                    tracing::error!("audit payload retention failed: {e}");
                    sweep = None;
                }
            }
        }
        if log.checkpoint_due()
            && let Err(e) = log.checkpoint()
        {
            tracing::error!("audit checkpoint failed: {e}");
        }
    }
    ingest_admin_events(&mut log);
    if let Err(e) = log.checkpoint() {
        tracing::error!("final audit checkpoint failed: {e}");
    }
}

/// Copies admin actions (taken through the admin API or the command line) into the log.
fn ingest_admin_events(log: &mut AuditLog) {
    if let Err(e) = log.ingest_admin_events() {
        tracing::error!("copying admin events into the audit log failed: {e}");
    }
}

/// Appends one batch — led by the record of an outage while appends fail, which is
/// also tried alone when no batch comes — and tells each waiter whether its record is on
/// disk.
fn write(log: &mut AuditLog, batch: &mut Vec<Pending>, health: &Health) {
    let outage = health.outage();
    if batch.is_empty() && outage.is_none() {
        return;
    }
    let (events, acks): (Vec<AuditEvent>, Vec<Option<oneshot::Sender<bool>>>) =
        batch.drain(..).map(|p| (p.event, p.ack)).unzip();
    let count = events.len();
    let written = match log.append(outage.into_iter().chain(events).collect()) {
        Ok(_) => {
            health.recovered();
            true
        }
        Err(e) => {
            tracing::error!("audit append failed: {e}");
            health.failed(count);
            false
        }
    };
    for ack in acks.into_iter().flatten() {
        let _ = ack.send(written);
    }
}
