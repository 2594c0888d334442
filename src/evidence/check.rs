//! Verifying a package offline, with no database: the manifest signature (against the
//! embedded key and, when given, a key obtained independently), every file's digest, no
//! file missing or added, the instance's own report; then the audit extract itself
//! (`check_extract`).

use super::check_extract::check_audit_extract;
use super::manifest::{self, FORMAT, Manifest};
use super::{Files, path, sha256_hex};
use crate::audit::checks::trusted_key_hex;
pub use crate::audit::checks::{Check, CheckReport};
use crate::store::instance_key::unhex;
use std::collections::BTreeSet;

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
    let key_hex = trusted_key_hex(&manifest.public_key, trusted_key, "package", report);
    if trusted_key.is_some() {
        if manifest::signature_valid(manifest_bytes, signature, &key_hex) {
            report.pass("manifest signature verifies with the key given with --public-key");
        } else {
            report.fail("manifest signature does not verify with the key given with --public-key");
        }
    }
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
