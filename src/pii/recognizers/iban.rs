//! IBANs: country code, check digits and account part, contiguous or in groups of four, with
//! the country's length and a valid mod-97 check.

use super::checksums::iban_mod97;
use super::context::Context;
use super::{LazyRegex, Recognizer, SEP, Scan, compile, matches};
use crate::pii::Finding;
use std::sync::LazyLock;

const BASE: f32 = 0.9;

const IBAN: Recognizer = Recognizer {
    class: "IBAN",
    name: "iban",
    context: Context {
        support: &[
            "iban", "bank", "account", "transfer", "sepa", "bic", "swift", "konto",
        ],
        against: &["order", "serial", "part", "sku"],
    },
};

pub(super) static PATTERN: LazyRegex = LazyLock::new(|| {
    compile(&format!(
        r"(?-u:\b)[A-Za-z]{{2}}[0-9]{{2}}(?:{SEP}?[A-Za-z0-9]{{4}}){{2,7}}(?:{SEP}?[A-Za-z0-9]{{1,3}})?(?-u:\b)"
    ))
});

/// IBAN length by country (ISO 13616 registry).
const LENGTHS: &[(&str, usize)] = &[
    ("AD", 24),
    ("AE", 23),
    ("AL", 28),
    ("AT", 20),
    ("AZ", 28),
    ("BA", 20),
    ("BE", 16),
    ("BG", 22),
    ("BH", 22),
    ("BR", 29),
    ("BY", 28),
    ("CH", 21),
    ("CR", 22),
    ("CY", 28),
    ("CZ", 24),
    ("DE", 22),
    ("DK", 18),
    ("DO", 28),
    ("EE", 20),
    ("EG", 29),
    ("ES", 24),
    ("FI", 18),
    ("FO", 18),
    ("FR", 27),
    ("GB", 22),
    ("GE", 22),
    ("GI", 23),
    ("GL", 18),
    ("GR", 27),
    ("GT", 28),
    ("HR", 21),
    ("HU", 28),
    ("IE", 22),
    ("IL", 23),
    ("IQ", 23),
    ("IS", 26),
    ("IT", 27),
    ("JO", 30),
    ("KW", 30),
    ("KZ", 20),
    ("LB", 28),
    ("LC", 32),
    ("LI", 21),
    ("LT", 20),
    ("LU", 20),
    ("LV", 21),
    ("LY", 25),
    ("MC", 27),
    ("MD", 24),
    ("ME", 22),
    ("MK", 19),
    ("MR", 27),
    ("MT", 31),
    ("MU", 30),
    ("NL", 18),
    ("NO", 15),
    ("PK", 24),
    ("PL", 28),
    ("PS", 29),
    ("PT", 25),
    ("QA", 29),
    ("RO", 24),
    ("RS", 22),
    ("SA", 24),
    ("SC", 31),
    ("SD", 18),
    ("SE", 24),
    ("SI", 19),
    ("SK", 24),
    ("SM", 27),
    ("ST", 25),
    ("SV", 28),
    ("TL", 23),
    ("TN", 24),
    ("TR", 26),
    ("UA", 29),
    ("VA", 22),
    ("VG", 24),
    ("XK", 20),
];

/// The byte length of the first `n` alphanumerics of `candidate`, if it has that many and
/// they end at the end of the candidate or before a separator (not inside a group).
fn cut_after(candidate: &str, n: usize) -> Option<usize> {
    let mut seen = 0;
    for (at, c) in candidate.char_indices() {
        if c.is_ascii_alphanumeric() {
            seen += 1;
            if seen == n {
                let end = at + 1;
                let next = candidate.get(end..)?.chars().next();
                return next
                    .is_none_or(|c| !c.is_ascii_alphanumeric())
                    .then_some(end);
            }
        }
    }
    None
}

/// The byte length of the valid IBAN at the start of `candidate`, if there is one.
fn valid_length(candidate: &str) -> Option<usize> {
    let country = candidate.get(..2)?;
    let (_, length) = LENGTHS
        .iter()
        .find(|(code, _)| code.eq_ignore_ascii_case(country))?;
    let len = cut_after(candidate, *length)?;
    iban_mod97(candidate.get(..len)?).then_some(len)
}

pub fn find(scan: &Scan<'_>, out: &mut Vec<Finding>) {
    let text = scan.text;
    for m in matches(&PATTERN, scan) {
        if let Some(len) = valid_length(m.as_str()) {
            out.push(IBAN.finding(text, m.start(), m.start() + len, BASE));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{found, spans};

    #[test]
    fn published_ibans_with_and_without_spaces() {
        for iban in [
            "GB82WEST12345698765432",
            "GB82 WEST 1234 5698 7654 32",
            "DE89370400440532013000",
            "DE89 3704 0044 0532 0130 00",
            "FR1420041010050500013M02606",
            "NO9386011117947",
        ] {
            assert_eq!(spans(&format!("IBAN: {iban}, thanks"), "iban"), [iban]);
        }
        // A following group of digits is not swallowed.
        let text = "DE89 3704 0044 0532 0130 00 1234";
        assert_eq!(spans(text, "iban"), ["DE89 3704 0044 0532 0130 00"]);
    }

    #[test]
    fn rejects_bad_checks_and_lengths() {
        for not in [
            "GB82WEST12345698765433",
            "GB82WEST1234569876543",
            "DE89370400440532013001",
            "XX82WEST12345698765432",
        ] {
            assert!(found(not, "iban").is_empty(), "{not}");
        }
    }
}
