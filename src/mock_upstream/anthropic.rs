//! `--flavor anthropic`: Anthropic's Messages API (`POST /v1/messages`) in front of the
//! same simulated model. Requests become chat requests and answers and streams go back
//! through Airlock's Anthropic translation, whose output the official `anthropic` SDK
//! checks in the interop tests.

use super::body::MockBody;
use super::sse::SseBody;
use crate::api::anthropic::stream::AnthropicStream;
use crate::api::anthropic::{self, MessagesRequest};
use crate::api::openai::ForwardedRequest;
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use http_body_util::BodyExt;
use std::io;
use std::task::{Context, Poll, ready};

/// Anthropic's error answer.
pub fn error(status: StatusCode, message: &str) -> Response<MockBody> {
    let mut response = Response::new(MockBody::full(anthropic::error_json(
        status.as_u16(),
        message,
    )));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Whether the request carries the key (`x-api-key`, as Anthropic's API wants).
pub fn is_authorized(api_key: Option<&str>, headers: &HeaderMap) -> bool {
    api_key.is_none_or(|key| {
        headers
            .get("x-api-key")
            .is_some_and(|v| v.as_bytes() == key.as_bytes())
    })
}

/// The chat request to simulate for a Messages request (with usage asked for on
/// streams, and `mock_fault` kept), the model name to answer with, and whether it
/// streams.
pub fn to_chat(body: &[u8]) -> Result<(Vec<u8>, String, bool), String> {
    let request: MessagesRequest =
        serde_json::from_slice(body).map_err(|e| format!("invalid request: {e}"))?;
    let mut chat = request.to_chat().map_err(|e| e.0)?;
    if request.is_stream() {
        chat.request_stream_usage();
    }
    if let Some(fault) = request.extra.get("mock_fault") {
        chat.extra.insert("mock_fault".into(), fault.clone());
    }
    let bytes = serde_json::to_vec(&chat).map_err(|e| e.to_string())?;
    let stream = request.is_stream();
    Ok((bytes, request.model, stream))
}

/// Turns the simulated chat answer into Anthropic's: an error, a message, or a stream.
pub async fn from_chat(answer: Response<MockBody>, model: &str) -> Response<MockBody> {
    let (mut parts, body) = answer.into_parts();
    if let MockBody::Sse(stream) = body {
        parts.headers.remove(header::CONTENT_LENGTH);
        return Response::from_parts(
            parts,
            MockBody::Anthropic(Box::new(TranslatedSse {
                inner: stream,
                stream: AnthropicStream::new(model),
            })),
        );
    }
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    if !parts.status.is_success() {
        let message = crate::api::openai::upstream_error_message(&bytes).unwrap_or_default();
        let mut response = error(parts.status, &message);
        if let Some(retry_after) = parts.headers.get(header::RETRY_AFTER) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, retry_after.clone());
        }
        return response;
    }
    let message = anthropic::from_chat(&json, model);
    let mut response = Response::new(MockBody::full(message.to_string()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// A simulated chat stream, re-emitted as Anthropic's events.
#[derive(Debug)]
pub struct TranslatedSse {
    inner: Box<SseBody>,
    stream: AnthropicStream,
}

impl TranslatedSse {
    /// The next translated bytes; faults of the inner stream pass through (a malformed
    /// event as it was, a reset as the same error).
    pub fn poll_bytes(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        loop {
            let Some(event) = ready!(self.inner.poll_event(cx)) else {
                return Poll::Ready(None);
            };
            let event = match event {
                Ok(event) => event,
                Err(e) => return Poll::Ready(Some(Err(e))),
            };
            let payload = event
                .strip_prefix(b"data: ")
                .map(|p| p.trim_ascii_end())
                .unwrap_or_default();
            let mut out = BytesMut::new();
            if payload == b"[DONE]" {
                self.stream.finish(&mut out);
            } else {
                match serde_json::from_slice::<serde_json::Value>(payload) {
                    Ok(chunk) => self.stream.on_chunk(&chunk, &mut out),
                    Err(_) => return Poll::Ready(Some(Ok(event))),
                }
            }
            if !out.is_empty() {
                return Poll::Ready(Some(Ok(out.freeze())));
            }
        }
    }

    pub fn is_finished(&self) -> bool {
        self.inner.is_finished()
    }
}
