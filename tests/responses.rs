//! `POST /v1/responses` on the wire: Response objects and events from a chat upstream,
//! a broken stream ending in `error` and `response.failed`, bad input in OpenAI's shape.

mod common;

use common::{Gateway, post};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_answer_stream_and_fail_in_their_own_shapes() {
    let (gw, _cut) = Gateway::with_cut_model("reset:3").await;
    let url = gw.url("/v1/responses");

    let reply = post(
        &url,
        &gw.key,
        &json!({"model": "chat-model", "input": "Hi", "max_output_tokens": 4}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let response = reply.json();
    assert_eq!(response["object"], "response");
    assert_eq!(response["status"], "incomplete");
    assert_eq!(
        response["output"][0]["content"][0]["text"]
            .as_str()
            .unwrap()
            .split(' ')
            .count(),
        4
    );
    assert_eq!(response["usage"]["output_tokens"], 4);

    let stream = post(
        &url,
        &gw.key,
        &json!({"model": "chat-model", "input": "Hi", "stream": true, "max_output_tokens": 3}),
    )
    .await;
    let all = stream.named_events();
    assert_eq!(all[0].0, "response.created");
    assert_eq!(all.last().unwrap().0, "response.incomplete");
    assert!(
        !stream.text().contains("[DONE]"),
        "the Responses API has no [DONE]"
    );

    let broken = post(
        &url,
        &gw.key,
        &json!({"model": "cut-model", "input": "Hi", "stream": true}),
    )
    .await
    .named_events();
    let names: Vec<&str> = broken.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names[names.len() - 2..],
        ["error", "response.failed"],
        "{names:?}"
    );
    assert!(names.contains(&"response.output_text.delta"));
    assert_eq!(broken.last().unwrap().1["response"]["status"], "failed");

    let malformed = post(&url, &gw.key, &json!({"model": "chat-model"})).await;
    malformed.assert_error(400, "invalid_json");
    let stateful = post(
        &url,
        &gw.key,
        &json!({"model": "chat-model", "input": "Hi", "previous_response_id": "resp_1"}),
    )
    .await;
    stateful.assert_error(400, "invalid_request");

    let rows = gw.stop().await;
    assert!(rows.iter().all(|r| r.endpoint == "responses"));
    assert_eq!(
        rows[2].error_type.as_deref(),
        Some("upstream_stream_broken")
    );
    assert_eq!(rows.last().unwrap().completion_tokens, Some(4));
}

/// What Codex CLI sends: its built-in `web_search` is dropped (and said to be), its
/// namespaced tools flattened, its developer messages sent as system messages to an
/// upstream without `developer_role`; `tools.hosted: refuse` refuses the request instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_requests_lose_built_in_tools_and_say_so() {
    let gw = Gateway::start().await;
    let body = json!({"model": "chat-model", "store": false, "include": ["reasoning.encrypted_content"],
        "input": [
            {"type": "message", "id": "msg_1", "role": "developer", "content": [{"type": "input_text", "text": "Be a coding agent."}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "say hi"}]}],
        "tools": [
            {"type": "namespace", "name": "multi_agent_v1", "description": "Sub-agents.",
             "tools": [{"type": "function", "name": "spawn_agent", "parameters": {"type": "object", "properties": {}}}]},
            {"type": "web_search", "external_web_access": false}],
        "tool_choice": "auto"});
    let reply = post(&gw.url("/v1/responses"), &gw.key, &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.headers["x-airlock-dropped-tools"], "web_search");
    let sent = common::last_upstream_request(gw.mock).await["body"].clone();
    assert_eq!(sent["messages"][0]["role"], "system");
    assert_eq!(sent["tools"].as_array().unwrap().len(), 1);
    assert_eq!(
        sent["tools"][0]["function"]["name"],
        "multi_agent_v1__spawn_agent"
    );
    assert_eq!(
        common::audit_records(&gw).last().unwrap()["dropped_tools"],
        json!(["web_search"])
    );
    gw.stop().await;

    let extra = common::Extra {
        top: "tools:\n  hosted: refuse\n".into(),
        ..common::Extra::default()
    };
    let strict = Gateway::start_full("", &[], &extra).await;
    let refused = post(&strict.url("/v1/responses"), &strict.key, &body).await;
    refused.assert_error(400, "invalid_request");
    let message = refused.json()["error"]["message"].to_string();
    assert!(
        message.contains("tools[1]: `web_search` is a built-in tool of OpenAI's platform"),
        "{message}"
    );
    strict.stop().await;
}

/// Anthropic's server tools and Google's own tools are dropped and said to be the same
/// way, from the Messages and generateContent endpoints.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_run_tools_of_every_format_are_dropped_and_named() {
    let gw = Gateway::start().await;
    let read = json!({"type": "object", "properties": {"path": {"type": "string"}}});
    let anthropic = json!({"model": "chat-model", "max_tokens": 16,
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"type": "web_search_20250305", "name": "web_search"},
                  {"name": "read", "input_schema": read}]});
    let gemini = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "tools": [{"googleSearch": {}},
                  {"functionDeclarations": [{"name": "read", "parametersJsonSchema": read}]}]});
    let body = |value: &serde_json::Value| serde_json::to_vec(value).unwrap();
    let key = gw.key.clone();
    let calls = [
        (
            "/v1/messages",
            vec![
                ("x-api-key", key.as_str()),
                ("anthropic-version", "2023-06-01"),
            ],
            body(&anthropic),
            "web_search",
        ),
        (
            "/v1beta/models/chat-model:generateContent",
            vec![("x-goog-api-key", key.as_str())],
            body(&gemini),
            "googleSearch",
        ),
    ];
    for (path, mut headers, body, dropped) in calls {
        headers.push(("content-type", "application/json"));
        let reply = common::send("POST", &gw.url(path), &headers, body).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text());
        assert_eq!(reply.headers["x-airlock-dropped-tools"], dropped);
        let sent = common::last_upstream_request(gw.mock).await["body"].clone();
        let tools = sent["tools"].as_array().unwrap();
        assert_eq!(tools.len(), 1, "{path}");
        assert_eq!(tools[0]["function"]["name"], "read");
        assert_eq!(
            common::audit_records(&gw).last().unwrap()["dropped_tools"],
            json!([dropped])
        );
    }
    gw.stop().await;
}
