//! Offline verification of the audit log: the MAC chain record by record (naming the
//! first bad record and how it went bad: altered — a column of the wrong type included —,
//! deleted, inserted, reordered), payloads and data keys gone without an erasure or
//! retention record saying so (`absences`), every checkpoint's Merkle root, signature,
//! link to the one before and the records it covers, and the anchors in the state
//! database (`anchor`: records cut after the last checkpoint, checkpoints deleted, the log
//! removed or replaced). Holding the log against a witness is `witness::check`.

use super::absences::{self, Absences};
use super::anchor::{Anchors, LogEnd};
use super::columns::Columns;
use super::keys::{self, chain_key, record_mac};
use super::log::Checkpoint;
use super::merkle::{self, Hash};
use super::record::AuditRecord;
use crate::store::StoreError;
use crate::store::instance_key::{hex, unhex};
use ring::hmac;
use rusqlite::{Connection, OptionalExtension};
use std::collections::{HashMap, VecDeque};

/// How a log went bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Problem {
    Altered,
    Deleted,
    Inserted,
    Reordered,
    Truncated,
    CheckpointRoot,
    CheckpointSignature,
    CheckpointChain,
    /// Records lie under no checkpoint though later ones do, or a checkpoint the head
    /// names is gone.
    CheckpointMissing,
    /// The head anchor is gone while the log has (or had) records.
    HeadMissing,
    /// The log was begun (genesis anchor) but holds no records.
    Wiped,
    /// Record 1 is not the one anchored when the log was begun.
    Replaced,
    /// A stored payload is gone without an erasure or retention record explaining it.
    PayloadMissing,
    /// A data key is destroyed, deleted or altered without an erasure record.
    DataKeyMissing,
    /// The log differs from a checkpoint kept apart (a witness file, a written-down hash).
    Diverged,
    /// A witness file is missing or holds lines that are not this instance's checkpoints.
    WitnessUnreadable,
}

/// One thing found wrong.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    pub problem: Problem,
    /// The record (or checkpoint's last record) it concerns.
    pub seq: u64,
    pub detail: String,
}

impl Finding {
    pub fn new(problem: Problem, seq: u64, detail: String) -> Self {
        Self {
            problem,
            seq,
            detail,
        }
    }
}

/// A checkpoint as the report names it, so an auditor can write its hash down.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CheckpointSummary {
    pub first_seq: u64,
    pub last_seq: u64,
    pub hash: String,
}

/// What verification found.
#[derive(Debug, Default, serde::Serialize)]
pub struct Report {
    pub records: u64,
    pub checkpoints: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    pub findings: Vec<Finding>,
    /// The log's newest checkpoint (whole-log verification).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub newest_checkpoint: Option<CheckpointSummary>,
    /// The newest checkpoint a witness held (its last record), when one was consulted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub witnessed: Option<u64>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.findings.is_empty()
    }
}

/// One stored record, as read back: the indexed columns beside the body, and the
/// columns found holding a value of the wrong type.
struct Row {
    seq: u64,
    ts_ms: i64,
    kind: String,
    tenant_id: Option<String>,
    session_id: Option<String>,
    request_id: Option<String>,
    body: String,
    mac: Vec<u8>,
    request_payload: Option<Vec<u8>>,
    response_payload: Option<Vec<u8>>,
    mistyped: Vec<String>,
    record: Option<AuditRecord>,
}

impl Row {
    fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        let mut cols = Columns::new(r);
        let mut row = Self {
            seq: cols.integer(0, "seq") as u64,
            ts_ms: cols.integer(1, "ts_ms"),
            kind: cols.text(2, "kind"),
            tenant_id: cols.optional_text(3, "tenant_id"),
            session_id: cols.optional_text(4, "session_id"),
            request_id: cols.optional_text(5, "request_id"),
            body: cols.text(6, "body"),
            mac: cols.blob(7, "mac"),
            request_payload: cols.optional_blob(8, "request_payload"),
            response_payload: cols.optional_blob(9, "response_payload"),
            mistyped: Vec::new(),
            record: None,
        };
        row.mistyped = cols.wrong;
        row.record = serde_json::from_str(&row.body).ok();
        Ok(row)
    }

    /// What differs between the indexed columns and the body, or between the stored
    /// payloads and the ones the body names (an erased payload is absent, not different).
    fn mismatch(&self) -> Option<String> {
        let Some(r) = &self.record else {
            return Some("its body does not parse".into());
        };
        let differs = [
            ("seq", r.seq != self.seq),
            ("ts_ms", r.ts_ms != self.ts_ms),
            ("kind", r.kind != self.kind),
            ("tenant_id", r.tenant_id != self.tenant_id),
            ("session_id", r.session_id != self.session_id),
            ("request_id", r.request_id != self.request_id),
        ];
        if let Some((column, _)) = differs.iter().find(|(_, differs)| *differs) {
            return Some(format!("its `{column}` column differs from its body"));
        }
        let substituted = |stored: &Option<Vec<u8>>, named: &Option<String>| {
            stored.as_ref().is_some_and(|sealed| {
                named.as_deref() != Some(keys::payload_digest(sealed).as_str())
            })
        };
        if substituted(&self.request_payload, &r.request_payload_sha256) {
            return Some("its stored request payload is not the one it names".into());
        }
        if substituted(&self.response_payload, &r.response_payload_sha256) {
            return Some("its stored response payload is not the one it names".into());
        }
        None
    }

    /// The payloads the body names that are not stored.
    fn absent_payloads(&self) -> Vec<&'static str> {
        let Some(r) = &self.record else {
            return Vec::new();
        };
        let mut absent = Vec::new();
        if r.request_payload_sha256.is_some() && self.request_payload.is_none() {
            absent.push("request");
        }
        if r.response_payload_sha256.is_some() && self.response_payload.is_none() {
            absent.push("response");
        }
        absent
    }
}

fn chains(key: &hmac::Key, previous: &[u8], row: &Row) -> bool {
    record_mac(key, previous, row.body.as_bytes()).as_slice() == row.mac.as_slice()
}

/// One integer the query gives (a mistyped value reads as `None`).
fn integer_at(audit: &Connection, sql: &str, seq: u64) -> Result<Option<u64>, StoreError> {
    let value = audit.query_row(sql, [seq as i64], |r| {
        Ok(Columns::new(r).optional_integer(0, "seq"))
    })?;
    Ok(value.map(|v| v as u64))
}

/// `from..=to` widened to the whole checkpoints it cuts into, since a checkpoint's
/// root can be checked only with all its records.
fn whole_checkpoints(audit: &Connection, from: u64, to: u64) -> Result<(u64, u64), StoreError> {
    let low = integer_at(
        audit,
        "SELECT MIN(first_seq) FROM checkpoints WHERE first_seq <= ?1 AND last_seq >= ?1",
        from,
    )?;
    let high = integer_at(
        audit,
        "SELECT MAX(last_seq) FROM checkpoints WHERE first_seq <= ?1 AND last_seq >= ?1",
        to,
    )?;
    Ok((low.unwrap_or(from), high.unwrap_or(to)))
}

/// A checkpoint's columns, read leniently (see `cols.wrong` afterwards).
pub fn checkpoint_columns(cols: &mut Columns<'_, '_>) -> Checkpoint {
    let hash = |bytes: Vec<u8>| -> Hash { bytes.try_into().unwrap_or([0u8; 32]) };
    Checkpoint {
        first_seq: cols.integer(0, "first_seq") as u64,
        last_seq: cols.integer(1, "last_seq") as u64,
        ts_ms: cols.integer(2, "ts_ms"),
        root: hash(cols.blob(3, "root")),
        previous: hash(cols.blob(4, "previous")),
        signature: cols.text(5, "signature"),
    }
}

/// The checkpoint ending at record `last_seq`, if the log has one.
pub fn checkpoint_at(audit: &Connection, last_seq: u64) -> Result<Option<Checkpoint>, StoreError> {
    Ok(audit
        .query_row(
            "SELECT first_seq, last_seq, ts_ms, root, previous, signature FROM checkpoints
             WHERE last_seq = ?1",
            [last_seq as i64],
            |r| Ok(checkpoint_columns(&mut Columns::new(r))),
        )
        .optional()?)
}

/// The checkpoints overlapping `from..=to`, oldest first, each with its mistyped columns.
fn checkpoints_in(
    audit: &Connection,
    from: u64,
    to: u64,
) -> Result<Vec<(Checkpoint, Vec<String>)>, StoreError> {
    let mut stmt = audit.prepare(
        "SELECT first_seq, last_seq, ts_ms, root, previous, signature FROM checkpoints
         WHERE last_seq >= ?1 AND first_seq <= ?2 ORDER BY last_seq",
    )?;
    let rows = stmt.query_map(rusqlite::params![from as i64, to as i64], |r| {
        let mut cols = Columns::new(r);
        let checkpoint = checkpoint_columns(&mut cols);
        Ok((checkpoint, cols.wrong))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Verifies records `from..=to` (all when `None`; widened to whole checkpoints) against
/// the chain key and the public key (raw Ed25519). The anchors and data keys are held
/// against the log when the range runs to its end (`to` is `None`). The anchors are read
/// first and the log then in one snapshot, so a gateway appending meanwhile does not make
/// it look cut.
pub fn verify(
    audit: &Connection,
    state: &Connection,
    key: &hmac::Key,
    public_key: &[u8],
    from: Option<u64>,
    to: Option<u64>,
) -> Result<Report, StoreError> {
    let anchors = Anchors::read(state)?;
    // A caller's own read transaction is a snapshot already.
    let snapshot = audit
        .is_autocommit()
        .then(|| audit.unchecked_transaction())
        .transpose()?;
    let report = verify_snapshot(audit, &anchors, key, public_key, from, to)?;
    if let Some(snapshot) = snapshot {
        snapshot.rollback()?;
    }
    Ok(report)
}

fn verify_snapshot(
    audit: &Connection,
    anchors: &Anchors,
    key: &hmac::Key,
    public_key: &[u8],
    from: Option<u64>,
    to: Option<u64>,
) -> Result<Report, StoreError> {
    let whole_log = to.is_none();
    let (from, to) = whole_checkpoints(
        audit,
        from.unwrap_or(1).max(1),
        to.unwrap_or(i64::MAX as u64),
    )?;
    let previous = match from {
        0 | 1 => None,
        _ => audit
            .query_row(
                "SELECT mac FROM records WHERE seq = ?1",
                [(from - 1) as i64],
                |r| Ok(Columns::new(r).optional_blob(0, "mac")),
            )
            .optional()?
            .flatten(),
    };
    let absences = Absences::read(audit, key)?;
    let mut pass = ChainPass::new(
        key,
        &absences,
        from,
        previous.unwrap_or_else(|| vec![0u8; 32]),
    );
    let mut stmt = audit.prepare(
        "SELECT seq, ts_ms, kind, tenant_id, session_id, request_id, body, mac,
                request_payload, response_payload FROM records
         WHERE seq >= ?1 AND seq <= ?2 ORDER BY seq",
    )?;
    let rows = stmt.query_map(rusqlite::params![from as i64, to as i64], Row::read)?;
    pass.run(rows)?;
    let ChainPass {
        mut report,
        leaves,
        previous,
        chain_broken,
        keys_used,
        ..
    } = pass;
    // What the signed checkpoints say comes before what the anchors say: a checkpoint
    // still covering cut records is the stronger evidence.
    let checkpoints = checkpoints_in(audit, from, to)?;
    check_checkpoints(audit, &checkpoints, &leaves, public_key, &mut report)?;
    if whole_log {
        let end = LogEnd {
            records: report.records,
            last_seq: report.last_seq.unwrap_or(0),
            last_mac: &previous,
            chain_whole: !chain_broken,
        };
        report.findings.extend(anchors.check(audit, key, &end)?);
        report
            .findings
            .extend(absences::check_data_keys(audit, &absences, &keys_used)?);
        report.newest_checkpoint = newest_checkpoint(audit)?;
    }
    Ok(report)
}

/// The walk along the chain: each record against the one before it.
struct ChainPass<'a> {
    key: &'a hmac::Key,
    absences: &'a Absences,
    report: Report,
    leaves: Vec<(u64, Hash)>,
    /// The MAC the next record must chain to.
    previous: Vec<u8>,
    expected: u64,
    chain_broken: bool,
    /// Data keys records name, with the first record naming each.
    keys_used: HashMap<String, u64>,
}

impl<'a> ChainPass<'a> {
    fn new(key: &'a hmac::Key, absences: &'a Absences, from: u64, previous: Vec<u8>) -> Self {
        Self {
            key,
            absences,
            report: Report::default(),
            leaves: Vec::new(),
            previous,
            expected: from,
            chain_broken: false,
            keys_used: HashMap::new(),
        }
    }

    fn run(&mut self, rows: impl Iterator<Item = rusqlite::Result<Row>>) -> Result<(), StoreError> {
        let mut rows = rows;
        // Two records of lookahead, to tell an insertion or a swap from an alteration.
        let mut window: VecDeque<Row> = VecDeque::new();
        loop {
            while window.len() < 3 {
                match rows.next() {
                    Some(row) => window.push_back(row?),
                    None => break,
                }
            }
            let Some(row) = window.pop_front() else {
                return Ok(());
            };
            self.take(&row, window.front());
        }
    }

    fn take(&mut self, row: &Row, next: Option<&Row>) {
        self.report.records += 1;
        self.report.first_seq.get_or_insert(row.seq);
        self.report.last_seq = Some(row.seq);
        self.leaves
            .push((row.seq, merkle::leaf(&row.mac, row.body.as_bytes())));
        if let Some(record) = &row.record
            && let Some(id) = &record.payload_key
        {
            self.keys_used.entry(id.clone()).or_insert(row.seq);
        }
        if self.chain_broken {
            return;
        }
        let seq = row.seq;
        let finding = if seq != self.expected {
            Some(Finding::new(
                Problem::Deleted,
                self.expected,
                format!(
                    "records {}..{} are missing",
                    self.expected,
                    seq.saturating_sub(1)
                ),
            ))
        } else if !row.mistyped.is_empty() {
            Some(Finding::new(
                Problem::Altered,
                seq,
                format!("record {seq} was altered: {}", row.mistyped.join(", ")),
            ))
        } else if chains(self.key, &self.previous, row) {
            row.mismatch().map(|what| {
                Finding::new(
                    Problem::Altered,
                    seq,
                    format!("record {seq} was altered: {what}"),
                )
            })
        } else {
            Some(classify(self.key, &self.previous, row, next))
        };
        if let Some(finding) = finding {
            self.report.findings.push(finding);
            self.chain_broken = true;
            return;
        }
        self.previous = row.mac.clone();
        self.expected = seq + 1;
        let absent = row.absent_payloads();
        if let Some(record) = row.record.as_ref().filter(|_| !absent.is_empty())
            && !self.absences.payload_explained(record)
        {
            self.report.findings.push(Finding::new(
                Problem::PayloadMissing,
                seq,
                format!(
                    "the stored {} payload of record {seq} is gone without an erasure or \
                     retention record explaining it",
                    absent.join(" and ")
                ),
            ));
        }
    }
}

/// Names what happened at the first record that does not chain.
fn classify(key: &hmac::Key, previous: &[u8], row: &Row, next: Option<&Row>) -> Finding {
    let seq = row.seq;
    if let Some(next) = next {
        if chains(key, previous, next) && chains(key, &next.mac, row) {
            return Finding::new(
                Problem::Reordered,
                seq,
                format!("records {seq} and {} were swapped", next.seq),
            );
        }
        if chains(key, previous, next) {
            return Finding::new(
                Problem::Inserted,
                seq,
                format!(
                    "record {seq} is not part of the chain; the next one follows the one before it"
                ),
            );
        }
    }
    if let Some(claimed) = row.record.as_ref().map(|r| r.seq).filter(|c| *c > seq) {
        return Finding::new(
            Problem::Deleted,
            seq,
            format!(
                "records from {seq} were removed and the rest renumbered (this one is record {claimed})"
            ),
        );
    }
    Finding::new(
        Problem::Altered,
        seq,
        format!("record {seq} does not match its MAC"),
    )
}

/// The log's newest checkpoint.
fn newest_checkpoint(audit: &Connection) -> Result<Option<CheckpointSummary>, StoreError> {
    let newest = audit
        .query_row(
            "SELECT first_seq, last_seq, ts_ms, root, previous, signature FROM checkpoints
             ORDER BY last_seq DESC LIMIT 1",
            [],
            |r| Ok(checkpoint_columns(&mut Columns::new(r))),
        )
        .optional()?;
    Ok(newest.map(|c| CheckpointSummary {
        first_seq: c.first_seq,
        last_seq: c.last_seq,
        hash: hex(&c.hash()),
    }))
}

/// Every checkpoint: its columns, signature, link to the one before (the first one
/// starting the log, or following the checkpoint before the range), and root over the
/// records it covers — all of which must be there.
fn check_checkpoints(
    audit: &Connection,
    checkpoints: &[(Checkpoint, Vec<String>)],
    leaves: &[(u64, Hash)],
    public_key: &[u8],
    report: &mut Report,
) -> Result<(), StoreError> {
    let mut previous: Option<Checkpoint> = match checkpoints.first() {
        Some((first, _)) if first.first_seq > 1 => {
            let before = checkpoint_at(audit, first.first_seq - 1)?;
            if before.is_none() {
                report.findings.push(Finding::new(
                    Problem::CheckpointMissing,
                    first.first_seq - 1,
                    format!(
                        "no checkpoint ends at record {}, though checkpoint {}..{} follows \
                         one: checkpoints were deleted",
                        first.first_seq - 1,
                        first.first_seq,
                        first.last_seq
                    ),
                ));
            }
            before
        }
        _ => None,
    };
    let last_record = report.last_seq.unwrap_or(0);
    for (checkpoint, mistyped) in checkpoints {
        report.checkpoints += 1;
        let (first, seq) = (checkpoint.first_seq, checkpoint.last_seq);
        if !mistyped.is_empty() {
            report.findings.push(Finding::new(
                Problem::Altered,
                seq,
                format!("checkpoint ..{seq} was altered: {}", mistyped.join(", ")),
            ));
        }
        if !checkpoint.signature_valid(public_key) {
            report.findings.push(Finding::new(
                Problem::CheckpointSignature,
                seq,
                format!("checkpoint {first}..{seq}: the signature does not verify"),
            ));
        }
        report.findings.extend(link(previous.as_ref(), checkpoint));
        report
            .findings
            .extend(coverage(checkpoint, leaves, last_record));
        previous = Some(checkpoint.clone());
    }
    Ok(())
}

/// How `checkpoint` fails to follow `before` (the log's start when `None`).
fn link(before: Option<&Checkpoint>, checkpoint: &Checkpoint) -> Option<Finding> {
    let (first, seq) = (checkpoint.first_seq, checkpoint.last_seq);
    let (expected_first, expected_previous) =
        before.map_or((1, [0u8; 32]), |b| (b.last_seq + 1, b.hash()));
    if first > expected_first && before.is_some() {
        return Some(Finding::new(
            Problem::CheckpointMissing,
            expected_first,
            format!(
                "records {expected_first}..{} are under no checkpoint, though later ones are: \
                 a checkpoint was deleted",
                first - 1
            ),
        ));
    }
    // The first checkpoint of the log must start it; a later first one was reported
    // with the checkpoint missing before it.
    if first == expected_first && checkpoint.previous != expected_previous {
        return Some(Finding::new(
            Problem::CheckpointChain,
            seq,
            format!("checkpoint {first}..{seq} does not name the checkpoint before it"),
        ));
    }
    if first < expected_first {
        return Some(Finding::new(
            Problem::CheckpointChain,
            seq,
            format!("checkpoint {first}..{seq} overlaps the checkpoint before it"),
        ));
    }
    None
}

/// Whether the records `checkpoint` covers are all there and match its root.
fn coverage(checkpoint: &Checkpoint, leaves: &[(u64, Hash)], last_record: u64) -> Option<Finding> {
    let (first, seq) = (checkpoint.first_seq, checkpoint.last_seq);
    // Leaves come in sequence order: the checkpoint's are one slice of them.
    let start = leaves.partition_point(|(s, _)| *s < first);
    let end = leaves.partition_point(|(s, _)| *s <= seq);
    let covered: Vec<Hash> = leaves[start..end].iter().map(|(_, leaf)| *leaf).collect();
    let expected = (seq + 1).saturating_sub(first);
    if covered.len() as u64 == expected {
        return (merkle::root(&covered) != checkpoint.root).then(|| {
            Finding::new(
                Problem::CheckpointRoot,
                seq,
                format!("checkpoint {first}..{seq}: the records no longer match its root"),
            )
        });
    }
    let missing = expected.saturating_sub(covered.len() as u64);
    Some(if seq > last_record {
        let from = (last_record + 1).max(first);
        Finding::new(
            Problem::Truncated,
            from,
            format!(
                "records {from}..{seq}, signed for by checkpoint {first}..{seq}, were cut from \
                 the end of the log"
            ),
        )
    } else {
        Finding::new(
            Problem::Deleted,
            first,
            format!("checkpoint {first}..{seq} covers {missing} records that are missing"),
        )
    })
}

/// The chain key and the public key of an instance, for [`verify`].
pub fn instance_keys(instance: &crate::store::instance_key::InstanceKey) -> (hmac::Key, Vec<u8>) {
    (
        chain_key(instance),
        unhex(&instance.public_key_hex()).unwrap_or_default(),
    )
}
