//! Credential detectors: API keys, tokens, private keys and passwords written into text.
//!
//! Every detector is a regex finding candidates plus a check that rejects placeholders and
//! look-alikes, behind literal anchors (`AKIA`, `ghp_`, `password`, `://`, …) that every
//! candidate contains. One Aho-Corasick pass over the text finds which anchors occur, and
//! only the detectors owning one run their regex: text without any anchor (most requests)
//! costs that one pass and no allocation.
//!
//! (A `RegexSet` of all the detector regexes as the prefilter cost ~10 µs on a clean 4 KB
//! prompt: its lazy DFA gets no literal prefilter from 17 patterns, some with none at all.
//! The anchor pass costs ~1 µs.)

use super::keywords::{LiteralSet, with_ascii_lowercase};
use base64::Engine as _;
use regex::Regex;
use std::sync::LazyLock;

/// One credential found in text: its detector and byte range (on char boundaries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecretFinding {
    pub kind: &'static str,
    pub start: usize,
    pub end: usize,
}

/// The detector names, for validating policy files.
pub const SECRET_KINDS: &[&str] = &[
    "gcp_service_account",
    "private_key",
    "aws_access_key_id",
    "aws_secret_access_key",
    "github_token",
    "gitlab_token",
    "slack_webhook",
    "slack_token",
    "stripe_key",
    "anthropic_key",
    "openai_key",
    "google_api_key",
    "azure_storage_key",
    "jwt",
    "connection_string_password",
    "generic_password_assignment",
];

/// A candidate check: given the text and the candidate's byte range, the range to report
/// (it may grow, e.g. to a PEM footer), or `None` to reject the candidate.
type Check = fn(&str, usize, usize) -> Option<(usize, usize)>;

struct Detector {
    kind: &'static str,
    /// Lowercase literals, at least one of which every match of `pattern` contains (in any
    /// ASCII case).
    anchors: &'static [&'static str],
    pattern: &'static str,
    /// Capture groups holding the secret, in order; the first that took part in a match is
    /// the candidate. Empty: the whole match.
    groups: &'static [usize],
    check: Check,
}

/// In priority order: where two findings start at the same byte, the earlier detector's
/// wins (specific kinds before the generic assignment).
///
/// Word boundaries are ASCII (`(?-u:\b)`): Unicode ones would keep the regex engine off its
/// fast DFA path on any non-ASCII text. Lengths are checked in code rather than with large
/// counted repetitions, which would bloat the automata.
const DETECTORS: &[Detector] = &[
    Detector {
        kind: "gcp_service_account",
        anchors: &["service_account"],
        pattern: r#""type"\s*:\s*"service_account"[^{}]*?"private_key"\s*:\s*"([^"]{16,})"|"private_key"\s*:\s*"([^"]{16,})"[^{}]*?"type"\s*:\s*"service_account""#,
        groups: &[1, 2],
        check: check_gcp_key,
    },
    Detector {
        kind: "private_key",
        anchors: &["private key"],
        pattern: r"-----BEGIN (?:[A-Z0-9]+ ){0,3}PRIVATE KEY(?: BLOCK)?-----",
        groups: &[],
        check: check_pem,
    },
    Detector {
        kind: "aws_access_key_id",
        anchors: &["akia", "asia", "abia", "acca"],
        pattern: r"(?-u:\b)(?:AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}(?-u:\b)",
        groups: &[],
        check: check_aws_key_id,
    },
    Detector {
        kind: "aws_secret_access_key",
        anchors: &["aws", "secret"],
        pattern: r"(?i:aws|secret).{0,48}?[^A-Za-z0-9/+]([A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+=]|$)",
        groups: &[1],
        check: check_aws_secret,
    },
    Detector {
        kind: "github_token",
        anchors: &["ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"],
        pattern: r"(?-u:\b)(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{60,})",
        groups: &[],
        check: check_random_tail::<4, 10>,
    },
    Detector {
        kind: "gitlab_token",
        anchors: &[
            "glpat-", "gldt-", "glrt-", "glptt-", "glft-", "glsoat-", "glcbt-",
        ],
        pattern: r"(?-u:\b)gl(?:pat|dt|rt|ptt|ft|soat|cbt)-[A-Za-z0-9_-]{20,}",
        groups: &[],
        check: check_gitlab,
    },
    Detector {
        kind: "slack_webhook",
        anchors: &["hooks.slack.com"],
        pattern: r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9_/+-]{20,}",
        groups: &[],
        check: check_slack_webhook,
    },
    Detector {
        kind: "slack_token",
        anchors: &["xoxa-", "xoxb-", "xoxp-", "xoxo-", "xoxs-", "xoxr-"],
        pattern: r"(?-u:\b)xox[abposr]-[A-Za-z0-9-]{10,}",
        groups: &[],
        check: check_slack_token,
    },
    Detector {
        kind: "stripe_key",
        anchors: &["k_live_"],
        pattern: r"(?-u:\b)[sr]k_live_[A-Za-z0-9]{20,}",
        groups: &[],
        check: check_random_tail::<8, 8>,
    },
    Detector {
        kind: "anthropic_key",
        anchors: &["sk-ant-"],
        pattern: r"(?-u:\b)sk-ant-[A-Za-z0-9_-]{32,}",
        groups: &[],
        check: check_random_tail::<7, 10>,
    },
    Detector {
        kind: "openai_key",
        anchors: &["sk-"],
        pattern: r"(?-u:\b)sk-(?:(?:proj|svcacct|admin|None)-[A-Za-z0-9_-]{20,}|[A-Za-z0-9]{32,})",
        groups: &[],
        check: check_openai,
    },
    Detector {
        kind: "google_api_key",
        anchors: &["aiza"],
        pattern: r"(?-u:\b)AIza[0-9A-Za-z_-]{35,}",
        groups: &[],
        check: check_google_api_key,
    },
    Detector {
        kind: "azure_storage_key",
        anchors: &["accountkey", "sharedaccesskey"],
        pattern: r"(?i:AccountKey|SharedAccessKey)[ \t]*=[ \t]*([A-Za-z0-9+/]{40,}={0,2})",
        groups: &[1],
        check: check_mixed_base64,
    },
    Detector {
        kind: "jwt",
        anchors: &["eyj"],
        pattern: r"(?-u:\b)eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}",
        groups: &[],
        check: check_jwt,
    },
    Detector {
        kind: "connection_string_password",
        anchors: &["://"],
        pattern: r#"(?-u:\b)[A-Za-z][A-Za-z0-9+.-]{1,30}://[^\s:/@"'<>]+:([^\s/@"'<>]{3,})@[A-Za-z0-9\[]"#,
        groups: &[1],
        check: check_url_password,
    },
    Detector {
        kind: "generic_password_assignment",
        anchors: &[
            "passw",
            "passphrase",
            "pwd",
            "secret",
            "api_key",
            "api-key",
            "apikey",
            "access_key",
            "access-key",
            "accesskey",
            "private_key",
            "private-key",
            "privatekey",
            "token",
            "credential",
        ],
        pattern: r#"(?i:pass(?:word|wd|phrase)|pwd|secret|api[_-]?key|apikey|access[_-]?key|private[_-]?key|auth[_-]?token|access[_-]?token|refresh[_-]?token|bearer[_-]?token|token|credentials?)(?-u:\b)["']?[ \t]*(?::=|=>|=|:)[ \t]*(?:"([^"\r\n]{8,})"|'([^'\r\n]{8,})'|([^\s"'`,;]{8,}))"#,
        groups: &[1, 2, 3],
        check: check_assignment,
    },
    Detector {
        kind: "generic_password_assignment",
        anchors: &["authorization"],
        pattern: r#"(?i:authorization)["']?[ \t]*[:=][ \t]*["']?(?i:bearer|token|basic)[ \t]+([A-Za-z0-9._~+/=-]{16,})"#,
        groups: &[1],
        check: check_random_tail::<0, 8>,
    },
];

struct Compiled {
    /// By detector index; `None` for a pattern that failed to compile.
    regexes: Vec<Option<Regex>>,
    /// The detectors' anchors, bit `i` for `DETECTORS[i]`. `None` if it could not be built,
    /// in which case every detector runs.
    anchors: Option<LiteralSet>,
}

const _: () = assert!(
    !DETECTORS.is_empty() && DETECTORS.len() <= 32,
    "detector masks are u32"
);
/// The mask with every detector's bit.
const ALL_DETECTORS: u32 = u32::MAX >> (32 - DETECTORS.len());

static COMPILED: LazyLock<Compiled> = LazyLock::new(|| Compiled {
    regexes: DETECTORS
        .iter()
        .map(|d| Regex::new(d.pattern).ok())
        .collect(),
    anchors: LiteralSet::new(
        DETECTORS
            .iter()
            .enumerate()
            .map(|(i, d)| (d.anchors, 1 << i)),
    ),
});

/// All findings, in order, non-overlapping.
pub fn find_secrets(text: &str) -> Vec<SecretFinding> {
    let mut found: Vec<(SecretFinding, usize)> = Vec::new();
    for_each_candidate_detector(text, |index, regex| {
        each_candidate(index, regex, text, |finding| {
            found.push((finding, index));
            true
        });
    });
    found.sort_unstable_by_key(|(f, priority)| (f.start, *priority, std::cmp::Reverse(f.end)));
    let mut out = Vec::with_capacity(found.len());
    let mut covered = 0;
    for (finding, _) in found {
        if finding.start >= covered {
            covered = finding.end;
            out.push(finding);
        }
    }
    out
}

/// Fast path: kind of the first finding (the same as `find_secrets(text)[0].kind`).
pub fn first_secret(text: &str) -> Option<&'static str> {
    let mut best: Option<(usize, usize, &'static str)> = None;
    for_each_candidate_detector(text, |index, regex| {
        each_candidate(index, regex, text, |finding| {
            let better =
                best.is_none_or(|(start, priority, _)| (finding.start, index) < (start, priority));
            if better {
                best = Some((finding.start, index, finding.kind));
            }
            false
        });
    });
    best.map(|(_, _, kind)| kind)
}

/// Calls `visit(detector index, regex)`, in detector order, for each detector owning an
/// anchor found in `text`.
fn for_each_candidate_detector(text: &str, mut visit: impl FnMut(usize, &Regex)) {
    let compiled = &*COMPILED;
    let mask = match &compiled.anchors {
        Some(anchors) => with_ascii_lowercase(text, |lower| anchors.present(lower, ALL_DETECTORS)),
        None => ALL_DETECTORS,
    };
    if mask == 0 {
        return;
    }
    for (index, regex) in compiled.regexes.iter().enumerate() {
        if mask & (1 << index) != 0
            && let Some(regex) = regex
        {
            visit(index, regex);
        }
    }
}

/// Feeds each accepted candidate of detector `index` to `f`, in order, while `f` returns true.
fn each_candidate(
    index: usize,
    regex: &Regex,
    text: &str,
    mut f: impl FnMut(SecretFinding) -> bool,
) {
    let Some(detector) = DETECTORS.get(index) else {
        return;
    };
    let mut locations = regex.capture_locations();
    let mut at = 0;
    while at <= text.len() {
        let Some(m) = regex.captures_read_at(&mut locations, text, at) else {
            return;
        };
        let candidate = if detector.groups.is_empty() {
            Some((m.start(), m.end()))
        } else {
            detector.groups.iter().find_map(|g| locations.get(*g))
        };
        if let Some((start, end)) = candidate
            && let Some((start, end)) = (detector.check)(text, start, end)
            && !f(SecretFinding {
                kind: detector.kind,
                start,
                end,
            })
        {
            return;
        }
        at = if m.end() > m.start() {
            m.end()
        } else {
            next_char_boundary(text, m.end())
        };
    }
}

fn next_char_boundary(text: &str, at: usize) -> usize {
    text.get(at..)
        .and_then(|rest| rest.chars().next())
        .map_or(text.len() + 1, |c| at + c.len_utf8())
}

// ---- checks ----------------------------------------------------------------------------

/// Number of distinct ASCII bytes in `s`: random credentials use many, placeholders
/// (`XXXX…`, `0000…`, `abcabc…`) few.
fn distinct_ascii(s: &str) -> u32 {
    let mut seen = 0u128;
    for b in s.bytes().filter(u8::is_ascii) {
        seen |= 1u128 << b;
    }
    seen.count_ones()
}

fn has_digit(s: &str) -> bool {
    s.bytes().any(|b| b.is_ascii_digit())
}

fn has_upper(s: &str) -> bool {
    s.bytes().any(|b| b.is_ascii_uppercase())
}

fn has_lower(s: &str) -> bool {
    s.bytes().any(|b| b.is_ascii_lowercase())
}

/// Runs such as `xxxx`, `****`, `....`, `0000`: a redacted or placeholder value.
fn has_filler_run(s: &str) -> bool {
    let bytes = s.as_bytes();
    bytes.windows(4).any(|w| {
        matches!(w, [a, b, c, d] if a == b && b == c && c == d
            && matches!(a, b'x' | b'X' | b'*' | b'.' | b'0' | b'#' | b'-' | b'_'))
    })
}

/// The span, if the part after the first `PREFIX` bytes has at least `MIN_DISTINCT`
/// distinct chars and no filler run.
fn check_random_tail<const PREFIX: usize, const MIN_DISTINCT: u32>(
    text: &str,
    start: usize,
    end: usize,
) -> Option<(usize, usize)> {
    let token = text.get(start..end)?;
    let tail = token.get(PREFIX.min(token.len())..)?;
    (distinct_ascii(tail) >= MIN_DISTINCT && !has_filler_run(tail)).then_some((start, end))
}

fn check_aws_key_id(text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    check_random_tail::<4, 6>(text, start, end)
}

fn check_aws_secret(text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    let key = text.get(start..end)?;
    (has_upper(key) && has_lower(key) && has_digit(key) && distinct_ascii(key) >= 12)
        .then_some((start, end))
}

fn check_gitlab(text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    let token = text.get(start..end)?;
    let tail = token.split_once('-').map_or(token, |(_, t)| t);
    (distinct_ascii(tail) >= 8 && !has_filler_run(tail)).then_some((start, end))
}

fn check_slack_webhook(text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    let url = text.get(start..end)?;
    let last = url.trim_end_matches('/').rsplit('/').next()?;
    (last.len() >= 16 && distinct_ascii(last) >= 8 && !has_filler_run(last)).then_some((start, end))
}

fn check_slack_token(text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    let token = text.get(start..end)?;
    let tail = token.get(5..)?;
    (token.len() >= 15 && has_digit(tail) && distinct_ascii(tail) >= 8 && !has_filler_run(tail))
        .then_some((start, end))
}

fn check_openai(text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    let key = text.get(start..end)?;
    let tail = key.get(3..)?;
    (has_digit(tail)
        && (has_upper(tail) || has_lower(tail))
        && distinct_ascii(tail) >= 10
        && !has_filler_run(tail))
    .then_some((start, end))
}

fn check_google_api_key(text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    if end - start != 39 {
        return None;
    }
    check_random_tail::<4, 10>(text, start, end)
}

fn check_mixed_base64(text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    let key = text.get(start..end)?;
    (has_upper(key) && has_lower(key) && has_digit(key) && distinct_ascii(key) >= 12)
        .then_some((start, end))
}

fn check_gcp_key(text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    let key = text.get(start..end)?;
    (key.contains("PRIVATE KEY") || (key.len() >= 64 && distinct_ascii(key) >= 16))
        .then_some((start, end))
}

/// Decodes the start of a base64url JWT segment into `buf`; the decoded prefix.
fn decode_segment_prefix<'b>(segment: &str, buf: &'b mut [u8; 64]) -> Option<&'b [u8]> {
    let take = segment.len().min(64) / 4 * 4;
    let n = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode_slice(segment.get(..take)?, buf)
        .ok()?;
    buf.get(..n)
}

fn check_jwt(text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    let token = text.get(start..end)?;
    let mut parts = token.split('.');
    let (header, payload) = (parts.next()?, parts.next()?);
    let mut buf = [0u8; 64];
    let decoded = decode_segment_prefix(header, &mut buf)?;
    let header_ok = decoded.first() == Some(&b'{')
        && [&b"\"alg\""[..], b"\"typ\"", b"\"kid\"", b"\"enc\""]
            .iter()
            .any(|k| decoded.windows(k.len()).any(|w| w == *k));
    if !header_ok {
        return None;
    }
    let decoded = decode_segment_prefix(payload, &mut buf)?;
    (decoded.first() == Some(&b'{')).then_some((start, end))
}

/// Accepts a PEM header followed, within 512 bytes, by a base64 body line; the span runs to
/// the footer (or the end of the body when the footer is missing).
fn check_pem(text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    let body_end = pem_body_end(text.as_bytes(), end)?;
    let bytes = text.as_bytes();
    let mut at = skip_separators(bytes, body_end);
    if bytes
        .get(at..)
        .is_some_and(|rest| rest.starts_with(b"-----END "))
    {
        at += b"-----END ".len();
        let limit = bytes.len().min(at + 64);
        if let Some(close) = bytes
            .get(at..limit)
            .and_then(|window| window.windows(5).position(|w| w == b"-----"))
        {
            return Some((start, at + close + 5));
        }
    }
    Some((start, body_end))
}

fn is_base64_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=')
}

/// Past whitespace and the `\n` / `\r` escapes of a key embedded in a JSON string.
fn skip_separators(bytes: &[u8], mut at: usize) -> usize {
    loop {
        match bytes.get(at) {
            Some(b) if b.is_ascii_whitespace() => at += 1,
            Some(b'\\') if matches!(bytes.get(at + 1), Some(b'n' | b'r')) => at += 2,
            _ => return at,
        }
    }
}

/// The end of the base64 body after a PEM header at `from`: `None` unless a run of at least
/// 40 base64 chars starts within 512 bytes (header lines such as `Proc-Type:` may precede
/// it). The body goes on over further runs, each after a single line break.
fn pem_body_end(bytes: &[u8], from: usize) -> Option<usize> {
    const MIN_LINE: usize = 40;
    let search_limit = bytes.len().min(from.saturating_add(512));
    let run_end = |mut at: usize| {
        while bytes.get(at).copied().is_some_and(is_base64_byte) {
            at += 1;
        }
        at
    };
    let mut at = from;
    let mut body_end = loop {
        if at >= search_limit {
            return None;
        }
        let end = run_end(at);
        if end - at >= MIN_LINE {
            break end;
        }
        at = end + 1;
    };
    let hard_limit = bytes.len().min(from.saturating_add(64 << 10));
    while body_end < hard_limit {
        let Some(next) = [
            &b"\r\n"[..],
            b"\n",
            b"\r",
            b"
",
            b"
",
        ]
        .iter()
        .find(|sep| {
            bytes
                .get(body_end..)
                .is_some_and(|rest| rest.starts_with(sep))
        })
        .map(|sep| body_end + sep.len()) else {
            break;
        };
        let end = run_end(next);
        if end == next {
            break;
        }
        body_end = end;
    }
    Some(body_end)
}

/// Values that stand for a credential rather than being one.
fn is_placeholder(value: &str) -> bool {
    let v = value.trim();
    let lower_has = |needle: &str| {
        v.as_bytes()
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
    };
    if v.starts_with('<') && v.ends_with('>')
        || v.starts_with("${")
        || v.starts_with("{{")
        || v.starts_with("$(")
        || v.starts_with("%(")
        || v.starts_with("%s")
        || v.starts_with("#{")
        || has_filler_run(v)
        || (v.is_ascii() && distinct_ascii(v) <= 2)
    {
        return true;
    }
    // `$DB_PASSWORD`, `DB_PASSWORD`: a variable name.
    let var = v.strip_prefix('$').unwrap_or(v);
    if var.contains('_')
        && var
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
    {
        return true;
    }
    const WORDS: &[&str] = &[
        "changeme",
        "change_me",
        "change-me",
        "placeholder",
        "example",
        "redacted",
        "your_",
        "your-",
        "yourpass",
        "yourkey",
        "yourtoken",
        "yoursecret",
        "replace_me",
        "replace-me",
        "replaceme",
        "insert_",
        "dummy",
        "notreal",
        "not_real",
        "undefined",
        "<secret>",
        "<password>",
    ];
    if WORDS.iter().any(|w| lower_has(w)) {
        return true;
    }
    const EXACT: &[&str] = &[
        "password",
        "passw0rd!",
        "secret123",
        "12345678",
        "123456789",
    ];
    EXACT.iter().any(|w| v.eq_ignore_ascii_case(w))
}

fn check_assignment(text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    let value = text.get(start..end)?;
    let bytes = text.as_bytes();
    let quoted = start > 0
        && matches!(bytes.get(start - 1), Some(b'"' | b'\''))
        && bytes.get(end) == bytes.get(start - 1);
    if value.chars().count() > 200
        || value.chars().filter(|c| !c.is_whitespace()).count() < 8
        || is_placeholder(value)
        || value.contains("://")
    {
        return None;
    }
    if quoted {
        // A sentence in a `secret:` field is prose, not a passphrase.
        return (value.bytes().filter(|b| *b == b' ').count() < 5).then_some((start, end));
    }
    // Unquoted: reject code (`getPassword()`, `config.password`, `ENV['X']`) and paths.
    if value
        .bytes()
        .any(|b| matches!(b, b'(' | b')' | b'[' | b']' | b'{' | b'}'))
        || value.starts_with('/')
        || value.starts_with("./")
        || value.starts_with("../")
        || value.starts_with("~/")
        || value.starts_with('$')
    {
        return None;
    }
    let identifier_like = value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if identifier_like && !(has_digit(value) && (has_lower(value) || has_upper(value))) {
        return None;
    }
    Some((start, end))
}

fn check_url_password(text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    let password = text.get(start..end)?;
    if password.len() > 256 || password.starts_with('$') || password.starts_with('%') {
        return None;
    }
    const PLACEHOLDERS: &[&str] = &[
        "password", "pass", "passwd", "pwd", "secret", "changeme", "pw", "token", "user",
        "username", "example", "xxx",
    ];
    if PLACEHOLDERS.iter().any(|p| password.eq_ignore_ascii_case(p))
        || is_placeholder(password)
        // `http://host:8080@…`: a port, not a password.
        || password.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    Some((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<&'static str> {
        find_secrets(text).iter().map(|f| f.kind).collect()
    }

    /// Asserts `text` holds exactly one finding, of `kind`, covering `secret`.
    fn assert_one(kind: &str, text: &str, secret: &str) {
        let found = find_secrets(text);
        assert_eq!(found.len(), 1, "{kind}: {found:?} in {text:?}");
        let f = found[0];
        assert_eq!(f.kind, kind, "{text:?}");
        assert_eq!(&text[f.start..f.end], secret, "{kind}");
        assert_eq!(first_secret(text), Some(f.kind));
    }

    /// A fake but well-formed random-looking run of `n` alphanumerics.
    fn fake(n: usize) -> String {
        let alphabet = b"aB3dE5fG7hJ9kLmN2pQrS4tUvW6xYz8AbCdEfGh1";
        (0..n)
            .map(|i| alphabet[(i * 7 + i / 3) % alphabet.len()] as char)
            .collect()
    }

    #[test]
    fn every_pattern_compiles_and_the_prefilter_builds() {
        for d in DETECTORS {
            if let Err(e) = Regex::new(d.pattern) {
                panic!("{}: {e}", d.kind);
            }
            assert!(!d.anchors.is_empty(), "{}", d.kind);
            for anchor in d.anchors {
                assert_eq!(anchor.to_ascii_lowercase(), *anchor, "{}", d.kind);
            }
        }
        assert!(COMPILED.regexes.iter().all(Option::is_some));
        assert!(COMPILED.anchors.is_some());
    }

    #[test]
    fn kinds_list_matches_the_detectors() {
        let mut from_detectors: Vec<&str> = Vec::new();
        for d in DETECTORS {
            if !from_detectors.contains(&d.kind) {
                from_detectors.push(d.kind);
            }
        }
        assert_eq!(from_detectors, SECRET_KINDS);
    }

    #[test]
    fn aws_access_key_id() {
        let key = ["AKIA", "IOSFODNN7EXAMPLE"].concat();
        assert_one("aws_access_key_id", &format!("key id: {key}."), &key);
        let key = ["ASIA", "Y34FZKBOKMUTVV7A"].concat();
        assert_one("aws_access_key_id", &format!("export KEY={key}"), &key);
        assert!(kinds(&["AKIA", "XXXXXXXXXXXXXXXX"].concat()).is_empty());
        assert!(
            kinds(&["AKIA", "IOSFODNN7EXAMPLEX"].concat()).is_empty(),
            "too long"
        );
    }

    #[test]
    fn aws_secret_access_key() {
        let key = ["wJalrXUtnFEMI/K7MDENG/", "bPxRfiCYEXAMPLEKEY"].concat();
        let text = format!("aws_secret_access_key = {key}\n");
        assert_eq!(kinds(&text), ["aws_secret_access_key"]);
        let f = find_secrets(&text)[0];
        assert_eq!(&text[f.start..f.end], key);
        let text = format!("{{\"SecretAccessKey\": \"{key}\"}}");
        assert_eq!(kinds(&text), ["aws_secret_access_key"]);
        // Without context, a 40-char run is nothing.
        assert!(kinds(&format!("value {key} here")).is_empty());
    }

    #[test]
    fn github_token() {
        let t = ["ghp_", &fake(36)].concat();
        assert_one("github_token", &format!("token {t} ok"), &t);
        for p in ["gho_", "ghu_", "ghs_", "ghr_"] {
            let t = [p, &fake(36)].concat();
            assert_eq!(first_secret(&format!("use {t}")), Some("github_token"));
        }
        let t = ["github_", "pat_", &fake(22), "_", &fake(59)].concat();
        assert_one("github_token", &format!("GH {t}"), &t);
    }

    #[test]
    fn gitlab_token() {
        let t = ["glpat", "-", &fake(20)].concat();
        assert_one("gitlab_token", &format!("gitlab: {t}"), &t);
    }

    #[test]
    fn slack_token_and_webhook() {
        let t = ["xoxb", "-123456789012-1234567890123-", &fake(24)].concat();
        assert_one("slack_token", &format!("bot {t} end"), &t);
        let t = ["xoxp", "-98765432101-", &fake(20)].concat();
        assert_eq!(kinds(&t), ["slack_token"]);
        let url = [
            "https://hooks.slack.com",
            "/services/T0ABCDE12/B0FGHIJ34/",
            &fake(24),
        ]
        .concat();
        assert_one("slack_webhook", &format!("post to {url} please"), &url);
        let placeholder =
            "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX";
        assert!(kinds(placeholder).is_empty());
    }

    #[test]
    fn stripe_key() {
        let k = ["sk_", "live_", &fake(24)].concat();
        assert_one("stripe_key", &format!("stripe {k}"), &k);
        let k = ["rk_", "live_", &fake(24)].concat();
        assert_eq!(kinds(&k), ["stripe_key"]);
    }

    #[test]
    fn openai_and_anthropic_keys() {
        let k = ["sk-", &fake(20), "T3Blbk", "FJ", &fake(20)].concat();
        assert_one("openai_key", &format!("OPENAI {k}"), &k);
        let k = ["sk-", "proj-", &fake(40), "_", &fake(20)].concat();
        assert_one("openai_key", &format!("key {k}"), &k);
        let k = ["sk-", "ant-api03-", &fake(90), "AA"].concat();
        assert_one("anthropic_key", &format!("key {k}"), &k);
    }

    #[test]
    fn google_api_key() {
        let k = ["AIza", "SyA", &fake(32)].concat();
        assert_one("google_api_key", &format!("maps key={k}&x"), &k);
        assert!(kinds(&["AIza", "SyA", &fake(33)].concat()).is_empty());
    }

    #[test]
    fn gcp_service_account() {
        let pem = pem_block("PRIVATE KEY").replace('\n', "\\n");
        let json = format!(
            "{{\n  \"type\": \"service_account\",\n  \"project_id\": \"demo\",\n  \
             \"private_key_id\": \"abc\",\n  \"private_key\": \"{pem}\",\n  \
             \"client_email\": \"x@demo.iam.gserviceaccount.com\"\n}}"
        );
        assert_one("gcp_service_account", &json, &pem);
        // Fields in the other order.
        let json = format!("{{\"private_key\": \"{pem}\", \"type\": \"service_account\"}}");
        assert_eq!(kinds(&json), ["gcp_service_account"]);
    }

    #[test]
    fn azure_storage_key() {
        let key = [&fake(86)[..], "=="].concat();
        let text = format!(
            "DefaultEndpointsProtocol=https;AccountName=demo;AccountKey={key};EndpointSuffix=core.windows.net"
        );
        assert_one("azure_storage_key", &text, &key);
    }

    fn pem_block(label: &str) -> String {
        let body: Vec<String> = (0..4).map(|i| fake(64 - i)).collect();
        [
            "-----BEGIN ",
            label,
            "-----\n",
            &body.join("\n"),
            "\n-----END ",
            label,
            "-----",
        ]
        .concat()
    }

    #[test]
    fn private_keys() {
        for label in [
            "PRIVATE KEY",
            "RSA PRIVATE KEY",
            "EC PRIVATE KEY",
            "OPENSSH PRIVATE KEY",
            "ENCRYPTED PRIVATE KEY",
            "PGP PRIVATE KEY BLOCK",
        ] {
            let pem = pem_block(label);
            assert_one("private_key", &format!("here:\n{pem}\nthanks"), &pem);
        }
        // Encrypted legacy form with headers before the body.
        let pem = [
            "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n",
            "DEK-Info: AES-128-CBC,0123456789ABCDEF\n\n",
            &fake(64),
            "\n-----END RSA PRIVATE KEY-----",
        ]
        .concat();
        assert_one("private_key", &pem, &pem);
        // Truncated: no footer, the span ends with the body.
        let text = ["-----BEGIN PRIVATE KEY-----\n", &fake(64), "\n", &fake(30)].concat();
        assert_one("private_key", &format!("{text}\n\nbye"), &text);
        // A header alone (talking about the format) is not a key.
        assert!(kinds("what is -----BEGIN RSA PRIVATE KEY----- for?").is_empty());
        assert!(kinds("-----BEGIN PUBLIC KEY-----").is_empty());
    }

    #[test]
    fn jwt() {
        // {"alg":"HS256","typ":"JWT"} . {"sub":"1234567890","name":"John Doe","iat":1516239022}
        let t = [
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9",
            ".eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ",
            ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
        ]
        .concat();
        assert_one("jwt", &format!("Authorization: Bearer {t}"), &t);
        // eyJ-prefixed but the header is not a JWT header.
        let not = ["eyJmb28iOiJiYXIifQ", ".eyJzdWIiOiIxMjM0In0", ".", &fake(30)].concat();
        assert!(kinds(&not).is_empty(), "{:?}", kinds(&not));
    }

    #[test]
    fn connection_string_password() {
        let text = ["postgres://app:", "S3cr3t-Pa55", "@db.internal:5432/app"].concat();
        assert_one("connection_string_password", &text, "S3cr3t-Pa55");
        let text = ["mongodb+srv://admin:", "hunter2x", "@cluster0.example.net"].concat();
        assert_eq!(kinds(&text), ["connection_string_password"]);
        for placeholder in [
            "postgres://user:password@localhost/db",
            "redis://:pass@localhost:6379",
            "postgres://user:${DB_PASSWORD}@localhost/db",
            "amqp://guest:<password>@rabbit",
            "http://example.com:8080@other",
            "see http://example.com:8080/path and user@example.com",
        ] {
            assert!(kinds(placeholder).is_empty(), "{placeholder}");
        }
    }

    #[test]
    fn generic_password_assignment() {
        let cases = [
            ("password = \"", "hunter2-Stapler", "\""),
            ("DB_PASSWORD=", "s3cr3tPa55!", "\n"),
            ("api_key: ", "a8f5f167f44f4964e6c998dee827110c", "\n"),
            ("\"secret\": \"", "correct horse battery", "\""),
            ("client_secret='", "Zx9-qWe4_rTy", "'"),
            ("Authorization: Bearer ", "abc123def456ghi789jkl", "\r\n"),
        ];
        for (before, value, after) in cases {
            let text = format!("config:\n{before}{value}{after}");
            assert_one("generic_password_assignment", &text, value);
        }
        let negatives = [
            "password = getPassword()",
            "password: config.db.password",
            "password = os.environ['DB_PASSWORD']",
            "api_key: <your-api-key>",
            "api_key = \"YOUR_API_KEY\"",
            "password: ********",
            "password = \"changeme\"",
            "password: \"password\"",
            "secret = ${VAULT_SECRET}",
            "token: {{ secrets.TOKEN }}",
            "password: $DB_PASSWORD",
            "pwd: /home/alice/projects",
            "password: must be at least 8 characters",
            "secret: \"the meeting moved to friday at noon\"",
            "token = tokenizer.encode(text)",
            "max_tokens: 4096",
            "password_hash = bcrypt(password)",
            "token: 1234567890",
            "const API_KEY = process.env.API_KEY;",
            "password: \"{{ .Values.password }}\"",
            "secret_key_base: <%= ENV[\"SECRET_KEY_BASE\"] %>",
            "password = input('Enter password: ')",
            "PASSWORD_MIN_LENGTH: 12345678",
            "Authorization: Bearer <token>",
        ];
        for text in negatives {
            assert!(kinds(text).is_empty(), "{text}: {:?}", kinds(text));
        }
    }

    #[test]
    fn specific_kind_wins_over_generic_assignment() {
        let k = ["sk-", "proj-", &fake(40)].concat();
        assert_eq!(kinds(&format!("api_key = \"{k}\"")), ["openai_key"]);
        let k = ["AKIA", "IOSFODNN7EXAMPLE"].concat();
        assert_eq!(kinds(&format!("access_key: {k}")), ["aws_access_key_id"]);
    }

    #[test]
    fn several_findings_in_order() {
        let gh = ["ghp_", &fake(36)].concat();
        let aws = ["AKIA", "IOSFODNN7EXAMPLE"].concat();
        let text = format!("first {aws} then {gh} done");
        let found = find_secrets(&text);
        assert_eq!(
            found.iter().map(|f| f.kind).collect::<Vec<_>>(),
            ["aws_access_key_id", "github_token"]
        );
        assert!(found[0].end <= found[1].start);
        assert_eq!(first_secret(&text), Some("aws_access_key_id"));
    }

    #[test]
    fn ordinary_text_has_no_secrets() {
        let texts = [
            "Please reset my password, the password reset email never arrived.",
            "Each token costs money; count tokens before sending. Use a bearer token.",
            "AKIA is the prefix of AWS access key ids; ASIA for temporary ones.",
            "Request id 123e4567-e89b-12d3-a456-426614174000 failed at 10:42.",
            "Fixed in commit 9fceb02d0ae598e95dc970b74767f19372d61af8 on main.",
            "aGVsbG8gd29ybGQ= is base64 of hello world; dGVzdA== is test.",
            "Secret Santa is on Friday. The secret to good soup is time.",
            "fn password_ok(p: &str) -> bool { p.len() >= 12 }",
            "let token = lexer.next_token()?; if token.kind == Kind::Ident { .. }",
            "Connect with psql postgres://localhost:5432/app as user app.",
            "The JWT header eyJhbGciOi... starts every token; see RFC 7519.",
            "Send to https://hooks.slack.com/services/... once configured.",
            "Our AWS bill and the secret sauce: a 40 character hash like 9fceb02d0ae598e95dc970b74767f19372d61af8.",
            "sk-learn and scikit-learn are the same; task-1234 is open.",
            "user@example.com wrote: ssh git@github.com:org/repo.git",
        ];
        for text in texts {
            assert!(kinds(text).is_empty(), "{text}: {:?}", find_secrets(text));
            assert_eq!(first_secret(text), None, "{text}");
        }
        assert!(kinds("").is_empty());
    }

    #[test]
    fn hostile_input_does_not_panic() {
        let mut text = String::new();
        for i in 0..2000 {
            text.push_str(
                [
                    "é",
                    "\u{200B}",
                    "password=",
                    "AKIA",
                    "-----BEGIN PRIVATE KEY-----",
                    "eyJ",
                    "\u{E0041}",
                    "://a:",
                    "@",
                ][i % 9],
            );
        }
        let _ = find_secrets(&text);
        let _ = first_secret(&text);
        let long = "A".repeat(1 << 20);
        assert!(find_secrets(&long).is_empty());
    }

    proptest::proptest! {
        #[test]
        fn findings_are_ordered_disjoint_and_on_char_boundaries(
            text in "(password=|AKIA|ghp_|sk-|eyJ|-----BEGIN PRIVATE KEY-----\n|[A-Za-z0-9/+]{1,50}|é|\u{200B}|[ :=\"'@./\n-]){0,30}"
        ) {
            let found = find_secrets(&text);
            let mut covered = 0;
            for f in &found {
                proptest::prop_assert!(f.start >= covered && f.start < f.end && f.end <= text.len());
                proptest::prop_assert!(text.is_char_boundary(f.start) && text.is_char_boundary(f.end));
                covered = f.end;
            }
            proptest::prop_assert_eq!(first_secret(&text), found.first().map(|f| f.kind));
            // The anchors prefilter is sound: every regex match holds one of its anchors.
            for d in DETECTORS {
                for m in Regex::new(d.pattern).unwrap().find_iter(&text) {
                    let lower = m.as_str().to_ascii_lowercase();
                    proptest::prop_assert!(d.anchors.iter().any(|a| lower.contains(a)), "{}", d.kind);
                }
            }
        }
    }
}
