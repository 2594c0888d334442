//! US Social Security numbers (structural rules) and ABA bank routing numbers (checksum and
//! Federal Reserve prefix ranges), found in one pass over nine-digit candidates.

use super::checksums::{Digits, aba};
use super::context::Context;
use super::{LazyRegex, Recognizer, SEP, Scan, compile, matches};
use crate::pii::Finding;
use std::sync::LazyLock;

/// An SSN written with separators (`123-45-6789`, `123 45 6789`).
const SSN_GROUPED: f32 = 0.6;
/// Nine bare digits that satisfy the SSN rules: needs a context word.
const SSN_BARE: f32 = 0.3;
/// Any nine digits pass the routing checksum one time in ten: needs a context word.
const ROUTING: f32 = 0.3;

const US_SSN: Recognizer = Recognizer {
    class: "US_SSN",
    name: "us_ssn",
    context: Context {
        support: &[
            "ssn",
            "ss#",
            "ssn#",
            "social security",
            "social",
            "taxpayer",
            "itin",
            "tin",
        ],
        against: &[
            "order", "invoice", "phone", "tel", "routing", "account", "tracking", "zip", "serial",
            "ref",
        ],
    },
};

const US_ROUTING: Recognizer = Recognizer {
    class: "US_BANK_ROUTING",
    name: "us_routing",
    context: Context {
        support: &[
            "routing", "aba", "rtn", "transit", "bank", "ach", "wire", "fedwire", "checking",
        ],
        against: &[
            "ssn",
            "social security",
            "phone",
            "order",
            "invoice",
            "tracking",
            "serial",
        ],
    },
};

pub(super) static PATTERN: LazyRegex = LazyLock::new(|| {
    compile(&format!(
        r"(?-u:\b)(?:[0-9]{{3}}{SEP}[0-9]{{2}}{SEP}[0-9]{{4}}|[0-9]{{9}})(?-u:\b)"
    ))
});

/// Numbers the SSA never issues or that were published (advertising, Woolworth's wallet).
const KNOWN_INVALID_SSN: &[u64] = &[123_456_789, 78_051_120, 219_099_999, 457_555_462];

fn valid_ssn(digits: &Digits) -> bool {
    let number = digits.prefix(9);
    let (area, group, serial) = (number / 1_000_000, number / 10_000 % 100, number % 10_000);
    area != 0
        && area != 666
        && area < 900
        && group != 0
        && serial != 0
        && !KNOWN_INVALID_SSN.contains(&number)
}

/// Federal Reserve routing symbols: 00–12 (banks), 21–32 (thrifts), 61–72 (electronic),
/// 80 (traveller's cheques).
fn valid_routing(digits: &Digits) -> bool {
    let prefix = digits.prefix(2);
    (prefix <= 12 || (21..=32).contains(&prefix) || (61..=72).contains(&prefix) || prefix == 80)
        && aba(digits.as_slice())
}

pub fn find(scan: &Scan<'_>, out: &mut Vec<Finding>) {
    let text = scan.text;
    for m in matches(&PATTERN, scan) {
        let Some(digits) = Digits::of(m.as_str()) else {
            continue;
        };
        if digits.as_slice().len() != 9 || digits.all_same() {
            continue;
        }
        let bare = m.len() == 9;
        if valid_ssn(&digits) {
            let base = if bare { SSN_BARE } else { SSN_GROUPED };
            out.push(US_SSN.finding(text, m.start(), m.end(), base));
        }
        if bare && valid_routing(&digits) {
            out.push(US_ROUTING.finding(text, m.start(), m.end(), ROUTING));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{found, spans};

    #[test]
    fn ssn_structural_rules() {
        assert_eq!(spans("SSN 536-22-1234 on file", "us_ssn"), ["536-22-1234"]);
        assert_eq!(spans("ssn: 536 22 1234", "us_ssn"), ["536 22 1234"]);
        for not in [
            "000-12-3456",
            "666-12-3456",
            "912-12-3456",
            "536-00-1234",
            "536-22-0000",
            "123-45-6789",
            "078-05-1120",
            "536-22-12345",
        ] {
            assert!(found(&format!("SSN {not}"), "us_ssn").is_empty(), "{not}");
        }
    }

    #[test]
    fn bare_ssn_needs_context() {
        assert!(found("number 536221234", "us_ssn").is_empty());
        assert_eq!(spans("my SSN is 536221234", "us_ssn"), ["536221234"]);
        assert!(found("order 536-22-1234", "us_ssn").is_empty());
        // A zero-width space where a dash would be still separates the groups.
        assert_eq!(found("SSN 536\u{200B}22\u{200B}1234", "us_ssn").len(), 1);
    }

    #[test]
    fn routing_numbers_need_checksum_prefix_and_context() {
        assert_eq!(spans("ABA routing 011000015", "us_routing"), ["011000015"]);
        assert_eq!(
            spans("bank routing number: 021000021", "us_routing"),
            ["021000021"]
        );
        assert!(found("ticket 021000021", "us_routing").is_empty());
        assert!(found("routing 021000022", "us_routing").is_empty());
        // Checksum passes, prefix 41 is no Federal Reserve symbol.
        assert!(found("routing 410000001", "us_routing").is_empty());
    }
}
