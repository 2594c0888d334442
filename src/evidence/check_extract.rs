//! Re-verifying a package's audit extract offline: each record names its own sequence
//! number without gaps, each checkpoint's signature verifies, its Merkle root is
//! recomputed from the extract's records, and each checkpoint links to the one before.

use super::check::CheckReport;
use super::extract::{ExtractInfo, StoredRecord, parse_records};
use super::{Files, path};
use crate::audit::log::Checkpoint;
use crate::audit::merkle::{self, Hash};
use crate::store::instance_key::unhex;

/// Checks the records and checkpoints of the package with the public key `key`.
pub(super) fn check_audit_extract(files: &Files, key: &[u8], report: &mut CheckReport) {
    let records = match files.get(path::RECORDS).map(|b| parse_records(b)) {
        Some(Ok(records)) => records,
        Some(Err(e)) => return report.fail(format!("{}: {e}", path::RECORDS)),
        None => return report.fail(format!("{}: missing", path::RECORDS)),
    };
    let checkpoints: Vec<Checkpoint> = match files
        .get(path::CHECKPOINTS)
        .map(|b| serde_json::from_slice(b))
    {
        Some(Ok(checkpoints)) => checkpoints,
        Some(Err(e)) => return report.fail(format!("{}: {e}", path::CHECKPOINTS)),
        None => return report.fail(format!("{}: missing", path::CHECKPOINTS)),
    };
    let Some(leaves) = check_records(&records, report) else {
        return;
    };
    check_checkpoints(&checkpoints, &leaves, key, report);
    check_extract_info(files, &records, &checkpoints, report);
}

/// Each record's body claims its own sequence number, the numbers run without gaps, the
/// MACs are 32 bytes; the Merkle leaves by sequence number.
fn check_records(records: &[StoredRecord], report: &mut CheckReport) -> Option<Vec<(u64, Hash)>> {
    let mut leaves = Vec::with_capacity(records.len());
    let mut problems = 0;
    for (i, record) in records.iter().enumerate() {
        if i > 0 && record.seq != records[i - 1].seq + 1 {
            report.fail(format!(
                "{}: record {} follows record {} (gap or disorder)",
                path::RECORDS,
                record.seq,
                records[i - 1].seq
            ));
            problems += 1;
        }
        let claimed = serde_json::from_str::<serde_json::Value>(&record.body)
            .ok()
            .and_then(|v| v.get("seq").and_then(serde_json::Value::as_u64));
        if claimed != Some(record.seq) {
            report.fail(format!(
                "{}: record {}'s body does not name sequence number {}",
                path::RECORDS,
                record.seq,
                record.seq
            ));
            problems += 1;
        }
        let Some(mac) = unhex(&record.mac).filter(|m| m.len() == 32) else {
            report.fail(format!(
                "{}: record {}'s MAC is not 32 bytes of hex",
                path::RECORDS,
                record.seq
            ));
            problems += 1;
            continue;
        };
        leaves.push((record.seq, merkle::leaf(&mac, record.body.as_bytes())));
    }
    if problems > 0 {
        return None;
    }
    report.pass(format!(
        "{}: {} records, numbered without gaps, each naming its own sequence number",
        path::RECORDS,
        records.len()
    ));
    Some(leaves)
}

fn check_checkpoints(
    checkpoints: &[Checkpoint],
    leaves: &[(u64, Hash)],
    key: &[u8],
    report: &mut CheckReport,
) {
    let mut previous: Option<&Checkpoint> = None;
    let mut problems = 0;
    for checkpoint in checkpoints {
        let (first, last) = (checkpoint.first_seq, checkpoint.last_seq);
        if !checkpoint.signature_valid(key) {
            report.fail(format!(
                "checkpoint {first}..{last}: the signature does not verify"
            ));
            problems += 1;
        }
        if let Some(before) = previous {
            if first != before.last_seq + 1 {
                report.fail(format!(
                    "checkpoint {first}..{last} does not follow checkpoint {}..{} (a checkpoint is missing or out of order)",
                    before.first_seq, before.last_seq
                ));
                problems += 1;
            } else if checkpoint.previous != before.hash() {
                report.fail(format!(
                    "checkpoint {first}..{last} does not name checkpoint {}..{} as its previous one",
                    before.first_seq, before.last_seq
                ));
                problems += 1;
            }
        }
        let start = leaves.partition_point(|(s, _)| *s < first);
        let end = leaves.partition_point(|(s, _)| *s <= last);
        let covered: Vec<Hash> = leaves[start..end].iter().map(|(_, leaf)| *leaf).collect();
        if (covered.len() as u64) != last.saturating_sub(first) + 1 {
            report.fail(format!(
                "checkpoint {first}..{last}: the extract holds {} of its {} records, so its root cannot be recomputed",
                covered.len(),
                last.saturating_sub(first) + 1
            ));
            problems += 1;
        } else if merkle::root(&covered) != checkpoint.root {
            report.fail(format!(
                "checkpoint {first}..{last}: the Merkle root of the extract's records differs from the signed root (records altered)"
            ));
            problems += 1;
        }
        previous = Some(checkpoint);
    }
    if problems == 0 {
        report.pass(format!(
            "{} checkpoint(s): signatures verify, Merkle roots recomputed from the records match, each links to the one before",
            checkpoints.len()
        ));
    }
    let covered_from = checkpoints.first().map_or(u64::MAX, |c| c.first_seq);
    let covered_to = checkpoints.last().map_or(0, |c| c.last_seq);
    let before = leaves.iter().filter(|(s, _)| *s < covered_from).count();
    let after = leaves.iter().filter(|(s, _)| *s > covered_to).count();
    if before > 0 && !checkpoints.is_empty() {
        report.fail(format!(
            "{before} records precede the first checkpoint of the extract and are covered by none"
        ));
    }
    if after > 0 {
        report.warnings.push(format!(
            "{after} records after the last checkpoint are not yet covered by a signed \
             checkpoint: only the instance (MAC chain) could check them"
        ));
    }
}

/// `audit/extract.json` describes the records and checkpoints actually present.
fn check_extract_info(
    files: &Files,
    records: &[StoredRecord],
    checkpoints: &[Checkpoint],
    report: &mut CheckReport,
) {
    let info = files
        .get(path::EXTRACT)
        .and_then(|b| serde_json::from_slice::<ExtractInfo>(b).ok());
    let Some(info) = info else {
        return report.fail(format!("{}: unreadable", path::EXTRACT));
    };
    let consistent = info.records == records.len() as u64
        && info.first_seq == records.first().map(|r| r.seq)
        && info.last_seq == records.last().map(|r| r.seq)
        && info.checkpoints == checkpoints.len() as u64;
    if consistent {
        report.pass(format!(
            "{}: window {} .. {}, {} records in it; extract spans records {}..{}",
            path::EXTRACT,
            info.from,
            info.to,
            info.window_records,
            info.first_seq.unwrap_or(0),
            info.last_seq.unwrap_or(0)
        ));
    } else {
        report.fail(format!(
            "{}: does not describe the records and checkpoints present",
            path::EXTRACT
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::instance_key::{InstanceKey, hex};
    use ring::signature::{Ed25519KeyPair, KeyPair};

    /// Records 1..=4 under two signed, linked checkpoints (1..2, 3..4).
    fn extract(signer: &Ed25519KeyPair) -> (Vec<StoredRecord>, Vec<Checkpoint>) {
        let records: Vec<StoredRecord> = (1..=4u64)
            .map(|seq| StoredRecord {
                seq,
                mac: hex(&[seq as u8; 32]),
                body: format!("{{\"v\":1,\"seq\":{seq}}}"),
            })
            .collect();
        let leaf = |r: &StoredRecord| merkle::leaf(&unhex(&r.mac).unwrap(), r.body.as_bytes());
        let mut checkpoints: Vec<Checkpoint> = Vec::new();
        for range in [&records[0..2], &records[2..4]] {
            let mut checkpoint = Checkpoint {
                first_seq: range[0].seq,
                last_seq: range[1].seq,
                ts_ms: 0,
                root: merkle::root(&range.iter().map(leaf).collect::<Vec<_>>()),
                previous: checkpoints.last().map_or([0u8; 32], Checkpoint::hash),
                signature: String::new(),
            };
            sign(&mut checkpoint, signer);
            checkpoints.push(checkpoint);
        }
        (records, checkpoints)
    }

    fn sign(checkpoint: &mut Checkpoint, signer: &Ed25519KeyPair) {
        checkpoint.signature = hex(signer.sign(checkpoint.statement().as_bytes()).as_ref());
    }

    fn failures(records: &[StoredRecord], checkpoints: &[Checkpoint], key: &[u8]) -> Vec<String> {
        let mut files = Files::new();
        files.insert(
            path::RECORDS.into(),
            super::super::extract::records_file(records).unwrap(),
        );
        files.insert(
            path::CHECKPOINTS.into(),
            serde_json::to_vec(checkpoints).unwrap(),
        );
        let mut report = CheckReport::default();
        check_audit_extract(&files, key, &mut report);
        report.failures().map(|c| c.what.clone()).collect()
    }

    #[test]
    fn checkpoint_signatures_roots_and_links_are_checked() {
        let instance = InstanceKey::generate().unwrap();
        let signer = Ed25519KeyPair::from_pkcs8(&instance.signing_key_pkcs8).unwrap();
        let key = signer.public_key().as_ref().to_vec();
        let (records, checkpoints) = extract(&signer);
        // Only the extract.json check fails: the test gives it none.
        let ok = failures(&records, &checkpoints, &key);
        assert_eq!(ok.len(), 1, "{ok:?}");
        assert!(ok[0].contains("extract.json"));

        let mut relinked = checkpoints.clone();
        relinked[1].previous = [7u8; 32];
        sign(&mut relinked[1], &signer);
        let found = failures(&records, &relinked, &key);
        assert!(
            found
                .iter()
                .any(|f| f.contains("does not name checkpoint 1..2")),
            "{found:?}"
        );

        let found = failures(&records, &checkpoints[1..], &key);
        assert!(
            found.iter().any(|f| f.contains("2 records precede")),
            "{found:?}"
        );

        let mut forged = checkpoints.clone();
        forged[0].root = [1u8; 32];
        let found = failures(&records, &forged, &key);
        assert!(
            found
                .iter()
                .any(|f| f.contains("checkpoint 1..2: the signature")),
            "{found:?}"
        );

        let mut swapped = records.clone();
        swapped.swap(1, 2);
        let found = failures(&swapped, &checkpoints, &key);
        assert!(
            found.iter().any(|f| f.contains("gap or disorder")),
            "{found:?}"
        );

        let mut short = records.clone();
        short.pop();
        let found = failures(&short, &checkpoints, &key);
        assert!(
            found.iter().any(|f| f.contains("holds 1 of its 2 records")),
            "{found:?}"
        );
    }
}
