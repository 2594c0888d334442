//! Email addresses: a local part, `@`, and a domain ending in an alphabetic top-level label.

use super::context::Context;
use super::{LazyRegex, Recognizer, Scan, compile};
use crate::pii::Finding;
use std::sync::LazyLock;

const BASE: f32 = 0.9;

const EMAIL: Recognizer = Recognizer {
    class: "EMAIL_ADDRESS",
    name: "email",
    context: Context {
        support: &["email", "e-mail", "mail", "contact", "from", "to", "cc"],
        against: &["git", "ssh", "npm", "package", "version"],
    },
};

static PATTERN: LazyRegex = LazyLock::new(|| {
    compile(
        r"(?-u:\b)[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*\.[A-Za-z]{2,24}(?-u:\b)",
    )
});

pub fn find(scan: &Scan<'_>, out: &mut Vec<Finding>) {
    let text = scan.text;
    if memchr::memchr(b'@', text.as_bytes()).is_none() {
        return;
    }
    EMAIL.scan(scan, &PATTERN, out, |m| {
        let local = m.as_str().split('@').next().unwrap_or("");
        (!local.ends_with('.') && !local.contains("..")).then_some(BASE)
    });
}

#[cfg(test)]
mod tests {
    use super::super::tests::{found, spans};

    #[test]
    fn finds_addresses_and_not_look_alikes() {
        let text = "Write to jane.doe+tag@mail.example.co.uk or j_smith@corp.io.";
        assert_eq!(
            spans(text, "email"),
            ["jane.doe+tag@mail.example.co.uk", "j_smith@corp.io"]
        );
        for not in [
            "@mention",
            "a@b",
            "x@localhost",
            "jane.@example.com",
            "me@host.123",
        ] {
            assert!(found(not, "email").is_empty(), "{not}");
        }
    }
}
