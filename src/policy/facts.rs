//! What a policy sees of one request or response: identity, route, sizes, findings, text.

use super::source::EndpointKind;
use serde::Deserialize;
use serde_json::Value;
use std::borrow::Cow;
use std::collections::BTreeMap;

/// Which side of the exchange is being judged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    #[default]
    Request,
    Response,
}

/// Everything a rule may look at. Owned (policy tests and dry runs build it from YAML
/// and audit records); the gateway fills it per request with cheap clones.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Facts {
    #[serde(default)]
    pub phase: Phase,
    #[serde(default)]
    pub tenant: String,
    #[serde(default)]
    pub team: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub key: String,
    #[serde(default = "llm")]
    pub endpoint: EndpointKind,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub provider: Option<String>,
    /// Data classes found, with counts.
    #[serde(default)]
    pub data_classes: BTreeMap<String, u64>,
    /// Prompt tokens (estimated on the request side).
    #[serde(default)]
    pub prompt_tokens: u64,
    /// Completion tokens asked for (request) or produced (response).
    #[serde(default)]
    pub completion_tokens: u64,
    /// Estimated (request) or metered (response) cost, when pricing knows it.
    #[serde(default)]
    pub cost_usd: Option<f64>,
    /// When, in milliseconds since the Unix epoch (default: now).
    #[serde(default = "crate::store::now_unix_ms")]
    pub time_ms: i64,
    /// Request headers, names lower-case.
    #[serde(default, deserialize_with = "lower_case_keys")]
    pub headers: BTreeMap<String, String>,
    /// The prompt's text (request) or the answer's (response).
    #[serde(default)]
    pub content: String,
    #[serde(default)]
    pub mcp: Option<McpFacts>,
}

fn llm() -> EndpointKind {
    EndpointKind::Llm
}

fn lower_case_keys<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    let raw = BTreeMap::<String, String>::deserialize(d)?;
    Ok(raw
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect())
}

/// The MCP call being judged.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpFacts {
    #[serde(default)]
    pub server: String,
    #[serde(default)]
    pub tool: String,
    #[serde(default)]
    pub arguments: Value,
}

impl Default for Facts {
    fn default() -> Self {
        Self {
            phase: Phase::Request,
            tenant: String::new(),
            team: None,
            user: None,
            key: String::new(),
            endpoint: EndpointKind::Llm,
            model: String::new(),
            provider: None,
            data_classes: BTreeMap::new(),
            prompt_tokens: 0,
            completion_tokens: 0,
            cost_usd: None,
            time_ms: crate::store::now_unix_ms(),
            headers: BTreeMap::new(),
            content: String::new(),
            mcp: None,
        }
    }
}

/// The value at a JSON path (`$`, `$.a.b`, `$.list[2].name`, `$['odd key']`) of `root`.
pub fn json_path<'v>(root: &'v Value, path: &str) -> Option<&'v Value> {
    let mut rest = path.strip_prefix('$')?;
    let mut at = root;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            at = at.get(&after[..end])?;
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix("['") {
            let end = after.find("']")?;
            at = at.get(&after[..end])?;
            rest = &after[end + 2..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let end = after.find(']')?;
            let index: usize = after[..end].trim().parse().ok()?;
            at = at.get(index)?;
            rest = &after[end + 1..];
        } else {
            return None;
        }
    }
    Some(at)
}

/// Whether `path` is a JSON path [`json_path`] understands.
pub fn valid_json_path(path: &str) -> bool {
    let Some(mut rest) = path.strip_prefix('$') else {
        return false;
    };
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            if end == 0 {
                return false;
            }
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix("['") {
            let Some(end) = after.find("']") else {
                return false;
            };
            rest = &after[end + 2..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let Some(end) = after.find(']') else {
                return false;
            };
            if after[..end].trim().parse::<usize>().is_err() {
                return false;
            }
            rest = &after[end + 1..];
        } else {
            return false;
        }
    }
    true
}

/// A JSON value as the text globs match: strings as they are, others as JSON.
pub fn value_text(value: &Value) -> Cow<'_, str> {
    match value {
        Value::String(s) => Cow::Borrowed(s),
        other => Cow::Owned(other.to_string()),
    }
}

/// The text of prompt or answer values: strings as they are; in objects, the `text`,
/// `content`, `parts`, `message` and `delta` members (chat parts, Anthropic blocks,
/// Gemini parts, OpenAI choices and stream chunks); pieces joined by newlines.
pub fn chat_text<'a>(values: impl Iterator<Item = &'a Value>) -> String {
    let mut text = String::new();
    for value in values {
        push_text(value, &mut text);
    }
    text
}

/// The prompt of a request body as a client sent it, whatever its format (OpenAI chat,
/// completions and Responses, Anthropic messages, Gemini contents).
pub fn request_text(body: &Value) -> String {
    const KEYS: [&str; 6] = [
        "system",
        "instructions",
        "prompt",
        "input",
        "messages",
        "contents",
    ];
    chat_text(KEYS.iter().filter_map(|k| body.get(*k)))
}

/// The answer of a response body (OpenAI choices, Anthropic content, Gemini candidates,
/// Responses output).
pub fn response_text(body: &Value) -> String {
    chat_text(ANSWER_KEYS.iter().filter_map(|k| body.get(*k)))
}

/// The members of a response body that hold its answer.
const ANSWER_KEYS: [&str; 4] = ["choices", "content", "candidates", "output"];

/// The answer's text strings ([`response_text`] reads them), to rewrite in place.
pub fn response_texts_mut(body: &mut Value) -> Vec<&mut String> {
    let mut texts = Vec::new();
    if let Some(object) = body.as_object_mut() {
        for (key, value) in object.iter_mut() {
            if ANSWER_KEYS.contains(&key.as_str()) {
                texts_mut(value, &mut texts);
            }
        }
    }
    texts
}

/// The keys of an object whose values hold text (see [`chat_text`]).
const TEXT_KEYS: [&str; 5] = ["text", "content", "parts", "message", "delta"];

/// Every text string [`chat_text`] would read, for rewriting in place (personal data
/// redaction, placeholder restoration).
pub fn texts_mut<'a>(value: &'a mut Value, out: &mut Vec<&'a mut String>) {
    match value {
        Value::String(s) => out.push(s),
        Value::Array(items) => items.iter_mut().for_each(|item| texts_mut(item, out)),
        Value::Object(object) => {
            for (key, inner) in object.iter_mut() {
                if TEXT_KEYS.contains(&key.as_str()) {
                    texts_mut(inner, out);
                }
            }
        }
        _ => {}
    }
}

fn push_text(value: &Value, out: &mut String) {
    match value {
        Value::String(s) => {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(s);
        }
        Value::Array(items) => items.iter().for_each(|item| push_text(item, out)),
        Value::Object(object) => {
            for key in TEXT_KEYS {
                if let Some(inner) = object.get(key) {
                    push_text(inner, out);
                }
            }
        }
        _ => {}
    }
}
