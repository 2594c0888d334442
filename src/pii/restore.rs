//! Restoring placeholders in a model's answer to the values they stand for: whole texts,
//! and streams, where only a tail that could still become a placeholder is held back.

use super::placeholder::close_of;
use super::session::{Entries, Session};
use std::sync::Arc;

/// Replaces every placeholder `session` issued with its value; anything else, including
/// placeholders never issued, is kept as written.
pub fn restore(text: &str, session: &Session) -> String {
    let mut out = String::with_capacity(text.len());
    restore_into(&session.entries(), text, &mut out, true);
    out
}

/// Restores `input` onto `out`. Unless `at_end`, a tail that is the start of an issued
/// placeholder is not written; its length is returned.
fn restore_into(entries: &Entries, input: &str, out: &mut String, at_end: bool) -> usize {
    let bytes = input.as_bytes();
    let mut copied = 0;
    let mut at = 0;
    while let Some(offset) = memchr::memchr(b'<', &bytes[at..]) {
        let open = at + offset;
        let close = close_of(bytes, open);
        match bytes.get(close) {
            Some(b'>') => {
                if let Some(value) = entries.value_of(&input[open..=close]) {
                    out.push_str(&input[copied..open]);
                    out.push_str(value);
                    copied = close + 1;
                    at = close + 1;
                    continue;
                }
            }
            None if !at_end && entries.is_issued_prefix(&input[open..]) => {
                out.push_str(&input[copied..open]);
                return input.len() - open;
            }
            _ => {}
        }
        at = open + 1;
    }
    out.push_str(&input[copied..]);
    0
}

/// Restores a streamed answer chunk by chunk. Holds back at most the start of one issued
/// placeholder (shorter than [`super::placeholder::MAX_PLACEHOLDER_LEN`]); everything
/// else is emitted at once.
pub struct Restorer {
    session: Arc<Session>,
    held: String,
}

impl Restorer {
    /// A restorer for answers in `session`.
    pub fn new(session: Arc<Session>) -> Self {
        Self {
            session,
            held: String::new(),
        }
    }

    /// Takes the next chunk; returns the text that can be emitted now.
    pub fn push(&mut self, chunk: &str) -> String {
        let mut input = std::mem::take(&mut self.held);
        input.push_str(chunk);
        let mut out = String::with_capacity(input.len());
        let keep = restore_into(&self.session.entries(), &input, &mut out, false);
        self.held = input.split_off(input.len() - keep);
        out
    }

    /// Ends the stream; returns what was held back, restored if complete.
    pub fn finish(mut self) -> String {
        let held = std::mem::take(&mut self.held);
        restore(&held, &self.session)
    }

    /// Bytes held back right now.
    pub fn held_len(&self) -> usize {
        self.held.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pii::placeholder::MAX_PLACEHOLDER_LEN;
    use crate::pii::session::tests::session;
    use proptest::prelude::*;

    fn with_entries(pairs: &[(&'static str, &str)]) -> Arc<Session> {
        let s = session(100);
        {
            let mut e = s.entries();
            for (class, value) in pairs {
                e.tokenise(class, value, &|_| false, 1).unwrap();
            }
        }
        Arc::new(s)
    }

    fn sample() -> Arc<Session> {
        with_entries(&[
            ("PERSON", "Ann <Lee>"),
            ("PERSON", "Zoë"),
            ("EMAIL_ADDRESS", "ann@x.io"),
            ("US_BANK_ROUTING", "<PERSON_1>"),
        ])
    }

    #[test]
    fn known_placeholders_are_restored_and_look_alikes_kept() {
        let s = sample();
        let text = "Hi <PERSON_1> (<EMAIL_ADDRESS_1>), <PERSON_99> <div> <<PERSON_2>> <PERSON_1 <US_BANK_ROUTING_1>";
        assert_eq!(
            restore(text, &s),
            "Hi Ann <Lee> (ann@x.io), <PERSON_99> <div> <Zoë> <PERSON_1 <PERSON_1>"
        );
    }

    #[test]
    fn another_sessions_placeholders_are_not_restored() {
        let a = with_entries(&[("PERSON", "Ann")]);
        let b = with_entries(&[]);
        assert_eq!(restore("<PERSON_1>", &a), "Ann");
        assert_eq!(restore("<PERSON_1>", &b), "<PERSON_1>");
    }

    #[test]
    fn a_held_start_is_released_as_soon_as_it_cannot_be_a_placeholder() {
        let mut r = Restorer::new(sample());
        assert_eq!(r.push("a <"), "a ");
        assert_eq!(r.held_len(), 1);
        assert_eq!(r.push("d"), "<d");
        assert_eq!(r.push("<PER"), "");
        assert_eq!(r.push("SON_2"), "");
        assert_eq!(r.push("> and <E"), "Zoë and ");
        assert_eq!(r.push("X"), "<EX");
        assert_eq!(r.push(" <PERSON_1"), " ");
        assert_eq!(r.finish(), "<PERSON_1");
    }

    #[test]
    fn nothing_is_held_when_the_session_issued_nothing() {
        let mut r = Restorer::new(with_entries(&[]));
        assert_eq!(r.push("a <PERSON_"), "a <PERSON_");
        assert_eq!(r.finish(), "");
    }

    #[test]
    fn a_huge_answer_streams_through_in_linear_time() {
        let s = sample();
        let text = "<PERSON_1> says <b>hi</b> < ".repeat(40_000);
        let mut r = Restorer::new(s.clone());
        let mut out = String::new();
        for chunk in text.as_bytes().chunks(7) {
            out.push_str(&r.push(std::str::from_utf8(chunk).unwrap()));
        }
        out.push_str(&r.finish());
        assert_eq!(out, restore(&text, &s));
    }

    fn piece() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("<PERSON_1>".to_string()),
            Just("<PERSON_2>".to_string()),
            Just("<EMAIL_ADDRESS_1>".to_string()),
            Just("<US_BANK_ROUTING_1>".to_string()),
            Just("<PERSON_12>".to_string()),
            Just("<PERSON_".to_string()),
            Just("<".to_string()),
            Just(">".to_string()),
            Just("<EMAIL".to_string()),
            "[a-zA-Z0-9_ <>é€😀]{0,6}",
        ]
    }

    proptest! {
        #[test]
        fn any_chunking_gives_the_whole_text_result(
            pieces in proptest::collection::vec(piece(), 0..12),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            let s = sample();
            let text: String = pieces.concat();
            let expected = restore(&text, &s);
            let boundaries: Vec<usize> = (0..=text.len()).filter(|i| text.is_char_boundary(*i)).collect();
            // Random cuts, and one char per chunk.
            let mut points: Vec<usize> = cuts.iter().map(|c| boundaries[c.index(boundaries.len())]).collect();
            points.sort_unstable();
            for splits in [points, boundaries.clone()] {
                let mut r = Restorer::new(s.clone());
                let mut out = String::new();
                let mut from = 0;
                for to in splits.into_iter().chain([text.len()]) {
                    if to < from { continue; }
                    out.push_str(&r.push(&text[from..to]));
                    prop_assert!(r.held_len() < MAX_PLACEHOLDER_LEN);
                    prop_assert!(r.held_len() < "<US_BANK_ROUTING_1>".len());
                    from = to;
                }
                out.push_str(&r.finish());
                prop_assert_eq!(&out, &expected);
            }
        }
    }
}
