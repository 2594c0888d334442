//! OpenAI wire types: requests parsed into typed structs that keep every unknown field
//! verbatim (vLLM extras like `top_k` or `chat_template_kwargs` pass through), the error
//! shape, and the probes that read usage out of responses.

use crate::pii::MessageRole;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Fields a request may carry beyond the typed ones, kept as received.
pub type Extra = Map<String, Value>;

/// `POST /v1/chat/completions`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChatCompletionRequest {
    pub model: String,
    pub messages: Vec<ChatMessage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    #[serde(flatten)]
    pub extra: Extra,
    /// What a Gemini client said in Gemini's own terms (JSON Schema fields,
    /// `thinkingConfig`), for a Gemini upstream to receive as sent; never serialized.
    #[serde(skip)]
    pub gemini_native: Option<Box<crate::api::gemini::native::Native>>,
}

/// One chat message; content is a string, an array of parts, or null (tool calls).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Value>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `stream_options` of a streaming request.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StreamOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_usage: Option<bool>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `POST /v1/completions` (legacy text completions).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompletionRequest {
    pub model: String,
    /// A string, a list of strings, or token arrays.
    pub prompt: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `POST /v1/embeddings`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EmbeddingRequest {
    pub model: String,
    /// A string, a list of strings, or token arrays.
    pub input: Value,
    #[serde(flatten)]
    pub extra: Extra,
}

/// What the gateway needs from any request it forwards.
pub trait ForwardedRequest: Serialize {
    fn model(&self) -> &str;
    fn set_model(&mut self, model: String);
    /// Whether the client asked for a stream.
    fn is_stream(&self) -> bool;
    /// Makes the upstream report usage at the end of a stream; returns true when the
    /// client did not ask for it (so the extra usage chunk must be stripped).
    fn request_stream_usage(&mut self) -> bool;
    /// What serving this request takes from a model.
    fn features(&self) -> Features;
    /// Fields beyond the typed ones.
    fn extra(&self) -> &Extra;
    /// The request as a chat request, if it is one (only those can be translated for
    /// upstreams of another format).
    fn as_chat(&self) -> Option<&ChatCompletionRequest> {
        None
    }
    /// The prompt's text (messages, prompt or input), for policy content rules.
    fn prompt_text(&self) -> String;
    /// The prompt's text strings with the role of the message each is in, to rewrite in
    /// place (personal data redaction). A prompt or input without messages is the user's.
    fn texts_mut(&mut self) -> Vec<(MessageRole, &mut String)>;
    /// The completion length the request asks for (0: unsaid).
    fn completion_budget(&self) -> u64 {
        completion_budget(self.extra())
    }
    /// Limits the completion to `tokens` (`max_tokens`) when the request names no limit:
    /// a budget reserved that much. Requests without a completion ignore it.
    fn limit_completion(&mut self, _tokens: u64) {}
    /// The end user the caller names in OpenAI's `user` field, if any.
    fn end_user(&self) -> Option<&str> {
        self.extra()
            .get("user")
            .and_then(Value::as_str)
            .filter(|u| !u.is_empty())
    }
}

/// What a request uses, for matching it with targets' capabilities.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Features {
    pub tools: bool,
    pub json_schema: bool,
    pub vision: bool,
    pub streaming: bool,
    /// Prompt plus the completion asked for, estimated at four bytes a token.
    pub context_tokens: u64,
}

/// Bytes of text in a prompt value: strings, text parts, lists of either; a token id
/// counts as four bytes.
fn text_bytes(value: &Value) -> u64 {
    match value {
        Value::String(s) => s.len() as u64,
        Value::Number(_) => 4,
        Value::Array(items) => items.iter().map(text_bytes).sum(),
        Value::Object(part) => part.get("text").map_or(0, text_bytes),
        _ => 0,
    }
}

/// A request's context: its prompt at four bytes a token plus the completion it asks
/// for (saturating: a client may ask for `u64::MAX` tokens).
fn context_tokens(prompt_bytes: u64, extra: &Extra) -> u64 {
    prompt_bytes
        .div_ceil(4)
        .saturating_add(completion_budget(extra))
}

/// The completion length a request asks for (`max_completion_tokens` or `max_tokens`).
fn completion_budget(extra: &Extra) -> u64 {
    ["max_completion_tokens", "max_tokens"]
        .iter()
        .find_map(|k| extra.get(*k).and_then(Value::as_u64))
        .unwrap_or(0)
}

fn non_empty_list(extra: &Extra, key: &str) -> bool {
    extra
        .get(key)
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
}

/// Content part types that carry an image.
const IMAGE_PARTS: [&str; 3] = ["image_url", "input_image", "image"];

impl ChatCompletionRequest {
    fn chat_features(&self) -> Features {
        let has_image = |content: &Value| {
            content.as_array().is_some_and(|parts| {
                parts.iter().any(|p| {
                    p.get("type")
                        .and_then(Value::as_str)
                        .is_some_and(|t| IMAGE_PARTS.contains(&t))
                })
            })
        };
        let prompt_bytes: u64 = self
            .messages
            .iter()
            .filter_map(|m| m.content.as_ref())
            .map(text_bytes)
            .sum();
        Features {
            tools: non_empty_list(&self.extra, "tools") || non_empty_list(&self.extra, "functions"),
            json_schema: self
                .extra
                .get("response_format")
                .and_then(|f| f.get("type"))
                .and_then(Value::as_str)
                == Some("json_schema"),
            vision: self
                .messages
                .iter()
                .filter_map(|m| m.content.as_ref())
                .any(has_image),
            streaming: self.is_stream(),
            context_tokens: context_tokens(prompt_bytes, &self.extra),
        }
    }
}

fn force_include_usage(options: &mut Option<StreamOptions>) -> bool {
    let options = options.get_or_insert_with(StreamOptions::default);
    if options.include_usage == Some(true) {
        return false;
    }
    options.include_usage = Some(true);
    true
}

macro_rules! streaming_request {
    ($t:ty, $features:expr, $as_chat:expr, $text:expr, $texts:expr) => {
        impl ForwardedRequest for $t {
            fn model(&self) -> &str {
                &self.model
            }
            fn set_model(&mut self, model: String) {
                self.model = model;
            }
            fn is_stream(&self) -> bool {
                self.stream == Some(true)
            }
            fn request_stream_usage(&mut self) -> bool {
                force_include_usage(&mut self.stream_options)
            }
            fn features(&self) -> Features {
                $features(self)
            }
            fn extra(&self) -> &Extra {
                &self.extra
            }
            fn limit_completion(&mut self, tokens: u64) {
                if completion_budget(&self.extra) == 0 {
                    self.extra.insert("max_tokens".into(), tokens.into());
                }
            }
            fn as_chat(&self) -> Option<&ChatCompletionRequest> {
                $as_chat(self)
            }
            fn prompt_text(&self) -> String {
                $text(self)
            }
            fn texts_mut(&mut self) -> Vec<(MessageRole, &mut String)> {
                let mut texts = Vec::new();
                for (role, value) in $texts(self) {
                    role_texts_mut(role, value, &mut texts);
                }
                texts
            }
        }
    };
}
streaming_request!(
    ChatCompletionRequest,
    ChatCompletionRequest::chat_features,
    Some,
    |r: &ChatCompletionRequest| crate::policy::facts::chat_text(
        r.messages.iter().filter_map(|m| m.content.as_ref())
    ),
    ChatCompletionRequest::contents_mut
);
streaming_request!(
    CompletionRequest,
    |r: &CompletionRequest| Features {
        streaming: r.is_stream(),
        context_tokens: context_tokens(text_bytes(&r.prompt), &r.extra),
        ..Features::default()
    },
    |_| None,
    |r: &CompletionRequest| crate::policy::facts::chat_text(std::iter::once(&r.prompt)),
    CompletionRequest::prompt_mut
);

/// Every text string in `value` (see [`crate::policy::facts::texts_mut`]), each with `role`.
fn role_texts_mut<'a>(
    role: MessageRole,
    value: &'a mut Value,
    out: &mut Vec<(MessageRole, &'a mut String)>,
) {
    let mut texts = Vec::new();
    crate::policy::facts::texts_mut(value, &mut texts);
    out.extend(texts.into_iter().map(|text| (role, text)));
}

/// A content without `cache_control` marks: text parts only become one string.
fn unmark(content: &mut Value) {
    let Some(parts) = content.as_array_mut() else {
        return;
    };
    for part in parts.iter_mut().filter_map(Value::as_object_mut) {
        part.remove("cache_control");
    }
    if parts.iter().all(|p| p["type"] == "text") {
        let text: String = parts.iter().filter_map(|p| p["text"].as_str()).collect();
        *content = text.into();
    }
}

/// Whether a chat value (a content part, a tool) carries Anthropic's `cache_control`.
fn has_cache_control(value: &Value) -> bool {
    value.get("cache_control").is_some()
}

impl ChatCompletionRequest {
    /// The request as an OpenAI-compatible upstream takes it, when that differs from what
    /// the client sent: without an empty `tools` list (OpenAI refuses one), nor a
    /// `tool_choice` or `parallel_tool_calls` among no tools (refused too; a Responses or
    /// Gemini client with no tools may send them); and without the `cache_control` marks
    /// an Anthropic client's prompt caching leaves on parts and tools (only an Anthropic
    /// upstream uses them; OpenAI refuses unknown fields), a content of text parts
    /// becoming the one string it was before the marks.
    pub fn for_openai_upstream(&self) -> Option<Self> {
        let tools = self.extra.get("tools").and_then(Value::as_array);
        const TOOL_SETTINGS: [&str; 3] = ["tools", "tool_choice", "parallel_tool_calls"];
        let no_tools = match self.extra.get("tools") {
            None => true,
            Some(listed) => listed.as_array().is_some_and(Vec::is_empty),
        };
        let pointless_tools = no_tools && TOOL_SETTINGS.iter().any(|k| self.extra.contains_key(*k));
        let marked_tools = tools.is_some_and(|t| t.iter().any(has_cache_control));
        let marked = |m: &ChatMessage| {
            m.content
                .as_ref()
                .and_then(Value::as_array)
                .is_some_and(|parts| parts.iter().any(has_cache_control))
        };
        let marked_messages = self.messages.iter().any(marked);
        if !pointless_tools && !marked_tools && !marked_messages {
            return None;
        }
        let mut clean = self.clone();
        if pointless_tools {
            for key in TOOL_SETTINGS {
                clean.extra.remove(key);
            }
        }
        let tools = clean.extra.get_mut("tools").and_then(Value::as_array_mut);
        for tool in tools.into_iter().flatten().filter_map(Value::as_object_mut) {
            tool.remove("cache_control");
        }
        for message in clean.messages.iter_mut() {
            if marked(message)
                && let Some(content) = message.content.as_mut()
            {
                unmark(content);
            }
        }
        Some(clean)
    }

    fn contents_mut(&mut self) -> impl Iterator<Item = (MessageRole, &mut Value)> {
        self.messages
            .iter_mut()
            .filter_map(|m| Some((MessageRole::of(&m.role), m.content.as_mut()?)))
    }
}

impl CompletionRequest {
    fn prompt_mut(&mut self) -> impl Iterator<Item = (MessageRole, &mut Value)> {
        std::iter::once((MessageRole::User, &mut self.prompt))
    }
}

impl ForwardedRequest for EmbeddingRequest {
    fn model(&self) -> &str {
        &self.model
    }
    fn set_model(&mut self, model: String) {
        self.model = model;
    }
    fn is_stream(&self) -> bool {
        false
    }
    fn request_stream_usage(&mut self) -> bool {
        false
    }
    fn features(&self) -> Features {
        Features {
            context_tokens: text_bytes(&self.input).div_ceil(4),
            ..Features::default()
        }
    }
    fn extra(&self) -> &Extra {
        &self.extra
    }
    fn prompt_text(&self) -> String {
        crate::policy::facts::chat_text(std::iter::once(&self.input))
    }
    fn texts_mut(&mut self) -> Vec<(MessageRole, &mut String)> {
        let mut texts = Vec::new();
        role_texts_mut(MessageRole::User, &mut self.input, &mut texts);
        texts
    }
}

/// Token counts an upstream reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(from = "crate::api::chunk::ChunkUsage")]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Prompt tokens the upstream served from its prompt cache (part of `prompt_tokens`,
    /// priced lower).
    pub cached_tokens: u64,
}

/// Reads just `usage` out of a response body or stream chunk, validating the JSON.
#[derive(Debug, Deserialize)]
pub struct UsageProbe {
    #[serde(default)]
    pub usage: Option<Usage>,
    #[serde(default)]
    pub choices: Option<Vec<serde::de::IgnoredAny>>,
    #[serde(default)]
    pub error: Option<Value>,
}

/// OpenAI's error body: `{"error": {"message", "type", "param", "code"}}`.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorBody<'a> {
    pub error: ErrorDetail<'a>,
}

/// The inner error object.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorDetail<'a> {
    pub message: &'a str,
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub param: Option<&'a str>,
    pub code: Option<&'a str>,
}

/// Serialises an OpenAI-shaped error body.
pub fn error_json(message: &str, kind: &str, param: Option<&str>, code: Option<&str>) -> Vec<u8> {
    let body = ErrorBody {
        error: ErrorDetail {
            message,
            kind,
            param,
            code,
        },
    };
    serde_json::to_vec(&body).unwrap_or_else(|_| b"{\"error\":{}}".to_vec())
}

/// The message and kind inside an upstream error body, whatever its dialect: OpenAI and
/// current vLLM (`{"error":{...,"code":400}}`), older vLLM (`{"object":"error",...}`),
/// FastAPI (`{"detail": ...}`) or a bare string (`{"error":"Unauthorized"}`).
pub fn upstream_error_message(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    };
    match value.get("error") {
        Some(Value::Object(e)) => e.get("message").and_then(text),
        Some(other) => text(other),
        None => value
            .get("message")
            .and_then(text)
            .or_else(|| value.get("detail").and_then(text)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The roles of a request's texts, in order, with the texts.
    fn roles(request: &mut impl ForwardedRequest) -> Vec<(&'static str, String)> {
        request
            .texts_mut()
            .into_iter()
            .map(|(role, text)| (role.as_str(), text.clone()))
            .collect()
    }

    #[test]
    fn every_text_carries_the_role_of_its_message() {
        let mut chat: ChatCompletionRequest = serde_json::from_value(serde_json::json!({
            "model": "m", "messages": [
                {"role": "system", "content": "sys"},
                {"role": "developer", "content": [{"type": "text", "text": "dev"}]},
                {"role": "user", "content": [{"type": "text", "text": "u1"}, {"type": "text", "text": "u2"}]},
                {"role": "assistant", "content": null, "tool_calls": []},
                {"role": "tool", "tool_call_id": "c", "content": "t"},
                {"role": "function", "name": "f", "content": "f"},
                {"role": "narrator", "content": "n"}]
        }))
        .unwrap();
        let expected = [
            ("system", "sys"),
            ("developer", "dev"),
            ("user", "u1"),
            ("user", "u2"),
            ("tool", "t"),
            ("tool", "f"),
            ("user", "n"),
        ];
        let expected: Vec<_> = expected.iter().map(|(r, t)| (*r, t.to_string())).collect();
        assert_eq!(roles(&mut chat), expected);
        let mut completion: CompletionRequest =
            serde_json::from_value(serde_json::json!({"model": "m", "prompt": ["a", "b"]}))
                .unwrap();
        assert_eq!(roles(&mut completion)[1], ("user", "b".to_string()));
        let mut embedding: EmbeddingRequest =
            serde_json::from_value(serde_json::json!({"model": "m", "input": "e"})).unwrap();
        assert_eq!(roles(&mut embedding), vec![("user", "e".to_string())]);
    }

    #[test]
    fn every_formats_system_prompt_becomes_a_system_or_developer_text() {
        use serde_json::json;
        let anthropic: crate::api::anthropic::MessagesRequest = serde_json::from_value(json!({
            "model": "m", "max_tokens": 10,
            "system": [{"type": "text", "text": "sys"}],
            "messages": [{"role": "user", "content": "u"}]}))
        .unwrap();
        let gemini = json!({"systemInstruction": {"parts": [{"text": "sys"}]},
            "contents": [{"role": "user", "parts": [{"text": "u"}]}]});
        let gemini =
            crate::api::gemini::ingress::to_chat(gemini.to_string().as_bytes(), "m", false);
        let instructions: crate::api::responses::ResponsesRequest =
            serde_json::from_value(json!({"model": "m", "instructions": "sys", "input": "u"}))
                .unwrap();
        let developer: crate::api::responses::ResponsesRequest = serde_json::from_value(json!({
            "model": "m", "input": [
                {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "sys"}]},
                {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "u"}]}]}))
        .unwrap();
        let chats = [
            ("anthropic", anthropic.to_chat(), "system"),
            ("gemini", gemini, "system"),
            ("responses instructions", instructions.to_chat(), "system"),
            ("responses developer", developer.to_chat(), "developer"),
        ];
        for (format, chat, role) in chats {
            let mut chat = chat.unwrap_or_else(|e| panic!("{format}: {}", e.0));
            let texts = roles(&mut chat);
            assert_eq!(texts.first(), Some(&(role, "sys".to_string())), "{format}");
            assert_eq!(texts.last(), Some(&("user", "u".to_string())), "{format}");
        }
    }

    #[test]
    fn an_openai_upstream_gets_no_empty_tools_and_no_cache_marks() {
        let plain: ChatCompletionRequest = serde_json::from_value(serde_json::json!({
            "model": "m", "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "function", "function": {"name": "t"}}]
        }))
        .unwrap();
        assert!(plain.for_openai_upstream().is_none(), "sent as it came");
        let marked: ChatCompletionRequest = serde_json::from_value(serde_json::json!({
            "model": "m",
            "messages": [
                {"role": "system", "content": [{"type": "text", "text": "A"},
                    {"type": "text", "text": "B", "cache_control": {"type": "ephemeral"}}]},
                {"role": "user", "content": [{"type": "text", "text": "look", "cache_control": {"type": "ephemeral"}},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}]}
            ],
            "tools": [], "tool_choice": "auto", "parallel_tool_calls": false
        }))
        .unwrap();
        let clean = serde_json::to_value(marked.for_openai_upstream().unwrap()).unwrap();
        assert_eq!(
            clean,
            serde_json::json!({"model": "m", "messages": [
                {"role": "system", "content": "AB"},
                {"role": "user", "content": [{"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}]}
            ]})
        );
        let tools: ChatCompletionRequest = serde_json::from_value(serde_json::json!({
            "model": "m", "messages": [],
            "tools": [{"type": "function", "function": {"name": "t"}, "cache_control": {"type": "ephemeral"}}]
        }))
        .unwrap();
        let clean = serde_json::to_value(tools.for_openai_upstream().unwrap()).unwrap();
        assert_eq!(
            clean["tools"],
            serde_json::json!([{"type": "function", "function": {"name": "t"}}])
        );
    }

    #[test]
    fn a_huge_completion_limit_saturates_the_context_estimate() {
        // Found by the adversarial suite: the sum overflowed (a panic in debug builds, a
        // wrapped-around small estimate in release).
        let chat: ChatCompletionRequest = serde_json::from_value(serde_json::json!({
            "model": "m", "max_tokens": u64::MAX,
            "messages": [{"role": "user", "content": "hello"}]
        }))
        .unwrap();
        assert_eq!(chat.features().context_tokens, u64::MAX);
        let completion: CompletionRequest = serde_json::from_value(
            serde_json::json!({"model": "m", "prompt": "hi", "max_tokens": u64::MAX}),
        )
        .unwrap();
        assert_eq!(completion.features().context_tokens, u64::MAX);
    }

    #[test]
    fn unknown_fields_survive_a_round_trip() {
        let body = r#"{"model":"m","messages":[{"role":"user","content":"hi","name":"bob"}],
            "top_k":5,"chat_template_kwargs":{"enable_thinking":false},"structured_outputs":{"regex":"a+"}}"#;
        let req: ChatCompletionRequest = serde_json::from_str(body).unwrap();
        let out: Value = serde_json::to_value(&req).unwrap();
        assert_eq!(out["top_k"], 5);
        assert_eq!(out["chat_template_kwargs"]["enable_thinking"], false);
        assert_eq!(out["structured_outputs"]["regex"], "a+");
        assert_eq!(out["messages"][0]["name"], "bob");
        assert!(out.get("stream").is_none());
    }

    #[test]
    fn key_order_survives_a_round_trip() {
        // A schema's property order steers generation (guided decoding follows it).
        let body = r#"{"model":"m","messages":[],"response_format":{"type":"json_schema",
            "json_schema":{"schema":{"properties":{"zeta":{},"alpha":{}}}}},"top_k":1,"min_p":0.1}"#;
        let req: ChatCompletionRequest = serde_json::from_str(body).unwrap();
        let out = serde_json::to_string(&req).unwrap();
        assert!(out.find("zeta").unwrap() < out.find("alpha").unwrap());
        assert!(out.find("top_k").unwrap() < out.find("min_p").unwrap());
    }

    #[test]
    fn include_usage_is_forced_only_when_missing() {
        let mut req: ChatCompletionRequest =
            serde_json::from_str(r#"{"model":"m","messages":[],"stream":true}"#).unwrap();
        assert!(req.request_stream_usage());
        assert_eq!(
            serde_json::to_value(&req).unwrap()["stream_options"]["include_usage"],
            true
        );
        let mut req: ChatCompletionRequest = serde_json::from_str(
            r#"{"model":"m","messages":[],"stream":true,"stream_options":{"include_usage":true}}"#,
        )
        .unwrap();
        assert!(!req.request_stream_usage());
    }

    #[test]
    fn wrong_types_are_rejected() {
        assert!(
            serde_json::from_str::<ChatCompletionRequest>(r#"{"model":1,"messages":[]}"#).is_err()
        );
        assert!(
            serde_json::from_str::<ChatCompletionRequest>(r#"{"model":"m","messages":"x"}"#)
                .is_err()
        );
        assert!(serde_json::from_str::<EmbeddingRequest>(r#"{"model":"m"}"#).is_err());
    }

    #[test]
    fn reads_upstream_error_dialects() {
        let vllm = br#"{"error":{"message":"bad max_tokens","type":"BadRequestError","param":null,"code":400}}"#;
        assert_eq!(upstream_error_message(vllm).unwrap(), "bad max_tokens");
        let old =
            br#"{"object":"error","message":"old style","type":"BadRequestError","code":400}"#;
        assert_eq!(upstream_error_message(old).unwrap(), "old style");
        assert_eq!(
            upstream_error_message(br#"{"error":"Unauthorized"}"#).unwrap(),
            "Unauthorized"
        );
        assert!(upstream_error_message(b"<html>").is_none());
    }
}
