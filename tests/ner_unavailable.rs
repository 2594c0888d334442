//! NER when ONNX Runtime cannot load (its own process: the runtime loads once per
//! process): the error is clear, `/readyz` says degraded, and requests continue with the
//! recognizers or are refused, as configured.

mod common;

use airlock::pii::ner::{self, NerError, NerSettings, PoolSize, RuntimeSource};
use common::formats::{FORMATS, ask_in_format, assert_error_in};
use common::{Extra, Gateway, audit_records, post, send};
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

/// A gateway whose NER runtime cannot load, with `pii` lines in its `pii:` section.
async fn gateway(pii: &str) -> Gateway {
    let top = format!(
        "pii:\n{pii}  ner:\n    onnxruntime_lib: {}\n",
        not_a_library().display()
    );
    let extra = Extra {
        top,
        ..Extra::default()
    };
    Gateway::start_full("", &["--echo"], &extra).await
}

const UNREAD: &str = "ner_unavailable; bytes=20; classes=PERSON,LOCATION,ORGANIZATION";

#[tokio::test]
async fn the_gateway_reports_degraded_and_continues_with_recognizers_saying_so() {
    let gw = gateway("  on_ner_unavailable: continue\n  actions: {default: mask}\n").await;
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
    let header = reply.headers.get("x-airlock-pii-unscanned").unwrap();
    assert_eq!(header.to_str().unwrap(), UNREAD);
    assert_eq!(audit_records(&gw)[0]["pii_unscanned"], UNREAD);
    let rows = gw.stop().await;
    assert_eq!(rows[0].pii_unscanned.as_deref(), Some(UNREAD));
}

#[tokio::test]
async fn the_gateway_can_refuse_what_the_model_could_not_read() {
    let gw = gateway("  on_ner_unavailable: refuse\n").await;
    let ready = send("GET", &gw.url("/readyz"), &[], "").await;
    assert_eq!(ready.status, 503, "{}", ready.text());
    let body = json!({"model": "chat-model", "messages": [{"role": "user", "content": "hello"}]});
    let reply = post(&gw.url("/v1/chat/completions"), &gw.key, &body).await;
    reply.assert_error(503, "pii_unavailable");
}

#[tokio::test]
async fn by_default_what_needed_protecting_is_refused_in_every_format() {
    let gw = gateway("  actions: {default: allow, by_class: {PERSON: tokenise}}\n").await;
    let ready = send("GET", &gw.url("/readyz"), &[], "").await;
    assert_eq!(ready.status, 503, "{}", ready.text());
    for format in FORMATS {
        let reply = ask_in_format(
            &gw,
            format,
            &gw.key,
            "chat-model",
            "I am Sarah Thompson",
            &[],
        )
        .await;
        assert_error_in(&reply, format, 503, "pii_unavailable");
    }
    gw.stop().await;

    // Protecting only what the recognizers find, the model is not needed: on, marked.
    let gw = gateway("  actions: {default: allow, by_class: {EMAIL_ADDRESS: mask}}\n").await;
    let ready = send("GET", &gw.url("/readyz"), &[], "").await;
    assert_eq!(ready.status, 200, "{}", ready.text());
    let reply = ask_in_format(
        &gw,
        "openai",
        &gw.key,
        "chat-model",
        "mail ann@example.com",
        &[],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.headers.get("x-airlock-pii-unscanned").unwrap(),
        UNREAD
    );
}
