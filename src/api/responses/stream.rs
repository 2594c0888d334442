//! The Responses API's streaming events made from an OpenAI chat stream, chunk by chunk:
//! `response.created`, `response.in_progress`, then per output item `output_item.added`,
//! its deltas (`output_text.delta` inside a `content_part`, `function_call_arguments.delta`,
//! or for a custom tool one `custom_tool_call_input.delta` with the whole input once the
//! call is complete) and its `.done` events, then `response.completed`
//! (or `response.incomplete`) with the whole response. Every event carries its
//! `sequence_number`.

use super::tools::{self, ClientTool, ToolMap, call_item_id};
use super::{ResponsesRequest, completion_status, id_suffix, message_item, usage};
use crate::api::chunk::{Chunk, ToolCallDelta, json_string};
use crate::api::{ClientEvents, emit_event};
use bytes::BytesMut;
use serde_json::{Value, json};

/// The message item being streamed.
#[derive(Debug)]
struct OpenMessage {
    output_index: usize,
    id: String,
    text: String,
}

/// A function call item being streamed.
#[derive(Debug)]
struct OpenCall {
    /// The chat stream's tool-call index.
    chat_index: u64,
    output_index: usize,
    call_id: String,
    /// The tool as the client declared it.
    tool: ClientTool,
    arguments: String,
}

#[derive(Debug)]
pub struct ResponsesStream {
    /// The Response object without output; its id is set from the first chunk.
    response: Value,
    started: bool,
    sequence: u64,
    suffix: String,
    next_index: usize,
    message: Option<OpenMessage>,
    calls: Vec<OpenCall>,
    /// The client's tools behind the chat function names.
    map: ToolMap,
    /// Finished items by output index.
    done: Vec<(usize, Value)>,
    finish_reason: Option<String>,
    usage: Option<Value>,
}

impl ResponsesStream {
    pub fn new(request: &ResponsesRequest) -> Self {
        Self {
            response: request.response_template("", crate::store::now_unix()),
            started: false,
            sequence: 0,
            suffix: String::new(),
            next_index: 0,
            message: None,
            calls: Vec::new(),
            map: request.tool_map(),
            done: Vec::new(),
            finish_reason: None,
            usage: None,
        }
    }

    fn emit(&mut self, out: &mut BytesMut, mut event: Value) {
        event["sequence_number"] = self.sequence.into();
        self.sequence += 1;
        emit_event(out, &event);
    }

    fn start(&mut self, chunk: &Chunk<'_>, out: &mut BytesMut) {
        self.started = true;
        self.suffix = id_suffix(chunk.id.as_deref());
        self.response["id"] = format!("resp_{}", self.suffix).into();
        if let Some(created) = chunk.created {
            self.response["created_at"] = created.into();
        }
        let response = self.response.clone();
        self.emit(
            out,
            json!({"type": "response.created", "response": response}),
        );
        let response = self.response.clone();
        self.emit(
            out,
            json!({"type": "response.in_progress", "response": response}),
        );
    }

    /// Starts the message item if none is open (its `output_item.added` and
    /// `content_part.added` events).
    fn open_message(&mut self, out: &mut BytesMut) {
        if self.message.is_none() {
            let output_index = self.next_index;
            self.next_index += 1;
            let id = match output_index {
                0 => format!("msg_{}", self.suffix),
                n => format!("msg_{}_{n}", self.suffix),
            };
            let mut item = message_item(&id, "", "in_progress");
            item["content"] = json!([]);
            self.emit(out, json!({"type": "response.output_item.added", "output_index": output_index, "item": item}));
            self.emit(out, json!({"type": "response.content_part.added", "item_id": id, "output_index": output_index,
                "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}}));
            self.message = Some(OpenMessage {
                output_index,
                id,
                text: String::new(),
            });
        }
    }

    fn on_text(&mut self, delta: &str, out: &mut BytesMut) {
        self.open_message(out);
        let Some(message) = self.message.as_mut() else {
            return;
        };
        message.text.push_str(delta);
        // The hottest event of a stream: written directly.
        let data = format!(
            "{{\"type\":\"response.output_text.delta\",\"item_id\":{},\"output_index\":{},\"content_index\":0,\"delta\":{},\"logprobs\":[],\"sequence_number\":{}}}",
            json_string(&message.id),
            message.output_index,
            json_string(delta),
            self.sequence
        );
        self.sequence += 1;
        out.extend_from_slice(b"event: response.output_text.delta\ndata: ");
        out.extend_from_slice(data.as_bytes());
        out.extend_from_slice(b"\n\n");
    }

    fn on_tool_call(&mut self, call: &ToolCallDelta<'_>, out: &mut BytesMut) {
        let chat_index = call.index;
        if let Some(call_id) = call.id.as_deref() {
            self.close_message(out);
            let output_index = self.next_index;
            self.next_index += 1;
            let tool = self
                .map
                .client_tool(call.function.name.as_deref().unwrap_or(""));
            let item = tools::call_item(&tool, call_id, "", "in_progress");
            self.emit(out, json!({"type": "response.output_item.added", "output_index": output_index, "item": item}));
            self.calls.push(OpenCall {
                chat_index,
                output_index,
                call_id: call_id.into(),
                tool,
                arguments: String::new(),
            });
        }
        let fragment = call.function.arguments.as_deref().unwrap_or("");
        let Some(open) = self
            .calls
            .iter_mut()
            .rev()
            .find(|c| c.chat_index == chat_index)
        else {
            return;
        };
        if fragment.is_empty() {
            return;
        }
        open.arguments.push_str(fragment);
        // A custom tool's input is known once its JSON arguments are complete.
        if open.tool.custom {
            return;
        }
        let event = json!({"type": "response.function_call_arguments.delta",
            "item_id": call_item_id(&open.call_id, false),
            "output_index": open.output_index, "delta": fragment});
        self.emit(out, event);
    }

    fn close_message(&mut self, out: &mut BytesMut) {
        let Some(message) = self.message.take() else {
            return;
        };
        let (id, index, text) = (message.id, message.output_index, message.text);
        self.emit(
            out,
            json!({"type": "response.output_text.done", "item_id": id, "output_index": index,
            "content_index": 0, "text": text, "logprobs": []}),
        );
        self.emit(out, json!({"type": "response.content_part.done", "item_id": id, "output_index": index,
            "content_index": 0, "part": {"type": "output_text", "text": text, "annotations": [], "logprobs": []}}));
        let item = message_item(&id, &text, "completed");
        self.emit(
            out,
            json!({"type": "response.output_item.done", "output_index": index, "item": item}),
        );
        self.done.push((index, item));
    }

    fn close_calls(&mut self, out: &mut BytesMut) {
        for call in std::mem::take(&mut self.calls) {
            let item = tools::call_item(&call.tool, &call.call_id, &call.arguments, "completed");
            let index = call.output_index;
            if call.tool.custom {
                let input = &item["input"];
                self.emit(
                    out,
                    json!({"type": "response.custom_tool_call_input.delta",
                    "item_id": item["id"], "output_index": index, "delta": input}),
                );
                self.emit(
                    out,
                    json!({"type": "response.custom_tool_call_input.done",
                    "item_id": item["id"], "output_index": index, "input": input}),
                );
            } else {
                self.emit(
                    out,
                    json!({"type": "response.function_call_arguments.done",
                    "item_id": item["id"], "output_index": index, "name": call.tool.name,
                    "arguments": call.arguments}),
                );
            }
            self.emit(out, json!({"type": "response.output_item.done", "output_index": call.output_index, "item": item}));
            self.done.push((call.output_index, item));
        }
    }
}

impl ClientEvents for ResponsesStream {
    fn on_chunk(&mut self, chunk: &Chunk<'_>, out: &mut BytesMut) {
        if !self.started {
            self.start(chunk, out);
        }
        if let Some(counts) = chunk.usage {
            self.usage = Some(usage(&counts));
        }
        // The Responses API has one output; further choices (n > 1) are not asked for.
        let Some(choice) = chunk.first_choice() else {
            return;
        };
        if let Some(text) = choice.delta.content.as_deref().filter(|t| !t.is_empty()) {
            self.on_text(text, out);
        }
        for call in &choice.delta.tool_calls {
            self.on_tool_call(call, out);
        }
        if let Some(reason) = choice.finish_reason.as_deref() {
            self.finish_reason = Some(reason.to_string());
        }
    }

    fn finish(&mut self, out: &mut BytesMut) {
        if !self.started {
            self.start(&Chunk::default(), out);
        }
        self.close_message(out);
        self.close_calls(out);
        self.done.sort_by_key(|(index, _)| *index);
        let (status, incomplete) = completion_status(self.finish_reason.as_deref());
        let mut response = self.response.clone();
        response["status"] = status.into();
        response["incomplete_details"] = incomplete;
        response["output"] = self.done.iter().map(|(_, item)| item.clone()).collect();
        response["usage"] = self.usage.clone().unwrap_or(Value::Null);
        let kind = if status == "completed" {
            "response.completed"
        } else {
            "response.incomplete"
        };
        self.emit(out, json!({"type": kind, "response": response}));
    }

    fn error(&mut self, message: &str, out: &mut BytesMut) {
        self.emit(
            out,
            json!({"type": "error", "code": "server_error", "message": message, "param": null}),
        );
        let mut response = self.response.clone();
        response["status"] = "failed".into();
        response["error"] = json!({"code": "server_error", "message": message});
        self.emit(
            out,
            json!({"type": "response.failed", "response": response}),
        );
    }
}
