//! `--flavor gemini`: Google's Gemini API (`POST /v1beta/models/NAME:generateContent`,
//! `:streamGenerateContent?alt=sse`, `GET /v1beta/models`) in front of the same simulated
//! model. Requests are checked as Google checks them (unknown fields and `Schema`
//! keywords refused, objects without properties refused), become chat requests, and the
//! answers go back in Gemini's shapes; the official `google-genai` SDK reads them in the
//! interop tests.

use super::body::MockBody;
use super::translated::{Answer, read_answer};
use crate::api::ClientEvents;
use bytes::BytesMut;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// The tool a JSON answer is simulated through (its arguments become the text).
const STRUCTURED_TOOL: &str = "mock_structured_output";

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

/// Google's status name for an HTTP status.
fn status_name(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "INTERNAL",
    }
}

fn error_json(status: StatusCode, message: &str) -> Value {
    json!({"error": {"code": status.as_u16(), "message": message, "status": status_name(status)}})
}

/// Google's error answer.
pub fn error(status: StatusCode, message: &str) -> Response<MockBody> {
    json_response(status, &error_json(status, message))
}

fn json_response(status: StatusCode, body: &Value) -> Response<MockBody> {
    let mut response = Response::new(MockBody::full(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    response
}

/// Checks the key (`x-goog-api-key`, or `?key=`) as Google does; the refusal, if any
/// (missing is 403, wrong is 400).
pub fn key_refusal(
    api_key: Option<&str>,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Option<Response<MockBody>> {
    let expected = api_key?;
    let from_query = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| pair.strip_prefix("key="));
    let given = headers
        .get("x-goog-api-key")
        .and_then(|v| v.to_str().ok())
        .or(from_query);
    match given {
        None => Some(error(
            StatusCode::FORBIDDEN,
            "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
        )),
        Some(key) if key == expected => None,
        Some(_) => Some(error(
            StatusCode::BAD_REQUEST,
            "API key not valid. Please pass a valid API key.",
        )),
    }
}

/// What a path below `/v1beta` asks for.
pub enum Call<'a> {
    ListModels,
    GetModel(&'a str),
    Generate { model: &'a str, stream: bool },
    CountTokens(&'a str),
}

/// Reads `/v1beta/models[/NAME[:METHOD]]`; `None` for anything else.
pub fn parse_path(path: &str) -> Option<Call<'_>> {
    let rest = path
        .strip_prefix("/v1beta/models")
        .or_else(|| path.strip_prefix("/v1/models"))?;
    if rest.is_empty() {
        return Some(Call::ListModels);
    }
    let name = rest.strip_prefix('/')?;
    match name.split_once(':') {
        None => Some(Call::GetModel(name)),
        Some((model, "generateContent")) => Some(Call::Generate {
            model,
            stream: false,
        }),
        Some((model, "streamGenerateContent")) => Some(Call::Generate {
            model,
            stream: true,
        }),
        Some((model, "countTokens")) => Some(Call::CountTokens(model)),
        Some(_) => None,
    }
}

/// One model as `GET /v1beta/models` lists it.
pub fn model_json(name: &str) -> Value {
    json!({"name": format!("models/{name}"), "version": "001", "displayName": name,
           "inputTokenLimit": 1_048_576, "outputTokenLimit": 65_536,
           "supportedGenerationMethods": ["generateContent", "countTokens"]})
}

pub fn list_models(models: &[String]) -> Response<MockBody> {
    let listed: Vec<Value> = models.iter().map(|m| model_json(m)).collect();
    json_response(StatusCode::OK, &json!({"models": listed}))
}

pub fn get_model(models: &[String], name: &str) -> Response<MockBody> {
    match models.iter().find(|m| m.as_str() == name) {
        Some(model) => json_response(StatusCode::OK, &model_json(model)),
        None => not_found(name),
    }
}

pub fn not_found(model: &str) -> Response<MockBody> {
    error(
        StatusCode::NOT_FOUND,
        &format!(
            "models/{model} is not found for API version v1beta, or is not supported for generateContent."
        ),
    )
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
    tool_config: Option<Value>,
    #[serde(default, alias = "generation_config")]
    generation_config: Option<Map<String, Value>>,
    /// Accepted; the simulator generates nothing to filter.
    #[serde(default, rename = "safetySettings", alias = "safety_settings")]
    _safety_settings: Option<serde::de::IgnoredAny>,
    /// Set inside a `countTokens` request's `generateContentRequest`.
    #[serde(default, rename = "model")]
    _model: Option<serde::de::IgnoredAny>,
    /// The simulator's fault hook, as in the other flavors.
    #[serde(default, rename = "mock_fault")]
    mock_fault: Option<Value>,
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
    #[serde(default)]
    parameters: Option<Value>,
}

/// The fields of `generationConfig`; the simulator reads a few, accepts them all.
const GENERATION_CONFIG_FIELDS: &[&str] = &[
    "temperature",
    "topP",
    "topK",
    "candidateCount",
    "maxOutputTokens",
    "stopSequences",
    "presencePenalty",
    "frequencyPenalty",
    "seed",
    "responseMimeType",
    "responseSchema",
    "thinkingConfig",
];

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
fn camel_keys(object: &Map<String, Value>) -> Map<String, Value> {
    object
        .iter()
        .map(|(k, v)| (camel_case(k), v.clone()))
        .collect()
}

/// Google's words for a field it does not know.
fn unknown_field(name: &str, at: &str) -> String {
    format!("Invalid JSON payload received. Unknown name \"{name}\" at '{at}': Cannot find field.")
}

/// Checks a `Schema` object as Gemini does, and returns it as JSON Schema (lowercase
/// types) for the simulator's argument generator.
fn check_schema(schema: &Value, at: &str) -> Result<Value, String> {
    let Some(object) = schema.as_object().map(camel_keys) else {
        return Err(format!(
            "Invalid value at '{at}': a Schema must be an object"
        ));
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
                _ => return Err(format!("Invalid value at '{at}.type', {value}")),
            },
            "properties" => {
                let mut properties = Map::new();
                for (name, property) in value.as_object().into_iter().flatten() {
                    properties.insert(
                        name.clone(),
                        check_schema(property, &format!("{at}.properties[{name}].value"))?,
                    );
                }
                Value::Object(properties)
            }
            "items" => check_schema(value, &format!("{at}.items"))?,
            "anyOf" => Value::Array(
                value
                    .as_array()
                    .into_iter()
                    .flatten()
                    .enumerate()
                    .map(|(i, s)| check_schema(s, &format!("{at}.any_of[{i}]")))
                    .collect::<Result<_, _>>()?,
            ),
            _ => value.clone(),
        };
        out.insert(key.clone(), converted);
    }
    if out.get("type").and_then(Value::as_str) == Some("object")
        && out
            .get("properties")
            .and_then(Value::as_object)
            .is_none_or(Map::is_empty)
    {
        return Err(format!(
            "* {at}.properties: should be non-empty for OBJECT type"
        ));
    }
    Ok(Value::Object(out))
}

/// What the simulated chat answer must become.
pub struct Translated {
    /// The chat request to simulate.
    pub chat: Vec<u8>,
    /// The answer is JSON text, simulated through the structured-output tool.
    pub structured: bool,
    /// The prompt's size, which Gemini reports on every event of a stream.
    pub prompt_tokens: u64,
}

/// One part of a user or model turn, as a chat content part or tool call.
fn chat_part(part: &Map<String, Value>, at: &str) -> Result<Value, String> {
    if let Some(text) = part.get("text").and_then(Value::as_str) {
        return Ok(json!({"type": "text", "text": text}));
    }
    if let Some(data) = part.get("inlineData") {
        let url = format!(
            "data:{};base64,{}",
            data["mimeType"].as_str().unwrap_or(""),
            data["data"].as_str().unwrap_or("")
        );
        return Ok(json!({"type": "image_url", "image_url": {"url": url}}));
    }
    if let Some(file) = part.get("fileData") {
        return Ok(json!({"type": "image_url", "image_url": {"url": file["fileUri"]}}));
    }
    match part.keys().next() {
        Some(name) => Err(unknown_field(name, at)),
        None => Err(format!(
            "* {at}: required oneof field 'data' must have one initialized field"
        )),
    }
}

/// A Gemini request (for `model`, streaming or not) as the chat request to simulate.
pub fn to_chat(body: &[u8], model: &str, stream: bool) -> Result<Translated, String> {
    let request: GenerateContentRequest =
        serde_json::from_slice(body).map_err(|e| format!("Invalid JSON payload received. {e}"))?;
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
        return Err("* GenerateContentRequest.contents: contents is not specified".into());
    }
    let mut call_count = 0;
    for (i, content) in request.contents.iter().enumerate() {
        if content.parts.is_empty() {
            return Err(format!(
                "* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty."
            ));
        }
        let mut parts = Vec::new();
        let mut calls = Vec::new();
        for (j, part) in content.parts.iter().enumerate() {
            let at = format!("contents[{i}].parts[{j}]");
            let part = &camel_keys(part);
            if let Some(call) = part.get("functionCall") {
                call_count += 1;
                calls.push(json!({"id": format!("call_{call_count}"), "type": "function",
                    "function": {"name": call["name"], "arguments": call.get("args").unwrap_or(&json!({})).to_string()}}));
            } else if let Some(response) = part.get("functionResponse") {
                messages.push(json!({"role": "tool", "tool_call_id": response["name"],
                                     "content": response["response"].to_string()}));
            } else {
                parts.push(chat_part(part, &at)?);
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
                if !calls.is_empty() {
                    message["tool_calls"] = calls.into();
                }
                messages.push(message);
            }
            Some(other) => {
                return Err(format!(
                    "Please use a valid role: user, model. Got: {other}"
                ));
            }
        }
    }
    let prompt_tokens = super::chat::prompt_stats(&messages).map_or(0, |stats| stats.tokens);
    let mut chat = json!({"model": model, "messages": messages});
    if stream {
        chat["stream"] = true.into();
        chat["stream_options"] = json!({"include_usage": true});
    }
    let mut tools = Vec::new();
    for (i, tool) in request.tools.iter().enumerate() {
        for (j, declaration) in tool.function_declarations.iter().enumerate() {
            let mut function =
                json!({"name": declaration.name, "description": declaration.description});
            if let Some(parameters) = &declaration.parameters {
                let at = format!("tools[{i}].function_declarations[{j}].parameters");
                function["parameters"] = check_schema(parameters, &at)?;
            }
            tools.push(json!({"type": "function", "function": function}));
        }
    }
    if !tools.is_empty() {
        chat["tools"] = tools.into();
    }
    if let Some(config) = request.tool_config.as_ref().and_then(Value::as_object) {
        let config = camel_keys(config);
        let calling = config
            .get("functionCallingConfig")
            .and_then(Value::as_object)
            .map(camel_keys)
            .unwrap_or_default();
        let allowed = calling
            .get("allowedFunctionNames")
            .and_then(Value::as_array);
        let mode = calling.get("mode").and_then(Value::as_str);
        chat["tool_choice"] = match (mode, allowed.map(Vec::as_slice)) {
            (Some("ANY"), Some([only])) => json!({"type": "function", "function": {"name": only}}),
            (Some("ANY"), _) => "required".into(),
            (Some("NONE"), _) => "none".into(),
            _ => "auto".into(),
        };
    }
    let config = camel_keys(&request.generation_config.unwrap_or_default());
    if let Some(unknown) = config
        .keys()
        .find(|k| !GENERATION_CONFIG_FIELDS.contains(&k.as_str()))
    {
        return Err(unknown_field(unknown, "generation_config"));
    }
    if let Some(max) = config.get("maxOutputTokens") {
        chat["max_tokens"] = max.clone();
    }
    if let Some(n) = config.get("candidateCount") {
        chat["n"] = n.clone();
    }
    let response_schema = config.get("responseSchema");
    let structured = match config.get("responseMimeType").and_then(Value::as_str) {
        None | Some("text/plain") => {
            if response_schema.is_some() {
                return Err("* GenerateContentRequest.generation_config.response_mime_type: must be application/json when response_schema is set".into());
            }
            false
        }
        Some("application/json") => {
            let schema = match response_schema {
                Some(schema) => check_schema(schema, "generation_config.response_schema")?,
                None => json!({"type": "object"}),
            };
            chat["tools"] = json!([{"type": "function", "function": {"name": STRUCTURED_TOOL, "parameters": schema}}]);
            chat["tool_choice"] =
                json!({"type": "function", "function": {"name": STRUCTURED_TOOL}});
            true
        }
        Some(other) => {
            return Err(format!(
                "* GenerateContentRequest.generation_config.response_mime_type: allowed mimetypes are `text/plain`, `application/json`; got {other}"
            ));
        }
    };
    if let Some(fault) = request.mock_fault {
        chat["mock_fault"] = fault;
    }
    let chat = serde_json::to_vec(&chat).map_err(|e| e.to_string())?;
    Ok(Translated {
        chat,
        structured,
        prompt_tokens,
    })
}

/// `countTokens`: the prompt tokens of `{"contents": …}` or of a whole
/// `{"generateContentRequest": …}`, counted as `generateContent` counts them.
pub fn count_tokens(body: &[u8], model: &str) -> Result<Value, String> {
    let request: Map<String, Value> =
        serde_json::from_slice(body).map_err(|e| format!("Invalid JSON payload received. {e}"))?;
    let request = camel_keys(&request);
    let generate = match (
        request.get("generateContentRequest"),
        request.get("contents"),
    ) {
        (Some(generate), None) => generate.clone(),
        (None, Some(contents)) => json!({"contents": contents}),
        _ => {
            return Err(
                "* CountTokensRequest: exactly one of contents and generate_content_request must be set"
                    .into(),
            );
        }
    };
    let body = serde_json::to_vec(&generate).map_err(|e| e.to_string())?;
    let translated = to_chat(&body, model, false)?;
    let tokens = translated.prompt_tokens;
    Ok(
        json!({"totalTokens": tokens, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": tokens}]}),
    )
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
           "totalTokenCount": prompt + completion,
           "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}]})
}

/// A chat message's answer as Gemini parts (a structured answer as its JSON text).
fn answer_parts(message: &Value, structured: bool) -> Vec<Value> {
    let mut parts = Vec::new();
    if let Some(text) = message["content"].as_str().filter(|t| !t.is_empty()) {
        parts.push(json!({"text": text}));
    }
    for call in message["tool_calls"].as_array().into_iter().flatten() {
        let arguments = call["function"]["arguments"].as_str().unwrap_or("{}");
        if structured {
            parts.push(json!({"text": arguments}));
        } else {
            let args: Value = serde_json::from_str(arguments).unwrap_or_else(|_| json!({}));
            parts.push(json!({"functionCall": {"name": call["function"]["name"], "args": args}}));
        }
    }
    parts
}

/// Turns the simulated chat answer into Gemini's: an error, a response, or a stream.
pub async fn from_chat(
    answer: Response<MockBody>,
    model: &str,
    translated: &Translated,
) -> Response<MockBody> {
    let structured = translated.structured;
    let rewriter = || -> Box<dyn ClientEvents> { Box::new(GeminiEvents::new(model, translated)) };
    let bytes = match read_answer(answer, rewriter, error).await {
        Answer::Done(response) => return response,
        Answer::Whole(bytes) => bytes,
    };
    let completion: Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let candidates: Vec<Value> = completion["choices"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|choice| {
            json!({"content": {"parts": answer_parts(&choice["message"], structured), "role": "model"},
                   "finishReason": finish_reason(choice["finish_reason"].as_str().unwrap_or("stop")),
                   "index": choice["index"]})
        })
        .collect();
    let usage = &completion["usage"];
    json_response(
        StatusCode::OK,
        &json!({
            "candidates": candidates,
            "usageMetadata": usage_metadata(usage["prompt_tokens"].as_u64().unwrap_or(0),
                                            usage["completion_tokens"].as_u64().unwrap_or(0)),
            "modelVersion": model,
            "responseId": completion["id"].as_str().unwrap_or("").trim_start_matches("chatcmpl-"),
        }),
    )
}

/// A simulated chat stream re-emitted as Gemini's events: text as it comes, function
/// calls whole (Gemini does not stream their arguments), and the finish reasons with
/// the usage on the last event.
#[derive(Debug)]
pub struct GeminiEvents {
    model: String,
    structured: bool,
    response_id: Option<String>,
    prompt_tokens: u64,
    /// Per choice: the tool calls gathered so far (name, arguments) and its finish.
    calls: Vec<Vec<(String, String)>>,
    finishes: Vec<(u64, &'static str)>,
}

impl GeminiEvents {
    fn new(model: &str, translated: &Translated) -> Self {
        Self {
            model: model.to_string(),
            structured: translated.structured,
            response_id: None,
            prompt_tokens: translated.prompt_tokens,
            calls: Vec::new(),
            finishes: Vec::new(),
        }
    }

    fn event(&self, candidates: Vec<Value>, usage: Value, out: &mut BytesMut) {
        let event = json!({"candidates": candidates, "usageMetadata": usage,
                           "modelVersion": self.model, "responseId": self.response_id});
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(event.to_string().as_bytes());
        out.extend_from_slice(b"\r\n\r\n");
    }

    fn calls_of(&mut self, index: usize) -> &mut Vec<(String, String)> {
        if self.calls.len() <= index {
            self.calls.resize_with(index + 1, Vec::new);
        }
        &mut self.calls[index]
    }

    /// One chat chunk's worth of Gemini events.
    fn rewrite(&mut self, chunk: &Value, out: &mut BytesMut) {
        if self.response_id.is_none() {
            let id = chunk["id"]
                .as_str()
                .unwrap_or("")
                .trim_start_matches("chatcmpl-");
            self.response_id = Some(id.to_string());
        }
        for choice in chunk["choices"].as_array().into_iter().flatten() {
            let index = choice["index"].as_u64().unwrap_or(0);
            let delta = &choice["delta"];
            let slot = usize::try_from(index).unwrap_or(0).min(255);
            for call in delta["tool_calls"].as_array().into_iter().flatten() {
                let fragment = call["function"]["arguments"].as_str().unwrap_or("");
                let calls = self.calls_of(slot);
                match call["function"]["name"].as_str() {
                    Some(name) => calls.push((name.to_string(), fragment.to_string())),
                    None => {
                        if let Some(last) = calls.last_mut() {
                            last.1.push_str(fragment);
                        }
                    }
                }
                // A structured answer streams as text, like Gemini's JSON mode.
                if self.structured && !fragment.is_empty() {
                    let part = json!({"content": {"parts": [{"text": fragment}], "role": "model"}, "index": index});
                    self.event(vec![part], self.prompt_usage(), out);
                }
            }
            if let Some(text) = delta["content"].as_str().filter(|t| !t.is_empty()) {
                let part = json!({"content": {"parts": [{"text": text}], "role": "model"}, "index": index});
                self.event(vec![part], self.prompt_usage(), out);
            }
            if let Some(reason) = choice["finish_reason"].as_str() {
                self.finishes.push((index, finish_reason(reason)));
            }
        }
        if let Some(usage) = chunk["usage"].as_object() {
            self.prompt_tokens = usage
                .get("prompt_tokens")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            let completion = usage
                .get("completion_tokens")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            self.finish_candidates(usage_metadata(self.prompt_tokens, completion), out);
        }
    }

    fn prompt_usage(&self) -> Value {
        json!({"promptTokenCount": self.prompt_tokens, "totalTokenCount": self.prompt_tokens})
    }

    /// The last event: each finished candidate's function calls and finish reason.
    fn finish_candidates(&mut self, usage: Value, out: &mut BytesMut) {
        let finishes = std::mem::take(&mut self.finishes);
        let structured = self.structured;
        let candidates = finishes
            .iter()
            .map(|&(index, reason)| {
                let calls = self.calls_of(usize::try_from(index).unwrap_or(0).min(255));
                let parts: Vec<Value> = if structured {
                    Vec::new()
                } else {
                    calls
                        .iter()
                        .map(|(name, arguments)| {
                            let args: Value = serde_json::from_str(arguments).unwrap_or_else(|_| json!({}));
                            json!({"functionCall": {"name": name, "args": args}})
                        })
                        .collect()
                };
                let mut candidate = json!({"finishReason": reason, "index": index});
                candidate["content"] = json!({"parts": if parts.is_empty() { vec![json!({"text": ""})] } else { parts }, "role": "model"});
                candidate
            })
            .collect();
        self.event(candidates, usage, out);
    }
}

impl ClientEvents for GeminiEvents {
    fn on_chunk(&mut self, chunk: &Value, out: &mut BytesMut) {
        match chunk["error"]["message"].as_str() {
            // vLLM's mid-stream error event, in Google's shape.
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
        let error = error_json(StatusCode::INTERNAL_SERVER_ERROR, message);
        out.extend_from_slice(format!("data: {error}\r\n\r\n").as_bytes());
    }
}
