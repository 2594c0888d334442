//! The https upstream path every hosted provider uses (rustls, HTTP/2 by ALPN), against
//! mock-upstream's TLS mode with a certificate from a test CA the gateway trusts through
//! `ca_file`: OpenAI-compatible, Anthropic and Gemini upstreams serve whole answers,
//! streams and the other client formats over it, refuse an upstream whose certificate
//! they cannot verify, and cancel the upstream request when the client goes away.

mod common;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A test CA and a certificate for `localhost` it signed, written to `dir`.
struct TestPki {
    ca_der: rustls::pki_types::CertificateDer<'static>,
    ca_file: PathBuf,
    cert_file: PathBuf,
    key_file: PathBuf,
}

fn test_pki(dir: &Path) -> TestPki {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Airlock test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap())
        .unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    let pki = TestPki {
        ca_der: ca.der().clone(),
        ca_file: dir.join("ca.pem"),
        cert_file: dir.join("upstream.crt"),
        key_file: dir.join("upstream.key.pem"),
    };
    std::fs::write(&pki.ca_file, ca.pem()).unwrap();
    std::fs::write(&pki.cert_file, leaf.pem()).unwrap();
    std::fs::write(&pki.key_file, leaf_key.serialize_pem()).unwrap();
    pki
}

/// The upstream kinds, with the mock flavor and base path each speaks.
const KINDS: [(&str, &str, &str); 3] = [
    ("openai_compatible", "openai", "/v1"),
    ("anthropic", "anthropic", "/v1"),
    ("gemini", "gemini", "/v1beta"),
];

/// A mock-upstream of `flavor` over HTTPS, with more `flags`.
async fn tls_mock(
    pki: &TestPki,
    flavor: &str,
    flags: &[&str],
) -> (SocketAddr, tokio::sync::watch::Sender<bool>) {
    let mut all = vec![
        "--flavor",
        flavor,
        "--api-key",
        UPSTREAM_SECRET,
        "--tls-cert",
        pki.cert_file.to_str().unwrap(),
        "--tls-key",
        pki.key_file.to_str().unwrap(),
    ];
    all.extend_from_slice(flags);
    start_mock(&all).await
}

/// A gateway with a model `<kind>-tls` per upstream kind, each served by an https
/// mock of that flavor (with `flags`) trusted through `ca_file`, and `untrusted`, the
/// OpenAI one without it. Returns the mocks' addresses by kind.
async fn gateway(
    pki: &TestPki,
    flags: &[&str],
) -> (
    Gateway,
    Vec<SocketAddr>,
    Vec<tokio::sync::watch::Sender<bool>>,
) {
    let mut upstreams = String::new();
    let mut models = String::new();
    let (mut addrs, mut stops) = (Vec::new(), Vec::new());
    for (kind, flavor, base) in KINDS {
        let (addr, stop) = tls_mock(pki, flavor, flags).await;
        upstreams.push_str(&format!(
            "  {kind}:\n    kind: {kind}\n    base_url: https://localhost:{}{base}\n    \
             api_key_file: upstream.key\n    ca_file: {}\n",
            addr.port(),
            pki.ca_file.display()
        ));
        models.push_str(&format!(
            "  {kind}-tls:\n    upstream: {kind}\n    model: mock-llama\n    retry: {{attempts: 1}}\n    breaker: {{enabled: false}}\n"
        ));
        addrs.push(addr);
        stops.push(stop);
    }
    upstreams.push_str(&format!(
        "  untrusted:\n    base_url: https://localhost:{}/v1\n    api_key_file: upstream.key\n",
        addrs[0].port()
    ));
    models.push_str("  untrusted:\n    upstream: untrusted\n    model: mock-llama\n    retry: {attempts: 1}\n    breaker: {enabled: false}\n");
    let gw = Gateway::with_routes(upstreams, models).await;
    (gw, addrs, stops)
}

/// `GET path` on an https mock, trusting the test CA: its JSON.
async fn mock_json(pki: &TestPki, mock: SocketAddr, path: &str) -> Value {
    let request = http::Request::get(format!("https://localhost:{}{path}", mock.port()))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = https_client(pki.ca_der.clone(), false)
        .request(request)
        .await
        .unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&body).unwrap()
}

fn chat(model: &str, stream: bool) -> Value {
    json!({"model": model, "max_tokens": 5, "stream": stream,
           "messages": [{"role": "user", "content": "Hi there"}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_upstream_kind_serves_over_https_and_http2() {
    let dir = scratch_dir("upstream-tls");
    let pki = test_pki(&dir);
    let (gw, mocks, _stops) = gateway(&pki, &[]).await;
    let chat_url = gw.url("/v1/chat/completions");
    for ((kind, _, _), mock) in KINDS.iter().zip(&mocks) {
        let model = format!("{kind}-tls");
        let whole = post(&chat_url, &gw.key, &chat(&model, false)).await;
        assert_eq!(whole.status, 200, "{kind}: {}", whole.text());
        assert_eq!(whole.json()["usage"]["completion_tokens"], 5, "{kind}");
        let seen = mock_json(&pki, *mock, "/mock/last-request").await;
        assert_eq!(seen["version"], "HTTP/2.0", "{kind}: ALPN did not pick h2");
        let stream = post(&chat_url, &gw.key, &chat(&model, true)).await;
        assert_eq!(stream.status, 200, "{kind}");
        assert_eq!(stream.sse_data().last().unwrap(), "[DONE]", "{kind}");
        // The other client formats over the same upstream.
        let messages = json!({"model": model, "max_tokens": 5, "stream": true,
            "messages": [{"role": "user", "content": "Hi"}]});
        let anthropic = post(&gw.url("/v1/messages"), &gw.key, &messages).await;
        let events = anthropic.named_events();
        assert_eq!(
            events.last().unwrap().0,
            "message_stop",
            "{kind}: {events:?}"
        );
        let gemini = post(
            &gw.url(&format!("/v1beta/models/{model}:generateContent")),
            &gw.key,
            &json!({"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}),
        )
        .await;
        assert_eq!(gemini.status, 200, "{kind}: {}", gemini.text());
        assert!(gemini.json()["candidates"][0]["content"]["parts"][0]["text"].is_string());
    }
    // Without the CA the upstream's certificate does not verify: nothing is sent.
    let refused = post(&chat_url, &gw.key, &chat("untrusted", false)).await;
    refused.assert_error(502, "upstream_unavailable");
    gw.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_failures_over_https_map_to_the_callers_errors() {
    let dir = scratch_dir("upstream-tls-429");
    let pki = test_pki(&dir);
    let (gw, _mocks, _stops) = gateway(&pki, &["--fault", "429"]).await;
    for (kind, _, _) in KINDS {
        let answer = post(
            &gw.url("/v1/chat/completions"),
            &gw.key,
            &chat(&format!("{kind}-tls"), false),
        )
        .await;
        answer.assert_error(429, "rate_limit_exceeded");
    }
    gw.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_cancels_the_https_upstream_request() {
    let dir = scratch_dir("upstream-tls-cancel");
    let pki = test_pki(&dir);
    let (gw, mocks, _stops) = gateway(&pki, &["--tokens-per-sec", "20"]).await;
    for ((kind, _, _), mock) in KINDS.iter().zip(&mocks) {
        let mut body = chat(&format!("{kind}-tls"), true);
        body["max_tokens"] = 1000.into();
        let request = json_request(&gw.url("/v1/chat/completions"), &gw.key, &body);
        let response = client().request(request).await.unwrap();
        let mut body = response.into_body();
        assert!(body.frame().await.unwrap().unwrap().is_data());
        drop(body); // the client goes away, 50 s before the answer's end
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let seen = mock_json(&pki, *mock, "/mock/cancelled").await;
            if seen["cancelled"] == 1 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{kind}: the upstream kept generating for a client that left"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    gw.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
