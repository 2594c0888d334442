//! What differs between upstream kinds on the wire: the body a request is sent as, the
//! path it goes to, and how the answer and a stream's events become OpenAI's.

use crate::api::openai::{ChatCompletionRequest, ForwardedRequest};
use crate::api::{UpstreamEvents, anthropic, gemini};
use crate::config::UpstreamKind;
use crate::server::error::ApiError;
use bytes::Bytes;
use std::borrow::Cow;

/// The request body for an upstream of `kind`, naming `model` (the target's own name).
pub fn request_body<T: ForwardedRequest>(
    kind: UpstreamKind,
    request: &T,
    model: &str,
) -> Result<Vec<u8>, ApiError> {
    let translated = match kind {
        UpstreamKind::OpenaiCompatible => {
            return serde_json::to_vec(request).map_err(|e| ApiError::invalid_json(&e.to_string()));
        }
        UpstreamKind::Anthropic => {
            anthropic::upstream::messages_request(chat(kind, request)?, model)
        }
        UpstreamKind::Gemini => gemini::generate_content_request(chat(kind, request)?),
    }
    .map_err(|e| ApiError::invalid_request(&e.0))?;
    serde_json::to_vec(&translated).map_err(|e| ApiError::invalid_json(&e.to_string()))
}

/// The request as a chat request: the only kind other formats are translated from.
fn chat<T: ForwardedRequest>(
    kind: UpstreamKind,
    request: &T,
) -> Result<&ChatCompletionRequest, ApiError> {
    request.as_chat().ok_or_else(|| {
        ApiError::invalid_request(&format!(
            "this model is served by {} upstream, which takes chat requests only",
            match kind {
                UpstreamKind::Gemini => "a Gemini",
                _ => "an Anthropic",
            }
        ))
    })
}

/// The path below the upstream's base URL: the OpenAI path the client used, or the
/// kind's own endpoint.
pub fn path<'a>(
    kind: UpstreamKind,
    openai_path: &'a str,
    model: &str,
    stream: bool,
) -> Cow<'a, str> {
    match kind {
        UpstreamKind::OpenaiCompatible => Cow::Borrowed(openai_path),
        UpstreamKind::Anthropic => Cow::Borrowed("/messages"),
        UpstreamKind::Gemini => Cow::Owned(gemini::method_path(model, stream)),
    }
}

/// A whole successful answer as an OpenAI chat completion naming `model`.
pub fn whole_answer(kind: UpstreamKind, body: Bytes, model: &str) -> Result<Bytes, ApiError> {
    if kind == UpstreamKind::OpenaiCompatible {
        return Ok(body);
    }
    let answer: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|_| ApiError::upstream_protocol("the response body is not valid JSON"))?;
    let created = crate::store::now_unix();
    let completion = match kind {
        UpstreamKind::Gemini => gemini::chat_completion(&answer, model, created),
        _ => anthropic::upstream::chat_completion(&answer, model, created),
    };
    Ok(Bytes::from(completion.to_string()))
}

/// For a stream of another format: the translator of its events into OpenAI chunks.
pub fn stream_events(kind: UpstreamKind, model: &str) -> Option<Box<dyn UpstreamEvents>> {
    let created = crate::store::now_unix();
    match kind {
        UpstreamKind::OpenaiCompatible => None,
        UpstreamKind::Anthropic => Some(Box::new(anthropic::upstream::ChunkStream::new(
            model, created,
        ))),
        UpstreamKind::Gemini => Some(Box::new(gemini::stream::ChunkStream::new(model, created))),
    }
}
