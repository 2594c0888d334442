//! Applying actions to a text: each finding's span replaced by its mask, hash or
//! placeholder, with counts per class and action for the audit record (never values).

use super::action::{ActionPlan, PiiAction};
use super::finding::Finding;
use super::placeholder;
use super::session::{Session, normalise};
use crate::store::instance_key::hex;
use std::collections::{BTreeMap, HashSet};

/// How many findings of each class got each action.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActionCounts(BTreeMap<(&'static str, PiiAction), u32>);

impl ActionCounts {
    fn add(&mut self, class: &'static str, action: PiiAction) {
        *self.0.entry((class, action)).or_default() += 1;
    }

    /// Class, action and count, ordered by class then action.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, PiiAction, u32)> + '_ {
        self.0
            .iter()
            .map(|(&(class, action), &n)| (class, action, n))
    }

    /// Findings acted on in all.
    pub fn total(&self) -> u32 {
        self.0.values().sum()
    }
}

/// A rewritten text and what was done to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transformed {
    pub text: String,
    pub counts: ActionCounts,
}

/// `[EMAIL_ADDRESS]`.
pub fn mask(class: &str) -> String {
    format!("[{class}]")
}

/// `[EMAIL_ADDRESS:0123456789]`: the first ten hex digits of the HMAC-SHA256 of the
/// (normalised) value under the tenant's key.
fn hash(session: &Session, class: &str, value: &str) -> String {
    let tag = ring::hmac::sign(session.hash_key(), normalise(class, value).as_bytes());
    let digits = hex(tag.as_ref().get(..5).unwrap_or_default());
    format!("[{class}:{digits}]")
}

/// Applies `plan` to the findings in `text`. Tokenised values go into `session` (in
/// memory; persist them with `Vault::commit`). A session that is full or erased masks
/// instead of tokenising, and the count says `mask`. Never blocks on I/O.
pub fn apply(
    text: &str,
    findings: &[Finding],
    plan: &ActionPlan,
    session: &Session,
) -> Transformed {
    let now_ms = crate::store::now_unix_ms();
    let mut taken: Option<HashSet<&str>> = None;
    let mut entries = session.entries();
    rewrite(text, findings, |class, value| {
        match plan.action_for(class) {
            PiiAction::Allow => None,
            PiiAction::Mask => Some((mask(class), PiiAction::Mask)),
            PiiAction::Hash => Some((hash(session, class, value), PiiAction::Hash)),
            PiiAction::Tokenise => {
                let taken = taken.get_or_insert_with(|| placeholder::lookalikes(text));
                let placeholder = entries.tokenise(class, value, &|p| taken.contains(p), now_ms);
                Some(match placeholder {
                    Some(p) => (p, PiiAction::Tokenise),
                    None => (mask(class), PiiAction::Mask),
                })
            }
        }
    })
}

/// One span to act on: byte range on char boundaries and its class.
struct Span {
    start: usize,
    end: usize,
    class: &'static str,
}

/// The findings as spans safe to cut at: clamped to the text, widened to char
/// boundaries, in order, and overlapping ones merged into the first (so no part of any
/// finding is left out).
fn spans(text: &str, findings: &[Finding]) -> Vec<Span> {
    let mut sorted: Vec<Span> = findings
        .iter()
        .filter_map(|f| {
            let end = text.ceil_char_boundary(f.end.min(text.len()));
            let start = text.floor_char_boundary(f.start.min(end));
            (start < end).then_some(Span {
                start,
                end,
                class: f.class,
            })
        })
        .collect();
    sorted.sort_by_key(|s| (s.start, std::cmp::Reverse(s.end)));
    let mut merged: Vec<Span> = Vec::with_capacity(sorted.len());
    for span in sorted {
        match merged.last_mut() {
            Some(last) if span.start < last.end => last.end = last.end.max(span.end),
            _ => merged.push(span),
        }
    }
    merged
}

/// Replaces each finding's text with what `act` returns for it (`None` keeps it), and
/// counts the replacements by class and the action `act` names.
pub(crate) fn rewrite(
    text: &str,
    findings: &[Finding],
    mut act: impl FnMut(&'static str, &str) -> Option<(String, PiiAction)>,
) -> Transformed {
    let mut out = String::with_capacity(text.len());
    let mut counts = ActionCounts::default();
    let mut copied = 0;
    for span in spans(text, findings) {
        let Some((replacement, action)) = act(span.class, &text[span.start..span.end]) else {
            continue;
        };
        out.push_str(&text[copied..span.start]);
        out.push_str(&replacement);
        copied = span.end;
        counts.add(span.class, action);
    }
    out.push_str(&text[copied..]);
    Transformed { text: out, counts }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::pii::session::tests::session;

    pub(crate) fn finding(text: &str, needle: &str, class: &'static str) -> Finding {
        let start = text.find(needle).unwrap();
        Finding {
            class,
            start,
            end: start + needle.len(),
            score: 0.9,
            recognizer: "test",
        }
    }

    const TEXT: &str = "Mail ann@x.io or bob@y.io, ask Ann Lee. Card 4111 1111 1111 1111.";

    fn findings() -> Vec<Finding> {
        vec![
            finding(TEXT, "ann@x.io", "EMAIL_ADDRESS"),
            finding(TEXT, "bob@y.io", "EMAIL_ADDRESS"),
            finding(TEXT, "Ann Lee", "PERSON"),
            finding(TEXT, "4111 1111 1111 1111", "CREDIT_CARD"),
        ]
    }

    fn apply_all(action: PiiAction, max_entries: usize) -> Transformed {
        apply(
            TEXT,
            &findings(),
            &ActionPlan::new(action),
            &session(max_entries),
        )
    }

    #[test]
    fn each_action_writes_its_form_and_is_counted() {
        let mut plan = ActionPlan::new(PiiAction::Mask);
        plan.set("PERSON", PiiAction::Tokenise);
        plan.set("CREDIT_CARD", PiiAction::Allow);
        plan.set("EMAIL_ADDRESS", PiiAction::Hash);
        let out = apply(TEXT, &findings(), &plan, &session(10));
        let hashed = regex::Regex::new(r"^Mail \[EMAIL_ADDRESS:[0-9a-f]{10}\] or \[EMAIL_ADDRESS:[0-9a-f]{10}\], ask <PERSON_1>\. Card 4111 1111 1111 1111\.$").unwrap();
        assert!(hashed.is_match(&out.text), "{}", out.text);
        let counts: Vec<_> = out.counts.iter().collect();
        assert_eq!(
            counts,
            vec![
                ("EMAIL_ADDRESS", PiiAction::Hash, 2),
                ("PERSON", PiiAction::Tokenise, 1)
            ]
        );
        let masked = apply_all(PiiAction::Mask, 10);
        assert_eq!(
            masked.text,
            "Mail [EMAIL_ADDRESS] or [EMAIL_ADDRESS], ask [PERSON]. Card [CREDIT_CARD]."
        );
        assert_eq!(masked.counts.total(), 4);
    }

    #[test]
    fn hashes_are_equal_within_a_tenant_and_differ_across_tenants() {
        let keys = crate::pii::keys::PiiKeys::derive(
            &crate::store::instance_key::InstanceKey::generate().unwrap(),
        );
        let in_tenant =
            |tenant: &str| Session::new(tenant, None, keys.tenant_hash_key(tenant), 10, 1000, 0);
        let (a, a2, b) = (in_tenant("a"), in_tenant("a"), in_tenant("b"));
        assert_eq!(
            hash(&a, "EMAIL_ADDRESS", "Ann@x.io"),
            hash(&a2, "EMAIL_ADDRESS", "ann@x.io")
        );
        assert_ne!(
            hash(&a, "EMAIL_ADDRESS", "ann@x.io"),
            hash(&b, "EMAIL_ADDRESS", "ann@x.io")
        );
        assert_ne!(hash(&a, "PERSON", "Ann"), hash(&a, "PERSON", "Bob"));
    }

    #[test]
    fn a_full_session_masks_rather_than_leaks() {
        let out = apply_all(PiiAction::Tokenise, 2);
        assert_eq!(
            out.text,
            "Mail <EMAIL_ADDRESS_1> or <EMAIL_ADDRESS_2>, ask [PERSON]. Card [CREDIT_CARD]."
        );
        let counts: Vec<_> = out.counts.iter().collect();
        assert!(counts.contains(&("PERSON", PiiAction::Mask, 1)));
    }

    #[test]
    fn placeholders_already_in_the_input_are_never_issued() {
        let text = "I am <PERSON_1>, my friend is Ann; also <PERSON_2>.";
        let f = [finding(text, "Ann", "PERSON")];
        let out = apply(text, &f, &ActionPlan::default(), &session(10));
        assert_eq!(
            out.text,
            "I am <PERSON_1>, my friend is <PERSON_3>; also <PERSON_2>."
        );
    }

    #[test]
    fn bad_spans_are_widened_merged_or_dropped_never_panicking() {
        let text = "Zoë Ünal lives in Köln";
        let cut = |start, end, class| Finding {
            class,
            start,
            end,
            score: 1.0,
            recognizer: "test",
        };
        let findings = [
            cut(20, 999, "LOCATION"), // past the end: clamped
            cut(3, 2, "PERSON"),      // reversed: dropped
            cut(3, 6, "PERSON"),      // inside 'ë' and 'Ü': widened to "ë Ü"
            cut(0, 4, "PERSON"),      // overlaps it: merged
            cut(6, 10, "PERSON"),     // overlaps too: merged, up to "Zoë Ünal"
            cut(12, 12, "PERSON"),    // empty: dropped
        ];
        let out = apply(
            text,
            &findings,
            &ActionPlan::new(PiiAction::Mask),
            &session(10),
        );
        assert_eq!(out.text, "[PERSON] lives in [LOCATION]");
    }

    #[test]
    fn many_findings_in_a_large_text_are_linear_enough() {
        let unit = "call ann@x.io now ";
        let text = unit.repeat(50_000);
        let findings: Vec<Finding> = (0..50_000)
            .map(|i| Finding {
                class: "EMAIL_ADDRESS",
                start: i * unit.len() + 5,
                end: i * unit.len() + 13,
                score: 1.0,
                recognizer: "test",
            })
            .collect();
        let out = apply(&text, &findings, &ActionPlan::default(), &session(10));
        assert_eq!(out.text, "call <EMAIL_ADDRESS_1> now ".repeat(50_000));
    }
}
