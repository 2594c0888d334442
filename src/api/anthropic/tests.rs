//! Golden tests: requests and answers as Anthropic's documentation shows them, and the
//! OpenAI form they must become.

use super::*;
use crate::api::openai::ForwardedRequest;

fn translate(request: Value) -> Value {
    let parsed: MessagesRequest = serde_json::from_value(request).unwrap();
    serde_json::to_value(parsed.to_chat().unwrap()).unwrap()
}

#[test]
fn a_conversation_with_system_images_and_settings() {
    let chat = translate(json!({
        "model": "claude-like",
        "max_tokens": 1024,
        "system": [{"type": "text", "text": "You are terse. "}, {"type": "text", "text": "Answer in English."}],
        "messages": [
            {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": [{"type": "text", "text": "Hi."}]},
            {"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
            ]}
        ],
        "stop_sequences": ["\n\nHuman:"],
        "temperature": 0.2,
        "top_k": 40,
        "metadata": {"user_id": "u-42"},
        "stream": true
    }));
    assert_eq!(
        chat,
        json!({
            "model": "claude-like",
            "messages": [
                {"role": "system", "content": "You are terse. Answer in English."},
                {"role": "user", "content": "Hello"},
                {"role": "assistant", "content": "Hi."},
                {"role": "user", "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
                ]}
            ],
            "max_tokens": 1024,
            "stop": ["\n\nHuman:"],
            "temperature": 0.2,
            "top_k": 40,
            "user": "u-42",
            "stream": true
        })
    );
}

#[test]
fn tools_calls_and_results() {
    let chat = translate(json!({
        "model": "m",
        "max_tokens": 256,
        "tools": [{
            "name": "get_weather",
            "description": "Current weather in a city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
        }],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
        "messages": [
            {"role": "user", "content": "Weather in Paris and Oslo?"},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Oslo"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18 C, sunny"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": [{"type": "text", "text": "unknown city"}], "is_error": true},
                {"type": "text", "text": "Thanks"}
            ]}
        ]
    }));
    assert_eq!(chat["tool_choice"], "required");
    assert_eq!(chat["parallel_tool_calls"], false);
    assert_eq!(
        chat["tools"][0],
        json!({"type": "function", "function": {
            "name": "get_weather",
            "description": "Current weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
        }})
    );
    assert_eq!(
        chat["messages"],
        json!([
            {"role": "user", "content": "Weather in Paris and Oslo?"},
            {"role": "assistant", "content": "Checking.", "tool_calls": [
                {"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "toolu_2", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "toolu_1", "content": "18 C, sunny"},
            {"role": "tool", "tool_call_id": "toolu_2", "content": "Error: unknown city"},
            {"role": "user", "content": "Thanks"}
        ])
    );
    let named = translate(json!({"model": "m", "max_tokens": 1, "messages": [],
        "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "tool", "name": "get_weather"}}));
    assert_eq!(
        named["tool_choice"],
        json!({"type": "function", "function": {"name": "get_weather"}})
    );
}

#[test]
fn malformed_requests_are_refused_with_a_reason() {
    let cases = [
        (
            json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": 5}]}),
            "must be a string or a list",
        ),
        (
            json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": [{"type": "video"}]}]}),
            "unsupported content block `video`",
        ),
        (
            json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "file"}}]}]}),
            "base64",
        ),
        (
            json!({"model": "m", "max_tokens": 1, "messages": [], "tool_choice": {"type": "tool"}}),
            "tool_choice",
        ),
    ];
    for (request, expected) in cases {
        let parsed: MessagesRequest = serde_json::from_value(request).unwrap();
        let err = parsed.to_chat().unwrap_err().to_string();
        assert!(err.contains(expected), "{err}");
    }
    assert!(
        serde_json::from_value::<MessagesRequest>(json!({"model": "m", "messages": []})).is_err(),
        "max_tokens is required"
    );
    assert!(
        serde_json::from_value::<MessagesRequest>(
            json!({"model": "m", "max_tokens": 1, "messages": [{"role": "developer", "content": "x"}]})
        )
        .is_err()
    );
}

#[test]
fn answers_come_back_in_anthropic_form() {
    // A vLLM chat completion with text and a tool call.
    let completion = json!({
        "id": "chatcmpl-abc123",
        "object": "chat.completion",
        "model": "mock-llama",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": "Let me check.", "tool_calls": [
                {"id": "chatcmpl-tool-1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}
            ]},
            "finish_reason": "tool_calls",
            "stop_reason": null
        }],
        "usage": {"prompt_tokens": 21, "completion_tokens": 9, "total_tokens": 30}
    });
    assert_eq!(
        from_chat(&completion, "claude-like"),
        json!({
            "id": "msg_abc123",
            "type": "message",
            "role": "assistant",
            "model": "claude-like",
            "content": [
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "chatcmpl-tool-1", "name": "get_weather", "input": {"city": "Paris"}}
            ],
            "stop_reason": "tool_use",
            "stop_sequence": null,
            "usage": {"input_tokens": 21, "output_tokens": 9}
        })
    );
    assert_eq!(
        stop_reason(Some("stop"), Some("\n\nHuman:")),
        ("stop_sequence", Some("\n\nHuman:".into()))
    );
    assert_eq!(stop_reason(Some("length"), None), ("max_tokens", None));
    assert_eq!(stop_reason(Some("stop"), None), ("end_turn", None));
    assert_eq!(tool_input("not json"), json!({}));
}

#[test]
fn errors_take_anthropic_types() {
    let body: Value = serde_json::from_slice(&error_json(429, "slow down")).unwrap();
    assert_eq!(
        body,
        json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}})
    );
    let body: Value = serde_json::from_slice(&error_json(502, "x")).unwrap();
    assert_eq!(body["error"]["type"], "api_error");
}

#[test]
fn the_translated_request_routes_like_a_chat_request() {
    let parsed: MessagesRequest = serde_json::from_value(json!({
        "model": "m", "max_tokens": 5, "stream": true,
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"name": "t", "input_schema": {"type": "object"}}]
    }))
    .unwrap();
    let chat = parsed.to_chat().unwrap();
    assert_eq!(chat.model(), "m");
    assert!(chat.is_stream());
    let features = chat.features();
    assert!(features.tools && features.streaming);
}

/// Claude Code's request for a model name it does not know, trimmed.
fn claude_code_request() -> Value {
    json!({
        "model": "onprem-coder",
        "max_tokens": 32000,
        "stream": true,
        "system": [
            {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.337;"},
            {"type": "text", "text": "You are a coding agent.", "cache_control": {"type": "ephemeral"}}
        ],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "<system-reminder>notes</system-reminder>"}, {"type": "text", "text": "say hi"}]},
            {"role": "system", "content": [{"type": "text", "text": "# Environment", "cache_control": {"type": "ephemeral"}}]}
        ],
        "tools": [
            {"name": "Bash", "description": "Run", "input_schema": {"type": "object"}, "strict": true},
            {"name": "Read", "description": "Read", "input_schema": {"type": "object"},
             "input_examples": [{}], "cache_control": {"type": "ephemeral"}},
            {"name": "DeferredToolPlaceholder", "description": "never call", "input_schema": {"type": "object"},
             "defer_loading": true}
        ],
        "metadata": {"user_id": "{\"device_id\":\"dev-1\",\"account_uuid\":\"\",\"session_id\":\"sess-1\"}"},
        "thinking": {"type": "adaptive", "display": "omitted"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "output_config": {"effort": "high"}
    })
}

#[test]
fn claude_codes_request_is_translated_with_its_system_message_in_place() {
    let chat = translate(claude_code_request());
    assert_eq!(
        chat["messages"],
        json!([
            {"role": "system", "content": [
                {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.337;"},
                {"type": "text", "text": "You are a coding agent.", "cache_control": {"type": "ephemeral"}}
            ]},
            {"role": "user", "content": [
                {"type": "text", "text": "<system-reminder>notes</system-reminder>"},
                {"type": "text", "text": "say hi"}
            ]},
            {"role": "system", "content": [{"type": "text", "text": "# Environment", "cache_control": {"type": "ephemeral"}}]}
        ])
    );
    assert_eq!(chat["user"], "dev-1", "the device, not the session");
    assert_eq!(chat["reasoning_effort"], "high");
    assert_eq!(chat["tools"][0]["function"]["strict"], true);
    assert_eq!(
        chat["tools"][1]["cache_control"],
        json!({"type": "ephemeral"})
    );
    for dropped in [
        "thinking",
        "context_management",
        "output_config",
        "metadata",
    ] {
        assert!(chat.get(dropped).is_none(), "{dropped}");
    }
    assert!(chat["tools"][1].get("defer_loading").is_none());
}

#[test]
fn end_users_thinking_blocks_and_empty_tools() {
    let mut request = claude_code_request();
    request["metadata"]["user_id"] =
        json!("{\"device_id\":\"dev-1\",\"account_uuid\":\"acct-9\",\"session_id\":\"s\"}");
    assert_eq!(translate(request.clone())["user"], "acct-9");
    request["metadata"]["user_id"] = json!("plain-user");
    assert_eq!(translate(request.clone())["user"], "plain-user");
    // A thinking block an Anthropic model wrote earlier is left out of the history.
    request["messages"] = json!([
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "sig"},
            {"type": "redacted_thinking", "data": "x"},
            {"type": "text", "text": "Hello."}
        ]}
    ]);
    // An empty list of tools goes nowhere, nor does a choice among none; nor a list of
    // deferred tools only.
    let mut deferred_only = request.clone();
    deferred_only["tools"] = json!([{"name": "D", "input_schema": {}, "defer_loading": true}]);
    assert!(translate(deferred_only).get("tools").is_none());
    request["tools"] = json!([]);
    request["tool_choice"] = json!({"type": "any", "disable_parallel_tool_use": true});
    let chat = translate(request);
    assert_eq!(
        chat["messages"][2],
        json!({"role": "assistant", "content": "Hello."})
    );
    for absent in ["tools", "tool_choice", "parallel_tool_calls"] {
        assert!(chat.get(absent).is_none(), "{absent}");
    }
}

#[test]
fn hostile_claude_code_fields_are_refused_not_panicked_on() {
    let refused_at_parse = [
        ("thinking", json!({"type": "ultra"})),
        ("thinking", json!({"type": "enabled"})),
        ("thinking", json!("adaptive")),
        ("context_management", json!([1, 2])),
        ("output_config", json!("high")),
        ("metadata", json!({"user_id": 5})),
    ];
    for (field, value) in refused_at_parse {
        let mut request = claude_code_request();
        request[field] = value;
        assert!(
            serde_json::from_value::<MessagesRequest>(request).is_err(),
            "{field}"
        );
    }
    let mut deep = json!("leaf");
    for _ in 0..200 {
        deep = json!({"edits": deep});
    }
    let text = claude_code_request().to_string().replacen(
        "\"context_management\":",
        &format!("\"context_management\":{deep},\"x\":"),
        1,
    );
    assert!(
        serde_json::from_str::<MessagesRequest>(&text).is_err(),
        "recursion limit"
    );

    let refused_at_translation: [(&str, Value, &str); 7] = [
        (
            "output_config",
            json!({"effort": "ludicrous"}),
            "output_config.effort",
        ),
        (
            "output_config",
            json!({"format": {"type": "xml"}}),
            "json_schema",
        ),
        (
            "output_config",
            json!({"format": {"type": "json_schema", "schema": 1}}),
            "schema",
        ),
        (
            "metadata",
            json!({"user_id": "u".repeat(257)}),
            "longer than 256",
        ),
        (
            "system",
            json!([{"type": "text", "text": "x", "cache_control": "yes"}]),
            "cache_control",
        ),
        (
            "system",
            json!([{"type": "image", "source": {}}]),
            "text blocks only",
        ),
        (
            "tools",
            json!([{"name": "t", "input_schema": {}, "cache_control": []}]),
            "cache_control",
        ),
    ];
    for (field, value, expected) in refused_at_translation {
        let mut request = claude_code_request();
        request[field] = value;
        let parsed: MessagesRequest = serde_json::from_value(request).unwrap();
        let err = parsed.to_chat().unwrap_err().to_string();
        assert!(err.contains(expected), "{field}: {err}");
    }
    let mut request = claude_code_request();
    request["messages"][1]["content"] = json!([{"type": "tool_use", "id": "t", "name": "n"}]);
    let parsed: MessagesRequest = serde_json::from_value(request).unwrap();
    assert!(parsed.to_chat().unwrap_err().0.contains("text blocks only"));
}

#[test]
fn structured_output_becomes_a_response_format() {
    let mut request = claude_code_request();
    request["output_config"] =
        json!({"effort": "max", "format": {"type": "json_schema", "schema": {"type": "object"}}});
    let chat = translate(request);
    assert_eq!(chat["reasoning_effort"], "high");
    assert_eq!(
        chat["response_format"],
        json!({"type": "json_schema", "json_schema": {"name": "output", "schema": {"type": "object"}}})
    );
}

#[test]
fn server_tools_are_dropped_and_named_or_refused_and_built_in_schemas_refused() {
    let mut request = claude_code_request();
    request["tools"] = json!([
        {"type": "web_search_20250305", "name": "web_search", "max_uses": 5},
        {"name": "Read", "input_schema": {"type": "object"}},
        {"type": "web_fetch_20250910", "name": "web_fetch"}
    ]);
    let parsed: MessagesRequest = serde_json::from_value(request.clone()).unwrap();
    let (chat, dropped) = parsed.translate(HostedTools::Drop).unwrap();
    assert_eq!(dropped.header_value(), "web_search, web_fetch");
    let tools = chat.extra["tools"].as_array().unwrap();
    assert_eq!(tools.len(), 1);
    assert_eq!(tools[0]["function"]["name"], "Read");
    let refused = parsed.translate(HostedTools::Refuse).unwrap_err().0;
    assert!(
        refused.starts_with("tools[0]: `web_search` is a built-in tool of Anthropic's platform"),
        "{refused}"
    );
    request["tools"] = json!([{"type": "bash_20250124", "name": "bash"}]);
    let parsed: MessagesRequest = serde_json::from_value(request.clone()).unwrap();
    let err = parsed.to_chat().unwrap_err().0;
    assert!(
        err.contains("`bash_20250124` is one of Anthropic's tools"),
        "{err}"
    );
    request["tools"] = json!([{"name": "no_schema"}]);
    let parsed: MessagesRequest = serde_json::from_value(request).unwrap();
    let err = parsed.to_chat().unwrap_err().0;
    assert_eq!(
        err,
        "tools[0].input_schema: Field required (tool `no_schema`)"
    );
}
