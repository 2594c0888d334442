//! NER when ONNX Runtime cannot load (its own process: the runtime loads once per
//! process): the error is clear, `/readyz` says degraded, and requests continue with the
//! recognizers or are refused, as configured.

mod common;

use airlock::pii::ner::{self, NerError, NerSettings, PoolSize, RuntimeSource};
use common::{Extra, Gateway, post, send};
use serde_json::json;

fn not_a_library() -> std::path::PathBuf {
    let path = std::env::temp_dir().join("airlock-not-onnxruntime.so");
    std::fs::write(&path, b"this is not a shared library").unwrap();
    path
}

#[test]
fn a_runtime_that_cannot_load_is_reported_not_fatal() {
    let settings = NerSettings {
        runtime: RuntimeSource::File(not_a_library()),
        model_dir: None,
        size: PoolSize {
            threads: 1,
            queue: 4,
            max_batch: 1,
        },
    };
    let Err(NerError::Unavailable(why)) = ner::start(&settings) else {
        panic!("the runtime should not load");
    };
    assert!(why.contains("cannot load ONNX Runtime"), "{why}");
    // Later attempts give the same answer rather than trying again mid-flight.
    assert!(matches!(
        ner::start(&settings),
        Err(NerError::Unavailable(_))
    ));
}

async fn gateway(on_unavailable: &str) -> Gateway {
    let top = format!(
        "pii:\n  on_ner_unavailable: {on_unavailable}\n  actions: {{default: mask}}\n  ner:\n    onnxruntime_lib: {}\n",
        not_a_library().display()
    );
    let extra = Extra {
        top,
        ..Extra::default()
    };
    Gateway::start_full("", &["--echo"], &extra).await
}

#[tokio::test]
async fn the_gateway_reports_degraded_and_continues_with_recognizers() {
    let gw = gateway("continue").await;
    let ready = send("GET", &gw.url("/readyz"), &[], "").await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json()["status"], "degraded", "{}", ready.text());
    assert!(
        ready.json()["ner"]
            .as_str()
            .unwrap()
            .contains("ONNX Runtime")
    );
    let body = json!({"model": "chat-model", "messages": [{"role": "user", "content": "mail ann@example.com"}]});
    let reply = post(&gw.url("/v1/chat/completions"), &gw.key, &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.json()["choices"][0]["message"]["content"],
        "mail [EMAIL_ADDRESS]"
    );
}

#[tokio::test]
async fn the_gateway_can_refuse_what_the_model_could_not_read() {
    let gw = gateway("refuse").await;
    let ready = send("GET", &gw.url("/readyz"), &[], "").await;
    assert_eq!(ready.status, 503, "{}", ready.text());
    let body = json!({"model": "chat-model", "messages": [{"role": "user", "content": "hello"}]});
    let reply = post(&gw.url("/v1/chat/completions"), &gw.key, &body).await;
    reply.assert_error(503, "pii_unavailable");
}
