//! Synthetic audit records for benchmarks (`airlock audit seed`): realistic requests
//! and answers from a deterministic vocabulary, spread over days, appended through the
//! real log (sealed, chained, checkpointed) in writer-sized batches.

use super::log::AuditLog;
use super::record::{AuditEvent, AuditRecord, kind};
use crate::random::splitmix64;
use crate::store::StoreError;
use std::time::{Duration, Instant};

/// Records per append (the writer's largest batch).
const BATCH: usize = 1024;
const TENANTS: u64 = 10;
const USERS: u64 = 500;
const MODELS: &[&str] = &["chat-large", "chat-small", "code", "embed"];
/// Words that mark a known share of records, for benchmark queries with known answers:
/// (word, one record in …).
pub const MARKERS: &[(&str, u64)] = &[("zebracorn", 1000), ("quarterly", 20)];

/// What seeding took.
#[derive(Debug, serde::Serialize)]
pub struct Seeded {
    pub records: u64,
    pub seconds: f64,
    /// Appends per second (payload sealing, chaining, SQLite, checkpoints; generation
    /// not counted).
    pub per_second: f64,
}

/// A pseudo-word: two to four syllables from a fixed table, so the vocabulary is
/// large (tens of thousands of words) and skewed like a language.
fn word(rng: &mut u64) -> String {
    const SYLLABLES: &[&str] = &[
        "ka", "lo", "mi", "ne", "ra", "to", "vu", "shi", "per", "dan", "qui", "zor", "bel", "tan",
        "cor", "fi", "gra", "hul", "jen", "wex",
    ];
    // Skew: low indexes far more often (roughly Zipf-like).
    let pick = |rng: &mut u64| {
        let r = (splitmix64(rng) % 1000) as f64 / 1000.0;
        ((r * r * r) * SYLLABLES.len() as f64) as usize % SYLLABLES.len()
    };
    let syllables = 2 + (splitmix64(rng) % 3) as usize;
    (0..syllables).map(|_| SYLLABLES[pick(rng)]).collect()
}

/// `words` pseudo-words, and the markers of record `marked` when given.
fn sentence(rng: &mut u64, words: u64, marked: Option<u64>) -> String {
    let mut out: Vec<String> = (0..words).map(|_| word(rng)).collect();
    for (marker, one_in) in MARKERS {
        if marked.is_some_and(|seq| seq % one_in == 0) {
            out.push((*marker).to_string());
        }
    }
    out.join(" ")
}

/// The event of synthetic record number `seq` (from 1), timed within `[start, end)`.
fn event(seq: u64, total: u64, start_ms: i64, span_ms: i64) -> AuditEvent {
    let mut rng = seq.wrapping_mul(0x9e37_79b9);
    let r = splitmix64(&mut rng);
    let tenant = r % TENANTS;
    let user = (r >> 8) % USERS;
    let model = MODELS[((r >> 20) % MODELS.len() as u64) as usize];
    let (status, decision) = match (r >> 32) % 100 {
        0 | 1 => (403, "deny"),
        2 => (429, "allow"),
        3 => (502, "allow"),
        _ => (200, "allow"),
    };
    let prompt_words = 20 + (r >> 40) % 40;
    let answer_words = 30 + (r >> 48) % 70;
    let prompt = sentence(&mut rng, prompt_words, Some(seq));
    let answer = sentence(&mut rng, answer_words, None);
    let request = serde_json::json!({
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
    });
    let response = serde_json::json!({
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": answer},
                     "finish_reason": "stop"}],
    });
    let ts_ms = start_ms + (span_ms as i128 * (seq - 1) as i128 / total.max(1) as i128) as i64;
    AuditEvent {
        record: AuditRecord {
            ts_ms,
            kind: kind::LLM_REQUEST.into(),
            tenant_id: Some(format!("ten_seed{tenant}")),
            key_id: Some(format!("key_seed{tenant}")),
            user_id: Some(format!("user{user}")),
            client_addr: Some("10.0.0.7".into()),
            request_id: Some(format!("seed-{seq}")),
            endpoint: Some("chat_completions".into()),
            model: Some(model.into()),
            upstream: Some("vllm".into()),
            decision: Some(decision.into()),
            status: Some(status),
            prompt_tokens: Some(prompt_words * 4 / 3),
            completion_tokens: Some(answer_words * 4 / 3),
            cost_usd: Some((prompt_words + answer_words) as f64 * 2e-6),
            latency_ms: Some(50.0 + ((r >> 16) % 2000) as f64),
            ..AuditRecord::default()
        },
        request_payload: Some(serde_json::to_vec(&request).unwrap_or_default().into()),
        response_payload: Some(serde_json::to_vec(&response).unwrap_or_default().into()),
    }
}

/// Appends `records` synthetic records spread over the last `days` days.
pub fn seed(
    log: &mut AuditLog,
    records: u64,
    days: u64,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Seeded, StoreError> {
    let span_ms = (days.max(1) * 86_400_000) as i64;
    let start_ms = crate::store::now_unix_ms() - span_ms;
    let mut appending = Duration::ZERO;
    let mut done = 0u64;
    while done < records {
        let batch: Vec<AuditEvent> = (done + 1..=(done + BATCH as u64).min(records))
            .map(|seq| event(seq, records, start_ms, span_ms))
            .collect();
        let count = batch.len() as u64;
        let started = Instant::now();
        log.append(batch)?;
        appending += started.elapsed();
        done += count;
        progress(done, records);
    }
    log.checkpoint()?;
    let seconds = appending.as_secs_f64();
    Ok(Seeded {
        records,
        seconds,
        per_second: records as f64 / seconds.max(1e-9),
    })
}
