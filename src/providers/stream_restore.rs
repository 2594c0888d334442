//! Restores tokenised values in a streamed answer: each choice's content deltas pass
//! through a placeholder restorer, which holds back only what could still become a
//! placeholder, never the stream.

use crate::pii::{Restorer, Session};
use bytes::Bytes;
use serde_json::{Value, json};
use std::sync::Arc;

/// Most choices restored separately (`n` is capped far below this upstream).
const MAX_CHOICES: usize = 128;

/// Where one choice stands.
enum Slot {
    Unstarted,
    Active(Restorer),
    /// Its finish chunk went out with everything held.
    Finished,
}

impl Slot {
    /// What the choice still held, leaving it finished.
    fn finish(&mut self) -> String {
        match std::mem::replace(self, Slot::Finished) {
            Slot::Active(restorer) => restorer.finish(),
            _ => String::new(),
        }
    }
}

/// The restorers of one stream's choices.
pub struct StreamRestore {
    session: Arc<Session>,
    /// By choice index.
    choices: Vec<Slot>,
    /// `id`, `created` and `model` of the stream, for a chunk of its own at the end.
    header: Option<(Value, Value, Value)>,
}

impl StreamRestore {
    pub fn new(session: Arc<Session>) -> Self {
        Self {
            session,
            choices: Vec::new(),
            header: None,
        }
    }

    /// An OpenAI chunk's JSON with the content of its deltas restored; `None` when there
    /// is nothing to rewrite (a usage-only chunk, or not a chunk), to pass it as it is.
    pub fn chunk(&mut self, payload: &[u8]) -> Option<Vec<u8>> {
        let mut chunk: Value = serde_json::from_slice(payload).ok()?;
        if self.header.is_none() {
            let field = |name: &str| chunk.get(name).cloned().unwrap_or(Value::Null);
            self.header = Some((field("id"), field("created"), field("model")));
        }
        let choices = chunk.get_mut("choices")?.as_array_mut()?;
        if choices.is_empty() {
            return None;
        }
        for choice in choices {
            let index = choice.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
            let finished = choice.get("finish_reason").is_some_and(|f| !f.is_null());
            let Some(delta) = choice.get_mut("delta").and_then(Value::as_object_mut) else {
                continue;
            };
            let Some(restorer) = self.restorer(index) else {
                continue;
            };
            let mut text = match delta.get("content").and_then(Value::as_str) {
                Some(content) => restorer.push(content),
                None => String::new(),
            };
            if finished {
                text.push_str(&self.choices[index].finish());
            }
            if delta.contains_key("content") || !text.is_empty() {
                delta.insert("content".into(), Value::String(text));
            }
        }
        serde_json::to_vec(&chunk).ok()
    }

    /// Text still held when the stream ends without finishing a choice, as chunks (SSE
    /// events) to send before its end.
    pub fn finish(&mut self) -> Vec<Bytes> {
        let mut out = Vec::new();
        let (id, created, model) = self.header.clone().unwrap_or_default();
        for (index, slot) in self.choices.iter_mut().enumerate() {
            let held = slot.finish();
            if held.is_empty() {
                continue;
            }
            let chunk = json!({
                "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": index, "delta": {"content": held}, "finish_reason": null}],
            });
            out.push(super::sse::data_event(chunk.to_string().as_bytes()));
        }
        out
    }

    fn restorer(&mut self, index: usize) -> Option<&mut Restorer> {
        if index >= MAX_CHOICES {
            return None;
        }
        if self.choices.len() <= index {
            self.choices.resize_with(index + 1, || Slot::Unstarted);
        }
        let slot = &mut self.choices[index];
        if matches!(slot, Slot::Unstarted) {
            *slot = Slot::Active(Restorer::new(Arc::clone(&self.session)));
        }
        match slot {
            Slot::Active(restorer) => Some(restorer),
            _ => None,
        }
    }
}
