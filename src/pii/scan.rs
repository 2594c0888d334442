//! Finding personal data in texts: the recognizers, then the NER model (within a
//! request's time budget and byte limit), merged into non-overlapping findings and cached
//! per tenant and text.

use super::cache::ScanCache;
use super::ner::{EMBEDDED_CLASSES, NerError, NerPool, NerSettings, Pending};
use super::{Finding, recognize, resolve_overlaps};
use std::sync::Arc;
use tokio::time::Instant;

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
    /// Why the model did not read this text (or all of it), when it should have: what it
    /// did not read has the recognizers' findings alone, and policy decides whether
    /// that is enough.
    pub ner_missing: Option<NerError>,
    /// Bytes of the text the model did not read (0 when it read it all).
    pub unread_bytes: usize,
}

impl Scan {
    fn complete(findings: Arc<[Finding]>, cached: bool) -> Self {
        Self {
            findings,
            cached,
            ner_missing: None,
            unread_bytes: 0,
        }
    }
}

/// How much model work one call may ask for.
#[derive(Debug, Clone, Copy)]
pub struct ScanLimits {
    /// When the model's findings must be in; `None` waits as long as it takes.
    pub deadline: Option<Instant>,
    /// Bytes the model reads per call at most; texts answered from the cache do not count.
    pub max_bytes: usize,
    /// Over `max_bytes`, the model reads none of the texts (the caller refuses them)
    /// rather than the first `max_bytes`.
    pub all_or_nothing: bool,
}

impl ScanLimits {
    /// No deadline and no byte limit: the whole text, however long it takes.
    pub fn unlimited() -> Self {
        Self {
            deadline: None,
            max_bytes: usize::MAX,
            all_or_nothing: false,
        }
    }
}

/// The recognizers, the model's pool (if it runs) and the cache.
pub struct Scanner {
    ner: Option<NerPool>,
    pub ner_status: NerStatus,
    cache: ScanCache,
}

/// A text the cache could not answer: the recognizers' findings, and the model's part.
struct Uncached<'t> {
    text: &'t str,
    key: [u8; 32],
    findings: Vec<Finding>,
    /// Bytes the model may read (the whole text unless the byte limit cuts it).
    allowed: usize,
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

    /// The classes only the model finds, which text it did not read may hold unseen:
    /// the model's, or the embedded model's when the configured one could not load;
    /// none when the model is off.
    pub fn model_classes(&self) -> &[&'static str] {
        match (&self.ner, &self.ner_status) {
            (Some(pool), _) => pool.classes(),
            (None, NerStatus::Degraded(_)) => EMBEDDED_CLASSES,
            (None, _) => &[],
        }
    }

    /// Findings in `text` for `tenant`: from the cache when this text was scanned before;
    /// the model reads all of it, however long that takes.
    pub async fn scan(&self, tenant: &str, text: &str) -> Scan {
        let mut scans = self
            .scan_all(tenant, &[text], &ScanLimits::unlimited())
            .await;
        scans
            .pop()
            .unwrap_or_else(|| Scan::complete(Arc::from([]), false))
    }

    /// Findings in each of `texts` (one request's) for `tenant`, in order. The texts the
    /// cache cannot answer go to the model together, within `limits`; what it could not
    /// read is said in each [`Scan`].
    pub async fn scan_all(&self, tenant: &str, texts: &[&str], limits: &ScanLimits) -> Vec<Scan> {
        let mut scans: Vec<Option<Scan>> = Vec::with_capacity(texts.len());
        let mut uncached = Vec::new();
        for (index, text) in texts.iter().enumerate() {
            if text.is_empty() {
                scans.push(Some(Scan::complete(Arc::from([]), false)));
                continue;
            }
            let key = ScanCache::key(tenant, text);
            if let Some(findings) = self.cache.get(&key) {
                scans.push(Some(Scan::complete(findings, true)));
                continue;
            }
            scans.push(None);
            uncached.push((
                index,
                Uncached {
                    text,
                    key,
                    findings: recognize(text),
                    allowed: text.len(),
                },
            ));
        }
        let outcomes = self.read_with_model(tenant, &mut uncached, limits).await;
        for ((index, mut text), (found, missing)) in uncached.into_iter().zip(outcomes) {
            text.findings.extend(found);
            let findings: Arc<[Finding]> = resolve_overlaps(text.findings).into();
            let unread_bytes = match &missing {
                Some(NerError::TooMuchText { .. }) => text.text.len() - text.allowed,
                Some(_) => text.text.len(),
                None => 0,
            };
            // An incomplete scan is not remembered: the next sight of this text tries again.
            if missing.is_none() {
                self.cache.insert(text.key, Arc::clone(&findings));
            }
            scans[index] = Some(Scan {
                findings,
                cached: false,
                ner_missing: missing,
                unread_bytes,
            });
        }
        scans.into_iter().flatten().collect()
    }

    /// The model's findings in each uncached text (within its allowance) and why it did
    /// not read all of one, when it did not. Sets each text's allowance by the byte limit.
    async fn read_with_model(
        &self,
        tenant: &str,
        uncached: &mut [(usize, Uncached<'_>)],
        limits: &ScanLimits,
    ) -> Vec<(Vec<Finding>, Option<NerError>)> {
        let pool = match (&self.ner, &self.ner_status) {
            (Some(pool), _) => pool,
            (None, NerStatus::Degraded(why)) => {
                let missing = NerError::Unavailable(why.clone());
                return uncached
                    .iter()
                    .map(|_| (Vec::new(), Some(missing.clone())))
                    .collect();
            }
            (None, _) => return uncached.iter().map(|_| (Vec::new(), None)).collect(),
        };
        let over = NerError::TooMuchText {
            limit: limits.max_bytes,
        };
        let needed: usize = uncached.iter().map(|(_, t)| t.text.len()).sum();
        if needed > limits.max_bytes && limits.all_or_nothing {
            for (_, text) in uncached.iter_mut() {
                text.allowed = 0;
            }
            return uncached
                .iter()
                .map(|_| (Vec::new(), Some(over.clone())))
                .collect();
        }
        let mut left = limits.max_bytes;
        for (_, text) in uncached.iter_mut() {
            text.allowed = text.text.floor_char_boundary(left.min(text.text.len()));
            left -= text.allowed;
        }
        // Every text is queued before any is awaited, so they run side by side.
        let mut pending: Vec<Result<Pending, NerError>> = Vec::with_capacity(uncached.len());
        for (_, text) in uncached.iter() {
            let prefix = &text.text[..text.allowed];
            pending.push(pool.submit(tenant, prefix, limits.deadline).await);
        }
        let mut outcomes = Vec::with_capacity(uncached.len());
        for ((_, text), queued) in uncached.iter().zip(pending) {
            let read = match queued {
                Ok(queued) => queued.wait(limits.deadline).await,
                Err(e) => Err(e),
            };
            outcomes.push(match read {
                Ok(found) if text.allowed < text.text.len() => (found, Some(over.clone())),
                Ok(found) => (found, None),
                Err(e) => (Vec::new(), Some(e)),
            });
        }
        outcomes
    }
}

/// What the model did not read of one request's texts: the first reason, the bytes, and
/// the classes those bytes may hold unseen.
#[derive(Debug, Clone)]
pub struct Unread {
    pub why: NerError,
    pub bytes: usize,
    pub classes: Vec<&'static str>,
}

impl Unread {
    /// What `scans` (one request's) left unread by `scanner`'s model; `None` when it
    /// read everything it should have.
    pub fn of(scans: &[Scan], scanner: &Scanner) -> Option<Self> {
        let why = scans.iter().find_map(|scan| scan.ner_missing.clone())?;
        Some(Self {
            why,
            bytes: scans.iter().map(|scan| scan.unread_bytes).sum(),
            classes: scanner.model_classes().to_vec(),
        })
    }

    /// One line for a response header and the records:
    /// `ner_timeout; bytes=52000; classes=PERSON,LOCATION,ORGANIZATION`.
    pub fn describe(&self) -> String {
        format!(
            "{}; bytes={}; classes={}",
            self.why.code(),
            self.bytes,
            self.classes.join(",")
        )
    }
}
