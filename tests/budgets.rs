//! Budgets through the admin API against real traffic: a hard limit that 200 concurrent
//! requests cannot overspend, a soft-limit webhook delivered once per window, and a
//! downgrade to a cheaper model that the response names.

mod common;

use airlock::tenancy::rbac::Role;
use common::{Extra, Gateway, admin, admin_token, post, scoped_token};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

/// Prompt tokens cost $100 and completion tokens $1000 per million: 100,000 and
/// 1,000,000 nano-dollars each. `cheap-model` costs a tenth.
fn priced() -> Extra {
    Extra {
        models: "  cheap-model:\n    upstream: mock\n    model: mock-cheap\n    retry: {attempts: 1}\n".into(),
        top: "pricing:\n  models:\n    mock-llama: {input: 100, output: 1000}\n    mock-cheap: {input: 10, output: 100}\n".into(),
        ..Extra::default()
    }
}

const MOCK_FLAGS: &[&str] = &["--latency-ms", "40", "--models", "mock-llama,mock-cheap"];

fn chat(model: &str) -> Value {
    json!({"model": model, "max_tokens": 10,
           "messages": [{"role": "user", "content": "count me in"}]})
}

/// A webhook receiver on loopback: the bodies it was sent.
async fn webhook_receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let received = Arc::new(Mutex::new(Vec::new()));
    let seen = received.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let seen = seen.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let seen = seen.clone();
                        async move {
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            seen.lock()
                                .unwrap()
                                .push(serde_json::from_slice(&body).unwrap());
                            Ok::<_, std::convert::Infallible>(http::Response::new(
                                http_body_util::Full::new(bytes::Bytes::from_static(b"ok")),
                            ))
                        }
                    });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    (url, received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_cannot_overspend_a_hard_budget_and_the_soft_alert_fires_once() {
    let gw = Gateway::start_full("  admin_api: true\n", MOCK_FLAGS, &priced()).await;
    let root = admin_token(&gw, Role::SuperAdmin);
    let (hook, received) = webhook_receiver().await;
    // About fifty requests' worth: each costs about (prompt + 10 completion tokens).
    let limit_usd = 0.52;
    let reply = admin(
        &gw,
        "PUT",
        "/admin/budgets",
        Some(&root),
        json!({"tenant": "acme", "scope": "tenant", "window": "monthly",
               "limit_usd": limit_usd, "soft_limit_pct": 50, "webhook_url": hook}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let budget_id = reply.json()["id"].as_str().unwrap().to_string();

    let url = gw.url("/v1/chat/completions");
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let (url, key) = (url.clone(), gw.key.clone());
        tasks.push(tokio::spawn(async move {
            post(&url, &key, &chat("chat-model")).await
        }));
    }
    let (mut served, mut refused, mut max_cost) = (0, 0, 0i64);
    for task in tasks {
        let reply = task.await.unwrap();
        match reply.status {
            200 => {
                served += 1;
                let usage = &reply.json()["usage"];
                let cost = usage["prompt_tokens"].as_i64().unwrap() * 100_000
                    + usage["completion_tokens"].as_i64().unwrap() * 1_000_000;
                max_cost = max_cost.max(cost);
            }
            _ => {
                reply.assert_error(429, "budget_exceeded");
                assert_eq!(reply.json()["error"]["type"], "insufficient_quota");
                assert!(reply.headers.contains_key("retry-after"));
                refused += 1;
            }
        }
    }
    assert!(
        served >= 30 && refused >= 100,
        "{served} served, {refused} refused"
    );

    // The budget's account: spent as the request log says, nothing left reserved.
    let listed = admin(&gw, "GET", "/admin/budgets", Some(&root), Value::Null).await;
    let budget = listed.json()["budgets"][0].clone();
    assert_eq!(budget["id"], budget_id.as_str());
    assert_eq!(budget["reserved_nano_usd"], 0);
    let spent = budget["spent_nano_usd"].as_i64().unwrap();
    let limit = (limit_usd * 1e9) as i64;
    // Reservations (prompt estimate + max_tokens) cover each request's actual cost, so
    // spending stays within the limit; the bound the design promises is one request over.
    assert!(spent <= limit + max_cost, "spent {spent} of {limit}");
    assert!(spent > limit / 2);

    // The soft limit (50 %) alerted once: one webhook, one audit event.
    for _ in 0..50 {
        if !received.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let hooks = received.lock().unwrap().clone();
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    assert_eq!(hooks[0]["event"], "budget.soft_limit");
    assert_eq!(hooks[0]["budget_id"], budget_id.as_str());
    let events: i64 = gw
        .state_db()
        .query_row(
            "SELECT count(*) FROM admin_events WHERE action = 'budget.soft_limit'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(events, 1);

    let rows = gw.stop().await;
    let logged: i64 = rows.iter().filter_map(|r| r.cost_nano_usd).sum();
    assert_eq!(logged, spent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_its_downgrade_share_a_budget_sends_requests_to_the_cheaper_model() {
    let gw = Gateway::start_full("  admin_api: true\n", MOCK_FLAGS, &priced()).await;
    let acme_admin = scoped_token(&gw, Role::TenantAdmin, Some("acme"));
    let reply = admin(
        &gw,
        "PUT",
        "/admin/budgets",
        Some(&acme_admin),
        json!({"tenant": "acme", "scope": "tenant", "window": "daily", "limit_usd": 0.1,
               "downgrade_at_pct": 20, "downgrade": {"chat-model": "cheap-model"}}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let url = gw.url("/v1/chat/completions");
    // Each full-price request costs about $0.0105: two pass 20 % of $0.10.
    let mut downgraded_at = None;
    for i in 0..6 {
        let reply = post(&url, &gw.key, &chat("chat-model")).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        match reply.headers.get("x-airlock-downgraded-from") {
            Some(from) => {
                assert_eq!(from, "chat-model");
                downgraded_at.get_or_insert(i);
            }
            None => assert!(downgraded_at.is_none(), "downgrades stay on"),
        }
    }
    assert_eq!(downgraded_at, Some(2));
    // Other models are not downgraded.
    let reply = post(&url, &gw.key, &chat("embed-model")).await;
    assert!(reply.headers.get("x-airlock-downgraded-from").is_none());

    // Bad budgets are refused clearly; another tenant's admin sees none of acme's.
    let bad = admin(
        &gw,
        "PUT",
        "/admin/budgets",
        Some(&acme_admin),
        json!({"tenant": "acme", "scope": "tenant", "window": "daily", "limit_usd": 1,
               "downgrade_at_pct": 20, "downgrade": {"chat-model": "no-such-model"}}),
    )
    .await;
    bad.assert_admin_error(400, "invalid_request");
    let rows = gw.stop().await;
    let cheap: Vec<_> = rows
        .iter()
        .filter(|r| r.upstream_model.as_deref() == Some("mock-cheap"))
        .collect();
    assert_eq!(cheap.len(), 4);
    assert!(
        cheap
            .iter()
            .all(|r| r.requested_model.as_deref() == Some("chat-model"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_a_stream_early_does_not_make_its_tokens_free() {
    let flags = [
        "--tokens-per-sec",
        "50",
        "--models",
        "mock-llama,mock-cheap",
    ];
    let gw = Gateway::start_full("", &flags, &priced()).await;
    let root = admin_token(&gw, Role::SuperAdmin);
    let reply = admin(
        &gw,
        "PUT",
        "/admin/budgets",
        Some(&root),
        json!({"tenant": "acme", "scope": "tenant", "window": "daily", "limit_usd": 100}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());

    // Read the stream's first event, then hang up long before its usage would come.
    let mut body = chat("chat-model");
    body["stream"] = true.into();
    body["max_tokens"] = 100.into();
    let request = http::Request::post(gw.url("/v1/chat/completions"))
        .header("authorization", format!("Bearer {}", gw.key))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            body.to_string(),
        )))
        .unwrap();
    let response = common::client().request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let mut stream = response.into_body();
    let first = stream.frame().await.unwrap().unwrap();
    assert!(first.data_ref().is_some_and(|d| !d.is_empty()));
    drop(stream);

    // The request is settled at its reservation, not at nothing.
    let mut budget = Value::Null;
    for _ in 0..100 {
        let listed = admin(&gw, "GET", "/admin/budgets", Some(&root), Value::Null).await;
        budget = listed.json()["budgets"][0].clone();
        if budget["reserved_nano_usd"] == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(budget["reserved_nano_usd"], 0, "{budget}");
    // At least the 100 completion tokens it asked for, at $1000 per million.
    assert!(
        budget["spent_nano_usd"].as_i64().unwrap() >= 100_000_000,
        "{budget}"
    );
    let rows = gw.stop().await;
    assert_eq!(rows[0].status, 499);
}
