//! The audit log in `audit.db`: records appended in batches (one fsync'd transaction per
//! batch), each chained to the one before by its MAC; signed checkpoints over ranges;
//! payloads sealed with per-subject data keys; the head (last record and last
//! checkpoint) and the first record anchored in the state database (`anchor`), so a log
//! cut after its last checkpoint, or removed, is noticed; and each checkpoint handed to
//! the configured witnesses off the box (`witness`). Erasure (`erasure`) and payload
//! retention (`retention`) work on it from their own modules.

use super::admin_events;
use super::anchor::{self, Genesis, Head};
use super::keys::{self, chain_key, record_mac};
use super::merkle::{self, Hash};
use super::record::{AuditEvent, AuditRecord, VERSION};
use super::witness::{Witness, WitnessFile};
use crate::store::instance_key::{InstanceKey, hex, unhex};
use crate::store::{Migration, StoreError, now_unix};
use ring::digest::{SHA256, digest};
use ring::hmac;
use ring::signature::{ED25519, Ed25519KeyPair, UnparsedPublicKey};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// Schema of the audit database (`audit.db`).
pub const AUDIT_MIGRATIONS: &[Migration] = &[
    "CREATE TABLE records (
        seq INTEGER PRIMARY KEY,
        ts_ms INTEGER NOT NULL,
        kind TEXT NOT NULL,
        tenant_id TEXT,
        session_id TEXT,
        request_id TEXT,
        body TEXT NOT NULL,
        mac BLOB NOT NULL,
        request_payload BLOB,
        response_payload BLOB
    );
    CREATE INDEX records_session ON records(session_id, seq) WHERE session_id IS NOT NULL;
    CREATE TABLE checkpoints (
        last_seq INTEGER PRIMARY KEY,
        first_seq INTEGER NOT NULL,
        ts_ms INTEGER NOT NULL,
        root BLOB NOT NULL,
        previous BLOB NOT NULL,
        signature BLOB NOT NULL
    );
    CREATE TABLE data_keys (
        id TEXT PRIMARY KEY,
        subject TEXT NOT NULL,
        sealed BLOB,
        created_at INTEGER NOT NULL,
        destroyed_at INTEGER
    );
    CREATE INDEX data_keys_subject ON data_keys(subject);",
    // How far other sources (the state database's admin events) have been copied in.
    "CREATE TABLE ingested (
        source TEXT PRIMARY KEY,
        last_id INTEGER NOT NULL
    );",
];

/// A record's sealed request and response payloads.
type Sealed = (Option<Vec<u8>>, Option<Vec<u8>>);

/// When checkpoints are made.
#[derive(Debug, Clone, Copy)]
pub struct CheckpointPolicy {
    /// After this many records since the last checkpoint.
    pub every_records: u64,
    /// Or once this long has passed with records not yet covered.
    pub every: Duration,
}

/// A signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Checkpoint {
    pub first_seq: u64,
    pub last_seq: u64,
    pub ts_ms: i64,
    #[serde(with = "merkle::hex_hash")]
    pub root: Hash,
    /// Hash of the previous checkpoint (zeros for the first).
    #[serde(with = "merkle::hex_hash")]
    pub previous: Hash,
    /// Ed25519 over [`Checkpoint::statement`], hex.
    pub signature: String,
}

impl Checkpoint {
    /// The signed statement.
    pub fn statement(&self) -> String {
        format!(
            "airlock audit checkpoint v1\nfirst={}\nlast={}\nroot={}\nprevious={}\nts_ms={}\n",
            self.first_seq,
            self.last_seq,
            hex(&self.root),
            hex(&self.previous),
            self.ts_ms
        )
    }

    /// Whether the signature is the Ed25519 signature of [`Checkpoint::statement`] by
    /// `public_key` (32 raw bytes).
    pub fn signature_valid(&self, public_key: &[u8]) -> bool {
        let Some(signature) = unhex(&self.signature) else {
            return false;
        };
        UnparsedPublicKey::new(&ED25519, public_key)
            .verify(self.statement().as_bytes(), &signature)
            .is_ok()
    }

    /// What the next checkpoint names as its previous one.
    pub fn hash(&self) -> Hash {
        let text = format!("{}signature={}\n", self.statement(), self.signature);
        let mut out = [0u8; 32];
        out.copy_from_slice(digest(&SHA256, text.as_bytes()).as_ref());
        out
    }
}

/// The audit log, open for appending (one writer).
pub struct AuditLog {
    pub(super) conn: Connection,
    pub(super) state: Connection,
    chain: hmac::Key,
    signing: Ed25519KeyPair,
    pub(super) seal_key: [u8; 32],
    policy: CheckpointPolicy,
    tail: Tail,
    last_checkpoint_at: Instant,
    /// Data keys by subject: (id, key).
    pub(super) data_keys: HashMap<String, (String, [u8; 32])>,
    /// Largest payload stored (bytes); longer ones are cut.
    max_payload: usize,
    /// SQLite's `data_version` when this connection last caught up: it changes when
    /// another connection commits.
    data_version: i64,
    /// What was last anchored, and when.
    anchored: Anchored,
    /// Whether the state database holds the genesis anchor (written with the first head).
    genesis_anchored: bool,
    /// Where each checkpoint goes beyond the local files.
    witnesses: Vec<Box<dyn Witness>>,
}

/// The head as last anchored by this process.
struct Anchored {
    seq: u64,
    /// The last record of the last checkpoint then.
    checkpoint_seq: u64,
    at: Instant,
}

/// Appends anchor the head at most this often: each anchor is a write to the state
/// database, whose own WAL upkeep would otherwise stall the writer every few seconds.
/// A crash can cost the anchor of the last records written in this window — as it
/// could anyway, the state database not syncing each commit.
const ANCHOR_EVERY: Duration = Duration::from_millis(100);

impl Drop for AuditLog {
    fn drop(&mut self) {
        if let Err(e) = self.anchor_if_behind() {
            tracing::error!("anchoring the audit head failed: {e}");
        }
    }
}

/// Where the log ends: what the next record and checkpoint continue from.
struct Tail {
    last_seq: u64,
    last_mac: Vec<u8>,
    /// Leaves of the records not yet under a checkpoint, oldest first.
    pending: Vec<Hash>,
    last_checkpoint: Option<Checkpoint>,
}

impl Tail {
    fn read(conn: &Connection) -> Result<Self, StoreError> {
        let (last_seq, last_mac): (u64, Vec<u8>) = conn
            .query_row(
                "SELECT seq, mac FROM records ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)),
            )
            .optional()?
            .unwrap_or((0, vec![0u8; 32]));
        let last_checkpoint = conn
            .query_row(
                "SELECT first_seq, last_seq, ts_ms, root, previous, signature FROM checkpoints
                 ORDER BY last_seq DESC LIMIT 1",
                [],
                checkpoint_row,
            )
            .optional()?;
        let covered = last_checkpoint.as_ref().map_or(0, |c| c.last_seq);
        let mut pending = Vec::new();
        let mut stmt = conn.prepare("SELECT body, mac FROM records WHERE seq > ?1 ORDER BY seq")?;
        let rows = stmt.query_map([covered as i64], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
        })?;
        for row in rows {
            let (body, mac) = row?;
            pending.push(merkle::leaf(&mac, body.as_bytes()));
        }
        Ok(Self {
            last_seq,
            last_mac,
            pending,
            last_checkpoint,
        })
    }
}

fn data_version(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.query_row("PRAGMA data_version", [], |r| r.get(0))?)
}

pub(super) fn ts_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn signature_error(_: impl std::fmt::Debug) -> StoreError {
    StoreError::Invalid("the instance signing key is not an Ed25519 key".into())
}

/// Opens `audit.db` with every commit fsync'd.
pub fn open_audit_db(path: &Path) -> Result<Connection, StoreError> {
    let conn = crate::store::open(path, AUDIT_MIGRATIONS)?;
    // Commits only append to the WAL; a thread of its own copies it into the database
    // (`wal::WalFolder`), so no request waits behind that copy.
    // Deleted content (an erased key, an erased payload) is overwritten, not left in
    // free pages.
    conn.execute_batch(
        "PRAGMA synchronous = FULL; PRAGMA wal_autocheckpoint = 0; PRAGMA secure_delete = ON;",
    )?;
    Ok(conn)
}

impl AuditLog {
    /// The log of the instance `loaded` configures.
    pub fn open_configured(
        loaded: &crate::config::LoadedConfig,
        instance: &InstanceKey,
    ) -> Result<Self, StoreError> {
        let audit = &loaded.config.audit;
        let mut log = Self::open(
            &loaded.audit_db_path(),
            &loaded.state_db_path(),
            instance,
            CheckpointPolicy {
                every_records: audit.checkpoint_every_records.max(1),
                every: Duration::from_secs(audit.checkpoint_interval_secs.max(1)),
            },
            audit.max_payload_bytes,
        )?;
        if audit.max_db_bytes > 0 {
            log.limit_size(audit.max_db_bytes)?;
        }
        if let Some(path) = loaded.audit_witness_path() {
            let public_key = unhex(&instance.public_key_hex()).unwrap_or_default();
            let witness = WitnessFile::open(&path, &loaded.data_dir, &public_key)
                .map_err(|e| StoreError::Invalid(e.to_string()))?;
            log.add_witness(Box::new(witness));
        }
        Ok(log)
    }

    /// Caps the log's database at about `bytes` (SQLite's `max_page_count`): past it,
    /// appends fail as on a full disk.
    fn limit_size(&mut self, bytes: u64) -> Result<(), StoreError> {
        let page: i64 = self.conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        let pages = (bytes / page.max(1) as u64).max(1);
        self.conn
            .query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))?;
        Ok(())
    }

    /// Hands every checkpoint from now on (and those it lacks already) to `witness`.
    pub fn add_witness(&mut self, witness: Box<dyn Witness>) {
        self.witnesses.push(witness);
        self.send_to_witnesses();
    }

    pub fn open(
        audit_db: &Path,
        state_db: &Path,
        instance: &InstanceKey,
        policy: CheckpointPolicy,
        max_payload: usize,
    ) -> Result<Self, StoreError> {
        let conn = open_audit_db(audit_db)?;
        let state = crate::store::open(state_db, crate::tenancy::STATE_MIGRATIONS)?;
        let tail = Tail::read(&conn)?;
        let anchored = Anchored {
            seq: tail.last_seq,
            checkpoint_seq: tail.last_checkpoint.as_ref().map_or(0, |c| c.last_seq),
            at: Instant::now(),
        };
        let genesis_anchored = Genesis::anchored(&state)?;
        Ok(Self {
            conn,
            state,
            chain: chain_key(instance),
            signing: Ed25519KeyPair::from_pkcs8(&instance.signing_key_pkcs8)
                .map_err(signature_error)?,
            seal_key: instance.seal_key,
            policy,
            tail,
            last_checkpoint_at: Instant::now(),
            data_keys: HashMap::new(),
            max_payload,
            // Unknown: the first write re-reads the tail under the write lock.
            data_version: -1,
            anchored,
            genesis_anchored,
            witnesses: Vec::new(),
        })
    }

    /// Runs `work` in an immediate transaction (the log's write lock across processes),
    /// first catching up with what another process (a CLI command) appended, so the
    /// chain continues from the true tail.
    pub(super) fn locked<T>(
        &mut self,
        work: impl FnOnce(&mut Self) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        let result = self
            .catch_up()
            .and_then(|()| work(self))
            .and_then(|done| Ok(self.conn.execute_batch("COMMIT").map(|()| done)?));
        if result.is_err() {
            let _ = self.conn.execute_batch("ROLLBACK");
            // What this process believed it wrote is not there: read the log back.
            self.data_version = -1;
        }
        result
    }

    /// Re-reads the tail and forgets cached data keys when another connection changed
    /// the log since this one last looked.
    fn catch_up(&mut self) -> Result<(), StoreError> {
        let version = data_version(&self.conn)?;
        if version != self.data_version {
            self.tail = Tail::read(&self.conn)?;
            self.data_keys.clear();
            self.data_version = version;
        }
        Ok(())
    }

    /// The data key payloads of `subject` are sealed with, created on first use.
    fn data_key(&mut self, subject: &str) -> Result<(String, [u8; 32]), StoreError> {
        if let Some(found) = self.data_keys.get(subject) {
            return Ok(found.clone());
        }
        let stored: Option<(String, Vec<u8>)> = self
            .conn
            .query_row(
                "SELECT id, sealed FROM data_keys WHERE subject = ?1 AND destroyed_at IS NULL
                 ORDER BY created_at DESC LIMIT 1",
                [subject],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let found = match stored {
            Some((id, sealed)) => {
                let plain =
                    keys::open(&self.seal_key, id.as_bytes(), &sealed).ok_or_else(|| {
                        StoreError::Invalid(format!("data key {id} cannot be unsealed"))
                    })?;
                let key: [u8; 32] = plain
                    .try_into()
                    .map_err(|_| StoreError::Invalid(format!("data key {id} is malformed")))?;
                (id, key)
            }
            None => {
                let key = keys::new_data_key()?;
                let id = format!("dk_{}", hex(&keys::new_data_key()?[..8]));
                let sealed = keys::seal(&self.seal_key, id.as_bytes(), &key)?;
                self.conn.execute(
                    "INSERT INTO data_keys (id, subject, sealed, created_at) VALUES (?1, ?2, ?3, ?4)",
                    params![id, subject, sealed, now_unix()],
                )?;
                (id, key)
            }
        };
        self.data_keys.insert(subject.to_string(), found.clone());
        Ok(found)
    }

    /// Seals an event's payloads (cut to the maximum size first) and names them in its
    /// record; the sealed request and response payloads.
    fn seal_payloads(&mut self, event: AuditEvent) -> Result<(AuditRecord, Sealed), StoreError> {
        let mut record = event.record;
        if event.request_payload.is_none() && event.response_payload.is_none() {
            return Ok((record, (None, None)));
        }
        let subject = payload_subject(record.tenant_id.as_deref(), record.user_id.as_deref());
        let (key_id, key) = self.data_key(&subject)?;
        let max = self.max_payload;
        let seal = |payload: Option<bytes::Bytes>,
                    truncated: &mut bool|
         -> Result<Option<Vec<u8>>, StoreError> {
            let Some(payload) = payload else {
                return Ok(None);
            };
            *truncated |= payload.len() > max;
            let kept = &payload[..payload.len().min(max)];
            keys::seal_payload(&key, &key_id, kept).map(Some)
        };
        let mut truncated = false;
        let request = seal(event.request_payload, &mut truncated)?;
        let response = seal(event.response_payload, &mut truncated)?;
        record.request_payload_sha256 = request.as_deref().map(keys::payload_digest);
        record.response_payload_sha256 = response.as_deref().map(keys::payload_digest);
        record.payload_truncated = truncated;
        record.payload_key = Some(key_id);
        Ok((record, (request, response)))
    }

    /// Appends events in one durable transaction; their sequence numbers, in order.
    pub fn append(&mut self, events: Vec<AuditEvent>) -> Result<Vec<u64>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let mut signed = false;
        let seqs = self.locked(|log| {
            let seqs = log.append_locked(events)?;
            if log.tail.pending.len() as u64 >= log.policy.every_records {
                signed = log.checkpoint_locked()?.is_some();
            }
            Ok(seqs)
        })?;
        if signed {
            self.checkpoint_committed();
        }
        // The first record is anchored at once: until then, nothing outside the log
        // says it exists. The records are durable whatever becomes of the anchor (the
        // idle writer anchors again).
        if (!self.genesis_anchored || self.anchored.at.elapsed() >= ANCHOR_EVERY)
            && let Err(e) = self.anchor_head()
        {
            tracing::error!("anchoring the audit head failed: {e}");
        }
        Ok(seqs)
    }

    pub(super) fn append_locked(
        &mut self,
        events: Vec<AuditEvent>,
    ) -> Result<Vec<u64>, StoreError> {
        let mut seq = self.tail.last_seq;
        let mut mac = self.tail.last_mac.clone();
        let mut leaves = Vec::with_capacity(events.len());
        let mut seqs = Vec::with_capacity(events.len());
        for event in events {
            let (mut record, (request, response)) = self.seal_payloads(event)?;
            seq += 1;
            record.v = VERSION;
            record.seq = seq;
            if record.ts_ms == 0 {
                record.ts_ms = ts_now_ms();
            }
            let body = record.canonical();
            mac = record_mac(&self.chain, &mac, &body).to_vec();
            self.conn
                .prepare_cached(
                    "INSERT INTO records (seq, ts_ms, kind, tenant_id, session_id, request_id, body,
                                          mac, request_payload, response_payload)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )?
                .execute(params![
                    record.seq as i64,
                    record.ts_ms,
                    record.kind,
                    record.tenant_id,
                    record.session_id,
                    record.request_id,
                    String::from_utf8_lossy(&body),
                    mac,
                    request,
                    response
                ])?;
            leaves.push(merkle::leaf(&mac, &body));
            seqs.push(seq);
        }
        self.tail.pending.extend(leaves);
        self.tail.last_seq = seq;
        self.tail.last_mac = mac;
        Ok(seqs)
    }

    /// Copies admin events not yet in the log into it; how many.
    pub fn ingest_admin_events(&mut self) -> Result<usize, StoreError> {
        let mut total = 0;
        loop {
            let copied = self.ingest_admin_batch()?;
            total += copied;
            if copied < admin_events::BATCH {
                return Ok(total);
            }
        }
    }

    fn ingest_admin_batch(&mut self) -> Result<usize, StoreError> {
        let copied = self.locked(|log| {
            let done: i64 = log
                .conn
                .query_row(
                    "SELECT last_id FROM ingested WHERE source = ?1",
                    [admin_events::SOURCE],
                    |r| r.get(0),
                )
                .optional()?
                .unwrap_or(0);
            let events = admin_events::after(&log.state, done)?;
            let Some(&(last, _)) = events.last() else {
                return Ok(0);
            };
            let count = events.len();
            log.append_locked(events.into_iter().map(|(_, event)| event).collect())?;
            log.conn.execute(
                "INSERT INTO ingested (source, last_id) VALUES (?1, ?2)
                 ON CONFLICT(source) DO UPDATE SET last_id = excluded.last_id",
                params![admin_events::SOURCE, last],
            )?;
            Ok(count)
        })?;
        if copied > 0 {
            self.anchor_head()?;
        }
        Ok(copied)
    }

    /// Anchors the head now if records were appended since it was last anchored (the
    /// writer calls this when idle; appends anchor at most every [`ANCHOR_EVERY`]).
    pub fn anchor_if_behind(&mut self) -> Result<(), StoreError> {
        let checkpoint_seq = self.tail.last_checkpoint.as_ref().map_or(0, |c| c.last_seq);
        if self.anchored.seq < self.tail.last_seq || self.anchored.checkpoint_seq < checkpoint_seq {
            self.anchor_head()?;
        }
        Ok(())
    }

    /// Records the head (and, the first time, the genesis) in the state database.
    pub(super) fn anchor_head(&mut self) -> Result<(), StoreError> {
        let checkpoint = self
            .tail
            .last_checkpoint
            .as_ref()
            .map_or((0, [0u8; 32]), |c| (c.last_seq, c.hash()));
        self.anchored = Anchored {
            seq: self.tail.last_seq,
            checkpoint_seq: checkpoint.0,
            at: Instant::now(),
        };
        let head = Head {
            seq: self.tail.last_seq,
            mac: self.tail.last_mac.clone(),
            checkpoint: Some(checkpoint),
        };
        let genesis = if self.genesis_anchored {
            None
        } else {
            Genesis::of_log(&self.conn)?
        };
        anchor::write(&self.state, &self.chain, &head, genesis.as_ref())?;
        // A log with records but no record 1 was tampered with: nothing to anchor, and
        // no reason to try at every append.
        self.genesis_anchored |= genesis.is_some() || self.tail.last_seq > 0;
        Ok(())
    }

    /// Says that a checkpoint was signed — in the service log, which may itself be shipped
    /// off the box — and hands it to the witnesses.
    fn checkpoint_committed(&mut self) {
        if let Some(checkpoint) = &self.tail.last_checkpoint {
            tracing::info!(
                first = checkpoint.first_seq,
                last = checkpoint.last_seq,
                hash = %hex(&checkpoint.hash()),
                "audit checkpoint signed"
            );
        }
        self.send_to_witnesses();
    }

    /// Hands the checkpoints each witness lacks to it. A witness that fails is tried
    /// again at the next checkpoint (and said so in the log): the checkpoint itself is
    /// in the log already.
    fn send_to_witnesses(&mut self) {
        let newest = self.tail.last_checkpoint.as_ref().map_or(0, |c| c.last_seq);
        for witness in &mut self.witnesses {
            let sent = witness.witnessed().and_then(|held| {
                if held >= newest {
                    return Ok(());
                }
                witness.witness(&checkpoints_after(&self.conn, held)?)
            });
            if let Err(e) = sent {
                tracing::error!(witness = %witness.name(), "audit checkpoint not witnessed: {e}");
            }
        }
    }

    /// Whether records wait for a checkpoint longer than the policy allows.
    pub fn checkpoint_due(&self) -> bool {
        !self.tail.pending.is_empty() && self.last_checkpoint_at.elapsed() >= self.policy.every
    }

    /// Signs a checkpoint over the records not yet covered (if any).
    pub fn checkpoint(&mut self) -> Result<Option<Checkpoint>, StoreError> {
        let checkpoint = self.locked(Self::checkpoint_locked)?;
        if checkpoint.is_some() {
            self.checkpoint_committed();
        }
        self.anchor_if_behind()?;
        Ok(checkpoint)
    }

    fn checkpoint_locked(&mut self) -> Result<Option<Checkpoint>, StoreError> {
        self.last_checkpoint_at = Instant::now();
        let tail = &mut self.tail;
        if tail.pending.is_empty() {
            return Ok(None);
        }
        let mut checkpoint = Checkpoint {
            first_seq: tail.last_seq + 1 - tail.pending.len() as u64,
            last_seq: tail.last_seq,
            ts_ms: ts_now_ms(),
            root: merkle::root(&tail.pending),
            previous: tail
                .last_checkpoint
                .as_ref()
                .map_or([0u8; 32], Checkpoint::hash),
            signature: String::new(),
        };
        checkpoint.signature = hex(self
            .signing
            .sign(checkpoint.statement().as_bytes())
            .as_ref());
        self.conn.execute(
            "INSERT INTO checkpoints (last_seq, first_seq, ts_ms, root, previous, signature)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                checkpoint.last_seq as i64,
                checkpoint.first_seq as i64,
                checkpoint.ts_ms,
                checkpoint.root.as_slice(),
                checkpoint.previous.as_slice(),
                checkpoint.signature
            ],
        )?;
        tail.pending.clear();
        tail.last_checkpoint = Some(checkpoint.clone());
        Ok(Some(checkpoint))
    }

    /// Stops syncing commits to disk (benchmarks only: measures what fsync costs).
    pub fn without_fsync(&mut self) -> Result<(), StoreError> {
        Ok(self.conn.execute_batch("PRAGMA synchronous = OFF;")?)
    }

    pub fn last_seq(&self) -> u64 {
        self.tail.last_seq
    }
}

/// Whose data key seals a record's payloads: the user within the tenant when known, else
/// the tenant, else the instance.
pub fn payload_subject(tenant: Option<&str>, user: Option<&str>) -> String {
    match (tenant, user) {
        (Some(tenant), Some(user)) => format!("user:{tenant}:{user}"),
        (Some(tenant), None) => format!("tenant:{tenant}"),
        _ => "instance".to_string(),
    }
}

/// The records of one session, in order.
pub fn session_records(audit: &Connection, session: &str) -> Result<Vec<AuditRecord>, StoreError> {
    let mut stmt = audit.prepare("SELECT body FROM records WHERE session_id = ?1 ORDER BY seq")?;
    let bodies = stmt.query_map([session], |r| r.get::<_, String>(0))?;
    bodies.map(|body| parse_body(&body?)).collect()
}

/// The records with these sequence numbers, in the order given (missing ones left out).
pub fn records_by_seq(audit: &Connection, seqs: &[u64]) -> Result<Vec<AuditRecord>, StoreError> {
    let mut stmt = audit.prepare_cached("SELECT body FROM records WHERE seq = ?1")?;
    let mut records = Vec::with_capacity(seqs.len());
    for seq in seqs {
        let body: Option<String> = stmt.query_row([*seq as i64], |r| r.get(0)).optional()?;
        if let Some(body) = body {
            records.push(parse_body(&body)?);
        }
    }
    Ok(records)
}

fn parse_body(body: &str) -> Result<AuditRecord, StoreError> {
    serde_json::from_str(body)
        .map_err(|e| StoreError::Invalid(format!("an audit record does not parse: {e}")))
}

/// A data key opened with the instance's seal key; `None` if it is not one.
fn unseal_data_key(seal_key: &[u8; 32], id: &str, sealed: &[u8]) -> Option<[u8; 32]> {
    keys::open(seal_key, id.as_bytes(), sealed)?.try_into().ok()
}

/// The data key `id`, to open payloads with; `None` once destroyed.
pub fn read_data_key(
    audit: &Connection,
    seal_key: &[u8; 32],
    id: &str,
) -> Result<Option<[u8; 32]>, StoreError> {
    let sealed: Option<Option<Vec<u8>>> = audit
        .query_row("SELECT sealed FROM data_keys WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .optional()?;
    Ok(sealed
        .flatten()
        .and_then(|sealed| unseal_data_key(seal_key, id, &sealed)))
}

/// The checkpoints whose last record is after `seq`, oldest first.
pub fn checkpoints_after(audit: &Connection, seq: u64) -> Result<Vec<Checkpoint>, StoreError> {
    let mut stmt = audit.prepare(
        "SELECT first_seq, last_seq, ts_ms, root, previous, signature FROM checkpoints
         WHERE last_seq > ?1 ORDER BY last_seq",
    )?;
    let rows = stmt.query_map([seq as i64], checkpoint_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A checkpoint read from its row.
pub fn checkpoint_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Checkpoint> {
    let hash = |bytes: Vec<u8>| -> Hash { bytes.try_into().unwrap_or([0u8; 32]) };
    Ok(Checkpoint {
        first_seq: r.get::<_, i64>(0)? as u64,
        last_seq: r.get::<_, i64>(1)? as u64,
        ts_ms: r.get(2)?,
        root: hash(r.get(3)?),
        previous: hash(r.get(4)?),
        signature: r.get(5)?,
    })
}
