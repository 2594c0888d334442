//! Rewrites a streamed answer's text: each choice's content deltas pass through a
//! placeholder restorer, which holds back only what could still become a placeholder,
//! and, when configured, a masker of the model's own personal data, which holds back only
//! a short lookahead.

use crate::pii::stream_mask::StreamMasker;
use crate::pii::{Restorer, Session};
use bytes::Bytes;
use serde_json::{Value, json};
use std::sync::Arc;

/// Most choices restored separately (`n` is capped far below this upstream).
const MAX_CHOICES: usize = 128;

/// One choice's text on its way out: restored, then masked.
struct ChoiceText {
    restorer: Restorer,
    masker: Option<StreamMasker>,
}

impl ChoiceText {
    /// What of the next delta can go out now.
    fn push(&mut self, content: &str) -> String {
        let restored = self.restorer.push(content);
        match &mut self.masker {
            Some(masker) => masker.push(&restored),
            None => restored,
        }
    }

    /// Everything still held.
    fn finish(self) -> String {
        let restored = self.restorer.finish();
        match self.masker {
            Some(mut masker) => masker.push(&restored) + &masker.finish(),
            None => restored,
        }
    }
}

/// Where one choice stands.
enum Slot {
    Unstarted,
    Active(ChoiceText),
    /// Its finish chunk went out with everything held.
    Finished,
}

impl Slot {
    /// What the choice still held, leaving it finished.
    fn finish(&mut self) -> String {
        match std::mem::replace(self, Slot::Finished) {
            Slot::Active(text) => text.finish(),
            _ => String::new(),
        }
    }
}

/// The rewriters of one stream's choices.
pub struct StreamRestore {
    session: Arc<Session>,
    /// Whether the model's own personal data is masked.
    mask_model_output: bool,
    /// By choice index.
    choices: Vec<Slot>,
    /// `id`, `created` and `model` of the stream, for a chunk of its own at the end.
    header: Option<(Value, Value, Value)>,
}

impl StreamRestore {
    pub fn new(session: Arc<Session>, mask_model_output: bool) -> Self {
        Self {
            session,
            mask_model_output,
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
            let Some(rewriter) = self.choice_text(index) else {
                continue;
            };
            let mut text = match delta.get("content").and_then(Value::as_str) {
                Some(content) => rewriter.push(content),
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

    fn choice_text(&mut self, index: usize) -> Option<&mut ChoiceText> {
        if index >= MAX_CHOICES {
            return None;
        }
        if self.choices.len() <= index {
            self.choices.resize_with(index + 1, || Slot::Unstarted);
        }
        let slot = &mut self.choices[index];
        if matches!(slot, Slot::Unstarted) {
            *slot = Slot::Active(ChoiceText {
                restorer: Restorer::new(Arc::clone(&self.session)),
                masker: self
                    .mask_model_output
                    .then(|| StreamMasker::new(Arc::clone(&self.session))),
            });
        }
        match slot {
            Slot::Active(text) => Some(text),
            _ => None,
        }
    }
}
