//! Check digits of the numbers the recognizers validate: Luhn, IBAN mod-97, NHS mod-11,
//! ABA routing, and a fixed-size digit buffer so none of them allocates.

/// Up to 19 decimal digits read from a candidate, skipping separators.
pub struct Digits {
    buf: [u8; 19],
    len: usize,
}

impl Digits {
    /// The ASCII digits of `s` in order; `None` if there are more than 19.
    pub fn of(s: &str) -> Option<Self> {
        let mut digits = Self {
            buf: [0; 19],
            len: 0,
        };
        for b in s.bytes().filter(u8::is_ascii_digit) {
            *digits.buf.get_mut(digits.len)? = b - b'0';
            digits.len += 1;
        }
        Some(digits)
    }

    pub fn as_slice(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }

    /// Whether every digit is the same (`0000…`, `1111…`): a placeholder, not a number.
    pub fn all_same(&self) -> bool {
        self.as_slice().windows(2).all(|w| w[0] == w[1])
    }

    /// The number formed by the first `n` digits (n ≤ 19).
    pub fn prefix(&self, n: usize) -> u64 {
        self.as_slice()
            .iter()
            .take(n)
            .fold(0, |acc, d| acc * 10 + u64::from(*d))
    }
}

/// The Luhn check (payment cards).
pub fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let d = u32::from(*d);
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    !digits.is_empty() && sum.is_multiple_of(10)
}

/// The IBAN check (ISO 13616): the alphanumerics of `iban` (separators skipped, letters in
/// any case), first four moved to the end, letters as 10..=35, form a number ≡ 1 mod 97.
pub fn iban_mod97(iban: &str) -> bool {
    let chars = || iban.chars().filter(char::is_ascii_alphanumeric);
    let mut remainder: u32 = 0;
    let mut count = 0;
    for c in chars().skip(4).chain(chars().take(4)) {
        let Some(value) = c.to_digit(36) else {
            return false;
        };
        remainder = if value < 10 {
            (remainder * 10 + value) % 97
        } else {
            (remainder * 100 + value) % 97
        };
        count += 1;
    }
    count > 4 && remainder == 1
}

/// The NHS number check: weights 10..=2 over the first nine digits; 11 minus the sum mod
/// 11 (11 meaning 0, 10 meaning no valid number) is the tenth.
pub fn nhs_mod11(digits: &[u8]) -> bool {
    let [body @ .., check] = digits else {
        return false;
    };
    if body.len() != 9 {
        return false;
    }
    let sum: u32 = body
        .iter()
        .zip((2..=10).rev())
        .map(|(d, w)| u32::from(*d) * w)
        .sum();
    match 11 - sum % 11 {
        11 => *check == 0,
        10 => false,
        expected => u32::from(*check) == expected,
    }
}

/// The ABA routing number check: 3·(d1+d4+d7) + 7·(d2+d5+d8) + (d3+d6+d9) ≡ 0 mod 10.
pub fn aba(digits: &[u8]) -> bool {
    if digits.len() != 9 {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .zip([3, 7, 1].iter().cycle())
        .map(|(d, w)| u32::from(*d) * w)
        .sum();
    sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digits(s: &str) -> Vec<u8> {
        Digits::of(s).unwrap().as_slice().to_vec()
    }

    #[test]
    fn luhn_accepts_published_test_cards_and_rejects_typos() {
        for card in [
            "4111111111111111",
            "5555555555554444",
            "378282246310005",
            "6011111111111117",
            "3530111333300000",
            "30569309025904",
        ] {
            assert!(luhn(&digits(card)), "{card}");
        }
        for card in ["4111111111111112", "5555555555554445", "378282246310006"] {
            assert!(!luhn(&digits(card)), "{card}");
        }
        assert!(!luhn(&[]));
    }

    #[test]
    fn iban_mod97_published_examples() {
        assert!(iban_mod97("GB82WEST12345698765432"));
        assert!(iban_mod97("GB82 WEST 1234 5698 7654 32"));
        assert!(iban_mod97("de89370400440532013000"));
        assert!(!iban_mod97("GB82WEST12345698765433"));
        assert!(!iban_mod97("DE88370400440532013000"));
        assert!(!iban_mod97("GB82"));
    }

    #[test]
    fn nhs_mod11_published_example() {
        assert!(nhs_mod11(&digits("943 476 5919")));
        assert!(!nhs_mod11(&digits("943 476 5918")));
        assert!(!nhs_mod11(&digits("94347659")));
    }

    #[test]
    fn aba_published_examples() {
        assert!(aba(&digits("011000015")));
        assert!(aba(&digits("021000021")));
        assert!(!aba(&digits("021000022")));
        assert!(!aba(&digits("02100002")));
    }

    #[test]
    fn digits_buffer_is_bounded() {
        assert!(Digits::of(&"1".repeat(20)).is_none());
        let d = Digits::of("12-34 5").unwrap();
        assert_eq!(d.as_slice(), [1, 2, 3, 4, 5]);
        assert_eq!(d.prefix(3), 123);
        assert!(!d.all_same());
        assert!(Digits::of("0000 0000").unwrap().all_same());
    }
}
