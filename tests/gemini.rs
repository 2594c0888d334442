//! A Gemini upstream behind the gateway, on the wire: OpenAI and Anthropic clients get
//! their own shapes back — answers, streams, tool calls, structured outputs — and its
//! failures map to theirs.

mod common;

use common::{Extra, Gateway, UPSTREAM_SECRET, last_upstream_request, post, start_mock};
use serde_json::{Value, json};

/// A gateway whose models `gem` (healthy), `gem-cut` (streams reset) and `gem-limited`
/// (429s) are served by Gemini simulators that want the upstream key.
/// Also returns the healthy simulator's address.
async fn gateway() -> (
    Gateway,
    std::net::SocketAddr,
    Vec<tokio::sync::watch::Sender<bool>>,
) {
    let mut upstreams = String::new();
    let mut models = String::new();
    let mut stops = Vec::new();
    let mut healthy = None;
    for (name, fault) in [
        ("gem", None),
        ("gem-cut", Some("reset")),
        ("gem-limited", Some("429")),
    ] {
        let mut flags = vec![
            "--flavor",
            "gemini",
            "--api-key",
            UPSTREAM_SECRET,
            "--models",
            "gemini-2.5-flash",
        ];
        if let Some(fault) = fault {
            flags.extend(["--fault", fault]);
        }
        let (addr, stop) = start_mock(&flags).await;
        stops.push(stop);
        healthy.get_or_insert(addr);
        upstreams.push_str(&format!(
            "  {name}:\n    kind: gemini\n    base_url: http://{addr}/v1beta\n    api_key_file: upstream.key\n"
        ));
        models.push_str(&format!(
            "  {name}:\n    upstream: {name}\n    model: gemini-2.5-flash\n    retry: {{attempts: 1}}\n"
        ));
    }
    let gw = Gateway::start_full(
        "",
        &[],
        &Extra {
            upstreams,
            models,
            ..Extra::default()
        },
    )
    .await;
    (gw, healthy.unwrap(), stops)
}

fn ask(model: &str, stream: bool) -> Value {
    json!({"model": model, "max_tokens": 6, "stream": stream,
           "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_clients_get_answers_streams_and_tool_calls_from_gemini() {
    let (gw, gem, _stops) = gateway().await;
    let url = gw.url("/v1/chat/completions");

    let answer = post(&url, &gw.key, &ask("gem", false)).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let answer = answer.json();
    assert_eq!(answer["object"], "chat.completion");
    assert_eq!(answer["choices"][0]["finish_reason"], "length");
    assert_eq!(answer["usage"]["completion_tokens"], 6);
    assert!(
        !answer["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .is_empty()
    );
    let sent = last_upstream_request(gem).await;
    assert_eq!(
        sent["path"],
        "/v1beta/models/gemini-2.5-flash:generateContent"
    );
    assert_eq!(sent["headers"]["x-goog-api-key"], UPSTREAM_SECRET);
    assert!(sent["headers"].get("authorization").is_none());
    assert_eq!(
        sent["body"]["systemInstruction"],
        json!({"parts": [{"text": "Be brief."}]})
    );
    assert_eq!(
        sent["body"]["generationConfig"],
        json!({"maxOutputTokens": 6})
    );

    let stream = post(&url, &gw.key, &ask("gem", true)).await.sse_data();
    assert_eq!(stream.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = stream[..stream.len() - 1]
        .iter()
        .map(|c| serde_json::from_str(c).unwrap())
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text.split_whitespace().count(), 6, "{text}");
    assert!(
        chunks.iter().all(|c| c.get("usage").is_none()),
        "no usage chunk unless asked"
    );

    let tools = json!({"model": "gem", "messages": [{"role": "user", "content": "Weather in Oslo?"}],
        "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object",
            "properties": {"city": {"type": "string"}}, "required": ["city"], "additionalProperties": false}}}],
        "tool_choice": "required"});
    let called = post(&url, &gw.key, &tools).await.json();
    let choice = &called["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "weather");
    let arguments: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert!(arguments["city"].is_string());
    assert!(call["id"].as_str().unwrap().starts_with("call_"));

    // The tool's answer goes back as a functionResponse naming the function.
    let mut follow_up = tools.clone();
    follow_up["messages"] = json!([
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": null, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "sunny"}
    ]);
    follow_up["tool_choice"] = "none".into();
    let answered = post(&url, &gw.key, &follow_up).await;
    assert_eq!(answered.status, 200, "{}", answered.text());
    assert_eq!(answered.json()["choices"][0]["finish_reason"], "stop");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn structured_outputs_reach_gemini_as_a_response_schema() {
    let (gw, _gem, _stops) = gateway().await;
    let url = gw.url("/v1/chat/completions");
    // As the openai SDK's `parse()` writes a pydantic model: strict, nullable via anyOf.
    let schema = json!({"type": "object", "additionalProperties": false, "required": ["name", "age"],
        "properties": {"name": {"type": "string"}, "age": {"anyOf": [{"type": "integer"}, {"type": "null"}]}}});
    let format = json!({"type": "json_schema", "json_schema": {"name": "person", "strict": true, "schema": schema}});
    for stream in [false, true] {
        let mut request = ask("gem", stream);
        request["response_format"] = format.clone();
        let reply = post(&url, &gw.key, &request).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        let text: String = if stream {
            reply
                .sse_data()
                .iter()
                .filter_map(|c| serde_json::from_str::<Value>(c).ok())
                .filter_map(|c| {
                    c["choices"][0]["delta"]["content"]
                        .as_str()
                        .map(str::to_string)
                })
                .collect()
        } else {
            reply.json()["choices"][0]["message"]["content"]
                .as_str()
                .unwrap()
                .to_string()
        };
        let answer: Value = serde_json::from_str(&text).unwrap();
        assert!(answer["name"].is_string(), "{answer}");
    }

    let mut unsupported = ask("gem", false);
    unsupported["response_format"] = json!({"type": "json_schema", "json_schema": {"name": "n",
        "schema": {"type": "object", "properties": {"n": {"type": "integer", "multipleOf": 3}}}}});
    let refused = post(&url, &gw.key, &unsupported).await;
    refused.assert_error(400, "invalid_request");
    assert!(refused.text().contains("multipleOf"), "{}", refused.text());

    let rows = gw.stop().await;
    assert_eq!(rows[0].attempts, 0, "refused before any upstream was asked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gemini_failures_map_to_the_callers_format() {
    let (gw, _gem, _stops) = gateway().await;
    let url = gw.url("/v1/chat/completions");
    let events = post(&url, &gw.key, &ask("gem-cut", true)).await.sse_data();
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(
        last["error"]["code"], "upstream_stream_broken",
        "{events:?}"
    );

    let limited = post(&url, &gw.key, &ask("gem-limited", false)).await;
    limited.assert_error(429, "rate_limit_exceeded");

    // An Anthropic client, served by Gemini.
    let reply = common::send(
        "POST",
        &gw.url("/v1/messages"),
        &[
            ("x-api-key", gw.key.as_str()),
            ("anthropic-version", "2023-06-01"),
        ],
        serde_json::to_vec(&json!({"model": "gem", "max_tokens": 5,
            "messages": [{"role": "user", "content": "Hi"}]}))
        .unwrap(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let message = reply.json();
    assert_eq!(message["type"], "message");
    assert_eq!(message["stop_reason"], "max_tokens");
    assert_eq!(message["usage"]["output_tokens"], 5);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gemini_clients_are_served_by_any_upstream_in_googles_shapes() {
    let (gw, _cut) = Gateway::with_cut_model("reset:2").await;
    let call = |path: &str, body: Value| {
        let url = gw.url(path);
        let key = gw.key.clone();
        async move {
            common::send(
                "POST",
                &url,
                &[("x-goog-api-key", key.as_str())],
                serde_json::to_vec(&body).unwrap(),
            )
            .await
        }
    };
    let ask = json!({"contents": [{"role": "user", "parts": [{"text": "Hi there"}]}],
                     "generationConfig": {"maxOutputTokens": 3}});

    let answer = call("/v1beta/models/chat-model:generateContent", ask.clone()).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let answer = answer.json();
    assert_eq!(answer["candidates"][0]["finishReason"], "MAX_TOKENS");
    assert_eq!(answer["usageMetadata"]["candidatesTokenCount"], 3);

    let stream = call(
        "/v1beta/models/chat-model:streamGenerateContent?alt=sse",
        ask.clone(),
    )
    .await;
    let events: Vec<Value> = stream
        .text()
        .split("\r\n\r\n")
        .filter(|e| !e.is_empty())
        .map(|e| serde_json::from_str(e.strip_prefix("data: ").unwrap()).unwrap())
        .collect();
    let last = events.last().unwrap();
    assert_eq!(last["candidates"][0]["finishReason"], "MAX_TOKENS");
    assert_eq!(last["usageMetadata"]["candidatesTokenCount"], 3);

    let broken = call(
        "/v1beta/models/cut-model:streamGenerateContent?alt=sse",
        ask.clone(),
    )
    .await;
    let last = broken
        .text()
        .trim_end()
        .rsplit("\r\n\r\n")
        .next()
        .unwrap()
        .to_string();
    let error: Value = serde_json::from_str(last.strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(error["error"]["status"], "INTERNAL", "{}", broken.text());

    let not_sse = call(
        "/v1beta/models/chat-model:streamGenerateContent",
        ask.clone(),
    )
    .await;
    assert_eq!(not_sse.status, 400);
    assert_eq!(not_sse.json()["error"]["status"], "INVALID_ARGUMENT");
    let unknown_field = call(
        "/v1beta/models/chat-model:generateContent",
        json!({"contents": [], "bogus": 1}),
    )
    .await;
    assert_eq!(unknown_field.status, 400);
    assert!(unknown_field.text().contains("bogus"));
    // The body's `model` is a string naming the path's model, or the request is refused
    // as Google refuses it: 400 in Google's shape, nothing sent upstream.
    for model in [
        json!(42),
        json!({"name": "chat-model"}),
        json!("models/cut-model"),
    ] {
        let mut body = ask.clone();
        body["model"] = model.clone();
        let refused = call("/v1beta/models/chat-model:generateContent", body).await;
        assert_eq!(refused.status, 400, "{model}: {}", refused.text());
        assert_eq!(refused.json()["error"]["status"], "INVALID_ARGUMENT");
        assert_eq!(refused.json()["error"]["code"], 400);
    }
    let mut named = ask.clone();
    named["model"] = json!("models/chat-model");
    let answered = call("/v1beta/models/chat-model:generateContent", named).await;
    assert_eq!(answered.status, 200, "{}", answered.text());
    let counted = call(
        "/v1beta/models/chat-model:countTokens",
        json!({"contents": ask["contents"]}),
    )
    .await;
    assert_eq!(
        counted.json()["totalTokens"],
        answer["usageMetadata"]["promptTokenCount"]
    );

    let rows = gw.stop().await;
    let endpoints: Vec<&str> = rows.iter().map(|r| r.endpoint).collect();
    assert_eq!(endpoints[0], "gemini_count_tokens");
    assert!(
        endpoints[1..].iter().all(|e| *e == "generate_content"),
        "{endpoints:?}"
    );
}
