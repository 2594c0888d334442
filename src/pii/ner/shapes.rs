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
    let words = super::decode::words(encoding);
    let mut shapes = vec![NONE; encoding.len()];
    for (index, word) in words.iter().enumerate() {
        let next = words.get(index + 1).map_or(shapes.len(), |w| w.token);
        let shape = text.get(word.start..word.end).map_or(NONE, word_shape);
        shapes[word.token..next].fill(shape);
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
