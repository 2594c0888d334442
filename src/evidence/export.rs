//! Building a package: every file gathered from the audit and state databases and the
//! configuration, the manifest signed, the archive written.

use super::extract::{self, Extract};
use super::manifest::{self, Manifest};
use super::{EvidenceError, Files, Framework, controls, inventory, json_file, path, redact, stats};
use crate::audit::verify::{Report, instance_keys, verify};
use crate::store::instance_key::InstanceKey;
use rusqlite::Connection;
use serde::Serialize;
use std::path::Path;

/// What to export.
#[derive(Debug, Clone)]
pub struct Request {
    pub framework: Framework,
    /// The window, RFC 3339 as given, and in milliseconds since the epoch (inclusive).
    pub from: String,
    pub to: String,
    pub from_ms: i64,
    pub to_ms: i64,
}

/// Where a package's data comes from.
pub struct Sources<'a> {
    pub audit: &'a Connection,
    pub state: &'a Connection,
    pub instance: &'a InstanceKey,
    pub config_path: &'a Path,
}

/// What was exported.
#[derive(Debug)]
pub struct Summary {
    pub files: usize,
    pub window_records: u64,
    pub records: u64,
    pub checkpoints: u64,
    pub uncovered_records: u64,
    pub report: Report,
}

/// `audit/verification.json`.
#[derive(Debug, Serialize)]
struct Verification<'a> {
    note: &'static str,
    first_seq: Option<u64>,
    last_seq: Option<u64>,
    ok: bool,
    report: &'a Report,
}

/// `policy/versions.json`.
#[derive(Debug, Serialize)]
struct PolicyVersions {
    note: &'static str,
    versions: Vec<crate::policy::versions::Version>,
    activations: Vec<crate::policy::versions::Activation>,
}

const README: &str = include_str!("../../assets/evidence/README.txt");

/// Gathers every file of the package (all but the manifest and its signature).
fn gather(
    sources: &Sources<'_>,
    request: &Request,
) -> Result<(Files, Extract, Report), EvidenceError> {
    let extract = extract::read(
        sources.audit,
        &request.from,
        &request.to,
        request.from_ms,
        request.to_ms,
    )?;
    let report = match (extract.info.first_seq, extract.info.last_seq) {
        (Some(first), Some(last)) => {
            let (key, public) = instance_keys(sources.instance);
            verify(
                sources.audit,
                sources.state,
                &key,
                &public,
                Some(first),
                Some(last),
            )?
        }
        _ => Report::default(),
    };
    let verification = Verification {
        note: "airlock audit verify, run on the instance when the package was made, over the \
               extract's records: the MAC chain (which needs the instance's secret chain key, \
               so it cannot be re-checked offline), every checkpoint's Merkle root, signature \
               and link. `airlock evidence verify` re-checks the checkpoints offline.",
        first_seq: extract.info.first_seq,
        last_seq: extract.info.last_seq,
        ok: report.ok(),
        report: &report,
    };
    let window = (request.from_ms, request.to_ms);
    let mut files = Files::new();
    files.insert(path::README.into(), README.as_bytes().to_vec());
    files.insert(
        path::CONTROLS.into(),
        json_file(&controls::matrix(request.framework)?)?,
    );
    let versions = crate::policy::versions::history(sources.state)?;
    for version in &versions {
        files.insert(
            format!("policy/v{}.yaml", version.version),
            crate::policy::versions::source(sources.state, version.version)?,
        );
    }
    files.insert(
        path::POLICY_VERSIONS.into(),
        json_file(&PolicyVersions {
            note: "Every policy version ever stored (its text is policy/vN.yaml; sha256 is \
                   the SHA-256 of that text), newest first, and every activation in order: \
                   which version became active or shadow, when, by whom and why. Audit \
                   records name the version that decided them (policy_version vN-HASH8).",
            versions,
            activations: crate::policy::versions::activations(sources.state)?,
        })?,
    );
    files.insert(
        path::RECORDS.into(),
        extract::records_file(&extract.records)?,
    );
    files.insert(path::CHECKPOINTS.into(), json_file(&extract.checkpoints)?);
    files.insert(path::EXTRACT.into(), json_file(&extract.info)?);
    files.insert(
        path::PUBLIC_KEY.into(),
        format!("{}\n", sources.instance.public_key_hex()).into_bytes(),
    );
    files.insert(path::VERIFICATION.into(), json_file(&verification)?);
    files.insert(
        path::TENANTS.into(),
        json_file(&inventory::tenants(sources.state)?)?,
    );
    files.insert(
        path::VIRTUAL_KEYS.into(),
        json_file(&inventory::virtual_keys(sources.state)?)?,
    );
    files.insert(
        path::ADMIN_TOKENS.into(),
        json_file(&inventory::admin_tokens(sources.state)?)?,
    );
    files.insert(
        path::ADMIN_USERS.into(),
        json_file(&inventory::admin_users(sources.state)?)?,
    );
    files.insert(
        path::MEMBERS.into(),
        json_file(&inventory::members(sources.state)?)?,
    );
    files.insert(
        path::QUOTAS.into(),
        json_file(&inventory::quotas(sources.state)?)?,
    );
    files.insert(
        path::PROVIDER_CREDENTIALS.into(),
        json_file(&inventory::provider_credentials(sources.state)?)?,
    );
    files.insert(
        path::ADMIN_EVENTS.into(),
        json_file(&inventory::admin_events(sources.state, window.0, window.1)?)?,
    );
    files.insert(
        path::ADMIN_ACTIONS.into(),
        json_file(&stats::admin_actions(&extract))?,
    );
    files.insert(
        path::PII_STATISTICS.into(),
        json_file(&stats::pii_statistics(&extract))?,
    );
    files.insert(
        path::CONFIG.into(),
        json_file(&redact::snapshot(sources.config_path)?)?,
    );
    Ok((files, extract, report))
}

/// Exports the package of `request` to `out`.
pub fn export(
    sources: &Sources<'_>,
    request: &Request,
    out: &Path,
) -> Result<Summary, EvidenceError> {
    let (mut files, extract, report) = gather(sources, request)?;
    let now = std::time::SystemTime::now();
    let manifest = Manifest::new(
        request.framework.name(),
        &request.from,
        &request.to,
        humantime::format_rfc3339_seconds(now).to_string(),
        sources.instance.public_key_hex(),
        &files,
    );
    let manifest_bytes = json_file(&manifest)?;
    let signature = manifest::sign(&manifest_bytes, &sources.instance.signing_key_pkcs8)?;
    files.insert(path::MANIFEST.into(), manifest_bytes);
    files.insert(path::SIGNATURE.into(), signature);
    let mtime = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    super::archive::write(&files, out, mtime)?;
    Ok(Summary {
        files: files.len(),
        window_records: extract.info.window_records,
        records: extract.info.records,
        checkpoints: extract.info.checkpoints,
        uncovered_records: extract.info.uncovered_records,
        report,
    })
}
