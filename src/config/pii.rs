//! The `pii:` section of airlock.yaml: finding personal data in prompts and what happens
//! to it when no policy rule says otherwise.

use crate::pii::{ActionPlan, PiiAction};
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
    /// Mask personal data the model wrote itself (values the caller tokenised are
    /// restored, not masked), in whole and streamed answers.
    pub mask_model_output: bool,
    /// When the NER model cannot run (not loaded, overloaded): `continue` with the
    /// recognizers' findings, or `refuse` the request (503 `pii_unavailable`).
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
            mask_model_output: false,
            on_ner_unavailable: OnNerUnavailable::Continue,
            ner: NerConfig::default(),
            vault: VaultSettings::default(),
            cache_entries: 100_000,
        }
    }
}

/// What a request gets when the NER model cannot look at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnNerUnavailable {
    Continue,
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
    /// Texts that may wait for a thread; beyond, the model is overloaded.
    pub queue: usize,
    /// Texts one thread runs together when several wait.
    pub max_batch: usize,
}

impl Default for NerConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            model_dir: None,
            onnxruntime_lib: None,
            threads: 1,
            queue: 256,
            max_batch: 8,
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
