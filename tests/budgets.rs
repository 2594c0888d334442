//! Budgets through the admin API against real traffic: a hard limit that 200 concurrent
//! requests cannot overspend by a single nano-dollar — also when their prompts are many
//! short messages and they name no completion limit — a soft-limit webhook delivered
//! once per window, also across a restart that rebuilds the ledgers, a downgrade to a
//! cheaper model that the response names, and webhook URLs kept out of internal
//! networks (at set time and at call time) with failures that tell the tenant nothing
//! about the network.

mod common;

use airlock::tenancy::rbac::Role;
use common::{Extra, Gateway, admin, admin_token, post, scoped_token};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

/// Prompt tokens cost $100 and completion tokens $1000 per million: 100,000 and
/// 1,000,000 nano-dollars each. `cheap-model` costs a tenth. Webhooks may reach the
/// test's receivers on loopback (which is refused unless allowed).
fn priced() -> Extra {
    priced_with("webhooks:\n  allow: [127.0.0.1]\n")
}

/// [`priced`] with other top-level sections instead of the webhook allowance.
fn priced_with(top: &str) -> Extra {
    Extra {
        models:
            "  cheap-model:\n    upstream: mock\n    model: mock-cheap\n    retry: {attempts: 1}\n"
                .into(),
        top: format!(
            "pricing:\n  models:\n    mock-llama: {{input: 100, output: 1000}}\n    mock-cheap: {{input: 10, output: 100}}\n{top}"
        ),
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
    let budget_id = put_budget(
        &gw,
        &root,
        json!({"tenant": "acme", "scope": "tenant", "window": "monthly",
               "limit_usd": limit_usd, "soft_limit_pct": 50, "webhook_url": hook}),
    )
    .await;

    let url = gw.url("/v1/chat/completions");
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let (url, key) = (url.clone(), gw.key.clone());
        tasks.push(tokio::spawn(async move {
            post(&url, &key, &chat("chat-model")).await
        }));
    }
    let (mut served, mut refused, mut max_cost) = (0, 0, 0i64);
    // (max_cost: a request was priced.)
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
    // Reservations bound each request's actual cost, so spending stays within the
    // limit, exactly.
    assert!(spent <= limit, "spent {spent} of {limit}");
    assert!(spent > limit / 2 && max_cost > 0);

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

/// The chat a budget test sends when it needs many short messages and no completion
/// limit: what a three-bytes-a-token estimate underrated (each message costs its
/// template's tokens too) and what an uncapped completion overran.
fn many_short_messages() -> Value {
    let messages: Vec<Value> = (0..40)
        .map(|i| json!({"role": if i % 2 == 0 { "user" } else { "assistant" }, "content": "a b"}))
        .collect();
    json!({"model": "chat-model", "messages": messages})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_hard_limit_is_exact_for_requests_that_estimates_underrate() {
    let extra = priced_with("budgets:\n  default_max_tokens: 4\n");
    let gw = Gateway::start_full("  admin_api: true\n", MOCK_FLAGS, &extra).await;
    let root = admin_token(&gw, Role::SuperAdmin);
    let limit_usd = 0.5;
    let reply = admin(
        &gw,
        "PUT",
        "/admin/budgets",
        Some(&root),
        json!({"tenant": "acme", "scope": "tenant", "window": "monthly", "limit_usd": limit_usd}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let url = gw.url("/v1/chat/completions");
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let (url, key) = (url.clone(), gw.key.clone());
        tasks.push(tokio::spawn(async move {
            post(&url, &key, &many_short_messages()).await
        }));
    }
    let mut served = 0;
    for task in tasks {
        let reply = task.await.unwrap();
        match reply.status {
            200 => {
                served += 1;
                // The completion was held to what the budget reserved for it.
                assert!(reply.json()["usage"]["completion_tokens"].as_u64().unwrap() <= 4);
            }
            _ => reply.assert_error(429, "budget_exceeded"),
        }
    }
    let listed = admin(&gw, "GET", "/admin/budgets", Some(&root), Value::Null).await;
    let budget = &listed.json()["budgets"][0];
    let spent = budget["spent_nano_usd"].as_i64().unwrap();
    let limit = (limit_usd * 1e9) as i64;
    assert!(served > 0, "the budget served some");
    assert!(spent <= limit, "spent {spent} of {limit}, {served} served");
    let rows = gw.stop().await;
    assert_eq!(
        rows.iter().filter_map(|r| r.cost_nano_usd).sum::<i64>(),
        spent
    );
}

/// Creates (or replaces) a budget as `token`: its id.
async fn put_budget(gw: &Gateway, token: &str, budget: Value) -> String {
    let reply = admin(gw, "PUT", "/admin/budgets", Some(token), budget).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()["id"].as_str().unwrap().to_string()
}

/// Polls until `received` holds `n` webhooks, then waits as long again for any more.
async fn webhooks(received: &Arc<Mutex<Vec<Value>>>, n: usize) -> Vec<Value> {
    for _ in 0..250 {
        if received.lock().unwrap().len() >= n {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    received.lock().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledgers_are_rebuilt_at_start_and_the_soft_alert_is_not_repeated_after_a_restart() {
    let gw = Gateway::start_full("  admin_api: true\n", MOCK_FLAGS, &priced()).await;
    let root = admin_token(&gw, Role::SuperAdmin);
    let (hook, received) = webhook_receiver().await;
    let monthly = put_budget(
        &gw,
        &root,
        json!({"tenant": "acme", "scope": "tenant", "window": "monthly", "limit_usd": 1,
               "soft_limit_pct": 3, "webhook_url": hook}),
    )
    .await;
    let url = gw.url("/v1/chat/completions");
    // About a cent each: the third passes 3 % of $1.
    for _ in 0..4 {
        assert_eq!(post(&url, &gw.key, &chat("chat-model")).await.status, 200);
    }
    let hooks = webhooks(&received, 1).await;
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    let spent_of = |listed: &common::Reply, id: &str| {
        listed.json()["budgets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["id"] == id)
            .map(|b| b["spent_nano_usd"].as_i64().unwrap())
            .unwrap()
    };
    let before = admin(&gw, "GET", "/admin/budgets", Some(&root), Value::Null).await;
    let spent_before = spent_of(&before, &monthly);
    assert!(spent_before >= 30_000_000, "{spent_before}");

    let gw = gw.restart(|_| {}).await;
    // The ledger is rebuilt from the request log: the spending survived the restart.
    let after = admin(&gw, "GET", "/admin/budgets", Some(&root), Value::Null).await;
    assert_eq!(spent_of(&after, &monthly), spent_before);
    let url = gw.url("/v1/chat/completions");
    // A request past the soft limit again: the alert was claimed before the restart.
    assert_eq!(post(&url, &gw.key, &chat("chat-model")).await.status, 200);
    // A second budget's alert, raised after that request settled: the alert thread
    // works in order, so by the time its webhook arrives, any repeat would have too.
    let daily = put_budget(
        &gw,
        &root,
        json!({"tenant": "acme", "scope": "tenant", "window": "daily", "limit_usd": 1,
               "soft_limit_pct": 1, "webhook_url": hook}),
    )
    .await;
    assert_eq!(post(&url, &gw.key, &chat("chat-model")).await.status, 200);
    let hooks = webhooks(&received, 2).await;
    let ids: Vec<&str> = hooks
        .iter()
        .map(|h| h["budget_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [monthly.as_str(), daily.as_str()], "{hooks:?}");
    let alerts: i64 = gw
        .state_db()
        .query_row(
            "SELECT count(*) FROM admin_events WHERE action = 'budget.soft_limit' AND target = ?1",
            [&monthly],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(alerts, 1);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_urls_into_internal_networks_are_refused_when_set() {
    // No allowance: the defaults keep webhooks out of every internal network.
    let gw = Gateway::start_full("  admin_api: true\n", MOCK_FLAGS, &priced_with("")).await;
    let acme_admin = scoped_token(&gw, Role::TenantAdmin, Some("acme"));
    let put = |url: &str| {
        admin(
            &gw,
            "PUT",
            "/admin/budgets",
            Some(&acme_admin),
            json!({"tenant": "acme", "scope": "tenant", "window": "daily", "limit_usd": 1,
                   "soft_limit_pct": 50, "webhook_url": url}),
        )
    };
    for url in [
        "http://127.0.0.1:22/hook",
        "http://localhost:8080/hook",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://[::ffff:7f00:1]/hook",
        "http://10.1.2.3/hook",
        "http://172.20.0.1/hook",
        "http://192.168.1.1/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[fe80::1]/hook",
        "http://[fd00::1]/hook",
        "http://0.0.0.0:8080/hook",
        "http://2130706433/hook",
        "ftp://example.com/hook",
    ] {
        let reply = put(url).await;
        reply.assert_admin_error(400, "webhook_url_forbidden");
        // Which address a name led to, or which network it is in, is not said.
        assert!(
            !reply.text().contains("resolves to"),
            "{url}: {}",
            reply.text()
        );
    }
    // A public address is accepted (nothing is called until an alert).
    assert_eq!(put("http://8.8.8.8/hook").await.status, 200);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_that_resolves_inward_at_call_time_is_not_called_and_the_tenant_learns_nothing() {
    let gw = Gateway::start_full("  admin_api: true\n", MOCK_FLAGS, &priced_with("")).await;
    let (hook, received) = webhook_receiver().await;
    // The budget as it stands after a name that resolved outward when it was set now
    // resolves to loopback (DNS changed): stored directly, past the set-time check.
    let port = hook.rsplit(':').next().unwrap().trim_end_matches("/hook");
    let conn = gw.state_db();
    let tenant: String = conn
        .query_row("SELECT id FROM tenants WHERE name = 'acme'", [], |r| {
            r.get(0)
        })
        .unwrap();
    airlock::metering::budget::BudgetStore::new(&conn)
        .put(
            &airlock::metering::budget::BudgetDef {
                id: String::new(),
                tenant_id: tenant.clone(),
                scope: airlock::metering::budget::Scope::Tenant,
                scope_id: tenant,
                window: airlock::metering::calendar::Window::Monthly,
                limit_nano_usd: 1_000_000_000,
                soft_limit_pct: Some(1),
                downgrade_at_pct: None,
                downgrade: Default::default(),
                webhook_url: Some(format!("http://localhost:{port}/hook")),
            },
            "test",
        )
        .unwrap();
    assert_eq!(
        post(
            &gw.url("/v1/chat/completions"),
            &gw.key,
            &chat("chat-model")
        )
        .await
        .status,
        200
    );
    // Three attempts, refused each time, then the failure is recorded.
    let mut failed = Vec::new();
    for _ in 0..200 {
        failed = gw
            .state_db()
            .prepare("SELECT COALESCE(detail, '') FROM admin_events WHERE action = 'budget.webhook_failed'")
            .unwrap()
            .query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        if !failed.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(failed, [airlock::metering::alerts::DELIVERY_FAILED]);
    assert!(
        received.lock().unwrap().is_empty(),
        "nothing reached loopback"
    );

    // What the tenant's admin finds in its audit trail names no address, port or error.
    let acme_admin = scoped_token(&gw, Role::TenantAdmin, Some("acme"));
    let mut found = Value::Null;
    for _ in 0..100 {
        found = admin(
            &gw,
            "GET",
            "/admin/audit/search?kind=admin.action&limit=100",
            Some(&acme_admin),
            Value::Null,
        )
        .await
        .json();
        if found["records"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r["action"] == "budget.webhook_failed"))
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let text = found.to_string();
    assert!(text.contains("budget.webhook_failed"), "{text}");
    for detail in [
        "localhost",
        "127.0.0.1",
        "refused",
        "os error",
        "loopback",
        "connect",
    ] {
        assert!(!text.contains(detail), "{detail} in {text}");
    }
    gw.stop().await;
}
