//! The recognizers: fast finders of personal data by pattern, checksum and context words,
//! without a model. Each family is one module with a `find` that pushes its findings.
//!
//! Cost: one `RegexSet` pass tells which whole-text regexes match at all (prose skips
//! nearly all of them); the others are gated by something cheap (a byte such as `@`, a
//! literal such as `://`, an Aho-Corasick pass over keywords). Matches are validated by code
//! (checksums, ranges) without allocating; context words are only looked at in a short
//! window before a candidate. See `docs/pii.md` for the base
//! scores, context words and measured throughput.

mod card;
mod checksums;
mod context;
mod crypto;
mod email;
mod iban;
mod in_context;
mod network;
mod phone;
mod secrets;
mod uk;
mod url;
mod us;

use super::Finding;
use crate::policy::guardrails::SECRET_KINDS;
use regex::{Regex, RegexSet};
use std::sync::LazyLock;

pub use context::{AGAINST_PENALTY, SUPPORT_BOOST, WINDOW as CONTEXT_WINDOW};

/// Findings scoring under this (after context words) are dropped by [`recognize`].
pub const MIN_SCORE: f32 = 0.4;

/// The names of the pattern recognizers, as in [`Finding::recognizer`]. Secret findings
/// carry the secret detector's kind instead (see [`recognizer_names`]).
pub const RECOGNIZERS: &[&str] = &[
    "email",
    "phone",
    "credit_card",
    "iban",
    "us_ssn",
    "us_routing",
    "uk_nhs",
    "uk_nino",
    "ipv4",
    "ipv6",
    "mac",
    "url_credentials",
    "date_of_birth",
    "passport",
    "driver_license",
    "medical_record",
    "bitcoin",
    "ethereum",
];

/// Every name a recognizer finding can carry: [`RECOGNIZERS`], then the secret kinds.
pub fn recognizer_names() -> impl Iterator<Item = &'static str> {
    RECOGNIZERS.iter().chain(SECRET_KINDS).copied()
}

/// A family of recognizers: pushes its findings in the text (any score) onto the vector.
type Find = fn(&Scan<'_>, &mut Vec<Finding>);

/// The families, with their module names (printed by the throughput probe in the tests).
const FAMILIES: &[(&str, Find)] = &[
    ("email", email::find),
    ("phone", phone::find),
    ("card", card::find),
    ("iban", iban::find),
    ("us", us::find),
    ("uk", uk::find),
    ("network", network::find),
    ("url", url::find),
    ("in_context", in_context::find),
    ("crypto", crypto::find),
    ("secrets", secrets::find),
];

/// All recognizer findings in `text` scoring at least [`MIN_SCORE`], sorted by start
/// (then end). They may overlap: [`super::resolve_overlaps`] picks the spans to redact.
pub fn recognize(text: &str) -> Vec<Finding> {
    let scan = Scan::new(text);
    let mut findings = Vec::new();
    for (_, find) in FAMILIES {
        find(&scan, &mut findings);
    }
    findings.retain(|f| f.score >= MIN_SCORE);
    findings.sort_by_key(|f| (f.start, f.end));
    findings
}

/// A regex compiled on first use; `None` if the pattern does not compile (every
/// recognizer's tests find something, so a broken pattern fails them).
type LazyRegex = LazyLock<Option<Regex>>;

fn compile(pattern: &str) -> Option<Regex> {
    Regex::new(pattern).ok()
}

/// The whole-text regexes that the prefilter knows: bit `i` of [`Scan::present`] for
/// entry `i`. (Email and URL regexes are gated by a byte search instead, the keyword
/// values only run over a window.)
static PREFILTERED: [&LazyRegex; 12] = [
    &card::PATTERN,
    &iban::PATTERN,
    &us::PATTERN,
    &uk::NHS,
    &uk::NINO_PATTERN,
    &network::V4,
    &network::V6,
    &network::MAC_PATTERN,
    &phone::PATTERN,
    &crypto::BASE58,
    &crypto::BECH32,
    &crypto::ETHEREUM,
];

/// One pass over the text for all of [`PREFILTERED`]: prose without personal data then
/// skips most whole-text regexes. `None` if a pattern or the set does not compile.
static PREFILTER: LazyLock<Option<RegexSet>> = LazyLock::new(|| {
    let sources: Option<Vec<&str>> = PREFILTERED
        .iter()
        .map(|r| r.as_ref().map(Regex::as_str))
        .collect();
    RegexSet::new(sources?).ok()
});

/// The text being recognised, with which prefiltered regexes match in it somewhere.
struct Scan<'t> {
    text: &'t str,
    present: u32,
}

impl<'t> Scan<'t> {
    fn new(text: &'t str) -> Self {
        let present = match PREFILTER.as_ref() {
            Some(set) => set.matches(text).iter().fold(0, |mask, i| mask | 1 << i),
            None => u32::MAX,
        };
        Self { text, present }
    }

    /// Whether `regex` may match: false only for a prefiltered regex the set did not see.
    fn may_match(&self, regex: &LazyRegex) -> bool {
        PREFILTERED
            .iter()
            .position(|r| std::ptr::eq(*r, regex))
            .is_none_or(|i| self.present & (1 << i) != 0)
    }
}

/// The matches of a lazily compiled regex in the scanned text (none if it did not compile
/// or the prefilter saw none).
fn matches<'r, 't>(
    regex: &'r LazyRegex,
    scan: &Scan<'t>,
) -> impl Iterator<Item = regex::Match<'t>> + use<'r, 't> {
    let text = scan.text;
    regex
        .as_ref()
        .filter(|_| scan.may_match(regex))
        .into_iter()
        .flat_map(move |r| r.find_iter(text))
}

/// A separator between the groups of a number: a space or dash, or a zero-width or
/// invisible format character standing where one would (so `4111\u{200B}1111…` is still
/// seen as a card number, while such a character inside a group breaks the number).
const SEP: &str = "[ \\-\u{200B}-\u{200D}\u{2060}\u{FEFF}]";

/// The byte just before `at` and the one at `end`, for boundary checks regexes cannot
/// express.
fn neighbours(text: &str, at: usize, end: usize) -> (Option<u8>, Option<u8>) {
    let bytes = text.as_bytes();
    (
        at.checked_sub(1).and_then(|i| bytes.get(i)).copied(),
        bytes.get(end).copied(),
    )
}

/// One recognizer: what it reports and the context words that move its scores.
struct Recognizer {
    class: &'static str,
    name: &'static str,
    context: context::Context,
}

impl Recognizer {
    /// Its finding over `start..end` in `text`, `base` moved by context words.
    fn finding(&self, text: &str, start: usize, end: usize, base: f32) -> Finding {
        Finding {
            class: self.class,
            start,
            end,
            score: self.context.score(text, start, base),
            recognizer: self.name,
        }
    }

    /// Its findings among the matches of `regex`: `base` gives a match's base score, or
    /// `None` to reject it.
    fn scan(
        &self,
        scan: &Scan<'_>,
        regex: &LazyRegex,
        out: &mut Vec<Finding>,
        mut base: impl FnMut(&regex::Match<'_>) -> Option<f32>,
    ) {
        for m in matches(regex, scan) {
            if let Some(base) = base(&m) {
                out.push(self.finding(scan.text, m.start(), m.end(), base));
            }
        }
    }
}

#[cfg(test)]
mod tests;
