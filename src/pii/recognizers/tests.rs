//! Tests across all recognizers: helpers for the per-family tests, the names list, hostile
//! input, char boundaries, and an ignored throughput probe.

use super::*;
use crate::pii::classes::is_known;
use std::time::Instant;

/// The findings of one recognizer (at or above the threshold).
pub fn found(text: &str, recognizer: &str) -> Vec<Finding> {
    recognize(text)
        .into_iter()
        .filter(|f| f.recognizer == recognizer)
        .collect()
}

/// The texts of one recognizer's findings.
pub fn spans<'t>(text: &'t str, recognizer: &str) -> Vec<&'t str> {
    found(text, recognizer)
        .iter()
        .map(|f| f.text(text))
        .collect()
}

/// A text with a bit of every kind of personal data, and the recognizers that find it.
const EVERYTHING: &str = "ABA routing 021000021. Mail jane.doe@example.com, call +44 20 7946 0958, card 4111 1111 1111 1111, \
    IBAN GB82 WEST 1234 5698 7654 32, SSN 536-22-1234, \
    NHS number 943 476 5919, NINO AB123456C, host 203.0.113.42 or 2001:db8::8a2e:370:7334, \
    mac 00:1A:2B:3C:4D:5E, dsn postgres://app:S3cr3t-Pa55@db.internal/app, DOB 04/07/1986, \
    passport 533380006, driver's license D1234-5678, MRN 00482913, \
    btc 1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2 or bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq, eth 0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed.";

#[test]
fn every_recognizer_finds_its_class_and_names_are_listed() {
    let found = recognize(EVERYTHING);
    let names: Vec<&str> = recognizer_names().collect();
    for f in &found {
        assert!(is_known(f.class), "{f:?}");
        assert!(names.contains(&f.recognizer), "{f:?}");
        assert!((MIN_SCORE..=1.0).contains(&f.score), "{f:?}");
    }
    for name in RECOGNIZERS {
        assert!(
            found.iter().any(|f| f.recognizer == *name),
            "{name} found nothing"
        );
    }
    assert!(found.windows(2).all(|w| w[0].start <= w[1].start));
    // The prefilter saw every whole-text pattern (all of them match here).
    assert!(PREFILTER.is_some());
    assert_eq!(Scan::new(EVERYTHING).present, (1 << PREFILTERED.len()) - 1);
    let resolved = crate::pii::resolve_overlaps(found);
    assert!(resolved.iter().any(|f| f.class == "URL"));
}

#[test]
fn prose_without_personal_data_has_no_findings() {
    let text = "The quarterly review is on Tuesday at 10:30 in room 4. Revenue grew 12.5% to \
        $3,400,000 and we shipped version 2.14.1 (build 20240115). See section 3.2.1 of \
        the handbook, ISBN 978-0-306-40615-7, and call the help desk if the printer jams. \
        In 1999 there were 250 employees; now there are 1,200 across 14 offices.";
    let found = recognize(text);
    assert!(
        found.is_empty(),
        "{:?}",
        found
            .iter()
            .map(|f| (f.recognizer, f.text(text)))
            .collect::<Vec<_>>()
    );
}

fn assert_sane(text: &str) {
    for f in recognize(text) {
        assert!(f.start < f.end && f.end <= text.len(), "{f:?}");
        assert!(
            text.is_char_boundary(f.start) && text.is_char_boundary(f.end),
            "{f:?}"
        );
    }
}

#[test]
fn megabyte_inputs_do_not_panic_or_crawl() {
    let mb = 1 << 20;
    for text in [
        "a".repeat(mb),
        "7".repeat(mb),
        "@".repeat(mb),
        "a@".repeat(mb / 2),
        "1.".repeat(mb / 2),
        "::".repeat(mb / 2),
        "ab:".repeat(mb / 3),
        "4111 ".repeat(mb / 5),
        "born ".repeat(mb / 5),
        "x://a:b@".repeat(mb / 8),
        "é\u{301}".repeat(mb / 4),
    ] {
        assert_sane(&text);
    }
}

#[test]
fn pathological_unicode_and_invisible_characters() {
    let combining = "4\u{301}111 1111 1111 1111 jane\u{301}@example.com";
    assert_sane(combining);
    let astral = "𝟒𝟏𝟏𝟏 𝟏𝟏𝟏𝟏 𝟏𝟏𝟏𝟏 𝟏𝟏𝟏𝟏 🙂 jane@example.com 🙂";
    assert_sane(astral);
    // Mathematical digits are not ASCII digits: no card; the email is still found.
    assert_eq!(spans(astral, "email"), ["jane@example.com"]);
    assert!(spans(astral, "credit_card").is_empty());
    // Bidi overrides and zero-width characters around values do not hide them.
    let text = "\u{202E}jane@example.com\u{202C} \u{200B}4111111111111111\u{200B} \u{2066}GB82WEST12345698765432\u{2069}";
    assert_eq!(spans(text, "email"), ["jane@example.com"]);
    assert_eq!(spans(text, "credit_card"), ["4111111111111111"]);
    assert_eq!(spans(text, "iban"), ["GB82WEST12345698765432"]);
    // Between groups they stand for a separator; inside a group they break the value.
    assert_eq!(
        spans(
            "GB82\u{200B}WEST\u{200B}1234\u{200B}5698\u{200B}7654\u{200B}32",
            "iban"
        )
        .len(),
        1
    );
    assert!(spans("jane@exa\u{200B}mple.com", "email") != ["jane@exa\u{200B}mple.com"]);
}

proptest::proptest! {
    #[test]
    fn findings_are_on_char_boundaries(
        text in "([0-9]{1,5}|[ .:@/+()-]|[A-Za-z]{1,4}|é|\u{301}|\u{200B}|\u{202E}|🙂|𝟒|born |SSN |card |0x|bc1|://){0,40}"
    ) {
        for f in recognize(&text) {
            proptest::prop_assert!(f.start < f.end && f.end <= text.len());
            proptest::prop_assert!(text.is_char_boundary(f.start) && text.is_char_boundary(f.end));
        }
        // The prefilter is exact: a pattern's bit is set if and only if it matches.
        let scan = Scan::new(&text);
        for (i, regex) in PREFILTERED.iter().enumerate() {
            let matched = regex.as_ref().is_some_and(|r| r.is_match(&text));
            proptest::prop_assert_eq!(scan.present & (1 << i) != 0, matched);
        }
    }

    #[test]
    fn arbitrary_strings_do_not_panic(text in "\\PC{0,200}") {
        for f in recognize(&text) {
            proptest::prop_assert!(text.is_char_boundary(f.start) && text.is_char_boundary(f.end));
        }
    }
}

/// `cargo test --release --lib pii::recognizers::tests::throughput -- --ignored --nocapture`
#[test]
#[ignore = "prints timings; run in release mode"]
fn throughput() {
    const SIZE: usize = 1 << 20;
    let prose = "The committee met on Tuesday to review the quarterly figures, which showed \
        revenue up 12% on last year. Several members asked about the new office in the north, \
        and the chair promised a written answer before the next meeting in 3 weeks. ";
    let mixed_items = [
        "Please email jane.doe@example.com about it. ",
        "Call me on +44 20 7946 0958 tomorrow morning. ",
        "My card is 4111 1111 1111 1111, expiry soon. ",
        "Send it to GB82 WEST 1234 5698 7654 32 today. ",
        "The server at 203.0.113.42 was rebooted. ",
        "SSN 536-22-1234 was on the form. ",
        "She was born on 4 July 1986 in Leeds. ",
    ];
    let fill = |f: &mut dyn FnMut(usize) -> String| {
        let mut text = String::with_capacity(SIZE + 512);
        let mut i = 0;
        while text.len() < SIZE {
            text.push_str(&f(i));
            i += 1;
        }
        text
    };
    let clean = fill(&mut |_| prose.to_string());
    let mixed = fill(&mut |i| {
        let item = mixed_items[i % mixed_items.len()];
        let pad = prose.get(..200 - item.len().min(150)).unwrap_or("");
        [pad, item].concat()
    });
    for (name, text) in [("prose, no PII", &clean), ("PII every ~200 B", &mixed)] {
        let _ = recognize(text); // warm up: compile regexes, load phone metadata
        let runs = 5;
        let started = Instant::now();
        let mut count = 0;
        for _ in 0..runs {
            count = recognize(text).len();
        }
        let secs = started.elapsed().as_secs_f64() / f64::from(runs);
        let mb = text.len() as f64 / f64::from(1 << 20);
        println!(
            "{name}: {:.1} MB/s ({count} findings in {mb:.2} MB, {:.1} ms)",
            mb / secs,
            secs * 1e3
        );
        let started = Instant::now();
        let scan = Scan::new(text);
        let ms = started.elapsed().as_secs_f64() * 1e3;
        println!("  prefilter: {ms:.1} ms");
        for (family, find) in FAMILIES {
            let started = Instant::now();
            let mut out = Vec::new();
            find(&scan, &mut out);
            let ms = started.elapsed().as_secs_f64() * 1e3;
            println!("  {family}: {ms:.1} ms");
        }
    }
}
