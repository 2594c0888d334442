//! One prompt in each client wire format the gateway serves (OpenAI chat, Anthropic
//! Messages, Gemini, Responses), and the check that an error came back in the caller's
//! own shape.

use super::{Gateway, Reply, send};
use serde_json::{Value, json};

/// The wire formats, by name.
pub const FORMATS: [&str; 4] = ["openai", "anthropic", "gemini", "responses"];

/// Sends `prompt` to `model` in `format` with `key`, with `extra` headers.
pub async fn ask_in_format(
    gw: &Gateway,
    format: &str,
    key: &str,
    model: &str,
    prompt: &str,
    extra: &[(&str, &str)],
) -> Reply {
    let (path, body) = match format {
        "openai" => (
            "/v1/chat/completions".to_string(),
            json!({"model": model, "messages": [{"role": "user", "content": prompt}]}),
        ),
        "anthropic" => (
            "/v1/messages".to_string(),
            json!({"model": model, "max_tokens": 50,
                   "messages": [{"role": "user", "content": prompt}]}),
        ),
        "gemini" => (
            format!("/v1beta/models/{model}:generateContent"),
            json!({"contents": [{"role": "user", "parts": [{"text": prompt}]}]}),
        ),
        "responses" => (
            "/v1/responses".to_string(),
            json!({"model": model, "input": prompt}),
        ),
        other => panic!("no wire format {other}"),
    };
    send_in_format(gw, format, key, &path, &body, extra).await
}

/// Posts `body` to `path` with `key` where `format`'s clients put it (`x-goog-api-key`
/// for Gemini's, a bearer token for the others), with `extra` headers.
pub async fn send_in_format(
    gw: &Gateway,
    format: &str,
    key: &str,
    path: &str,
    body: &Value,
    extra: &[(&str, &str)],
) -> Reply {
    let bearer = format!("Bearer {key}");
    let mut headers = vec![("content-type", "application/json")];
    if format == "gemini" {
        headers.push(("x-goog-api-key", key));
    } else {
        headers.push(("authorization", bearer.as_str()));
    }
    headers.extend_from_slice(extra);
    send(
        "POST",
        &gw.url(path),
        &headers,
        serde_json::to_vec(body).unwrap(),
    )
    .await
}

/// Asserts an error answer with `status` and the gateway's `code`, in `format`'s shape.
pub fn assert_error_in(reply: &Reply, format: &str, status: u16, code: &str) {
    assert_eq!(reply.status, status, "{format}: {}", reply.text());
    let header = reply.headers.get("x-airlock-error-code");
    assert_eq!(header.and_then(|v| v.to_str().ok()), Some(code), "{format}");
    let body: Value = reply.json();
    let message = match format {
        "openai" | "responses" => {
            assert_eq!(body["error"]["code"], code, "{format}: {body}");
            &body["error"]["message"]
        }
        "anthropic" => {
            assert_eq!(body["type"], "error", "{format}: {body}");
            &body["error"]["message"]
        }
        "gemini" => {
            assert_eq!(body["error"]["code"], status, "{format}: {body}");
            &body["error"]["message"]
        }
        other => panic!("no wire format {other}"),
    };
    assert!(
        message.as_str().is_some_and(|m| !m.is_empty()),
        "{format}: {body}"
    );
}
