//! Anthropic's streaming events made from an OpenAI chat stream, chunk by chunk:
//! `message_start`, then per content block `content_block_start`, deltas (`text_delta`,
//! tool arguments as `input_json_delta`) and `content_block_stop`, then `message_delta`
//! (stop reason, usage) and `message_stop`.

use super::{message_id, stop_reason};
use crate::api::chunk::{Chunk, ToolCallDelta, json_string};
use crate::api::{ClientEvents, emit_event as emit};
use bytes::BytesMut;
use serde_json::{Value, json};

/// The block being streamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text(usize),
    Tool(usize),
}

/// Translation state of one stream.
#[derive(Debug)]
pub struct AnthropicStream {
    /// The model name the client asked for.
    model: String,
    started: bool,
    open: Option<Open>,
    blocks: usize,
    /// Block index of each tool call seen, by OpenAI tool-call index.
    tool_blocks: Vec<(u64, usize)>,
    stop: (&'static str, Option<String>),
    input_tokens: u64,
    output_tokens: u64,
}

impl AnthropicStream {
    pub fn new(model: &str) -> Self {
        Self {
            model: model.to_string(),
            started: false,
            open: None,
            blocks: 0,
            tool_blocks: Vec::new(),
            stop: ("end_turn", None),
            input_tokens: 0,
            output_tokens: 0,
        }
    }

    /// Closes the open block and opens a new one; its index.
    fn start_block(&mut self, out: &mut BytesMut, block: Value, tool: bool) -> usize {
        self.close_block(out);
        let index = self.blocks;
        self.blocks += 1;
        self.open = Some(if tool {
            Open::Tool(index)
        } else {
            Open::Text(index)
        });
        emit(
            out,
            &json!({"type": "content_block_start", "index": index, "content_block": block}),
        );
        index
    }

    fn close_block(&mut self, out: &mut BytesMut) {
        if let Some(Open::Text(index) | Open::Tool(index)) = self.open.take() {
            emit(out, &json!({"type": "content_block_stop", "index": index}));
        }
    }

    fn on_tool_call(&mut self, call: &ToolCallDelta<'_>, out: &mut BytesMut) {
        let known = self
            .tool_blocks
            .iter()
            .find(|(i, _)| *i == call.index)
            .map(|(_, block)| *block);
        let block = match known {
            Some(block) => block,
            None => {
                let block = json!({
                    "type": "tool_use",
                    "id": call.id.as_deref().unwrap_or(""),
                    "name": call.function.name.as_deref().unwrap_or(""),
                    "input": {},
                });
                let index = self.start_block(out, block, true);
                self.tool_blocks.push((call.index, index));
                index
            }
        };
        if let Some(fragment) = call.function.arguments.as_deref().filter(|a| !a.is_empty()) {
            delta_event(out, block, "input_json_delta", "partial_json", fragment);
        }
    }
}

/// A `content_block_delta` event, written directly (the hottest event of a stream).
fn delta_event(out: &mut BytesMut, index: usize, kind: &str, field: &str, value: &str) {
    let data = format!(
        "{{\"type\":\"content_block_delta\",\"index\":{index},\"delta\":{{\"type\":\"{kind}\",\"{field}\":{}}}}}",
        json_string(value)
    );
    out.extend_from_slice(b"event: content_block_delta\ndata: ");
    out.extend_from_slice(data.as_bytes());
    out.extend_from_slice(b"\n\n");
}

impl ClientEvents for AnthropicStream {
    fn on_chunk(&mut self, chunk: &Chunk<'_>, out: &mut BytesMut) {
        if !self.started {
            self.started = true;
            emit(
                out,
                &json!({"type": "message_start", "message": {
                    "id": message_id(chunk.id.as_deref()),
                    "type": "message",
                    "role": "assistant",
                    "model": self.model,
                    "content": [],
                    "stop_reason": null,
                    "stop_sequence": null,
                    "usage": {"input_tokens": 0, "output_tokens": 0},
                }}),
            );
            emit(out, &json!({"type": "ping"}));
        }
        if let Some(usage) = chunk.usage {
            self.input_tokens = usage.prompt_tokens;
            self.output_tokens = usage.completion_tokens;
        }
        let Some(choice) = chunk.choices.first() else {
            return;
        };
        if let Some(text) = choice.delta.content.as_deref().filter(|t| !t.is_empty()) {
            let index = match self.open {
                Some(Open::Text(index)) => index,
                _ => self.start_block(out, json!({"type": "text", "text": ""}), false),
            };
            delta_event(out, index, "text_delta", "text", text);
        }
        for call in &choice.delta.tool_calls {
            self.on_tool_call(call, out);
        }
        if let Some(finish) = choice.finish_reason.as_deref() {
            let matched = choice.stop_reason.as_ref().and_then(Value::as_str);
            self.stop = stop_reason(Some(finish), matched);
        }
    }

    fn finish(&mut self, out: &mut BytesMut) {
        if !self.started {
            self.on_chunk(&Chunk::default(), out);
        }
        self.close_block(out);
        let (stop_reason, stop_sequence) = self.stop.clone();
        emit(
            out,
            &json!({"type": "message_delta",
                    "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
                    "usage": {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens}}),
        );
        emit(out, &json!({"type": "message_stop"}));
    }

    fn error(&mut self, message: &str, out: &mut BytesMut) {
        emit(
            out,
            &json!({"type": "error", "error": {"type": "api_error", "message": message}}),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The events of a translated stream.
    fn events(chunks: &[Value]) -> Vec<Value> {
        crate::api::written_events(AnthropicStream::new("claude-like"), chunks)
    }

    fn chunk(delta: Value, finish: Option<&str>) -> Value {
        json!({"id": "chatcmpl-s1", "object": "chat.completion.chunk", "model": "mock-llama",
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    }

    #[test]
    fn text_then_parallel_tool_calls_become_blocks() {
        // A vLLM stream: role, text, two tool calls streamed one after the other with
        // their arguments in pieces, the finish, and the usage chunk.
        let chunks = [
            chunk(json!({"role": "assistant", "content": ""}), None),
            chunk(json!({"content": "Checking"}), None),
            chunk(json!({"content": " both."}), None),
            chunk(
                json!({"tool_calls": [{"index": 0, "id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}),
                None,
            ),
            chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\": "}}]}),
                None,
            ),
            chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}),
                None,
            ),
            chunk(
                json!({"tool_calls": [{"index": 1, "id": "call_b", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}}]}),
                None,
            ),
            chunk(json!({}), Some("tool_calls")),
            json!({"id": "chatcmpl-s1", "choices": [], "usage": {"prompt_tokens": 30, "completion_tokens": 12, "total_tokens": 42}}),
        ];
        let got = events(&chunks);
        let expected = vec![
            json!({"type": "message_start", "message": {"id": "msg_s1", "type": "message", "role": "assistant",
                "model": "claude-like", "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": 0, "output_tokens": 0}}}),
            json!({"type": "ping"}),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Checking"}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " both."}}),
            json!({"type": "content_block_stop", "index": 0}),
            json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "call_a", "name": "get_weather", "input": {}}}),
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"city\": "}}),
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "\"Paris\"}"}}),
            json!({"type": "content_block_stop", "index": 1}),
            json!({"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "call_b", "name": "get_weather", "input": {}}}),
            json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "{\"city\": \"Oslo\"}"}}),
            json!({"type": "content_block_stop", "index": 2}),
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null},
                   "usage": {"input_tokens": 30, "output_tokens": 12}}),
            json!({"type": "message_stop"}),
        ];
        assert_eq!(got, expected);
    }

    #[test]
    fn a_stop_sequence_and_an_empty_stream() {
        let got = events(&[
            chunk(json!({"content": "Hello"}), None),
            json!({"id": "chatcmpl-s1", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop", "stop_reason": "END"}]}),
        ]);
        assert_eq!(
            got[got.len() - 2]["delta"],
            json!({"stop_reason": "stop_sequence", "stop_sequence": "END"})
        );
        let empty = events(&[]);
        let kinds: Vec<&str> = empty.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            ["message_start", "ping", "message_delta", "message_stop"]
        );
    }
}
