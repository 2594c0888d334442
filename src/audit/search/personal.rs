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

/// A text as the index holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Redacted {
    /// The text with every value found replaced by its class.
    pub text: String,
    /// Keyed hashes of the values found.
    pub terms: Vec<String>,
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
}

impl PersonalData {
    /// Values hashed with keys derived from `seal_key`; names found by the model `ner`
    /// configures (none when `None`).
    pub fn new(seal_key: &[u8; 32], ner: Option<NerSettings>, refuse_without_names: bool) -> Self {
        Self {
            keys: ValueKeys::derive(seal_key),
            names: ner.map_or(Names::Off, Names::Unloaded),
            refuse_without_names,
        }
    }

    /// As the instance `loaded` configures it: the NER model `ner` (the settings
    /// `pii.ner` gives), and without it payload text indexed or not as
    /// `pii.on_ner_unavailable` says.
    pub fn configured(
        loaded: &LoadedConfig,
        ner: Option<NerSettings>,
        seal_key: &[u8; 32],
    ) -> Self {
        let refuse = loaded.config.pii.on_ner_unavailable == OnNerUnavailable::Refuse;
        Self::new(seal_key, ner, refuse)
    }

    pub fn keys(&self) -> &ValueKeys {
        &self.keys
    }

    /// `text` as the index may hold it.
    pub fn redact(&mut self, text: &str) -> Redacted {
        if text.is_empty() {
            return Redacted::default();
        }
        let mut findings = recognize(text);
        let names_found = match self.names(text) {
            Some(found) => {
                findings.extend(found);
                true
            }
            None => false,
        };
        let findings = resolve_overlaps(findings);
        let mut terms: Vec<String> = findings
            .iter()
            .flat_map(|f| self.keys.index_terms(f.text(text)))
            .collect();
        terms.sort_unstable();
        terms.dedup();
        let text = if names_found || !self.refuse_without_names {
            replace(text, &findings)
        } else {
            String::new()
        };
        Redacted { text, terms }
    }

    /// The model's findings in `text`: empty when it is off, `None` when it should have
    /// looked and could not.
    fn names(&mut self, text: &str) -> Option<Vec<Finding>> {
        if let Names::Unloaded(settings) = &self.names {
            self.names = load(settings);
        }
        match &mut self.names {
            Names::Off => Some(Vec::new()),
            Names::Unloaded(_) | Names::Failed => None,
            Names::Ready { model, session } => match model.find(session, &[text]) {
                Ok(mut found) => Some(found.pop().unwrap_or_default()),
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
        let text = "card 4111 1111 1111 1111, mail jane.roe@example.org, thanks";
        let redacted = personal.redact(text);
        assert!(!redacted.text.contains("4111"), "{}", redacted.text);
        assert!(!redacted.text.contains("jane"), "{}", redacted.text);
        assert!(redacted.text.contains("[CREDIT_CARD]") && redacted.text.contains("thanks"));
        let keys = ValueKeys::derive(&[1u8; 32]);
        assert!(redacted.terms.contains(&keys.term("4111111111111111")));
        assert!(redacted.terms.contains(&keys.term("janeroeexampleorg")));
        assert!(redacted.terms.contains(&keys.term("roe")));
        assert_eq!(personal.redact(""), Redacted::default());
    }

    #[test]
    fn without_the_model_refusing_indexes_no_text_but_keeps_the_terms() {
        let mut personal = PersonalData::new(&[1u8; 32], None, true);
        personal.names = Names::Failed;
        let redacted = personal.redact("Margaret's card is 4111 1111 1111 1111");
        assert_eq!(redacted.text, "");
        assert_eq!(redacted.terms.len(), 3, "the card, 4111 and 1111");
        personal.refuse_without_names = false;
        let redacted = personal.redact("Margaret's card is 4111 1111 1111 1111");
        assert!(redacted.text.starts_with("Margaret's card is"));
    }
}
