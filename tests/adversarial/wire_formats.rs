//! Fuzzing every client wire format Airlock parses (OpenAI chat, completions, embeddings,
//! Anthropic Messages, the Responses API, Gemini generateContent) through the steps the
//! gateway takes with a body: parse, translate to a chat request, the facts policy and
//! personal-data stages read, and the translations for Anthropic and Gemini upstreams.
//! And the way back: hostile upstream answers into each client's answer shape. Nothing
//! may panic, and whatever a translation accepts must be a valid chat request.

use crate::fuzz::{arb_json, fuzz, mutated};
use airlock::api::anthropic::{self, MessagesRequest};
use airlock::api::gemini::{self, ingress};
use airlock::api::openai::{
    ChatCompletionRequest, CompletionRequest, EmbeddingRequest, ForwardedRequest,
};
use airlock::api::responses::{self, ResponsesRequest};
use proptest::prelude::*;
use proptest::test_runner::TestCaseResult;
use serde_json::{Value, json};

/// A body as a client could send it: a damaged valid one, or anything at all.
fn bodies(seeds: Vec<Value>) -> impl Strategy<Value = Value> {
    prop_oneof![4 => mutated(seeds), 1 => arb_json()]
}

/// A generated body as the bytes a client sends.
fn bytes(body: &Value) -> Vec<u8> {
    serde_json::to_vec(body).unwrap_or_default()
}

/// What the gateway does with any request it forwards, short of sending it.
fn forwarded(mut request: impl ForwardedRequest) -> TestCaseResult {
    let _ = request.features();
    let _ = request.prompt_text();
    let _ = request.completion_budget();
    let _ = request.end_user();
    for (_, text) in request.texts_mut() {
        text.push_str(" <PERSON_1>");
    }
    request.request_stream_usage();
    request.set_model("other-model".into());
    let sent = serde_json::to_vec(&request);
    prop_assert!(sent.is_ok(), "a parsed request does not serialise");
    let value: Value = serde_json::from_slice(&sent.unwrap_or_default()).unwrap_or(Value::Null);
    let _ = airlock::policy::facts::request_text(&value);
    Ok(())
}

/// A chat request made by a translation: valid as a chat request, and translatable for
/// every upstream kind without a panic.
fn chat(request: ChatCompletionRequest) -> TestCaseResult {
    let bytes = serde_json::to_vec(&request).unwrap_or_default();
    let reparsed = serde_json::from_slice::<ChatCompletionRequest>(&bytes);
    prop_assert!(
        reparsed.is_ok(),
        "a translation made a chat request that does not parse back: {}",
        String::from_utf8_lossy(&bytes)
    );
    let _ = anthropic::upstream::messages_request(&request, "claude-x");
    let _ = gemini::generate_content_request(&request);
    forwarded(request)
}

fn chat_seeds() -> Vec<Value> {
    vec![
        json!({"model": "chat-model", "messages": [{"role": "user", "content": "Hello, I am John Smith"}]}),
        json!({"model": "chat-model", "stream": true, "stream_options": {"include_usage": true},
            "max_tokens": 16, "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "what is this"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                    "function": {"name": "lookup", "arguments": "{\"q\": 1}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "42"}],
            "tools": [{"type": "function", "function": {"name": "lookup", "description": "d",
                "parameters": {"type": "object", "properties": {"q": {"type": "integer"}}}}}],
            "tool_choice": {"type": "function", "function": {"name": "lookup"}}}),
        json!({"model": "chat-model", "messages": [{"role": "user", "content": "json please"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "strict": true,
                "schema": {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}}}}),
    ]
}

#[test]
fn openai_chat_requests() {
    fuzz("openai_chat", bodies(chat_seeds()), |body| {
        if let Ok(request) = serde_json::from_slice::<ChatCompletionRequest>(&bytes(&body)) {
            chat(request)?;
        }
        Ok(())
    });
}

#[test]
fn openai_completion_and_embedding_requests() {
    let seeds = vec![
        json!({"model": "chat-model", "prompt": "Say hi", "max_tokens": 5, "stream": true}),
        json!({"model": "chat-model", "prompt": [[1, 2, 3], "x"], "user": "u1"}),
        json!({"model": "embed-model", "input": ["a", "b"], "encoding_format": "float"}),
        json!({"model": "embed-model", "input": [[1, 2], [3]]}),
    ];
    fuzz("openai_completions_embeddings", bodies(seeds), |body| {
        if let Ok(request) = serde_json::from_slice::<CompletionRequest>(&bytes(&body)) {
            forwarded(request)?;
        }
        if let Ok(request) = serde_json::from_slice::<EmbeddingRequest>(&bytes(&body)) {
            forwarded(request)?;
        }
        Ok(())
    });
}

#[test]
fn anthropic_messages_requests() {
    let seeds = vec![
        json!({"model": "chat-model", "max_tokens": 64, "system": "Be brief.",
            "messages": [{"role": "user", "content": "Hi, I'm Jane Doe"}]}),
        json!({"model": "chat-model", "max_tokens": 64, "stream": true,
            "system": [{"type": "text", "text": "sys", "cache_control": {"type": "ephemeral"}}],
            "stop_sequences": ["END"], "top_k": 3, "metadata": {"user_id": "u-1"},
            "tools": [{"name": "get_weather", "description": "w",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
            "tool_choice": {"type": "tool", "name": "get_weather"},
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "weather?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}]},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "tu_1", "name": "get_weather", "input": {"city": "Paris"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "tu_1",
                    "content": [{"type": "text", "text": "sunny"}]}]}]}),
    ];
    fuzz("anthropic_messages", bodies(seeds), |body| {
        if let Ok(request) = serde_json::from_slice::<MessagesRequest>(&bytes(&body)) {
            let _ = request.is_stream();
            if let Ok(translated) = request.to_chat() {
                chat(translated)?;
            }
        }
        Ok(())
    });
}

#[test]
fn responses_api_requests() {
    let seeds = vec![
        json!({"model": "chat-model", "input": "Hello", "instructions": "Be brief.",
            "max_output_tokens": 32, "stream": true}),
        json!({"model": "chat-model", "input": [
                {"role": "user", "content": [{"type": "input_text", "text": "weather?"},
                    {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="}]},
                {"type": "function_call", "call_id": "c1", "name": "w", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
                {"type": "reasoning", "summary": []}],
            "tools": [{"type": "function", "name": "w", "parameters": {"type": "object"}}],
            "tool_choice": "auto", "text": {"format": {"type": "json_schema", "name": "s",
                "schema": {"type": "object"}}}, "reasoning": {"effort": "low"}, "user": "u"}),
    ];
    fuzz("responses", bodies(seeds), |body| {
        if let Ok(request) = serde_json::from_slice::<ResponsesRequest>(&bytes(&body)) {
            let _ = request.is_stream();
            let _ = request.response_template("resp_1", 0);
            if let Ok(translated) = request.to_chat() {
                chat(translated)?;
            }
        }
        Ok(())
    });
}

#[test]
fn gemini_generate_content_requests() {
    let seeds = vec![
        json!({"contents": [{"role": "user", "parts": [{"text": "Hi, I'm Max Mustermann"}]}]}),
        json!({"systemInstruction": {"parts": [{"text": "Be brief."}]},
            "contents": [
                {"role": "user", "parts": [{"text": "weather?"},
                    {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}]},
                {"role": "model", "parts": [{"functionCall": {"name": "w", "args": {"city": "Rome"}}}]},
                {"role": "user", "parts": [{"functionResponse": {"name": "w", "response": {"t": 20}}}]}],
            "tools": [{"functionDeclarations": [{"name": "w", "description": "d",
                "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING", "nullable": true}}}}]}],
            "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["w"]}},
            "generationConfig": {"maxOutputTokens": 30, "temperature": 0.2, "stopSequences": ["x"],
                "responseMimeType": "application/json",
                "responseSchema": {"type": "OBJECT", "properties": {"a": {"type": "STRING"}}}}}),
        // Gemini CLI's JSON Schema fields and thinking settings.
        json!({"contents": [{"role": "user", "parts": [{"text": "ls"}]}],
            "tools": [{"functionDeclarations": [{"name": "ls", "parametersJsonSchema": {"type": "object",
                "properties": {"dir": {"type": "string"}}, "required": ["dir"]},
                "responseJsonSchema": {"type": "object"}}]}],
            "generationConfig": {"responseMimeType": "application/json",
                "responseJsonSchema": {"type": "OBJECT", "properties": {"s": {"type": "INTEGER"}}},
                "thinkingConfig": {"includeThoughts": true, "thinkingLevel": "HIGH"}}}),
    ];
    fuzz("gemini_generate_content", bodies(seeds), |body| {
        let body = bytes(&body);
        for stream in [false, true] {
            if let Ok(translated) = ingress::to_chat(&body, "chat-model", stream) {
                chat(translated)?;
            }
        }
        let _ = ingress::counted_request(&body);
        Ok(())
    });
}

/// Answers as an OpenAI-compatible upstream could send them, valid or damaged.
fn completions() -> impl Strategy<Value = Value> {
    let seeds = vec![
        json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "finish_reason": "stop",
                "message": {"role": "assistant", "content": "Hello Jane"}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5,
                "prompt_tokens_details": {"cached_tokens": 1}}}),
        json!({"id": "chatcmpl-2", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant",
                "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                    "function": {"name": "w", "arguments": "{\"city\":\"Rome\"}"}}]}},
                {"index": 1, "finish_reason": "length", "message": {"role": "assistant", "content": "x"}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}),
    ];
    prop_oneof![4 => mutated(seeds), 1 => arb_json()]
}

#[test]
fn upstream_answers_into_client_shapes() {
    let request: ResponsesRequest = serde_json::from_value(json!({
        "model": "chat-model", "input": "hi", "tools": [{"type": "function", "name": "w"}]
    }))
    .unwrap();
    fuzz("answers_to_clients", completions(), |completion| {
        let _ = anthropic::from_chat(&completion, "chat-model");
        let _ = responses::from_chat(&completion, &request);
        let _ = ingress::from_chat(&completion, "chat-model");
        Ok(())
    });
}

#[test]
fn anthropic_and_gemini_upstream_answers() {
    let seeds = vec![
        json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
            "content": [{"type": "text", "text": "Hi"}, {"type": "thinking", "thinking": "hm"},
                {"type": "tool_use", "id": "tu_1", "name": "w", "input": {"a": 1}}],
            "stop_reason": "tool_use", "usage": {"input_tokens": 5, "output_tokens": 3,
                "cache_read_input_tokens": 2}}),
        json!({"candidates": [{"index": 0, "finishReason": "STOP", "content": {"role": "model",
                "parts": [{"text": "Hi"}, {"thought": true, "text": "hm"},
                    {"functionCall": {"name": "w", "args": {"a": 1}}}]}}],
            "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 3,
                "thoughtsTokenCount": 1, "cachedContentTokenCount": 2},
            "promptFeedback": {"blockReason": "SAFETY"}}),
    ];
    fuzz(
        "upstream_answers",
        prop_oneof![4 => mutated(seeds), 1 => arb_json()],
        |answer| {
            let _ = anthropic::upstream::chat_completion(&answer, "chat-model", 0);
            let _ = gemini::chat_completion(&answer, "chat-model", 0);
            Ok(())
        },
    );
}
