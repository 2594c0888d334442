//! Golden tests of the Responses API translation: requests, answers and stream events.

use super::stream::ResponsesStream;
use super::*;
use crate::api::ClientEvents;
use crate::api::hosted::HostedTools;
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
        request(json!({"model": "m", "input": "hi", "tools": [{"type": "web_search"}]}))
            .translate(HostedTools::Refuse)
            .unwrap_err()
            .0
            .starts_with("tools[0]: `web_search` is a built-in tool of OpenAI's platform")
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

/// Codex CLI's tools, trimmed: a function, a namespace, a free-form tool with a grammar,
/// web search, and an `additional_tools` item.
fn codex_request() -> ResponsesRequest {
    request(json!({
        "model": "m", "stream": true, "store": false, "include": ["reasoning.encrypted_content"],
        "reasoning": {"summary": "auto"}, "prompt_cache_key": "k", "client_metadata": {"a": "b"},
        "parallel_tool_calls": true, "tool_choice": "auto",
        "input": [
            {"type": "message", "id": "msg_1", "role": "developer", "content": [{"type": "input_text", "text": "Rules."}]},
            {"type": "additional_tools", "role": "developer", "tools": [{"type": "function", "name": "late", "parameters": {"type": "object"}}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]},
            {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAA"},
            {"type": "function_call", "call_id": "call_1", "name": "spawn_agent", "namespace": "multi_agent_v1", "arguments": "{}"},
            {"type": "custom_tool_call", "call_id": "call_2", "name": "apply_patch", "input": "*** Begin Patch"},
            {"type": "function_call_output", "call_id": "call_1", "output": "spawned"},
            {"type": "custom_tool_call_output", "call_id": "call_2", "output": "applied"}
        ],
        "tools": [
            {"type": "function", "name": "exec_command", "parameters": {"type": "object"}},
            {"type": "namespace", "name": "multi_agent_v1", "description": "Sub-agents.", "tools": [
                {"type": "function", "name": "spawn_agent", "description": "Spawn one.", "parameters": {"type": "object"}}]},
            {"type": "custom", "name": "apply_patch", "description": "Patch files.",
             "format": {"type": "grammar", "syntax": "lark", "definition": "start: patch"}},
            {"type": "web_search", "external_web_access": false}
        ]
    }))
}

#[test]
fn codex_tools_become_chat_functions_and_web_search_is_dropped() {
    let (chat, dropped) = codex_request().translate(HostedTools::Drop).unwrap();
    assert_eq!(dropped.header_value(), "web_search");
    let chat = serde_json::to_value(&chat).unwrap();
    let names: Vec<&str> = chat["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "exec_command",
            "apply_patch",
            "late",
            "multi_agent_v1__spawn_agent"
        ]
    );
    let patch = &chat["tools"][1]["function"];
    assert!(
        patch["description"]
            .as_str()
            .unwrap()
            .ends_with("lark grammar:\nstart: patch")
    );
    assert_eq!(patch["parameters"]["required"], json!(["input"]));
    assert_eq!(chat["tool_choice"], "auto");
    assert_eq!(chat["parallel_tool_calls"], true);
    for field in [
        "store",
        "include",
        "reasoning",
        "prompt_cache_key",
        "client_metadata",
    ] {
        assert!(chat.get(field).is_none(), "{field} was sent on");
    }
    let messages = chat["messages"].as_array().unwrap();
    assert_eq!(messages[0]["role"], "developer");
    let calls = &messages[2]["tool_calls"];
    assert_eq!(calls[0]["function"]["name"], "multi_agent_v1__spawn_agent");
    assert_eq!(
        calls[1]["function"]["arguments"],
        "{\"input\":\"*** Begin Patch\"}"
    );
    assert_eq!(messages[4]["tool_call_id"], "call_2");
    assert_eq!(messages.len(), 5);
}

#[test]
fn flattened_names_stay_legal_and_distinct() {
    let long = "n".repeat(60);
    let (chat, _) = request(json!({"model": "m", "input": "hi", "tools": [
        {"type": "function", "name": "ns__f"},
        {"type": "namespace", "name": "ns", "description": "", "tools": [{"type": "function", "name": "f"}]},
        {"type": "namespace", "name": "mcp.server", "description": "", "tools": [{"type": "function", "name": long}]}
    ]}))
    .translate(HostedTools::Drop)
    .unwrap();
    let chat = serde_json::to_value(&chat).unwrap();
    let names: Vec<String> = chat["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names[0], "ns__f");
    for name in &names[1..] {
        assert_ne!(name, "ns__f");
        assert!(name.len() <= 64, "{name}");
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
            "{name}"
        );
    }
}

#[test]
fn malformed_tools_and_items_are_refused_with_their_place() {
    let refused = |body: Value| request(body).to_chat().unwrap_err().0;
    let with_tools = |tools: Value| refused(json!({"model": "m", "input": "hi", "tools": tools}));
    for (tools, expected) in [
        (json!([{"name": "f"}]), "tools[0]: a tool needs a `type`"),
        (
            json!([{"type": "function"}]),
            "tools[0]: a function tool needs a `name`",
        ),
        (
            json!([{"type": "function", "name": 5}]),
            "tools[0]: a function tool needs a `name`",
        ),
        (
            json!([{"type": "custom", "name": ""}]),
            "tools[0]: a custom tool needs a `name`",
        ),
        (
            json!([{"type": "namespace", "name": "n"}]),
            "tools[0]: the namespace `n` needs `tools`",
        ),
        (
            json!([{"type": "namespace", "name": "n", "tools": {"a": 1}}]),
            "needs `tools`",
        ),
        (
            json!([{"type": "namespace", "name": "n", "tools": [{"type": "namespace", "name": "m", "tools": []}]}]),
            "tools[0].tools[0]: a namespace holds function and custom tools, not `namespace`",
        ),
        (
            json!([{"type": "function", "name": "f"}, {"type": "function", "name": "f"}]),
            "tools[1]: the tool `f` is declared twice",
        ),
        (
            json!([{"type": "custom", "name": "c", "format": {"type": "grammar"}}]),
            "tools[0].format: a grammar needs",
        ),
        (
            json!([{"type": "custom", "name": "c", "format": {"type": "xml"}}]),
            "tools[0].format",
        ),
        (
            json!([{"type": "teleport"}]),
            "tools[0]: tools of type `teleport` are not supported",
        ),
        (
            json!([{"type": ["web_search"]}]),
            "tools[0]: a tool needs a `type`",
        ),
    ] {
        let message = with_tools(tools);
        assert!(message.contains(expected), "{message}");
        assert!(!message.contains("Some("), "{message}");
    }
    let with_input = |input: Value| refused(json!({"model": "m", "input": input}));
    for (input, expected) in [
        (
            json!([{"type": "additional_tools", "tools": "x"}]),
            "input[0]: an `additional_tools` item needs `tools`",
        ),
        (
            json!([{"type": "function_call", "call_id": {"x": 1}, "name": "f", "arguments": "{}"}]),
            "input[0]: `call_id` must be a string",
        ),
        (
            json!([{"type": "custom_tool_call", "call_id": "c", "name": "f"}]),
            "input[0]: `input` must be a string",
        ),
        (
            json!([{"type": "function_call_output", "output": "x"}]),
            "input[0]: `call_id` must be a string",
        ),
        (
            json!([{"type": "compaction", "encrypted_content": "x"}]),
            "input[0]: a compaction item",
        ),
        (
            json!([{"type": "message", "role": {"r": 1}, "content": "x"}]),
            "input[0].role must be",
        ),
        (json!([{"type": 7}]), "input[0].role must be"),
        (
            json!([{"role": "user", "content": [{"type": "input_text", "text": {"t": 1}}]}]),
            "input[0].content[0]: `text` must be a string",
        ),
        (
            json!([{"role": "user", "content": [{"text": "x"}]}]),
            "input[0].content[0]: a content part needs a `type`",
        ),
        (
            json!([{"role": "user", "content": [{"type": "input_audio"}]}]),
            "input[0].content[0]: content of type `input_audio` is not supported",
        ),
    ] {
        let message = with_input(input);
        assert!(message.contains(expected), "{message}");
    }
    let choice = |choice: Value| {
        refused(
            json!({"model": "m", "input": "hi", "tools": [{"type": "function", "name": "f"}], "tool_choice": choice}),
        )
    };
    assert!(
        choice(json!({"type": "web_search_preview"})).contains("one of OpenAI's built-in tools")
    );
    assert!(choice(json!({"type": "function"})).contains("needs a `name`"));
    assert!(choice(json!("sometimes")).contains("`tool_choice` `sometimes` is not supported"));
    assert!(
        choice(json!({"type": "allowed_tools", "mode": "auto", "tools": []})).contains("must be")
    );
    // A huge namespace name still flattens to a legal name.
    let huge = "é".repeat(100_000);
    let (chat, _) = request(json!({"model": "m", "input": "hi", "tools": [
        {"type": "namespace", "name": huge, "description": "", "tools": [{"type": "custom", "name": "c"}]}]}))
    .translate(HostedTools::Drop)
    .unwrap();
    let name = chat.extra["tools"][0]["function"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(name.len(), 64, "{name}");
}

#[test]
fn only_built_in_tools_leave_no_tool_settings() {
    let (chat, dropped) = request(json!({"model": "m", "input": "hi", "tool_choice": "auto",
        "parallel_tool_calls": false, "tools": [{"type": "file_search"}, {"type": "mcp"}, {"type": "image_generation"}]}))
    .translate(HostedTools::Drop)
    .unwrap();
    assert_eq!(dropped.header_value(), "file_search, mcp, image_generation");
    let chat = serde_json::to_value(&chat).unwrap();
    for field in ["tools", "tool_choice", "parallel_tool_calls"] {
        assert!(chat.get(field).is_none(), "{field}");
    }
}

#[test]
fn namespaced_and_custom_calls_come_back_as_declared() {
    let req = codex_request();
    let completion = json!({"id": "chatcmpl-n", "choices": [{"index": 0, "finish_reason": "tool_calls",
        "message": {"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_a", "type": "function", "function": {"name": "multi_agent_v1__spawn_agent", "arguments": "{\"x\":1}"}},
            {"id": "call_b", "type": "function", "function": {"name": "apply_patch", "arguments": "{\"input\":\"*** Begin Patch\\n\"}"}},
            {"id": "call_c", "type": "function", "function": {"name": "apply_patch", "arguments": "not json"}}]}}]});
    let output = &from_chat(&completion, &req)["output"];
    assert_eq!(
        output[0],
        json!({"type": "function_call", "id": "fc_a", "call_id": "call_a", "name": "spawn_agent",
               "arguments": "{\"x\":1}", "status": "completed", "namespace": "multi_agent_v1"})
    );
    assert_eq!(
        output[1],
        json!({"type": "custom_tool_call", "id": "ctc_b", "call_id": "call_b", "name": "apply_patch",
               "input": "*** Begin Patch\n"})
    );
    assert_eq!(output[2]["input"], "not json");
}

#[test]
fn a_streamed_custom_call_gives_its_input_whole() {
    let stream = ResponsesStream::new(&codex_request());
    let chunk = |delta: Value| json!({"id": "chatcmpl-c", "choices": [{"index": 0, "delta": delta, "finish_reason": null}]});
    let all = crate::api::written_events(
        stream,
        &[
            chunk(
                json!({"tool_calls": [{"index": 0, "id": "call_p", "type": "function",
                "function": {"name": "apply_patch", "arguments": "{\"inp"}}]}),
            ),
            chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "ut\":\"a\\nb\"}"}}]}),
            ),
            chunk(
                json!({"tool_calls": [{"index": 1, "id": "call_s", "type": "function",
                "function": {"name": "multi_agent_v1__spawn_agent", "arguments": "{}"}}]}),
            ),
        ],
    );
    let types: Vec<&str> = all.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.custom_tool_call_input.delta",
            "response.custom_tool_call_input.done",
            "response.output_item.done",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    assert_eq!(all[2]["item"]["type"], "custom_tool_call");
    assert_eq!(all[3]["item"]["namespace"], "multi_agent_v1");
    assert_eq!(all[3]["item"]["name"], "spawn_agent");
    assert_eq!(all[5]["delta"], "a\nb");
    assert_eq!(all[6]["input"], "a\nb");
    assert_eq!(all[6]["item_id"], "ctc_p");
    assert_eq!(all[8]["name"], "spawn_agent");
    let done = &all[10]["response"]["output"];
    assert_eq!(done[0]["input"], "a\nb");
    assert_eq!(done[1]["namespace"], "multi_agent_v1");
}
