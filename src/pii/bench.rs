//! `airlock pii bench`: how fast the recognizers read text (MB/s) and how long the NER
//! model takes per text of 64, 256 and 512 tokens on one thread, in process.

use super::ner::{NerError, NerModel, NerSettings};
use serde::Serialize;
use std::time::Instant;

/// Recognizer throughput on one kind of text.
#[derive(Debug, Serialize)]
pub struct Throughput {
    pub text: &'static str,
    pub bytes: usize,
    pub findings: usize,
    pub mb_per_s: f64,
}

/// NER latency at one input length.
#[derive(Debug, Serialize)]
pub struct Latency {
    pub tokens: usize,
    pub runs: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub recognizers: Vec<Throughput>,
    pub model: String,
    pub ner: Vec<Latency>,
}

const PROSE: &str = "The quarterly review covered the migration of the billing service, the \
new retention schedule for archived tickets, and the plan to retire the legacy reporting \
cluster before the end of the year. Several teams asked for more time to test the changes. ";

/// Personal data mixed into prose, one value every ~200 bytes.
const VALUES: [&str; 8] = [
    "sarah.thompson@example.com",
    "+44 20 7946 0958",
    "4111 1111 1111 1111",
    "GB82WEST12345698765432",
    "192.168.10.24",
    "943 476 5919",
    "AKIAIOSFODNN7EXAMPLE",
    "https://admin:hunter2@intranet.example.com/",
];

/// Sentences with names and places, for the model.
const PEOPLE: &str = "Dr. Maria Gonzalez met James O'Connor from Northwind Traders in Leeds \
on Tuesday to discuss the transfer of patient records to the clinic in Rotterdam. ";

pub fn run(ner: Option<&NerSettings>, runs: usize) -> Result<Report, NerError> {
    let prose = PROSE.repeat((1 << 20) / PROSE.len());
    let mut mixed = String::with_capacity(1 << 20);
    for (i, sentence) in std::iter::repeat_n(PROSE, (1 << 20) / (PROSE.len() + 20)).enumerate() {
        mixed.push_str(sentence);
        mixed.push_str(VALUES[i % VALUES.len()]);
        mixed.push(' ');
    }
    let recognizers = vec![
        throughput("prose, no personal data", &prose),
        throughput("prose with a value every ~200 bytes", &mixed),
    ];
    let Some(settings) = ner else {
        return Ok(Report {
            recognizers,
            model: "off".into(),
            ner: Vec::new(),
        });
    };
    let (runtime, model) = super::ner::load(settings)?;
    let mut session = model.session(&runtime.environment)?;
    let mut ner = Vec::new();
    for tokens in [64, 256, 512] {
        // `tokens` counts the model's input, its two special tokens included.
        let text = text_of_tokens(&model, tokens - 2);
        for _ in 0..runs.div_ceil(10) {
            model.find(&mut session, &[&text])?;
        }
        let mut times = Vec::with_capacity(runs);
        for _ in 0..runs.max(1) {
            let started = Instant::now();
            model.find(&mut session, &[&text])?;
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        let at = |q: f64| crate::telemetry::quantile::quantile(&times, q);
        ner.push(Latency {
            tokens,
            runs: times.len(),
            p50_ms: at(0.5),
            p99_ms: at(0.99),
        });
    }
    Ok(Report {
        recognizers,
        model: format!("{} on {}", model.describe, runtime.origin),
        ner,
    })
}

fn throughput(name: &'static str, text: &str) -> Throughput {
    let mut best = f64::INFINITY;
    let mut findings = 0;
    for _ in 0..3 {
        let started = Instant::now();
        findings = super::recognize(text).len();
        best = best.min(started.elapsed().as_secs_f64());
    }
    Throughput {
        text: name,
        bytes: text.len(),
        findings,
        mb_per_s: text.len() as f64 / (1 << 20) as f64 / best,
    }
}

/// Text of exactly `tokens` model tokens (or the first word past it).
fn text_of_tokens(model: &NerModel, tokens: usize) -> String {
    let mut text = String::new();
    let words: Vec<&str> = PEOPLE.split_whitespace().collect();
    for word in words.iter().cycle() {
        if model.token_count(&text) >= tokens {
            break;
        }
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(word);
    }
    text
}
