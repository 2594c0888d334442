//! Personal data in a payload's text, found before the text is indexed: the recognizers
//! (cards, emails, phone numbers, IBANs, …) and, when configured, the NER model (names,
//! places, organisations), run on the indexer's own low-priority thread with a session of
//! its own, so indexing never takes inference time from requests. The index gets the text
//! with each value replaced by its class (`[PERSON]`) and, as exact terms, the value's keyed
//! hashes ([`ValueKeys::index_terms`]), so a search for the exact value still finds it.

use crate::audit::values::ValueKeys;
use crate::config::{LoadedConfig, OnNerUnavailable};
use crate::pii::ner::{NerModel, NerSettings};
use crate::pii::transform::mask;
use crate::pii::{Finding, recognize, resolve_overlaps};
use ort::session::Session;
use std::collections::HashMap;

/// A text as the index holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Redacted {
    /// The text with every value found replaced by its class.
    pub text: String,
    /// Keyed hashes of the values found.
    pub terms: Vec<String>,
    /// Text left out because the model could not look at it (`refuse`): such a record may
    /// hold names the index knows nothing of.
    pub withheld: bool,
}

/// What the NER model is, for the indexer.
enum Names {
    /// Not configured (`pii.ner.enabled: false`): the recognizers alone.
    Off,
    /// Configured; loaded on the first text that needs it.
    Unloaded(NerSettings),
    Ready {
        model: Box<NerModel>,
        session: Box<Session>,
    },
    /// Configured but it could not load.
    Failed,
}

/// Finds personal data in texts to index and takes it out.
pub struct PersonalData {
    keys: ValueKeys,
    names: Names,
    /// Without the model, index no text at all, only the recognizers' value terms
    /// (`pii.on_ner_unavailable: refuse`); else the text the recognizers redacted.
    refuse_without_names: bool,
    /// Pieces already redacted, by their text.
    seen: HashMap<String, Redacted>,
    /// What the cache holds, roughly, in bytes.
    seen_bytes: usize,
}

/// Most the cache of redacted pieces holds, in bytes.
const CACHE_BYTES: usize = 32 << 20;

impl PersonalData {
    /// Values hashed with keys derived from `seal_key`; names found by the model `ner`
    /// configures (none when `None`).
    pub fn new(seal_key: &[u8; 32], ner: Option<NerSettings>, refuse_without_names: bool) -> Self {
        Self {
            keys: ValueKeys::derive(seal_key),
            names: ner.map_or(Names::Off, Names::Unloaded),
            refuse_without_names,
            seen: HashMap::new(),
            seen_bytes: 0,
        }
    }

    /// As the instance `loaded` configures it: the NER model `ner` (the settings
    /// `pii.ner` gives) unless `audit.search.find_names` is off, and when it cannot run,
    /// payload text indexed or not as `pii.on_ner_unavailable` says.
    pub fn configured(
        loaded: &LoadedConfig,
        ner: Option<NerSettings>,
        seal_key: &[u8; 32],
    ) -> Self {
        let config = &loaded.config;
        let refuse = config.pii.on_ner_unavailable == OnNerUnavailable::Refuse;
        let ner = ner.filter(|_| config.audit.search.find_names);
        Self::new(seal_key, ner, refuse)
    }

    /// The pieces of a record's payloads (its messages, a stream's text) as the index may
    /// hold them: the texts redacted and joined, the terms of every value found. Pieces
    /// seen before (a conversation's earlier turns, resent with every request) come from
    /// the cache; the others go through the model together.
    pub fn redact(&mut self, pieces: &[String]) -> Redacted {
        let mut redactions: HashMap<&str, Redacted> = HashMap::new();
        let mut fresh = Vec::new();
        for piece in pieces.iter().filter(|piece| !piece.is_empty()) {
            match self.seen.get(piece) {
                Some(seen) => {
                    redactions.insert(piece, seen.clone());
                }
                None => fresh.push(piece.as_str()),
            }
        }
        fresh.sort_unstable();
        fresh.dedup();
        let names = self.names(&fresh);
        for (index, piece) in fresh.iter().enumerate() {
            let found = names.as_ref().map(|names| names[index].as_slice());
            let redacted = self.redact_one(piece, found);
            if found.is_some() {
                self.remember(piece, redacted.clone());
            }
            redactions.insert(piece, redacted);
        }
        let mut out = Redacted::default();
        for piece in pieces {
            let Some(redacted) = redactions.get(piece.as_str()) else {
                continue;
            };
            if !redacted.text.is_empty() {
                out.text.push_str(&redacted.text);
                out.text.push('\n');
            }
            out.terms.extend(redacted.terms.iter().cloned());
            out.withheld |= redacted.withheld;
        }
        out.terms.sort_unstable();
        out.terms.dedup();
        out
    }

    /// One piece redacted with the recognizers' findings and the model's `names` (`None`
    /// when the model should have looked and could not).
    fn redact_one(&self, text: &str, names: Option<&[Finding]>) -> Redacted {
        let mut findings = recognize(text);
        findings.extend(names.unwrap_or_default());
        let findings = resolve_overlaps(findings);
        let terms = findings
            .iter()
            .flat_map(|f| self.keys.index_terms(f.text(text)))
            .collect();
        let withheld = names.is_none() && self.refuse_without_names;
        let text = if withheld {
            String::new()
        } else {
            replace(text, &findings)
        };
        Redacted {
            text,
            terms,
            withheld,
        }
    }

    /// Keeps a piece's redaction for when it is seen again, within the cache's budget
    /// (emptied when full: recent conversations refill it).
    fn remember(&mut self, piece: &str, redacted: Redacted) {
        let size = piece.len() + redacted.text.len() + redacted.terms.len() * 32;
        if self.seen_bytes + size > CACHE_BYTES {
            self.seen.clear();
            self.seen_bytes = 0;
        }
        self.seen_bytes += size;
        self.seen.insert(piece.to_string(), redacted);
    }

    /// The model's findings in each of `texts`, in one batched run: empty when it is off,
    /// `None` when it should have looked and could not.
    fn names(&mut self, texts: &[&str]) -> Option<Vec<Vec<Finding>>> {
        if let Names::Unloaded(settings) = &self.names {
            self.names = load(settings);
        }
        match &mut self.names {
            Names::Off => Some(vec![Vec::new(); texts.len()]),
            Names::Unloaded(_) | Names::Failed => None,
            Names::Ready { .. } if texts.is_empty() => Some(Vec::new()),
            Names::Ready { model, session } => match model.find(session, texts) {
                Ok(found) if found.len() == texts.len() => Some(found),
                Ok(_) => None,
                Err(e) => {
                    tracing::warn!("the audit indexer's NER model failed on a payload: {e}");
                    None
                }
            },
        }
    }
}

/// The model the settings name, with a session of the indexer's own.
fn load(settings: &NerSettings) -> Names {
    let loaded = crate::pii::ner::load(settings).and_then(|(runtime, model)| {
        let session = model.session(&runtime.environment)?;
        Ok((model, session))
    });
    match loaded {
        Ok((model, session)) => {
            tracing::info!(model = %model.describe, "the audit indexer finds names with the NER model");
            Names::Ready {
                model: Box::new(model),
                session: Box::new(session),
            }
        }
        Err(e) => {
            tracing::error!(
                "the audit indexer cannot run the NER model ({e}): names in payloads are not \
                 found before indexing; pii.on_ner_unavailable decides whether payload text \
                 is indexed at all"
            );
            Names::Failed
        }
    }
}

/// `text` with each finding (sorted, disjoint) replaced by its class.
fn replace(text: &str, findings: &[Finding]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for finding in findings {
        let (Some(before), true) = (text.get(at..finding.start), finding.end <= text.len()) else {
            continue;
        };
        out.push_str(before);
        out.push(' ');
        out.push_str(&mask(finding.class));
        out.push(' ');
        at = finding.end;
    }
    out.push_str(text.get(at..).unwrap_or_default());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognized_values_become_classes_and_keyed_terms() {
        let mut personal = PersonalData::new(&[1u8; 32], None, false);
        let text = "card 4111 1111 1111 1111, mail jane.roe@example.org, thanks".to_string();
        let redacted = personal.redact(&[text, "card 4111 1111 1111 1111".into()]);
        assert!(!redacted.text.contains("4111"), "{}", redacted.text);
        assert!(!redacted.text.contains("jane"), "{}", redacted.text);
        assert!(redacted.text.contains("[CREDIT_CARD]") && redacted.text.contains("thanks"));
        let keys = ValueKeys::derive(&[1u8; 32]);
        assert!(redacted.terms.contains(&keys.term("4111111111111111")));
        assert!(redacted.terms.contains(&keys.term("janeroeexampleorg")));
        assert!(redacted.terms.contains(&keys.term("roe")));
        assert_eq!(personal.redact(&["".into()]), Redacted::default());
        assert_eq!(personal.seen.len(), 2, "both pieces remembered");
    }

    #[test]
    fn remembered_pieces_survive_the_cache_emptying_midway() {
        let mut personal = PersonalData::new(&[1u8; 32], None, false);
        let old = "mail jane.roe@example.org".to_string();
        let first = personal.redact(std::slice::from_ref(&old));
        personal.seen_bytes = CACHE_BYTES - 1;
        let both = personal.redact(&[old, "a new message".into()]);
        assert!(both.text.starts_with(&first.text), "{}", both.text);
        assert!(both.text.contains("a new message") && both.terms == first.terms);
        assert_eq!(personal.seen.len(), 1, "emptied, then the new piece");
    }

    #[test]
    fn without_the_model_refusing_indexes_no_text_but_keeps_the_terms() {
        let mut personal = PersonalData::new(&[1u8; 32], None, true);
        personal.names = Names::Failed;
        let pieces = ["Margaret's card is 4111 1111 1111 1111".to_string()];
        let redacted = personal.redact(&pieces);
        assert_eq!(redacted.text, "");
        assert!(
            personal.seen.is_empty(),
            "what the model did not see is not remembered"
        );
        assert_eq!(redacted.terms.len(), 3, "the card, 4111 and 1111");
        personal.refuse_without_names = false;
        let redacted = personal.redact(&pieces);
        assert!(redacted.text.starts_with("Margaret's card is") && !redacted.withheld);
    }
}
