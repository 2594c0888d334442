//! Offline verification of the audit log: the MAC chain record by record (naming the
//! first bad record and how it went bad: altered, deleted, inserted, reordered), every
//! checkpoint's Merkle root, signature and link to the one before, and the head anchor
//! (records cut after the last checkpoint).

use super::keys::{self, chain_key, record_mac};
use super::log::{Checkpoint, checkpoint_row, head_tag};
use super::merkle::{self, Hash};
use super::record::AuditRecord;
use crate::store::StoreError;
use crate::store::instance_key::unhex;
use ring::hmac;
use rusqlite::{Connection, OptionalExtension};
use std::collections::VecDeque;

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
}

/// One thing found wrong.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    pub problem: Problem,
    /// The record (or checkpoint's last record) it concerns.
    pub seq: u64,
    pub detail: String,
}

/// What verification found.
#[derive(Debug, Default, serde::Serialize)]
pub struct Report {
    pub records: u64,
    pub checkpoints: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.findings.is_empty()
    }
}

/// One stored record, as read back: the indexed columns beside the body.
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
}

impl Row {
    /// The sequence number the record's body claims.
    fn claimed_seq(&self) -> Option<u64> {
        serde_json::from_str::<AuditRecord>(&self.body)
            .ok()
            .map(|r| r.seq)
    }

    /// Whether the indexed columns say what the body says, and the stored payloads are
    /// the ones it names (an erased payload is absent, not different).
    fn columns_match(&self) -> bool {
        let payload_matches = |stored: &Option<Vec<u8>>, named: &Option<String>| match stored {
            None => true,
            Some(sealed) => named.as_deref() == Some(keys::payload_digest(sealed).as_str()),
        };
        serde_json::from_str::<AuditRecord>(&self.body).is_ok_and(|r| {
            r.seq == self.seq
                && r.ts_ms == self.ts_ms
                && r.kind == self.kind
                && r.tenant_id == self.tenant_id
                && r.session_id == self.session_id
                && r.request_id == self.request_id
                && payload_matches(&self.request_payload, &r.request_payload_sha256)
                && payload_matches(&self.response_payload, &r.response_payload_sha256)
        })
    }
}

fn chains(key: &hmac::Key, previous: &[u8], row: &Row) -> bool {
    record_mac(key, previous, row.body.as_bytes()).as_slice() == row.mac.as_slice()
}

/// `from..=to` widened to the whole checkpoints it cuts into, since a checkpoint's
/// root can be checked only with all its records.
fn whole_checkpoints(audit: &Connection, from: u64, to: u64) -> Result<(u64, u64), StoreError> {
    let widened = |sql: &str, seq: u64| -> Result<u64, StoreError> {
        let edge: Option<i64> = audit.query_row(sql, [seq as i64], |r| r.get(0))?;
        Ok(edge.map_or(seq, |edge| edge as u64))
    };
    Ok((
        widened(
            "SELECT MIN(first_seq) FROM checkpoints WHERE first_seq <= ?1 AND last_seq >= ?1",
            from,
        )?,
        widened(
            "SELECT MAX(last_seq) FROM checkpoints WHERE first_seq <= ?1 AND last_seq >= ?1",
            to,
        )?,
    ))
}

/// Verifies records `from..=to` (all when `None`; widened to whole checkpoints) against the chain key and the public key
/// (hex Ed25519).
pub fn verify(
    audit: &Connection,
    state: &Connection,
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
    let mut report = Report::default();
    let mut previous: Vec<u8> = if from > 1 {
        audit
            .query_row(
                "SELECT mac FROM records WHERE seq = ?1",
                [(from - 1) as i64],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or_else(|| vec![0u8; 32])
    } else {
        vec![0u8; 32]
    };
    let checkpoints: Vec<Checkpoint> = audit
        .prepare(
            "SELECT first_seq, last_seq, ts_ms, root, previous, signature FROM checkpoints
             WHERE last_seq >= ?1 AND first_seq <= ?2 ORDER BY last_seq",
        )?
        .query_map(rusqlite::params![from as i64, to as i64], checkpoint_row)?
        .collect::<Result<_, _>>()?;
    let mut stmt = audit.prepare(
        "SELECT seq, ts_ms, kind, tenant_id, session_id, request_id, body, mac,
                request_payload, response_payload FROM records
         WHERE seq >= ?1 AND seq <= ?2 ORDER BY seq",
    )?;
    let mut rows = stmt.query_map(rusqlite::params![from as i64, to as i64], |r| {
        Ok(Row {
            seq: r.get::<_, i64>(0)? as u64,
            ts_ms: r.get(1)?,
            kind: r.get(2)?,
            tenant_id: r.get(3)?,
            session_id: r.get(4)?,
            request_id: r.get(5)?,
            body: r.get(6)?,
            mac: r.get(7)?,
            request_payload: r.get(8)?,
            response_payload: r.get(9)?,
        })
    })?;
    // Two records of lookahead, to tell an insertion or a swap from an alteration.
    let mut window: VecDeque<Row> = VecDeque::new();
    let mut leaves: Vec<(u64, Hash)> = Vec::new();
    let mut expected = from;
    let mut chain_broken = false;
    loop {
        while window.len() < 3 {
            match rows.next() {
                Some(row) => window.push_back(row?),
                None => break,
            }
        }
        let Some(row) = window.pop_front() else {
            break;
        };
        report.records += 1;
        report.first_seq.get_or_insert(row.seq);
        report.last_seq = Some(row.seq);
        leaves.push((row.seq, merkle::leaf(&row.mac, row.body.as_bytes())));
        if chain_broken {
            continue;
        }
        let next = window.front();
        let finding = if row.seq != expected {
            Some(Finding {
                problem: Problem::Deleted,
                seq: expected,
                detail: format!(
                    "records {expected}..{} are missing",
                    row.seq.saturating_sub(1)
                ),
            })
        } else if chains(key, &previous, &row) && row.columns_match() {
            None
        } else {
            Some(classify(key, &previous, &row, next))
        };
        match finding {
            Some(finding) => {
                report.findings.push(finding);
                chain_broken = true;
            }
            None => {
                previous = row.mac.clone();
                expected = row.seq + 1;
            }
        }
    }
    if !chain_broken && whole_log {
        let head = check_head(state, key, &report, &previous);
        report.findings.extend(head);
    }
    check_checkpoints(&checkpoints, &leaves, public_key, &mut report);
    Ok(report)
}

/// Names what happened at the first record that does not chain.
fn classify(key: &hmac::Key, previous: &[u8], row: &Row, next: Option<&Row>) -> Finding {
    let seq = row.seq;
    if let Some(next) = next {
        if chains(key, previous, next) && chains(key, &next.mac, row) {
            return Finding {
                problem: Problem::Reordered,
                seq,
                detail: format!("records {seq} and {} were swapped", next.seq),
            };
        }
        if chains(key, previous, next) {
            return Finding {
                problem: Problem::Inserted,
                seq,
                detail: format!(
                    "record {seq} is not part of the chain; the next one follows the one before it"
                ),
            };
        }
    }
    if let Some(claimed) = row.claimed_seq().filter(|claimed| *claimed > seq) {
        return Finding {
            problem: Problem::Deleted,
            seq,
            detail: format!(
                "records from {seq} were removed and the rest renumbered (this one is record {claimed})"
            ),
        };
    }
    Finding {
        problem: Problem::Altered,
        seq,
        detail: format!("record {seq} does not match its MAC"),
    }
}

/// The head anchor says how far the log went: fewer records means it was cut.
fn check_head(
    state: &Connection,
    key: &hmac::Key,
    report: &Report,
    last_mac: &[u8],
) -> Vec<Finding> {
    let head: Option<(u64, Vec<u8>, Vec<u8>)> = state
        .query_row(
            "SELECT seq, mac, tag FROM audit_head WHERE id = 1",
            [],
            |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .ok()
        .flatten();
    let Some((seq, mac, tag)) = head else {
        return Vec::new();
    };
    let last = report.last_seq.unwrap_or(0);
    if head_tag(key, seq, &mac) != tag {
        return vec![Finding {
            problem: Problem::Altered,
            seq,
            detail: "the head anchor in the state database was altered".into(),
        }];
    }
    if seq > last {
        return vec![Finding {
            problem: Problem::Truncated,
            seq: last + 1,
            detail: format!(
                "records {}..{seq} were cut from the end of the log",
                last + 1
            ),
        }];
    }
    if seq == last && mac != last_mac {
        return vec![Finding {
            problem: Problem::Altered,
            seq,
            detail: "the last record differs from the one the head anchor recorded".into(),
        }];
    }
    Vec::new()
}

/// Every checkpoint: its root over the records it covers, its signature, its link.
fn check_checkpoints(
    checkpoints: &[Checkpoint],
    leaves: &[(u64, Hash)],
    public_key: &[u8],
    report: &mut Report,
) {
    let mut previous: Option<&Checkpoint> = None;
    for checkpoint in checkpoints {
        report.checkpoints += 1;
        let seq = checkpoint.last_seq;
        if !checkpoint.signature_valid(public_key) {
            report.findings.push(Finding {
                problem: Problem::CheckpointSignature,
                seq,
                detail: format!(
                    "checkpoint {}..{seq}: the signature does not verify",
                    checkpoint.first_seq
                ),
            });
        }
        if let Some(before) = previous
            && checkpoint.previous != before.hash()
        {
            report.findings.push(Finding {
                problem: Problem::CheckpointChain,
                seq,
                detail: format!(
                    "checkpoint {}..{seq} does not name the checkpoint before it",
                    checkpoint.first_seq
                ),
            });
        }
        // Leaves come in sequence order: the checkpoint's are one slice of them.
        let start = leaves.partition_point(|(s, _)| *s < checkpoint.first_seq);
        let end = leaves.partition_point(|(s, _)| *s <= seq);
        let covered: Vec<Hash> = leaves[start..end].iter().map(|(_, leaf)| *leaf).collect();
        let whole = covered.len() as u64 == seq - checkpoint.first_seq + 1;
        if whole && merkle::root(&covered) != checkpoint.root || !whole && !covered.is_empty() {
            report.findings.push(Finding {
                problem: Problem::CheckpointRoot,
                seq,
                detail: format!(
                    "checkpoint {}..{seq}: the records no longer match its root",
                    checkpoint.first_seq
                ),
            });
        }
        previous = Some(checkpoint);
    }
}

/// The chain key and the public key of an instance, for [`verify`].
pub fn instance_keys(instance: &crate::store::instance_key::InstanceKey) -> (hmac::Key, Vec<u8>) {
    (
        chain_key(instance),
        unhex(&instance.public_key_hex()).unwrap_or_default(),
    )
}
