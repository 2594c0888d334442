//! Payment card numbers: 13–19 digits (contiguous or in the usual groups) that pass Luhn and
//! start with the issuer range of a known card network, with a length that network issues.

use super::checksums::{Digits, luhn};
use super::context::Context;
use super::{LazyRegex, Recognizer, SEP, Scan, compile};
use crate::pii::Finding;
use std::sync::LazyLock;

const BASE: f32 = 0.85;

const CARD: Recognizer = Recognizer {
    class: "CREDIT_CARD",
    name: "credit_card",
    context: Context {
        support: &[
            "card",
            "credit",
            "debit",
            "visa",
            "mastercard",
            "amex",
            "american express",
            "discover",
            "jcb",
            "diners",
            "unionpay",
            "maestro",
            "cc",
            "pan",
            "payment",
            "cvv",
            "expiry",
        ],
        against: &[
            "order",
            "invoice",
            "tracking",
            "serial",
            "isbn",
            "transaction",
            "reference",
            "ref",
            "id",
            "imei",
        ],
    },
};

pub(super) static PATTERN: LazyRegex = LazyLock::new(|| {
    compile(&format!(
        r"(?-u:\b)(?:[0-9]{{4}}{SEP}[0-9]{{4}}{SEP}[0-9]{{4}}{SEP}[0-9]{{4}}(?:{SEP}[0-9]{{3}})?|[0-9]{{4}}{SEP}[0-9]{{6}}{SEP}[0-9]{{4,5}}|[0-9]{{13,19}})(?-u:\b)"
    ))
});

/// `(low, high, prefix digits, min length, max length)`: issuer ranges by network.
const IIN_RANGES: &[(u64, u64, usize, usize, usize)] = &[
    (4, 4, 1, 13, 19),       // Visa
    (51, 55, 2, 16, 16),     // Mastercard
    (2221, 2720, 4, 16, 16), // Mastercard 2-series
    (34, 34, 2, 15, 15),     // American Express
    (37, 37, 2, 15, 15),     // American Express
    (6011, 6011, 4, 16, 19), // Discover
    (644, 649, 3, 16, 19),   // Discover
    (65, 65, 2, 16, 19),     // Discover
    (3528, 3589, 4, 16, 19), // JCB
    (300, 305, 3, 14, 19),   // Diners Club
    (36, 36, 2, 14, 19),     // Diners Club
    (38, 39, 2, 16, 19),     // Diners Club
    (62, 62, 2, 16, 19),     // UnionPay (includes Discover's 622126–622925)
    (5018, 5018, 4, 13, 19), // Maestro
    (5020, 5020, 4, 13, 19), // Maestro
    (5038, 5038, 4, 13, 19), // Maestro
    (5893, 5893, 4, 13, 19), // Maestro
    (6304, 6304, 4, 13, 19), // Maestro
    (6759, 6759, 4, 13, 19), // Maestro
    (6761, 6763, 4, 13, 19), // Maestro
];

/// Whether the digits start with a known issuer range and have a length it issues.
fn known_issuer(digits: &Digits) -> bool {
    let len = digits.as_slice().len();
    IIN_RANGES.iter().any(|&(low, high, prefix, min, max)| {
        let head = digits.prefix(prefix);
        (low..=high).contains(&head) && (min..=max).contains(&len)
    })
}

pub fn find(scan: &Scan<'_>, out: &mut Vec<Finding>) {
    CARD.scan(scan, &PATTERN, out, |m| {
        let digits = Digits::of(m.as_str())?;
        let valid = !digits.all_same() && known_issuer(&digits) && luhn(digits.as_slice());
        valid.then_some(BASE)
    });
}

#[cfg(test)]
mod tests {
    use super::super::tests::{found, spans};

    #[test]
    fn published_test_cards_in_every_format() {
        for card in [
            "4111111111111111",
            "4111 1111 1111 1111",
            "4111-1111-1111-1111",
            "5555555555554444",
            "2223003122003222",
            "378282246310005",
            "3782 822463 10005",
            "6011111111111117",
            "3530111333300000",
            "30569309025904",
            "6200000000000005",
            "6759649826438453",
            "4222222222222",
        ] {
            let text = format!("card: {card}.");
            assert_eq!(spans(&text, "credit_card"), [card], "{card}");
        }
    }

    #[test]
    fn rejects_bad_checksums_unknown_issuers_and_placeholders() {
        for not in [
            "4111111111111112",
            "5555 5555 5555 4445",
            "0000000000000000",
            "9111111111111113", // passes Luhn, no such issuer
            "41111111111111111111",
            "4111 1111 11111111",
        ] {
            assert!(found(not, "credit_card").is_empty(), "{not}");
        }
    }

    #[test]
    fn context_words_move_the_score() {
        let plain = found("4111111111111111", "credit_card")[0].score;
        let visa = found("my visa is 4111111111111111", "credit_card")[0].score;
        let order = found("order id 4111111111111111", "credit_card")[0].score;
        assert!(visa > plain && plain > order, "{visa} {plain} {order}");
    }

    #[test]
    fn sees_zero_width_characters_between_groups_but_not_inside_them() {
        assert_eq!(
            found("4111\u{200B}1111\u{200B}1111\u{200B}1111", "credit_card").len(),
            1
        );
        assert!(found("41\u{200B}11111111111111", "credit_card").is_empty());
        let text = "\u{202E}4111 1111 1111 1111\u{202C}";
        assert_eq!(spans(text, "credit_card"), ["4111 1111 1111 1111"]);
    }
}
