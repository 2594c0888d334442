//! Values recognised only after a keyword that announces them: dates of birth ("born",
//! "DOB", "geb.", "né le"…), passport, driver's licence and medical record numbers. One
//! case-insensitive Aho-Corasick pass finds the keywords; each value pattern then runs only
//! over the few bytes after a keyword.

use super::context::Context;
use super::{LazyRegex, Recognizer, Scan, compile};
use crate::pii::Finding;
use aho_corasick::{AhoCorasick, MatchKind};
use std::sync::LazyLock;

/// How many bytes after a keyword the value may start and end within.
const REACH: usize = 40;

/// One kind of announced value.
struct Kind {
    recognizer: Recognizer,
    base: f32,
    /// Lowercase keywords announcing the value (matched in any ASCII case).
    keywords: &'static [&'static str],
    value: &'static LazyRegex,
    /// Minimum number of digits in the value (IDs are not words).
    min_digits: usize,
    /// A further check of the value's text.
    plausible: fn(&str) -> bool,
}

const MONTHS: &str = "jan(?:uary|vier|uar)?|feb(?:ruary|ruar)?|f[ée]vrier|m[aä]r(?:ch|z|s)?|apr(?:il)?|avril|ma[iy]|jun[ie]?|juin|jul[iy]?|juillet|aug(?:ust)?|ao[uû]t|sept?(?:ember|embre)?|o[ck]t(?:ober|obre)?|nov(?:ember|embre)?|d[ée]c(?:ember|embre)?|dez(?:ember)?";

static DATE: LazyRegex = LazyLock::new(|| {
    compile(&format!(
        r"(?i)(?-u:\b)(?:[0-9]{{1,2}}[./-][0-9]{{1,2}}[./-](?:[0-9]{{4}}|[0-9]{{2}})|[0-9]{{4}}[./-][0-9]{{1,2}}[./-][0-9]{{1,2}}|[0-9]{{1,2}}(?:st|nd|rd|th|er)?\.?\s+(?:{MONTHS})\.?,?\s+[0-9]{{4}}|(?:{MONTHS})\.?\s+[0-9]{{1,2}}(?:st|nd|rd|th)?,?\s+[0-9]{{4}})(?-u:\b)"
    ))
});
static PASSPORT: LazyRegex = LazyLock::new(|| compile(r"(?-u:\b)[A-Z0-9]{6,9}(?-u:\b)"));
static LICENSE: LazyRegex =
    LazyLock::new(|| compile(r"(?-u:\b)[A-Z0-9](?:[A-Z0-9-]{3,16})[A-Z0-9](?-u:\b)"));
static RECORD: LazyRegex = LazyLock::new(|| compile(r"(?-u:\b)[A-Z]{0,3}-?[0-9]{5,12}(?-u:\b)"));

const AGAINST_IDS: &[&str] = &["example", "sample", "format", "expires", "expiry", "issued"];

const KINDS: &[Kind] = &[
    Kind {
        recognizer: Recognizer {
            class: "DATE_OF_BIRTH",
            name: "date_of_birth",
            context: Context {
                support: &[],
                against: &["died", "deceased", "founded", "released", "expires"],
            },
        },
        base: 0.75,
        keywords: &[
            "born",
            "dob",
            "d.o.b",
            "date of birth",
            "birth date",
            "birthdate",
            "birthday",
            "geb.",
            "geboren",
            "geburtsdatum",
            "né le",
            "née le",
            "date de naissance",
            "fecha de nacimiento",
            "nacido el",
            "nacida el",
            "data di nascita",
            "nato il",
            "nata il",
        ],
        value: &DATE,
        min_digits: 4,
        plausible: plausible_date,
    },
    Kind {
        recognizer: Recognizer {
            class: "PASSPORT",
            name: "passport",
            context: Context {
                support: &[],
                against: AGAINST_IDS,
            },
        },
        base: 0.65,
        keywords: &[
            "passport",
            "passeport",
            "reisepass",
            "pasaporte",
            "passaporto",
        ],
        value: &PASSPORT,
        min_digits: 2,
        plausible: |_| true,
    },
    Kind {
        recognizer: Recognizer {
            class: "DRIVER_LICENSE",
            name: "driver_license",
            context: Context {
                support: &[],
                against: AGAINST_IDS,
            },
        },
        base: 0.65,
        keywords: &[
            "driver's license",
            "drivers license",
            "driver license",
            "driver's licence",
            "driving licence",
            "driving license",
            "licence number",
            "license number",
            // Bare, as identity checks list documents: "passport …, licence …".
            "licence",
            "license",
            "dl#",
            "führerschein",
            "permis de conduire",
            "licencia de conducir",
        ],
        value: &LICENSE,
        min_digits: 2,
        plausible: |_| true,
    },
    Kind {
        recognizer: Recognizer {
            class: "MEDICAL_RECORD",
            name: "medical_record",
            context: Context {
                support: &[],
                against: AGAINST_IDS,
            },
        },
        base: 0.65,
        keywords: &[
            "mrn",
            "medical record",
            "patient id",
            "patient no",
            "patient number",
            "hospital number",
            "chart number",
            "health record",
        ],
        value: &RECORD,
        min_digits: 5,
        plausible: |_| true,
    },
];

/// The numbers of a date fit: a four-digit year in 1900–2099, days and months in 1–31,
/// and in an all-numeric date one of day and month at most 12.
fn plausible_date(date: &str) -> bool {
    let mut small = 0;
    let mut month_like = false;
    for part in date
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
    {
        let Ok(value) = part.parse::<u32>() else {
            return false;
        };
        if part.len() == 4 {
            if !(1900..=2099).contains(&value) {
                return false;
            }
        } else if small < 2 {
            // Day or month; a two-digit year comes after both.
            if value == 0 || value > 31 {
                return false;
            }
            small += 1;
            month_like |= value <= 12;
        }
    }
    small < 2 || month_like
}

/// All keywords, and by keyword the index of its kind in [`KINDS`].
struct Keywords {
    automaton: AhoCorasick,
    kind_of: Vec<usize>,
}

static KEYWORDS: LazyLock<Option<Keywords>> = LazyLock::new(|| {
    let (words, kind_of): (Vec<&str>, Vec<usize>) = KINDS
        .iter()
        .enumerate()
        .flat_map(|(i, k)| k.keywords.iter().map(move |w| (*w, i)))
        .unzip();
    let automaton = AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .match_kind(MatchKind::LeftmostLongest)
        .build(words)
        .ok()?;
    Some(Keywords { automaton, kind_of })
});

/// The largest char boundary of `text` not after `at`.
fn floor_boundary(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

pub fn find(scan: &Scan<'_>, out: &mut Vec<Finding>) {
    let text = scan.text;
    let Some(keywords) = KEYWORDS.as_ref() else {
        return;
    };
    for hit in keywords.automaton.find_iter(text) {
        let Some(kind) = keywords
            .kind_of
            .get(hit.pattern().as_usize())
            .and_then(|i| KINDS.get(*i))
        else {
            continue;
        };
        let bytes = text.as_bytes();
        let before = hit.start().checked_sub(1).and_then(|i| bytes.get(i));
        let last = hit.end().checked_sub(1).and_then(|i| bytes.get(i));
        let after = bytes.get(hit.end());
        let word = |b: Option<&u8>| b.is_some_and(u8::is_ascii_alphanumeric);
        if word(before) || (word(last) && word(after)) {
            continue; // inside a word: "stubborn", "adobe", "Bornholm"
        }
        let from = hit.end();
        let to = floor_boundary(text, from + REACH);
        let (Some(window), Some(regex)) = (text.get(from..to), kind.value.as_ref()) else {
            continue;
        };
        let digits = |m: &regex::Match<'_>| m.as_str().bytes().filter(u8::is_ascii_digit).count();
        let Some(m) = regex
            .find_iter(window)
            .find(|m| digits(m) >= kind.min_digits && (kind.plausible)(m.as_str()))
        else {
            continue;
        };
        let (start, end) = (from + m.start(), from + m.end());
        let duplicate = out
            .iter()
            .rev()
            .take(4)
            .any(|f| f.recognizer == kind.recognizer.name && f.start == start);
        if duplicate {
            continue;
        }
        out.push(kind.recognizer.finding(text, start, end, kind.base));
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{found, spans};

    #[test]
    fn dates_of_birth_after_a_keyword() {
        let cases = [
            ("DOB: 04/07/1986", "04/07/1986"),
            ("Date of birth 1986-07-04.", "1986-07-04"),
            ("She was born on 4 July 1986 in Leeds", "4 July 1986"),
            ("born March 3rd, 1990", "March 3rd, 1990"),
            ("geb. 12.03.1975", "12.03.1975"),
            ("Marie, née le 3 février 1961", "3 février 1961"),
        ];
        for (text, date) in cases {
            assert_eq!(spans(text, "date_of_birth"), [date], "{text}");
        }
        assert!(found("The meeting is on 04/07/2026", "date_of_birth").is_empty());
        assert!(found("a stubborn 04/07/1986 bug", "date_of_birth").is_empty());
        for not in [
            "DOB 31/31/1986",
            "DOB 00/07/1986",
            "born 12/07/1776",
            "DOB 1986-13-45",
        ] {
            assert!(found(not, "date_of_birth").is_empty(), "{not}");
        }
        assert_eq!(spans("DOB 07/31/86", "date_of_birth"), ["07/31/86"]);
        assert!(found("Bornholm 04/07/1986", "date_of_birth").is_empty());
        assert!(found("born to run, released 1975", "date_of_birth").is_empty());
    }

    #[test]
    fn passport_licence_and_record_numbers_after_a_keyword() {
        assert_eq!(spans("Passport no: 533380006", "passport"), ["533380006"]);
        assert_eq!(
            spans("PASSPORT NUMBER: 533380006", "passport"),
            ["533380006"]
        );
        assert_eq!(spans("Reisepass C01X00T47", "passport"), ["C01X00T47"]);
        assert!(found("533380006", "passport").is_empty());
        assert!(found("passport photo SIZES", "passport").is_empty());
        assert_eq!(
            spans("driving licence MORGA657054SM9IJ", "driver_license"),
            ["MORGA657054SM9IJ"]
        );
        assert_eq!(spans("DL# D1234-5678", "driver_license"), ["D1234-5678"]);
        assert_eq!(
            spans(
                "passport CBX3UY17K, licence L2301110, previous",
                "driver_license"
            ),
            ["L2301110"]
        );
        assert_eq!(spans("MRN: 00482913", "medical_record"), ["00482913"]);
        assert_eq!(
            spans("patient ID MR-4471923", "medical_record"),
            ["MR-4471923"]
        );
        assert!(found("the medical record was updated", "medical_record").is_empty());
    }
}
