//! `--flavor anthropic`: Anthropic's Messages API (`POST /v1/messages`) in front of the
//! same simulated model. Requests become chat requests and answers and streams go back
//! through Airlock's Anthropic translation, whose output the official `anthropic` SDK
//! checks in the interop tests.

use super::body::MockBody;
use super::translated::{Answer, read_answer};
use crate::api::ClientEvents;
use crate::api::anthropic::stream::AnthropicStream;
use crate::api::anthropic::{self, MessagesRequest};
use crate::api::openai::ForwardedRequest;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};

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
pub fn is_authorized(api_keys: &[String], headers: &HeaderMap) -> bool {
    api_keys.is_empty()
        || headers
            .get("x-api-key")
            .is_some_and(|v| api_keys.iter().any(|key| v.as_bytes() == key.as_bytes()))
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

/// `POST /v1/messages/count_tokens`: the prompt tokens the Messages request in `body`
/// (which needs no `max_tokens`) would have, counted as its chat request's.
pub fn count_tokens(body: &[u8]) -> Result<u64, String> {
    let mut request: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("invalid request: {e}"))?;
    if let Some(object) = request.as_object_mut() {
        object.entry("max_tokens").or_insert(1.into());
    }
    let request: MessagesRequest =
        serde_json::from_value(request).map_err(|e| format!("invalid request: {e}"))?;
    let chat = request.to_chat().map_err(|e| e.0)?;
    let messages = serde_json::to_value(&chat.messages).map_err(|e| e.to_string())?;
    let messages = messages.as_array().map_or(&[][..], Vec::as_slice);
    super::chat::prompt_stats(messages)
        .map(|stats| stats.tokens)
        .map_err(|e| e.message)
}

/// Turns the simulated chat answer into Anthropic's: an error, a message, or a stream.
pub async fn from_chat(answer: Response<MockBody>, model: &str) -> Response<MockBody> {
    let rewriter = || -> Box<dyn ClientEvents> { Box::new(AnthropicStream::new(model)) };
    let bytes = match read_answer(answer, rewriter, error).await {
        Answer::Done(response) => return response,
        Answer::Whole(bytes) => bytes,
    };
    let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let message = anthropic::from_chat(&json, model);
    let mut response = Response::new(MockBody::full(message.to_string()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
