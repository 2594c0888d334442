//! Finding personal data in one text: the recognizers, then the NER model, merged into
//! non-overlapping findings and cached per tenant and text.

use super::cache::ScanCache;
use super::ner::{NerError, NerPool, NerSettings};
use super::{Finding, recognize, resolve_overlaps};
use std::sync::Arc;

/// Whether the NER model runs, and why not when it doesn't.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NerStatus {
    /// Loaded: what model on what runtime.
    Ready(String),
    /// Configured but could not load: recognizers only, `/readyz` says degraded.
    Degraded(String),
    /// Turned off in the configuration.
    Off,
}

/// What a scan found.
#[derive(Debug, Clone)]
pub struct Scan {
    pub findings: Arc<[Finding]>,
    /// Answered from the scan-once cache.
    pub cached: bool,
    /// Why the model did not look at this text, when it should have: the findings are the
    /// recognizers' alone, and policy decides whether that is enough.
    pub ner_missing: Option<NerError>,
}

/// The recognizers, the model's pool (if it runs) and the cache.
pub struct Scanner {
    ner: Option<NerPool>,
    pub ner_status: NerStatus,
    cache: ScanCache,
}

impl Scanner {
    /// Starts the model's pool when `ner` is given; a model or runtime that cannot load
    /// leaves the recognizers alone and says why in [`NerStatus::Degraded`].
    pub fn start(ner: Option<&NerSettings>, cache_entries: usize) -> Self {
        let (ner, ner_status) = match ner.map(super::ner::start) {
            None => (None, NerStatus::Off),
            Some(Ok((pool, describe))) => (Some(pool), NerStatus::Ready(describe)),
            Some(Err(e)) => (None, NerStatus::Degraded(e.to_string())),
        };
        Self {
            ner,
            ner_status,
            cache: ScanCache::new(cache_entries),
        }
    }

    /// Findings in `text` for `tenant`: from the cache when this text was scanned before.
    pub async fn scan(&self, tenant: &str, text: &str) -> Scan {
        if text.is_empty() {
            return Scan {
                findings: Arc::from([]),
                cached: false,
                ner_missing: None,
            };
        }
        let key = ScanCache::key(tenant, text);
        if let Some(findings) = self.cache.get(&key) {
            return Scan {
                findings,
                cached: true,
                ner_missing: None,
            };
        }
        let mut findings = recognize(text);
        let ner_missing = match (&self.ner, &self.ner_status) {
            (Some(pool), _) => match pool.find(text.to_owned()).await {
                Ok(found) => {
                    findings.extend(found);
                    None
                }
                Err(e) => Some(e),
            },
            (None, NerStatus::Degraded(why)) => Some(NerError::Unavailable(why.clone())),
            (None, _) => None,
        };
        let findings: Arc<[Finding]> = resolve_overlaps(findings).into();
        // An incomplete scan is not remembered: the next sight of this text tries again.
        if ner_missing.is_none() {
            self.cache.insert(key, Arc::clone(&findings));
        }
        Scan {
            findings,
            cached: false,
            ner_missing,
        }
    }
}
