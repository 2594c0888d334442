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

/// The regions a number without a country code is tried in, by its digits: North
/// American numbers have ten digits (area code not starting with 0 or 1), or eleven after
/// a leading 1; GB, DE and FR national numbers start with the trunk prefix 0. Anything
/// else is not tried (parsing costs microseconds, a failed one as much as any).
fn national_regions(candidate: &str) -> &'static [Id] {
    let Some(digits) = Digits::of(candidate) else {
        return &[];
    };
    match digits.as_slice() {
        [1, rest @ ..] if rest.len() == 10 => &[Id::US],
        [2..=9, ..] if digits.as_slice().len() == 10 => &[Id::US],
        [0, 1..=9, ..] => &[Id::GB, Id::DE, Id::FR],
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

pub(super) static PATTERN: LazyRegex =
    LazyLock::new(|| compile(r"(?:\+[0-9]|\([0-9]|(?-u:\b)[0-9])[0-9 ().\-]{5,22}[0-9](?-u:\b)"));

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
    if !plausible(candidate) {
        return None;
    }
    let mut buffer = [0u8; 32];
    if candidate.starts_with('+') {
        valid(None, candidate).then_some(INTERNATIONAL)
    } else if let Some(plus) = international_form(candidate, &mut buffer) {
        valid(None, plus).then_some(INTERNATIONAL)
    } else if national_regions(candidate)
        .iter()
        .any(|r| valid(Some(*r), candidate))
    {
        let grouped = candidate.bytes().any(|b| !b.is_ascii_digit());
        Some(if grouped {
            NATIONAL_GROUPED
        } else {
            NATIONAL_BARE
        })
    } else {
        None
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
        assert!(found("+999 1234 5678", "phone").is_empty());
    }

    #[test]
    fn national_numbers_need_grouping_or_context() {
        assert_eq!(spans("(415) 555-2671", "phone"), ["(415) 555-2671"]);
        assert_eq!(spans("tel: 020 7946 0958", "phone"), ["020 7946 0958"]);
        assert!(found("4155552671", "phone").is_empty());
        assert_eq!(spans("call 4155552671", "phone"), ["4155552671"]);
        assert!(found("order 415-555-2671", "phone").is_empty());
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
