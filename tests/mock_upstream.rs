//! The vLLM simulator over real HTTP: wire shapes, streaming, auth and injected faults.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, Response, StatusCode, body::Incoming};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use airlock::mock_upstream::{MockArgs, serve};

struct Mock {
    addr: SocketAddr,
    client: Client<HttpConnector, Full<Bytes>>,
    _stop: oneshot::Sender<()>,
}

async fn start(args: MockArgs) -> Mock {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let shutdown = async move {
            let _ = stopped.await;
        };
        serve(listener, args, shutdown).await.unwrap();
    });
    Mock {
        addr,
        client: Client::builder(TokioExecutor::new()).build_http(),
        _stop: stop,
    }
}

impl Mock {
    async fn send(
        &self,
        method: Method,
        path: &str,
        auth: Option<&str>,
        body: Option<Value>,
    ) -> Response<Incoming> {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr));
        if let Some(token) = auth {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let body = match body {
            Some(json) => {
                request = request.header("content-type", "application/json");
                Full::new(Bytes::from(json.to_string()))
            }
            None => Full::new(Bytes::new()),
        };
        self.client
            .request(request.body(body).unwrap())
            .await
            .unwrap()
    }

    async fn post(&self, path: &str, body: Value) -> Response<Incoming> {
        self.send(Method::POST, path, None, Some(body)).await
    }

    async fn get(&self, path: &str) -> Response<Incoming> {
        self.send(Method::GET, path, None, None).await
    }
}

async fn json_of(response: Response<Incoming>) -> Value {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

/// The `data:` payloads of an SSE body, `[DONE]` included.
async fn events_of(response: Response<Incoming>) -> Vec<String> {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    assert!(text.ends_with("\n\n"), "unterminated SSE body: {text:?}");
    text.split_terminator("\n\n")
        .map(|event| event.strip_prefix("data: ").unwrap().to_owned())
        .collect()
}

fn chat(extra: Value) -> Value {
    let mut body = json!({
        "model": "mock-llama",
        "messages": [{"role": "user", "content": "Tell me a story"}]
    });
    for (key, value) in extra.as_object().unwrap() {
        body[key] = value.clone();
    }
    body
}

#[tokio::test]
async fn lists_models_and_reports_health() {
    let mock = start(MockArgs::default()).await;
    let models = json_of(mock.get("/v1/models").await).await;
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["id"], "mock-llama");
    assert_eq!(models["data"][0]["object"], "model");
    assert_eq!(models["data"][0]["owned_by"], "vllm");
    assert_eq!(models["data"][0]["parent"], Value::Null);
    assert!(models["data"][0]["permission"].is_array());

    let health = mock.get("/health").await;
    assert_eq!(health.status(), StatusCode::OK);
    let body = health.into_body().collect().await.unwrap().to_bytes();
    assert!(body.is_empty());

    let version = json_of(mock.get("/version").await).await;
    assert!(version["version"].is_string());

    let missing = mock.get("/v1/nothing-here").await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(json_of(missing).await, json!({"detail": "Not Found"}));
}

#[tokio::test]
async fn non_streaming_chat_has_vllm_shape() {
    let mock = start(MockArgs::default()).await;
    let response = mock
        .post("/v1/chat/completions", chat(json!({"max_tokens": 4})))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    let answer = json_of(response).await;
    assert!(answer["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(answer["object"], "chat.completion");
    assert!(answer["created"].is_u64());
    assert_eq!(answer["model"], "mock-llama");
    assert_eq!(answer["prompt_logprobs"], Value::Null);
    let choice = &answer["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["finish_reason"], "length");
    assert_eq!(choice["stop_reason"], Value::Null);
    assert_eq!(choice["logprobs"], Value::Null);
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["message"]["tool_calls"], json!([]));
    assert_eq!(choice["message"]["reasoning_content"], Value::Null);
    let content = choice["message"]["content"].as_str().unwrap();
    assert_eq!(content.split_whitespace().count(), 4);
    assert_eq!(
        answer["usage"],
        json!({"prompt_tokens": 8, "total_tokens": 12, "completion_tokens": 4,
               "prompt_tokens_details": null})
    );
}

#[tokio::test]
async fn streaming_chat_with_include_usage_ends_with_usage_then_done() {
    let mock = start(MockArgs::default()).await;
    let body = chat(json!({"stream": true, "max_tokens": 3,
                           "stream_options": {"include_usage": true}}));
    let response = mock.post("/v1/chat/completions", body).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "text/event-stream; charset=utf-8"
    );
    let events = events_of(response).await;
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|data| serde_json::from_str(data).unwrap())
        .collect();
    // role, three words (the last one with finish_reason "length"), usage.
    assert_eq!(chunks.len(), 5);
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    let id = chunks[0]["id"].as_str().unwrap();
    assert!(chunks.iter().all(|chunk| chunk["id"] == id));
    assert!(
        chunks
            .iter()
            .all(|chunk| chunk["object"] == "chat.completion.chunk")
    );
    let text: String = chunks[1..4]
        .iter()
        .map(|chunk| chunk["choices"][0]["delta"]["content"].as_str().unwrap())
        .collect();
    assert_eq!(text.split_whitespace().count(), 3);
    assert_eq!(chunks[3]["choices"][0]["finish_reason"], "length");
    let usage = &chunks[4];
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(
        usage["usage"],
        json!({"prompt_tokens": 8, "total_tokens": 11, "completion_tokens": 3})
    );
}

#[tokio::test]
async fn streaming_chat_without_include_usage_has_no_usage_chunk() {
    let mock = start(MockArgs {
        default_tokens: 2,
        ..MockArgs::default()
    })
    .await;
    let response = mock
        .post("/v1/chat/completions", chat(json!({"stream": true})))
        .await;
    let events = events_of(response).await;
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|data| serde_json::from_str(data).unwrap())
        .collect();
    // role, two words, end of sequence with finish_reason "stop".
    assert_eq!(chunks.len(), 4);
    assert!(chunks.iter().all(|chunk| chunk.get("usage").is_none()));
    assert!(
        chunks
            .iter()
            .all(|chunk| !chunk["choices"].as_array().unwrap().is_empty())
    );
    let last = &chunks[3]["choices"][0];
    assert_eq!(last["delta"], json!({"content": ""}));
    assert_eq!(last["finish_reason"], "stop");
}

#[tokio::test]
async fn streamed_tool_call_deltas_reassemble_into_json_arguments() {
    let mock = start(MockArgs::default()).await;
    let body = chat(json!({
        "stream": true,
        "tools": [{"type": "function", "function": {
            "name": "book_flight",
            "parameters": {"type": "object", "properties": {
                "from": {"type": "string"}, "to": {"type": "string"},
                "passengers": {"type": "integer"}, "flexible": {"type": "boolean"},
                "notes": {"type": "string"}
            }, "required": ["from", "to", "passengers", "flexible"]}
        }}]
    }));
    let events = events_of(mock.post("/v1/chat/completions", body).await).await;
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let mut id = None;
    let mut name = None;
    let mut arguments = String::new();
    let mut finish = None;
    let mut argument_deltas = 0;
    for data in &events[..events.len() - 1] {
        let chunk: Value = serde_json::from_str(data).unwrap();
        let choice = &chunk["choices"][0];
        if let Some(reason) = choice["finish_reason"].as_str() {
            finish = Some(reason.to_owned());
        }
        let Some(calls) = choice["delta"]["tool_calls"].as_array() else {
            continue;
        };
        let call = &calls[0];
        assert_eq!(call["index"], 0);
        if let Some(call_id) = call["id"].as_str() {
            assert!(id.is_none(), "the id comes once");
            assert_eq!(call["type"], "function");
            id = Some(call_id.to_owned());
            name = call["function"]["name"].as_str().map(str::to_owned);
        } else {
            argument_deltas += 1;
        }
        arguments.push_str(call["function"]["arguments"].as_str().unwrap());
    }
    assert!(id.unwrap().starts_with("chatcmpl-tool-"));
    assert_eq!(name.as_deref(), Some("book_flight"));
    assert!(argument_deltas >= 2, "arguments arrive in several deltas");
    assert_eq!(finish.as_deref(), Some("tool_calls"));
    let parsed: Value = serde_json::from_str(&arguments).unwrap();
    assert_eq!(
        parsed,
        json!({"from": "mock", "to": "mock", "passengers": 1, "flexible": true})
    );
}

#[tokio::test]
async fn embeddings_as_floats_and_base64() {
    let mock = start(MockArgs {
        embedding_dim: 8,
        ..MockArgs::default()
    })
    .await;
    let floats = json_of(
        mock.post(
            "/v1/embeddings",
            json!({"model": "mock-llama", "input": ["hello world", "bye"]}),
        )
        .await,
    )
    .await;
    assert!(floats["id"].as_str().unwrap().starts_with("embd-"));
    assert_eq!(floats["object"], "list");
    assert_eq!(floats["data"].as_array().unwrap().len(), 2);
    assert_eq!(floats["data"][0]["object"], "embedding");
    let vector: Vec<f32> = floats["data"][0]["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    assert_eq!(vector.len(), 8);
    let norm: f32 = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4);
    assert_eq!(floats["usage"]["completion_tokens"], 0);

    let packed = json_of(
        mock.post(
            "/v1/embeddings",
            json!({"model": "mock-llama", "input": "hello world", "encoding_format": "base64"}),
        )
        .await,
    )
    .await;
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(packed["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    let decoded: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    // Same input, same vector, whatever the encoding.
    assert_eq!(decoded.len(), 8);
    for (a, b) in decoded.iter().zip(&vector) {
        assert!((a - b).abs() < 1e-6);
    }
}

#[tokio::test]
async fn unknown_model_is_a_404_with_integer_code() {
    let mock = start(MockArgs::default()).await;
    let response = mock
        .post("/v1/chat/completions", chat(json!({"model": "gpt-9"})))
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        json_of(response).await,
        json!({"error": {
            "message": "The model `gpt-9` does not exist.",
            "type": "NotFoundError",
            "param": "model",
            "code": 404
        }})
    );
    let bad = mock
        .post("/v1/chat/completions", json!({"model": "mock-llama"}))
        .await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json_of(bad).await["error"]["type"], "BadRequestError");
}

#[tokio::test]
async fn fault_429_carries_retry_after() {
    let mock = start(MockArgs::default()).await;
    let response = mock
        .post("/v1/chat/completions", chat(json!({"mock_fault": "429"})))
        .await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "1");
    let error = json_of(response).await;
    assert_eq!(error["error"]["code"], 429);

    let unavailable = mock
        .post(
            "/v1/completions",
            json!({"prompt": "hi", "mock_fault": "503"}),
        )
        .await;
    assert_eq!(unavailable.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        json_of(unavailable).await["error"]["type"],
        "ServiceUnavailableError"
    );
}

#[tokio::test]
async fn reset_mid_stream_is_a_body_error() {
    let mock = start(MockArgs::default()).await;
    let body = chat(json!({"stream": true, "max_tokens": 10, "mock_fault": "reset"}));
    let response = mock.post("/v1/chat/completions", body).await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let mut received = Vec::new();
    let error = loop {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    received.extend_from_slice(&data);
                }
            }
            Some(Err(error)) => break Some(error),
            None => break None,
        }
    };
    assert!(error.is_some(), "the stream must end in an error");
    let text = String::from_utf8(received).unwrap();
    assert!(
        text.starts_with("data: {"),
        "some chunks arrive first: {text:?}"
    );
    assert!(!text.contains("[DONE]"));

    // Non-streaming: the connection closes without an answer.
    let request = Request::post(format!("http://{}/v1/chat/completions", mock.addr))
        .body(Full::new(Bytes::from(
            chat(json!({"mock_fault": "reset"})).to_string(),
        )))
        .unwrap();
    assert!(mock.client.request(request).await.is_err());
}

#[tokio::test]
async fn stream_error_and_malformed_faults_follow_vllm_framing() {
    let mock = start(MockArgs::default()).await;
    let events = events_of(
        mock.post(
            "/v1/chat/completions",
            chat(json!({"stream": true, "mock_fault": "stream_error"})),
        )
        .await,
    )
    .await;
    let error: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert_eq!(error["error"]["type"], "InternalServerError");
    assert_eq!(error["error"]["code"], 500);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));

    let events = events_of(
        mock.post(
            "/v1/chat/completions",
            chat(json!({"stream": true, "mock_fault": "malformed"})),
        )
        .await,
    )
    .await;
    let broken = events
        .iter()
        .filter(|data| serde_json::from_str::<Value>(data).is_err() && *data != "[DONE]")
        .count();
    assert_eq!(broken, 1);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));

    let truncated = mock
        .post(
            "/v1/chat/completions",
            chat(json!({"mock_fault": "malformed"})),
        )
        .await;
    assert_eq!(truncated.status(), StatusCode::OK);
    let bytes = truncated.into_body().collect().await.unwrap().to_bytes();
    assert!(serde_json::from_slice::<Value>(&bytes).is_err());

    let unknown = mock
        .post(
            "/v1/chat/completions",
            chat(json!({"mock_fault": "explode"})),
        )
        .await;
    assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn api_key_is_enforced_like_vllm_and_last_request_is_recorded() {
    let mock = start(MockArgs {
        api_key: vec!["upstream-secret".into()],
        ..MockArgs::default()
    })
    .await;
    let denied = mock.get("/v1/models").await;
    assert_eq!(denied.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json_of(denied).await, json!({"error": "Unauthorized"}));
    let wrong = mock
        .send(Method::GET, "/v1/models", Some("client-key"), None)
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    // Health stays public.
    assert_eq!(mock.get("/health").await.status(), StatusCode::OK);

    let body = chat(
        json!({"stream": true, "stream_options": {"include_usage": true},
                           "x_custom": {"kept": true}}),
    );
    let ok = mock
        .send(
            Method::POST,
            "/v1/chat/completions",
            Some("upstream-secret"),
            Some(body.clone()),
        )
        .await;
    assert_eq!(ok.status(), StatusCode::OK);
    let _ = events_of(ok).await;

    let last = json_of(mock.get("/mock/last-request").await).await;
    assert_eq!(last["path"], "/v1/chat/completions");
    assert_eq!(last["headers"]["authorization"], "Bearer upstream-secret");
    assert_eq!(last["body"], body);
    // Only the last one is kept unless asked for every one.
    assert_eq!(json_of(mock.get("/mock/requests").await).await, json!([]));
}

#[tokio::test]
async fn every_request_body_is_kept_when_asked() {
    let mock = start(MockArgs {
        record_requests: true,
        ..MockArgs::default()
    })
    .await;
    let bodies: Vec<Value> = (0..3).map(|i| chat(json!({"seed": i}))).collect();
    for body in &bodies {
        let answer = mock
            .send(
                Method::POST,
                "/v1/chat/completions",
                None,
                Some(body.clone()),
            )
            .await;
        assert_eq!(answer.status(), StatusCode::OK);
    }
    let kept = json_of(mock.get("/mock/requests").await).await;
    assert_eq!(kept, Value::Array(bodies));
}

#[tokio::test]
async fn serve_returns_once_shutdown_resolves() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, MockArgs::default(), async move {
        let _ = stopped.await;
    }));
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let health = Request::get(format!("http://{addr}/health"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(
        client.request(health).await.unwrap().status(),
        StatusCode::OK
    );
    stop.send(()).unwrap();
    // Generous bound: this guards against hanging, it does not measure speed.
    let finished = tokio::time::timeout(std::time::Duration::from_secs(30), server).await;
    assert!(matches!(finished, Ok(Ok(Ok(())))));
}

#[tokio::test]
async fn the_anthropic_flavour_serves_messages_and_anthropic_errors_only() {
    let mock = start(MockArgs {
        flavor: airlock::mock_upstream::Flavor::Anthropic,
        api_key: vec!["sk-mock".into()],
        ..MockArgs::default()
    })
    .await;
    let ask = json!({"model": "mock-llama", "max_tokens": 3, "messages": [{"role": "user", "content": "hi"}]});
    let ok = mock
        .send(
            Method::POST,
            "/v1/messages",
            Some("sk-mock"),
            Some(ask.clone()),
        )
        .await;
    assert_eq!(ok.status(), StatusCode::OK);
    let message = json_of(ok).await;
    assert_eq!(
        (
            message["type"].as_str(),
            message["usage"]["output_tokens"].as_u64()
        ),
        (Some("message"), Some(3))
    );

    let denied = mock.post("/v1/messages", ask.clone()).await;
    assert_eq!(denied.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        json_of(denied).await["error"]["type"],
        "authentication_error"
    );
    let elsewhere = mock
        .send(
            Method::POST,
            "/v1/chat/completions",
            Some("sk-mock"),
            Some(ask.clone()),
        )
        .await;
    assert_eq!(elsewhere.status(), StatusCode::NOT_FOUND);
    assert_eq!(json_of(elsewhere).await["type"], "error");
    let bad = mock
        .send(
            Method::POST,
            "/v1/messages",
            Some("sk-mock"),
            Some(json!({"model": "m", "messages": []})),
        )
        .await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json_of(bad).await["error"]["type"], "invalid_request_error");
}

#[tokio::test]
async fn the_gemini_flavour_checks_requests_as_google_does() {
    let mock = start(MockArgs {
        flavor: airlock::mock_upstream::Flavor::Gemini,
        api_key: vec!["gm".into()],
        models: vec!["gemini-2.5-flash".into()],
        ..MockArgs::default()
    })
    .await;
    let generate = "/v1beta/models/gemini-2.5-flash:generateContent?key=gm";
    let ask = |extra: Value| {
        let mut body = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]});
        for (key, value) in extra.as_object().unwrap() {
            body[key] = value.clone();
        }
        body
    };
    // Proto field names are taken as well as JSON ones.
    let ok = mock
        .post(
            generate,
            ask(json!({"generation_config": {"max_output_tokens": 3}})),
        )
        .await;
    assert_eq!(ok.status(), StatusCode::OK);
    let answer = json_of(ok).await;
    assert_eq!(answer["candidates"][0]["finishReason"], "MAX_TOKENS");
    assert_eq!(answer["usageMetadata"]["candidatesTokenCount"], 3);

    let refused = |body: Value, path: &'static str| {
        let mock = &mock;
        async move {
            let reply = mock.post(path, body).await;
            assert_eq!(reply.status(), StatusCode::BAD_REQUEST);
            let error = json_of(reply).await;
            assert_eq!(error["error"]["status"], "INVALID_ARGUMENT");
            error["error"]["message"].as_str().unwrap().to_string()
        }
    };
    let schema = json!({"type": "OBJECT", "properties": {"a": {"type": "STRING"}}, "additionalProperties": false});
    let message = refused(
        ask(json!({"generationConfig": {"responseMimeType": "application/json", "responseSchema": schema}})),
        generate,
    )
    .await;
    assert!(
        message.contains("Unknown name \"additionalProperties\""),
        "{message}"
    );
    let empty = json!([{"functionDeclarations": [{"name": "f", "parameters": {"type": "OBJECT", "properties": {}}}]}]);
    let message = refused(ask(json!({"tools": empty})), generate).await;
    assert!(
        message.contains("should be non-empty for OBJECT type"),
        "{message}"
    );
    let message = refused(ask(json!({"messages": []})), generate).await;
    assert!(message.contains("messages"), "{message}");
    let stream_without_sse = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?key=gm";
    refused(ask(json!({})), stream_without_sse).await;

    let broken = mock
        .post(
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse&key=gm",
            ask(json!({"mock_fault": "stream_error"})),
        )
        .await;
    let bytes = broken.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let last = text.trim_end().rsplit("\r\n\r\n").next().unwrap();
    let error: Value = serde_json::from_str(last.strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(error["error"]["status"], "INTERNAL", "{text}");

    let denied = mock
        .post(
            "/v1beta/models/gemini-2.5-flash:generateContent",
            ask(json!({})),
        )
        .await;
    assert_eq!(denied.status(), StatusCode::FORBIDDEN);
}

/// A script file in a fresh temporary directory (removed with the directory guard).
struct ScriptFile {
    dir: std::path::PathBuf,
    path: std::path::PathBuf,
}

impl ScriptFile {
    fn new(name: &str, text: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("airlock-mock-script-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        Self { dir, path }
    }
}

impl Drop for ScriptFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const AGENT_SCRIPT: &str = r#"
turns:
  - match: "list-the-directory"
    tool_calls:
      - name: [Bash, exec_command, run_shell_command]
        arguments: {command: "ls /tmp/x"}
  - match: "zebra.txt"
    text: "The directory holds zebra.txt."
  - text: "Hello from the scripted model."
"#;

fn tool(name: &str) -> Value {
    json!({"type": "function", "function": {"name": name, "parameters": {
        "type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}}})
}

fn user(text: &str) -> Value {
    json!({"model": "mock-llama", "messages": [{"role": "user", "content": text}]})
}

/// The tool calls of a stream, reassembled: (id, name, arguments) per index.
fn streamed_calls(events: &[String]) -> (Vec<(String, String, String)>, Option<String>) {
    let mut calls: Vec<(String, String, String)> = Vec::new();
    let mut finish = None;
    for data in &events[..events.len() - 1] {
        let chunk: Value = serde_json::from_str(data).unwrap();
        let choice = &chunk["choices"][0];
        if let Some(reason) = choice["finish_reason"].as_str() {
            finish = Some(reason.to_owned());
        }
        for call in choice["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let index = call["index"].as_u64().unwrap() as usize;
            if let Some(id) = call["id"].as_str() {
                assert_eq!(index, calls.len(), "calls open in order");
                let name = call["function"]["name"].as_str().unwrap();
                calls.push((id.into(), name.into(), String::new()));
            }
            calls[index]
                .2
                .push_str(call["function"]["arguments"].as_str().unwrap());
        }
    }
    (calls, finish)
}

#[tokio::test]
async fn a_script_answers_by_match_then_in_order() {
    let script = ScriptFile::new("agent.yaml", AGENT_SCRIPT);
    let mock = start(MockArgs {
        script: Some(script.path.clone()),
        ..MockArgs::default()
    })
    .await;
    // Matched: the first candidate the request declares is called.
    let mut body = user("Please list-the-directory /tmp/x");
    body["tools"] = json!([tool("Read"), tool("exec_command"), tool("Bash")]);
    let answer = json_of(mock.post("/v1/chat/completions", body.clone()).await).await;
    let choice = &answer["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], Value::Null);
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "Bash");
    assert_eq!(call["function"]["arguments"], r#"{"command":"ls /tmp/x"}"#);
    let first_id = call["id"].as_str().unwrap().to_owned();
    let again = json_of(mock.post("/v1/chat/completions", body).await).await;
    assert_ne!(
        again["choices"][0]["message"]["tool_calls"][0]["id"],
        first_id
    );

    // The tool's result matches the next turn.
    let result = json!({"model": "mock-llama", "messages": [
        {"role": "user", "content": "Please list-the-directory /tmp/x"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": first_id, "type": "function",
            "function": {"name": "Bash", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": first_id, "content": "zebra.txt\n"}],
        "tools": [tool("Bash")]});
    let answer = json_of(mock.post("/v1/chat/completions", result).await).await;
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "The directory holds zebra.txt."
    );
    assert!(answer["usage"]["completion_tokens"].as_u64().unwrap() > 0);

    // Unmatched: the turns without `match`, in order, then the fallback.
    let first = json_of(mock.post("/v1/chat/completions", user("hi")).await).await;
    assert_eq!(
        first["choices"][0]["message"]["content"],
        "Hello from the scripted model."
    );
    let second = json_of(mock.post("/v1/chat/completions", user("hi")).await).await;
    assert_eq!(
        second["choices"][0]["message"]["content"],
        "The scripted model has nothing more to say."
    );
}

#[tokio::test]
async fn a_scripted_tool_the_request_does_not_declare_is_answered_as_text() {
    let script = ScriptFile::new("undeclared.json", &{
        let yaml = json!({"turns": [{"tool_calls": [{"name": ["Bash", "shell"],
                                                      "arguments": {"command": "ls"}}]}]});
        yaml.to_string()
    });
    let mock = start(MockArgs {
        script: Some(script.path.clone()),
        ..MockArgs::default()
    })
    .await;
    let mut body = user("go");
    body["tools"] = json!([tool("Read")]);
    let answer = json_of(mock.post("/v1/chat/completions", body).await).await;
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "The scripted tool call was not made: the request declares no tool named Bash or \
         shell; it declares Read."
    );
}

#[tokio::test]
async fn a_scripted_tool_call_streams_with_usage() {
    let script = ScriptFile::new(
        "parallel.yaml",
        "turns:\n  - tool_calls:\n      - {name: Bash, arguments: {command: \"ls /tmp/x\"}}\n      - options:\n          - {name: run_shell_command, arguments: {command: pwd}}\n",
    );
    let mock = start(MockArgs {
        script: Some(script.path.clone()),
        ..MockArgs::default()
    })
    .await;
    let mut body = user("go");
    body["tools"] = json!([tool("Bash"), tool("run_shell_command")]);
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let events = events_of(mock.post("/v1/chat/completions", body).await).await;
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let (calls, finish) = streamed_calls(&events);
    assert_eq!(finish.as_deref(), Some("tool_calls"));
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].1, "Bash");
    assert_eq!(calls[0].2, r#"{"command":"ls /tmp/x"}"#);
    assert_eq!(calls[1].1, "run_shell_command");
    assert_eq!(calls[1].2, r#"{"command":"pwd"}"#);
    assert_ne!(calls[0].0, calls[1].0);
    let usage: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert!(usage["usage"]["completion_tokens"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn a_script_serves_the_gemini_flavour_too() {
    let script = ScriptFile::new("gemini.yaml", AGENT_SCRIPT);
    let mock = start(MockArgs {
        script: Some(script.path.clone()),
        flavor: airlock::mock_upstream::Flavor::Gemini,
        models: vec!["gemini-2.5-flash".into()],
        ..MockArgs::default()
    })
    .await;
    let body = json!({
        "contents": [{"role": "user", "parts": [{"text": "list-the-directory please"}]}],
        "tools": [{"functionDeclarations": [{"name": "run_shell_command",
            "parametersJsonSchema": {"type": "object", "properties": {"command": {"type": "string"}}}}]}]
    });
    let answer = json_of(
        mock.post("/v1beta/models/gemini-2.5-flash:generateContent", body)
            .await,
    )
    .await;
    let part = &answer["candidates"][0]["content"]["parts"][0];
    assert_eq!(
        part["functionCall"],
        json!({"name": "run_shell_command", "args": {"command": "ls /tmp/x"}})
    );
}

#[tokio::test]
async fn a_broken_script_stops_the_server_from_starting() {
    let script = ScriptFile::new("broken.yaml", "turns:\n  - text: a\n    tool_calls: []\n");
    let args = MockArgs {
        script: Some(script.path.clone()),
        ..MockArgs::default()
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let error = serve(listener, args, async {})
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.ends_with("broken.yaml: turns[0]: has both `text` and `tool_calls`; give one"),
        "{error}"
    );
    let missing = MockArgs {
        script: Some(script.dir.join("missing.yaml")),
        ..MockArgs::default()
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let error = serve(listener, missing, async {})
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("missing.yaml: cannot read it"), "{error}");
}

#[tokio::test]
async fn text_only_never_calls_tools() {
    let mock = start(MockArgs {
        text_only: true,
        ..MockArgs::default()
    })
    .await;
    let mut body = user("weather?");
    body["tools"] = json!([tool("get_weather")]);
    let answer = json_of(mock.post("/v1/chat/completions", body.clone()).await).await;
    let choice = &answer["choices"][0];
    assert_eq!(choice["finish_reason"], "stop");
    assert_eq!(choice["message"]["tool_calls"], json!([]));
    assert!(choice["message"]["content"].as_str().unwrap().len() > 1);
    body["stream"] = json!(true);
    let events = events_of(mock.post("/v1/chat/completions", body.clone()).await).await;
    assert!(events.iter().all(|e| !e.contains("tool_calls")));
    // vLLM's checks of tool_choice still apply.
    body["tool_choice"] = json!({"type": "function", "function": {"name": "other"}});
    let refused = mock.post("/v1/chat/completions", body).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_context_length_is_configurable_and_reported() {
    let mock = start(MockArgs {
        max_model_len: 64,
        ..MockArgs::default()
    })
    .await;
    let models = json_of(mock.get("/v1/models").await).await;
    assert_eq!(models["data"][0]["max_model_len"], 64);
    let mut body = user("four words of prompt");
    body["max_tokens"] = json!(60);
    let refused = mock.post("/v1/chat/completions", body.clone()).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let error = json_of(refused).await;
    assert_eq!(
        error["error"]["message"],
        "'max_tokens' or 'max_completion_tokens' is too large: 60. This model's maximum \
         context length is 64 tokens and your request has 8 input tokens (60 > 64 - 8)."
    );
    body["max_tokens"] = json!(56);
    assert_eq!(
        mock.post("/v1/chat/completions", body).await.status(),
        StatusCode::OK
    );
    let counted = json_of(
        mock.post(
            "/tokenize",
            json!({"messages": [{"role": "user", "content": "a b"}]}),
        )
        .await,
    )
    .await;
    assert_eq!(counted["max_model_len"], 64);

    // The default fits an agent asking for 32,000 tokens after a long prompt.
    let roomy = start(MockArgs::default()).await;
    let mut agent = user(&"word ".repeat(20_000));
    agent["max_tokens"] = json!(32_000);
    assert_eq!(
        roomy.post("/v1/chat/completions", agent).await.status(),
        StatusCode::OK
    );
}
