//! Text for a terminal: values from the state database, the audit trail or a file
//! (tenant and key names, policy messages, user ids callers sent) are printed with
//! their control characters escaped, so none can move the cursor, rewrite earlier lines,
//! retitle the window or reorder text (bidirectional overrides) on an operator's screen.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Prints one line of formatted output with every control character escaped.
macro_rules! row {
    ($($arg:tt)*) => {
        println!("{}", $crate::cli::terminal::safe(&format!($($arg)*)))
    };
}
pub(crate) use row;

/// `text` with control characters (C0, DEL, C1) and bidirectional formatting characters
/// written as `\u{…}` escapes; unchanged (borrowed) when it has none.
pub fn safe(text: &str) -> Cow<'_, str> {
    if !text.chars().any(unsafe_on_terminal) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_on_terminal(c) {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn unsafe_on_terminal(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_and_bidi_characters_are_escaped_and_the_rest_kept() {
        assert!(matches!(
            safe("acme café 東京"),
            Cow::Borrowed("acme café 東京")
        ));
        assert_eq!(
            safe("evil\u{1b}[2J\u{1b}]0;pwned\u{7}"),
            "evil\\u{1b}[2J\\u{1b}]0;pwned\\u{7}"
        );
        assert_eq!(
            safe("a\nb\rc\td\u{7f}e\u{9b}f"),
            "a\\u{a}b\\u{d}c\\u{9}d\\u{7f}e\\u{9b}f"
        );
        assert_eq!(safe("abc\u{202e}fed"), "abc\\u{202e}fed");
    }
}
