//! The request log: one row per request, written by a single thread in batched
//! transactions, fed through a bounded channel (requests wait rather than rows dropped;
//! each wait is counted).

use super::{Migration, StoreError};
use rusqlite::Connection;
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use tokio::sync::mpsc;

const MIGRATIONS: &[Migration] = &[
    "CREATE TABLE request_log (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        ts_ms INTEGER NOT NULL,
        tenant_id TEXT,
        key_id TEXT,
        endpoint TEXT NOT NULL,
        model TEXT,
        upstream TEXT,
        upstream_model TEXT,
        status INTEGER NOT NULL,
        error_type TEXT,
        latency_ms REAL NOT NULL,
        upstream_latency_ms REAL,
        ttft_ms REAL,
        prompt_tokens INTEGER,
        completion_tokens INTEGER,
        stream INTEGER NOT NULL,
        client_addr TEXT
    );
    CREATE INDEX request_log_ts ON request_log(ts_ms);
    CREATE INDEX request_log_tenant ON request_log(tenant_id, ts_ms);",
    // Attempts made upstream (retries and failovers included); 0 when none was made.
    "ALTER TABLE request_log ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;",
    // The experiment and arm a request was assigned to, when its model runs one.
    "ALTER TABLE request_log ADD COLUMN experiment TEXT;
     ALTER TABLE request_log ADD COLUMN arm TEXT;",
    // Answered from the route's response cache, without an upstream attempt.
    "ALTER TABLE request_log ADD COLUMN cache_hit INTEGER NOT NULL DEFAULT 0;",
    // What the policy decided, which version, and the rules that matched (comma-separated).
    "ALTER TABLE request_log ADD COLUMN decision TEXT;
     ALTER TABLE request_log ADD COLUMN policy_version TEXT;
     ALTER TABLE request_log ADD COLUMN policy_rules TEXT;",
    // Personal data found in the prompt: classes and counts, never values.
    "ALTER TABLE request_log ADD COLUMN data_classes TEXT;",
    // Who spent what: the key's team, the person acted for, the model asked for when a
    // rule or budget sent the request elsewhere, cached prompt tokens, and the cost in
    // nano-dollars (integers, so reports sum exactly).
    "ALTER TABLE request_log ADD COLUMN team_id TEXT;
     ALTER TABLE request_log ADD COLUMN user_id TEXT;
     ALTER TABLE request_log ADD COLUMN requested_model TEXT;
     ALTER TABLE request_log ADD COLUMN cached_tokens INTEGER;
     ALTER TABLE request_log ADD COLUMN cost_nano_usd INTEGER;
     CREATE INDEX request_log_cost ON request_log(ts_ms, tenant_id) WHERE cost_nano_usd IS NOT NULL;",
    // Prompt text the NER model did not read, when the request went on regardless.
    "ALTER TABLE request_log ADD COLUMN pii_unscanned TEXT;",
];

/// Rows written per transaction at most.
const MAX_BATCH: usize = 1024;
/// How long the writer lets rows gather before committing a partial batch: bounds the
/// commit rate (each commit costs WAL frame writes) to fifty per second under
/// load, while a row still reaches disk within milliseconds.
const BATCH_WINDOW: std::time::Duration = std::time::Duration::from_millis(20);

/// What happened to one request. Text fields are shared (`Arc<str>`) with the route
/// table, the key snapshot and the connection, so filling a record copies nothing.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct RequestRecord {
    pub id: Arc<str>,
    pub ts_ms: i64,
    pub tenant_id: Option<Arc<str>>,
    pub key_id: Option<Arc<str>>,
    pub endpoint: &'static str,
    pub model: Option<Arc<str>>,
    pub upstream: Option<Arc<str>>,
    pub upstream_model: Option<Arc<str>>,
    pub status: u16,
    pub error_type: Option<Arc<str>>,
    pub latency_ms: f64,
    pub upstream_latency_ms: Option<f64>,
    pub ttft_ms: Option<f64>,
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    pub stream: bool,
    pub client_addr: Option<Arc<str>>,
    /// Attempts made upstream, retries and failovers included.
    pub attempts: u32,
    pub experiment: Option<Arc<str>>,
    pub arm: Option<Arc<str>>,
    /// Answered from the response cache.
    pub cache_hit: bool,
    /// What the policy decided (`allow`, `deny`, `require_approval`); none without a policy.
    pub decision: Option<&'static str>,
    /// The policy version that decided (`v3-1a2b3c4d`).
    pub policy_version: Option<Arc<str>>,
    /// The rules that matched, comma-separated, in evaluation order.
    pub policy_rules: Option<Arc<str>>,
    /// Data classes found in the prompt with their counts (`EMAIL_ADDRESS:1,PERSON:2`).
    pub data_classes: Option<Arc<str>>,
    /// The team the key acts in.
    pub team_id: Option<Arc<str>>,
    /// The person the request was made for (the key's user, else the caller's label).
    pub user_id: Option<Arc<str>>,
    /// The model the caller asked for, when a rule or budget served another.
    pub requested_model: Option<Arc<str>>,
    /// Prompt tokens served from the upstream's prompt cache (part of `prompt_tokens`).
    pub cached_tokens: Option<u64>,
    /// What the request cost, in billionths of a dollar; none when the model is unpriced.
    pub cost_nano_usd: Option<i64>,
    /// Prompt text the NER model did not read, when the request went on regardless
    /// (`ner_timeout; bytes=52000; classes=PERSON,LOCATION,ORGANIZATION`).
    pub pii_unscanned: Option<Arc<str>>,
}

/// Sends records to the writer thread. Cheap to clone.
#[derive(Clone)]
pub struct RequestLog {
    tx: mpsc::Sender<RequestRecord>,
    /// Counts requests that found the queue full.
    waits: prometheus_client::metrics::counter::Counter,
}

/// Owns the writer thread; `finish` flushes everything sent and joins it.
pub struct RequestLogWriter {
    handle: JoinHandle<()>,
}

impl RequestLog {
    /// Opens the log database and starts its writer thread, with room for `capacity`
    /// rows in memory before requests wait (each wait counted in `waits`).
    pub fn open(
        path: &Path,
        capacity: std::num::NonZeroUsize,
        waits: prometheus_client::metrics::counter::Counter,
    ) -> Result<(Self, RequestLogWriter), StoreError> {
        let conn = super::open(path, MIGRATIONS)?;
        let (tx, rx) = mpsc::channel(capacity.get());
        let handle = std::thread::Builder::new()
            .name("request-log".into())
            .spawn(move || write_loop(conn, rx))
            .map_err(|e| StoreError::Invalid(format!("cannot start request-log thread: {e}")))?;
        Ok((Self { tx, waits }, RequestLogWriter { handle }))
    }

    /// Reserves room for one record; waits while the writer is behind. The permit sends
    /// without waiting or failing, so a request holding one can always log itself.
    pub async fn reserve(&self) -> Option<mpsc::OwnedPermit<RequestRecord>> {
        match self.tx.clone().try_reserve_owned() {
            Ok(permit) => Some(permit),
            Err(mpsc::error::TrySendError::Full(tx)) => {
                self.waits.inc();
                tx.reserve_owned().await.ok()
            }
            Err(mpsc::error::TrySendError::Closed(_)) => None,
        }
    }
}

impl RequestLogWriter {
    /// Waits until every record sent before all senders were dropped is on disk.
    pub fn finish(self) {
        if self.handle.join().is_err() {
            tracing::error!("request log writer panicked");
        }
    }
}

fn write_loop(mut conn: Connection, mut rx: mpsc::Receiver<RequestRecord>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        drain_into(&mut rx, &mut batch);
        if batch.len() < MAX_BATCH {
            std::thread::sleep(BATCH_WINDOW);
            drain_into(&mut rx, &mut batch);
        }
        // A failed write is retried, never skipped: rows are evidence.
        let mut attempt = 0u32;
        while let Err(e) = write_batch(&mut conn, &batch) {
            attempt += 1;
            tracing::error!(error = %e, rows = batch.len(), attempt, "request log write failed; retrying");
            std::thread::sleep(std::time::Duration::from_millis(
                (100 * u64::from(attempt)).min(5_000),
            ));
        }
        batch.clear();
    }
}

fn drain_into(rx: &mut mpsc::Receiver<RequestRecord>, batch: &mut Vec<RequestRecord>) {
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(r) => batch.push(r),
            Err(_) => break,
        }
    }
}

/// Columns written per record, in `bind_record`'s order.
const COLUMNS: &str = "id, ts_ms, tenant_id, key_id, endpoint, model, upstream, upstream_model,
    status, error_type, latency_ms, upstream_latency_ms, ttft_ms, prompt_tokens,
    completion_tokens, stream, client_addr, attempts, experiment, arm, cache_hit, decision,
    policy_version, policy_rules, data_classes, team_id, user_id, requested_model, cached_tokens,
    cost_nano_usd, pii_unscanned";
const COLUMN_COUNT: usize = 31;
/// Records per multi-row INSERT: a third less CPU per row than one statement per row.
const ROWS_PER_INSERT: usize = 16;

/// `INSERT OR IGNORE … VALUES (…), (…), …` for `rows` records.
fn insert_sql(rows: usize) -> String {
    let placeholders = vec!["?"; COLUMN_COUNT].join(", ");
    let values = vec![format!("({placeholders})"); rows].join(", ");
    format!("INSERT OR IGNORE INTO request_log ({COLUMNS}) VALUES {values}")
}

fn write_batch(conn: &mut Connection, batch: &[RequestRecord]) -> Result<(), rusqlite::Error> {
    static MANY: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| insert_sql(ROWS_PER_INSERT));
    static ONE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| insert_sql(1));
    let tx = conn.transaction()?;
    {
        let mut groups = batch.chunks_exact(ROWS_PER_INSERT);
        let mut many = tx.prepare_cached(&MANY)?;
        for group in &mut groups {
            for (index, record) in group.iter().enumerate() {
                bind_record(&mut many, index * COLUMN_COUNT, record)?;
            }
            many.raw_execute()?;
        }
        let mut one = tx.prepare_cached(&ONE)?;
        for record in groups.remainder() {
            bind_record(&mut one, 0, record)?;
            one.raw_execute()?;
        }
    }
    tx.commit()
}

/// Binds one record's columns after the first `offset` parameters.
fn bind_record(
    stmt: &mut rusqlite::Statement<'_>,
    offset: usize,
    r: &RequestRecord,
) -> Result<(), rusqlite::Error> {
    // Saturating: a count an upstream made up must not make the row unwritable.
    let tokens = |t: Option<u64>| t.map(|v| i64::try_from(v).unwrap_or(i64::MAX));
    let values: [&dyn rusqlite::ToSql; COLUMN_COUNT] = [
        &r.id,
        &r.ts_ms,
        &r.tenant_id,
        &r.key_id,
        &r.endpoint,
        &r.model,
        &r.upstream,
        &r.upstream_model,
        &r.status,
        &r.error_type,
        &r.latency_ms,
        &r.upstream_latency_ms,
        &r.ttft_ms,
        &tokens(r.prompt_tokens),
        &tokens(r.completion_tokens),
        &r.stream,
        &r.client_addr,
        &r.attempts,
        &r.experiment,
        &r.arm,
        &r.cache_hit,
        &r.decision,
        &r.policy_version,
        &r.policy_rules,
        &r.data_classes,
        &r.team_id,
        &r.user_id,
        &r.requested_model,
        &tokens(r.cached_tokens),
        &r.cost_nano_usd,
        &r.pii_unscanned,
    ];
    for (index, value) in values.into_iter().enumerate() {
        stmt.raw_bind_parameter(offset + index + 1, value)?;
    }
    Ok(())
}

/// Opens the request log database (bringing its schema up to date), to read reports.
pub fn open(path: &Path) -> Result<Connection, StoreError> {
    super::open(path, MIGRATIONS)
}

/// What one experiment arm got: from the request log, per model, experiment and arm.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ArmSummary {
    pub model: String,
    pub experiment: String,
    pub arm: String,
    pub requests: u64,
    /// Requests answered with a status of 400 or more (499: the client left).
    pub errors: u64,
    pub mean_latency_ms: f64,
    pub max_latency_ms: f64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

/// Sums the request log by experiment arm.
pub fn arm_summary(path: &Path) -> Result<Vec<ArmSummary>, StoreError> {
    let conn = open(path)?;
    let mut stmt = conn.prepare(
        "SELECT COALESCE(model, ''), experiment, arm, COUNT(*), SUM(status >= 400),
                AVG(latency_ms), MAX(latency_ms), COALESCE(SUM(prompt_tokens), 0),
                COALESCE(SUM(completion_tokens), 0)
         FROM request_log WHERE experiment IS NOT NULL AND arm IS NOT NULL
         GROUP BY model, experiment, arm ORDER BY model, experiment, arm",
    )?;
    let count = |v: i64| u64::try_from(v).unwrap_or(0);
    let rows = stmt.query_map([], |row| {
        Ok(ArmSummary {
            model: row.get(0)?,
            experiment: row.get(1)?,
            arm: row.get(2)?,
            requests: count(row.get(3)?),
            errors: count(row.get(4)?),
            mean_latency_ms: row.get(5)?,
            max_latency_ms: row.get(6)?,
            prompt_tokens: count(row.get(7)?),
            completion_tokens: count(row.get(8)?),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Reads the most recent `limit` records (newest first); for the CLI and tests.
pub fn read_recent(path: &Path, limit: usize) -> Result<Vec<RequestRecord>, StoreError> {
    let conn = open(path)?;
    let mut stmt = conn.prepare(
        "SELECT id, ts_ms, tenant_id, key_id, endpoint, model, upstream, upstream_model, status,
                error_type, latency_ms, upstream_latency_ms, ttft_ms, prompt_tokens,
                completion_tokens, stream, client_addr, attempts, experiment, arm, cache_hit,
                decision, policy_version, policy_rules, data_classes, team_id, user_id,
                requested_model, cached_tokens, cost_nano_usd, pii_unscanned
         FROM request_log ORDER BY seq DESC LIMIT ?1",
    )?;
    let rows = stmt.query_map([limit as i64], |row| {
        let endpoint: String = row.get(4)?;
        let text = |i: usize| -> rusqlite::Result<Option<Arc<str>>> {
            Ok(row.get::<_, Option<String>>(i)?.map(Arc::from))
        };
        Ok(RequestRecord {
            id: row.get::<_, String>(0)?.into(),
            ts_ms: row.get(1)?,
            tenant_id: text(2)?,
            key_id: text(3)?,
            endpoint: crate::server::endpoint_name(&endpoint),
            model: text(5)?,
            upstream: text(6)?,
            upstream_model: text(7)?,
            status: row.get(8)?,
            error_type: text(9)?,
            latency_ms: row.get(10)?,
            upstream_latency_ms: row.get(11)?,
            ttft_ms: row.get(12)?,
            prompt_tokens: row.get::<_, Option<i64>>(13)?.map(|v| v as u64),
            completion_tokens: row.get::<_, Option<i64>>(14)?.map(|v| v as u64),
            stream: row.get(15)?,
            attempts: row.get(17)?,
            experiment: text(18)?,
            arm: text(19)?,
            cache_hit: row.get(20)?,
            client_addr: text(16)?,
            decision: row
                .get::<_, Option<String>>(21)?
                .and_then(|d| crate::policy::Verdict::from_name(&d))
                .map(crate::policy::Verdict::name),
            policy_version: text(22)?,
            policy_rules: text(23)?,
            data_classes: text(24)?,
            team_id: text(25)?,
            user_id: text(26)?,
            requested_model: text(27)?,
            cached_tokens: row.get::<_, Option<i64>>(28)?.map(|v| v as u64),
            cost_nano_usd: row.get(29)?,
            pii_unscanned: text(30)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_record_reaches_disk_before_finish_returns() {
        let dir = crate::store::scratch_dir("rl");
        let path = dir.join("requests.db");
        let (log, writer) =
            RequestLog::open(&path, 65_536.try_into().unwrap(), Default::default()).unwrap();
        for i in 0..2000 {
            let record = RequestRecord {
                id: format!("req-{i}").into(),
                endpoint: "chat_completions",
                status: 200,
                ..Default::default()
            };
            log.reserve().await.unwrap().send(record);
        }
        drop(log);
        tokio::task::spawn_blocking(move || writer.finish())
            .await
            .unwrap();
        let rows = read_recent(&path, 5000).unwrap();
        assert_eq!(rows.len(), 2000);
        assert_eq!(rows[0].endpoint, "chat_completions");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn batches_keep_every_column_of_every_record() {
        let dir = crate::store::scratch_dir("rl-columns");
        let path = dir.join("requests.db");
        let mut conn = crate::store::open(&path, MIGRATIONS).unwrap();
        // 16-row statements and the single-row remainder, every column distinct.
        let records: Vec<RequestRecord> = (0..37u64)
            .map(|i| RequestRecord {
                id: format!("req-{i}").into(),
                ts_ms: 1_000 + i as i64,
                tenant_id: Some(format!("t{i}").into()),
                key_id: Some(format!("k{i}").into()),
                endpoint: if i % 2 == 0 {
                    "chat_completions"
                } else {
                    "embeddings"
                },
                model: Some(format!("m{i}").into()),
                upstream: Some(format!("u{i}").into()),
                upstream_model: Some(format!("um{i}").into()),
                status: 200 + i as u16,
                error_type: (i % 3 == 0).then(|| format!("e{i}").into()),
                latency_ms: i as f64 + 0.5,
                upstream_latency_ms: Some(i as f64 + 0.25),
                ttft_ms: (i % 2 == 1).then_some(i as f64),
                prompt_tokens: Some(i),
                completion_tokens: Some(if i == 36 { u64::MAX } else { 2 * i }),
                stream: i % 2 == 1,
                client_addr: Some(format!("10.0.0.{i}:1").into()),
                attempts: i as u32 % 4,
                experiment: (i % 5 == 0).then(|| "exp".into()),
                arm: (i % 5 == 0).then(|| format!("arm{}", i % 2).into()),
                cache_hit: i % 7 == 0,
                decision: [Some("allow"), Some("deny"), None][i as usize % 3],
                policy_version: (i % 3 != 2).then(|| format!("v{i}-abcdef12").into()),
                policy_rules: (i % 4 == 0).then(|| format!("r{i},s{i}").into()),
                data_classes: (i % 2 == 0).then(|| format!("PERSON:{i},URL:1").into()),
                team_id: (i % 3 == 1).then(|| format!("team{i}").into()),
                user_id: (i % 2 == 1).then(|| format!("user{i}").into()),
                requested_model: (i % 6 == 0).then(|| format!("asked{i}").into()),
                cached_tokens: (i % 4 == 1).then_some(i / 2),
                cost_nano_usd: (i % 5 != 4).then_some(i as i64 * 1_000_003),
                pii_unscanned: (i % 7 == 3).then(|| format!("ner_timeout; bytes={i}").into()),
            })
            .collect();
        write_batch(&mut conn, &records).unwrap();
        let mut rows = read_recent(&path, 100).unwrap();
        rows.reverse();
        let mut expected = records;
        expected[36].completion_tokens = Some(i64::MAX as u64); // stored saturated
        assert_eq!(rows, expected);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
