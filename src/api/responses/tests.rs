//! Golden tests of the Responses API translation: requests, answers and stream events.

use super::stream::ResponsesStream;
use super::*;
use crate::api::ClientEvents;
use bytes::BytesMut;

fn request(body: Value) -> ResponsesRequest {
    serde_json::from_value(body).unwrap()
}

#[test]
fn requests_become_chat_requests() {
    let chat = request(json!({
        "model": "m", "instructions": "Be brief.", "max_output_tokens": 50, "temperature": 0.2,
        "stream": true, "store": true, "reasoning": {"effort": "low"},
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "Weather?"},
                {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"}]},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"type": "function_call", "call_id": "call_1", "name": "w", "arguments": "{\"city\":\"Oslo\"}"},
            {"type": "function_call", "call_id": "call_2", "name": "w", "arguments": "{\"city\":\"Rome\"}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
            {"type": "function_call_output", "call_id": "call_2", "output": [{"type": "input_text", "text": "rain"}]}
        ],
        "tools": [{"type": "function", "name": "w", "description": "Weather", "parameters": {"type": "object"}, "strict": true}],
        "tool_choice": {"type": "function", "name": "w"},
        "text": {"format": {"type": "json_schema", "name": "a", "schema": {"type": "object"}, "strict": true}}
    }))
    .to_chat()
    .unwrap();
    assert_eq!(
        serde_json::to_value(&chat).unwrap(),
        json!({
            "model": "m", "stream": true,
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Weather?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}}]},
                {"role": "assistant", "content": [{"type": "text", "text": "Checking."}], "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "w", "arguments": "{\"city\":\"Oslo\"}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "w", "arguments": "{\"city\":\"Rome\"}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
                {"role": "tool", "tool_call_id": "call_2", "content": "rain"}
            ],
            "max_tokens": 50, "temperature": 0.2, "reasoning_effort": "low",
            "tools": [{"type": "function", "function": {"name": "w", "description": "Weather",
                       "parameters": {"type": "object"}, "strict": true}}],
            "tool_choice": {"type": "function", "function": {"name": "w"}},
            "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object"}, "strict": true}}
        })
    );
}

#[test]
fn what_needs_state_or_hosted_tools_is_refused() {
    let refused = |body: Value| request(body).to_chat().unwrap_err().0;
    assert!(
        refused(json!({"model": "m", "input": "hi", "previous_response_id": "resp_1"}))
            .contains("`previous_response_id` needs state")
    );
    assert!(
        refused(json!({"model": "m", "input": "hi", "background": true})).contains("`background`")
    );
    assert!(
        refused(json!({"model": "m", "input": "hi", "tools": [{"type": "web_search"}]}))
            .contains("hosted by OpenAI")
    );
    assert!(
        refused(json!({"model": "m", "input": [{"type": "item_reference", "id": "msg_1"}]}))
            .contains("item references")
    );
    assert!(
        refused(json!({"model": "m", "input": [{"role": "user", "content": [
        {"type": "input_file", "file_id": "file-1"}]}]}))
        .contains("input_file")
    );
    assert!(refused(json!({"model": "m", "input": 5})).contains("`input`"));
    assert!(
        request(json!({"model": "m", "input": "hi", "background": false}))
            .to_chat()
            .is_ok()
    );
}

#[test]
fn completions_become_responses() {
    let req = request(json!({"model": "alias", "input": "hi", "max_output_tokens": 9}));
    let completion = json!({
        "id": "chatcmpl-abc", "created": 1700000000, "model": "upstream",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": "Checking.",
            "tool_calls": [{"id": "call_9", "type": "function", "function": {"name": "w", "arguments": "{}"}}]}}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}
    });
    let response = from_chat(&completion, &req);
    assert_eq!(response["id"], "resp_abc");
    assert_eq!(response["object"], "response");
    assert_eq!(response["created_at"], 1700000000);
    assert_eq!(response["status"], "completed");
    assert_eq!(response["model"], "alias");
    assert_eq!(response["max_output_tokens"], 9);
    assert_eq!(
        response["output"],
        json!([
            {"type": "message", "id": "msg_abc", "status": "completed", "role": "assistant",
             "content": [{"type": "output_text", "text": "Checking.", "annotations": [], "logprobs": []}]},
            {"type": "function_call", "id": "fc_9", "call_id": "call_9", "name": "w", "arguments": "{}", "status": "completed"}
        ])
    );
    assert_eq!(response["usage"]["input_tokens"], 5);
    assert_eq!(response["usage"]["output_tokens"], 7);
    assert_eq!(response["usage"]["total_tokens"], 12);

    let cut = json!({"id": "chatcmpl-x", "choices": [{"index": 0, "finish_reason": "length",
        "message": {"role": "assistant", "content": "a b"}}], "usage": {}});
    let response = from_chat(&cut, &req);
    assert_eq!(response["status"], "incomplete");
    assert_eq!(
        response["incomplete_details"]["reason"],
        "max_output_tokens"
    );
}

/// The events a stream of `chunks` becomes, as their data.
fn events(chunks: &[Value]) -> Vec<Value> {
    let stream = ResponsesStream::new(&request(json!({"model": "alias", "input": "hi"})));
    crate::api::written_events(stream, chunks)
}

#[test]
fn stream_chunks_become_response_events() {
    let chunk = |delta: Value, finish: Value| json!({"id": "chatcmpl-s1", "created": 5, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
    let all = events(&[
        chunk(json!({"role": "assistant", "content": ""}), Value::Null),
        chunk(json!({"content": "Hel"}), Value::Null),
        chunk(json!({"content": "lo"}), Value::Null),
        chunk(
            json!({"tool_calls": [{"index": 0, "id": "call_7", "type": "function",
                                     "function": {"name": "w", "arguments": ""}}]}),
            Value::Null,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\":"}}]}),
            Value::Null,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
            Value::Null,
        ),
        chunk(json!({}), json!("tool_calls")),
        json!({"id": "chatcmpl-s1", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4}}),
    ]);
    let types: Vec<&str> = all.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    let sequence: Vec<u64> = all
        .iter()
        .map(|e| e["sequence_number"].as_u64().unwrap())
        .collect();
    assert_eq!(sequence, (0..all.len() as u64).collect::<Vec<_>>());
    assert_eq!(all[0]["response"]["id"], "resp_s1");
    assert_eq!(all[0]["response"]["status"], "in_progress");
    assert_eq!(all[6]["text"], "Hello");
    assert_eq!(all[10]["item_id"], "fc_7");
    assert_eq!(all[12]["arguments"], "{\"a\":1}");
    let done = &all[14]["response"];
    assert_eq!(done["id"], "resp_s1");
    assert_eq!(done["status"], "completed");
    assert_eq!(done["output"][0]["content"][0]["text"], "Hello");
    assert_eq!(done["output"][1]["call_id"], "call_7");
    assert_eq!(done["usage"]["output_tokens"], 4);
}

#[test]
fn a_failed_stream_ends_with_error_and_response_failed() {
    let mut stream = ResponsesStream::new(&request(json!({"model": "m", "input": "hi"})));
    let mut out = BytesMut::new();
    let chunk = r#"{"id": "chatcmpl-f", "choices": [{"index": 0, "delta": {"content": "a"}}]}"#;
    stream.on_chunk(&serde_json::from_str(chunk).unwrap(), &mut out);
    stream.error("the model server failed", &mut out);
    let text = String::from_utf8(out.to_vec()).unwrap();
    assert!(
        text.contains("event: error\ndata: {\"type\":\"error\",\"code\":\"server_error\""),
        "{text}"
    );
    assert!(
        text.trim_end()
            .rsplit("\n\n")
            .next()
            .unwrap()
            .starts_with("event: response.failed")
    );
}
