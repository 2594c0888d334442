//! The audit extract of a time window: the stored records (body text and MAC, exactly as
//! stored) from the window's first to its last record, widened to whole checkpoints so
//! every checkpoint in the package can be checked against its records, and the
//! checkpoints themselves.

use super::EvidenceError;
use crate::audit::log::{Checkpoint, checkpoint_row};
use crate::store::instance_key::hex;
use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};

/// One record as stored: its sequence number, MAC (hex) and canonical body text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredRecord {
    pub seq: u64,
    pub mac: String,
    pub body: String,
}

/// Where the extract sits in the log (`audit/extract.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExtractInfo {
    /// The requested window (RFC 3339, inclusive) and the same in milliseconds.
    pub from: String,
    pub to: String,
    pub from_ms: i64,
    pub to_ms: i64,
    /// Records whose time falls in the window.
    pub window_records: u64,
    pub window_first_seq: Option<u64>,
    pub window_last_seq: Option<u64>,
    /// The records in the package: the window's span widened to whole checkpoints.
    pub records: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    pub checkpoints: u64,
    /// Records of the extract no checkpoint covers yet (after the last one); they are
    /// checked by the MAC chain on the instance but cannot be checked offline.
    pub uncovered_records: u64,
    pub note: String,
}

/// The audit extract.
#[derive(Debug, Clone)]
pub struct Extract {
    pub info: ExtractInfo,
    pub records: Vec<StoredRecord>,
    pub checkpoints: Vec<Checkpoint>,
}

const NOTE: &str = "records.jsonl holds one JSON object per line: seq, mac (hex HMAC-SHA256 \
chaining the record to the one before) and body (the record's canonical encoding, exactly as \
stored). The span runs from the window's first to its last record, widened to whole \
checkpoints, so it may hold records just outside the window. A checkpoint's Merkle root is \
over leaves SHA-256(0x00 || mac || body), inner nodes SHA-256(0x01 || left || right), an odd \
node promoted; its signature (Ed25519, audit/public_key.txt) is over the statement \
`airlock audit checkpoint v1` with first, last, root, previous and ts_ms, one per line.";

/// Reads the extract of the window `from_ms..=to_ms` (milliseconds since the epoch).
pub fn read(
    audit: &Connection,
    from: &str,
    to: &str,
    from_ms: i64,
    to_ms: i64,
) -> Result<Extract, EvidenceError> {
    // One read transaction: records and checkpoints from the same moment, even while the
    // gateway appends.
    let tx = audit.unchecked_transaction()?;
    let (count, low, high): (i64, Option<i64>, Option<i64>) = tx.query_row(
        "SELECT COUNT(*), MIN(seq), MAX(seq) FROM records WHERE ts_ms >= ?1 AND ts_ms <= ?2",
        params![from_ms, to_ms],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let mut info = ExtractInfo {
        from: from.to_string(),
        to: to.to_string(),
        from_ms,
        to_ms,
        window_records: count as u64,
        window_first_seq: low.map(|s| s as u64),
        window_last_seq: high.map(|s| s as u64),
        records: 0,
        first_seq: None,
        last_seq: None,
        checkpoints: 0,
        uncovered_records: 0,
        note: NOTE.to_string(),
    };
    let (Some(low), Some(high)) = (low, high) else {
        return Ok(Extract {
            info,
            records: Vec::new(),
            checkpoints: Vec::new(),
        });
    };
    let checkpoints: Vec<Checkpoint> = tx
        .prepare(
            "SELECT first_seq, last_seq, ts_ms, root, previous, signature FROM checkpoints
             WHERE last_seq >= ?1 AND first_seq <= ?2 ORDER BY last_seq",
        )?
        .query_map(params![low, high], checkpoint_row)?
        .collect::<Result<_, _>>()?;
    let first = checkpoints
        .first()
        .map_or(low, |c| low.min(c.first_seq as i64));
    let last = checkpoints
        .last()
        .map_or(high, |c| high.max(c.last_seq as i64));
    let records: Vec<StoredRecord> = tx
        .prepare("SELECT seq, mac, body FROM records WHERE seq >= ?1 AND seq <= ?2 ORDER BY seq")?
        .query_map(params![first, last], |r| {
            Ok(StoredRecord {
                seq: r.get::<_, i64>(0)? as u64,
                mac: hex(&r.get::<_, Vec<u8>>(1)?),
                body: r.get(2)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    drop(tx);
    let covered_to = checkpoints.last().map_or(0, |c| c.last_seq);
    info.records = records.len() as u64;
    info.first_seq = records.first().map(|r| r.seq);
    info.last_seq = records.last().map(|r| r.seq);
    info.checkpoints = checkpoints.len() as u64;
    info.uncovered_records = records.iter().filter(|r| r.seq > covered_to).count() as u64;
    Ok(Extract {
        info,
        records,
        checkpoints,
    })
}

/// `records.jsonl`: one stored record per line.
pub fn records_file(records: &[StoredRecord]) -> Result<Vec<u8>, EvidenceError> {
    let mut out = Vec::new();
    for record in records {
        serde_json::to_writer(&mut out, record)?;
        out.push(b'\n');
    }
    Ok(out)
}

/// Reads `records.jsonl` back; names the line that does not parse.
pub fn parse_records(bytes: &[u8]) -> Result<Vec<StoredRecord>, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.is_empty())
        .map(|(i, line)| serde_json::from_str(line).map_err(|e| format!("line {}: {e}", i + 1)))
        .collect()
}
