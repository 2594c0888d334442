//! Anthropic's Messages API (`POST /v1/messages`): the request as Anthropic's clients send
//! it, its translation to an OpenAI chat request for OpenAI-compatible upstreams, the
//! answer translated back, and Anthropic's error shape.
//!
//! Claude Code's `?beta=true` and its `anthropic-beta` header are accepted and not passed
//! on: a beta changes the API an upstream speaks, which is the operator's choice (and
//! Airlock's translation's), not a client's. The fields those betas enable are each
//! handled below: translated, or checked and dropped with the reason.

pub mod stream;
pub mod upstream;

use super::hosted::{DroppedTools, HostedTools};
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
    /// Extended thinking. Checked, then dropped for every upstream kind: Airlock's chat
    /// form has no place for thinking blocks and their signatures, so they could not be
    /// handed back on the next turn, which Anthropic requires of a tool loop with
    /// thinking on (and other upstreams have no such setting).
    #[serde(default)]
    pub thinking: Option<Thinking>,
    /// Anthropic's context editing (a beta; Claude Code asks it to clear old thinking
    /// blocks). Checked to be an object, then dropped: Airlock does not forward clients'
    /// `anthropic-beta` headers, and there are no thinking blocks to clear (above).
    #[serde(default)]
    pub context_management: Option<Map<String, Value>>,
    /// `effort` becomes `reasoning_effort`, `format` becomes `response_format`.
    #[serde(default)]
    pub output_config: Option<OutputConfig>,
    /// Fields with no OpenAI counterpart (they are not forwarded).
    #[serde(flatten)]
    pub extra: Extra,
}

/// `thinking`: how much the model may think before answering.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Thinking {
    Adaptive {
        #[serde(default)]
        display: Option<String>,
    },
    Enabled {
        budget_tokens: u64,
        #[serde(default)]
        display: Option<String>,
    },
    Disabled,
}

/// `output_config`: the effort the model spends, and the shape of its answer.
#[derive(Debug, Clone, Deserialize)]
pub struct OutputConfig {
    #[serde(default)]
    pub effort: Option<String>,
    #[serde(default)]
    pub format: Option<Value>,
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
    /// Claude Code sends its environment as a system message inside `messages` for
    /// models it does not know (every on-prem name); it stays at its place.
    System,
}

/// A tool the model may call. `input_examples` (Anthropic's advanced tool use, under a
/// beta Airlock does not forward) is advisory and dropped.
#[derive(Debug, Clone, Deserialize)]
pub struct Tool {
    pub name: String,
    /// `custom` (or absent) for a tool the client defines; otherwise a versioned type of
    /// Anthropic's own (`web_search_20250305`, `bash_20250124`).
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// Required of a custom tool; Anthropic's own tools have theirs built in.
    #[serde(default)]
    pub input_schema: Option<Value>,
    /// Strict schema adherence: OpenAI's `function.strict`.
    #[serde(default)]
    pub strict: Option<bool>,
    #[serde(default)]
    pub cache_control: Option<Value>,
    /// A tool Anthropic keeps out of the model's view until its tool search finds it
    /// (Claude Code sends a placeholder that must never be called this way). No other
    /// upstream has tool search, and Airlock does not forward the beta it needs, so the
    /// tool is left out, as the model would not have seen it.
    #[serde(default)]
    pub defer_loading: Option<bool>,
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

/// The `cache_control` of a block, checked.
fn cache_control(block: &Map<String, Value>) -> Result<Option<&Value>, Invalid> {
    checked_cache(block.get("cache_control"))
}

/// A `cache_control`, checked: Anthropic's is an object with a `type`.
fn checked_cache(cache: Option<&Value>) -> Result<Option<&Value>, Invalid> {
    match cache {
        None | Some(Value::Null) => Ok(None),
        Some(cache) if cache.get("type").is_some_and(Value::is_string) => Ok(Some(cache)),
        Some(_) => Err(invalid(
            "`cache_control` must be an object with a string `type`",
        )),
    }
}

/// An OpenAI text part, with the `cache_control` of the block it came from: an
/// Anthropic upstream re-emits it (prompt caching), the others drop it.
fn cached_text_part(text: &str, cache: Option<&Value>) -> Value {
    let mut part = json!({"type": "text", "text": text});
    if let Some(cache) = cache {
        part["cache_control"] = cache.clone();
    }
    part
}

/// A text block as an OpenAI text part.
fn text_part(block: &Map<String, Value>) -> Result<Value, Invalid> {
    Ok(cached_text_part(
        str_field(block, "text")?,
        cache_control(block)?,
    ))
}

/// Text parts as chat content: one string when no part carries `cache_control` (the
/// shape every upstream takes), the parts otherwise.
fn text_content(parts: Vec<Value>) -> Value {
    if parts.iter().any(|p| p.get("cache_control").is_some()) {
        return parts.into();
    }
    parts
        .iter()
        .filter_map(|p| p["text"].as_str())
        .collect::<String>()
        .into()
}

/// A system prompt (top-level `system`, or a system message) as chat content.
fn system_content(content: &Value) -> Result<Value, Invalid> {
    let parts = blocks(content)?
        .iter()
        .map(|block| match block_type(block) {
            "text" => text_part(block),
            other => Err(invalid(format!(
                "a system prompt takes text blocks only, not `{other}`"
            ))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(text_content(parts))
}

/// A `tool_result` block as an OpenAI `tool` message.
fn tool_message(block: &Map<String, Value>) -> Result<Value, Invalid> {
    let id = str_field(block, "tool_use_id")?;
    let mut cache = cache_control(block)?.cloned();
    let mut content = String::new();
    if let Some(inner) = block.get("content").filter(|c| !c.is_null()) {
        for inner in blocks(inner)?.iter().filter(|b| block_type(b) == "text") {
            content.push_str(str_field(inner, "text")?);
            cache = cache.or(cache_control(inner)?.cloned());
        }
    }
    if block.get("is_error") == Some(&Value::Bool(true)) {
        content = format!("Error: {content}");
    }
    let content = text_content(vec![cached_text_part(&content, cache.as_ref())]);
    Ok(json!({"role": "tool", "tool_call_id": id, "content": content}))
}

/// One user turn: its tool results first (OpenAI wants them right after the call), then
/// its text and images.
fn user_messages(content: &Value, out: &mut Vec<Value>) -> Result<(), Invalid> {
    let mut parts = Vec::new();
    for block in blocks(content)? {
        match block_type(&block) {
            "text" => parts.push(text_part(&block)?),
            "image" => parts.push(image_part(&block)?),
            "tool_result" => out.push(tool_message(&block)?),
            other => {
                return Err(invalid(format!(
                    "unsupported content block `{other}` in a user turn"
                )));
            }
        }
    }
    let cached = parts.iter().any(|p| p.get("cache_control").is_some());
    match parts.as_slice() {
        [] => {}
        [only] if only["type"] == "text" && !cached => {
            out.push(json!({"role": "user", "content": only["text"]}));
        }
        _ => out.push(json!({"role": "user", "content": parts})),
    }
    Ok(())
}

/// One assistant turn: its text, and its tool calls as OpenAI `tool_calls`. Thinking
/// blocks are left out: no upstream can take them back through the chat form (see
/// [`MessagesRequest::thinking`]).
fn assistant_message(content: &Value) -> Result<Value, Invalid> {
    let blocks = blocks(content)?;
    let mut calls = Vec::new();
    let mut parts = Vec::new();
    for block in &blocks {
        match block_type(block) {
            "text" => parts.push(text_part(block)?),
            "thinking" | "redacted_thinking" => {}
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
    let content = match text_content(parts) {
        Value::String(text) if text.is_empty() => Value::Null,
        content => content,
    };
    let mut message = json!({"role": "assistant", "content": content});
    if !calls.is_empty() {
        message["tool_calls"] = calls.into();
    }
    Ok(message)
}

/// Longest `metadata.user_id` taken (Anthropic's own limit).
const MAX_USER_ID: usize = 256;

/// The end user `metadata.user_id` names. Claude Code sends a JSON object as a string
/// (`device_id`, `account_uuid`, `session_id`): its account when it has one, else its
/// device (stable per installation; a session id would split one person into many).
fn end_user(user_id: &str) -> Result<String, Invalid> {
    if user_id.len() > MAX_USER_ID {
        return Err(invalid(format!(
            "`metadata.user_id` is longer than {MAX_USER_ID} bytes"
        )));
    }
    let Ok(Value::Object(ids)) = serde_json::from_str::<Value>(user_id) else {
        return Ok(user_id.to_string());
    };
    Ok(["account_uuid", "device_id", "session_id"]
        .iter()
        .find_map(|k| {
            ids.get(*k)
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty())
        })
        .unwrap_or(user_id)
        .to_string())
}

/// `reasoning_effort` (OpenAI's) for Anthropic's `output_config.effort`: Anthropic's
/// `max` is OpenAI's highest widely served level.
fn reasoning_effort(effort: &str) -> Result<&'static str, Invalid> {
    match effort {
        "low" => Ok("low"),
        "medium" => Ok("medium"),
        "high" | "max" => Ok("high"),
        other => Err(invalid(format!(
            "`output_config.effort` must be low, medium, high or max, not `{other}`"
        ))),
    }
}

/// `response_format` for Anthropic's `output_config.format`.
fn response_format(format: &Value) -> Result<Value, Invalid> {
    match format.get("type").and_then(Value::as_str) {
        Some("json_schema") if format["schema"].is_object() => Ok(json!({
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": format["schema"]},
        })),
        Some("json_schema") => Err(invalid("`output_config.format.schema` must be an object")),
        _ => Err(invalid(
            "`output_config.format` must be of type `json_schema`",
        )),
    }
}

impl MessagesRequest {
    pub fn is_stream(&self) -> bool {
        self.stream == Some(true)
    }

    /// The same request in OpenAI's chat format, tools Anthropic runs itself dropped.
    pub fn to_chat(&self) -> Result<ChatCompletionRequest, Invalid> {
        self.translate(HostedTools::Drop).map(|(chat, _)| chat)
    }

    /// The same request in OpenAI's chat format, with the tools Anthropic runs on its own
    /// side dropped (and named) or refused, as `hosted` says.
    pub fn translate(
        &self,
        hosted: HostedTools,
    ) -> Result<(ChatCompletionRequest, DroppedTools), Invalid> {
        let mut messages = Vec::new();
        match &self.system {
            None | Some(Value::Null) => {}
            Some(system) => {
                messages.push(json!({"role": "system", "content": system_content(system)?}));
            }
        }
        for message in &self.messages {
            match message.role {
                Role::User => user_messages(&message.content, &mut messages)?,
                Role::Assistant => messages.push(assistant_message(&message.content)?),
                Role::System => messages
                    .push(json!({"role": "system", "content": system_content(&message.content)?})),
            }
        }
        let mut chat = json!({
            "model": self.model,
            "messages": messages,
            "max_tokens": self.max_tokens,
        });
        let user = match self.metadata.as_ref().and_then(|m| m.user_id.as_deref()) {
            Some(user_id) => Some(Value::from(end_user(user_id)?)),
            None => None,
        };
        let fields = [
            ("stop", self.stop_sequences.as_ref().map(|s| json!(s))),
            ("temperature", self.temperature.map(Value::from)),
            ("top_p", self.top_p.map(Value::from)),
            ("top_k", self.top_k.map(Value::from)),
            ("user", user),
        ];
        for (name, value) in fields {
            if let Some(value) = value {
                chat[name] = value;
            }
        }
        if self.is_stream() {
            chat["stream"] = true.into();
        }
        self.output_config_to_chat(&mut chat)?;
        let dropped = self.tools_to_chat(&mut chat, hosted)?;
        let chat = serde_json::from_value(chat).map_err(|e| invalid(e.to_string()))?;
        Ok((chat, dropped))
    }

    /// `output_config` as `reasoning_effort` and `response_format`.
    fn output_config_to_chat(&self, chat: &mut Value) -> Result<(), Invalid> {
        let Some(config) = &self.output_config else {
            return Ok(());
        };
        if let Some(effort) = &config.effort {
            chat["reasoning_effort"] = reasoning_effort(effort)?.into();
        }
        if let Some(format) = config.format.as_ref().filter(|f| !f.is_null()) {
            chat["response_format"] = response_format(format)?;
        }
        Ok(())
    }

    /// `tools` and `tool_choice` as OpenAI's, deferred tools left out; an empty list of
    /// tools is left out too (OpenAI refuses one), and with it a `tool_choice` that has
    /// nothing to choose from.
    fn tools_to_chat(
        &self,
        chat: &mut Value,
        hosted: HostedTools,
    ) -> Result<DroppedTools, Invalid> {
        let choice = self
            .tool_choice
            .as_ref()
            .map(chat_tool_choice)
            .transpose()?;
        let mut dropped = DroppedTools::default();
        let mut chat_tools = Vec::new();
        for (i, tool) in self.tools.iter().flatten().enumerate() {
            let Some(schema) =
                custom_tool_schema(tool, &format!("tools[{i}]"), hosted, &mut dropped)?
            else {
                continue;
            };
            if tool.defer_loading == Some(true) {
                continue;
            }
            let mut function = json!({
                "name": tool.name,
                "description": tool.description.clone().unwrap_or_default(),
                "parameters": schema,
            });
            if let Some(strict) = tool.strict {
                function["strict"] = strict.into();
            }
            let mut chat_tool = json!({"type": "function", "function": function});
            if let Some(cache) = checked_cache(tool.cache_control.as_ref())? {
                chat_tool["cache_control"] = cache.clone();
            }
            chat_tools.push(chat_tool);
        }
        if chat_tools.is_empty() {
            return Ok(dropped);
        }
        chat["tools"] = chat_tools.into();
        if let Some((choice, parallel)) = choice {
            chat["tool_choice"] = choice;
            if !parallel {
                chat["parallel_tool_calls"] = false.into();
            }
        }
        Ok(dropped)
    }
}

/// Anthropic's server tools, which run on Anthropic's side, by the prefix of their
/// versioned type, with the name they are reported by.
const SERVER_TOOLS: &[(&str, &str)] = &[
    ("web_search_", "web_search"),
    ("web_fetch_", "web_fetch"),
    ("code_execution_", "code_execution"),
    ("tool_search_tool_", "tool_search"),
    ("mcp_toolset", "mcp_toolset"),
];

/// A custom tool's input schema; `None` for a server tool, dropped (and noted) or
/// refused as `hosted` says. Anthropic's client tools with built-in schemas (`bash_…`,
/// `text_editor_…`, `computer_…`) are refused: no other model knows their schema.
fn custom_tool_schema<'t>(
    tool: &'t Tool,
    at: &str,
    hosted: HostedTools,
    dropped: &mut DroppedTools,
) -> Result<Option<&'t Value>, Invalid> {
    match tool.kind.as_deref() {
        None | Some("custom") => tool.input_schema.as_ref().map(Some).ok_or_else(|| {
            invalid(format!(
                "{at}.input_schema: Field required (tool `{}`)",
                tool.name
            ))
        }),
        Some(kind) => match SERVER_TOOLS
            .iter()
            .find(|(prefix, _)| kind.starts_with(prefix))
        {
            Some((_, name)) => dropped.hosted(hosted, at, name, "Anthropic").map(|()| None),
            None => Err(invalid(format!(
                "{at}: `{}` is one of Anthropic's tools whose schema only Anthropic's models \
                 know; declare `{}` as a custom tool with an `input_schema` instead",
                kind, tool.name
            ))),
        },
    }
}

/// OpenAI's `tool_choice` for Anthropic's, and whether parallel calls are allowed.
fn chat_tool_choice(choice: &ToolChoice) -> Result<(Value, bool), Invalid> {
    let chat = match (choice.kind.as_str(), &choice.name) {
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
    Ok((chat, choice.disable_parallel_tool_use != Some(true)))
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
