//! Rewrites Gemini's `streamGenerateContent?alt=sse` events as OpenAI chunks. Each event
//! is a partial response, read into borrowed typed fields (not a JSON tree); the chunks
//! are written straight to text. The stream has no end marker, so its end is judged
//! here: it ended cleanly only if every candidate that started also finished.

use super::{UsageMetadata, chat_id, finish_reason};
use crate::api::UpstreamEvents;
use crate::api::chunk::{ChunkOut, ChunkWriter, json_string};
use serde::Deserialize;
use serde_json::Value;
use std::borrow::Cow;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Event<'a> {
    #[serde(default, borrow)]
    candidates: Vec<Candidate<'a>>,
    #[serde(default)]
    usage_metadata: Option<UsageMetadata>,
    #[serde(default, borrow)]
    response_id: Option<Cow<'a, str>>,
    #[serde(default)]
    prompt_feedback: Option<PromptFeedback>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate<'a> {
    #[serde(default, borrow)]
    content: Option<Content<'a>>,
    #[serde(default, borrow)]
    finish_reason: Option<Cow<'a, str>>,
    #[serde(default)]
    index: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct Content<'a> {
    #[serde(default, borrow)]
    parts: Vec<Part<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Part<'a> {
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(default)]
    thought: bool,
    #[serde(default)]
    function_call: Option<FunctionCall>,
}

#[derive(Debug, Deserialize)]
struct FunctionCall {
    name: String,
    #[serde(default)]
    args: Option<Value>,
    #[serde(default)]
    id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromptFeedback {
    #[serde(default)]
    block_reason: Option<String>,
}

/// What one candidate (one OpenAI choice) has streamed so far.
#[derive(Debug, Default)]
struct CandidateState {
    index: u64,
    calls: usize,
    finished: bool,
}

#[derive(Debug)]
pub struct ChunkStream {
    model: String,
    created: i64,
    /// Set from the first event's response id.
    writer: Option<ChunkWriter>,
    response_id: String,
    candidates: Vec<CandidateState>,
    /// The latest usage reported (Gemini repeats it, growing, on every event).
    usage: Option<UsageMetadata>,
    /// The prompt was blocked: the stream is over, with nothing generated.
    blocked: bool,
}

/// The role chunk's delta, which opens every choice.
const ROLE_DELTA: &str = r#"{"role":"assistant","content":""}"#;

impl ChunkStream {
    pub fn new(model: &str, created: i64) -> Self {
        Self {
            model: model.to_string(),
            created,
            writer: None,
            response_id: String::new(),
            candidates: Vec::new(),
            usage: None,
            blocked: false,
        }
    }

    /// The candidate's state, and whether this is its first event.
    fn candidate(&mut self, index: u64) -> (usize, bool) {
        if let Some(at) = self.candidates.iter().position(|c| c.index == index) {
            return (at, false);
        }
        self.candidates.push(CandidateState {
            index,
            ..CandidateState::default()
        });
        (self.candidates.len() - 1, true)
    }

    fn translate(&mut self, event: Event<'_>) -> Vec<ChunkOut> {
        let writer = self.writer.get_or_insert_with(|| {
            let id = chat_id(event.response_id.as_deref());
            self.response_id = id.trim_start_matches("chatcmpl-").to_string();
            ChunkWriter::new(&id, self.created, &self.model)
        });
        if event.usage_metadata.is_some() {
            self.usage = event.usage_metadata;
        }
        let mut chunks = Vec::new();
        if event.candidates.is_empty()
            && event
                .prompt_feedback
                .as_ref()
                .is_some_and(|f| f.block_reason.is_some())
        {
            self.blocked = true;
            chunks.push(writer.choice(0, ROLE_DELTA, None));
            chunks.push(writer.choice(0, "{}", Some("content_filter")));
            return chunks;
        }
        for (position, candidate) in event.candidates.into_iter().enumerate() {
            let index = candidate.index.unwrap_or(position as u64);
            let (at, first) = self.candidate(index);
            // Re-borrowed: `candidate()` needed all of `self`.
            let Some(writer) = self.writer.as_ref() else {
                break;
            };
            if first {
                chunks.push(writer.choice(index, ROLE_DELTA, None));
            }
            let parts = candidate.content.map(|c| c.parts).unwrap_or_default();
            for part in parts.into_iter().filter(|p| !p.thought) {
                if let Some(text) = part.text.filter(|t| !t.is_empty()) {
                    chunks.push(writer.text(index, &text));
                } else if let Some(call) = part.function_call {
                    let n = self.candidates[at].calls;
                    self.candidates[at].calls += 1;
                    let id = match call.id.filter(|id| !id.is_empty()) {
                        Some(id) => id,
                        None => format!("call_{}_{n}", self.response_id),
                    };
                    let arguments = call
                        .args
                        .map_or_else(|| "{}".to_string(), |a| a.to_string());
                    let delta = format!(
                        "{{\"tool_calls\":[{{\"index\":{n},\"id\":{},\"type\":\"function\",\"function\":{{\"name\":{},\"arguments\":{}}}}}]}}",
                        json_string(&id),
                        json_string(&call.name),
                        json_string(&arguments)
                    );
                    chunks.push(writer.choice(index, &delta, None));
                }
            }
            if let Some(reason) = candidate.finish_reason {
                let called = self.candidates[at].calls > 0;
                self.candidates[at].finished = true;
                chunks.push(writer.choice(index, "{}", Some(finish_reason(&reason, called))));
            }
        }
        chunks
    }
}

impl UpstreamEvents for ChunkStream {
    fn on_event(&mut self, data: &[u8]) -> Result<Vec<ChunkOut>, String> {
        let event: Event<'_> = serde_json::from_slice(data).map_err(|e| e.to_string())?;
        if let Some(error) = &event.error {
            let message = error["message"]
                .as_str()
                .map_or_else(|| error.to_string(), str::to_string);
            return Ok(vec![ChunkOut::Error(message)]);
        }
        Ok(self.translate(event))
    }

    fn on_end(&mut self) -> Vec<ChunkOut> {
        let finished = self.blocked
            || (!self.candidates.is_empty() && self.candidates.iter().all(|c| c.finished));
        if !finished {
            return Vec::new(); // no `[DONE]`: the relay reports the stream as cut short
        }
        let mut chunks = Vec::with_capacity(2);
        if let (Some(usage), Some(writer)) = (self.usage.take(), self.writer.as_ref()) {
            chunks.push(writer.usage(usage.counts(), &usage.to_openai()));
        }
        chunks.push(ChunkOut::Done);
        chunks
    }
}
