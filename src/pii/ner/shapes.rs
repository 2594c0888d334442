//! Word shapes for a model trained with them (`"word_shapes": true` in its config): the
//! uncased vocabulary cannot see capitals, so each token also gets its word's shape, as
//! `models/train/common.py` computes it.

/// No letters.
const NONE: i64 = 0;
/// No capitals, or a script without case; also `iPhone`.
const LOWER: i64 = 1;
/// Starts with a capital.
const TITLE: i64 = 2;
/// All capitals, at least two letters.
const UPPER: i64 = 3;

/// The shape of one word.
fn word_shape(word: &str) -> i64 {
    let mut letters = word.chars().filter(|c| c.is_alphabetic());
    let Some(first) = letters.next() else {
        return NONE;
    };
    let (mut count, mut uppers) = (1usize, usize::from(first.is_uppercase()));
    for letter in letters {
        count += 1;
        uppers += usize::from(letter.is_uppercase());
    }
    match uppers {
        0 => LOWER,
        _ if uppers == count && count >= 2 => UPPER,
        _ if first.is_uppercase() => TITLE,
        _ => LOWER,
    }
}

/// Each token's word shape (pieces sharing a word id form one word).
pub fn shape_ids(text: &str, encoding: &tokenizers::Encoding) -> Vec<i64> {
    let offsets = encoding.get_offsets();
    let words = encoding.get_word_ids();
    let mut shapes = vec![NONE; offsets.len()];
    let mut first = 0;
    while first < offsets.len() {
        let mut end = first + 1;
        while end < offsets.len() && words[first].is_some() && words[end] == words[first] {
            end += 1;
        }
        let start = offsets[first].0;
        let stop = offsets[first..end]
            .iter()
            .map(|o| o.1)
            .max()
            .unwrap_or(start);
        let shape = text.get(start..stop).map_or(NONE, word_shape);
        shapes[first..end].fill(shape);
        first = end;
    }
    shapes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_match_the_training_recipe() {
        for (word, shape) in [
            ("Anna", TITLE),
            ("ANNA", UPPER),
            ("anna", LOWER),
            ("iPhone", LOWER),
            ("McDonald", TITLE),
            ("A", TITLE),
            ("12", NONE),
            ("É", TITLE),
            ("straße", LOWER),
            ("北京", LOWER),
        ] {
            assert_eq!(word_shape(word), shape, "{word}");
        }
    }
}
