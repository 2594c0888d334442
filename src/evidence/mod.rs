//! Evidence packages for auditors: one tar archive holding a control matrix, the audit
//! extract of a time range with its checkpoints, the public key and a verification
//! report, access inventories and their change history, PII statistics and a redacted
//! config snapshot, listed in a manifest of SHA-256 digests signed with the instance key;
//! and the offline check of such a package.
//!
//! Module map: `controls` (the embedded control matrix), `extract` (the audit extract),
//! `stats` (PII statistics, admin actions), `inventory` (tenants, teams, users, keys,
//! tokens, credentials, quotas, admin events), `redact` (the config snapshot), `manifest` (digests and signature), `archive`
//! (tar in and out), `export` (building a package), `check` and `check_extract`
//! (verifying one offline).

pub mod archive;
pub mod check;
mod check_extract;
pub mod controls;
pub mod export;
pub mod extract;
pub mod inventory;
pub mod manifest;
pub mod redact;
pub mod stats;

use std::collections::BTreeMap;

/// The files of a package by path, in path order.
pub type Files = BTreeMap<String, Vec<u8>>;

/// Paths of the files in a package.
pub mod path {
    pub const README: &str = "README.txt";
    pub const MANIFEST: &str = "manifest.json";
    pub const SIGNATURE: &str = "manifest.sig";
    pub const CONTROLS: &str = "controls.json";
    pub const POLICY_VERSIONS: &str = "policy/versions.json";
    pub const RECORDS: &str = "audit/records.jsonl";
    pub const CHECKPOINTS: &str = "audit/checkpoints.json";
    pub const EXTRACT: &str = "audit/extract.json";
    pub const PUBLIC_KEY: &str = "audit/public_key.txt";
    pub const VERIFICATION: &str = "audit/verification.json";
    pub const TENANTS: &str = "access/tenants.json";
    pub const VIRTUAL_KEYS: &str = "access/virtual_keys.json";
    pub const ADMIN_TOKENS: &str = "access/admin_tokens.json";
    pub const ADMIN_USERS: &str = "access/admin_users.json";
    pub const MEMBERS: &str = "access/teams_and_users.json";
    pub const QUOTAS: &str = "access/quotas.json";
    pub const PROVIDER_CREDENTIALS: &str = "access/provider_credentials.json";
    pub const ADMIN_EVENTS: &str = "access/admin_events.json";
    pub const ADMIN_ACTIONS: &str = "access/admin_actions.json";
    pub const PII_STATISTICS: &str = "pii/statistics.json";
    pub const CONFIG: &str = "config/airlock.json";

    /// Every file the manifest lists (all but the manifest and its signature).
    pub const LISTED: &[&str] = &[
        README,
        CONTROLS,
        POLICY_VERSIONS,
        RECORDS,
        CHECKPOINTS,
        EXTRACT,
        PUBLIC_KEY,
        VERIFICATION,
        TENANTS,
        VIRTUAL_KEYS,
        ADMIN_TOKENS,
        ADMIN_USERS,
        MEMBERS,
        QUOTAS,
        PROVIDER_CREDENTIALS,
        ADMIN_EVENTS,
        ADMIN_ACTIONS,
        PII_STATISTICS,
        CONFIG,
    ];
}

/// The compliance framework a package is made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Framework {
    Soc2,
    Hipaa,
    Gdpr,
}

impl Framework {
    pub fn name(self) -> &'static str {
        match self {
            Self::Soc2 => "soc2",
            Self::Hipaa => "hipaa",
            Self::Gdpr => "gdpr",
        }
    }
}

/// Why a package cannot be made or read.
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{0}")]
    Invalid(String),
}

impl From<serde_json::Error> for EvidenceError {
    fn from(e: serde_json::Error) -> Self {
        Self::Invalid(format!("JSON: {e}"))
    }
}

/// Pretty JSON with a final newline, as every JSON file of a package is written.
pub fn json_file<T: serde::Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, EvidenceError> {
    let mut out = serde_json::to_vec_pretty(value)?;
    out.push(b'\n');
    Ok(out)
}

/// SHA-256 of `bytes`, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    crate::store::instance_key::hex(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

/// Milliseconds since the epoch as RFC 3339 (UTC, milliseconds).
pub fn rfc3339_ms(ms: i64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(time).to_string()
}
