//! `POST /v1/messages` on the wire: Anthropic's events and errors, including a stream
//! that breaks after it started.

mod common;

use common::{Extra, Gateway, send, start_mock};
use serde_json::{Value, json};

async fn messages(gw: &Gateway, key: &str, body: &Value) -> common::Reply {
    send(
        "POST",
        &gw.url("/v1/messages"),
        &[
            ("x-api-key", key),
            ("anthropic-version", "2023-06-01"),
            ("content-type", "application/json"),
        ],
        serde_json::to_vec(body).unwrap(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_arrive_as_anthropic_events_and_breaks_as_an_error_event() {
    let (gw, _cut) = Gateway::with_cut_model("reset").await;
    let ask = |model: &str| {
        json!({"model": model, "max_tokens": 4, "stream": true,
               "messages": [{"role": "user", "content": "Hi"}]})
    };

    let reply = messages(&gw, &gw.key, &ask("chat-model")).await;
    assert_eq!(reply.status, 200);
    assert!(
        reply.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let names: Vec<String> = reply.named_events().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names[..3], ["message_start", "ping", "content_block_start"]);
    assert_eq!(
        names[names.len() - 3..],
        ["content_block_stop", "message_delta", "message_stop"]
    );
    assert_eq!(
        names.iter().filter(|n| *n == "content_block_delta").count(),
        4
    );

    let broken = messages(&gw, &gw.key, &ask("cut-model"))
        .await
        .named_events();
    let (name, data) = broken.last().unwrap();
    assert_eq!(name, "error");
    assert_eq!(data["error"]["type"], "api_error");
    assert!(
        broken.iter().all(|(n, _)| n != "message_stop"),
        "no clean end"
    );

    let unauthorized = messages(&gw, "ak-wrong", &ask("chat-model")).await;
    assert_eq!(unauthorized.status, 401);
    assert_eq!(unauthorized.json()["error"]["type"], "authentication_error");
    let malformed = messages(
        &gw,
        &gw.key,
        &json!({"model": "chat-model", "messages": []}),
    )
    .await;
    assert_eq!(malformed.status, 400);
    assert_eq!(malformed.json()["type"], "error");
    assert_eq!(malformed.json()["error"]["type"], "invalid_request_error");

    let rows = gw.stop().await;
    let endpoints: Vec<&str> = rows.iter().map(|r| r.endpoint).collect();
    assert!(endpoints.iter().all(|e| *e == "messages"), "{endpoints:?}");
    // (The refused key left no row: refusals are recorded in aggregate.)
    assert_eq!(
        rows[1].error_type.as_deref(),
        Some("upstream_stream_broken")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_list_in_the_callers_dialect() {
    let gw = Gateway::start().await;
    let auth = format!("Bearer {}", gw.key);
    let anthropic_list = send(
        "GET",
        &gw.url("/v1/models"),
        &[
            ("authorization", &auth),
            ("anthropic-version", "2023-06-01"),
        ],
        bytes::Bytes::new(),
    )
    .await
    .json();
    assert_eq!(anthropic_list["has_more"], false);
    assert_eq!(anthropic_list["data"][0]["type"], "model");
    assert!(
        anthropic_list["data"][0]["created_at"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    let openai_list = send(
        "GET",
        &gw.url("/v1/models"),
        &[("authorization", &auth)],
        bytes::Bytes::new(),
    )
    .await
    .json();
    assert_eq!(openai_list["object"], "list");
    assert_eq!(openai_list["data"][0]["object"], "model");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anthropic_upstream_answers_openai_clients_and_its_failures_map() {
    let (cut, _c) = start_mock(&["--flavor", "anthropic", "--fault", "reset"]).await;
    let (limited, _l) = start_mock(&["--flavor", "anthropic", "--fault", "429"]).await;
    let extra = Extra {
        upstreams: format!(
            "  cut:\n    kind: anthropic\n    base_url: http://{cut}/v1\n  limited:\n    kind: anthropic\n    base_url: http://{limited}/v1\n"
        ),
        models: "  via-cut:\n    upstream: cut\n    model: mock-llama\n    retry: {attempts: 1}\n  via-limited:\n    upstream: limited\n    model: mock-llama\n    retry: {attempts: 1}\n"
            .into(), ..Extra::default() };
    let gw = Gateway::start_full("", &[], &extra).await;
    let url = gw.url("/v1/chat/completions");
    let ask = |model: &str, stream: bool| {
        json!({"model": model, "max_tokens": 8, "stream": stream,
               "messages": [{"role": "user", "content": "Hi"}]})
    };
    let events = common::post(&url, &gw.key, &ask("via-cut", true))
        .await
        .sse_data();
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(
        last["error"]["code"], "upstream_stream_broken",
        "{events:?}"
    );
    assert!(events.len() > 1, "chunks came before the break: {events:?}");

    let limited = common::post(&url, &gw.key, &ask("via-limited", false)).await;
    limited.assert_error(429, "rate_limit_exceeded");
    assert_eq!(limited.headers["retry-after"], "1");

    let completion = common::post(
        &gw.url("/v1/completions"),
        &gw.key,
        &json!({"model": "via-cut", "prompt": "x"}),
    )
    .await;
    completion.assert_error(400, "invalid_request");
    assert!(completion.text().contains("chat requests only"));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn count_tokens_asks_the_first_target_that_can_count() {
    let (claude, _a) = start_mock(&["--flavor", "anthropic"]).await;
    let (gemini, _g) = start_mock(&["--flavor", "gemini", "--models", "mock-llama"]).await;
    let extra = Extra {
        upstreams: format!(
            "  claude:\n    kind: anthropic\n    base_url: http://{claude}/v1\n  gem:\n    kind: gemini\n    base_url: http://{gemini}/v1beta\n"
        ),
        // `down` refuses connections; `mock` is the harness's vLLM simulator.
        models: "  via-claude:\n    upstream: claude\n    model: mock-llama\n  via-gemini:\n    upstream: gem\n    model: mock-llama\n  nowhere:\n    upstream: down\n    model: mock-llama\n  down-then-vllm:\n    targets:\n      - {upstream: down, model: mock-llama, priority: 0}\n      - {upstream: mock, model: mock-llama, priority: 1}\n"
            .into(), ..Extra::default() };
    let gw = Gateway::start_full("", &[], &extra).await;
    let ask = json!({"model": "chat-model", "max_tokens": 3, "system": "Be brief.",
                     "messages": [{"role": "user", "content": "How many tokens is this?"}]});
    let answered = messages(&gw, &gw.key, &ask).await.json();
    let used = answered["usage"]["input_tokens"].as_u64().unwrap();
    let count = |model: &str| {
        let mut body = ask.clone();
        body["model"] = model.into();
        body.as_object_mut().unwrap().remove("max_tokens");
        let gw = &gw;
        async move {
            send(
                "POST",
                &gw.url("/v1/messages/count_tokens"),
                &[
                    ("x-api-key", gw.key.as_str()),
                    ("anthropic-version", "2023-06-01"),
                ],
                serde_json::to_vec(&body).unwrap(),
            )
            .await
        }
    };
    for model in ["chat-model", "via-claude", "via-gemini", "down-then-vllm"] {
        let counted = count(model).await;
        assert_eq!(counted.status, 200, "{model}: {}", counted.text());
        assert_eq!(counted.json(), json!({"input_tokens": used}), "{model}");
    }
    let unavailable = count("nowhere").await;
    assert_eq!(unavailable.status, 501, "{}", unavailable.text());
    assert_eq!(unavailable.json()["error"]["type"], "api_error");
    let unknown = count("no-such-model").await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()["error"]["type"], "not_found_error");
    let rows = gw.stop().await;
    assert_eq!(rows[0].endpoint, "count_tokens");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_codes_request_reaches_every_upstream_kind() {
    let (anthropic, _a) = start_mock(&["--flavor", "anthropic", "--record-requests"]).await;
    let extra = Extra {
        upstreams: format!("  anth:\n    kind: anthropic\n    base_url: http://{anthropic}/v1\n"),
        models: "  via-anthropic:\n    upstream: anth\n    model: mock-llama\n".into(),
        ..Extra::default()
    };
    let gw = Gateway::start_full("", &["--record-requests"], &extra).await;
    let mut request: Value =
        serde_json::from_str(include_str!("golden/anthropic_to_chat/claude_code.in.json")).unwrap();
    request["max_tokens"] = 64.into();
    const SESSION: &str = "f56cc56c-dee7-47b1-9c1a-10df75329a9a";
    for model in ["chat-model", "via-anthropic"] {
        request["model"] = model.into();
        let headers = [
            ("x-api-key", gw.key.as_str()),
            ("anthropic-version", "2023-06-01"),
            ("content-type", "application/json"),
            ("x-claude-code-session-id", SESSION),
        ];
        let body = serde_json::to_vec(&request).unwrap();
        let reply = send("POST", &gw.url("/v1/messages"), &headers, body).await;
        assert_eq!(reply.status, 200, "{model}: {}", reply.text());
        // Claude Code's session header names the audit trail's session.
        assert_eq!(
            common::audit_records(&gw).last().unwrap()["session_id"],
            SESSION
        );
    }

    // vLLM: the system message at its place, the cache marks gone, effort kept.
    let chat = common::upstream_bodies(gw.mock).await.pop().unwrap();
    let roles: Vec<&str> = chat["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["system", "user", "system", "assistant", "tool"]);
    assert!(
        chat["messages"][2]["content"]
            .as_str()
            .unwrap()
            .starts_with("# Environment")
    );
    assert!(!chat.to_string().contains("cache_control"));
    assert_eq!(chat["reasoning_effort"], "high");
    for dropped in [
        "thinking",
        "context_management",
        "output_config",
        "metadata",
    ] {
        assert!(chat.get(dropped).is_none(), "{dropped}");
    }

    // Anthropic: the cache marks re-emitted, the environment a note at its place.
    let messages_request = common::upstream_bodies(anthropic).await.pop().unwrap();
    assert_eq!(
        messages_request["system"][1]["cache_control"],
        json!({"type": "ephemeral"})
    );
    let first_turn = &messages_request["messages"][0]["content"];
    assert!(
        first_turn[2]["text"]
            .as_str()
            .unwrap()
            .starts_with("<system-reminder>\n# Environment")
    );
    assert_eq!(first_turn[2]["cache_control"], json!({"type": "ephemeral"}));

    let rows = gw.stop().await;
    assert!(
        rows.iter()
            .all(|r| r.user_id.as_deref() == Some("0123456789abcdef")),
        "Claude Code's device is the end user"
    );
}
