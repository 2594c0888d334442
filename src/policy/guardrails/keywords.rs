//! Keyword lists: one Aho-Corasick automaton over every term, ASCII case-insensitive.

use aho_corasick::{AhoCorasick, Anchored, Input, MatchKind, StartKind};
use std::cell::Cell;

/// Finds any of a list of terms in text, in one pass whatever the number of terms.
///
/// Matching is ASCII case-insensitive (`Secret` finds `SECRET`; non-ASCII letters must match
/// exactly) and leftmost-longest: where terms overlap, the one starting first wins, then
/// the longest of those.
///
/// The automaton holds the terms ASCII-lowercased and searches an ASCII-lowercased copy of
/// the text (a per-thread buffer, see [`with_ascii_lowercase`]): a case-sensitive automaton
/// keeps its SIMD prefilter, which `ascii_case_insensitive` loses (7 µs instead of 1 µs on
/// a 4 KB prompt with a 40-term list).
#[derive(Debug, Clone)]
pub struct KeywordMatcher {
    automaton: AhoCorasick,
    whole_words: bool,
    len: usize,
}

impl KeywordMatcher {
    /// `whole_words`: a match must not be preceded/followed by an alphanumeric char.
    pub fn new<I: IntoIterator<Item = S>, S: AsRef<str>>(
        terms: I,
        whole_words: bool,
    ) -> Result<Self, String> {
        let terms: Vec<S> = terms.into_iter().collect();
        if let Some(index) = terms.iter().position(|t| t.as_ref().trim().is_empty()) {
            return Err(format!(
                "keyword {index} is empty (or only whitespace): it would match everywhere"
            ));
        }
        let automaton = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            // Whole-word matching re-searches anchored at a candidate's start for a shorter
            // term when the longest one ends inside a word.
            .start_kind(if whole_words {
                StartKind::Both
            } else {
                StartKind::Unanchored
            })
            .build(terms.iter().map(|t| t.as_ref().to_ascii_lowercase()))
            .map_err(|e| format!("cannot build a matcher for {} keywords: {e}", terms.len()))?;
        Ok(Self {
            automaton,
            whole_words,
            len: terms.len(),
        })
    }

    /// Index (into the terms given to new) of the first term found, if any.
    ///
    /// "First" is the leftmost match in `text` (the longest term there if several start
    /// at the same place) that satisfies the whole-word rule when it applies.
    pub fn find(&self, text: &str) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        with_ascii_lowercase(text, |lower| self.find_lowercased(text, lower))
    }

    /// `lower` is `text` ASCII-lowercased: the same length, the same byte offsets.
    fn find_lowercased(&self, text: &str, lower: &[u8]) -> Option<usize> {
        if !self.whole_words {
            return self
                .search(Input::new(lower))
                .map(|m| m.pattern().as_usize());
        }
        let mut from = 0;
        while from <= lower.len() {
            let m = self.search(Input::new(lower).span(from..lower.len()))?;
            let start = m.start();
            if starts_word(text, start) {
                // The longest term here may run into a word ("new york" in "new yorker")
                // while a shorter one ("new") ends cleanly: try shorter terms at `start`.
                let mut end = m.end();
                let mut pattern = m.pattern().as_usize();
                loop {
                    if ends_word(text, end) {
                        return Some(pattern);
                    }
                    if end <= start + 1 {
                        break;
                    }
                    let input = Input::new(lower)
                        .span(start..end - 1)
                        .anchored(Anchored::Yes);
                    match self.search(input) {
                        Some(shorter) => {
                            end = shorter.end();
                            pattern = shorter.pattern().as_usize();
                        }
                        None => break,
                    }
                }
            }
            // No valid match starts at `start`, nor anywhere before the next position that
            // follows a non-alphanumeric char: resume there.
            from = next_word_start(text, start)?;
        }
        None
    }

    /// How many terms the matcher was built from.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when it was built from no terms (it then never finds anything).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn search(&self, input: Input<'_>) -> Option<aho_corasick::Match> {
        self.automaton.try_find(input).ok().flatten()
    }
}

/// Which of a few owners (bit sets, e.g. detectors) have one of their literals in a text:
/// the prefilter in front of the secret and injection regexes. One SIMD-prefiltered
/// Aho-Corasick pass; the text must be ASCII-lowercased, like the literals.
#[derive(Debug)]
pub(crate) struct LiteralSet {
    automaton: AhoCorasick,
    /// By literal: the owners of the literal or of any literal inside it (found with it).
    masks: Vec<u32>,
    /// By literal: where, after a match starting at `s`, the next literal not already
    /// accounted for may start (`s + skip`), see `present`.
    skips: Vec<usize>,
}

impl LiteralSet {
    /// `owners`: `(literals, bit)` pairs. `None` if the automaton cannot be built.
    pub(crate) fn new<'a>(owners: impl IntoIterator<Item = (&'a [&'a str], u32)>) -> Option<Self> {
        let mut words: Vec<&str> = Vec::new();
        let mut own: Vec<u32> = Vec::new();
        for (literals, bit) in owners {
            for literal in literals {
                match words.iter().position(|w| w == literal) {
                    Some(at) => {
                        if let Some(mask) = own.get_mut(at) {
                            *mask |= bit;
                        }
                    }
                    None => {
                        words.push(literal);
                        own.push(bit);
                    }
                }
            }
        }
        let masks = words
            .iter()
            .map(|w| {
                words
                    .iter()
                    .zip(&own)
                    .filter(|(inner, _)| w.contains(**inner))
                    .fold(0, |mask, (_, m)| mask | m)
            })
            .collect();
        // The first offset inside `w` where a literal reaching past the end of `w` can
        // start; literals wholly inside `w` are already in its mask.
        let skips: Vec<usize> = words
            .iter()
            .map(|w| {
                (1..w.len())
                    .find(|k| {
                        w.get(*k..).is_some_and(|tail| {
                            words
                                .iter()
                                .any(|v| v.len() > tail.len() && v.starts_with(tail))
                        })
                    })
                    .unwrap_or(w.len().max(1))
            })
            .collect();
        // Leftmost-longest: overlapping (standard) semantics would lose the prefilter.
        let automaton = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&words)
            .ok()?;
        Some(Self {
            automaton,
            masks,
            skips,
        })
    }

    /// The union of the owners of the literals in `lower`, stopping early once it is `all`.
    ///
    /// Sound without an overlapping search: at each match, the longest literal there is
    /// reported (its mask covers the shorter ones, being inside it), and the search resumes
    /// at the first offset where a literal not inside it could start.
    pub(crate) fn present(&self, lower: &[u8], all: u32) -> u32 {
        let mut mask = 0;
        let mut from = 0;
        while mask != all
            && from <= lower.len()
            && let Some(m) = self
                .automaton
                .try_find(Input::new(lower).span(from..lower.len()))
                .ok()
                .flatten()
        {
            let literal = m.pattern().as_usize();
            mask |= self.masks.get(literal).copied().unwrap_or(0);
            from = m.start() + self.skips.get(literal).copied().unwrap_or(1);
        }
        mask
    }
}

/// Runs `f` on an ASCII-lowercased copy of `text` (same length and byte offsets; valid
/// UTF-8 still, as only `A`–`Z` change). The copy lives in a per-thread buffer, so the hot
/// path allocates nothing once the buffer has grown to the usual prompt size; a buffer
/// grown past 256 KiB by a huge text is released afterwards.
pub(crate) fn with_ascii_lowercase<R>(text: &str, f: impl FnOnce(&[u8]) -> R) -> R {
    const KEEP: usize = 256 << 10;
    thread_local! {
        static BUFFER: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
    }
    // Taken out while in use: a nested call finds it empty and gets its own.
    let mut buffer = BUFFER.try_with(Cell::take).unwrap_or_default();
    buffer.clear();
    buffer.extend_from_slice(text.as_bytes());
    buffer.make_ascii_lowercase();
    let result = f(&buffer);
    if buffer.capacity() <= KEEP {
        let _ = BUFFER.try_with(|cell| cell.set(buffer));
    }
    result
}

/// True when the char before byte `at` (if any) is not alphanumeric.
fn starts_word(text: &str, at: usize) -> bool {
    text.get(..at)
        .and_then(|before| before.chars().next_back())
        .is_none_or(|c| !c.is_alphanumeric())
}

/// True when the char at byte `at` (if any) is not alphanumeric.
fn ends_word(text: &str, at: usize) -> bool {
    text.get(at..)
        .and_then(|after| after.chars().next())
        .is_none_or(|c| !c.is_alphanumeric())
}

/// The first byte offset after `at` that follows a non-alphanumeric char: the next place a
/// whole-word match may start. `None` when there is none.
fn next_word_start(text: &str, at: usize) -> Option<usize> {
    let rest = text.get(at..)?;
    rest.char_indices()
        .find(|(_, c)| !c.is_alphanumeric())
        .map(|(i, c)| at + i + c.len_utf8())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(terms: &[&str], whole: bool) -> KeywordMatcher {
        KeywordMatcher::new(terms.iter().copied(), whole).unwrap()
    }

    #[test]
    fn finds_terms_case_insensitively() {
        let k = m(&["secret project", "codename"], false);
        assert_eq!(k.find("about the SECRET Project plan"), Some(0));
        assert_eq!(k.find("CodeName: falcon"), Some(1));
        assert_eq!(k.find("nothing here"), None);
        assert_eq!(k.len(), 2);
        assert!(!k.is_empty());
    }

    #[test]
    fn substring_mode_matches_inside_words() {
        let k = m(&["cat"], false);
        assert_eq!(k.find("concatenate"), Some(0));
    }

    #[test]
    fn leftmost_then_longest() {
        let k = m(&["new", "new york", "york"], false);
        assert_eq!(k.find("in new york city"), Some(1));
        assert_eq!(k.find("york, new"), Some(2));
    }

    #[test]
    fn whole_words_rejects_parts_of_words() {
        let k = m(&["cat"], true);
        assert_eq!(k.find("concatenate"), None);
        assert_eq!(k.find("cats"), None);
        assert_eq!(k.find("cat"), Some(0));
        assert_eq!(k.find("a cat."), Some(0));
        assert_eq!(k.find("(cat)"), Some(0));
        assert_eq!(k.find("_cat_"), Some(0), "underscore is not alphanumeric");
    }

    #[test]
    fn rejected_candidate_does_not_hide_a_later_match() {
        let k = m(&["cat"], true);
        assert_eq!(k.find("concat cat"), Some(0));
        assert_eq!(k.find("catalog concat cat"), Some(0));
        // A rejected match overlapping a valid one: "a b" starts inside "xa".
        let k = m(&["a b", "b c"], true);
        assert_eq!(k.find("xa b c"), Some(1));
    }

    #[test]
    fn falls_back_to_a_shorter_term_at_the_same_start() {
        let k = m(&["new", "new york"], true);
        assert_eq!(k.find("new yorker"), Some(0));
        assert_eq!(k.find("new york!"), Some(1));
        let k = m(&["ab", "abc", "abcd"], true);
        assert_eq!(k.find("abcde abc"), Some(1));
        assert_eq!(k.find("abcx"), None);
    }

    #[test]
    fn unicode_neighbours_count_as_letters() {
        let k = m(&["cafe"], true);
        assert_eq!(k.find("écafe"), None);
        assert_eq!(k.find("cafeé"), None);
        assert_eq!(k.find("« cafe »"), Some(0));
        assert_eq!(k.find("\u{200B}cafe\u{200B}"), Some(0));
        let k = m(&["naïve"], true);
        assert_eq!(k.find("so NAÏVE"), None, "only ASCII letters fold case");
        assert_eq!(k.find("so naïve"), Some(0));
    }

    #[test]
    fn rejects_empty_terms_naming_the_index() {
        let err = KeywordMatcher::new(["ok", "", "fine"], true).unwrap_err();
        assert!(err.contains("keyword 1"), "{err}");
        let err = KeywordMatcher::new(["ok", "  "], false).unwrap_err();
        assert!(err.contains("keyword 1"), "{err}");
    }

    #[test]
    fn no_terms_finds_nothing() {
        let k = KeywordMatcher::new(Vec::<String>::new(), true).unwrap();
        assert!(k.is_empty());
        assert_eq!(k.find("anything at all"), None);
        assert_eq!(k.find(""), None);
    }

    #[test]
    fn empty_and_hostile_text() {
        let k = m(&["x"], true);
        assert_eq!(k.find(""), None);
        assert_eq!(k.find("\u{10FFFF}x\u{E0001}"), Some(0));
        assert_eq!(k.find("é".repeat(10_000).as_str()), None);
    }

    #[test]
    fn hundred_thousand_terms() {
        let terms: Vec<String> = (0..100_000).map(|i| format!("term{i:06}x")).collect();
        let k = KeywordMatcher::new(&terms, true).unwrap();
        assert_eq!(k.len(), 100_000);
        assert_eq!(k.find("we saw TERM054321X today"), Some(54_321));
        assert_eq!(k.find("we saw term054321xy and term099999x"), Some(99_999));
        assert_eq!(k.find("no terms here at all"), None);
    }

    proptest::proptest! {
        #[test]
        fn never_panics_and_agrees_with_a_naive_search(
            text in "[a-c \\-é\u{200B}]{0,40}",
            terms in proptest::collection::vec("[a-c][a-c \\-]{0,3}", 1..5),
        ) {
            let k = KeywordMatcher::new(&terms, true).unwrap();
            let naive = naive_whole_word(&terms, &text);
            proptest::prop_assert_eq!(k.find(&text).is_some(), naive.is_some());
            if let (Some(got), Some((start, _))) = (k.find(&text), naive) {
                // Same leftmost start; the term found there matches as a whole word.
                let t = terms[got].as_str();
                let hit = text.get(start..start + t.len()).unwrap();
                proptest::prop_assert!(hit.eq_ignore_ascii_case(t));
            }
        }
    }

    #[test]
    fn literal_set_sees_overlapping_literals() {
        // "_c" hides "ca" from a plain non-overlapping search.
        let set = LiteralSet::new([(&["ca"][..], 1), (&["_c"][..], 2)]).unwrap();
        assert_eq!(set.present(b"___caa", 3), 3);
        assert_eq!(set.present(b"___c", 3), 2);
        assert_eq!(set.present(b"", 3), 0);
    }

    proptest::proptest! {
        /// `present` finds every owner a naive substring test finds, overlaps and all.
        #[test]
        fn literal_set_agrees_with_a_naive_search(
            text in "[abc_]{0,40}",
            owners in proptest::collection::vec(proptest::collection::vec("[abc_]{1,4}", 1..4), 1..6),
        ) {
            let owners: Vec<Vec<&str>> = owners
                .iter()
                .map(|literals| literals.iter().map(String::as_str).collect())
                .collect();
            let set = LiteralSet::new(
                owners.iter().enumerate().map(|(i, l)| (l.as_slice(), 1u32 << i)),
            )
            .unwrap();
            let all = (1u32 << owners.len()) - 1;
            let naive = owners
                .iter()
                .enumerate()
                .filter(|(_, literals)| literals.iter().any(|l| text.contains(l)))
                .fold(0, |mask, (i, _)| mask | 1 << i);
            proptest::prop_assert_eq!(set.present(text.as_bytes(), all), naive);
        }
    }

    /// The leftmost start, then the longest term, of any whole-word match.
    fn naive_whole_word(terms: &[String], text: &str) -> Option<(usize, usize)> {
        let lower = text.to_ascii_lowercase();
        let mut best: Option<(usize, usize)> = None;
        for (i, t) in terms.iter().enumerate() {
            let t = t.to_ascii_lowercase();
            let mut from = 0;
            while let Some(off) = lower.get(from..).and_then(|r| r.find(&t)) {
                let s = from + off;
                let e = s + t.len();
                if starts_word(text, s) && ends_word(text, e) {
                    let better = match best {
                        None => true,
                        Some((bs, bi)) => s < bs || (s == bs && t.len() > terms[bi].len()),
                    };
                    if better {
                        best = Some((s, i));
                    }
                }
                from = s + lower[s..].chars().next().map_or(1, char::len_utf8);
            }
        }
        best
    }
}
