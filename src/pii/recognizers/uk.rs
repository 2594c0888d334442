//! UK identifiers: NHS numbers (mod 11, usually written 3-3-4) and National Insurance
//! numbers (two prefix letters under HMRC's rules, six digits, suffix A–D).

use super::checksums::{Digits, nhs_mod11};
use super::context::Context;
use super::{LazyRegex, Recognizer, SEP, Scan, compile};
use crate::pii::Finding;
use std::sync::LazyLock;

/// Written 3-3-4 with a valid check digit. One in eleven random 3-3-4 numbers (US phone
/// numbers, say) passes, so it stays near the threshold without a context word.
const NHS_GROUPED: f32 = 0.4;
const NHS_BARE: f32 = 0.3;
const NINO: f32 = 0.6;

const UK_NHS: Recognizer = Recognizer {
    class: "UK_NHS",
    name: "uk_nhs",
    context: Context {
        support: &["nhs", "patient", "health", "gp", "hospital", "chi"],
        against: &[
            "phone", "tel", "mobile", "call", "fax", "order", "invoice", "tracking",
        ],
    },
};

const UK_NINO: Recognizer = Recognizer {
    class: "UK_NINO",
    name: "uk_nino",
    context: Context {
        support: &[
            "national insurance",
            "nino",
            "ni",
            "insurance number",
            "hmrc",
            "payroll",
        ],
        against: &[
            "order",
            "ref",
            "reference",
            "invoice",
            "serial",
            "part",
            "sku",
            "model",
        ],
    },
};

pub(super) static NHS: LazyRegex = LazyLock::new(|| {
    compile(&format!(
        r"(?-u:\b)(?:[0-9]{{3}}{SEP}[0-9]{{3}}{SEP}[0-9]{{4}}|[0-9]{{10}})(?-u:\b)"
    ))
});

pub(super) static NINO_PATTERN: LazyRegex = LazyLock::new(|| {
    compile(&format!(
        r"(?-u:\b)[A-Z]{{2}}{SEP}?[0-9]{{2}}{SEP}?[0-9]{{2}}{SEP}?[0-9]{{2}}{SEP}?[A-D](?-u:\b)"
    ))
});

/// HMRC's rules: neither letter D, F, I, Q, U or V; the second not O; not one of the
/// prefixes never allocated.
fn valid_nino_prefix(first: u8, second: u8) -> bool {
    const NEVER: &[u8] = b"DFIQUV";
    const UNALLOCATED: &[&[u8; 2]] = &[b"BG", b"GB", b"NK", b"KN", b"TN", b"NT", b"ZZ"];
    !NEVER.contains(&first)
        && !NEVER.contains(&second)
        && second != b'O'
        && !UNALLOCATED.contains(&&[first, second])
}

pub fn find(scan: &Scan<'_>, out: &mut Vec<Finding>) {
    UK_NHS.scan(scan, &NHS, out, |m| {
        let digits = Digits::of(m.as_str())?;
        let valid = !digits.all_same() && nhs_mod11(digits.as_slice());
        valid.then_some(if m.len() == 10 { NHS_BARE } else { NHS_GROUPED })
    });
    UK_NINO.scan(scan, &NINO_PATTERN, out, |m| {
        let &[first, second, ..] = m.as_str().as_bytes() else {
            return None;
        };
        valid_nino_prefix(first, second).then_some(NINO)
    });
}

#[cfg(test)]
mod tests {
    use super::super::tests::{found, spans};

    #[test]
    fn nhs_number_mod11() {
        assert_eq!(spans("NHS number 943 476 5919", "uk_nhs"), ["943 476 5919"]);
        assert_eq!(spans("NHS no: 9434765919", "uk_nhs"), ["9434765919"]);
        assert!(found("NHS number 943 476 5918", "uk_nhs").is_empty());
        assert!(found("NHS 000 000 0000", "uk_nhs").is_empty());
        // Without a context word only the grouped form reaches the threshold; a phone
        // context word pushes it under.
        assert_eq!(spans("the number 943 476 5919", "uk_nhs").len(), 1);
        assert!(found("9434765919", "uk_nhs").is_empty());
        assert!(found("call 943 476 5919", "uk_nhs").is_empty());
    }

    #[test]
    fn nino_prefix_and_suffix_rules() {
        assert_eq!(spans("NI number: QQ 12 34 56 C", "uk_nino").len(), 0);
        assert_eq!(spans("NINO AB123456C", "uk_nino"), ["AB123456C"]);
        assert_eq!(
            spans("national insurance JG 10 37 26 A", "uk_nino"),
            ["JG 10 37 26 A"]
        );
        for not in [
            "AB123456E",
            "DA123456A",
            "AO123456A",
            "GB123456A",
            "AB12345C",
        ] {
            assert!(found(&format!("NINO {not}"), "uk_nino").is_empty(), "{not}");
        }
        assert!(found("part number AB123456C", "uk_nino").is_empty());
    }
}
