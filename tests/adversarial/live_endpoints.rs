//! Fuzzing a running gateway over real sockets: damaged bodies of every wire format sent
//! to every data-path endpoint must get a success or a client error in that endpoint's own
//! error shape (never a 5xx, a hang or a dropped connection); raw HTTP damaged byte by
//! byte must never take the gateway down.

use crate::common::{Gateway, send};
use crate::fuzz::{Raw, arb_json, fuzz, mutated};
use crate::upstream_streams::well_formed;
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestCaseResult};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The endpoints and the error shape each answers in.
#[derive(Debug, Clone, Copy)]
enum Shape {
    OpenAi,
    Anthropic,
    Gemini,
}

const ENDPOINTS: &[(&str, Shape)] = &[
    ("/v1/chat/completions", Shape::OpenAi),
    ("/v1/completions", Shape::OpenAi),
    ("/v1/embeddings", Shape::OpenAi),
    ("/v1/responses", Shape::OpenAi),
    ("/v1/messages", Shape::Anthropic),
    ("/v1/messages/count_tokens", Shape::Anthropic),
    ("/v1beta/models/chat-model:generateContent", Shape::Gemini),
    (
        "/v1beta/models/chat-model:streamGenerateContent?alt=sse",
        Shape::Gemini,
    ),
];

fn seeds() -> Vec<Value> {
    vec![
        json!({"model": "chat-model", "messages": [{"role": "user", "content": "Hi, I am John Smith"}],
            "stream": true, "max_tokens": 8}),
        json!({"model": "chat-model", "prompt": "Say hi", "max_tokens": 4}),
        json!({"model": "embed-model", "input": ["a", "b"]}),
        json!({"model": "chat-model", "input": "Hello", "max_output_tokens": 8}),
        json!({"model": "chat-model", "max_tokens": 8, "messages": [{"role": "user", "content": [
            {"type": "text", "text": "hi"}]}], "tools": [{"name": "w", "input_schema": {"type": "object"}}]}),
        json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
            "generationConfig": {"maxOutputTokens": 8}}),
    ]
}

/// Checks an answer: never a server error; an error in the endpoint's shape; a stream
/// well formed.
fn judged(shape: Shape, status: u16, content_type: &str, body: &[u8]) -> TestCaseResult {
    prop_assert!(
        status < 500,
        "status {status}: {}",
        String::from_utf8_lossy(body)
    );
    if content_type.starts_with("text/event-stream") {
        return well_formed(body);
    }
    let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    if status >= 400 {
        let ok = match shape {
            Shape::OpenAi => {
                value["error"]["message"].is_string() && value["error"]["type"].is_string()
            }
            Shape::Anthropic => value["type"] == "error" && value["error"]["message"].is_string(),
            Shape::Gemini => {
                value["error"]["message"].is_string() && value["error"]["status"].is_string()
            }
        };
        prop_assert!(
            ok,
            "status {status} not in the {shape:?} error shape: {}",
            String::from_utf8_lossy(body)
        );
    } else {
        prop_assert!(
            value.is_object(),
            "a success that is not JSON: {}",
            String::from_utf8_lossy(body)
        );
    }
    Ok(())
}

#[test]
fn damaged_bodies_on_every_endpoint() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let gw = runtime.block_on(Gateway::start());
    let auth = format!("Bearer {}", gw.key);
    let input = (
        proptest::sample::select(ENDPOINTS),
        prop_oneof![5 => mutated(seeds()), 1 => arb_json()],
    );
    fuzz("live_endpoints", input, |((path, shape), body)| {
        let headers = [
            ("authorization", auth.as_str()),
            ("x-goog-api-key", gw.key.as_str()),
            ("content-type", "application/json"),
            ("anthropic-version", "2023-06-01"),
        ];
        let Ok(reply) = runtime.block_on(async {
            let url = gw.url(path);
            let request = send("POST", &url, &headers, body.to_string());
            tokio::time::timeout(Duration::from_secs(20), request).await
        }) else {
            return Err(TestCaseError::fail(format!(
                "no answer within 20 s from {path}"
            )));
        };
        let content_type = reply
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        judged(shape, reply.status, content_type, &reply.body)
    });
    let health = runtime.block_on(send("GET", &gw.url("/healthz"), &[], ""));
    assert_eq!(health.status, 200);
    runtime.block_on(gw.stop());
}

/// A valid request as raw bytes, for byte-level damage.
fn raw_request(key: &str) -> Vec<u8> {
    let body =
        r#"{"model":"chat-model","messages":[{"role":"user","content":"hi"}],"max_tokens":4}"#;
    format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: airlock\r\nauthorization: Bearer {key}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Byte-level damage: positions (modulo the length) get a byte, lose one, or gain a
/// piece of HTTP syntax.
fn damaged_raw(original: Vec<u8>) -> impl Strategy<Value = Raw> {
    let pieces: &'static [&'static [u8]] = &[
        b"\r\n",
        b"\n",
        b"\r",
        b"\0",
        b" ",
        b":",
        b"transfer-encoding: chunked\r\n",
        b"content-length: 99999999999999999999\r\n",
        b"content-length: -1\r\n",
        b"content-length: 5\r\ncontent-length: 6\r\n",
        b"expect: 100-continue\r\n",
        b"connection: upgrade\r\nupgrade: h2c\r\n",
        b"0\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        b"\xff\xfe",
    ];
    let edit = prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, b)| (at, 0u8, vec![b])),
        any::<usize>().prop_map(|at| (at, 1u8, Vec::new())),
        (any::<usize>(), proptest::sample::select(pieces)).prop_map(|(at, p)| (
            at,
            2u8,
            p.to_vec()
        )),
    ];
    proptest::collection::vec(edit, 1..4).prop_map(move |edits| {
        let mut bytes = original.clone();
        for (at, kind, piece) in edits {
            let at = at % (bytes.len() + 1);
            match kind {
                0 if at < bytes.len() => bytes[at] = piece[0],
                1 if at < bytes.len() => {
                    bytes.remove(at);
                }
                _ => {
                    bytes.splice(at..at, piece);
                }
            }
        }
        Raw(bytes)
    })
}

/// Sends raw bytes and reads until the gateway answers or closes (bounded).
async fn exchange(addr: std::net::SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
        return Vec::new();
    };
    let _ = stream.write_all(bytes).await;
    let _ = stream.shutdown().await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    answer
}

#[test]
fn damaged_raw_http_never_takes_the_gateway_down() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let gw = runtime.block_on(Gateway::start());
    fuzz(
        "raw_http",
        damaged_raw(raw_request(&gw.key)),
        |Raw(bytes)| {
            let answer = runtime.block_on(exchange(gw.addr, &bytes));
            let head = String::from_utf8_lossy(&answer);
            if let Some(status) = head
                .strip_prefix("HTTP/1.1 ")
                .and_then(|rest| rest.get(..3))
                .and_then(|code| code.parse::<u16>().ok())
            {
                prop_assert!(status < 500, "raw request answered {status}: {head}");
            }
            Ok(())
        },
    );
    let health = runtime.block_on(send("GET", &gw.url("/healthz"), &[], ""));
    assert_eq!(health.status, 200, "the gateway survived the raw damage");
    runtime.block_on(gw.stop());
}
