//! Phone numbers, validated against libphonenumber's metadata (the `phonenumber` crate):
//! international numbers (`+44 20 7946 0958`, `0033 1 23 45 67 89`) for any country, and
//! national numbers for a few default regions.
//!
//! Parsing costs microseconds, so only candidates with a plausible shape reach it: 7 to 15
//! digits, with at most single separators between groups, not a date and not an IPv4
//! address.

use super::checksums::Digits;
use super::context::Context;
use super::{LazyRegex, Recognizer, Scan, compile};
use crate::pii::Finding;
use phonenumber::country::Id;
use std::net::Ipv4Addr;
use std::sync::LazyLock;

/// `+` or `00` followed by a number valid in its country.
const INTERNATIONAL: f32 = 0.7;
/// A national number valid in a default region, written with separators or parentheses.
const NATIONAL_GROUPED: f32 = 0.45;
/// Bare national digits: many numbers look like that.
const NATIONAL_BARE: f32 = 0.3;

/// The regions a number without a country code is tried in, by its digits. Each failed
/// parse costs ~25 µs, so bare digit runs (which score too low to count without a
/// context word anyway) are tried only where they are most often phone numbers: ten
/// digits in North America, a trunk prefix 0 in GB, DE and FR. Written with separators,
/// a number is tried more widely:
/// - eleven digits after a leading 1, or ten not starting with 0 or 1: North America, then
///   the ten-digit plans of India, Italy (3…), Mexico and Brazil (two-digit area code
///   first, so also ten or eleven digits starting with 1);
/// - a leading trunk prefix 0: the countries that dial it nationally;
/// - nine digits: Spain, Portugal, Poland, Czechia; eight: Denmark and Norway.
fn national_regions(candidate: &str, grouped: bool) -> &'static [Id] {
    let Some(digits) = Digits::of(candidate) else {
        return &[];
    };
    let digits = digits.as_slice();
    match (digits, digits.len(), grouped) {
        ([1, ..], 11, false) => &[Id::US],
        ([2..=9, ..], 10, false) => &[Id::US],
        ([0, 1..=9, ..], _, false) => &[Id::GB, Id::DE, Id::FR],
        (_, _, false) => &[],
        ([1, ..], 11, true) => &[Id::US, Id::BR],
        ([2..=9, ..], 10, true) => &[Id::US, Id::IN, Id::IT, Id::MX, Id::BR],
        ([1, 1..=9, ..], 10, true) => &[Id::BR],
        ([0, 1..=9, ..], _, true) => &[
            Id::GB,
            Id::DE,
            Id::FR,
            Id::NL,
            Id::IT,
            Id::IE,
            Id::AU,
            Id::SE,
            Id::FI,
            Id::IN,
        ],
        ([2..=9, ..], 9, true) => &[Id::ES, Id::PT, Id::PL, Id::CZ],
        ([2..=9, ..], 8, true) => &[Id::DK, Id::NO],
        _ => &[],
    }
}

const PHONE: Recognizer = Recognizer {
    class: "PHONE_NUMBER",
    name: "phone",
    context: Context {
        support: &[
            "phone",
            "tel",
            "telephone",
            "mobile",
            "cell",
            "call",
            "fax",
            "whatsapp",
            "contact",
            "sms",
            "text",
            "ph",
            "mob",
            "handy",
            "telefon",
            "téléphone",
            "tél",
            "portable",
            "number",
        ],
        against: &[
            "order", "invoice", "account", "serial", "isbn", "tracking", "ref", "id", "version",
            "card", "ssn", "iban", "routing", "nhs", "total", "amount",
        ],
    },
};

/// A number, then an extension (`x712`, ` ext. 44`, `#9`) if one follows.
pub(super) static PATTERN: LazyRegex = LazyLock::new(|| {
    compile(
        r"(?:\+[0-9]|\([0-9]|(?-u:\b)[0-9])[0-9 ().\-]{5,22}[0-9](?:[ ]?(?:[xX]|ext\.?|#)[ ]?[0-9]{1,6}(?-u:\b)|(?-u:\b))",
    )
});

/// The number without its extension.
fn without_extension(candidate: &str) -> &str {
    match candidate.find(['x', 'X', 'e', '#']) {
        Some(at) => candidate[..at].trim_end(),
        None => candidate,
    }
}

/// A date written with one separator: `2024-01-15`, `15.01.2024`, `01-15-2024`.
fn looks_like_date(candidate: &str) -> bool {
    let Some(sep) = candidate.bytes().find(|b| !b.is_ascii_digit()) else {
        return false;
    };
    let mut groups = candidate.split(char::from(sep));
    let lengths = (
        groups.next().map(str::len),
        groups.next().map(str::len),
        groups.next().map(str::len),
        groups.next(),
    );
    matches!(
        lengths,
        (Some(4), Some(1 | 2), Some(1 | 2), None) | (Some(1 | 2), Some(1 | 2), Some(4), None)
    )
}

/// Shape checks before parsing: digit count, no doubled separators.
fn plausible(candidate: &str) -> bool {
    let digits = candidate.bytes().filter(u8::is_ascii_digit).count();
    let doubled = candidate
        .as_bytes()
        .windows(2)
        .any(|w| !w[0].is_ascii_digit() && w[0] == w[1]);
    (7..=15).contains(&digits)
        && !doubled
        && !looks_like_date(candidate)
        && candidate.parse::<Ipv4Addr>().is_err()
}

/// `00…` rewritten as `+…` in a stack buffer.
fn international_form<'b>(candidate: &str, buffer: &'b mut [u8; 32]) -> Option<&'b str> {
    let rest = candidate.strip_prefix("00")?;
    let bytes = rest.as_bytes();
    let out = buffer.get_mut(..bytes.len() + 1)?;
    let (plus, tail) = out.split_first_mut()?;
    *plus = b'+';
    tail.copy_from_slice(bytes);
    std::str::from_utf8(out).ok()
}

fn valid(region: Option<Id>, number: &str) -> bool {
    phonenumber::parse(region, number).is_ok_and(|n| phonenumber::is_valid(&n))
}

/// The base score of a candidate, `None` if it is no valid number.
fn base(candidate: &str) -> Option<f32> {
    let candidate = without_extension(candidate);
    if !plausible(candidate) {
        return None;
    }
    let mut buffer = [0u8; 32];
    if candidate.starts_with('+') {
        // `+44 (0)20 …`: the national trunk prefix in brackets is not dialled.
        let dialled = match candidate.contains("(0)") {
            true => std::borrow::Cow::Owned(candidate.replacen("(0)", "", 1)),
            false => std::borrow::Cow::Borrowed(candidate),
        };
        valid(None, &dialled).then_some(INTERNATIONAL)
    } else if let Some(plus) = international_form(candidate, &mut buffer) {
        valid(None, plus).then_some(INTERNATIONAL)
    } else {
        let grouped = candidate.bytes().any(|b| !b.is_ascii_digit());
        national_regions(candidate, grouped)
            .iter()
            .any(|r| valid(Some(*r), candidate))
            .then_some(if grouped {
                NATIONAL_GROUPED
            } else {
                NATIONAL_BARE
            })
    }
}

pub fn find(scan: &Scan<'_>, out: &mut Vec<Finding>) {
    PHONE.scan(scan, &PATTERN, out, |m| base(m.as_str()));
}

#[cfg(test)]
mod tests {
    use super::super::tests::{found, spans};

    #[test]
    fn international_numbers_in_many_formats() {
        for number in [
            "+44 20 7946 0958",
            "+1 (415) 555-2671",
            "+33 1 42 68 53 00",
            "+49 30 901820",
            "0044 20 7946 0958",
            "+44 (0)20 7946 0958",
            "+49 (0) 30 901820",
            "+81 3-1234-5678",
            "+919876543210",
        ] {
            assert_eq!(
                spans(&format!("reach me at {number}."), "phone"),
                [number],
                "{number}"
            );
        }
        assert!(found("+44 20 7946", "phone").is_empty());
        for with_extension in [
            "+1 415-555-2671 x712",
            "+1 (415) 555-2671 ext. 44",
            "+1.415.555.2671x9",
        ] {
            assert_eq!(
                spans(&format!("tel {with_extension}, thanks"), "phone"),
                [with_extension]
            );
        }
        assert!(found("+999 1234 5678", "phone").is_empty());
    }

    #[test]
    fn national_numbers_need_grouping_or_context() {
        assert_eq!(spans("(415) 555-2671", "phone"), ["(415) 555-2671"]);
        assert_eq!(spans("tel: 020 7946 0958", "phone"), ["020 7946 0958"]);
        assert!(found("4155552671", "phone").is_empty());
        assert_eq!(spans("call 4155552671", "phone"), ["4155552671"]);
        assert!(found("order 415-555-2671", "phone").is_empty());
        for (national, country) in [
            ("0412 345 678", "AU"),
            ("06 12345678", "NL"),
            ("612 345 678", "ES"),
            ("912 345 678", "PT"),
            ("98765 43210", "IN"),
            ("(11) 98765-4321", "BR"),
            ("41 23 45 67", "DK"),
            ("070-123 45 67", "SE"),
        ] {
            assert_eq!(
                spans(&format!("phone: {national}."), "phone"),
                [national],
                "{country}"
            );
        }
    }

    #[test]
    fn dates_addresses_and_long_numbers_are_not_phones() {
        for not in [
            "2024-01-15",
            "15.01.2024",
            "192.168.100.200",
            "1234567890123456789",
        ] {
            assert!(found(not, "phone").is_empty(), "{not}");
        }
    }
}
