//! Verifying a package offline, with no database: the manifest signature (against the
//! embedded key and, when given, a key obtained independently), every file's digest, no
//! file missing or added, and the audit extract itself: each checkpoint's signature, its
//! Merkle root recomputed from the extract's records, and the links between checkpoints.

use super::extract::{ExtractInfo, StoredRecord, parse_records};
use super::manifest::{self, FORMAT, Manifest};
use super::{Files, path, sha256_hex};
use crate::audit::log::Checkpoint;
use crate::audit::merkle::{self, Hash};
use crate::store::instance_key::unhex;
use ring::signature::{ED25519, UnparsedPublicKey};
use std::collections::BTreeSet;

/// One thing checked.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Check {
    pub ok: bool,
    pub what: String,
}

/// What checking a package found.
#[derive(Debug, Default, serde::Serialize)]
pub struct CheckReport {
    pub checks: Vec<Check>,
    /// Not failures, but limits of what could be checked.
    pub warnings: Vec<String>,
}

impl CheckReport {
    pub fn ok(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.ok)
    }

    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| !c.ok)
    }

    fn pass(&mut self, what: impl Into<String>) {
        self.push(true, what);
    }

    fn fail(&mut self, what: impl Into<String>) {
        self.push(false, what);
    }

    fn push(&mut self, ok: bool, what: impl Into<String>) {
        self.checks.push(Check {
            ok,
            what: what.into(),
        });
    }
}

/// Checks the files of a package; `trusted_key` is the instance public key (hex) as
/// obtained apart from the package.
pub fn check(files: &Files, trusted_key: Option<&str>) -> CheckReport {
    let mut report = CheckReport::default();
    let Some(manifest) = read_manifest(files, &mut report) else {
        return report;
    };
    let key = check_signature(files, &manifest, trusted_key, &mut report);
    check_files(files, &manifest, &mut report);
    check_public_key_file(files, &manifest, &mut report);
    if let Some(key) = key {
        check_audit_extract(files, &key, &mut report);
    }
    check_instance_report(files, &mut report);
    report
}

fn read_manifest(files: &Files, report: &mut CheckReport) -> Option<Manifest> {
    let Some(bytes) = files.get(path::MANIFEST) else {
        report.fail(format!(
            "{} is missing: nothing can be checked",
            path::MANIFEST
        ));
        return None;
    };
    match serde_json::from_slice::<Manifest>(bytes) {
        Ok(manifest) if manifest.format == FORMAT => Some(manifest),
        Ok(manifest) => {
            report.fail(format!(
                "{}: unknown format {:?} (expected {FORMAT:?})",
                path::MANIFEST,
                manifest.format
            ));
            None
        }
        Err(e) => {
            report.fail(format!("{} does not parse: {e}", path::MANIFEST));
            None
        }
    }
}

/// Checks the manifest signature; the key to check the rest with (the trusted one when
/// given), if the manifest's key is usable at all.
fn check_signature(
    files: &Files,
    manifest: &Manifest,
    trusted_key: Option<&str>,
    report: &mut CheckReport,
) -> Option<Vec<u8>> {
    let manifest_bytes = files.get(path::MANIFEST).map_or(&[][..], Vec::as_slice);
    let signature = files.get(path::SIGNATURE).map_or(&[][..], Vec::as_slice);
    if !files.contains_key(path::SIGNATURE) {
        report.fail(format!("{} is missing", path::SIGNATURE));
    } else if manifest::signature_valid(manifest_bytes, signature, &manifest.public_key) {
        report.pass(format!(
            "manifest signature verifies with the key in the package ({})",
            manifest.public_key
        ));
    } else {
        report.fail(format!(
            "manifest signature does not verify with the key in the package ({})",
            manifest.public_key
        ));
    }
    let key_hex = match trusted_key {
        Some(trusted) => {
            let trusted = trusted.trim().to_ascii_lowercase();
            if trusted == manifest.public_key.to_ascii_lowercase() {
                report.pass("the package's public key is the one given with --public-key");
            } else {
                report.fail(format!(
                    "the package's public key ({}) is not the one given with --public-key ({trusted})",
                    manifest.public_key
                ));
            }
            if manifest::signature_valid(manifest_bytes, signature, &trusted) {
                report.pass("manifest signature verifies with the key given with --public-key");
            } else {
                report.fail(
                    "manifest signature does not verify with the key given with --public-key",
                );
            }
            trusted
        }
        None => {
            report.warnings.push(
                "no --public-key given: the package was checked only against the key it \
                 carries, which proves it is self-consistent, not who made it. Compare \
                 that key with one obtained independently (`airlock audit public-key` on \
                 the instance)."
                    .into(),
            );
            manifest.public_key.clone()
        }
    };
    let key = unhex(&key_hex).filter(|k| k.len() == 32);
    if key.is_none() {
        report.fail(format!("the public key {key_hex:?} is not 32 bytes of hex"));
    }
    key
}

fn check_files(files: &Files, manifest: &Manifest, report: &mut CheckReport) {
    let mut listed = BTreeSet::new();
    let mut bad = 0;
    for entry in &manifest.files {
        if !listed.insert(entry.path.as_str()) {
            report.fail(format!("{}: listed twice in the manifest", entry.path));
            bad += 1;
            continue;
        }
        match files.get(&entry.path) {
            None => {
                report.fail(format!("{}: missing from the package", entry.path));
                bad += 1;
            }
            Some(bytes) if sha256_hex(bytes) != entry.sha256 => {
                report.fail(format!(
                    "{}: SHA-256 differs from the manifest (altered)",
                    entry.path
                ));
                bad += 1;
            }
            Some(bytes) if bytes.len() as u64 != entry.bytes => {
                report.fail(format!("{}: size differs from the manifest", entry.path));
                bad += 1;
            }
            Some(_) => {}
        }
    }
    for name in files.keys() {
        if name != path::MANIFEST && name != path::SIGNATURE && !listed.contains(name.as_str()) {
            report.fail(format!(
                "{name}: in the package but not in the manifest (added)"
            ));
            bad += 1;
        }
    }
    for required in path::LISTED {
        if !listed.contains(required) {
            report.fail(format!("{required}: not listed in the manifest"));
            bad += 1;
        }
    }
    if bad == 0 {
        report.pass(format!(
            "all {} files match their SHA-256 in the manifest; none missing, none added",
            manifest.files.len()
        ));
    }
}

fn check_public_key_file(files: &Files, manifest: &Manifest, report: &mut CheckReport) {
    let in_file = files
        .get(path::PUBLIC_KEY)
        .and_then(|b| std::str::from_utf8(b).ok())
        .map(|s| s.trim().to_ascii_lowercase());
    if in_file.as_deref() == Some(manifest.public_key.to_ascii_lowercase().as_str()) {
        report.pass(format!("{} matches the manifest's key", path::PUBLIC_KEY));
    } else {
        report.fail(format!(
            "{} differs from the manifest's key",
            path::PUBLIC_KEY
        ));
    }
}

/// The instance's own report must say the extract verified when it was made.
fn check_instance_report(files: &Files, report: &mut CheckReport) {
    let parsed = files
        .get(path::VERIFICATION)
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok());
    match parsed
        .as_ref()
        .and_then(|v| v.get("ok"))
        .and_then(|v| v.as_bool())
    {
        Some(true) => report.pass(format!(
            "{}: the instance verified the extract (MAC chain included) when exporting",
            path::VERIFICATION
        )),
        Some(false) => {
            let findings = parsed
                .as_ref()
                .and_then(|v| v.pointer("/report/findings"))
                .map_or_else(String::new, |f| f.to_string());
            report.fail(format!(
                "{}: the instance found problems in the audit log when exporting: {findings}",
                path::VERIFICATION
            ));
        }
        None => report.fail(format!("{}: unreadable", path::VERIFICATION)),
    }
}

fn check_audit_extract(files: &Files, key: &[u8], report: &mut CheckReport) {
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
    let verifier = UnparsedPublicKey::new(&ED25519, key);
    let mut previous: Option<&Checkpoint> = None;
    let mut problems = 0;
    for checkpoint in checkpoints {
        let (first, last) = (checkpoint.first_seq, checkpoint.last_seq);
        let signature = unhex(&checkpoint.signature).unwrap_or_default();
        if verifier
            .verify(checkpoint.statement().as_bytes(), &signature)
            .is_err()
        {
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
