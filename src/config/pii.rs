//! The `pii:` section of airlock.yaml: finding personal data in prompts and what happens
//! to it when no policy rule says otherwise.

use crate::pii::{ActionPlan, PiiAction, RolePlan};
use serde::Deserialize;
use std::path::PathBuf;

/// Personal data in prompts and answers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PiiConfig {
    /// Scan prompts (and answers) for personal data at all.
    pub enabled: bool,
    /// What happens to each class found, unless a policy's `redact`/`tokenise` rule
    /// decides. The default only detects and records (`allow`).
    pub actions: ActionPlan,
    /// What happens by the role of the message a finding is in: `apply` the plan,
    /// `detect` only (found, counted and seen by policy, the text forwarded as written),
    /// or `skip` scanning. Default: `system` and `developer` (the application's own
    /// prompt) `detect`, `user`, `assistant` and `tool` `apply`.
    pub roles: RolePlan,
    /// Mask personal data the model wrote itself (values the caller tokenised are
    /// restored, not masked), in whole and streamed answers.
    pub mask_model_output: bool,
    /// When the NER model did not read all of a prompt (not loaded, overloaded past the
    /// request's budget, over the byte limit): `protect` (refuse when an action other
    /// than `allow` applies to a class only the model finds), `refuse` always, or
    /// `continue` with the recognizers' findings, saying so in the response header
    /// `x-airlock-pii-unscanned`, the audit record and the request log.
    pub on_ner_unavailable: OnNerUnavailable,
    /// The NER model and its inference threads.
    pub ner: NerConfig,
    /// The tokenisation vault.
    pub vault: VaultSettings,
    /// Texts whose findings are remembered (per tenant), so resent conversations are not
    /// scanned again.
    pub cache_entries: usize,
}

impl Default for PiiConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            actions: ActionPlan::new(PiiAction::Allow),
            roles: RolePlan::default(),
            mask_model_output: false,
            on_ner_unavailable: OnNerUnavailable::Protect,
            ner: NerConfig::default(),
            vault: VaultSettings::default(),
            cache_entries: 100_000,
        }
    }
}

/// What a request gets when the NER model did not read all of its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnNerUnavailable {
    /// Refused when the plan (configuration, then policy) acts on a class only the model
    /// finds (PERSON, LOCATION, ORGANIZATION): text that should have been protected never
    /// leaves unread. Otherwise it continues, marked as for `continue`.
    Protect,
    /// Continues with the recognizers' findings; the response header, audit record and
    /// request log say what the model did not read.
    Continue,
    /// Always refused.
    Refuse,
}

/// `pii.ner`: the on-device model.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NerConfig {
    /// Run the model (otherwise recognizers only).
    pub enabled: bool,
    /// A model directory instead of the embedded model (`--ner-model` overrides it).
    pub model_dir: Option<PathBuf>,
    /// An ONNX Runtime library instead of the embedded one.
    pub onnxruntime_lib: Option<PathBuf>,
    /// Inference threads, each on one core.
    pub threads: usize,
    /// Pieces of text (up to 2 KiB each) one tenant may have waiting for a thread;
    /// beyond, its requests wait for room (within their budget).
    pub queue: usize,
    /// Pieces one thread runs together when one tenant has several waiting.
    pub max_batch: usize,
    /// How long one request may wait for the model in all (queueing included); past it,
    /// what the model has not read counts as unread (see `on_ner_unavailable`).
    pub request_budget_ms: u64,
    /// Bytes of prompt text the model reads per request at most (texts it read before,
    /// in the scan-once cache, do not count). Over it the request is refused (413
    /// `pii_text_too_large`) when `on_ner_unavailable` refuses, else the model reads the
    /// first this many bytes and the rest counts as unread.
    pub max_request_bytes: usize,
}

impl Default for NerConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            model_dir: None,
            onnxruntime_lib: None,
            threads: 1,
            queue: 256,
            max_batch: 32,
            request_budget_ms: 10_000,
            max_request_bytes: 1024 * 1024,
        }
    }
}

/// `pii.vault`: where tokenised values live while a session lasts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VaultSettings {
    /// A session's values are forgotten this long after it last tokenised.
    pub ttl_secs: u64,
    /// Sessions kept in memory (older ones reload from disk when used).
    pub max_sessions: usize,
    /// Values one session may hold; beyond, values are masked instead.
    pub max_entries_per_session: usize,
}

impl Default for VaultSettings {
    fn default() -> Self {
        let defaults = crate::pii::VaultConfig::default();
        Self {
            ttl_secs: defaults.ttl.as_secs(),
            max_sessions: defaults.max_sessions,
            max_entries_per_session: defaults.max_entries_per_session,
        }
    }
}

impl VaultSettings {
    pub fn vault_config(&self) -> crate::pii::VaultConfig {
        crate::pii::VaultConfig {
            ttl: std::time::Duration::from_secs(self.ttl_secs.max(1)),
            max_sessions: self.max_sessions.max(1),
            max_entries_per_session: self.max_entries_per_session.max(1),
        }
    }
}
