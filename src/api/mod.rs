//! Wire types of the formats clients speak, and the translations between them and the
//! formats upstreams speak.

pub mod anthropic;
pub mod chunk;
pub mod gemini;
pub mod hosted;
pub mod openai;
pub mod responses;

use bytes::BytesMut;
use chunk::ChunkOut;
use serde_json::{Value, json};

/// Writes a client's own stream format from the OpenAI chat chunks of a stream.
pub trait ClientEvents: Send + std::fmt::Debug {
    /// Appends the events for one chunk.
    fn on_chunk(&mut self, chunk: &chunk::Chunk<'_>, out: &mut BytesMut);
    /// Appends what ends a stream that ended cleanly (`[DONE]`).
    fn finish(&mut self, out: &mut BytesMut);
    /// Appends what ends a stream that failed after it started.
    fn error(&mut self, message: &str, out: &mut BytesMut);
}

/// Appends one named event, `event: TYPE` (from the data's `type`) and its JSON data.
pub(crate) fn emit_event(out: &mut BytesMut, data: &Value) {
    let kind = data["type"].as_str().unwrap_or("error");
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    out.extend_from_slice(data.to_string().as_bytes());
    out.extend_from_slice(b"\n\n");
}

/// Rewrites an upstream's stream events, one at a time, as OpenAI chat chunks.
pub trait UpstreamEvents: Send + std::fmt::Debug {
    /// What one event's data becomes; `Err` (with a detail for the log) when it is not
    /// an event of the upstream's format.
    fn on_event(&mut self, data: &[u8]) -> Result<Vec<ChunkOut>, String>;

    /// What follows once the upstream's stream ended, for formats without an end marker
    /// of their own; without a [`ChunkOut::Done`] the stream counts as cut short.
    fn on_end(&mut self) -> Vec<ChunkOut> {
        Vec::new()
    }
}

/// A request that cannot be sent as asked, in words for the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

pub(crate) fn invalid(message: impl Into<String>) -> Invalid {
    Invalid(message.into())
}

/// The text of a message content: a string, or its parts' `text`.
pub(crate) fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    }
}

/// A system message that comes after the conversation started, as text inside a user
/// turn, for upstreams that take a system prompt only ahead of the conversation
/// (Anthropic, Gemini): marked as Claude Code marks the notes it adds to user turns, so
/// the model reads it as the system's words, not the user's.
pub(crate) fn system_note(text: &str) -> String {
    format!("<system-reminder>\n{text}\n</system-reminder>")
}

/// A tool call's JSON-text arguments as an object (`{}` if they are not a JSON object).
pub fn tool_input(arguments: &str) -> Value {
    match serde_json::from_str::<Value>(arguments) {
        Ok(Value::Object(input)) => Value::Object(input),
        _ => json!({}),
    }
}

/// The JSON Schema an OpenAI `response_format` asks the answer to follow: `None` for
/// plain text, `{"type": "object"}` for `json_object`.
pub(crate) fn response_schema(format: &Value) -> Result<Option<Value>, Invalid> {
    match format["type"].as_str() {
        None | Some("text") => Ok(None),
        Some("json_object") => Ok(Some(json!({"type": "object"}))),
        Some("json_schema") => {
            let schema = &format["json_schema"]["schema"];
            if !schema.is_object() {
                return Err(invalid(
                    "`response_format.json_schema.schema` must be an object",
                ));
            }
            Ok(Some(schema.clone()))
        }
        Some(other) => Err(invalid(format!(
            "response_format `{other}` is not supported"
        ))),
    }
}

/// The data of each named event a `ClientEvents` writer produced for `chunks` (then
/// `finish`), checking each event's name against its data's `type`.
#[cfg(test)]
pub(crate) fn written_events(mut events: impl ClientEvents, chunks: &[Value]) -> Vec<Value> {
    let mut out = BytesMut::new();
    for chunk in chunks {
        let text = chunk.to_string();
        let typed: chunk::Chunk<'_> = serde_json::from_str(&text).unwrap_or_default();
        events.on_chunk(&typed, &mut out);
    }
    events.finish(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    text.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            let (name, data) = e.split_once('\n').unwrap_or_default();
            let data: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap_or_default())
                .unwrap_or_default();
            assert_eq!(name.strip_prefix("event: "), data["type"].as_str());
            data
        })
        .collect()
}
