//! Golden tests of the Gemini translation: requests, answers, stream events, schemas.

use super::stream::ChunkStream;
use super::*;
use crate::api::ClientEvents;
use crate::api::UpstreamEvents;
use crate::api::chunk::ChunkOut;

fn chat(body: Value) -> ChatCompletionRequest {
    serde_json::from_value(body).unwrap()
}

#[test]
fn method_paths_name_the_model_resource() {
    assert_eq!(
        method_path("gemini-2.5-flash", "generateContent"),
        "/models/gemini-2.5-flash:generateContent"
    );
    assert_eq!(
        method_path("tunedModels/my-tune", "countTokens"),
        "/tunedModels/my-tune:countTokens"
    );
    assert_eq!(model_resource("a b?"), "models/a%20b%3F");
}

#[test]
fn chat_requests_become_generate_content_requests() {
    let request = generate_content_request(&chat(json!({
        "model": "gemini", "stream": true, "temperature": 0.3, "top_p": 0.9, "stop": "END",
        "max_tokens": 100, "n": 2, "seed": 7, "user": "u1",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Weather?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                {"type": "image_url", "image_url": {"url": "https://example.org/map.JPG?x=1"}}]},
            {"role": "assistant", "content": "", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "w", "arguments": "{\"city\":\"Oslo\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "t", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            {"role": "tool", "tool_call_id": "call_2", "content": "{\"c\": 21}"},
            {"role": "user", "content": "And tomorrow?"}
        ],
        "tools": [{"type": "function", "function": {"name": "w", "description": "Weather",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                   "required": ["city"], "additionalProperties": false}}},
                  {"type": "function", "function": {"name": "t", "parameters": {"type": "object", "properties": {}}}}],
        "tool_choice": {"type": "function", "function": {"name": "w"}}
    })))
    .unwrap();
    assert_eq!(
        request,
        json!({
            "contents": [
                {"role": "user", "parts": [{"text": "Weather?"},
                    {"inlineData": {"mimeType": "image/png", "data": "AAAA"}},
                    {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.org/map.JPG?x=1"}}]},
                {"role": "model", "parts": [{"functionCall": {"name": "w", "args": {"city": "Oslo"}}},
                                            {"functionCall": {"name": "t", "args": {}}}]},
                {"role": "user", "parts": [
                    {"functionResponse": {"name": "w", "response": {"result": "sunny"}}},
                    {"functionResponse": {"name": "t", "response": {"c": 21}}},
                    {"text": "And tomorrow?"}]}
            ],
            "systemInstruction": {"parts": [{"text": "Be brief."}]},
            "tools": [{"functionDeclarations": [
                {"name": "w", "description": "Weather", "parameters":
                    {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}, "required": ["city"]}},
                {"name": "t"}]}],
            "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["w"]}},
            "generationConfig": {"temperature": 0.3, "topP": 0.9, "candidateCount": 2, "seed": 7,
                                 "maxOutputTokens": 100, "stopSequences": ["END"]}
        })
    );
}

#[test]
fn requests_gemini_cannot_take_are_refused_by_name() {
    let refused = |body: Value| generate_content_request(&chat(body)).unwrap_err().0;
    assert!(
        refused(json!({"model": "m", "messages": [
        {"role": "tool", "tool_call_id": "nope", "content": "x"}]}))
        .contains("`nope` answers no tool call")
    );
    assert!(
        refused(
            json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.org/picture"}}]}]})
        )
        .contains("data: URL")
    );
    assert!(
        refused(json!({"model": "m", "messages": [{"role": "system", "content": "only me"}]}))
            .contains("at least one user or assistant message")
    );
    assert!(
        refused(
            json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {}}]}]})
        )
        .contains("input_audio")
    );
}

#[test]
fn structured_outputs_become_a_response_schema() {
    let schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "name": {"type": "string", "description": "Full name"},
            "age": {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "null"}]},
            "kind": {"const": "person"},
            "tags": {"type": "array", "items": {"type": ["string", "null"]}, "maxItems": 3},
            "address": {"$ref": "#/$defs/Address", "description": "Where"}
        },
        "required": ["name", "age"],
        "additionalProperties": false,
        "$defs": {"Address": {"type": "object", "properties": {"city": {"type": "string"}},
                              "required": ["city"], "additionalProperties": false}}
    });
    let request = generate_content_request(&chat(json!({
        "model": "m", "messages": [{"role": "user", "content": "Who?"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "p", "strict": true, "schema": schema}}
    })))
    .unwrap();
    let config = &request["generationConfig"];
    assert_eq!(config["responseMimeType"], "application/json");
    assert_eq!(
        config["responseSchema"],
        json!({
            "type": "OBJECT",
            "propertyOrdering": ["name", "age", "kind", "tags", "address"],
            "properties": {
                "name": {"type": "STRING", "description": "Full name"},
                "age": {"type": "INTEGER", "minimum": 0, "nullable": true},
                "kind": {"enum": ["person"], "type": "STRING"},
                "tags": {"type": "ARRAY", "items": {"type": "STRING", "nullable": true}, "maxItems": 3},
                "address": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}},
                            "required": ["city"], "description": "Where"}
            },
            "required": ["name", "age"]
        })
    );
    // The schema's own property order survives into the request body.
    let text = serde_json::to_string(&request).unwrap();
    assert!(text.find("\"name\":{").unwrap() < text.find("\"age\":{").unwrap());

    let json_object = generate_content_request(&chat(json!({
        "model": "m", "messages": [{"role": "user", "content": "Hi"}], "response_format": {"type": "json_object"}})))
    .unwrap();
    assert_eq!(
        json_object["generationConfig"],
        json!({"responseMimeType": "application/json"})
    );
}

#[test]
fn unsupported_schema_keywords_are_refused_not_dropped() {
    let refused = |schema: Value| {
        generate_content_request(&chat(json!({
            "model": "m", "messages": [{"role": "user", "content": "Hi"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}})))
        .unwrap_err()
        .0
    };
    let message = refused(
        json!({"type": "object", "properties": {"n": {"type": "integer", "multipleOf": 5}}}),
    );
    assert_eq!(
        message,
        "response_format.json_schema.schema.properties.n.multipleOf: the keyword `multipleOf` cannot be expressed (Gemini upstreams)"
    );
    assert!(
        refused(json!({"oneOf": [{"type": "string"}, {"type": "integer"}]})).contains("`oneOf`")
    );
    assert!(refused(json!({"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": true}))
        .contains("additionalProperties"));
    assert!(
        refused(json!({"type": "object", "properties": {"next": {"$ref": "#"}}}))
            .contains("recursive reference")
    );
    assert!(refused(json!({"$ref": "#/$defs/Missing"})).contains("points nowhere"));
    assert!(refused(json!({"type": ["string", "integer"]})).contains("several non-null types"));
    assert!(refused(json!({"enum": [1, 2]})).contains("string `enum`"));
    assert!(refused(json!({"type": "array", "items": [{"type": "string"}]})).contains("tuple"));
    let tool = generate_content_request(&chat(json!({
        "model": "m", "messages": [{"role": "user", "content": "Hi"}],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "patternProperties": {}}}}]})))
    .unwrap_err()
    .0;
    assert!(
        tool.starts_with("tools[0].function.parameters.patternProperties:"),
        "{tool}"
    );
}

#[test]
fn responses_become_chat_completions() {
    let response = json!({
        "candidates": [{"content": {"role": "model", "parts": [
            {"text": "thinking...", "thought": true},
            {"text": "Checking."},
            {"functionCall": {"name": "w", "args": {"city": "Oslo"}}}]},
            "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 7, "thoughtsTokenCount": 3,
                          "totalTokenCount": 22},
        "modelVersion": "gemini-2.5-flash", "responseId": "abc"
    });
    assert_eq!(
        chat_completion(&response, "gemini", 1700000000),
        json!({
            "id": "chatcmpl-abc", "object": "chat.completion", "created": 1700000000, "model": "gemini",
            "choices": [{"index": 0, "logprobs": null, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": "Checking.",
                "tool_calls": [{"id": "call_abc_0", "type": "function",
                                "function": {"name": "w", "arguments": "{\"city\":\"Oslo\"}"}}]}}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 10, "total_tokens": 22,
                      "completion_tokens_details": {"reasoning_tokens": 3}}
        })
    );
    let limited = json!({"candidates": [{"content": {"parts": [{"text": "Cut"}]}, "finishReason": "MAX_TOKENS"}],
                         "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 1}});
    assert_eq!(
        chat_completion(&limited, "g", 0)["choices"][0]["finish_reason"],
        "length"
    );
    let blocked = json!({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 4}});
    let completion = chat_completion(&blocked, "g", 0);
    assert_eq!(completion["choices"][0]["finish_reason"], "content_filter");
    assert_eq!(completion["choices"][0]["message"]["content"], Value::Null);
}

#[test]
fn stream_events_become_chunks() {
    let mut stream = ChunkStream::new("gemini", 1);
    let events = [
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Hel"}]}, "index": 0}],
               "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 1}, "responseId": "r9"}),
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "lo"},
               {"functionCall": {"name": "w", "args": {"a": 1}}}]}, "finishReason": "STOP", "index": 0}],
               "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 9, "totalTokenCount": 14}}),
    ];
    let mut chunks = crate::api::chunk::translated(&mut stream, &events);
    chunks.extend(stream.on_end().iter().map(ChunkOut::to_value));
    assert_eq!(chunks.len(), 7, "{chunks:#?}");
    assert_eq!(chunks[0]["id"], "chatcmpl-r9");
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(chunks[1]["choices"][0]["delta"]["content"], "Hel");
    assert_eq!(chunks[2]["choices"][0]["delta"]["content"], "lo");
    assert_eq!(
        chunks[3]["choices"][0]["delta"]["tool_calls"][0],
        json!({"index": 0, "id": "call_r9_0", "type": "function", "function": {"name": "w", "arguments": "{\"a\":1}"}})
    );
    assert_eq!(chunks[4]["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        chunks[5]["usage"],
        json!({"prompt_tokens": 5, "completion_tokens": 9, "total_tokens": 14})
    );
    assert_eq!(chunks[6], "[DONE]");
}

#[test]
fn a_stream_without_a_finish_reason_has_no_clean_end() {
    let mut stream = ChunkStream::new("gemini", 1);
    crate::api::chunk::translated(
        &mut stream,
        &[json!({"candidates": [{"content": {"parts": [{"text": "Hi"}]}}]})],
    );
    assert!(
        stream.on_end().is_empty(),
        "no [DONE]: the relay reports it cut short"
    );
    let mut errored = ChunkStream::new("gemini", 1);
    let chunks = crate::api::chunk::translated(
        &mut errored,
        &[json!({"error": {"code": 500, "message": "Internal error", "status": "INTERNAL"}})],
    );
    assert_eq!(chunks[0]["error"]["message"], "Internal error");
    assert!(errored.on_event(b"{not json").is_err());
}

#[test]
fn gemini_requests_become_chat_requests() {
    let body = json!({
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "contents": [
            {"role": "user", "parts": [{"text": "Weather?"}, {"inline_data": {"mime_type": "image/png", "data": "AAAA"}}]},
            {"role": "model", "parts": [{"text": "plan", "thought": true},
                {"functionCall": {"name": "w", "args": {"city": "Oslo"}}, "thoughtSignature": "c2ln"},
                {"functionCall": {"name": "w", "args": {"city": "Rome"}}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "w", "response": {"sky": "sun"}}},
                                       {"functionResponse": {"name": "w", "response": {"sky": "rain"}}}]}
        ],
        "tools": [{"functionDeclarations": [{"name": "w", "description": "Weather", "parameters": {
            "type": "OBJECT", "properties": {"city": {"type": "STRING", "nullable": true}}, "required": ["city"],
            "propertyOrdering": ["city"]}}]}],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["w"]}},
        "generationConfig": {"maxOutputTokens": 50, "temperature": 0.1, "stopSequences": ["END"],
                             "responseMimeType": "application/json",
                             "responseSchema": {"type": "ARRAY", "items": {"type": "STRING"}}}
    });
    let chat = ingress::to_chat(body.to_string().as_bytes(), "alias", true).unwrap();
    assert_eq!(
        serde_json::to_value(&chat).unwrap(),
        json!({
            "model": "alias", "stream": true,
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Weather?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
                {"role": "assistant", "content": "", "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "w", "arguments": "{\"city\":\"Oslo\"}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "w", "arguments": "{\"city\":\"Rome\"}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "{\"sky\":\"sun\"}"},
                {"role": "tool", "tool_call_id": "call_2", "content": "{\"sky\":\"rain\"}"}
            ],
            "tools": [{"type": "function", "function": {"name": "w", "description": "Weather", "parameters":
                {"type": "object", "properties": {"city": {"type": ["string", "null"]}}, "required": ["city"]}}}],
            "tool_choice": {"type": "function", "function": {"name": "w"}},
            "max_tokens": 50, "temperature": 0.1, "stop": ["END"],
            "response_format": {"type": "json_schema", "json_schema": {"name": "response",
                "schema": {"type": "array", "items": {"type": "string"}}}}
        })
    );
    let refused = |body: Value| {
        ingress::to_chat(body.to_string().as_bytes(), "m", false)
            .unwrap_err()
            .0
    };
    assert!(
        refused(json!({"contents": [{"parts": [{"text": "x"}]}], "labels": {}}))
            .contains("Unknown name \"labels\"")
    );
    assert!(
        refused(
            json!({"contents": [{"parts": [{"functionResponse": {"name": "w", "response": {}}}]}]})
        )
        .contains("answers no earlier functionCall")
    );
    assert!(refused(json!({"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {
        "responseMimeType": "application/json", "responseSchema": {"type": "OBJECT", "additionalProperties": false}}}))
    .contains("Unknown name \"additionalProperties\""));
    // Found by the adversarial suite: a part missing its required fields panicked.
    assert!(
        refused(json!({"contents": [{"parts": [{"inlineData": {"data": "aGk="}}]}]}))
            .contains("inlineData.mimeType: a string is required")
    );
    assert!(
        refused(json!({"contents": [{"parts": [{"fileData": {"mimeType": "image/png"}}]}]}))
            .contains("fileData.fileUri: a string is required")
    );
}

#[test]
fn chat_answers_become_gemini_answers() {
    let completion = json!({"id": "chatcmpl-r1", "choices": [{"index": 0, "finish_reason": "tool_calls",
        "message": {"role": "assistant", "content": "Ok.", "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "w", "arguments": "{\"a\":1}"}}]}}],
        "usage": {"prompt_tokens": 4, "completion_tokens": 6}});
    assert_eq!(
        ingress::from_chat(&completion, "alias"),
        json!({"candidates": [{"content": {"parts": [{"text": "Ok."}, {"functionCall": {"name": "w", "args": {"a": 1}}}],
                                           "role": "model"}, "finishReason": "STOP", "index": 0}],
               "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 6, "totalTokenCount": 10,
                                 "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 4}]},
               "modelVersion": "alias", "responseId": "r1"})
    );

    let mut events = ingress::GeminiEvents::new("alias", None);
    let mut out = bytes::BytesMut::new();
    for chunk in [
        json!({"id": "chatcmpl-s", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}),
        json!({"id": "chatcmpl-s", "choices": [{"index": 0, "delta": {"content": "Hi"}}]}),
        json!({"id": "chatcmpl-s", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "c", "function": {"name": "w", "arguments": "{\"a\""}}]}}]}),
        json!({"id": "chatcmpl-s", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": ":2}"}}]}, "finish_reason": "tool_calls"}]}),
        json!({"id": "chatcmpl-s", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 5}}),
    ] {
        let text = chunk.to_string();
        events.on_chunk(&serde_json::from_str(&text).unwrap(), &mut out);
    }
    events.finish(&mut out);
    let text = String::from_utf8(out.to_vec()).unwrap();
    let events: Vec<Value> = text
        .split("\r\n\r\n")
        .filter(|e| !e.is_empty())
        .map(|e| serde_json::from_str(e.strip_prefix("data: ").unwrap()).unwrap())
        .collect();
    assert_eq!(events.len(), 2, "{text}");
    assert_eq!(
        events[0]["candidates"][0]["content"]["parts"][0]["text"],
        "Hi"
    );
    assert!(
        events[0].get("usageMetadata").is_none(),
        "the prompt size is not known yet"
    );
    assert_eq!(
        events[1]["candidates"][0],
        json!({"content": {"parts": [{"functionCall": {"name": "w", "args": {"a": 2}}}], "role": "model"},
               "finishReason": "STOP", "index": 0})
    );
    assert_eq!(events[1]["usageMetadata"]["totalTokenCount"], 8);
}

#[test]
fn a_body_model_must_be_a_string_naming_the_path_model() {
    let body = |model: Value| json!({"model": model, "contents": [{"parts": [{"text": "x"}]}]});
    let to_chat = |b: Value| ingress::to_chat(b.to_string().as_bytes(), "m", false);
    for accepted in [json!("m"), json!("models/m")] {
        assert_eq!(to_chat(body(accepted)).unwrap().model, "m");
    }
    for (refused, says) in [
        (json!(42), "got a number"),
        (json!({"name": "m"}), "got an object"),
        (json!(["m"]), "got a list"),
        (json!(null), "got null"),
        (json!("models/other"), "not the model of the request path"),
    ] {
        let message = to_chat(body(refused.clone())).unwrap_err().0;
        assert!(message.contains(says), "{refused}: {message}");
    }
    // A countTokens body's nested request is held to the same rule.
    let counted =
        ingress::counted_request(br#"{"generateContentRequest": {"model": 7, "contents": []}}"#)
            .unwrap();
    assert!(ingress::to_chat(&counted, "m", false).is_err());
}

#[test]
fn a_late_system_message_stays_in_place_and_empty_tools_are_left_out() {
    let request = generate_content_request(&chat(json!({
        "model": "m",
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}]},
            {"role": "user", "content": "hi"},
            {"role": "system", "content": "env"}
        ],
        "tools": [], "tool_choice": "auto"
    })))
    .unwrap();
    assert_eq!(
        request["systemInstruction"],
        json!({"parts": [{"text": "Be brief."}]})
    );
    assert_eq!(
        request["contents"],
        json!([{"role": "user", "parts": [{"text": "hi"}, {"text": "<system-reminder>\nenv\n</system-reminder>"}]}])
    );
    assert!(request.get("tools").is_none() && request.get("toolConfig").is_none());
}
