//! Context words: words shortly before a candidate that make it more or less likely to be
//! what it looks like ("routing" before nine digits, "version" before a dotted quad).

/// How many bytes before a candidate are searched for context words.
pub const WINDOW: usize = 48;
/// Added to the base score when a supporting word is in the window.
pub const SUPPORT_BOOST: f32 = 0.25;
/// Subtracted from the base score when a word suggesting something else is in the window.
pub const AGAINST_PENALTY: f32 = 0.3;

/// A recognizer's context words, lowercase ASCII (matched in any ASCII case, as whole
/// words: not preceded or followed by a letter or digit).
pub struct Context {
    pub support: &'static [&'static str],
    pub against: &'static [&'static str],
}

impl Context {
    /// `base`, raised by a supporting word or lowered by a word suggesting something else
    /// in the window before `start` (when both occur, the one nearer the candidate
    /// decides: "SSN 123-45-6789, bank routing number 021000021"), clamped to 0..=1.
    pub fn score(&self, text: &str, start: usize, base: f32) -> f32 {
        let bytes = text.as_bytes();
        let end = start.min(bytes.len());
        let window = bytes.get(end.saturating_sub(WINDOW)..end).unwrap_or(&[]);
        let nearest = |words: &[&str]| {
            words
                .iter()
                .filter_map(|w| last_word_at(window, w.as_bytes()))
                .max()
        };
        let score = match (nearest(self.support), nearest(self.against)) {
            (Some(support), Some(against)) if against > support => base - AGAINST_PENALTY,
            (Some(_), _) => base + SUPPORT_BOOST,
            (None, Some(_)) => base - AGAINST_PENALTY,
            (None, None) => base,
        };
        score.clamp(0.0, 1.0)
    }
}

/// Where the last whole-word occurrence of `word` (ASCII case-insensitively) starts in
/// `window`.
pub fn last_word_at(window: &[u8], word: &[u8]) -> Option<usize> {
    if word.is_empty() || word.len() > window.len() {
        return None;
    }
    let is_word_byte = |b: Option<&u8>| b.is_some_and(u8::is_ascii_alphanumeric);
    (0..=window.len() - word.len()).rev().find(|&at| {
        window
            .get(at..at + word.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(word))
            && !is_word_byte(at.checked_sub(1).and_then(|b| window.get(b)))
            && !is_word_byte(window.get(at + word.len()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTEXT: Context = Context {
        support: &["routing", "aba"],
        against: &["order number", "v"],
    };

    #[test]
    fn supporting_and_opposing_words_move_the_score() {
        let text = "ABA routing: 011000015";
        assert_eq!(CONTEXT.score(text, 13, 0.3), 0.3 + SUPPORT_BOOST);
        let text = "Order Number 011000015";
        assert!((CONTEXT.score(text, 13, 0.3) - 0.0).abs() < 1e-6);
        // Both kinds: the nearer word decides.
        let text = "order number 7, routing 011000015";
        assert_eq!(CONTEXT.score(text, 24, 0.3), 0.3 + SUPPORT_BOOST);
        let text = "routing or order number 011000015";
        assert!((CONTEXT.score(text, 24, 0.3) - 0.0).abs() < 1e-6);
        assert_eq!(CONTEXT.score("nothing here 011000015", 13, 0.3), 0.3);
    }

    #[test]
    fn words_match_whole_words_only_and_within_the_window() {
        assert_eq!(last_word_at(b"see v 1.2 v", b"v"), Some(10));
        assert_eq!(last_word_at(b"invalid 1.2", b"v"), None);
        assert_eq!(last_word_at(b"abarouting", b"aba"), None);
        let far = format!("routing{}011000015", " ".repeat(WINDOW));
        assert_eq!(CONTEXT.score(&far, far.len() - 9, 0.3), 0.3);
        // A start past the end or inside a multibyte char does not panic.
        assert_eq!(CONTEXT.score("é", 1, 0.5), 0.5);
        assert_eq!(CONTEXT.score("x", 99, 0.5), 0.5);
    }
}
