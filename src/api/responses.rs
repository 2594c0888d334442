//! OpenAI's Responses API (`POST /v1/responses`), stateless: the request rewritten as a
//! chat request (so it routes to any upstream), and the answer — a chat completion, or
//! its stream (`stream::ResponsesStream`) — rewritten as a Response object and its events.
//! What needs state kept between requests (`previous_response_id`, conversations,
//! background runs, stored item references) is refused by name; tools are translated by
//! `tools` (OpenAI's built-in ones dropped or refused, `tools.hosted`).

pub mod stream;
pub mod tools;

use super::chunk::ChunkUsage;
use super::hosted::{DroppedTools, HostedTools};
use super::openai::{ChatCompletionRequest, Extra};
use super::{Invalid, invalid, text_of};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tools::{ToolMap, Tools};

/// `POST /v1/responses`.
#[derive(Debug, Clone, Deserialize)]
pub struct ResponsesRequest {
    pub model: String,
    /// A string (one user message), or a list of input items.
    pub input: Value,
    #[serde(default)]
    pub instructions: Option<String>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub max_output_tokens: Option<u64>,
    #[serde(default)]
    pub tools: Option<Vec<Value>>,
    #[serde(default)]
    pub tool_choice: Option<Value>,
    /// `{"format": {"type": "text" | "json_object" | "json_schema", …}}`.
    #[serde(default)]
    pub text: Option<Value>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// Fields that need state Airlock does not keep, refused when set.
const STATEFUL: &[&str] = &[
    "previous_response_id",
    "conversation",
    "background",
    "prompt",
];

/// Chat request fields taken over as they are.
const PASSED: &[&str] = &["temperature", "top_p", "user", "seed"];

// Fields accepted and not sent on: `store` (nothing is stored; answered `false`),
// `include` (no encrypted reasoning comes back), `reasoning.summary` (no summaries),
// `prompt_cache_key`, `client_metadata`, `metadata`, `safety_identifier`,
// `service_tier`, `truncation` and `text.verbosity` (OpenAI's own settings; an
// upstream that does not know them could refuse the request).

/// A message's content as chat content: a string, or chat parts.
fn chat_content(content: &Value, at: &str) -> Result<Value, Invalid> {
    let Some(parts) = content.as_array() else {
        return match content {
            Value::String(_) => Ok(content.clone()),
            _ => Err(invalid(format!("{at}.content must be a string or a list"))),
        };
    };
    let mut out = Vec::with_capacity(parts.len());
    for (i, part) in parts.iter().enumerate() {
        let at = format!("{at}.content[{i}]");
        match part.get("type").and_then(Value::as_str) {
            Some("input_text" | "output_text") => {
                out.push(json!({"type": "text", "text": item_str(part, "text", &at)?}));
            }
            Some("input_image") => {
                let Some(url) = part["image_url"].as_str() else {
                    return Err(invalid(format!(
                        "{at}: images need an `image_url` (file ids need stored files, which Airlock does not keep)"
                    )));
                };
                let mut image = json!({"url": url});
                if let Some(detail) = part.get("detail") {
                    image["detail"] = detail.clone();
                }
                out.push(json!({"type": "image_url", "image_url": image}));
            }
            Some("refusal") => {
                out.push(json!({"type": "text", "text": item_str(part, "refusal", &at)?}));
            }
            Some("input_file") => {
                return Err(invalid(format!(
                    "{at}: `input_file` parts are not supported: send the file's text as `input_text`"
                )));
            }
            Some(other) => {
                return Err(invalid(format!(
                    "{at}: content of type `{other}` is not supported"
                )));
            }
            None => {
                return Err(invalid(format!(
                    "{at}: a content part needs a `type` (a string)"
                )));
            }
        }
    }
    Ok(Value::Array(out))
}

/// Adds a tool call to the conversation: to the assistant message just before it, or
/// as a new assistant message.
fn push_tool_call(messages: &mut Vec<Value>, call: Value) {
    if let Some(last) = messages.last_mut()
        && last["role"] == "assistant"
    {
        match last["tool_calls"].as_array_mut() {
            Some(calls) => calls.push(call),
            None => last["tool_calls"] = json!([call]),
        }
        return;
    }
    messages.push(json!({"role": "assistant", "content": null, "tool_calls": [call]}));
}

/// A string field of an input item.
fn item_str<'a>(item: &'a Value, field: &str, at: &str) -> Result<&'a str, Invalid> {
    item.get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("{at}: `{field}` must be a string")))
}

/// The input as chat messages, tool names as `map` gives them.
fn messages(
    instructions: Option<&str>,
    input: &Value,
    map: &ToolMap,
) -> Result<Vec<Value>, Invalid> {
    let mut messages = Vec::new();
    if let Some(instructions) = instructions.filter(|i| !i.is_empty()) {
        messages.push(json!({"role": "system", "content": instructions}));
    }
    let items = match input {
        Value::String(text) => {
            messages.push(json!({"role": "user", "content": text}));
            return Ok(messages);
        }
        Value::Array(items) => items,
        _ => return Err(invalid("`input` must be a string or a list of items")),
    };
    for (i, item) in items.iter().enumerate() {
        let at = format!("input[{i}]");
        match item.get("type").and_then(Value::as_str) {
            None | Some("message") => {
                let role = item.get("role").and_then(Value::as_str).unwrap_or("");
                if !matches!(role, "user" | "assistant" | "system" | "developer") {
                    return Err(invalid(format!(
                        "{at}.role must be `user`, `assistant`, `system` or `developer`"
                    )));
                }
                let content = chat_content(&item["content"], &at)?;
                messages.push(json!({"role": role, "content": content}));
            }
            Some(kind @ ("function_call" | "custom_tool_call")) => {
                let name = item_str(item, "name", &at)?;
                let namespace = item.get("namespace").and_then(Value::as_str);
                let arguments = match kind {
                    "function_call" => item_str(item, "arguments", &at)?.to_string(),
                    _ => tools::custom_arguments(item_str(item, "input", &at)?),
                };
                let call = json!({"id": item_str(item, "call_id", &at)?, "type": "function",
                    "function": {"name": map.chat_name(namespace, name), "arguments": arguments}});
                push_tool_call(&mut messages, call);
            }
            Some("function_call_output" | "custom_tool_call_output") => {
                messages.push(
                    json!({"role": "tool", "tool_call_id": item_str(item, "call_id", &at)?,
                                     "content": text_of(&item["output"])}),
                );
            }
            // Their tools joined the request's (`declared_tools`).
            Some("additional_tools") => {}
            // Reasoning a model produced earlier: OpenAI's own (its `encrypted_content`
            // only OpenAI can read), and chat has no place for it: left out.
            Some("reasoning") => {}
            Some("item_reference") => {
                return Err(invalid(format!(
                    "{at}: item references need stored responses, which Airlock does not keep; send the items themselves"
                )));
            }
            Some("compaction") => {
                return Err(invalid(format!(
                    "{at}: a compaction item holds history only OpenAI can read (encrypted); send the conversation itself"
                )));
            }
            Some(other) => {
                return Err(invalid(format!(
                    "{at}: items of type `{other}` are not supported"
                )));
            }
        }
    }
    Ok(messages)
}

/// `text.format` as a chat `response_format`.
fn response_format(format: &Value) -> Result<Option<Value>, Invalid> {
    match format["type"].as_str() {
        None | Some("text") => Ok(None),
        Some("json_object") => Ok(Some(json!({"type": "json_object"}))),
        Some("json_schema") => {
            let mut schema = json!({"name": format["name"], "schema": format["schema"]});
            for field in ["strict", "description"] {
                if let Some(value) = format.get(field).filter(|v| !v.is_null()) {
                    schema[field] = value.clone();
                }
            }
            Ok(Some(json!({"type": "json_schema", "json_schema": schema})))
        }
        Some(other) => Err(invalid(format!("text.format `{other}` is not supported"))),
    }
}

impl ResponsesRequest {
    pub fn is_stream(&self) -> bool {
        self.stream == Some(true)
    }

    /// The equivalent chat request, OpenAI's built-in tools dropped.
    pub fn to_chat(&self) -> Result<ChatCompletionRequest, Invalid> {
        self.translate(HostedTools::Drop).map(|(chat, _)| chat)
    }

    /// The tools the request declares, with where: `tools`, then the tools of its
    /// `additional_tools` input items.
    fn declared_tools(&self) -> Result<Vec<(String, &Value)>, Invalid> {
        let mut declared: Vec<(String, &Value)> = self
            .tools
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, tool)| (format!("tools[{i}]"), tool))
            .collect();
        for (i, item) in self.input.as_array().into_iter().flatten().enumerate() {
            if item.get("type").and_then(Value::as_str) != Some("additional_tools") {
                continue;
            }
            let Some(tools) = item.get("tools").and_then(Value::as_array) else {
                return Err(invalid(format!(
                    "input[{i}]: an `additional_tools` item needs `tools` (a list)"
                )));
            };
            for (j, tool) in tools.iter().enumerate() {
                declared.push((format!("input[{i}].tools[{j}]"), tool));
            }
        }
        Ok(declared)
    }

    /// The chat names of the request's tools, both ways (empty if they do not translate:
    /// such a request was refused before any answer).
    pub fn tool_map(&self) -> ToolMap {
        self.declared_tools()
            .and_then(|declared| Tools::translate(declared, HostedTools::Drop))
            .map(|tools| tools.map)
            .unwrap_or_default()
    }

    /// The equivalent chat request, with the built-in tools left out under `hosted`.
    pub fn translate(
        &self,
        hosted: HostedTools,
    ) -> Result<(ChatCompletionRequest, DroppedTools), Invalid> {
        for field in STATEFUL {
            if self
                .extra
                .get(*field)
                .is_some_and(|v| !v.is_null() && *v != false)
            {
                return Err(invalid(format!(
                    "`{field}` needs state kept between requests; Airlock's Responses endpoint is stateless: send the whole conversation in `input`"
                )));
            }
        }
        let tools = Tools::translate(self.declared_tools()?, hosted)?;
        let mut chat = Map::new();
        chat.insert("model".into(), self.model.clone().into());
        chat.insert(
            "messages".into(),
            messages(self.instructions.as_deref(), &self.input, &tools.map)?.into(),
        );
        if self.is_stream() {
            chat.insert("stream".into(), true.into());
        }
        if let Some(max) = self.max_output_tokens {
            chat.insert("max_tokens".into(), max.into());
        }
        for field in PASSED {
            if let Some(value) = self.extra.get(*field).filter(|v| !v.is_null()) {
                chat.insert((*field).into(), value.clone());
            }
        }
        if let Some(effort) = self
            .extra
            .get("reasoning")
            .and_then(|r| r.get("effort"))
            .filter(|e| e.is_string())
        {
            chat.insert("reasoning_effort".into(), effort.clone());
        }
        let choice = self
            .tool_choice
            .as_ref()
            .map(|choice| tools::tool_choice(choice, &tools.map))
            .transpose()?;
        // Tool settings only with tools: OpenAI refuses them alone (all may have been
        // built-in tools, dropped).
        if !tools.chat.is_empty() {
            if let Some(choice) = choice {
                chat.insert("tool_choice".into(), choice);
            }
            if let Some(parallel) = self
                .extra
                .get("parallel_tool_calls")
                .filter(|v| !v.is_null())
            {
                chat.insert("parallel_tool_calls".into(), parallel.clone());
            }
            chat.insert("tools".into(), tools.chat.into());
        }
        let format = self.text.as_ref().map(|t| &t["format"]);
        if let Some(format) = format.map(response_format).transpose()?.flatten() {
            chat.insert("response_format".into(), format);
        }
        let chat =
            serde_json::from_value(Value::Object(chat)).map_err(|e| invalid(e.to_string()))?;
        Ok((chat, tools.dropped))
    }

    /// The request's settings as a Response object echoes them, before any output.
    pub fn response_template(&self, id: &str, created_at: i64) -> Value {
        let extra = &self.extra;
        let echo = |field: &str, default: Value| {
            extra
                .get(field)
                .filter(|v| !v.is_null())
                .cloned()
                .unwrap_or(default)
        };
        json!({
            "id": id,
            "object": "response",
            "created_at": created_at,
            "status": "in_progress",
            "error": null,
            "incomplete_details": null,
            "instructions": self.instructions,
            "max_output_tokens": self.max_output_tokens,
            "model": self.model,
            "output": [],
            "parallel_tool_calls": echo("parallel_tool_calls", true.into()),
            "previous_response_id": null,
            "reasoning": {"effort": extra.get("reasoning").and_then(|r| r.get("effort")).cloned(), "summary": null},
            "store": false,
            "temperature": echo("temperature", 1.0.into()),
            "text": self.text.clone().unwrap_or_else(|| json!({"format": {"type": "text"}})),
            "tool_choice": self.tool_choice.clone().unwrap_or_else(|| "auto".into()),
            "tools": self.tools.clone().unwrap_or_default(),
            "top_p": echo("top_p", 1.0.into()),
            "truncation": "disabled",
            "usage": null,
            "user": extra.get("user").cloned(),
            "metadata": echo("metadata", json!({})),
        })
    }
}

/// The id suffix of a chat completion id (`chatcmpl-X` → `X`).
pub fn id_suffix(chat_id: Option<&str>) -> String {
    let id = chat_id.unwrap_or("");
    let id = id.strip_prefix("chatcmpl-").unwrap_or(id);
    if id.is_empty() {
        format!("{:016x}", crate::random::random_u64())
    } else {
        id.to_string()
    }
}

/// The Responses API's usage for chat usage.
pub fn usage(usage: &ChunkUsage) -> Value {
    let (input, output) = (usage.prompt_tokens, usage.completion_tokens);
    json!({
        "input_tokens": input,
        "input_tokens_details": {"cached_tokens": usage.prompt_tokens_details.map_or(0, |d| d.cached_tokens)},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": usage.completion_tokens_details.map_or(0, |d| d.reasoning_tokens)},
        "total_tokens": input.saturating_add(output),
    })
}

/// A finished response's `status` and `incomplete_details` for a chat finish reason.
pub fn completion_status(finish_reason: Option<&str>) -> (&'static str, Value) {
    match finish_reason {
        Some("length") => ("incomplete", json!({"reason": "max_output_tokens"})),
        Some("content_filter") => ("incomplete", json!({"reason": "content_filter"})),
        _ => ("completed", Value::Null),
    }
}

/// A message output item.
pub fn message_item(id: &str, text: &str, status: &str) -> Value {
    json!({"type": "message", "id": id, "status": status, "role": "assistant",
           "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]})
}

/// A chat completion as a Response object, from the request's template.
pub fn from_chat(completion: &Value, request: &ResponsesRequest) -> Value {
    let suffix = id_suffix(completion["id"].as_str());
    let created = completion["created"]
        .as_i64()
        .unwrap_or_else(crate::store::now_unix);
    let mut response = request.response_template(&format!("resp_{suffix}"), created);
    let choice = &completion["choices"][0];
    let message = &choice["message"];
    let mut output = Vec::new();
    if let Some(text) = message["content"].as_str().filter(|t| !t.is_empty()) {
        output.push(message_item(&format!("msg_{suffix}"), text, "completed"));
    }
    let map = request.tool_map();
    for call in message["tool_calls"].as_array().into_iter().flatten() {
        let tool = map.client_tool(call["function"]["name"].as_str().unwrap_or(""));
        output.push(tools::call_item(
            &tool,
            call["id"].as_str().unwrap_or(""),
            call["function"]["arguments"].as_str().unwrap_or(""),
            "completed",
        ));
    }
    let (status, incomplete) = completion_status(choice["finish_reason"].as_str());
    response["status"] = status.into();
    response["incomplete_details"] = incomplete;
    response["output"] = output.into();
    let counts: ChunkUsage =
        serde_json::from_value(completion["usage"].clone()).unwrap_or_default();
    response["usage"] = usage(&counts);
    response
}

#[cfg(test)]
mod tests;
