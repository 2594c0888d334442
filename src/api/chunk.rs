//! OpenAI chat chunks without JSON trees: written straight to text by the upstream
//! translators (the fields every chunk of a stream repeats rendered once), and read into
//! borrowed typed fields by the client-format writers.

use super::openai::Usage;
use serde::Deserialize;
use serde_json::Value;
use std::borrow::Cow;

/// An OpenAI chat chunk as the client-format writers read it.
#[derive(Debug, Default, Deserialize)]
pub struct Chunk<'a> {
    #[serde(default, borrow)]
    pub id: Option<Cow<'a, str>>,
    #[serde(default)]
    pub created: Option<i64>,
    #[serde(default, borrow)]
    pub choices: Vec<ChoiceDelta<'a>>,
    #[serde(default)]
    pub usage: Option<ChunkUsage>,
    #[serde(default)]
    pub error: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ChoiceDelta<'a> {
    #[serde(default)]
    pub index: u64,
    #[serde(default, borrow)]
    pub delta: Delta<'a>,
    #[serde(default, borrow)]
    pub finish_reason: Option<Cow<'a, str>>,
    /// vLLM's: the stop string or token that ended the choice.
    #[serde(default)]
    pub stop_reason: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Delta<'a> {
    #[serde(default, borrow)]
    pub content: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub tool_calls: Vec<ToolCallDelta<'a>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ToolCallDelta<'a> {
    #[serde(default)]
    pub index: u64,
    #[serde(default, borrow)]
    pub id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub function: FunctionDelta<'a>,
}

#[derive(Debug, Default, Deserialize)]
pub struct FunctionDelta<'a> {
    #[serde(default, borrow)]
    pub name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub arguments: Option<Cow<'a, str>>,
}

/// A chunk's usage, with the details some clients report.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct ChunkUsage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    #[serde(default)]
    pub prompt_tokens_details: Option<PromptDetails>,
    #[serde(default)]
    pub completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct PromptDetails {
    #[serde(default)]
    pub cached_tokens: u64,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct CompletionDetails {
    #[serde(default)]
    pub reasoning_tokens: u64,
}

impl ChunkUsage {
    pub fn counts(&self) -> Usage {
        Usage::from(*self)
    }
}

impl From<ChunkUsage> for Usage {
    fn from(usage: ChunkUsage) -> Self {
        Usage {
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            cached_tokens: usage.prompt_tokens_details.map_or(0, |d| d.cached_tokens),
        }
    }
}

impl Chunk<'_> {
    /// The first choice (the only one the other formats have).
    pub fn first_choice(&self) -> Option<&ChoiceDelta<'_>> {
        self.choices.iter().find(|c| c.index == 0)
    }
}

/// One thing an upstream's stream event becomes, for the relay.
#[derive(Debug, Clone, PartialEq)]
pub enum ChunkOut {
    /// An OpenAI chat chunk; `usage` and whether it carries choices, for the relay's
    /// accounting without parsing it again.
    Chunk {
        json: String,
        usage: Option<Usage>,
        has_choices: bool,
    },
    /// The stream ended cleanly (`data: [DONE]`).
    Done,
    /// The upstream reported an error mid-stream.
    Error(String),
}

/// Writes the chunks of one stream.
#[derive(Debug)]
pub struct ChunkWriter {
    /// `{"id":…,"object":"chat.completion.chunk","created":…,"model":…,"choices":`
    prefix: String,
}

/// `value` as a JSON string literal.
pub fn json_string(value: &str) -> String {
    Value::from(value).to_string()
}

impl ChunkWriter {
    pub fn new(id: &str, created: i64, model: &str) -> Self {
        Self {
            prefix: format!(
                "{{\"id\":{},\"object\":\"chat.completion.chunk\",\"created\":{created},\"model\":{},\"choices\":",
                json_string(id),
                json_string(model)
            ),
        }
    }

    /// A chunk of one choice; `delta` is the delta object's JSON.
    pub fn choice(&self, index: u64, delta: &str, finish: Option<&str>) -> ChunkOut {
        let mut json = String::with_capacity(self.prefix.len() + delta.len() + 64);
        json.push_str(&self.prefix);
        json.push_str("[{\"index\":");
        json.push_str(&index.to_string());
        json.push_str(",\"delta\":");
        json.push_str(delta);
        json.push_str(",\"logprobs\":null,\"finish_reason\":");
        match finish {
            Some(reason) => json.push_str(&json_string(reason)),
            None => json.push_str("null"),
        }
        json.push_str("}]}");
        ChunkOut::Chunk {
            json,
            usage: None,
            has_choices: true,
        }
    }

    /// A chunk adding `text` to choice `index`'s content.
    pub fn text(&self, index: u64, text: &str) -> ChunkOut {
        self.choice(
            index,
            &format!("{{\"content\":{}}}", json_string(text)),
            None,
        )
    }

    /// The usage chunk (no choices); `usage_json` may carry details beyond `usage`.
    pub fn usage(&self, usage: Usage, usage_json: &Value) -> ChunkOut {
        ChunkOut::Chunk {
            json: format!("{}[],\"usage\":{usage_json}}}", self.prefix),
            usage: Some(usage),
            has_choices: false,
        }
    }
}

/// The chunks `events` become, as JSON trees (see [`ChunkOut::to_value`]), for tests.
#[cfg(test)]
pub fn translated(translator: &mut impl super::UpstreamEvents, events: &[Value]) -> Vec<Value> {
    events
        .iter()
        .flat_map(|e| {
            translator
                .on_event(e.to_string().as_bytes())
                .unwrap_or_default()
        })
        .map(|c| c.to_value())
        .collect()
}

#[cfg(test)]
impl ChunkOut {
    /// The chunk as a JSON tree, `"[DONE]"`, or `{"error": {"message"}}`, for assertions.
    pub fn to_value(&self) -> Value {
        match self {
            ChunkOut::Chunk { json, .. } => serde_json::from_str(json).unwrap_or_default(),
            ChunkOut::Done => Value::String("[DONE]".into()),
            ChunkOut::Error(message) => serde_json::json!({"error": {"message": message}}),
        }
    }
}
