//! One audit record: who did what, through which route, under which policy, what was
//! found and decided, at what cost — with the payloads (after redaction) encrypted. Its
//! canonical encoding is what the chain MAC and the Merkle leaves cover.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What happened, as a record's `kind`.
pub mod kind {
    pub const LLM_REQUEST: &str = "llm.request";
    pub const ADMIN_ACTION: &str = "admin.action";
}

/// An event as the gateway reports it, before the log gives it a place: no sequence
/// number, payloads still in clear.
#[derive(Debug, Clone, Default)]
pub struct AuditEvent {
    pub record: AuditRecord,
    /// The request payload (after redaction), to be encrypted.
    pub request_payload: Option<Vec<u8>>,
    /// The response payload (a stream aggregated), to be encrypted.
    pub response_payload: Option<Vec<u8>>,
}

/// A stored record. Field order is the canonical order: do not reorder, only append.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditRecord {
    /// Encoding version.
    pub v: u32,
    /// Position in the log, from 1, without gaps.
    pub seq: u64,
    pub ts_ms: i64,
    pub kind: String,
    pub tenant_id: Option<String>,
    pub key_id: Option<String>,
    /// The natural person, when known.
    pub user_id: Option<String>,
    pub client_addr: Option<String>,
    pub request_id: Option<String>,
    pub session_id: Option<String>,
    pub endpoint: Option<String>,
    pub model: Option<String>,
    pub upstream: Option<String>,
    pub upstream_model: Option<String>,
    pub experiment: Option<String>,
    pub arm: Option<String>,
    pub policy_version: Option<String>,
    pub matched_rules: Vec<String>,
    /// Data classes found, with counts (never the values).
    pub data_classes: BTreeMap<String, u64>,
    pub decision: Option<String>,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    pub cost_usd: Option<f64>,
    pub latency_ms: Option<f64>,
    /// What an admin action changed.
    pub detail: Option<String>,
    /// The data key the payloads are encrypted with (destroyed on erasure).
    pub payload_key: Option<String>,
    /// SHA-256 (hex) of the sealed request payload, which is stored beside the record:
    /// the chain covers the ciphertext through it, and erasing the ciphertext (or its
    /// key) leaves the chain whole.
    pub request_payload_sha256: Option<String>,
    pub response_payload_sha256: Option<String>,
    /// A payload was cut to the configured maximum before encryption.
    pub payload_truncated: bool,
}

/// The encoding version written now.
pub const VERSION: u32 = 1;

impl AuditRecord {
    /// The canonical encoding: compact JSON of the fields in declaration order.
    pub fn canonical(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}
