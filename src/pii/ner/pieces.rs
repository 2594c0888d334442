//! Long texts cut into overlapping pieces of a few model windows each, so the pool can
//! serve them a piece at a time between other tenants' work, and the findings of the
//! pieces put back together as one text's.

use crate::pii::Finding;
use std::ops::Range;

/// Bytes in one piece at most: some two model windows of English, ~20 ms of one core.
pub const PIECE_BYTES: usize = 2048;

/// Bytes consecutive pieces share. Each piece owns the half of an overlap nearer its own
/// middle, so every owned byte has at least half an overlap (~30 tokens, as much as the
/// model's own window stride gives) of context on both sides.
const OVERLAP_BYTES: usize = 256;

/// How far back from a piece's end a cut looks for whitespace, rather than cut a word.
const CUT_SLACK: usize = 64;

/// One piece of a text: the bytes the model reads, and the bytes whose findings it keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    pub span: Range<usize>,
    owns: Range<usize>,
}

impl Piece {
    /// The findings of this piece (offsets in the piece) that it owns, in the text's
    /// offsets.
    pub fn keep(&self, found: Vec<Finding>) -> impl Iterator<Item = Finding> + '_ {
        let offset = self.span.start;
        found
            .into_iter()
            .map(move |f| Finding {
                start: f.start + offset,
                end: f.end + offset,
                ..f
            })
            .filter(|f| self.owns.contains(&f.start))
    }
}

/// The pieces of `text`, covering it in order; one piece for a short text, none for an
/// empty one.
pub fn split(text: &str) -> Vec<Piece> {
    let mut spans: Vec<Range<usize>> = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let end = cut_before(text, start + PIECE_BYTES);
        spans.push(start..end);
        if end == text.len() {
            break;
        }
        // The next piece starts an overlap back, at a word if one starts near there.
        start = word_start_after(text, end - OVERLAP_BYTES).max(start + 1);
        start = text.ceil_char_boundary(start);
    }
    let mut pieces = Vec::with_capacity(spans.len());
    let mut owned_from = 0;
    for (index, span) in spans.iter().enumerate() {
        let owned_to = match spans.get(index + 1) {
            Some(next) => text.floor_char_boundary((next.start + span.end) / 2),
            None => text.len(),
        };
        pieces.push(Piece {
            span: span.clone(),
            owns: owned_from..owned_to,
        });
        owned_from = owned_to;
    }
    pieces
}

/// Where a piece reaching for `limit` ends: the text's end, else just after the last
/// whitespace within [`CUT_SLACK`] bytes before `limit`, else the char boundary there.
fn cut_before(text: &str, limit: usize) -> usize {
    if limit >= text.len() {
        return text.len();
    }
    let limit = text.floor_char_boundary(limit);
    let from = text.floor_char_boundary(limit - CUT_SLACK);
    match text[from..limit].rfind(char::is_whitespace) {
        Some(at) => text.ceil_char_boundary(from + at + 1),
        None => limit,
    }
}

/// The first word start (just after whitespace) within [`CUT_SLACK`] bytes after `at`,
/// else `at`.
fn word_start_after(text: &str, at: usize) -> usize {
    let at = text.floor_char_boundary(at);
    let to = text.floor_char_boundary((at + CUT_SLACK).min(text.len()));
    match text[at..to].find(char::is_whitespace) {
        Some(found) => text.ceil_char_boundary(at + found + 1),
        None => at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn finding(start: usize, end: usize) -> Finding {
        Finding {
            class: "PERSON",
            start,
            end,
            score: 0.9,
            recognizer: "ner",
        }
    }

    #[test]
    fn short_and_empty_texts() {
        assert!(split("").is_empty());
        let pieces = split("Sarah Thompson");
        assert_eq!(pieces.len(), 1);
        assert_eq!(pieces[0].span, 0..14);
        let kept: Vec<_> = pieces[0].keep(vec![finding(0, 14)]).collect();
        assert_eq!(kept, vec![finding(0, 14)]);
    }

    #[test]
    fn pieces_overlap_at_words_and_each_finding_is_kept_once() {
        let text = "The weather is nice today and Sarah Thompson agrees. ".repeat(200);
        let pieces = split(&text);
        assert!(pieces.len() > 4, "{}", pieces.len());
        for pair in pieces.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            assert!(b.span.start < a.span.end, "they overlap");
            assert!(a.span.end - b.span.start >= OVERLAP_BYTES - CUT_SLACK);
            assert_eq!(a.owns.end, b.owns.start);
            assert!(text[..a.span.end].ends_with(' '), "cut after a word");
            assert!(text[..b.span.start].ends_with(' '), "start at a word");
        }
        // Every mention of the name, found by each piece that sees it whole, is kept by
        // exactly one piece.
        let mut kept = Vec::new();
        for piece in &pieces {
            let local = &text[piece.span.clone()];
            let found = local
                .match_indices("Sarah Thompson")
                .map(|(at, name)| finding(at, at + name.len()))
                .collect();
            kept.extend(piece.keep(found));
        }
        let expected: Vec<_> = text
            .match_indices("Sarah Thompson")
            .map(|(at, name)| finding(at, at + name.len()))
            .collect();
        kept.sort_by_key(|f| f.start);
        assert_eq!(kept, expected);
    }

    proptest! {
        #[test]
        fn pieces_cover_any_text_in_order_on_char_boundaries(
            text in "[a-zé€ \n]{0,6000}",
        ) {
            let pieces = split(&text);
            let mut owned = 0;
            for piece in &pieces {
                prop_assert!(text.is_char_boundary(piece.span.start));
                prop_assert!(text.is_char_boundary(piece.span.end));
                prop_assert!(piece.span.len() <= PIECE_BYTES);
                prop_assert_eq!(piece.owns.start, owned);
                prop_assert!(piece.span.start <= piece.owns.start);
                prop_assert!(piece.owns.end <= piece.span.end);
                owned = piece.owns.end;
            }
            prop_assert_eq!(owned, text.len());
        }
    }
}
