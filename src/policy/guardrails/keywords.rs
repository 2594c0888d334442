//! Literal scanning shared by the detectors: a prefilter of short literals (which
//! detectors could match at all), over an ASCII-lowercased view of the text kept in a
//! per-thread buffer.

use aho_corasick::{AhoCorasick, Input, MatchKind};
use std::cell::Cell;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
