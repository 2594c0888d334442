//! Masking the model's own personal data in a streamed answer: text is held back only
//! while a value in it could still be incomplete (a short lookahead, or an unfinished
//! PEM key), then scanned by the recognizers and sent on with those values masked.

use super::output_scan::mask_model_data;
use super::session::Session;
use super::{Finding, recognize, resolve_overlaps};
use std::sync::Arc;

/// Bytes always held behind the last cut. A value with whitespace inside (a spaced card
/// number or IBAN, a phone number) and shorter than this is never cut in two: if it
/// straddled a cut, it would lie wholly in the scanned text and be found there.
/// Whitespace-free values (tokens, emails) are never cut, since cuts follow whitespace.
pub const LOOKAHEAD: usize = 64;

/// Held text beyond which everything held is scanned and sent regardless: a stream
/// without whitespace, or a key block that never ends, is not held forever.
const MAX_HOLD: usize = 16 * 1024;

/// Already-sent text kept in front of the held text while scanning, so context words
/// ("passport", "born") just before a value still count.
const CONTEXT: usize = 64;

/// Masks personal data the model produced in one streamed text (one choice), leaving the
/// values `session` tokenised (the user's own, just restored) as they are.
pub struct StreamMasker {
    session: Arc<Session>,
    /// The tail of what was sent: context for the recognizers, never sent again.
    sent_tail: String,
    held: String,
}

impl StreamMasker {
    pub fn new(session: Arc<Session>) -> Self {
        Self {
            session,
            sent_tail: String::new(),
            held: String::new(),
        }
    }

    /// Takes the next piece of (restored) text; returns what can be sent now, masked.
    pub fn push(&mut self, text: &str) -> String {
        self.held.push_str(text);
        // Without whitespace before the lookahead there is no cut to make: skip the scan.
        let over = self.held.len() > MAX_HOLD;
        let limit = self
            .held
            .floor_char_boundary(self.held.len().saturating_sub(LOOKAHEAD));
        if !over && !self.held[..limit].contains(char::is_whitespace) {
            return String::new();
        }
        let findings = self.findings();
        if over {
            return self.release(self.held.len(), &findings);
        }
        let cut = safe_cut(&self.held, &findings);
        self.release(cut, &findings)
    }

    /// Ends the text: everything held, masked.
    pub fn finish(&mut self) -> String {
        let findings = self.findings();
        self.release(self.held.len(), &findings)
    }

    /// Bytes held back right now.
    pub fn held_len(&self) -> usize {
        self.held.len()
    }

    /// The recognizers' findings in the held text (scanned after the sent tail), with
    /// offsets into the held text; those that began in already-sent text are left out.
    fn findings(&self) -> Vec<Finding> {
        let offset = self.sent_tail.len();
        let window = [self.sent_tail.as_str(), self.held.as_str()].concat();
        resolve_overlaps(recognize(&window))
            .into_iter()
            .filter(|f| f.start >= offset)
            .map(|f| Finding {
                start: f.start - offset,
                end: f.end - offset,
                ..f
            })
            .collect()
    }

    /// Sends the held text up to `cut`, masking the findings that end by then.
    fn release(&mut self, cut: usize, findings: &[Finding]) -> String {
        if cut == 0 {
            return String::new();
        }
        let rest = self.held.split_off(cut);
        let sent = std::mem::replace(&mut self.held, rest);
        let inside: Vec<Finding> = findings.iter().filter(|f| f.end <= cut).cloned().collect();
        let masked = mask_model_data(&sent, &inside, &self.session).text;
        self.sent_tail.push_str(&sent);
        let keep_from = self
            .sent_tail
            .ceil_char_boundary(self.sent_tail.len().saturating_sub(CONTEXT));
        self.sent_tail.drain(..keep_from);
        masked
    }
}

/// The furthest point at least [`LOOKAHEAD`] bytes before the end that follows
/// whitespace and lies inside no finding (0 when there is none).
fn safe_cut(held: &str, findings: &[Finding]) -> usize {
    let mut limit = held.floor_char_boundary(held.len() - LOOKAHEAD);
    loop {
        let Some(cut) = held[..limit]
            .rfind(char::is_whitespace)
            .map(|at| held.ceil_char_boundary(at + 1))
        else {
            return 0;
        };
        match findings
            .iter()
            .filter(|f| f.start < cut && cut < f.end)
            .map(|f| f.start)
            .min()
        {
            Some(start) => limit = start,
            None => return cut,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pii::action::ActionPlan;
    use crate::pii::session::tests::session;
    use crate::pii::transform::{apply, tests::finding};
    use proptest::prelude::*;

    /// The whole text masked at once, as the gateway masks a whole answer.
    fn masked_whole(text: &str, session: &Arc<Session>) -> String {
        crate::pii::output_scan::mask_whole_answer(text, session)
    }

    fn streamed(pieces: &[&str], session: &Arc<Session>) -> String {
        let mut masker = StreamMasker::new(Arc::clone(session));
        let mut out = String::new();
        for piece in pieces {
            out.push_str(&masker.push(piece));
            assert!(masker.held_len() <= MAX_HOLD + piece.len());
        }
        out + &masker.finish()
    }

    const ANSWER: &str = "Sure. You can reach our billing team at billing@example.com or on \
        +44 20 7946 0958 during office hours. Pay with card 4111 1111 1111 1111 or the IBAN \
        GB82 WEST 1234 5698 7654 32, and quote passport number 123456789 when asked. \
        Thanks for writing to us today, and have a good week!";

    #[test]
    fn values_are_masked_however_the_stream_is_cut() {
        let s = Arc::new(session(10));
        let whole = masked_whole(ANSWER, &s);
        for class in [
            "EMAIL_ADDRESS",
            "PHONE_NUMBER",
            "CREDIT_CARD",
            "IBAN",
            "PASSPORT",
        ] {
            assert!(whole.contains(&format!("[{class}]")), "{class}: {whole}");
        }
        for size in [1, 2, 3, 5, 7, 16, 64] {
            let pieces: Vec<&str> = ANSWER
                .as_bytes()
                .chunks(size)
                .map(|c| std::str::from_utf8(c).unwrap_or(""))
                .collect();
            assert_eq!(streamed(&pieces, &s), whole, "pieces of {size}");
        }
    }

    #[test]
    fn text_goes_out_once_the_lookahead_is_past() {
        let s = Arc::new(session(10));
        let mut masker = StreamMasker::new(s);
        let prose = "Hello there, this is plain prose with nothing personal in it, so it flows. ";
        let first = masker.push(prose);
        assert!(first.starts_with("Hello "), "{first}");
        assert!(masker.held_len() <= LOOKAHEAD + "there, ".len());
        let rest = masker.push("Bye.") + &masker.finish();
        assert_eq!(first + &rest, format!("{prose}Bye."));
    }

    #[test]
    fn the_users_restored_values_stay_visible() {
        let s = Arc::new(session(10));
        let prompt = "Mail ann@x.io please";
        apply(
            prompt,
            &[finding(prompt, "ann@x.io", "EMAIL_ADDRESS")],
            &ActionPlan::default(),
            &s,
        );
        let text =
            "I wrote to ann@x.io and copied bob@y.io as you asked, the rest follows later on.";
        assert_eq!(
            streamed(&[text], &s),
            "I wrote to ann@x.io and copied [EMAIL_ADDRESS] as you asked, the rest follows later on."
        );
    }

    #[test]
    fn an_unfinished_key_block_is_held_and_then_masked() {
        let s = Arc::new(session(10));
        let body = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n".repeat(6);
        let pem = format!("-----BEGIN PRIVATE KEY-----\n{body}-----END PRIVATE KEY-----");
        let text =
            format!("Here is the key:\n{pem}\nKeep it safe and do not share it with anyone else.");
        let mut masker = StreamMasker::new(Arc::clone(&s));
        let mut out = String::new();
        for line in text.split_inclusive('\n') {
            out.push_str(&masker.push(line));
            assert!(!out.contains("MIIE"), "key material went out: {out}");
        }
        out.push_str(&masker.finish());
        assert!(!out.contains("MIIE"), "{out}");
        assert!(out.contains("[SECRET]"), "{out}");
    }

    #[test]
    fn a_stream_without_whitespace_is_not_held_forever() {
        let s = Arc::new(session(10));
        let mut masker = StreamMasker::new(s);
        let mut sent = 0;
        for _ in 0..40 {
            sent += masker.push(&"x".repeat(1000)).len();
        }
        assert!(sent >= 40_000 - MAX_HOLD, "{sent}");
        assert!(masker.held_len() <= MAX_HOLD);
    }

    /// Answers made of prose, values the recognizers find (several with spaces inside,
    /// some needing a context word before them) and random filler, in any order.
    fn answer() -> impl Strategy<Value = String> {
        let word = prop_oneof![
            proptest::sample::select(vec![
                "Sure,",
                "call",
                "+44 20 7946 0958",
                "card",
                "4111 1111 1111 1111",
                "IBAN",
                "GB82 WEST 1234 5698 7654 32",
                "mail",
                "billing@example.com",
                "passport",
                "123456789",
                "born",
                "12 March 1980",
                "ssn",
                "078-05-1121",
                "host",
                "10.1.2.3",
                "the",
                "rest",
                "é",
                "thanks",
            ])
            .prop_map(str::to_owned),
            "[a-z0-9@.+é-]{1,8}",
        ];
        let gap = proptest::sample::select(vec![" ", " ", " ", "\n", "  ", ""]);
        proptest::collection::vec((word, gap), 0..40)
            .prop_map(|parts| parts.into_iter().map(|(w, g)| w + g).collect())
    }

    proptest! {
        #[test]
        fn any_cutting_of_any_text_matches_the_whole(
            text in answer(),
            cuts in proptest::collection::vec(0usize..600, 0..12),
        ) {
            let s = Arc::new(session(10));
            let mut bounds: Vec<usize> = cuts
                .into_iter()
                .map(|c| text.floor_char_boundary(c.min(text.len())))
                .collect();
            bounds.push(0);
            bounds.push(text.len());
            bounds.sort_unstable();
            bounds.dedup();
            let pieces: Vec<&str> = bounds.windows(2).map(|w| &text[w[0]..w[1]]).collect();
            // Exactly what masking the whole answer at once gives, however it is cut.
            prop_assert_eq!(streamed(&pieces, &s), masked_whole(&text, &s));
        }
    }
}
