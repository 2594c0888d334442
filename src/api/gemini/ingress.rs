//! Gemini's API as clients speak it (`models/NAME:generateContent`,
//! `:streamGenerateContent?alt=sse`): the request checked as Google checks it (unknown
//! fields and `Schema` keywords refused by name) and rewritten as an OpenAI chat request;
//! the chat answer — a completion, or a stream (`GeminiEvents`) — rewritten as Gemini's.
//! Used by the gateway's Gemini ingress and by mock-upstream's `--flavor gemini`.

use super::native::{self, Native};
use crate::api::chunk::{Chunk, json_string};
use crate::api::hosted::{DroppedTools, HostedTools};
use crate::api::openai::ChatCompletionRequest;
use crate::api::{ClientEvents, Invalid, invalid};
use bytes::BytesMut;
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// The keywords of Gemini's `Schema` object.
const SCHEMA_FIELDS: &[&str] = &[
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "maxItems",
    "minItems",
    "properties",
    "required",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "example",
    "anyOf",
    "propertyOrdering",
    "default",
    "items",
    "minimum",
    "maximum",
];

/// The `generationConfig` fields a chat request can carry, and their chat names.
const GENERATION_CONFIG: &[(&str, &str)] = &[
    ("temperature", "temperature"),
    ("topP", "top_p"),
    ("topK", "top_k"),
    ("candidateCount", "n"),
    ("maxOutputTokens", "max_tokens"),
    ("stopSequences", "stop"),
    ("presencePenalty", "presence_penalty"),
    ("frequencyPenalty", "frequency_penalty"),
    ("seed", "seed"),
];

/// A model method in a request path, `/v1beta/models/NAME:METHOD` (or `/v1/…`): the
/// model's name and the method (with any query string left off by the caller).
pub fn model_method(path: &str) -> Option<(&str, &str)> {
    let rest = path
        .strip_prefix("/v1beta/models/")
        .or_else(|| path.strip_prefix("/v1/models/"))?;
    rest.split_once(':').filter(|(model, _)| !model.is_empty())
}

/// Google's status name for an HTTP status.
fn status_name(status: u16) -> &'static str {
    match status {
        400 | 413 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        408 | 504 => "DEADLINE_EXCEEDED",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        501 => "UNIMPLEMENTED",
        502 | 503 => "UNAVAILABLE",
        _ => "INTERNAL",
    }
}

/// Google's error body: `{"error": {"code", "message", "status"}}`.
pub fn error_json(status: u16, message: &str) -> Value {
    json!({"error": {"code": status, "message": message, "status": status_name(status)}})
}

/// A field name as lowerCamelCase: Google's JSON parser takes a field by either its
/// proto name (`any_of`, as the google-genai SDK writes some) or its JSON name (`anyOf`).
fn camel_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// An object with its field names as lowerCamelCase (see `camel_case`).
pub fn camel_keys(object: &Map<String, Value>) -> Map<String, Value> {
    object
        .iter()
        .map(|(k, v)| (camel_case(k), v.clone()))
        .collect()
}

/// Google's words for a field it does not know.
pub(super) fn unknown_field(name: &str, at: &str) -> Invalid {
    invalid(format!(
        "Invalid JSON payload received. Unknown name \"{name}\" at '{at}': Cannot find field."
    ))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct GenerateContentRequest {
    contents: Vec<Content>,
    #[serde(default, alias = "system_instruction")]
    system_instruction: Option<Content>,
    #[serde(default)]
    tools: Vec<Tool>,
    #[serde(default, alias = "tool_config")]
    tool_config: Option<Map<String, Value>>,
    #[serde(default, alias = "generation_config")]
    generation_config: Option<Map<String, Value>>,
    /// Accepted: filtering is the upstream's and Airlock's policy's business.
    #[serde(default, rename = "safetySettings", alias = "safety_settings")]
    _safety_settings: Option<serde::de::IgnoredAny>,
    /// The model again (`models/NAME`), as `countTokens` requests carry it; checked
    /// against the path by `to_chat`.
    #[serde(default, rename = "model")]
    _model: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Content {
    #[serde(default)]
    role: Option<String>,
    parts: Vec<Map<String, Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Tool {
    #[serde(default, alias = "function_declarations")]
    function_declarations: Vec<FunctionDeclaration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FunctionDeclaration {
    name: String,
    #[serde(default)]
    description: Option<String>,
    /// Gemini's `Schema` (OpenAPI-style).
    #[serde(default)]
    parameters: Option<Value>,
    /// JSON Schema, as Gemini CLI and MCP tools declare them.
    #[serde(
        default,
        rename = "parametersJsonSchema",
        alias = "parameters_json_schema"
    )]
    parameters_json_schema: Option<Value>,
    /// The function's result, as a `Schema` or as JSON Schema.
    #[serde(default)]
    response: Option<Value>,
    #[serde(default, rename = "responseJsonSchema", alias = "response_json_schema")]
    response_json_schema: Option<Value>,
    /// Live API only (non-blocking calls): refused by name.
    #[serde(default)]
    behavior: Option<Value>,
}

/// Tools Google runs itself: none can run at Airlock's upstreams.
const HOSTED_TOOLS: &[&str] = &[
    "googleSearch",
    "googleSearchRetrieval",
    "codeExecution",
    "urlContext",
    "fileSearch",
    "googleMaps",
    "computerUse",
    "retrieval",
    "enterpriseWebSearch",
];

/// Takes the tools Google runs itself out of `tools` (an entry left empty goes too):
/// dropped and noted, or refused by name, as `policy` says.
fn take_hosted_tools(
    tools: Option<&mut Value>,
    policy: HostedTools,
) -> Result<DroppedTools, Invalid> {
    let mut dropped = DroppedTools::default();
    let Some(entries) = tools.and_then(Value::as_array_mut) else {
        return Ok(dropped);
    };
    for (i, tool) in entries.iter_mut().enumerate() {
        let Some(fields) = tool.as_object_mut() else {
            continue;
        };
        let hosted: Vec<String> = fields
            .keys()
            .filter(|k| HOSTED_TOOLS.contains(&camel_case(k).as_str()))
            .cloned()
            .collect();
        for key in hosted {
            let camel = camel_case(&key);
            if let Some(kind) = HOSTED_TOOLS.iter().find(|h| **h == camel) {
                dropped.hosted(policy, &format!("tools[{i}]"), kind, "Google")?;
            }
            fields.remove(&key);
        }
    }
    entries.retain(|t| t.as_object().is_none_or(|fields| !fields.is_empty()));
    Ok(dropped)
}

/// One function declaration as a chat tool; what only a Gemini upstream can take is
/// noted in `native`.
fn chat_tool(
    declaration: &FunctionDeclaration,
    at: &str,
    native: &mut Native,
) -> Result<Value, Invalid> {
    let name = &declaration.name;
    if declaration.behavior.is_some() {
        return Err(invalid(format!(
            "* GenerateContentRequest.{at}.behavior: non-blocking functions (a Live API \
             feature) are not supported through Airlock"
        )));
    }
    let mut function = json!({"name": name});
    if let Some(description) = &declaration.description {
        function["description"] = description.clone().into();
    }
    match (&declaration.parameters, &declaration.parameters_json_schema) {
        (Some(_), Some(_)) => {
            return Err(native::exclusive(at, "parameters", "parametersJsonSchema"));
        }
        (Some(schema), None) => {
            function["parameters"] = to_json_schema(schema, &format!("{at}.parameters"))?;
        }
        (None, Some(schema)) => {
            let at = format!("{at}.parameters_json_schema");
            function["parameters"] = native::json_schema(schema, &at)?;
            native.json_schema_parameters.push(name.clone());
        }
        (None, None) => {}
    }
    // A declared result has no chat counterpart: checked, and kept for Gemini upstreams.
    let response = match (&declaration.response, &declaration.response_json_schema) {
        (Some(_), Some(_)) => {
            return Err(native::exclusive(at, "response", "responseJsonSchema"));
        }
        (Some(schema), None) => {
            to_json_schema(schema, &format!("{at}.response"))?;
            Some(("response", schema.clone()))
        }
        (None, Some(schema)) => {
            let at = format!("{at}.response_json_schema");
            Some(("responseJsonSchema", native::json_schema(schema, &at)?))
        }
        (None, None) => None,
    };
    if let Some((field, schema)) = response {
        native
            .function_responses
            .push((name.clone(), field, schema));
    }
    Ok(json!({"type": "function", "function": function}))
}

/// Checks a `Schema` object as Gemini does, and returns it as JSON Schema (lower-case
/// types).
pub fn to_json_schema(schema: &Value, at: &str) -> Result<Value, Invalid> {
    let Some(object) = schema.as_object().map(camel_keys) else {
        return Err(invalid(format!(
            "Invalid value at '{at}': a Schema must be an object"
        )));
    };
    let mut out = Map::new();
    for (key, value) in &object {
        if !SCHEMA_FIELDS.contains(&key.as_str()) {
            return Err(unknown_field(key, at));
        }
        let converted = match key.as_str() {
            "type" => match value.as_str() {
                Some(t @ ("STRING" | "NUMBER" | "INTEGER" | "BOOLEAN" | "ARRAY" | "OBJECT")) => {
                    Value::String(t.to_ascii_lowercase())
                }
                _ => return Err(invalid(format!("Invalid value at '{at}.type', {value}"))),
            },
            "properties" => {
                let mut properties = Map::new();
                for (name, property) in value.as_object().into_iter().flatten() {
                    let sub = to_json_schema(property, &format!("{at}.properties[{name}].value"))?;
                    properties.insert(name.clone(), sub);
                }
                Value::Object(properties)
            }
            "items" => to_json_schema(value, &format!("{at}.items"))?,
            "anyOf" => Value::Array(
                value
                    .as_array()
                    .into_iter()
                    .flatten()
                    .enumerate()
                    .map(|(i, s)| to_json_schema(s, &format!("{at}.any_of[{i}]")))
                    .collect::<Result<_, _>>()?,
            ),
            // Gemini's extensions have no JSON Schema keyword; `nullable` becomes a type.
            "propertyOrdering" | "example" | "nullable" => continue,
            _ => value.clone(),
        };
        out.insert(key.clone(), converted);
    }
    if object.get("nullable") == Some(&Value::Bool(true))
        && let Some(Value::String(t)) = out.get("type").cloned()
    {
        out.insert("type".into(), json!([t, "null"]));
    }
    if out.get("type").and_then(Value::as_str) == Some("object")
        && out
            .get("properties")
            .and_then(Value::as_object)
            .is_none_or(Map::is_empty)
    {
        return Err(invalid(format!(
            "* {at}.properties: should be non-empty for OBJECT type"
        )));
    }
    Ok(Value::Object(out))
}

/// A string field an object must have, or Google's complaint about it.
fn required_str<'a>(
    object: &'a Map<String, Value>,
    key: &str,
    at: &str,
) -> Result<&'a str, Invalid> {
    object
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("* {at}.{key}: a string is required")))
}

/// One part of a user or model turn as a chat content part; `None` for a thought.
fn chat_part(part: &Map<String, Value>, at: &str) -> Result<Option<Value>, Invalid> {
    if part.get("thought") == Some(&Value::Bool(true)) {
        return Ok(None);
    }
    if let Some(text) = part.get("text").and_then(Value::as_str) {
        return Ok(Some(json!({"type": "text", "text": text})));
    }
    if let Some(data) = part.get("inlineData").and_then(Value::as_object) {
        let data = camel_keys(data);
        let url = format!(
            "data:{};base64,{}",
            required_str(&data, "mimeType", &format!("{at}.inlineData"))?,
            required_str(&data, "data", &format!("{at}.inlineData"))?
        );
        return Ok(Some(
            json!({"type": "image_url", "image_url": {"url": url}}),
        ));
    }
    if let Some(file) = part.get("fileData").and_then(Value::as_object) {
        let file = camel_keys(file);
        let uri = required_str(&file, "fileUri", &format!("{at}.fileData"))?;
        return Ok(Some(
            json!({"type": "image_url", "image_url": {"url": uri}}),
        ));
    }
    match part
        .keys()
        .map(String::as_str)
        .find(|k| *k != "thoughtSignature")
    {
        Some(name @ ("executableCode" | "codeExecutionResult" | "videoMetadata")) => Err(invalid(
            format!("{at}: `{name}` parts are not supported through Airlock"),
        )),
        Some(name) => Err(unknown_field(name, at)),
        None => Err(invalid(format!(
            "* {at}: required oneof field 'data' must have one initialized field"
        ))),
    }
}

/// Tool calls by id, so a `functionResponse` finds the call it answers: by its `id`,
/// else the earliest unanswered call of that function.
#[derive(Default)]
struct Calls {
    /// (id, function name, answered)
    made: Vec<(String, String, bool)>,
}

impl Calls {
    fn call(&mut self, call: &Value) -> Value {
        let name = call["name"].as_str().unwrap_or("").to_string();
        let id = match call["id"].as_str() {
            Some(id) if !id.is_empty() => id.to_string(),
            _ => format!("call_{}", self.made.len() + 1),
        };
        let arguments = call.get("args").unwrap_or(&json!({})).to_string();
        self.made.push((id.clone(), name.clone(), false));
        json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments}})
    }

    fn answer(&mut self, response: &Value, at: &str) -> Result<Value, Invalid> {
        let name = response["name"].as_str().unwrap_or("");
        let by_id = response["id"].as_str().filter(|id| !id.is_empty());
        let found = self
            .made
            .iter_mut()
            .find(|(id, called, answered)| match by_id {
                Some(wanted) => id == wanted,
                None => called == name && !*answered,
            });
        let Some((id, _, answered)) = found else {
            return Err(invalid(format!(
                "{at}: this functionResponse answers no earlier functionCall of `{name}`"
            )));
        };
        *answered = true;
        Ok(json!({"role": "tool", "tool_call_id": id, "content": response["response"].to_string()}))
    }
}

/// The chat messages of `systemInstruction` and `contents`.
fn messages(request: &GenerateContentRequest) -> Result<Vec<Value>, Invalid> {
    let mut messages = Vec::new();
    if let Some(system) = &request.system_instruction {
        let text: String = system
            .parts
            .iter()
            .filter_map(|p| p.get("text")?.as_str())
            .collect();
        messages.push(json!({"role": "system", "content": text}));
    }
    if request.contents.is_empty() {
        return Err(invalid(
            "* GenerateContentRequest.contents: contents is not specified",
        ));
    }
    let mut calls = Calls::default();
    for (i, content) in request.contents.iter().enumerate() {
        if content.parts.is_empty() {
            return Err(invalid(format!(
                "* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty."
            )));
        }
        let mut parts = Vec::new();
        let mut tool_calls = Vec::new();
        for (j, part) in content.parts.iter().enumerate() {
            let at = format!("contents[{i}].parts[{j}]");
            let part = camel_keys(part);
            if let Some(call) = part.get("functionCall") {
                tool_calls.push(calls.call(call));
            } else if let Some(response) = part.get("functionResponse") {
                messages.push(calls.answer(response, &at)?);
            } else if let Some(chat) = chat_part(&part, &at)? {
                parts.push(chat);
            }
        }
        match content.role.as_deref() {
            None | Some("user") => {
                if !parts.is_empty() {
                    messages.push(json!({"role": "user", "content": parts}));
                }
            }
            Some("model") => {
                let text: String = parts.iter().filter_map(|p| p["text"].as_str()).collect();
                let mut message = json!({"role": "assistant", "content": text});
                if !tool_calls.is_empty() {
                    message["tool_calls"] = tool_calls.into();
                }
                messages.push(message);
            }
            Some(other) => {
                return Err(invalid(format!(
                    "Please use a valid role: user, model. Got: {other}"
                )));
            }
        }
    }
    Ok(messages)
}

/// `toolConfig.functionCallingConfig` as a chat `tool_choice`.
fn tool_choice(config: &Map<String, Value>) -> Value {
    let config = camel_keys(config);
    let calling = config
        .get("functionCallingConfig")
        .and_then(Value::as_object)
        .map(camel_keys)
        .unwrap_or_default();
    let allowed = calling
        .get("allowedFunctionNames")
        .and_then(Value::as_array);
    match (
        calling.get("mode").and_then(Value::as_str),
        allowed.map(Vec::as_slice),
    ) {
        (Some("ANY"), Some([only])) => json!({"type": "function", "function": {"name": only}}),
        (Some("ANY"), _) => "required".into(),
        (Some("NONE"), _) => "none".into(),
        _ => "auto".into(),
    }
}

/// `generationConfig` fields Google knows that have no counterpart at Airlock's
/// upstreams: refused by name rather than as unknown.
const UNSUPPORTED_GENERATION_CONFIG: &[&str] = &[
    "responseLogprobs",
    "logprobs",
    "speechConfig",
    "imageConfig",
    "mediaResolution",
    "audioTimestamp",
    "routingConfig",
    "modelSelectionConfig",
    "enableEnhancedCivicAnswers",
    "enableAffectiveDialog",
];

/// `generationConfig` into the chat request: sampling, limits, thinking, and structured
/// output (`responseMimeType: application/json` with a `responseSchema` or a
/// `responseJsonSchema`). What only a Gemini upstream can take is noted in `native`.
fn apply_generation_config(
    config: &Map<String, Value>,
    chat: &mut Value,
    native: &mut Native,
) -> Result<(), Invalid> {
    let config = camel_keys(config);
    for (key, value) in &config {
        if let Some((_, to)) = GENERATION_CONFIG.iter().find(|(from, _)| from == key) {
            chat[*to] = value.clone();
            continue;
        }
        match key.as_str() {
            "responseMimeType" | "responseSchema" | "responseJsonSchema" => {}
            "thinkingConfig" => {
                let (thinking, effort) = native::thinking_config(value)?;
                if let Some(effort) = effort {
                    chat["reasoning_effort"] = effort.into();
                }
                native.thinking_config = Some(thinking);
            }
            "responseModalities" => native::response_modalities(value)?,
            unsupported if UNSUPPORTED_GENERATION_CONFIG.contains(&unsupported) => {
                return Err(invalid(format!(
                    "* GenerateContentRequest.generation_config: `{key}` is not supported \
                     through Airlock"
                )));
            }
            _ => return Err(unknown_field(key, "generation_config")),
        }
    }
    let (schema, field) = match (
        config.get("responseSchema"),
        config.get("responseJsonSchema"),
    ) {
        (Some(_), Some(_)) => {
            return Err(native::exclusive(
                "generation_config",
                "responseSchema",
                "responseJsonSchema",
            ));
        }
        (Some(schema), None) => (
            Some(to_json_schema(schema, "generation_config.response_schema")?),
            "response_schema",
        ),
        (None, Some(schema)) => {
            native.response_json_schema = true;
            let at = "generation_config.response_json_schema";
            (
                Some(native::json_schema(schema, at)?),
                "response_json_schema",
            )
        }
        (None, None) => (None, ""),
    };
    match config.get("responseMimeType").and_then(Value::as_str) {
        None | Some("text/plain") if schema.is_some() => Err(invalid(format!(
            "* GenerateContentRequest.generation_config.response_mime_type: must be application/json when {field} is set"
        ))),
        None | Some("text/plain") => Ok(()),
        Some("application/json") => {
            chat["response_format"] = match schema {
                Some(schema) => {
                    json!({"type": "json_schema", "json_schema": {"name": "response", "schema": schema}})
                }
                None => json!({"type": "json_object"}),
            };
            Ok(())
        }
        Some(other) => Err(invalid(format!(
            "* GenerateContentRequest.generation_config.response_mime_type: allowed mimetypes are `text/plain`, `application/json`; got {other}"
        ))),
    }
}

/// The fields of a `generateContent` request.
const REQUEST_FIELDS: &[&str] = &[
    "contents",
    "systemInstruction",
    "tools",
    "toolConfig",
    "generationConfig",
    "safetySettings",
    "model",
];

/// A Gemini request for `model` (streaming or not) as an OpenAI chat request, tools
/// Google runs itself dropped.
pub fn to_chat(body: &[u8], model: &str, stream: bool) -> Result<ChatCompletionRequest, Invalid> {
    translate(body, model, stream, HostedTools::Drop).map(|(chat, _)| chat)
}

/// A Gemini request for `model` (streaming or not) as an OpenAI chat request, with the
/// tools Google runs itself dropped (and named) or refused, as `hosted` says.
pub fn translate(
    body: &[u8],
    model: &str,
    stream: bool,
    hosted: HostedTools,
) -> Result<(ChatCompletionRequest, DroppedTools), Invalid> {
    let mut fields: Map<String, Value> = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("Invalid JSON payload received. {e}")))?;
    for name in fields.keys() {
        match camel_case(name).as_str() {
            known if REQUEST_FIELDS.contains(&known) => {}
            "cachedContent" => {
                return Err(invalid(
                    "`cachedContent` refers to content stored at Google; Airlock cannot resolve it",
                ));
            }
            _ => return Err(unknown_field(name, "GenerateContentRequest")),
        }
    }
    if let Some(named) = fields.get("model") {
        check_body_model(named, model)?;
    }
    let dropped = take_hosted_tools(fields.get_mut("tools"), hosted)?;
    let request: GenerateContentRequest = serde_json::from_value(Value::Object(fields))
        .map_err(|e| invalid(format!("Invalid JSON payload received. {e}")))?;
    let mut chat = json!({"model": model, "messages": messages(&request)?});
    if stream {
        chat["stream"] = true.into();
    }
    let mut native = Native::default();
    let mut tools = Vec::new();
    for (i, tool) in request.tools.iter().enumerate() {
        for (j, declaration) in tool.function_declarations.iter().enumerate() {
            let at = format!("tools[{i}].function_declarations[{j}]");
            tools.push(chat_tool(declaration, &at, &mut native)?);
        }
    }
    if !tools.is_empty() {
        chat["tools"] = tools.into();
    }
    if let Some(config) = &request.tool_config {
        chat["tool_choice"] = tool_choice(config);
    }
    if let Some(config) = &request.generation_config {
        apply_generation_config(config, &mut chat, &mut native)?;
    }
    let mut chat: ChatCompletionRequest =
        serde_json::from_value(chat).map_err(|e| invalid(e.to_string()))?;
    if !native.is_empty() {
        chat.gemini_native = Some(Box::new(native));
    }
    Ok((chat, dropped))
}

/// A body's `model`, which Google types as a string (`models/NAME`): it must be one,
/// and name the model of the request's path (which is the one routed and judged).
fn check_body_model(named: &Value, path_model: &str) -> Result<(), Invalid> {
    let Some(name) = named.as_str() else {
        let kind = match named {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::Array(_) => "a list",
            Value::Object(_) => "an object",
            Value::String(_) => "a string",
        };
        return Err(invalid(format!(
            "Invalid value at 'model' (TYPE_STRING): expected a model name such as \
             \"models/{path_model}\", got {kind}"
        )));
    };
    if name.strip_prefix("models/").unwrap_or(name) != path_model {
        return Err(invalid(format!(
            "* GenerateContentRequest.model: `{name}` is not the model of the request path \
             (models/{path_model})"
        )));
    }
    Ok(())
}

/// A `countTokens` body (`{"contents": …}` or `{"generateContentRequest": …}`) as the
/// `generateContent` body whose prompt it counts.
pub fn counted_request(body: &[u8]) -> Result<Vec<u8>, Invalid> {
    let request: Map<String, Value> = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("Invalid JSON payload received. {e}")))?;
    let request = camel_keys(&request);
    let generate = match (
        request.get("generateContentRequest"),
        request.get("contents"),
    ) {
        (Some(generate), None) => generate.clone(),
        (None, Some(contents)) => json!({"contents": contents}),
        _ => {
            return Err(invalid(
                "* CountTokensRequest: exactly one of contents and generate_content_request must be set",
            ));
        }
    };
    serde_json::to_vec(&generate).map_err(|e| invalid(e.to_string()))
}

/// Gemini's `finishReason` for a chat `finish_reason`.
fn finish_reason(reason: &str) -> &'static str {
    match reason {
        "length" => "MAX_TOKENS",
        "content_filter" => "SAFETY",
        _ => "STOP",
    }
}

fn usage_metadata(prompt: u64, completion: u64) -> Value {
    json!({"promptTokenCount": prompt, "candidatesTokenCount": completion,
           "totalTokenCount": prompt.saturating_add(completion),
           "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}]})
}

/// A function call as a Gemini part.
fn function_call_part(name: &Value, arguments: &str) -> Value {
    let args: Value = serde_json::from_str(arguments).unwrap_or_else(|_| json!({}));
    json!({"functionCall": {"name": name, "args": args}})
}

/// A chat completion as a Gemini response; `model` is the name the client used.
pub fn from_chat(completion: &Value, model: &str) -> Value {
    let candidates: Vec<Value> = completion["choices"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|choice| {
            let message = &choice["message"];
            let mut parts = Vec::new();
            if let Some(text) = message["content"].as_str().filter(|t| !t.is_empty()) {
                parts.push(json!({"text": text}));
            }
            for call in message["tool_calls"].as_array().into_iter().flatten() {
                let arguments = call["function"]["arguments"].as_str().unwrap_or("{}");
                parts.push(function_call_part(&call["function"]["name"], arguments));
            }
            json!({"content": {"parts": parts, "role": "model"},
                   "finishReason": finish_reason(choice["finish_reason"].as_str().unwrap_or("stop")),
                   "index": choice["index"]})
        })
        .collect();
    let usage = &completion["usage"];
    json!({
        "candidates": candidates,
        "usageMetadata": usage_metadata(usage["prompt_tokens"].as_u64().unwrap_or(0),
                                        usage["completion_tokens"].as_u64().unwrap_or(0)),
        "modelVersion": model,
        "responseId": completion["id"].as_str().unwrap_or("").trim_start_matches("chatcmpl-"),
    })
}

/// A chat stream re-emitted as Gemini's events: text as it comes, function calls whole
/// (Gemini does not stream their arguments), and the finish reasons with the usage on
/// the last event.
#[derive(Debug)]
pub struct GeminiEvents {
    model: String,
    response_id: Option<String>,
    /// Known up front (the simulator), or only from the usage chunk at the end.
    prompt_tokens: Option<u64>,
    /// Per choice: the tool calls gathered so far (name, arguments).
    calls: Vec<Vec<(String, String)>>,
    finishes: Vec<(u64, &'static str)>,
}

/// Choices beyond this index are folded into the last one (hostile indexes).
const MAX_CHOICES: usize = 128;

impl GeminiEvents {
    pub fn new(model: &str, prompt_tokens: Option<u64>) -> Self {
        Self {
            model: model.to_string(),
            response_id: None,
            prompt_tokens,
            calls: Vec::new(),
            finishes: Vec::new(),
        }
    }

    fn event(&self, candidates: Vec<Value>, usage: Option<Value>, out: &mut BytesMut) {
        let mut event = json!({"candidates": candidates, "modelVersion": self.model,
                               "responseId": self.response_id});
        if let Some(usage) = usage {
            event["usageMetadata"] = usage;
        }
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(event.to_string().as_bytes());
        out.extend_from_slice(b"\r\n\r\n");
    }

    /// The usage on events before the last: the prompt's size, when known.
    fn prompt_usage(&self) -> Option<Value> {
        self.prompt_tokens
            .map(|p| json!({"promptTokenCount": p, "totalTokenCount": p}))
    }

    fn calls_of(&mut self, index: u64) -> &mut Vec<(String, String)> {
        let index = usize::try_from(index).unwrap_or(0).min(MAX_CHOICES);
        if self.calls.len() <= index {
            self.calls.resize_with(index + 1, Vec::new);
        }
        &mut self.calls[index]
    }

    fn rewrite(&mut self, chunk: &Chunk<'_>, out: &mut BytesMut) {
        if self.response_id.is_none() {
            let id = chunk.id.as_deref().unwrap_or("");
            self.response_id = Some(id.trim_start_matches("chatcmpl-").to_string());
        }
        for choice in &chunk.choices {
            let index = choice.index;
            for call in &choice.delta.tool_calls {
                let fragment = call.function.arguments.as_deref().unwrap_or("");
                let calls = self.calls_of(index);
                match call.function.name.as_deref() {
                    Some(name) => calls.push((name.to_string(), fragment.to_string())),
                    None => {
                        if let Some(last) = calls.last_mut() {
                            last.1.push_str(fragment);
                        }
                    }
                }
            }
            if let Some(text) = choice.delta.content.as_deref().filter(|t| !t.is_empty()) {
                self.text_event(index, text, out);
            }
            if let Some(reason) = choice.finish_reason.as_deref() {
                self.finishes.push((index, finish_reason(reason)));
            }
        }
        if let Some(usage) = chunk.usage {
            self.prompt_tokens = Some(usage.prompt_tokens);
            let metadata = usage_metadata(usage.prompt_tokens, usage.completion_tokens);
            self.finish_candidates(Some(metadata), out);
        }
    }

    /// An event adding `text` to candidate `index`, written directly (the hottest event).
    fn text_event(&self, index: u64, text: &str, out: &mut BytesMut) {
        let usage = match self.prompt_tokens {
            Some(p) => {
                format!(",\"usageMetadata\":{{\"promptTokenCount\":{p},\"totalTokenCount\":{p}}}")
            }
            None => String::new(),
        };
        let event = format!(
            "{{\"candidates\":[{{\"content\":{{\"parts\":[{{\"text\":{}}}],\"role\":\"model\"}},\"index\":{index}}}],\"modelVersion\":{},\"responseId\":{}{usage}}}",
            json_string(text),
            json_string(&self.model),
            json_string(self.response_id.as_deref().unwrap_or(""))
        );
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(event.as_bytes());
        out.extend_from_slice(b"\r\n\r\n");
    }

    /// The last event: each finished candidate's function calls and finish reason.
    fn finish_candidates(&mut self, usage: Option<Value>, out: &mut BytesMut) {
        let finishes = std::mem::take(&mut self.finishes);
        let candidates = finishes
            .iter()
            .map(|&(index, reason)| {
                let parts: Vec<Value> = self
                    .calls_of(index)
                    .iter()
                    .map(|(name, arguments)| function_call_part(&name.as_str().into(), arguments))
                    .collect();
                let parts = if parts.is_empty() {
                    vec![json!({"text": ""})]
                } else {
                    parts
                };
                json!({"content": {"parts": parts, "role": "model"}, "finishReason": reason, "index": index})
            })
            .collect();
        self.event(candidates, usage, out);
    }
}

impl ClientEvents for GeminiEvents {
    fn on_chunk(&mut self, chunk: &Chunk<'_>, out: &mut BytesMut) {
        match chunk.error.as_ref().and_then(|e| e["message"].as_str()) {
            // An upstream's mid-stream error event, in Google's shape.
            Some(message) => self.error(message, out),
            None => self.rewrite(chunk, out),
        }
    }

    fn finish(&mut self, out: &mut BytesMut) {
        if !self.finishes.is_empty() {
            self.finish_candidates(self.prompt_usage(), out);
        }
    }

    fn error(&mut self, message: &str, out: &mut BytesMut) {
        let error = error_json(500, message);
        out.extend_from_slice(format!("data: {error}\r\n\r\n").as_bytes());
    }
}
