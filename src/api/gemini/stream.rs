//! Rewrites Gemini's `streamGenerateContent?alt=sse` events as OpenAI chunks. Each event
//! is a partial response; the stream has no end marker, so its end is judged here: it
//! ended cleanly only if every candidate that started also finished.

use super::{answer_parts, chat_id, finish_reason, usage};
use crate::api::UpstreamEvents;
use serde_json::{Value, json};

/// What one candidate (one OpenAI choice) has streamed so far.
#[derive(Debug, Default)]
struct Candidate {
    index: u64,
    calls: usize,
    finished: bool,
}

#[derive(Debug)]
pub struct ChunkStream {
    model: String,
    created: i64,
    id: Option<String>,
    candidates: Vec<Candidate>,
    /// The latest usage reported (Gemini repeats it, growing, on every event).
    usage: Option<Value>,
    /// The prompt was blocked: the stream is over, with nothing generated.
    blocked: bool,
}

impl ChunkStream {
    pub fn new(model: &str, created: i64) -> Self {
        Self {
            model: model.to_string(),
            created,
            id: None,
            candidates: Vec::new(),
            usage: None,
            blocked: false,
        }
    }

    fn chunk(&self, index: u64, delta: Value, finish: Option<&str>) -> Value {
        json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
               "choices": [{"index": index, "delta": delta, "logprobs": null, "finish_reason": finish}]})
    }

    /// The candidate's state, and whether this is its first event.
    fn candidate(&mut self, index: u64) -> (usize, bool) {
        if let Some(at) = self.candidates.iter().position(|c| c.index == index) {
            return (at, false);
        }
        self.candidates.push(Candidate {
            index,
            ..Candidate::default()
        });
        (self.candidates.len() - 1, true)
    }
}

impl UpstreamEvents for ChunkStream {
    fn on_event(&mut self, event: &Value) -> Vec<Value> {
        if event.get("error").is_some() {
            return vec![json!({"error": event["error"]})];
        }
        let id = self
            .id
            .get_or_insert_with(|| chat_id(event["responseId"].as_str()))
            .trim_start_matches("chatcmpl-")
            .to_string();
        if event["usageMetadata"].is_object() {
            self.usage = Some(usage(&event["usageMetadata"]));
        }
        let mut chunks = Vec::new();
        let candidates = event["candidates"]
            .as_array()
            .map_or(&[][..], Vec::as_slice);
        if candidates.is_empty() && event["promptFeedback"]["blockReason"].is_string() {
            self.blocked = true;
            chunks.push(self.chunk(0, json!({"role": "assistant", "content": ""}), None));
            chunks.push(self.chunk(0, json!({}), Some("content_filter")));
        }
        for (position, candidate) in candidates.iter().enumerate() {
            let index = candidate["index"].as_u64().unwrap_or(position as u64);
            let (at, first) = self.candidate(index);
            if first {
                chunks.push(self.chunk(index, json!({"role": "assistant", "content": ""}), None));
            }
            let (text, calls) = answer_parts(candidate, &id, self.candidates[at].calls);
            if !text.is_empty() {
                chunks.push(self.chunk(index, json!({"content": text}), None));
            }
            for call in calls {
                let n = self.candidates[at].calls;
                self.candidates[at].calls += 1;
                let mut delta = call;
                delta["index"] = n.into();
                chunks.push(self.chunk(index, json!({"tool_calls": [delta]}), None));
            }
            if let Some(reason) = candidate["finishReason"].as_str() {
                let called = self.candidates[at].calls > 0;
                self.candidates[at].finished = true;
                chunks.push(self.chunk(index, json!({}), Some(finish_reason(reason, called))));
            }
        }
        chunks
    }

    fn on_end(&mut self) -> Vec<Value> {
        let finished = self.blocked
            || (!self.candidates.is_empty() && self.candidates.iter().all(|c| c.finished));
        if !finished {
            return Vec::new(); // no `[DONE]`: the relay reports the stream as cut short
        }
        let mut chunks = Vec::with_capacity(2);
        if let Some(usage) = self.usage.take() {
            let mut chunk = self.chunk(0, json!({}), None);
            chunk["choices"] = json!([]);
            chunk["usage"] = usage;
            chunks.push(chunk);
        }
        chunks.push(Value::String("[DONE]".into()));
        chunks
    }
}
