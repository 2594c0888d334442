//! Anthropic's Messages API (`POST /v1/messages`): the request as Anthropic's clients send
//! it, its translation to an OpenAI chat request for OpenAI-compatible upstreams, the
//! answer translated back, and Anthropic's error shape.

pub mod stream;
pub mod upstream;

use super::invalid;
use super::openai::{ChatCompletionRequest, Extra};
pub use super::{Invalid, tool_input};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// `POST /v1/messages`.
#[derive(Debug, Clone, Deserialize)]
pub struct MessagesRequest {
    pub model: String,
    pub max_tokens: u64,
    pub messages: Vec<InputMessage>,
    /// A string, or a list of text blocks.
    #[serde(default)]
    pub system: Option<Value>,
    #[serde(default)]
    pub stop_sequences: Option<Vec<String>>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub top_k: Option<u64>,
    #[serde(default)]
    pub tools: Option<Vec<Tool>>,
    #[serde(default)]
    pub tool_choice: Option<ToolChoice>,
    #[serde(default)]
    pub metadata: Option<Metadata>,
    /// Fields with no OpenAI counterpart (they are not forwarded).
    #[serde(flatten)]
    pub extra: Extra,
}

/// One turn of the conversation; content is a string or a list of blocks.
#[derive(Debug, Clone, Deserialize)]
pub struct InputMessage {
    pub role: Role,
    pub content: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
}

/// A tool the model may call.
#[derive(Debug, Clone, Deserialize)]
pub struct Tool {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub input_schema: Value,
}

/// How the model may use tools.
#[derive(Debug, Clone, Deserialize)]
pub struct ToolChoice {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub disable_parallel_tool_use: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Metadata {
    #[serde(default)]
    pub user_id: Option<String>,
}

/// The content as a list of blocks (a string is one text block).
fn blocks(content: &Value) -> Result<Vec<Map<String, Value>>, Invalid> {
    match content {
        Value::String(text) => Ok(vec![text_block(text)]),
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::Object(block) => Ok(block.clone()),
                _ => Err(invalid("content blocks must be objects")),
            })
            .collect(),
        _ => Err(invalid("`content` must be a string or a list of blocks")),
    }
}

fn text_block(text: &str) -> Map<String, Value> {
    let mut block = Map::new();
    block.insert("type".into(), "text".into());
    block.insert("text".into(), text.into());
    block
}

fn block_type(block: &Map<String, Value>) -> &str {
    block.get("type").and_then(Value::as_str).unwrap_or("")
}

fn str_field<'a>(block: &'a Map<String, Value>, name: &str) -> Result<&'a str, Invalid> {
    block.get(name).and_then(Value::as_str).ok_or_else(|| {
        invalid(format!(
            "a `{}` block needs a string `{name}`",
            block_type(block)
        ))
    })
}

/// The text of text blocks, joined.
fn joined_text(blocks: &[Map<String, Value>]) -> Result<String, Invalid> {
    let mut text = String::new();
    for block in blocks.iter().filter(|b| block_type(b) == "text") {
        text.push_str(str_field(block, "text")?);
    }
    Ok(text)
}

/// An image block as an OpenAI `image_url` part (a data URL for base64 sources).
fn image_part(block: &Map<String, Value>) -> Result<Value, Invalid> {
    let source = block
        .get("source")
        .and_then(Value::as_object)
        .ok_or_else(|| invalid("an `image` block needs a `source`"))?;
    let url = match source.get("type").and_then(Value::as_str) {
        Some("base64") => format!(
            "data:{};base64,{}",
            str_field(source, "media_type")?,
            str_field(source, "data")?
        ),
        Some("url") => str_field(source, "url")?.to_string(),
        _ => return Err(invalid("image sources must be `base64` or `url`")),
    };
    Ok(json!({"type": "image_url", "image_url": {"url": url}}))
}

/// A `tool_result` block as an OpenAI `tool` message.
fn tool_message(block: &Map<String, Value>) -> Result<Value, Invalid> {
    let id = str_field(block, "tool_use_id")?;
    let mut content = match block.get("content") {
        None | Some(Value::Null) => String::new(),
        Some(content) => joined_text(&blocks(content)?)?,
    };
    if block.get("is_error") == Some(&Value::Bool(true)) {
        content = format!("Error: {content}");
    }
    Ok(json!({"role": "tool", "tool_call_id": id, "content": content}))
}

/// One user turn: its tool results first (OpenAI wants them right after the call), then
/// its text and images.
fn user_messages(content: &Value, out: &mut Vec<Value>) -> Result<(), Invalid> {
    let mut parts = Vec::new();
    for block in blocks(content)? {
        match block_type(&block) {
            "text" => parts.push(json!({"type": "text", "text": str_field(&block, "text")?})),
            "image" => parts.push(image_part(&block)?),
            "tool_result" => out.push(tool_message(&block)?),
            other => {
                return Err(invalid(format!(
                    "unsupported content block `{other}` in a user turn"
                )));
            }
        }
    }
    match parts.as_slice() {
        [] => {}
        [only] if only["type"] == "text" => {
            out.push(json!({"role": "user", "content": only["text"]}));
        }
        _ => out.push(json!({"role": "user", "content": parts})),
    }
    Ok(())
}

/// One assistant turn: its text, and its tool calls as OpenAI `tool_calls`.
fn assistant_message(content: &Value) -> Result<Value, Invalid> {
    let blocks = blocks(content)?;
    let mut calls = Vec::new();
    for block in &blocks {
        match block_type(block) {
            "text" => {}
            "tool_use" => {
                let input = block.get("input").cloned().unwrap_or_else(|| json!({}));
                calls.push(json!({
                    "id": str_field(block, "id")?,
                    "type": "function",
                    "function": {"name": str_field(block, "name")?, "arguments": input.to_string()},
                }));
            }
            other => {
                return Err(invalid(format!(
                    "unsupported content block `{other}` in an assistant turn"
                )));
            }
        }
    }
    let text = joined_text(&blocks)?;
    let mut message = json!({"role": "assistant", "content": if text.is_empty() { Value::Null } else { text.into() }});
    if !calls.is_empty() {
        message["tool_calls"] = calls.into();
    }
    Ok(message)
}

impl MessagesRequest {
    pub fn is_stream(&self) -> bool {
        self.stream == Some(true)
    }

    /// The same request in OpenAI's chat format.
    pub fn to_chat(&self) -> Result<ChatCompletionRequest, Invalid> {
        let mut messages = Vec::new();
        match &self.system {
            None | Some(Value::Null) => {}
            Some(system) => {
                let text = joined_text(&blocks(system)?)?;
                messages.push(json!({"role": "system", "content": text}));
            }
        }
        for message in &self.messages {
            match message.role {
                Role::User => user_messages(&message.content, &mut messages)?,
                Role::Assistant => messages.push(assistant_message(&message.content)?),
            }
        }
        let mut chat = json!({
            "model": self.model,
            "messages": messages,
            "max_tokens": self.max_tokens,
        });
        let fields = [
            ("stop", self.stop_sequences.as_ref().map(|s| json!(s))),
            ("temperature", self.temperature.map(Value::from)),
            ("top_p", self.top_p.map(Value::from)),
            ("top_k", self.top_k.map(Value::from)),
            (
                "user",
                self.metadata
                    .as_ref()
                    .and_then(|m| m.user_id.clone())
                    .map(Value::from),
            ),
        ];
        for (name, value) in fields {
            if let Some(value) = value {
                chat[name] = value;
            }
        }
        if self.is_stream() {
            chat["stream"] = true.into();
        }
        if let Some(tools) = &self.tools {
            chat["tools"] = tools
                .iter()
                .map(|t| {
                    json!({"type": "function", "function": {
                        "name": t.name,
                        "description": t.description.clone().unwrap_or_default(),
                        "parameters": t.input_schema,
                    }})
                })
                .collect();
        }
        if let Some(choice) = &self.tool_choice {
            chat["tool_choice"] = match (choice.kind.as_str(), &choice.name) {
                ("auto", _) => "auto".into(),
                ("any", _) => "required".into(),
                ("none", _) => "none".into(),
                ("tool", Some(name)) => json!({"type": "function", "function": {"name": name}}),
                _ => {
                    return Err(invalid(
                        "`tool_choice` must be auto, any, none, or tool with a name",
                    ));
                }
            };
            if choice.disable_parallel_tool_use == Some(true) {
                chat["parallel_tool_calls"] = false.into();
            }
        }
        serde_json::from_value(chat).map_err(|e| invalid(e.to_string()))
    }
}

/// Anthropic's `stop_reason` for an OpenAI `finish_reason` (and vLLM's `stop_reason`,
/// the stop string that matched, if any): with the stop sequence when there was one.
pub fn stop_reason(
    finish_reason: Option<&str>,
    matched: Option<&str>,
) -> (&'static str, Option<String>) {
    match (finish_reason, matched) {
        (Some("length"), _) => ("max_tokens", None),
        (Some("tool_calls" | "function_call"), _) => ("tool_use", None),
        (Some("stop"), Some(sequence)) => ("stop_sequence", Some(sequence.to_string())),
        _ => ("end_turn", None),
    }
}

/// A message id in Anthropic's style from an OpenAI completion id.
pub fn message_id(chat_id: Option<&str>) -> String {
    let id = chat_id.unwrap_or("");
    format!("msg_{}", id.strip_prefix("chatcmpl-").unwrap_or(id))
}

/// An OpenAI chat completion as an Anthropic message; `model` is the name the client used.
pub fn from_chat(completion: &Value, model: &str) -> Value {
    let choice = &completion["choices"][0];
    let message = &choice["message"];
    let mut content = Vec::new();
    if let Some(text) = message["content"].as_str().filter(|t| !t.is_empty()) {
        content.push(json!({"type": "text", "text": text}));
    }
    for call in message["tool_calls"].as_array().into_iter().flatten() {
        content.push(json!({
            "type": "tool_use",
            "id": call["id"],
            "name": call["function"]["name"],
            "input": tool_input(call["function"]["arguments"].as_str().unwrap_or("")),
        }));
    }
    let (stop_reason, stop_sequence) = stop_reason(
        choice["finish_reason"].as_str(),
        choice["stop_reason"].as_str(),
    );
    json!({
        "id": message_id(completion["id"].as_str()),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": {
            "input_tokens": completion["usage"]["prompt_tokens"].as_u64().unwrap_or(0),
            "output_tokens": completion["usage"]["completion_tokens"].as_u64().unwrap_or(0),
        },
    })
}

/// Anthropic's error body: `{"type": "error", "error": {"type", "message"}}`, the type
/// chosen by status as Anthropic's API does.
pub fn error_json(status: u16, message: &str) -> Vec<u8> {
    let kind = match status {
        400 | 408 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        _ => "api_error",
    };
    serde_json::to_vec(&json!({"type": "error", "error": {"type": kind, "message": message}}))
        .unwrap_or_else(|_| {
            br#"{"type":"error","error":{"type":"api_error","message":""}}"#.to_vec()
        })
}

#[cfg(test)]
mod tests;
