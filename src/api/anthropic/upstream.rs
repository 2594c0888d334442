//! Anthropic as an upstream: an OpenAI chat request rewritten as a Messages request, and
//! the answer — a message, or the stream's events — rewritten as OpenAI's.

use crate::api::chunk::{ChunkOut, ChunkWriter, json_string};
use crate::api::openai::{ChatCompletionRequest, Usage};
use crate::api::{
    Invalid, UpstreamEvents, invalid, response_schema, system_note, text_of, tool_input,
};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::borrow::Cow;

/// `max_tokens` when the client set none (Anthropic requires one).
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// The tool a structured-output request is answered through: Anthropic is made to call
/// it (`tool_choice`), and its input is the JSON answer. Reserved: client tools may not
/// use the name.
pub const STRUCTURED_OUTPUT_TOOL: &str = "airlock_structured_output";

/// OpenAI content as Anthropic blocks: text, and images (data URLs as base64 sources).
fn content_blocks(content: &Value) -> Result<Vec<Value>, Invalid> {
    let parts = match content {
        Value::Null => return Ok(Vec::new()),
        Value::String(s) => return Ok(vec![json!({"type": "text", "text": s})]),
        Value::Array(parts) => parts,
        _ => {
            return Err(invalid(
                "message content must be a string or a list of parts",
            ));
        }
    };
    parts
        .iter()
        .map(|part| match part.get("type").and_then(Value::as_str) {
            Some("text") => {
                let mut block = json!({"type": "text", "text": part["text"]});
                if let Some(cache) = part.get("cache_control") {
                    block["cache_control"] = cache.clone();
                }
                Ok(block)
            }
            Some("image_url") => {
                let url = part["image_url"]["url"].as_str().unwrap_or("");
                Ok(
                    match url
                        .strip_prefix("data:")
                        .and_then(|rest| rest.split_once(";base64,"))
                    {
                        Some((media_type, data)) => json!({"type": "image", "source":
                        {"type": "base64", "media_type": media_type, "data": data}}),
                        None => json!({"type": "image", "source": {"type": "url", "url": url}}),
                    },
                )
            }
            other => Err(invalid(format!(
                "content part {other:?} cannot be sent to an Anthropic upstream"
            ))),
        })
        .collect()
}

/// Appends blocks to the conversation, merging into the previous turn of the same role
/// (Anthropic wants the roles to alternate). In a user turn the tool results come first,
/// as Anthropic requires after a turn of tool calls.
fn push_turn(messages: &mut Vec<Value>, role: &str, blocks: Vec<Value>) {
    if blocks.is_empty() {
        return;
    }
    if let Some(last) = messages.last_mut()
        && last["role"] == role
        && let Some(content) = last["content"].as_array_mut()
    {
        content.extend(blocks);
        if role == "user" {
            content.sort_by_key(|block| block["type"] != "tool_result");
        }
        return;
    }
    messages.push(json!({"role": role, "content": blocks}));
}

/// The `cache_control` of the last part that has one, if content is a list of parts.
fn last_cache_control(content: &Value) -> Option<&Value> {
    content
        .as_array()?
        .iter()
        .rev()
        .find_map(|part| part.get("cache_control"))
}

/// A system (or developer) message. Anthropic takes system prompts only ahead of the
/// conversation (`system`; its `messages` hold user and assistant turns only), so one
/// that comes before any turn joins `system`, and one that comes later stays at its
/// place as a note in a user turn: moving it into `system` would change its meaning
/// (what it follows) and, as Claude Code's notes change from turn to turn, invalidate
/// the prompt cache of the whole conversation.
fn push_system(
    system: &mut Vec<Value>,
    messages: &mut Vec<Value>,
    content: &Value,
) -> Result<(), Invalid> {
    if !messages.is_empty() {
        let mut note = json!({"type": "text", "text": system_note(&text_of(content))});
        if let Some(cache) = last_cache_control(content) {
            note["cache_control"] = cache.clone();
        }
        push_turn(messages, "user", vec![note]);
        return Ok(());
    }
    system.extend(
        content_blocks(content)?
            .into_iter()
            .filter(|b| b["type"] == "text"),
    );
    Ok(())
}

/// The top-level `system`: blocks when one carries `cache_control` (so it reaches
/// Anthropic), else the texts joined into one string.
fn system_field(system: Vec<Value>) -> Option<Value> {
    if system.is_empty() {
        return None;
    }
    if system.iter().any(|b| b.get("cache_control").is_some()) {
        return Some(system.into());
    }
    let texts: Vec<&str> = system.iter().filter_map(|b| b["text"].as_str()).collect();
    Some(texts.join("\n\n").into())
}

/// An OpenAI chat request as an Anthropic Messages request for `model`.
pub fn messages_request(chat: &ChatCompletionRequest, model: &str) -> Result<Value, Invalid> {
    let mut system = Vec::new();
    let mut messages = Vec::new();
    for message in &chat.messages {
        let content = message.content.clone().unwrap_or(Value::Null);
        match message.role.as_str() {
            "system" | "developer" => push_system(&mut system, &mut messages, &content)?,
            "user" => push_turn(&mut messages, "user", content_blocks(&content)?),
            "assistant" => {
                let mut blocks = content_blocks(&content)?;
                let calls = message.extra.get("tool_calls").and_then(Value::as_array);
                for call in calls.into_iter().flatten() {
                    let arguments = call["function"]["arguments"].as_str().unwrap_or("{}");
                    blocks.push(json!({
                        "type": "tool_use",
                        "id": call["id"],
                        "name": call["function"]["name"],
                        "input": tool_input(arguments),
                    }));
                }
                push_turn(&mut messages, "assistant", blocks);
            }
            "tool" => {
                let id = message
                    .extra
                    .get("tool_call_id")
                    .cloned()
                    .unwrap_or(Value::Null);
                let mut result =
                    json!({"type": "tool_result", "tool_use_id": id, "content": text_of(&content)});
                if let Some(cache) = last_cache_control(&content) {
                    result["cache_control"] = cache.clone();
                }
                push_turn(&mut messages, "user", vec![result]);
            }
            other => return Err(invalid(format!("message role `{other}` is not supported"))),
        }
    }
    let extra = &chat.extra;
    let max_tokens = ["max_completion_tokens", "max_tokens"]
        .iter()
        .find_map(|k| extra.get(*k).and_then(Value::as_u64))
        .unwrap_or(DEFAULT_MAX_TOKENS);
    let mut request = Map::new();
    request.insert("model".into(), model.into());
    request.insert("max_tokens".into(), max_tokens.into());
    request.insert("messages".into(), messages.into());
    if let Some(system) = system_field(system) {
        request.insert("system".into(), system);
    }
    if chat.stream == Some(true) {
        request.insert("stream".into(), true.into());
    }
    for (from, to) in [
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("top_k", "top_k"),
    ] {
        if let Some(v) = extra.get(from) {
            request.insert(to.into(), v.clone());
        }
    }
    match extra.get("stop") {
        Some(Value::String(s)) => {
            request.insert("stop_sequences".into(), json!([s]));
        }
        Some(list @ Value::Array(_)) => {
            request.insert("stop_sequences".into(), list.clone());
        }
        _ => {}
    }
    if let Some(user) = extra.get("user").and_then(Value::as_str) {
        request.insert("metadata".into(), json!({"user_id": user}));
    }
    // An empty list of tools is left out, and with it a choice among none.
    let tools = extra
        .get("tools")
        .and_then(Value::as_array)
        .filter(|t| !t.is_empty());
    if let Some(tools) = tools {
        if tools
            .iter()
            .any(|t| t["function"]["name"] == STRUCTURED_OUTPUT_TOOL)
        {
            return Err(invalid(format!(
                "the tool name `{STRUCTURED_OUTPUT_TOOL}` is reserved"
            )));
        }
        let tools: Vec<Value> = tools
            .iter()
            .map(|t| {
                let f = &t["function"];
                // `strict` is left out: Anthropic takes it only under a beta.
                let mut tool = json!({"name": f["name"], "description": f["description"].as_str().unwrap_or(""),
                       "input_schema": if f["parameters"].is_object() { f["parameters"].clone() } else { json!({"type": "object"}) }});
                if let Some(cache) = t.get("cache_control") {
                    tool["cache_control"] = cache.clone();
                }
                tool
            })
            .collect();
        request.insert("tools".into(), tools.into());
    }
    let mut choice = match extra.get("tool_choice").filter(|_| tools.is_some()) {
        None => None,
        Some(Value::String(s)) if s == "auto" => Some(json!({"type": "auto"})),
        Some(Value::String(s)) if s == "required" => Some(json!({"type": "any"})),
        Some(Value::String(s)) if s == "none" => Some(json!({"type": "none"})),
        Some(named) if named["function"]["name"].is_string() => {
            Some(json!({"type": "tool", "name": named["function"]["name"]}))
        }
        Some(_) => return Err(invalid("`tool_choice` is not one Anthropic understands")),
    };
    if tools.is_some() && extra.get("parallel_tool_calls") == Some(&Value::Bool(false)) {
        let choice = choice.get_or_insert_with(|| json!({"type": "auto"}));
        choice["disable_parallel_tool_use"] = true.into();
    }
    if let Some(choice) = choice {
        request.insert("tool_choice".into(), choice);
    }
    if let Some(schema) = extra
        .get("response_format")
        .map(response_schema)
        .transpose()?
        .flatten()
    {
        if request.contains_key("tools") {
            return Err(invalid(
                "`response_format` together with `tools` cannot be sent to an Anthropic upstream",
            ));
        }
        request.insert(
            "tools".into(),
            json!([{"name": STRUCTURED_OUTPUT_TOOL,
                    "description": "Give the answer by calling this tool; its input is the answer.",
                    "input_schema": schema}]),
        );
        request.insert(
            "tool_choice".into(),
            json!({"type": "tool", "name": STRUCTURED_OUTPUT_TOOL}),
        );
    }
    Ok(Value::Object(request))
}

/// OpenAI's `finish_reason` for an Anthropic `stop_reason`.
pub fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        _ => "stop",
    }
}

fn chat_id(message_id: Option<&str>) -> String {
    let id = message_id.unwrap_or("");
    format!("chatcmpl-{}", id.strip_prefix("msg_").unwrap_or(id))
}

/// An Anthropic message as an OpenAI chat completion for `model` (the client's name).
pub fn chat_completion(message: &Value, model: &str, created: i64) -> Value {
    let mut text = String::new();
    let mut calls = Vec::new();
    for block in message["content"].as_array().into_iter().flatten() {
        match block["type"].as_str() {
            Some("text") => text.push_str(block["text"].as_str().unwrap_or("")),
            Some("tool_use") if block["name"] == STRUCTURED_OUTPUT_TOOL => {
                text.push_str(&block["input"].to_string());
            }
            Some("tool_use") => calls.push(json!({
                "id": block["id"],
                "type": "function",
                "function": {"name": block["name"], "arguments": block["input"].to_string()},
            })),
            _ => {}
        }
    }
    // A structured answer came as the forced tool's input: for the client it is text.
    let finish = if calls.is_empty() && message["stop_reason"] == "tool_use" {
        "stop"
    } else {
        finish_reason(message["stop_reason"].as_str())
    };
    let mut reply = json!({"role": "assistant", "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { text.into() }});
    if !calls.is_empty() {
        reply["tool_calls"] = calls.into();
    }
    let usage: EventUsage = serde_json::from_value(message["usage"].clone()).unwrap_or_default();
    let counts = usage.counts(0);
    json!({
        "id": chat_id(message["id"].as_str()),
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": reply, "logprobs": null,
                     "finish_reason": finish}],
        "usage": openai_usage(counts),
    })
}

/// OpenAI's usage object for counts, with cached prompt tokens when there were any.
fn openai_usage(counts: Usage) -> Value {
    let (prompt, completion) = (counts.prompt_tokens, counts.completion_tokens);
    let mut usage = json!({"prompt_tokens": prompt, "completion_tokens": completion,
                           "total_tokens": prompt.saturating_add(completion)});
    if counts.cached_tokens > 0 {
        usage["prompt_tokens_details"] = json!({"cached_tokens": counts.cached_tokens});
    }
    usage
}

/// One Anthropic stream event, read into borrowed typed fields (not a JSON tree).
#[derive(Debug, Deserialize)]
struct Event<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default)]
    index: Option<u64>,
    #[serde(default, borrow)]
    message: Option<EventMessage<'a>>,
    #[serde(default, borrow)]
    content_block: Option<Block<'a>>,
    #[serde(default, borrow)]
    delta: Option<Delta<'a>>,
    #[serde(default)]
    usage: Option<EventUsage>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct EventMessage<'a> {
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(default)]
    usage: Option<EventUsage>,
}

#[derive(Debug, Deserialize)]
struct Block<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    name: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize)]
struct Delta<'a> {
    #[serde(rename = "type", default, borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    partial_json: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    stop_reason: Option<Cow<'a, str>>,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
struct EventUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
}

impl EventUsage {
    /// OpenAI's counts: Anthropic counts cache reads and writes apart from
    /// `input_tokens`; OpenAI's prompt tokens include them (reads as cached tokens).
    /// `input_before` stands in for an input count the event leaves out.
    fn counts(&self, input_before: u64) -> Usage {
        let cached = self.cache_read_input_tokens.unwrap_or(0);
        let input = match self.input_tokens {
            Some(input) => input
                .saturating_add(cached)
                .saturating_add(self.cache_creation_input_tokens.unwrap_or(0)),
            None => input_before,
        };
        Usage {
            prompt_tokens: input,
            completion_tokens: self.output_tokens.unwrap_or(0),
            cached_tokens: cached,
        }
    }
}

/// Rewrites an Anthropic event stream as OpenAI chunks, one event at a time.
#[derive(Debug)]
pub struct ChunkStream {
    model: String,
    created: i64,
    writer: ChunkWriter,
    /// OpenAI tool-call index of each Anthropic content block that is a tool call.
    tool_index: Vec<(u64, u64)>,
    /// The content block carrying a structured-output answer, streamed as text.
    structured_block: Option<u64>,
    /// The usage `message_start` reported (the input side).
    start_usage: Usage,
}

impl ChunkStream {
    pub fn new(model: &str, created: i64) -> Self {
        Self {
            model: model.to_string(),
            created,
            writer: ChunkWriter::new(&chat_id(None), created, model),
            tool_index: Vec::new(),
            structured_block: None,
            start_usage: Usage::default(),
        }
    }

    fn translate(&mut self, event: Event<'_>) -> Vec<ChunkOut> {
        match event.kind.as_ref() {
            "message_start" => {
                let message = event.message.unwrap_or(EventMessage {
                    id: None,
                    usage: None,
                });
                self.writer =
                    ChunkWriter::new(&chat_id(message.id.as_deref()), self.created, &self.model);
                self.start_usage = message.usage.map(|u| u.counts(0)).unwrap_or_default();
                vec![
                    self.writer
                        .choice(0, r#"{"role":"assistant","content":""}"#, None),
                ]
            }
            "content_block_start" => {
                let Some(block) = event.content_block.filter(|b| b.kind == "tool_use") else {
                    return Vec::new();
                };
                let name = block.name.unwrap_or_default();
                if name == STRUCTURED_OUTPUT_TOOL {
                    self.structured_block = event.index;
                    return Vec::new();
                }
                let index = self.tool_index.len() as u64;
                self.tool_index.push((event.index.unwrap_or(0), index));
                let delta = format!(
                    "{{\"tool_calls\":[{{\"index\":{index},\"id\":{},\"type\":\"function\",\"function\":{{\"name\":{},\"arguments\":\"\"}}}}]}}",
                    json_string(&block.id.unwrap_or_default()),
                    json_string(&name)
                );
                vec![self.writer.choice(0, &delta, None)]
            }
            "content_block_delta" => {
                let Some(delta) = event.delta else {
                    return Vec::new();
                };
                match (delta.kind.as_deref(), delta.text, delta.partial_json) {
                    (Some("text_delta"), Some(text), _) => vec![self.writer.text(0, &text)],
                    (Some("input_json_delta"), _, Some(fragment))
                        if event.index.is_some() && event.index == self.structured_block =>
                    {
                        vec![self.writer.text(0, &fragment)]
                    }
                    (Some("input_json_delta"), _, Some(fragment)) => {
                        let block = event.index.unwrap_or(0);
                        let index = self
                            .tool_index
                            .iter()
                            .find(|(b, _)| *b == block)
                            .map_or(0, |(_, i)| *i);
                        let delta = format!(
                            "{{\"tool_calls\":[{{\"index\":{index},\"function\":{{\"arguments\":{}}}}}]}}",
                            json_string(&fragment)
                        );
                        vec![self.writer.choice(0, &delta, None)]
                    }
                    _ => Vec::new(),
                }
            }
            "message_delta" => {
                let mut counts = event
                    .usage
                    .unwrap_or_default()
                    .counts(self.start_usage.prompt_tokens);
                if counts.cached_tokens == 0 {
                    counts.cached_tokens = self.start_usage.cached_tokens;
                }
                let stop_reason = event.delta.and_then(|d| d.stop_reason);
                let finish = if self.structured_block.is_some() && self.tool_index.is_empty() {
                    "stop"
                } else {
                    finish_reason(stop_reason.as_deref())
                };
                vec![
                    self.writer.choice(0, "{}", Some(finish)),
                    self.writer.usage(counts, &openai_usage(counts)),
                ]
            }
            "message_stop" => vec![ChunkOut::Done],
            "error" => {
                let error = event.error.unwrap_or_default();
                let message = error["message"]
                    .as_str()
                    .map_or_else(|| error.to_string(), str::to_string);
                vec![ChunkOut::Error(message)]
            }
            _ => Vec::new(),
        }
    }
}

impl UpstreamEvents for ChunkStream {
    fn on_event(&mut self, data: &[u8]) -> Result<Vec<ChunkOut>, String> {
        let event: Event<'_> = serde_json::from_slice(data).map_err(|e| e.to_string())?;
        Ok(self.translate(event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(body: Value) -> ChatCompletionRequest {
        serde_json::from_value(body).unwrap()
    }

    #[test]
    fn system_messages_stay_in_place_and_cache_marks_reach_anthropic() {
        let cached = json!({"type": "ephemeral"});
        let request = messages_request(
            &chat(json!({
                "model": "m",
                "messages": [
                    {"role": "system", "content": [{"type": "text", "text": "A"},
                        {"type": "text", "text": "B", "cache_control": cached}]},
                    {"role": "user", "content": "hi"},
                    {"role": "system", "content": [{"type": "text", "text": "env", "cache_control": cached}]},
                    {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
                        "function": {"name": "ls", "arguments": "{}"}}]},
                    {"role": "developer", "content": "late note"},
                    {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "a.txt", "cache_control": cached}]}
                ],
                "tools": [{"type": "function", "function": {"name": "ls", "parameters": {"type": "object"}, "strict": true},
                           "cache_control": cached}]
            })),
            "claude",
        )
        .unwrap();
        assert_eq!(
            request["system"],
            json!([{"type": "text", "text": "A"}, {"type": "text", "text": "B", "cache_control": cached}])
        );
        assert_eq!(
            request["messages"],
            json!([
                {"role": "user", "content": [
                    {"type": "text", "text": "hi"},
                    {"type": "text", "text": "<system-reminder>\nenv\n</system-reminder>", "cache_control": cached}
                ]},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "c1", "name": "ls", "input": {}}]},
                // The tool result first, as Anthropic requires after tool calls.
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "c1", "content": "a.txt", "cache_control": cached},
                    {"type": "text", "text": "<system-reminder>\nlate note\n</system-reminder>"}
                ]}
            ])
        );
        assert_eq!(
            request["tools"],
            json!([{"name": "ls", "description": "", "input_schema": {"type": "object"}, "cache_control": cached}])
        );
    }

    #[test]
    fn an_empty_tool_list_is_not_sent() {
        let request = messages_request(
            &chat(
                json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
                         "tools": [], "tool_choice": "required", "parallel_tool_calls": false}),
            ),
            "claude",
        )
        .unwrap();
        for absent in ["tools", "tool_choice"] {
            assert!(request.get(absent).is_none(), "{absent}");
        }
    }

    #[test]
    fn chat_requests_become_messages_requests() {
        let request = messages_request(
            &chat(json!({
                "model": "claude", "stream": true, "temperature": 0.3, "stop": "END", "user": "u1",
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": [{"type": "text", "text": "Weather?"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
                    {"role": "assistant", "content": null, "tool_calls": [
                        {"id": "call_1", "type": "function", "function": {"name": "w", "arguments": "{\"city\":\"Oslo\"}"}}]},
                    {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
                    {"role": "user", "content": "And tomorrow?"}
                ],
                "tools": [{"type": "function", "function": {"name": "w", "parameters": {"type": "object"}}}],
                "tool_choice": "required", "parallel_tool_calls": false
            })),
            "claude-upstream",
        )
        .unwrap();
        assert_eq!(
            request,
            json!({
                "model": "claude-upstream", "max_tokens": DEFAULT_MAX_TOKENS, "system": "Be brief.", "stream": true,
                "temperature": 0.3, "stop_sequences": ["END"], "metadata": {"user_id": "u1"},
                "messages": [
                    {"role": "user", "content": [{"type": "text", "text": "Weather?"},
                        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}]},
                    {"role": "assistant", "content": [{"type": "tool_use", "id": "call_1", "name": "w", "input": {"city": "Oslo"}}]},
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"},
                        {"type": "text", "text": "And tomorrow?"}]}
                ],
                "tools": [{"name": "w", "description": "", "input_schema": {"type": "object"}}],
                "tool_choice": {"type": "any", "disable_parallel_tool_use": true}
            })
        );
        let broken =
            chat(json!({"model": "m", "messages": [], "response_format": {"type": "json_schema"}}));
        assert!(
            messages_request(&broken, "m").is_err(),
            "a json_schema without a schema is refused"
        );
    }

    #[test]
    fn messages_become_chat_completions() {
        let message = json!({
            "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-upstream",
            "content": [{"type": "text", "text": "Checking."},
                        {"type": "tool_use", "id": "toolu_1", "name": "w", "input": {"city": "Oslo"}}],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 12, "output_tokens": 7}
        });
        assert_eq!(
            chat_completion(&message, "claude", 1700000000),
            json!({
                "id": "chatcmpl-01", "object": "chat.completion", "created": 1700000000, "model": "claude",
                "choices": [{"index": 0, "logprobs": null, "finish_reason": "tool_calls", "message": {
                    "role": "assistant", "content": "Checking.",
                    "tool_calls": [{"id": "toolu_1", "type": "function", "function": {"name": "w", "arguments": "{\"city\":\"Oslo\"}"}}]}}],
                "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19}
            })
        );
    }

    #[test]
    fn events_become_chunks() {
        let mut stream = ChunkStream::new("claude", 1);
        let events = [
            json!({"type": "message_start", "message": {"id": "msg_9", "usage": {"input_tokens": 5, "output_tokens": 1}}}),
            json!({"type": "ping"}),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}}),
            json!({"type": "content_block_stop", "index": 0}),
            json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "w", "input": {}}}),
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"a\":1}"}}),
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}}),
            json!({"type": "message_stop"}),
        ];
        let chunks = crate::api::chunk::translated(&mut stream, &events);
        assert_eq!(chunks.len(), 7);
        assert_eq!(chunks[0]["id"], "chatcmpl-9");
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(chunks[1]["choices"][0]["delta"]["content"], "Hi");
        assert_eq!(
            chunks[2]["choices"][0]["delta"]["tool_calls"][0]["id"],
            "toolu_1"
        );
        assert_eq!(
            chunks[3]["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"],
            "{\"a\":1}"
        );
        assert_eq!(chunks[4]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(
            chunks[5]["usage"],
            json!({"prompt_tokens": 5, "completion_tokens": 9, "total_tokens": 14})
        );
        assert_eq!(chunks[6], "[DONE]");
    }

    #[test]
    fn structured_outputs_go_through_a_forced_tool() {
        let schema = json!({"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]});
        let request = messages_request(
            &chat(json!({"model": "m", "messages": [{"role": "user", "content": "Hi"}],
                         "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": schema}}})),
            "m",
        )
        .unwrap();
        assert_eq!(request["tools"][0]["name"], STRUCTURED_OUTPUT_TOOL);
        assert_eq!(request["tools"][0]["input_schema"], schema);
        assert_eq!(
            request["tool_choice"],
            json!({"type": "tool", "name": STRUCTURED_OUTPUT_TOOL})
        );
        let with_tools = chat(
            json!({"model": "m", "messages": [], "response_format": {"type": "json_object"},
            "tools": [{"type": "function", "function": {"name": "f"}}]}),
        );
        assert!(messages_request(&with_tools, "m").is_err());

        let message = json!({"id": "msg_1", "content": [{"type": "tool_use", "id": "t", "name": STRUCTURED_OUTPUT_TOOL,
            "input": {"answer": "yes"}}], "stop_reason": "tool_use", "usage": {"input_tokens": 1, "output_tokens": 2}});
        let completion = chat_completion(&message, "m", 0);
        assert_eq!(
            completion["choices"][0]["message"]["content"],
            "{\"answer\":\"yes\"}"
        );
        assert!(
            completion["choices"][0]["message"]
                .get("tool_calls")
                .is_none()
        );
        assert_eq!(completion["choices"][0]["finish_reason"], "stop");

        let mut stream = ChunkStream::new("m", 0);
        let events = [
            json!({"type": "message_start", "message": {"id": "msg_2", "usage": {"input_tokens": 1}}}),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "t", "name": STRUCTURED_OUTPUT_TOOL, "input": {}}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "{\"answer\": "}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "\"yes\"}"}}),
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 4}}),
        ];
        let chunks = crate::api::chunk::translated(&mut stream, &events);
        let text: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(text, "{\"answer\": \"yes\"}");
        assert!(
            chunks
                .iter()
                .all(|c| c["choices"][0]["delta"].get("tool_calls").is_none())
        );
        assert_eq!(
            chunks[chunks.len() - 2]["choices"][0]["finish_reason"],
            "stop"
        );
    }
}
