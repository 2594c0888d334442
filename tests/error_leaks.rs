//! An upstream's server errors never reach the client with their details: every
//! upstream kind (OpenAI-compatible, Anthropic, Gemini) answers 500, 503 or fails
//! mid-stream with a distinctive internal message, and no client format (OpenAI chat,
//! Anthropic messages, Gemini generateContent, Responses), whole or streamed, sees it.

mod common;

use common::*;
use serde_json::{Value, json};

/// What a model server's internals might say; it must stay in the gateway's log.
const INTERNAL: &str = "CUDA OOM on worker 10.9.8.7:8001 trace=LEAKCHECK-7f3a";

/// Upstream kinds, the mock flavor and base path each speaks.
const KINDS: [(&str, &str, &str); 3] = [
    ("openai_compatible", "openai", "/v1"),
    ("anthropic", "anthropic", "/v1"),
    ("gemini", "gemini", "/v1beta"),
];

const FAULTS: [&str; 3] = ["500", "503", "stream_error"];

/// A request in each client format for `model`: its path and body.
fn requests(model: &str, stream: bool) -> Vec<(String, Value)> {
    let gemini_method = if stream {
        "streamGenerateContent?alt=sse"
    } else {
        "generateContent"
    };
    vec![
        (
            "/v1/chat/completions".into(),
            json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}),
        ),
        (
            "/v1/messages".into(),
            json!({"model": model, "stream": stream, "max_tokens": 16,
                   "messages": [{"role": "user", "content": "hi"}]}),
        ),
        (
            format!("/v1beta/models/{model}:{gemini_method}"),
            json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}),
        ),
        (
            "/v1/responses".into(),
            json!({"model": model, "stream": stream, "input": "hi"}),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_server_error_details_never_reach_any_client() {
    let mut upstreams = String::new();
    let mut models = String::new();
    let mut stops = Vec::new();
    let mut faulty = Vec::new();
    for (kind, flavor, base) in KINDS {
        for fault in FAULTS {
            let (addr, stop) = start_mock(&[
                "--flavor",
                flavor,
                "--fault",
                fault,
                "--error-message",
                INTERNAL,
            ])
            .await;
            stops.push(stop);
            let name = format!("{kind}-{}", fault.replace('_', "-"));
            upstreams.push_str(&format!(
                "  {name}:\n    kind: {kind}\n    base_url: http://{addr}{base}\n"
            ));
            models.push_str(&format!(
                "  {name}:\n    upstream: {name}\n    model: mock-llama\n    retry: {{attempts: 1}}\n    breaker: {{enabled: false}}\n"
            ));
            faulty.push((name, addr));
        }
    }
    // The mocks do send the internal message: the check below can see a leak.
    let direct = post(
        &format!("http://{}/v1/chat/completions", faulty[0].1),
        "",
        &json!({"model": "mock-llama", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert!(direct.text().contains(INTERNAL), "{}", direct.text());
    let gw = Gateway::with_routes(upstreams, models).await;
    let mut checked = 0;
    for (model, _) in &faulty {
        for stream in [false, true] {
            for (path, body) in requests(model, stream) {
                let answer = post(&gw.url(&path), &gw.key, &body).await;
                let text = answer.text();
                assert!(
                    !text.contains("LEAKCHECK") && !text.contains("10.9.8.7"),
                    "{model} {path} stream={stream} leaked: {text}"
                );
                let failed = answer.status >= 500 || text.contains("error");
                assert!(
                    failed,
                    "{model} {path} stream={stream}: {} {text}",
                    answer.status
                );
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 3 * 3 * 2 * 4);
    gw.stop().await;
}
