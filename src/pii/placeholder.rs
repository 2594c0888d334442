//! The placeholder format `<CLASS_N>` that tokenisation writes and restoration reads back.

use super::classes::DATA_CLASSES;
use std::collections::HashSet;

const fn longest_class() -> usize {
    let mut longest = 0;
    let mut index = 0;
    while index < DATA_CLASSES.len() {
        if DATA_CLASSES[index].len() > longest {
            longest = DATA_CLASSES[index].len();
        }
        index += 1;
    }
    longest
}

/// The longest placeholder there can be: `<`, a class name, `_`, a `u32` counter, `>`.
pub const MAX_PLACEHOLDER_LEN: usize = longest_class() + 13;

/// The placeholder for the `n`th value of `class` in a session.
pub fn format(class: &str, n: u32) -> String {
    format!("<{class}_{n}>")
}

/// Whether `byte` may stand between a placeholder's `<` and `>`.
fn is_body_byte(byte: u8) -> bool {
    byte.is_ascii_uppercase() || byte.is_ascii_digit() || byte == b'_'
}

/// The class and counter of a placeholder, if `text` is exactly one.
pub fn parse(text: &str) -> Option<(&'static str, u32)> {
    let body = text.strip_prefix('<')?.strip_suffix('>')?;
    let (class, n) = body.rsplit_once('_')?;
    let class = DATA_CLASSES.iter().find(|known| **known == class)?;
    if n.is_empty() || n.starts_with('0') || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((class, n.parse().ok()?))
}

/// Where a placeholder opened by the `<` at `open` would have its `>`: just past the
/// body characters that follow (at most [`MAX_PLACEHOLDER_LEN`] of them).
pub fn close_of(bytes: &[u8], open: usize) -> usize {
    let body = bytes[open + 1..]
        .iter()
        .take(MAX_PLACEHOLDER_LEN)
        .take_while(|b| is_body_byte(**b))
        .count();
    open + 1 + body
}

/// Every placeholder look-alike (`<` body characters `>`) already present in `text`, so
/// new placeholders never coincide with text a user or document wrote.
pub fn lookalikes(text: &str) -> HashSet<&str> {
    let bytes = text.as_bytes();
    let mut found = HashSet::new();
    let mut at = 0;
    while let Some(offset) = memchr::memchr(b'<', &bytes[at..]) {
        let open = at + offset;
        let close = close_of(bytes, open);
        if close > open + 1 && bytes.get(close) == Some(&b'>') {
            found.insert(&text[open..=close]);
        }
        at = open + 1;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_and_parse_agree() {
        assert_eq!(format("EMAIL_ADDRESS", 2), "<EMAIL_ADDRESS_2>");
        assert_eq!(parse("<EMAIL_ADDRESS_2>"), Some(("EMAIL_ADDRESS", 2)));
        let longest = format("US_BANK_ROUTING", u32::MAX);
        assert!(longest.len() <= MAX_PLACEHOLDER_LEN);
        for bad in [
            "<PERSON>",
            "<PERSON_>",
            "<NAME_1>",
            "<PERSON_01>",
            "PERSON_1",
            "<PERSON_x>",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn lookalikes_are_found_without_tags() {
        let text = "<PERSON_1> and <div> <<EMAIL_ADDRESS_3>> <> <PERSON_2";
        let found = lookalikes(text);
        assert_eq!(found.len(), 2);
        assert!(found.contains("<PERSON_1>") && found.contains("<EMAIL_ADDRESS_3>"));
    }
}
