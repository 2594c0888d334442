//! URLs carrying credentials (`scheme://user:password@host/…`), reported whole as class
//! `URL`: the user name identifies someone and the password is a secret, so the whole URL
//! is what to redact. (The secret detectors also report the password alone as `SECRET`, so
//! a policy on secrets sees it; [`crate::pii::resolve_overlaps`] keeps the longer URL.)

use super::context::Context;
use super::{LazyRegex, Recognizer, Scan, compile, matches};
use crate::pii::Finding;
use std::sync::LazyLock;

const BASE: f32 = 0.95;
/// A documentation placeholder for a password (`password`, `${DB_PASS}`, `<pass>`, `***`).
const PLACEHOLDER_PENALTY: f32 = 0.6;

const URL_CREDENTIALS: Recognizer = Recognizer {
    class: "URL",
    name: "url_credentials",
    context: Context {
        support: &["connect", "connection", "dsn", "database", "url", "uri"],
        against: &["example", "placeholder", "template", "format"],
    },
};

static PATTERN: LazyRegex = LazyLock::new(|| {
    compile(
        r#"(?-u:\b)[A-Za-z][A-Za-z0-9+.-]{1,30}://([^\s:/@"'<>]{1,256}):([^\s/@"'<>]{1,256})@[A-Za-z0-9\[][^\s"'<>]*"#,
    )
});

fn placeholder(password: &str) -> bool {
    const WORDS: &[&str] = &[
        "password", "pass", "passwd", "pwd", "secret", "changeme", "xxx",
    ];
    WORDS.iter().any(|w| w.eq_ignore_ascii_case(password))
        || password.contains(['$', '{', '<', '*', '%'])
}

pub fn find(scan: &Scan<'_>, out: &mut Vec<Finding>) {
    let text = scan.text;
    if memchr::memmem::find(text.as_bytes(), b"://").is_none() {
        return;
    }
    for m in matches(&PATTERN, scan) {
        let userinfo = m.as_str().split_once("://").map_or("", |(_, rest)| rest);
        let password = userinfo
            .split('@')
            .next()
            .and_then(|u| u.split_once(':'))
            .map_or("", |(_, p)| p);
        let base = if placeholder(password) {
            BASE - PLACEHOLDER_PENALTY
        } else {
            BASE
        };
        let end = m.end() - trailing_punctuation(m.as_str());
        out.push(URL_CREDENTIALS.finding(text, m.start(), end, base));
    }
}

/// Sentence punctuation after a URL (`…/db.` or `…/db),`) is not part of it.
fn trailing_punctuation(url: &str) -> usize {
    url.len()
        - url
            .trim_end_matches(['.', ',', ';', ':', ')', ']', '!', '?'])
            .len()
}

#[cfg(test)]
mod tests {
    use super::super::tests::{found, spans};

    #[test]
    fn urls_with_credentials_are_reported_whole() {
        let url = "postgres://app:S3cr3t-Pa55@db.internal:5432/app";
        assert_eq!(spans(&format!("DSN {url}."), "url_credentials"), [url]);
        let url = "https://alice:hunter2x@files.example.org/report.pdf";
        assert_eq!(spans(&format!("(see {url})"), "url_credentials"), [url]);
    }

    #[test]
    fn placeholders_and_urls_without_credentials_are_not() {
        for not in [
            "postgres://user:password@localhost/db",
            "postgres://user:${DB_PASSWORD}@localhost/db",
            "amqp://guest:<password>@rabbit",
            "https://example.com:8080/path",
            "https://example.com/user@example.com",
        ] {
            assert!(found(not, "url_credentials").is_empty(), "{not}");
        }
    }
}
