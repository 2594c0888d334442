//! Personal values (a name, an email, a card number) as the audit trail names them without
//! keeping them: reduced to their words, then hashed with keys derived from the instance's
//! seal key — the search index's terms for values found in payloads, and what an erasure
//! record names as its target. A plain hash would not do: the few billion card or phone
//! numbers there are can be hashed in minutes, so without the key nobody can test a guess.
//! Also the rule that says whether a text contains a value.

use crate::store::instance_key::hex;
use ring::hmac;

/// Fewest letters and digits a value to erase may have: a shorter one would match words
/// in nearly every payload.
pub const MIN_VALUE_CHARS: usize = 3;

/// Longest value accepted for erasure or search, in bytes.
pub const MAX_VALUE_BYTES: usize = 1024;

/// Hex digits of an index term (the first 16 bytes of the HMAC).
const TERM_HEX: usize = 32;

/// The words of a text or value: runs of letters and digits, lowercased — how the search
/// index splits text, so a value's words are the words the index saw.
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_lowercase)
}

/// A value without case, spaces or punctuation: `4111 1111-1111 1111` and
/// `4111111111111111` are one card, `Jane.Roe@Example.org` and `jane.roe@example.org`
/// one address.
pub fn compact(value: &str) -> String {
    words(value).collect()
}

/// The keys values are hashed with; never printed.
pub struct ValueKeys {
    index: hmac::Key,
    erasure: hmac::Key,
}

impl std::fmt::Debug for ValueKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ValueKeys(<redacted>)")
    }
}

fn derive(seal_key: &[u8; 32], label: &[u8]) -> hmac::Key {
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, seal_key), label);
    hmac::Key::new(hmac::HMAC_SHA256, tag.as_ref())
}

impl ValueKeys {
    /// Derives the keys from the instance's seal key, each under its own label.
    pub fn derive(seal_key: &[u8; 32]) -> Self {
        Self {
            index: derive(seal_key, b"airlock audit index values v1"),
            erasure: derive(seal_key, b"airlock audit erasure target v1"),
        }
    }

    /// The index term of one compact form.
    pub fn term(&self, compact: &str) -> String {
        let tag = hmac::sign(&self.index, compact.as_bytes());
        let mut out = hex(tag.as_ref());
        out.truncate(TERM_HEX);
        out
    }

    /// The index terms of a value found in a payload: its compact form, and each of its
    /// words alone when it has several (a surname alone finds a full name).
    pub fn index_terms(&self, value: &str) -> Vec<String> {
        let words: Vec<String> = words(value).collect();
        let mut terms = Vec::with_capacity(words.len() + 1);
        if words.is_empty() {
            return terms;
        }
        terms.push(self.term(&words.concat()));
        if words.len() > 1 {
            terms.extend(words.iter().map(|word| self.term(word)));
        }
        terms
    }

    /// What an erasure record names instead of what was erased: `kind:` and the keyed
    /// hash (hex) of `subject`.
    pub fn erasure_target(&self, kind: &str, subject: &str) -> String {
        format!(
            "{kind}:{}",
            hex(hmac::sign(&self.erasure, subject.as_bytes()).as_ref())
        )
    }
}

/// Why a value cannot be looked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error(
        "the value has fewer than {MIN_VALUE_CHARS} letters or digits; it would match nearly every payload"
    )]
    TooShort,
    #[error("the value is longer than {MAX_VALUE_BYTES} bytes")]
    TooLong,
}

/// A value looked for in payloads (to erase it): its words, and its compact form.
#[derive(Clone, PartialEq, Eq)]
pub struct SubjectValue {
    words: Vec<String>,
    compact: String,
}

impl std::fmt::Debug for SubjectValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SubjectValue(<redacted>)")
    }
}

impl SubjectValue {
    /// The value as given; an error when it is too short to look for safely or too long.
    pub fn parse(value: &str) -> Result<Self, ValueError> {
        if value.len() > MAX_VALUE_BYTES {
            return Err(ValueError::TooLong);
        }
        let words: Vec<String> = words(value).collect();
        let compact = words.concat();
        if compact.chars().count() < MIN_VALUE_CHARS {
            return Err(ValueError::TooShort);
        }
        Ok(Self { words, compact })
    }

    pub fn words(&self) -> &[String] {
        &self.words
    }

    pub fn compact(&self) -> &str {
        &self.compact
    }

    /// Whether `text` holds the value: a run of its words that, joined, is the value's
    /// compact form — word boundaries respected (`Ann Lee` is not in `Joanne Leeds`),
    /// spacing and punctuation not (`4111 1111 1111 1111` is `4111-1111-1111-1111`).
    pub fn found_in(&self, text: &str) -> bool {
        let text: Vec<String> = words(text).collect();
        (0..text.len()).any(|start| {
            let mut rest = self.compact.as_str();
            for word in &text[start..] {
                match rest.strip_prefix(word.as_str()) {
                    Some("") => return true,
                    Some(left) => rest = left,
                    None => return false,
                }
            }
            false
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_match_across_spacing_case_and_punctuation_but_not_inside_words() {
        let card = SubjectValue::parse("4111 1111 1111 1111").unwrap();
        assert!(card.found_in("pay with 4111-1111-1111-1111 today"));
        assert!(card.found_in("card:4111111111111111."));
        assert!(!card.found_in("card 4111 1111 1111 1112"));
        let name = SubjectValue::parse("Ann Lee").unwrap();
        assert!(name.found_in("Dear ANN LEE,"));
        assert!(!name.found_in("Joanne Leeds"), "word boundaries count");
        let email = SubjectValue::parse("Jane.Roe@Example.org").unwrap();
        assert!(email.found_in("write to jane.roe@example.org please"));
        assert!(!email.found_in("write to jane.roe@example.com"));
        assert_eq!(SubjectValue::parse("a b"), Err(ValueError::TooShort));
        assert_eq!(SubjectValue::parse(" - "), Err(ValueError::TooShort));
        assert!(SubjectValue::parse(&"x".repeat(2000)).is_err());
    }

    #[test]
    fn terms_are_keyed_and_name_every_word_of_a_longer_value() {
        let keys = ValueKeys::derive(&[7u8; 32]);
        let other = ValueKeys::derive(&[8u8; 32]);
        let terms = keys.index_terms("Margaret Thornbury");
        assert_eq!(terms.len(), 3);
        assert_eq!(terms[0], keys.term("margaretthornbury"));
        assert_eq!(terms[2], keys.term("thornbury"));
        assert_ne!(terms[0], other.term("margaretthornbury"), "keyed");
        assert_eq!(
            keys.index_terms("4111 1111 1111 1111")[0],
            keys.term("4111111111111111")
        );
        assert_eq!(keys.index_terms("jane@example.org").len(), 4);
        assert!(keys.index_terms("--").is_empty());
        let target = keys.erasure_target("value", "margaretthornbury");
        assert!(target.starts_with("value:") && target.len() == 6 + 64);
        assert!(!target.contains("margaret"));
        assert_ne!(target, format!("value:{}", keys.term("margaretthornbury")));
    }
}
