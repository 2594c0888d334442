//! End-to-end tests of the data path: real mock-upstream and gateway on loopback.

mod common;

use common::*;
use serde_json::{Value, json};

fn chat(model: &str, extra: Value) -> Value {
    let mut body = json!({"model": model, "messages": [{"role": "user", "content": "Say hello to the world"}]});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_streaming_chat_is_forwarded_with_upstream_credentials_and_extras() {
    let gw = Gateway::start().await;
    let r = post(
        &gw.url("/v1/chat/completions"),
        &gw.key,
        &chat("chat-model", json!({"top_k": 7, "chat_template_kwargs": {"enable_thinking": false}, "max_tokens": 5})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.headers["x-request-id"]
            .to_str()
            .unwrap()
            .starts_with("req_")
    );
    let v = r.json();
    assert_eq!(v["object"], "chat.completion");
    assert!(
        v["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .len()
            > 1
    );
    let usage = &v["usage"];
    assert_eq!(usage["completion_tokens"], 5);

    let upstream = last_upstream_request(gw.mock).await;
    let headers = &upstream["headers"];
    assert_eq!(
        headers["authorization"],
        format!("Bearer {UPSTREAM_SECRET}")
    );
    assert!(
        !upstream.to_string().contains(&gw.key),
        "the client's key reached the upstream"
    );
    assert_eq!(upstream["body"]["model"], "mock-llama");
    assert_eq!(upstream["body"]["top_k"], 7);
    assert_eq!(
        upstream["body"]["chat_template_kwargs"]["enable_thinking"],
        false
    );

    let rows = gw.stop().await;
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row.status, 200);
    assert_eq!(row.endpoint, "chat_completions");
    assert_eq!(row.model.as_deref(), Some("chat-model"));
    assert_eq!(row.upstream.as_deref(), Some("mock"));
    assert_eq!(row.upstream_model.as_deref(), Some("mock-llama"));
    assert_eq!(row.completion_tokens, Some(5));
    assert!(row.prompt_tokens.unwrap() > 0);
    assert!(row.upstream_latency_ms.unwrap() <= row.latency_ms);
    assert!(!row.stream);
    assert!(row.tenant_id.as_deref().unwrap().starts_with("ten_"));
    assert!(row.key_id.as_deref().unwrap().starts_with("key_"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_chat_gets_usage_upstream_and_strips_the_extra_chunk() {
    let gw = Gateway::start().await;
    let r = post(
        &gw.url("/v1/chat/completions"),
        &gw.key,
        &chat("chat-model", json!({"stream": true, "max_tokens": 6})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let events = r.sse_data();
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert!(
        chunks
            .iter()
            .all(|c| !c["choices"].as_array().unwrap().is_empty()),
        "usage chunk leaked"
    );
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text.split_whitespace().count(), 6);
    let upstream = last_upstream_request(gw.mock).await;
    assert_eq!(upstream["body"]["stream_options"]["include_usage"], true);

    // When the client asks for usage, it gets the usage chunk.
    let r = post(
        &gw.url("/v1/chat/completions"),
        &gw.key,
        &chat(
            "chat-model",
            json!({"stream": true, "max_tokens": 3, "stream_options": {"include_usage": true}}),
        ),
    )
    .await;
    let events = r.sse_data();
    let usage_chunk: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert_eq!(usage_chunk["choices"].as_array().unwrap().len(), 0);
    assert_eq!(usage_chunk["usage"]["completion_tokens"], 3);

    let rows = gw.stop().await;
    assert_eq!(rows.len(), 2);
    for row in &rows {
        assert!(row.stream);
        assert_eq!(row.status, 200);
        assert!(row.error_type.is_none(), "{row:?}");
        assert!(row.ttft_ms.is_some());
    }
    assert_eq!(rows[1].completion_tokens, Some(6));
    assert_eq!(rows[0].completion_tokens, Some(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_embeddings_and_models() {
    let gw = Gateway::start().await;
    let r = post(
        &gw.url("/v1/completions"),
        &gw.key,
        &json!({"model": "chat-model", "prompt": "Once upon", "max_tokens": 4}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["object"], "text_completion");

    let r = post(
        &gw.url("/v1/completions"),
        &gw.key,
        &json!({"model": "chat-model", "prompt": "Once upon", "max_tokens": 4, "stream": true}),
    )
    .await;
    assert_eq!(r.sse_data().last().map(String::as_str), Some("[DONE]"));

    let r = post(
        &gw.url("/v1/embeddings"),
        &gw.key,
        &json!({"model": "embed-model", "input": ["a", "b"]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 0);

    let auth = format!("Bearer {}", gw.key);
    let r = send(
        "GET",
        &gw.url("/v1/models"),
        &[("authorization", &auth)],
        "",
    )
    .await;
    let ids: Vec<String> = r.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, ["broken-model", "chat-model", "embed-model"]);

    let limited = gw.create_key("acme", Some(vec!["chat-model".into()]), None);
    let r = send("GET", &gw.url("/v1/models"), &[("x-api-key", &limited)], "").await;
    assert_eq!(r.json()["data"].as_array().unwrap().len(), 1);
    let r = post(
        &gw.url("/v1/embeddings"),
        &limited,
        &json!({"model": "embed-model", "input": "x"}),
    )
    .await;
    r.assert_error(404, "model_not_found");

    let rows = gw.stop().await;
    assert_eq!(rows.len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_failures_are_openai_shaped_401s() {
    let gw = Gateway::start().await;
    let url = gw.url("/v1/chat/completions");
    let body = serde_json::to_vec(&chat("chat-model", json!({}))).unwrap();
    send("POST", &url, &[], body.clone())
        .await
        .assert_error(401, "missing_api_key");
    send(
        "POST",
        &url,
        &[("authorization", "Bearer ak-wrong")],
        body.clone(),
    )
    .await
    .assert_error(401, "invalid_api_key");
    send(
        "POST",
        &url,
        &[("authorization", "Basic Zm9vOmJhcg==")],
        body.clone(),
    )
    .await
    .assert_error(401, "missing_api_key");

    let expired = gw.create_key("acme", None, Some(airlock::store::now_unix() - 5));
    post(&url, &expired, &chat("chat-model", json!({})))
        .await
        .assert_error(401, "expired_api_key");

    let key = gw.create_key("other", None, None);
    assert_eq!(
        post(&url, &key, &chat("chat-model", json!({})))
            .await
            .status,
        200
    );
    gw.revoke_all("other");
    post(&url, &key, &chat("chat-model", json!({})))
        .await
        .assert_error(401, "revoked_api_key");

    // Refused keys leave no request-log row (they are recorded in aggregate, per address
    // and reason, in the audit trail); the one served request does.
    let audit = gw.loaded.audit_db_path();
    let dir = gw.dir.clone();
    let rows = gw.stop_keeping_files().await;
    assert_eq!(rows.iter().map(|r| r.status).collect::<Vec<_>>(), [200]);
    let reasons: Vec<(String, i64)> = rusqlite::Connection::open(audit)
        .unwrap()
        .prepare(
            "SELECT json_extract(body, '$.error'),
                    json_extract(json_extract(body, '$.detail'), '$.count')
             FROM records WHERE kind = 'auth.refused' ORDER BY 1",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        reasons,
        [
            ("expired_api_key".to_string(), 1),
            ("invalid_api_key".to_string(), 1),
            ("missing_api_key".to_string(), 2),
            ("revoked_api_key".to_string(), 1),
        ]
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_errors() {
    let gw = Gateway::start().await;
    let url = gw.url("/v1/chat/completions");
    let auth = format!("Bearer {}", gw.key);
    let h = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    send("POST", &url, &h, "{not json")
        .await
        .assert_error(400, "invalid_json");
    send("POST", &url, &h, r#"{"model": 5, "messages": []}"#)
        .await
        .assert_error(400, "invalid_json");
    send(
        "POST",
        &url,
        &h,
        r#"{"model": "chat-model", "messages": "hi"}"#,
    )
    .await
    .assert_error(400, "invalid_json");
    send("POST", &url, &h, "")
        .await
        .assert_error(400, "invalid_json");
    send("POST", &url, &h, vec![0xffu8, 0xfe, 0x00])
        .await
        .assert_error(400, "invalid_json");
    post(&url, &gw.key, &chat("no-such-model", json!({})))
        .await
        .assert_error(404, "model_not_found");
    let huge = format!(
        r#"{{"model":"chat-model","messages":[{{"role":"user","content":"{}"}}]}}"#,
        "x".repeat(70_000)
    );
    send("POST", &url, &h, huge)
        .await
        .assert_error(413, "request_too_large");
    send("GET", &url, &h, "")
        .await
        .assert_error(405, "method_not_allowed");
    send("GET", &gw.url("/v2/nothing"), &h, "")
        .await
        .assert_error(404, "unknown_url");
    // Nested garbage deep enough to trip a naive recursive parser.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    send("POST", &url, &h, deep)
        .await
        .assert_error(413, "request_too_large");
    let deep = format!(
        r#"{{"model":"chat-model","messages":[],"x":{}{}}}"#,
        "[".repeat(5_000),
        "]".repeat(5_000)
    );
    send("POST", &url, &h, deep)
        .await
        .assert_error(400, "invalid_json");
    // The gateway is still healthy.
    assert_eq!(send("GET", &gw.url("/healthz"), &[], "").await.status, 200);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_failures_are_mapped_not_leaked() {
    let gw = Gateway::start().await;
    let url = gw.url("/v1/chat/completions");
    post(&url, &gw.key, &chat("broken-model", json!({})))
        .await
        .assert_error(502, "upstream_unavailable");
    post(
        &url,
        &gw.key,
        &chat("chat-model", json!({"mock_fault": "500"})),
    )
    .await
    .assert_error(502, "upstream_error");
    post(
        &url,
        &gw.key,
        &chat("chat-model", json!({"mock_fault": "503"})),
    )
    .await
    .assert_error(503, "upstream_overloaded");
    let r = post(
        &url,
        &gw.key,
        &chat("chat-model", json!({"mock_fault": "429"})),
    )
    .await;
    r.assert_error(429, "rate_limit_exceeded");
    assert_eq!(r.headers["retry-after"], "1");
    let r = post(
        &url,
        &gw.key,
        &chat("chat-model", json!({"mock_fault": "malformed"})),
    )
    .await;
    r.assert_error(502, "upstream_protocol_error");
    let r = post(
        &url,
        &gw.key,
        &chat("chat-model", json!({"mock_fault": "stall"})),
    )
    .await;
    r.assert_error(504, "upstream_timeout");
    let r = post(
        &url,
        &gw.key,
        &chat("chat-model", json!({"mock_fault": "reset"})),
    )
    .await;
    assert_eq!(r.status, 502, "{}", r.text());
    // vLLM's integer `code` never reaches the client.
    let r = post(
        &url,
        &gw.key,
        &chat("chat-model", json!({"max_tokens": "many"})),
    )
    .await;
    if r.status != 200 {
        assert!(r.json()["error"]["code"].is_string(), "{}", r.text());
    }
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_streams_end_with_an_explicit_error_event() {
    // Paced tokens, so the first chunks are on the wire before the fault strikes.
    let gw = Gateway::start_with("", &["--tokens-per-sec", "500"]).await;
    let url = gw.url("/v1/chat/completions");
    for (fault, code) in [
        ("reset", "upstream_stream_broken"),
        ("malformed", "upstream_protocol_error"),
        ("stream_error", "upstream_error"),
        ("stall", "upstream_timeout"),
    ] {
        let r = post(
            &url,
            &gw.key,
            &chat(
                "chat-model",
                json!({"stream": true, "max_tokens": 50, "mock_fault": fault}),
            ),
        )
        .await;
        assert_eq!(r.status, 200, "{fault}");
        let events = r.sse_data();
        let last: Value = serde_json::from_str(events.last().unwrap())
            .unwrap_or_else(|_| panic!("{fault}: {events:?}"));
        assert_eq!(last["error"]["code"], code, "{fault}: {events:?}");
        assert!(
            !events.iter().any(|e| e == "[DONE]"),
            "{fault}: a broken stream must not look complete"
        );
    }
    let rows = gw.stop().await;
    assert_eq!(rows.len(), 4);
    assert!(rows.iter().all(|r| r.error_type.is_some()), "{rows:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_disconnect_mid_stream_is_logged_and_cancels_upstream() {
    use http_body_util::BodyExt;
    let gw = Gateway::start_with("", &["--tokens-per-sec", "20"]).await;
    let body = serde_json::to_vec(&chat(
        "chat-model",
        json!({"stream": true, "max_tokens": 1000}),
    ))
    .unwrap();
    let request = http::Request::post(gw.url("/v1/chat/completions"))
        .header("authorization", format!("Bearer {}", gw.key))
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .unwrap();
    let response = client().request(request).await.unwrap();
    let mut body = response.into_body();
    let first = body.frame().await.unwrap().unwrap();
    assert!(first.is_data());
    drop(body); // the client goes away, 50 s before the answer's end
    // The upstream sees its request abandoned (its connection closed), not finished.
    common::wait_for_upstream_cancellation(gw.mock).await;
    let rows = gw.stop().await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].status, 499);
    assert_eq!(rows[0].error_type.as_deref(), Some("client_closed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_health_and_metrics() {
    let gw = Gateway::start().await;
    let h2 = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let body = serde_json::to_vec(&chat("chat-model", json!({"stream": true}))).unwrap();
    let request = http::Request::post(gw.url("/v1/chat/completions"))
        .header("authorization", format!("Bearer {}", gw.key))
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .unwrap();
    let response = h2.request(request).await.unwrap();
    assert_eq!(response.version(), http::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    use http_body_util::BodyExt;
    let text = String::from_utf8(
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"));

    assert_eq!(send("GET", &gw.url("/readyz"), &[], "").await.status, 200);
    let metrics = send("GET", &gw.url("/metrics"), &[], "").await.text();
    for name in [
        "airlock_requests_total",
        "airlock_gateway_overhead_seconds_bucket",
        "airlock_upstream_duration_seconds_bucket",
        "airlock_request_duration_seconds_bucket",
        "airlock_in_flight_requests",
    ] {
        assert!(metrics.contains(name), "{name} missing from:\n{metrics}");
    }
    assert!(!metrics.contains(&gw.key));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_disconnect_while_waiting_for_a_non_streaming_answer_is_logged() {
    let gw = Gateway::start().await;
    let body = chat("chat-model", json!({"mock_fault": "slow:5000"}));
    let url = gw.url("/v1/chat/completions");
    let key = gw.key.clone();
    let pending = tokio::spawn(async move { post(&url, &key, &body).await });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    pending.abort(); // drops the client connection
    common::wait_for_upstream_cancellation(gw.mock).await;
    let rows = gw.stop().await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].status, 499);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_never_finishes_gets_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let gw = Gateway::start().await;
    let mut socket = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"model\":",
        gw.key
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        let mut buf = [0u8; 4096];
        loop {
            let n = socket.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
            if answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.ends_with(b"}}") {
                break;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the gateway kept waiting for the body");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("\"code\":\"body_timeout\""), "{text}");
    let rows = gw.stop().await;
    assert_eq!(rows[0].status, 408);
}
