//! One record taken out of the log with what proves it: its exact stored body and MAC,
//! the Merkle inclusion proof up to the root of the checkpoint that covers it, that
//! checkpoint (signed) and the instance public key; and the check of such a file on
//! another machine, without the database.

use super::checks::{CheckReport, trusted_key_hex};
use super::log::{Checkpoint, checkpoint_row};
use super::merkle::{self, Hash, Step};
use super::record::AuditRecord;
use crate::store::StoreError;
use crate::store::instance_key::{hex, unhex};
use rusqlite::{Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

/// The `format` of every record proof this version writes.
pub const FORMAT: &str = "airlock audit record proof v1";

/// A record with its inclusion proof and checkpoint (the file `export-record` writes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordProof {
    pub format: String,
    pub airlock_version: String,
    /// The record's canonical encoding exactly as stored (the leaf covers these bytes).
    pub body: String,
    /// The record's chain MAC (hex), part of its leaf.
    pub mac: String,
    /// The record's position among the checkpoint's records (its seq − `first_seq`).
    pub leaf_index: u64,
    /// Sibling hashes from the record's leaf up to the checkpoint's root.
    pub proof: Vec<Step>,
    pub checkpoint: Checkpoint,
    /// The instance's Ed25519 public key (hex), as the exporting instance states it.
    pub public_key: String,
}

/// Why a record proof cannot be exported.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("there is no record {seq} (the log holds records 1..={last})")]
    NoRecord { seq: u64, last: u64 },
    /// The record is after the last checkpoint: no signed root covers it yet.
    #[error(
        "record {seq} is not yet under a signed checkpoint ({}); wait for the next checkpoint and export it then",
        covered_so_far(*covered)
    )]
    NotCheckpointed { seq: u64, covered: u64 },
    #[error("{0}")]
    Inconsistent(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn covered_so_far(covered: u64) -> String {
    if covered == 0 {
        "none has been signed yet".into()
    } else {
        format!("the last one covers records up to {covered}")
    }
}

impl From<rusqlite::Error> for ExportError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Store(e.into())
    }
}

/// The proof of record `seq` in the log `audit`; `public_key` is the instance's (hex).
pub fn export(audit: &Connection, seq: u64, public_key: &str) -> Result<RecordProof, ExportError> {
    let stored: Option<(String, Vec<u8>)> = audit
        .query_row(
            "SELECT body, mac FROM records WHERE seq = ?1",
            [seq as i64],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((body, mac)) = stored else {
        let last: i64 = audit.query_row("SELECT COALESCE(MAX(seq), 0) FROM records", [], |r| {
            r.get(0)
        })?;
        return Err(ExportError::NoRecord {
            seq,
            last: last as u64,
        });
    };
    let checkpoint = audit
        .query_row(
            "SELECT first_seq, last_seq, ts_ms, root, previous, signature FROM checkpoints
             WHERE first_seq <= ?1 AND last_seq >= ?1 ORDER BY last_seq LIMIT 1",
            [seq as i64],
            checkpoint_row,
        )
        .optional()?;
    let Some(checkpoint) = checkpoint else {
        let covered: i64 = audit.query_row(
            "SELECT COALESCE(MAX(last_seq), 0) FROM checkpoints",
            [],
            |r| r.get(0),
        )?;
        return Err(ExportError::NotCheckpointed {
            seq,
            covered: covered as u64,
        });
    };
    let leaves = checkpoint_leaves(audit, &checkpoint)?;
    let index = seq - checkpoint.first_seq;
    let proof = merkle::proof(&leaves, index as usize);
    if merkle::root_from_proof(merkle::leaf(&mac, body.as_bytes()), &proof) != checkpoint.root {
        return Err(ExportError::Inconsistent(format!(
            "the records of checkpoint {}..{} no longer match its signed root, so no proof can be made; run `airlock audit verify`",
            checkpoint.first_seq, checkpoint.last_seq
        )));
    }
    Ok(RecordProof {
        format: FORMAT.into(),
        airlock_version: env!("CARGO_PKG_VERSION").into(),
        body,
        mac: hex(&mac),
        leaf_index: index,
        proof,
        checkpoint,
        public_key: public_key.into(),
    })
}

/// The Merkle leaves of every record `checkpoint` covers, in order.
fn checkpoint_leaves(
    audit: &Connection,
    checkpoint: &Checkpoint,
) -> Result<Vec<Hash>, ExportError> {
    let (first, last) = (checkpoint.first_seq, checkpoint.last_seq);
    let mut stmt = audit
        .prepare("SELECT seq, body, mac FROM records WHERE seq >= ?1 AND seq <= ?2 ORDER BY seq")?;
    let rows = stmt.query_map([first as i64, last as i64], |r| {
        Ok((
            r.get::<_, i64>(0)? as u64,
            r.get::<_, String>(1)?,
            r.get::<_, Vec<u8>>(2)?,
        ))
    })?;
    let mut leaves = Vec::new();
    for row in rows {
        let (seq, body, mac) = row?;
        if seq != first + leaves.len() as u64 {
            break;
        }
        leaves.push(merkle::leaf(&mac, body.as_bytes()));
    }
    if leaves.len() as u64 != last - first + 1 {
        return Err(ExportError::Inconsistent(format!(
            "checkpoint {first}..{last}: the log no longer holds all its records, so no proof can be made; run `airlock audit verify`"
        )));
    }
    Ok(leaves)
}

/// What checking a record proof found, and the record it carries (when its body parses).
#[derive(Debug, Default, Serialize)]
pub struct ProofCheck {
    pub report: CheckReport,
    pub record: Option<AuditRecord>,
    pub checkpoint: Option<Checkpoint>,
}

/// Checks a record proof file offline; `given_key` is the instance public key (hex) as
/// obtained apart from the file (authoritative over the one the file carries).
pub fn check(file: &[u8], given_key: Option<&str>) -> ProofCheck {
    let mut out = ProofCheck::default();
    let report = &mut out.report;
    let proof = match serde_json::from_slice::<RecordProof>(file) {
        Ok(proof) => proof,
        Err(e) => {
            let format = serde_json::from_slice::<serde_json::Value>(file)
                .ok()
                .and_then(|v| v.get("format")?.as_str().map(str::to_string));
            match format {
                Some(format) if format != FORMAT => {
                    report.fail(format!("unknown format {format:?} (expected {FORMAT:?})"))
                }
                _ => report.fail(format!("the file is not a record proof: {e}")),
            }
            return out;
        }
    };
    if proof.format != FORMAT {
        report.fail(format!(
            "unknown format {:?} (expected {FORMAT:?})",
            proof.format
        ));
        return out;
    }
    out.record = check_body(&proof, report);
    check_root(&proof, report);
    check_signature(&proof, given_key, report);
    out.checkpoint = Some(proof.checkpoint);
    out
}

/// The body is an audit record naming the sequence number its place in the checkpoint
/// gives it.
fn check_body(proof: &RecordProof, report: &mut CheckReport) -> Option<AuditRecord> {
    let (first, last) = (proof.checkpoint.first_seq, proof.checkpoint.last_seq);
    let record = match serde_json::from_str::<AuditRecord>(&proof.body) {
        Ok(record) => record,
        Err(e) => {
            report.fail(format!(
                "the record body does not parse as an audit record ({e}): it was altered"
            ));
            return None;
        }
    };
    let placed = first.checked_add(proof.leaf_index);
    if first > last {
        report.fail(format!(
            "checkpoint {first}..{last}: its range is empty (malformed checkpoint)"
        ));
    } else if record.seq < first || record.seq > last {
        report.fail(format!(
            "record {} is outside checkpoint {first}..{last}",
            record.seq
        ));
    } else if placed != Some(record.seq) {
        report.fail(format!(
            "record {} is not at leaf index {} of checkpoint {first}..{last} (that is record {})",
            record.seq,
            proof.leaf_index,
            placed.map_or_else(|| "none".into(), |s| s.to_string())
        ));
    } else {
        report.pass(format!(
            "the body is audit record {}, leaf {} of checkpoint {first}..{last}",
            record.seq, proof.leaf_index
        ));
    }
    Some(record)
}

/// The record's leaf and the proof lead to the checkpoint's root.
fn check_root(proof: &RecordProof, report: &mut CheckReport) {
    let checkpoint = &proof.checkpoint;
    let (first, last) = (checkpoint.first_seq, checkpoint.last_seq);
    let Some(mac) = unhex(&proof.mac).filter(|m| m.len() == 32) else {
        return report.fail("the record's MAC is not 32 bytes of hex");
    };
    let size = last.saturating_sub(first).saturating_add(1);
    let sides: Vec<bool> = proof.proof.iter().map(|s| s.left).collect();
    if first > last
        || proof.leaf_index >= size
        || sides != merkle::proof_shape(size as usize, proof.leaf_index as usize)
    {
        return report.fail(format!(
            "the inclusion proof ({} steps) does not fit leaf {} of checkpoint {first}..{last}'s tree: the proof was altered",
            proof.proof.len(),
            proof.leaf_index
        ));
    }
    let leaf = merkle::leaf(&mac, proof.body.as_bytes());
    if merkle::root_from_proof(leaf, &proof.proof) == checkpoint.root {
        report.pass(format!(
            "the record's leaf and its {}-step inclusion proof lead to the root of checkpoint {first}..{last}",
            proof.proof.len()
        ));
    } else {
        report.fail(format!(
            "Merkle root mismatch: the record and its inclusion proof do not lead to the root of checkpoint {first}..{last} (the body, its MAC or a proof step was altered)"
        ));
    }
}

/// The checkpoint is signed by the trusted key.
fn check_signature(proof: &RecordProof, given_key: Option<&str>, report: &mut CheckReport) {
    let checkpoint = &proof.checkpoint;
    let (first, last) = (checkpoint.first_seq, checkpoint.last_seq);
    let key_hex = trusted_key_hex(&proof.public_key, given_key, "file", report);
    let Some(key) = unhex(&key_hex).filter(|k| k.len() == 32) else {
        return report.fail(format!("the public key {key_hex:?} is not 32 bytes of hex"));
    };
    let whose = if given_key.is_some() {
        "the key given with --public-key"
    } else {
        "the key in the file"
    };
    if checkpoint.signature_valid(&key) {
        return report.pass(format!(
            "checkpoint {first}..{last}: the signature verifies with {whose}"
        ));
    }
    let by_embedded = given_key.is_some()
        && unhex(proof.public_key.trim())
            .filter(|k| k.len() == 32)
            .is_some_and(|k| checkpoint.signature_valid(&k));
    if by_embedded {
        report.fail(format!(
            "checkpoint {first}..{last}: the signature does not verify with {whose}; it was made with the key in the file, so the record comes from another instance or the file was re-signed"
        ));
    } else {
        report.fail(format!(
            "checkpoint {first}..{last}: the signature does not verify with {whose} (signature or checkpoint altered)"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{Ed25519KeyPair, KeyPair};

    /// Checkpoint over `n` made-up records, signed by `signer`; the proof of record `seq`.
    fn proof_of(signer: &Ed25519KeyPair, n: u64, seq: u64) -> RecordProof {
        let first = 11;
        let bodies: Vec<String> = (first..first + n)
            .map(|s| format!("{{\"v\":1,\"seq\":{s},\"ts_ms\":5,\"kind\":\"llm.request\"}}"))
            .collect();
        let macs: Vec<[u8; 32]> = (0..n).map(|i| [i as u8 + 1; 32]).collect();
        let leaves: Vec<Hash> = bodies
            .iter()
            .zip(&macs)
            .map(|(b, m)| merkle::leaf(m, b.as_bytes()))
            .collect();
        let mut checkpoint = Checkpoint {
            first_seq: first,
            last_seq: first + n - 1,
            ts_ms: 7,
            root: merkle::root(&leaves),
            previous: [3u8; 32],
            signature: String::new(),
        };
        checkpoint.signature = hex(signer.sign(checkpoint.statement().as_bytes()).as_ref());
        let index = (seq - first) as usize;
        RecordProof {
            format: FORMAT.into(),
            airlock_version: "test".into(),
            body: bodies[index].clone(),
            mac: hex(&macs[index]),
            leaf_index: index as u64,
            proof: merkle::proof(&leaves, index),
            checkpoint,
            public_key: hex(signer.public_key().as_ref()),
        }
    }

    fn signer() -> Ed25519KeyPair {
        let instance = crate::store::instance_key::InstanceKey::generate().unwrap();
        Ed25519KeyPair::from_pkcs8(&instance.signing_key_pkcs8).unwrap()
    }

    fn failures(proof: &RecordProof, key: Option<&str>) -> Vec<String> {
        let checked = check(&serde_json::to_vec(proof).unwrap(), key);
        checked.report.failures().map(|c| c.what.clone()).collect()
    }

    #[test]
    fn every_record_of_every_size_verifies() {
        let signer = signer();
        let key = hex(signer.public_key().as_ref());
        for n in 1..=9 {
            for seq in 11..11 + n {
                let proof = proof_of(&signer, n, seq);
                let checked = check(&serde_json::to_vec(&proof).unwrap(), Some(&key));
                assert!(checked.report.ok(), "n={n} seq={seq}: {:?}", checked.report);
                assert_eq!(checked.record.unwrap().seq, seq);
            }
        }
    }

    #[test]
    fn tampering_is_named() {
        let signer = signer();
        let key = hex(signer.public_key().as_ref());
        let good = proof_of(&signer, 6, 13);
        let has = |found: Vec<String>, text: &str| {
            assert!(
                found.iter().any(|f| f.contains(text)),
                "{text:?} not in {found:?}"
            );
        };

        let mut body = good.clone();
        body.body = body.body.replace("llm.request", "llm.requesT");
        has(failures(&body, Some(&key)), "Merkle root mismatch");

        let mut sibling = good.clone();
        sibling.proof[1].sibling[0] ^= 1;
        has(failures(&sibling, Some(&key)), "Merkle root mismatch");

        let mut side = good.clone();
        side.proof[0].left = !side.proof[0].left;
        has(failures(&side, Some(&key)), "the proof was altered");

        let mut moved = good.clone();
        moved.leaf_index = 3;
        has(failures(&moved, Some(&key)), "is not at leaf index 3");

        let mut signature = good.clone();
        signature.checkpoint.signature = hex(&[0u8; 64]);
        has(
            failures(&signature, Some(&key)),
            "the signature does not verify",
        );

        let mut root = good.clone();
        root.checkpoint.root = [9u8; 32];
        let found = failures(&root, Some(&key));
        has(found.clone(), "the signature does not verify");
        has(found, "Merkle root mismatch");

        let other = signer_key();
        let found = failures(&good, Some(&other));
        has(found.clone(), "is not the one given with --public-key");
        has(found, "the record comes from another instance");

        // Without a key given: checked against the file's own, with a warning.
        let checked = check(&serde_json::to_vec(&good).unwrap(), None);
        assert!(checked.report.ok());
        assert!(checked.report.warnings[0].contains("no --public-key given"));
    }

    fn signer_key() -> String {
        hex(signer().public_key().as_ref())
    }

    #[test]
    fn malformed_files_are_refused_without_panicking() {
        let signer = signer();
        let good = serde_json::to_value(proof_of(&signer, 3, 12)).unwrap();
        let mut wrong_format = good.clone();
        wrong_format["format"] = "something else".into();
        let mut no_proof = good.clone();
        no_proof.as_object_mut().unwrap().remove("proof");
        let mut far = good.clone();
        far["leaf_index"] = u64::MAX.into();
        let mut outside = good.clone();
        outside["checkpoint"]["first_seq"] = 13.into();
        let mut reversed = good.clone();
        reversed["checkpoint"]["last_seq"] = 0.into();
        for (file, text) in [
            (b"not json".to_vec(), "not a record proof"),
            (b"{}".to_vec(), "not a record proof"),
            (serde_json::to_vec(&wrong_format).unwrap(), "unknown format"),
            (
                serde_json::to_vec(&no_proof).unwrap(),
                "missing field `proof`",
            ),
            (serde_json::to_vec(&far).unwrap(), "is not at leaf index"),
            (serde_json::to_vec(&outside).unwrap(), "outside checkpoint"),
            (
                serde_json::to_vec(&reversed).unwrap(),
                "malformed checkpoint",
            ),
        ] {
            let checked = check(&file, None);
            assert!(!checked.report.ok());
            let found: Vec<&String> = checked.report.failures().map(|c| &c.what).collect();
            assert!(
                found.iter().any(|f| f.contains(text)),
                "{text:?} not in {found:?}"
            );
        }
    }
}
