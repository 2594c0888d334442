//! Personal data under load, end to end with the real model: one tenant's long prompt
//! while another tenant sends hundreds of short ones with names in them. No name reaches
//! the model in clear (each short prompt is tokenised, or refused with 503
//! `pii_unavailable`), and the short prompts are not held behind the long one.

mod common;

use common::{Extra, Gateway, post};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// The names in the short prompts: ones the model finds in [`short_prompt`]'s sentence.
const NAMES: [&str; 10] = [
    "Sarah Thompson",
    "James Miller",
    "Olivia Brown",
    "Henry Wilson",
    "Emily Clarke",
    "Daniel Harris",
    "Sophie Turner",
    "Thomas Wright",
    "Laura Bennett",
    "Michael Foster",
];

/// Short prompts sent at once by the second tenant (the figure).
const SHORT_PROMPTS: usize = 300;

/// The long prompt's size. The 700 KB is shrunk to 300 KB: on the shared 2-core
/// machines tests run on, the model reads some 50 KB of text per second of one core, so
/// 300 KB already holds the one inference thread for several seconds (longer than the
/// default 10 s budget when the machine is busy), which is what the test needs.
const LONG_PROMPT_BYTES: usize = 300 * 1024;

/// The bound on the second tenant's p99 latency. Generous: 300 requests at once through
/// a debug build, each scanned, audited and logged, on two shared cores, with the long
/// prompt's pieces taking turns beside them. Served in turn, the short prompts need well
/// under a second of model time in all; queued behind the long prompt, as before, they
/// waited for all of it (or were let through unscanned).
const SHORT_P99_BOUND: Duration = Duration::from_secs(8);

fn short_prompt(i: usize) -> String {
    format!(
        "Hello, my name is {} and I need help with my account number {i}.",
        NAMES[i % NAMES.len()]
    )
}

fn long_prompt() -> String {
    let sentence = "The quarterly report covers revenue, costs and the outlook for next year. ";
    sentence.repeat(LONG_PROMPT_BYTES / sentence.len())
}

fn chat(text: &str) -> Value {
    json!({"model": "chat-model", "messages": [{"role": "user", "content": text}]})
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_prompt_neither_lets_another_tenants_names_through_nor_holds_them_back() {
    let extra = Extra {
        top: "pii:\n  actions: {default: tokenise, by_class: {SECRET: mask}}\n  ner: {threads: 1, queue: 64}\n"
            .into(),
        ..Extra::default()
    };
    let gw = Gateway::start_full(
        "  max_body_bytes: 1048576\n",
        &["--echo", "--record-requests"],
        &extra,
    )
    .await;
    let bulk_key = gw.create_key("bulk", None, None);
    let long_tenant: std::sync::Arc<str> = {
        let db = gw.state_db();
        airlock::tenancy::Directory::new(&db)
            .find_tenant_named("bulk")
            .unwrap()
            .unwrap()
            .into()
    };
    let url = gw.url("/v1/chat/completions");

    let long = {
        let (url, key) = (url.clone(), bulk_key.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let reply = post(&url, &key, &chat(&long_prompt())).await;
            (reply.status, started.elapsed())
        })
    };
    // The long prompt is on the model's thread before the short ones arrive.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut short = tokio::task::JoinSet::new();
    for i in 0..SHORT_PROMPTS {
        let (url, key) = (url.clone(), gw.key.clone());
        short.spawn(async move {
            let started = Instant::now();
            let reply = post(&url, &key, &chat(&short_prompt(i))).await;
            (i, reply, started.elapsed())
        });
    }
    let mut latencies = Vec::with_capacity(SHORT_PROMPTS);
    let mut served = 0;
    while let Some(done) = short.join_next().await {
        let (i, reply, took) = done.unwrap();
        latencies.push(took);
        if reply.status == 200 {
            served += 1;
            let answer = &reply.json()["choices"][0]["message"]["content"];
            assert_eq!(answer.as_str(), Some(short_prompt(i).as_str()), "restored");
        } else {
            reply.assert_error(503, "pii_unavailable");
        }
    }
    let (long_status, long_took) = long.await.unwrap();

    // Nothing the model did not read reached it: every body the upstream got.
    let bodies = common::upstream_bodies(gw.mock).await;
    for body in &bodies {
        let text = body.to_string();
        if let Some(name) = NAMES.iter().find(|name| text.contains(*name)) {
            panic!("{name} reached the model in clear: {text}");
        }
    }
    // The long prompt reached the upstream unless refused (when read in time: it is
    // longer than the mock's context, which answers 400 as vLLM would).
    let long_sent = long_status != 503;
    assert_eq!(
        bodies.len(),
        served + usize::from(long_sent),
        "{long_status}"
    );

    latencies.sort_unstable();
    let p99 = percentile(&latencies, 0.99);
    eprintln!(
        "short prompts: {served}/{SHORT_PROMPTS} served, p50 {:?}, p99 {p99:?}; long prompt: {long_status} after {long_took:?}",
        percentile(&latencies, 0.5)
    );
    assert!(
        served * 2 >= SHORT_PROMPTS,
        "most short prompts are served: {served}"
    );
    assert!(p99 < SHORT_P99_BOUND, "p99 {p99:?}");
    assert!(
        p99 < long_took,
        "the short prompts were not held behind the long one: p99 {p99:?}, long {long_took:?}"
    );

    // The records agree: nothing was let through unread, and each short prompt was
    // served or refused.
    let rows = gw.stop().await;
    assert_eq!(rows.len(), SHORT_PROMPTS + 1);
    for row in rows {
        assert!(row.pii_unscanned.is_none(), "{row:?}");
        let short = row.tenant_id != Some(long_tenant.clone());
        assert!(!short || [200, 503].contains(&row.status), "{row:?}");
    }
}
