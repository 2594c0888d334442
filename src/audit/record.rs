//! One audit record: who did what, through which route, under which policy, what was
//! found and decided, at what cost — with the payloads (after redaction) encrypted. Its
//! canonical encoding is what the chain MAC and the Merkle leaves cover.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What happened, as a record's `kind`.
pub mod kind {
    pub const LLM_REQUEST: &str = "llm.request";
    pub const ADMIN_ACTION: &str = "admin.action";
    /// Personal data erased (GDPR Art. 17). By person: the subject's data keys destroyed,
    /// `detail` lists the key ids. By a value found in payloads: `erased_records` lists
    /// the records whose payloads were deleted. `target` names either by a keyed hash.
    pub const AUDIT_ERASE: &str = "audit.erase";
    /// A tenant's stored payloads older than its retention deleted; `detail` names the
    /// cutoff (`before_ms=…`).
    pub const AUDIT_RETENTION: &str = "audit.retention";
    /// Records could not be written for a while (a full disk); `detail` names since when
    /// and how many events went unrecorded. Written by the writer once it can write again.
    pub const AUDIT_OUTAGE: &str = "audit.outage";
}

/// An event as the gateway reports it, before the log gives it a place: no sequence
/// number, payloads still in clear.
#[derive(Debug, Clone, Default)]
pub struct AuditEvent {
    pub record: AuditRecord,
    /// The request payload (after redaction), to be encrypted.
    pub request_payload: Option<bytes::Bytes>,
    /// The response payload (a stream: the bytes the client was sent), to be encrypted.
    pub response_payload: Option<bytes::Bytes>,
}

/// A stored record. Field order is the canonical order: do not reorder, only append.
/// Absent values are left out of the encoding.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditRecord {
    /// Encoding version.
    pub v: u32,
    /// Position in the log, from 1, without gaps.
    pub seq: u64,
    pub ts_ms: i64,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// The natural person, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_addr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub experiment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arm: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_version: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub matched_rules: Vec<String>,
    /// Data classes found, with counts (never the values).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub data_classes: BTreeMap<String, u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    /// What an admin action changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The data key the payloads are encrypted with (destroyed on erasure).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_key: Option<String>,
    /// SHA-256 (hex) of the sealed request payload, which is stored beside the record:
    /// the chain covers the ciphertext through it, and erasing the ciphertext (or its
    /// key) leaves the chain whole.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_payload_sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_payload_sha256: Option<String>,
    /// A payload was cut to the configured maximum before encryption.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub payload_truncated: bool,
    /// An admin action's name (`key.create`, `admin_token.revoke`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Who took an admin action (an admin token, or `cli:USER` on the box).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// What an admin action acted on (a key id, a token id, a route target).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Labels the policy's `tag` rules added.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// The shadow policy version evaluated beside the active one (enforced never).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadow_policy_version: Option<String>,
    /// What the shadow version would have decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadow_decision: Option<String>,
    /// The rules of the shadow version that matched.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shadow_rules: Vec<String>,
    /// The team the request's key acts in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team_id: Option<String>,
    /// The model the caller asked for, when a rule or budget served another.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested_model: Option<String>,
    /// Prompt text the NER model did not read, let through as configured
    /// (`ner_timeout; bytes=52000; classes=PERSON,LOCATION,ORGANIZATION`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pii_unscanned: Option<String>,
    /// Records whose stored payloads an erasure removed (erasure by a value found in them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub erased_records: Vec<u64>,
    /// Provider-run tools the request declared and Airlock left out (`web_search`, …;
    /// `tools.hosted: drop`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dropped_tools: Vec<String>,
}

/// The encoding version written now.
pub const VERSION: u32 = 1;

impl AuditRecord {
    /// The canonical encoding: compact JSON of the fields in declaration order, absent
    /// ones left out.
    pub fn canonical(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}
