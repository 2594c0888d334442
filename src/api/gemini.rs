//! Google Gemini's `generateContent` API as an upstream: an OpenAI chat request rewritten
//! as a Gemini request, and the answer — a response, or the stream's events
//! (`stream::ChunkStream`) — rewritten as OpenAI's. `ingress` is the other direction,
//! for clients that speak Gemini's API.

pub mod ingress;
pub mod native;
pub mod schema;
pub mod stream;

use super::openai::ChatCompletionRequest;
use super::{Invalid, invalid, response_schema, system_note, text_of, tool_input};
use native::Native;
use serde_json::{Map, Value, json};

/// A model's resource name: `models/NAME`, or the name as it is when it names its
/// collection (`tunedModels/…`); characters outside a path segment's are escaped.
pub fn model_resource(model: &str) -> String {
    let mut resource = String::with_capacity(model.len() + 8);
    if !model.contains('/') {
        resource.push_str("models/");
    }
    for byte in model.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            resource.push(char::from(byte));
        } else {
            resource.push_str(&format!("%{byte:02X}"));
        }
    }
    resource
}

/// The path of one of a model's methods (`generateContent`, `countTokens`, …) below the
/// base URL (`…/v1beta`).
pub fn method_path(model: &str, method: &str) -> String {
    format!("/{}:{method}", model_resource(model))
}

/// An image part: a data URL inline, any other URL by reference (its type from the
/// file name, since Gemini needs one).
fn image_part(url: &str) -> Result<Value, Invalid> {
    if let Some((mime_type, data)) = url
        .strip_prefix("data:")
        .and_then(|rest| rest.split_once(";base64,"))
    {
        return Ok(json!({"inlineData": {"mimeType": mime_type, "data": data}}));
    }
    let name = url
        .split(['?', '#'])
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    let mime_type = [
        (".png", "image/png"),
        (".jpg", "image/jpeg"),
        (".jpeg", "image/jpeg"),
        (".webp", "image/webp"),
        (".heic", "image/heic"),
        (".heif", "image/heif"),
        (".gif", "image/gif"),
    ]
    .iter()
    .find(|(ext, _)| name.ends_with(ext))
    .map(|(_, mime)| *mime)
    .ok_or_else(|| {
        invalid("an image for a Gemini upstream must be a data: URL or a URL ending in .png, .jpg, .jpeg, .webp, .heic, .heif or .gif")
    })?;
    Ok(json!({"fileData": {"mimeType": mime_type, "fileUri": url}}))
}

/// OpenAI content as Gemini parts: text (empty text left out) and images.
fn parts(content: Option<&Value>) -> Result<Vec<Value>, Invalid> {
    match content {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) if s.is_empty() => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![json!({"text": s})]),
        Some(Value::Array(items)) => {
            let mut parts = Vec::with_capacity(items.len());
            for item in items {
                match item.get("type").and_then(Value::as_str) {
                    Some("text") => match item["text"].as_str() {
                        Some("") => {}
                        Some(text) => parts.push(json!({"text": text})),
                        None => return Err(invalid("a text part needs its `text`")),
                    },
                    Some("image_url") => {
                        parts.push(image_part(item["image_url"]["url"].as_str().unwrap_or(""))?);
                    }
                    other => {
                        return Err(invalid(format!(
                            "content part {other:?} cannot be sent to a Gemini upstream"
                        )));
                    }
                }
            }
            Ok(parts)
        }
        Some(_) => Err(invalid(
            "message content must be a string or a list of parts",
        )),
    }
}

/// Appends parts to the conversation, merging into the previous turn of the same role
/// (the answers to parallel calls must share one turn).
fn push_turn(contents: &mut Vec<Value>, role: &str, parts: Vec<Value>) {
    if parts.is_empty() {
        return;
    }
    if let Some(last) = contents.last_mut()
        && last["role"] == role
        && let Some(existing) = last["parts"].as_array_mut()
    {
        existing.extend(parts);
        return;
    }
    contents.push(json!({"role": role, "parts": parts}));
}

/// A tool message as a `functionResponse`: its call is looked up by id for the function
/// name Gemini wants; a result that is not a JSON object is wrapped as `{"result": …}`.
fn function_response(
    message: &super::openai::ChatMessage,
    calls: &[(String, String)],
    index: usize,
) -> Result<Value, Invalid> {
    let id = message
        .extra
        .get("tool_call_id")
        .and_then(Value::as_str)
        .unwrap_or("");
    let Some((_, name)) = calls.iter().find(|(call_id, _)| call_id == id) else {
        return Err(invalid(format!(
            "messages[{index}]: `tool_call_id` `{id}` answers no tool call of an earlier assistant message"
        )));
    };
    let text = text_of(message.content.as_ref().unwrap_or(&Value::Null));
    let response = match serde_json::from_str::<Value>(&text) {
        Ok(object @ Value::Object(_)) => object,
        _ => json!({"result": text}),
    };
    Ok(json!({"functionResponse": {"name": name, "response": response}}))
}

/// The OpenAI tools as Gemini function declarations; the schemas a Gemini client sent
/// as JSON Schema (`native`) go as JSON Schema again.
fn function_declarations(tools: &[Value], native: &Native) -> Result<Value, Invalid> {
    let mut declarations = Vec::with_capacity(tools.len());
    for (i, tool) in tools.iter().enumerate() {
        if tool["type"] != "function" {
            return Err(invalid(format!(
                "tools[{i}]: only function tools can be sent to a Gemini upstream"
            )));
        }
        let function = &tool["function"];
        let mut declaration = Map::new();
        declaration.insert("name".into(), function["name"].clone());
        if let Some(description) = function["description"].as_str().filter(|d| !d.is_empty()) {
            declaration.insert("description".into(), description.into());
        }
        let name = function["name"].as_str().unwrap_or("");
        if function["parameters"].is_object() && native.parameters_as_json_schema(name) {
            declaration.insert(
                "parametersJsonSchema".into(),
                function["parameters"].clone(),
            );
        } else if function["parameters"].is_object() {
            let path = format!("tools[{i}].function.parameters");
            let parameters = schema::to_gemini(&function["parameters"], &path)?;
            // Gemini refuses an object without properties: a function without
            // parameters says so by having none.
            if !schema::is_free_form_object(&parameters) {
                declaration.insert("parameters".into(), parameters);
            }
        }
        if let Some((field, schema)) = native.function_response(name) {
            declaration.insert(field.into(), schema.clone());
        }
        declarations.push(Value::Object(declaration));
    }
    Ok(json!([{"functionDeclarations": declarations}]))
}

/// `tool_choice` as Gemini's function-calling config.
fn tool_config(choice: &Value) -> Result<Value, Invalid> {
    let config = match choice {
        Value::String(s) if s == "auto" => json!({"mode": "AUTO"}),
        Value::String(s) if s == "required" => json!({"mode": "ANY"}),
        Value::String(s) if s == "none" => json!({"mode": "NONE"}),
        named if named["function"]["name"].is_string() => {
            json!({"mode": "ANY", "allowedFunctionNames": [named["function"]["name"]]})
        }
        _ => return Err(invalid("`tool_choice` is not one Gemini understands")),
    };
    Ok(json!({"functionCallingConfig": config}))
}

/// `generationConfig`: sampling, limits, the structured output asked for, and what a
/// Gemini client sent in Gemini's own terms (`native`).
fn generation_config(
    extra: &Map<String, Value>,
    native: &Native,
) -> Result<Map<String, Value>, Invalid> {
    let mut config = Map::new();
    for (from, to) in [
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("top_k", "topK"),
        ("n", "candidateCount"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
        ("seed", "seed"),
    ] {
        if let Some(v) = extra.get(from).filter(|v| !v.is_null()) {
            config.insert(to.into(), v.clone());
        }
    }
    if let Some(max) = ["max_completion_tokens", "max_tokens"]
        .iter()
        .find_map(|k| extra.get(*k).and_then(Value::as_u64))
    {
        config.insert("maxOutputTokens".into(), max.into());
    }
    match extra.get("stop") {
        Some(Value::String(s)) => {
            config.insert("stopSequences".into(), json!([s]));
        }
        Some(list @ Value::Array(_)) => {
            config.insert("stopSequences".into(), list.clone());
        }
        _ => {}
    }
    if let Some(format) = extra.get("response_format") {
        if response_schema(format)?.is_some() {
            config.insert("responseMimeType".into(), "application/json".into());
        }
        let schema = &format["json_schema"]["schema"];
        if format["type"] == "json_schema" && native.response_json_schema {
            config.insert("responseJsonSchema".into(), schema.clone());
        } else if format["type"] == "json_schema" {
            let converted = schema::to_gemini(schema, "response_format.json_schema.schema")?;
            // Any object at all is what the JSON mime type alone asks for.
            if !schema::is_free_form_object(&converted) {
                config.insert("responseSchema".into(), converted);
            }
        }
    }
    if let Some(thinking) = &native.thinking_config {
        config.insert("thinkingConfig".into(), thinking.clone());
    }
    Ok(config)
}

/// An OpenAI chat request as a Gemini `generateContent` request (the model is in the
/// path, not the body).
pub fn generate_content_request(chat: &ChatCompletionRequest) -> Result<Value, Invalid> {
    let mut system = Vec::new();
    let mut contents = Vec::new();
    // Tool calls seen so far: (id, function name).
    let mut calls: Vec<(String, String)> = Vec::new();
    for (index, message) in chat.messages.iter().enumerate() {
        match message.role.as_str() {
            // Gemini's system instruction is set once, ahead of the conversation: a
            // system message that comes later stays at its place as a user-turn note.
            "system" | "developer" if !contents.is_empty() => {
                let text = text_of(message.content.as_ref().unwrap_or(&Value::Null));
                push_turn(
                    &mut contents,
                    "user",
                    vec![json!({"text": system_note(&text)})],
                );
            }
            "system" | "developer" => system.extend(parts(message.content.as_ref())?),
            "user" => push_turn(&mut contents, "user", parts(message.content.as_ref())?),
            "assistant" => {
                let mut turn = parts(message.content.as_ref())?;
                let tool_calls = message.extra.get("tool_calls").and_then(Value::as_array);
                for call in tool_calls.into_iter().flatten() {
                    let name = call["function"]["name"].as_str().unwrap_or("");
                    let arguments = call["function"]["arguments"].as_str().unwrap_or("{}");
                    calls.push((call["id"].as_str().unwrap_or("").into(), name.into()));
                    turn.push(
                        json!({"functionCall": {"name": name, "args": tool_input(arguments)}}),
                    );
                }
                push_turn(&mut contents, "model", turn);
            }
            "tool" => {
                let part = function_response(message, &calls, index)?;
                push_turn(&mut contents, "user", vec![part]);
            }
            other => return Err(invalid(format!("message role `{other}` is not supported"))),
        }
    }
    if contents.is_empty() {
        return Err(invalid(
            "a Gemini upstream needs at least one user or assistant message with content",
        ));
    }
    let extra = &chat.extra;
    let mut request = Map::new();
    request.insert("contents".into(), contents.into());
    if !system.is_empty() {
        request.insert("systemInstruction".into(), json!({"parts": system}));
    }
    let no_native = Native::default();
    let native = chat.gemini_native.as_deref().unwrap_or(&no_native);
    // An empty list of tools is left out, and with it a choice among none.
    if let Some(tools) = extra
        .get("tools")
        .and_then(Value::as_array)
        .filter(|t| !t.is_empty())
    {
        request.insert("tools".into(), function_declarations(tools, native)?);
        if let Some(choice) = extra.get("tool_choice") {
            request.insert("toolConfig".into(), tool_config(choice)?);
        }
    }
    let config = generation_config(extra, native)?;
    if !config.is_empty() {
        request.insert("generationConfig".into(), config.into());
    }
    Ok(Value::Object(request))
}

/// OpenAI's `finish_reason` for a Gemini `finishReason`; `called` says whether the
/// candidate called functions.
pub fn finish_reason(reason: &str, called: bool) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY"
        | "LANGUAGE" => "content_filter",
        _ if called => "tool_calls",
        _ => "stop",
    }
}

/// The chat completion id for a Gemini response id.
fn chat_id(response_id: Option<&str>) -> String {
    match response_id {
        Some(id) => format!("chatcmpl-{id}"),
        None => format!("chatcmpl-{:016x}", crate::random::random_u64()),
    }
}

/// The id of a function call, which Gemini may leave out: `call_<response>_<n>`.
fn call_id(part: &Value, response_id: &str, n: usize) -> Value {
    match part["functionCall"]["id"].as_str() {
        Some(id) if !id.is_empty() => id.into(),
        _ => format!("call_{response_id}_{n}").into(),
    }
}

/// OpenAI usage for Gemini's `usageMetadata`: thinking counts as completion (it is billed
/// as output), and the cached share of the prompt is reported.
pub fn usage(metadata: &Value) -> Value {
    serde_json::from_value::<UsageMetadata>(metadata.clone())
        .unwrap_or_default()
        .to_openai()
}

/// Gemini's `usageMetadata`, the fields Airlock reads.
#[derive(Debug, Clone, Copy, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageMetadata {
    #[serde(default)]
    prompt_token_count: u64,
    #[serde(default)]
    candidates_token_count: u64,
    #[serde(default)]
    thoughts_token_count: u64,
    #[serde(default)]
    cached_content_token_count: Option<u64>,
}

impl UsageMetadata {
    /// The counts as OpenAI usage: prompt and completion (thinking included).
    pub fn counts(&self) -> crate::api::openai::Usage {
        crate::api::openai::Usage {
            prompt_tokens: self.prompt_token_count,
            completion_tokens: self
                .candidates_token_count
                .saturating_add(self.thoughts_token_count),
            cached_tokens: self.cached_content_token_count.unwrap_or(0),
        }
    }

    /// OpenAI's usage object, with reasoning and cached tokens.
    pub fn to_openai(&self) -> Value {
        let counts = self.counts();
        let (prompt, completion) = (counts.prompt_tokens, counts.completion_tokens);
        let mut usage = json!({"prompt_tokens": prompt, "completion_tokens": completion,
                               "total_tokens": prompt.saturating_add(completion)});
        if let Some(cached) = self.cached_content_token_count {
            usage["prompt_tokens_details"] = json!({"cached_tokens": cached});
        }
        if self.thoughts_token_count > 0 {
            usage["completion_tokens_details"] =
                json!({"reasoning_tokens": self.thoughts_token_count});
        }
        usage
    }
}

/// A candidate's answer parts: its text (thoughts left out) and its function calls.
fn answer_parts(candidate: &Value, response_id: &str, first_call: usize) -> (String, Vec<Value>) {
    let mut text = String::new();
    let mut calls = Vec::new();
    for part in candidate["content"]["parts"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if part["thought"] == true {
            continue;
        }
        if let Some(t) = part["text"].as_str() {
            text.push_str(t);
        } else if part["functionCall"].is_object() {
            let call = &part["functionCall"];
            calls.push(json!({
                "id": call_id(part, response_id, first_call + calls.len()),
                "type": "function",
                "function": {"name": call["name"], "arguments": call.get("args").map_or_else(|| "{}".into(), Value::to_string)},
            }));
        }
    }
    (text, calls)
}

/// A Gemini response as an OpenAI chat completion for `model` (the client's name). A
/// prompt Gemini blocked becomes one empty choice ending in `content_filter`.
pub fn chat_completion(response: &Value, model: &str, created: i64) -> Value {
    let id = chat_id(response["responseId"].as_str());
    let response_id = id.trim_start_matches("chatcmpl-").to_string();
    let mut choices = Vec::new();
    for (position, candidate) in response["candidates"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let (text, calls) = answer_parts(candidate, &response_id, 0);
        let finish = finish_reason(
            candidate["finishReason"].as_str().unwrap_or("STOP"),
            !calls.is_empty(),
        );
        let mut message = json!({"role": "assistant",
            "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { text.into() }});
        if !calls.is_empty() {
            message["tool_calls"] = calls.into();
        }
        choices.push(
            json!({"index": candidate["index"].as_u64().unwrap_or(position as u64),
                            "message": message, "logprobs": null, "finish_reason": finish}),
        );
    }
    if choices.is_empty() {
        choices.push(
            json!({"index": 0, "message": {"role": "assistant", "content": null},
                            "logprobs": null, "finish_reason": "content_filter"}),
        );
    }
    json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": choices,
        "usage": usage(&response["usageMetadata"]),
    })
}

#[cfg(test)]
mod tests;
