//! What differs between upstream kinds on the wire: the body a request is sent as, the
//! path it goes to, and how the answer and a stream's events become OpenAI's.

use crate::api::openai::{ChatCompletionRequest, ForwardedRequest};
use crate::api::{UpstreamEvents, anthropic, gemini};
use crate::config::UpstreamKind;
use crate::providers::openai_compat::{Upstream, UpstreamPath};
use crate::server::error::ApiError;
use bytes::Bytes;
use std::borrow::Cow;

/// The request body for `upstream`, naming `model` (the target's own name).
pub fn request_body<T: ForwardedRequest>(
    upstream: &Upstream,
    request: &T,
    model: &str,
) -> Result<Vec<u8>, ApiError> {
    let kind = upstream.kind;
    let translated = match kind {
        UpstreamKind::OpenaiCompatible => {
            let body = match openai_compatible_chat(upstream.developer_role, request) {
                Some(chat) => serde_json::to_vec(&chat),
                None => serde_json::to_vec(request),
            };
            return body.map_err(|e| ApiError::invalid_json(&e.to_string()));
        }
        UpstreamKind::Anthropic => {
            anthropic::upstream::messages_request(chat(kind, request)?, model)
        }
        UpstreamKind::Gemini => gemini::generate_content_request(chat(kind, request)?),
    }
    .map_err(|e| ApiError::invalid_request(&e.0))?;
    serde_json::to_vec(&translated).map_err(|e| ApiError::invalid_json(&e.to_string()))
}

/// The chat request as an OpenAI-compatible upstream takes it, when that differs from what
/// the client sent: cleaned as [`ChatCompletionRequest::for_openai_upstream`] says, and its
/// `developer` messages sent as `system` unless the upstream takes that role
/// (`developer_role`; vLLM's chat templates mostly do not).
fn openai_compatible_chat<T: ForwardedRequest>(
    developer_role: bool,
    request: &T,
) -> Option<ChatCompletionRequest> {
    let original = request.as_chat()?;
    let cleaned = original.for_openai_upstream();
    if developer_role || !original.messages.iter().any(|m| m.role == "developer") {
        return cleaned;
    }
    let mut chat = cleaned.unwrap_or_else(|| original.clone());
    for message in &mut chat.messages {
        if message.role == "developer" {
            message.role = "system".into();
        }
    }
    Some(chat)
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
        UpstreamKind::Gemini => Cow::Owned(gemini::method_path(
            model,
            if stream {
                "streamGenerateContent?alt=sse"
            } else {
                "generateContent"
            },
        )),
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

/// A token-counting request for one upstream: where it goes and what it says.
pub struct CountRequest {
    /// The path is from the server's root, not below the base URL.
    from_root: bool,
    path: String,
    pub body: Vec<u8>,
}

impl CountRequest {
    pub fn path(&self) -> UpstreamPath<'_> {
        if self.from_root {
            UpstreamPath::Root(&self.path)
        } else {
            UpstreamPath::Api(&self.path)
        }
    }
}

/// Fields Anthropic's `count_tokens` takes from a Messages request.
const ANTHROPIC_COUNT_FIELDS: &[&str] = &["model", "messages", "system", "tools", "tool_choice"];

/// How an upstream of `kind` counts `chat`'s prompt tokens: vLLM's `/tokenize` (at the
/// server root), Anthropic's `/messages/count_tokens`, Gemini's `:countTokens`.
pub fn count_request(
    kind: UpstreamKind,
    chat: &ChatCompletionRequest,
    model: &str,
) -> Result<CountRequest, ApiError> {
    let invalid = |e: crate::api::Invalid| ApiError::invalid_request(&e.0);
    let (from_root, path, body) = match kind {
        UpstreamKind::OpenaiCompatible => {
            let clean = chat.for_openai_upstream();
            let chat = clean.as_ref().unwrap_or(chat);
            let mut body = serde_json::json!({"model": model, "messages": chat.messages,
                                              "add_generation_prompt": true});
            if let Some(tools) = chat.extra.get("tools") {
                body["tools"] = tools.clone();
            }
            (true, "/tokenize".to_string(), body)
        }
        UpstreamKind::Anthropic => {
            let mut full = anthropic::upstream::messages_request(chat, model).map_err(invalid)?;
            if let Some(fields) = full.as_object_mut() {
                fields.retain(|k, _| ANTHROPIC_COUNT_FIELDS.contains(&k.as_str()));
            }
            (false, "/messages/count_tokens".to_string(), full)
        }
        UpstreamKind::Gemini => {
            let mut generate = gemini::generate_content_request(chat).map_err(invalid)?;
            generate["model"] = gemini::model_resource(model).into();
            let path = gemini::method_path(model, "countTokens");
            (
                false,
                path,
                serde_json::json!({"generateContentRequest": generate}),
            )
        }
    };
    let body = serde_json::to_vec(&body).map_err(|e| ApiError::invalid_json(&e.to_string()))?;
    Ok(CountRequest {
        from_root,
        path,
        body,
    })
}

/// The token count in an upstream's answer to `count_request`.
pub fn counted_tokens(kind: UpstreamKind, body: &[u8]) -> Option<u64> {
    let answer: serde_json::Value = serde_json::from_slice(body).ok()?;
    let field = match kind {
        UpstreamKind::OpenaiCompatible => "count",
        UpstreamKind::Anthropic => "input_tokens",
        UpstreamKind::Gemini => "totalTokens",
    };
    answer[field].as_u64()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn developer_messages_become_system_messages_unless_the_upstream_takes_them() {
        let chat: ChatCompletionRequest =
            serde_json::from_value(json!({"model": "m", "messages": [
            {"role": "developer", "content": "Be terse."},
            {"role": "user", "content": "hi"}]}))
            .unwrap();
        let sent = openai_compatible_chat(false, &chat).unwrap();
        assert_eq!(sent.messages[0].role, "system");
        assert_eq!(sent.messages[1].role, "user");
        assert!(openai_compatible_chat(true, &chat).is_none());
        let plain: ChatCompletionRequest = serde_json::from_value(
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .unwrap();
        assert!(openai_compatible_chat(false, &plain).is_none());
    }
}
