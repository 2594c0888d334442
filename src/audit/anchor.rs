//! The audit log's anchors in the state database, kept apart from `audit.db`: the head
//! (the last record and the last checkpoint the log reached, moved forward as it grows)
//! and the genesis (the first record, written once). Each is HMAC-tagged with the chain
//! key. A log cut after its last checkpoint, stripped of its checkpoints, or removed
//! whole, no longer agrees with them — unless whoever cut it also rewrote the anchors
//! with the chain key, which only a witness off the box catches (`witness`).

use super::columns::Columns;
use super::merkle::Hash;
use super::verify::{Finding, Problem, checkpoint_at};
use crate::store::StoreError;
use ring::hmac;
use rusqlite::{Connection, OptionalExtension, params};

/// Where the log ended when last anchored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub seq: u64,
    /// The last record's MAC.
    pub mac: Vec<u8>,
    /// The last checkpoint then (its last record and hash); `None` in a head written
    /// before heads named checkpoints; `(0, zeros)` before the first checkpoint.
    pub checkpoint: Option<(u64, Hash)>,
}

impl Head {
    /// The tag stored beside the head.
    pub fn tag(&self, key: &hmac::Key) -> Vec<u8> {
        let mut context = hmac::Context::with_key(key);
        match &self.checkpoint {
            // Heads written before they named checkpoints.
            None => context.update(b"head"),
            Some(_) => context.update(b"head v2"),
        }
        context.update(&self.seq.to_be_bytes());
        context.update(&self.mac);
        if let Some((seq, hash)) = &self.checkpoint {
            context.update(&seq.to_be_bytes());
            context.update(hash);
        }
        context.sign().as_ref().to_vec()
    }
}

/// The log's first record, anchored once when it is written: proof that the instance
/// has a log, which removing `audit.db` and the head does not remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Genesis {
    pub ts_ms: i64,
    /// Record 1's MAC.
    pub mac: Vec<u8>,
}

impl Genesis {
    pub fn tag(&self, key: &hmac::Key) -> Vec<u8> {
        let mut context = hmac::Context::with_key(key);
        context.update(b"genesis");
        context.update(&self.ts_ms.to_be_bytes());
        context.update(&self.mac);
        context.sign().as_ref().to_vec()
    }

    /// Record 1 of `audit`, if there is one.
    pub fn of_log(audit: &Connection) -> Result<Option<Self>, StoreError> {
        Ok(audit
            .query_row("SELECT ts_ms, mac FROM records WHERE seq = 1", [], |r| {
                Ok(Self {
                    ts_ms: r.get(0)?,
                    mac: r.get(1)?,
                })
            })
            .optional()?)
    }

    /// Whether the state database holds a genesis anchor.
    pub fn anchored(state: &Connection) -> Result<bool, StoreError> {
        Ok(state
            .query_row("SELECT 1 FROM audit_genesis WHERE id = 1", [], |_| Ok(()))
            .optional()?
            .is_some())
    }
}

/// Records `head` (never moving the stored head back: another process may have
/// anchored a later one) and, when given, the genesis (kept if one is there already),
/// in one transaction.
pub fn write(
    state: &Connection,
    key: &hmac::Key,
    head: &Head,
    genesis: Option<&Genesis>,
) -> Result<(), StoreError> {
    let tx = state.unchecked_transaction()?;
    if let Some(genesis) = genesis {
        tx.execute(
            "INSERT OR IGNORE INTO audit_genesis (id, ts_ms, mac, tag) VALUES (1, ?1, ?2, ?3)",
            params![genesis.ts_ms, genesis.mac, genesis.tag(key)],
        )?;
    }
    let (checkpoint_seq, checkpoint_hash) = head.checkpoint.unwrap_or((0, [0u8; 32]));
    tx.execute(
        "INSERT INTO audit_head (id, seq, mac, tag, checkpoint_seq, checkpoint_hash)
         VALUES (1, ?1, ?2, ?3, ?4, ?5)
         ON CONFLICT(id) DO UPDATE SET seq = excluded.seq, mac = excluded.mac,
             tag = excluded.tag, checkpoint_seq = excluded.checkpoint_seq,
             checkpoint_hash = excluded.checkpoint_hash
         WHERE excluded.seq > audit_head.seq
            OR (excluded.seq = audit_head.seq
                AND excluded.checkpoint_seq > COALESCE(audit_head.checkpoint_seq, -1))",
        params![
            head.seq as i64,
            head.mac,
            head.tag(key),
            checkpoint_seq as i64,
            checkpoint_hash.as_slice()
        ],
    )?;
    tx.commit()?;
    Ok(())
}

/// An anchor as read back: its value and stored tag, or the columns found mistyped.
type Read<T> = Result<(T, Vec<u8>), Vec<String>>;

fn read_head(state: &Connection) -> Result<Option<Read<Head>>, StoreError> {
    Ok(state
        .query_row(
            "SELECT seq, mac, tag, checkpoint_seq, checkpoint_hash FROM audit_head WHERE id = 1",
            [],
            |r| {
                let mut cols = Columns::new(r);
                let seq = cols.integer(0, "seq") as u64;
                let mac = cols.blob(1, "mac");
                let tag = cols.blob(2, "tag");
                let checkpoint_seq = cols.optional_integer(3, "checkpoint_seq");
                let checkpoint_hash = cols.optional_blob(4, "checkpoint_hash");
                let checkpoint = checkpoint_seq.map(|seq| {
                    let hash = checkpoint_hash
                        .and_then(|h| Hash::try_from(h.as_slice()).ok())
                        .unwrap_or_default();
                    (seq as u64, hash)
                });
                Ok(if cols.wrong.is_empty() {
                    Ok((
                        Head {
                            seq,
                            mac,
                            checkpoint,
                        },
                        tag,
                    ))
                } else {
                    Err(cols.wrong)
                })
            },
        )
        .optional()?)
}

fn read_genesis(state: &Connection) -> Result<Option<Read<Genesis>>, StoreError> {
    Ok(state
        .query_row(
            "SELECT ts_ms, mac, tag FROM audit_genesis WHERE id = 1",
            [],
            |r| {
                let mut cols = Columns::new(r);
                let ts_ms = cols.integer(0, "ts_ms");
                let mac = cols.blob(1, "mac");
                let tag = cols.blob(2, "tag");
                Ok(if cols.wrong.is_empty() {
                    Ok((Genesis { ts_ms, mac }, tag))
                } else {
                    Err(cols.wrong)
                })
            },
        )
        .optional()?)
}

/// Where the verified log ends, to hold against the anchors.
pub struct LogEnd<'a> {
    /// Records verified (0: the log is empty).
    pub records: u64,
    pub last_seq: u64,
    pub last_mac: &'a [u8],
    /// Whether the chain verified to the end (the head is compared only then).
    pub chain_whole: bool,
}

/// The anchors as read from the state database. Read before the log: an anchor is
/// written only after what it names is committed, so one read first names nothing a
/// later read of the log lacks (a gateway may be appending meanwhile).
pub struct Anchors {
    head: Option<Read<Head>>,
    genesis: Option<Read<Genesis>>,
}

impl Anchors {
    pub fn read(state: &Connection) -> Result<Self, StoreError> {
        Ok(Self {
            head: read_head(state)?,
            genesis: read_genesis(state)?,
        })
    }

    /// What the anchors say against the log: it was begun but is empty or another log
    /// (genesis), the head is gone while records exist, or the log ends before the head
    /// or lacks the checkpoint the head names.
    pub fn check(
        &self,
        audit: &Connection,
        key: &hmac::Key,
        end: &LogEnd<'_>,
    ) -> Result<Vec<Finding>, StoreError> {
        check(audit, key, end, &self.head, &self.genesis)
    }
}

fn check(
    audit: &Connection,
    key: &hmac::Key,
    end: &LogEnd<'_>,
    head: &Option<Read<Head>>,
    genesis: &Option<Read<Genesis>>,
) -> Result<Vec<Finding>, StoreError> {
    let mut findings = Vec::new();
    match genesis {
        None => {}
        Some(Err(wrong)) => findings.push(Finding::new(
            Problem::Altered,
            1,
            format!("the genesis anchor was altered: {}", wrong.join(", ")),
        )),
        Some(Ok((genesis, tag))) => findings.extend(check_genesis(audit, key, end, genesis, tag)?),
    }
    match head {
        None if end.records > 0 || genesis.is_some() => findings.push(Finding::new(
            Problem::HeadMissing,
            end.last_seq + 1,
            format!(
                "the head anchor is missing from the state database, though {}: records after \
                 the last checkpoint may have been cut",
                if end.records > 0 {
                    format!("the log holds {} records", end.records)
                } else {
                    "the genesis anchor says the log was begun".to_string()
                }
            ),
        )),
        None => {}
        Some(Err(wrong)) => findings.push(Finding::new(
            Problem::Altered,
            end.last_seq,
            format!("the head anchor was altered: {}", wrong.join(", ")),
        )),
        Some(Ok((head, tag))) => findings.extend(check_head(audit, key, end, head, tag)?),
    }
    Ok(findings)
}

fn check_genesis(
    audit: &Connection,
    key: &hmac::Key,
    end: &LogEnd<'_>,
    genesis: &Genesis,
    tag: &[u8],
) -> Result<Option<Finding>, StoreError> {
    if genesis.tag(key) != tag {
        return Ok(Some(Finding::new(
            Problem::Altered,
            1,
            "the genesis anchor in the state database was altered".into(),
        )));
    }
    let first: Option<Option<Vec<u8>>> = audit
        .query_row("SELECT mac FROM records WHERE seq = 1", [], |r| {
            Ok(Columns::new(r).optional_blob(0, "mac"))
        })
        .optional()?;
    let begun = humantime::format_rfc3339_millis(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(genesis.ts_ms.max(0) as u64),
    );
    Ok(match first {
        None if end.records == 0 => Some(Finding::new(
            Problem::Wiped,
            1,
            format!(
                "the log was begun at {begun} (its first record is anchored in the state \
                 database) but holds no records: it was removed or emptied"
            ),
        )),
        // Record 1 missing among others: the chain names the deletion.
        None => None,
        Some(mac) if mac.as_deref() != Some(genesis.mac.as_slice()) => Some(Finding::new(
            Problem::Replaced,
            1,
            format!(
                "record 1 is not the first record anchored when the log was begun at {begun}: \
                 the log was replaced"
            ),
        )),
        Some(_) => None,
    })
}

fn check_head(
    audit: &Connection,
    key: &hmac::Key,
    end: &LogEnd<'_>,
    head: &Head,
    tag: &[u8],
) -> Result<Vec<Finding>, StoreError> {
    let seq = head.seq;
    if head.tag(key) != tag {
        return Ok(vec![Finding::new(
            Problem::Altered,
            seq,
            "the head anchor in the state database was altered".into(),
        )]);
    }
    let mut findings = Vec::new();
    let last = end.last_seq;
    if !end.chain_whole {
        // The chain's own finding says where the log went bad.
    } else if seq > last {
        findings.push(Finding::new(
            Problem::Truncated,
            last + 1,
            format!(
                "records {}..{seq} were cut from the end of the log",
                last + 1
            ),
        ));
    } else if seq == last && head.mac != end.last_mac {
        findings.push(Finding::new(
            Problem::Altered,
            seq,
            "the last record differs from the one the head anchor recorded".into(),
        ));
    }
    if let Some((checkpoint_seq, hash)) = head.checkpoint.filter(|(seq, _)| *seq > 0) {
        match checkpoint_at(audit, checkpoint_seq)? {
            None => findings.push(Finding::new(
                Problem::CheckpointMissing,
                checkpoint_seq,
                format!(
                    "the head anchor names checkpoint ..{checkpoint_seq}, which the log no \
                     longer holds: checkpoints were deleted"
                ),
            )),
            Some(found) if found.hash() != hash => findings.push(Finding::new(
                Problem::Altered,
                checkpoint_seq,
                format!("checkpoint ..{checkpoint_seq} is not the one the head anchor names"),
            )),
            Some(_) => {}
        }
    }
    Ok(findings)
}
