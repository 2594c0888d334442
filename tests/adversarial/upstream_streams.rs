//! Fuzzing what upstreams stream: the SSE framer on hostile bytes cut anywhere (framing
//! must not depend on where the network split the bytes), Anthropic's and Gemini's
//! event streams into OpenAI chunks, and OpenAI chunks into each client format's events
//! (every event Airlock writes must be well-formed SSE carrying JSON).

use crate::fuzz::{Raw, arb_json, fuzz, mutated};
use airlock::api::anthropic::stream::AnthropicStream;
use airlock::api::chunk::{Chunk, ChunkOut};
use airlock::api::gemini::ingress::GeminiEvents;
use airlock::api::responses::ResponsesRequest;
use airlock::api::responses::stream::ResponsesStream;
use airlock::api::{ClientEvents, UpstreamEvents, anthropic, gemini};
use airlock::providers::sse::{SseFramer, data_payload};
use bytes::BytesMut;
use proptest::prelude::*;
use proptest::test_runner::TestCaseResult;
use serde_json::{Value, json};

/// The events a framer finds in `bytes` pushed in pieces cut at `cuts`.
fn framed(bytes: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut framer = SseFramer::default();
    let mut events = Vec::new();
    let mut start = 0;
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    cuts.push(bytes.len());
    for cut in cuts {
        framer.push(&bytes[start..cut.max(start)]);
        start = cut.max(start);
        while let Some(len) = framer.next_event_len() {
            events.push(framer.front(len).to_vec());
            framer.consume(len);
        }
    }
    events
}

/// Bytes that look like SSE: fields, comments, every line ending, and junk.
fn sse_bytes() -> impl Strategy<Value = Raw> {
    let piece = prop_oneof![
        Just(b"data: ".to_vec()),
        Just(b"data:".to_vec()),
        Just(b"event: message_start".to_vec()),
        Just(b": keep-alive".to_vec()),
        Just(b"id: 7".to_vec()),
        Just(b"retry: 10".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"\n\n".to_vec()),
        Just(b"[DONE]".to_vec()),
        Just(br#"{"choices":[{"delta":{"content":"hi"}}]}"#.to_vec()),
        proptest::collection::vec(any::<u8>(), 0..12),
    ];
    proptest::collection::vec(piece, 0..40).prop_map(|pieces| Raw(pieces.concat()))
}

#[test]
fn sse_framing_does_not_depend_on_how_bytes_arrive() {
    let input = (
        sse_bytes(),
        proptest::collection::vec(any::<usize>(), 0..12),
    );
    fuzz("sse_framer", input, |(Raw(bytes), cuts)| {
        let whole = framed(&bytes, &[]);
        let pieces = framed(&bytes, &cuts);
        prop_assert_eq!(&whole, &pieces);
        for event in &whole {
            let _ = data_payload(event);
        }
        Ok(())
    });
}

/// Every event a client writer produced: complete, each data line JSON (or `[DONE]`);
/// lines end in `\n` or, as Google's do, `\r\n`.
pub fn well_formed(out: &[u8]) -> TestCaseResult {
    let text = std::str::from_utf8(out);
    prop_assert!(text.is_ok(), "client events are not UTF-8");
    let text = text.unwrap_or_default().replace("\r\n", "\n");
    prop_assert!(
        text.is_empty() || text.ends_with("\n\n"),
        "an event is left unfinished: {text:?}"
    );
    for event in text.split("\n\n").filter(|e| !e.is_empty()) {
        for line in event.lines() {
            if let Some(data) = line.strip_prefix("data: ") {
                prop_assert!(
                    data == "[DONE]" || serde_json::from_str::<Value>(data).is_ok(),
                    "a data line is not JSON: {data:?}"
                );
            } else {
                prop_assert!(
                    line.starts_with("event: ") || line.starts_with(':'),
                    "not an SSE field: {line:?}"
                );
            }
        }
    }
    Ok(())
}

/// The client formats' writers, each fed the same chunks.
fn writers() -> Vec<Box<dyn ClientEvents>> {
    let request: ResponsesRequest =
        serde_json::from_value(json!({"model": "chat-model", "input": "hi"})).unwrap_or_else(|e| {
            panic!("the Responses request used by the stream fuzzer is invalid: {e}")
        });
    vec![
        Box::new(AnthropicStream::new("chat-model")),
        Box::new(ResponsesStream::new(&request)),
        Box::new(GeminiEvents::new("chat-model", Some(3))),
    ]
}

/// Feeds chunk JSON texts to every client writer, then ends the stream cleanly or with
/// an error, and checks what each wrote.
fn into_client_events(chunks: &[String], failed: bool) -> TestCaseResult {
    for mut writer in writers() {
        let mut out = BytesMut::new();
        for json in chunks {
            if let Ok(chunk) = serde_json::from_str::<Chunk<'_>>(json) {
                writer.on_chunk(&chunk, &mut out);
            }
        }
        if failed {
            writer.error("the model server failed\nwhile generating", &mut out);
        } else {
            writer.finish(&mut out);
        }
        well_formed(&out)?;
    }
    Ok(())
}

fn chunk_seeds() -> Vec<Value> {
    vec![
        json!({"id": "c1", "created": 1, "model": "m", "choices": [{"index": 0,
            "delta": {"role": "assistant", "content": "Hel"}, "finish_reason": null}]}),
        json!({"id": "c1", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0,
            "id": "call_1", "type": "function", "function": {"name": "w", "arguments": "{\"a\""}}]}}]}),
        json!({"id": "c1", "choices": [{"index": 1, "delta": {"content": "x"},
            "finish_reason": "length", "stop_reason": 7}]}),
        json!({"id": "c1", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4,
            "total_tokens": 7, "prompt_tokens_details": {"cached_tokens": 1},
            "completion_tokens_details": {"reasoning_tokens": 2}}}),
    ]
}

#[test]
fn openai_chunks_into_client_events() {
    let chunks = proptest::collection::vec(
        prop_oneof![4 => mutated(chunk_seeds()), 1 => arb_json()].prop_map(|v| v.to_string()),
        0..12,
    );
    fuzz(
        "chunks_to_clients",
        (chunks, any::<bool>()),
        |(chunks, failed)| into_client_events(&chunks, failed),
    );
}

/// An upstream translator's output for a sequence of events, as chunk texts; then the
/// chunks go on to every client writer.
fn through(translator: &mut dyn UpstreamEvents, events: &[Raw]) -> TestCaseResult {
    let mut chunks = Vec::new();
    let mut failed = false;
    for Raw(event) in events {
        match translator.on_event(event) {
            Ok(out) => collect(out, &mut chunks, &mut failed)?,
            Err(_) => failed = true,
        }
    }
    collect(translator.on_end(), &mut chunks, &mut failed)?;
    into_client_events(&chunks, failed)
}

fn collect(out: Vec<ChunkOut>, chunks: &mut Vec<String>, failed: &mut bool) -> TestCaseResult {
    for chunk in out {
        match chunk {
            ChunkOut::Chunk { json, .. } => {
                prop_assert!(
                    serde_json::from_str::<Value>(&json).is_ok(),
                    "a translator wrote a chunk that is not JSON: {json}"
                );
                chunks.push(json);
            }
            ChunkOut::Done => {}
            ChunkOut::Error(_) => *failed = true,
        }
    }
    Ok(())
}

fn events(seeds: Vec<Value>) -> impl Strategy<Value = Vec<Raw>> {
    proptest::collection::vec(
        prop_oneof![
            6 => mutated(seeds).prop_map(|v| Raw(v.to_string().into_bytes())),
            1 => arb_json().prop_map(|v| Raw(v.to_string().into_bytes())),
            1 => proptest::collection::vec(any::<u8>(), 0..16).prop_map(Raw),
        ],
        0..12,
    )
}

#[test]
fn anthropic_upstream_events() {
    let seeds = vec![
        json!({"type": "message_start", "message": {"id": "msg_1", "model": "claude",
            "usage": {"input_tokens": 5, "cache_read_input_tokens": 1}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}}),
        json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use",
            "id": "tu_1", "name": "w", "input": {}}}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta",
            "partial_json": "{\"a\":"}}),
        json!({"type": "content_block_stop", "index": 1}),
        json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 7}}),
        json!({"type": "message_stop"}),
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}),
        json!({"type": "ping"}),
    ];
    fuzz("anthropic_upstream_events", events(seeds), |events| {
        through(
            &mut anthropic::upstream::ChunkStream::new("chat-model", 0),
            &events,
        )
    });
}

#[test]
fn gemini_upstream_events() {
    let seeds = vec![
        json!({"responseId": "r1", "candidates": [{"index": 0, "content": {"role": "model",
            "parts": [{"text": "Hel"}]}}]}),
        json!({"candidates": [{"index": 0, "content": {"parts": [{"thought": true, "text": "hm"},
            {"functionCall": {"name": "w", "args": {"a": 1}}}]}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2, "thoughtsTokenCount": 1}}),
        json!({"candidates": [{"index": 1, "finishReason": "MAX_TOKENS"}]}),
        json!({"promptFeedback": {"blockReason": "SAFETY"}}),
        json!({"error": {"code": 500, "message": "internal", "status": "INTERNAL"}}),
    ];
    fuzz("gemini_upstream_events", events(seeds), |events| {
        through(
            &mut gemini::stream::ChunkStream::new("chat-model", 0),
            &events,
        )
    });
}
