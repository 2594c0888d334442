//! Rate limits set through the admin API against real traffic: requests per minute to
//! the request, tokens per minute taken by an estimate and corrected by actual usage,
//! limits per user, and 429s in the caller's own wire format.

mod common;

use airlock::tenancy::rbac::Role;
use common::{Gateway, admin, admin_token, post, send};
use serde_json::{Value, json};

fn chat(max_tokens: u64) -> Value {
    json!({"model": "chat-model", "max_tokens": max_tokens,
           "messages": [{"role": "user", "content": "how many tokens"}]})
}

/// Sends `n` requests one after another; returns how many were served.
async fn served_of(gw: &Gateway, key: &str, body: &Value, n: usize) -> usize {
    let mut served = 0;
    for _ in 0..n {
        let reply = post(&gw.url("/v1/chat/completions"), key, body).await;
        if reply.status == 200 {
            served += 1;
        } else {
            reply.assert_error(429, "rate_limited");
            reply.retry_after();
        }
    }
    served
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_and_tokens_per_minute_hold_to_the_request() {
    let gw = Gateway::start().await;
    let root = admin_token(&gw, Role::SuperAdmin);
    let keys = admin(
        &gw,
        "GET",
        "/admin/keys?tenant=acme",
        Some(&root),
        Value::Null,
    )
    .await;
    let key_id = keys.json()["keys"][0]["id"].as_str().unwrap().to_string();

    // 30 requests a minute on the key: a full bucket serves 30 at once, then one every
    // two seconds.
    let reply = admin(
        &gw,
        "PUT",
        "/admin/rate-limits",
        Some(&root),
        json!({"tenant": "acme", "scope": "key", "subject": key_id, "requests_per_minute": 30}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let served = served_of(&gw, &gw.key, &chat(5), 45).await;
    assert!((30..=31).contains(&served), "{served}");

    // Anthropic's callers get Anthropic's error shape, with the wait.
    let auth = gw.key.clone();
    let reply = send(
        "POST",
        &gw.url("/v1/messages"),
        &[
            ("x-api-key", auth.as_str()),
            ("anthropic-version", "2023-06-01"),
            ("content-type", "application/json"),
        ],
        serde_json::to_vec(&json!({"model": "chat-model", "max_tokens": 5,
            "messages": [{"role": "user", "content": "hi"}]}))
        .unwrap(),
    )
    .await;
    assert_eq!(reply.status, 429);
    assert_eq!(reply.json()["type"], "error");
    assert!(reply.headers.contains_key("retry-after"));

    // 600 tokens a minute on another tenant. A request asking for 500 completion tokens
    // is taken at about 505; the mock writes 16, and the difference comes back when it
    // ends. Without that correction only one would pass.
    let other = gw.create_key("other", None, None);
    let reply = admin(
        &gw,
        "PUT",
        "/admin/rate-limits",
        Some(&root),
        json!({"tenant": "other", "scope": "tenant", "tokens_per_minute": 600}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let served = served_of(&gw, &other, &chat(500), 10).await;
    assert!((3..=6).contains(&served), "{served}");
    // Small requests still fit in what is left.
    assert_eq!(served_of(&gw, &other, &chat(1), 3).await, 3);

    // Per person: the limit of the user a caller names.
    let reply = admin(
        &gw,
        "PUT",
        "/admin/rate-limits",
        Some(&root),
        json!({"tenant": "other", "scope": "user", "subject": "carol", "requests_per_minute": 2}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let as_user = |user: &'static str| {
        let (url, key) = (gw.url("/v1/chat/completions"), other.clone());
        async move {
            let auth = format!("Bearer {key}");
            send(
                "POST",
                &url,
                &[
                    ("authorization", auth.as_str()),
                    ("content-type", "application/json"),
                    ("x-user-id", user),
                ],
                serde_json::to_vec(&chat(1)).unwrap(),
            )
            .await
            .status
        }
    };
    assert_eq!(as_user("carol").await, 200);
    assert_eq!(as_user("carol").await, 200);
    assert_eq!(as_user("carol").await, 429);
    assert_eq!(as_user("dave").await, 200);

    // Limits are listed per tenant, and bad ones refused.
    let listed = admin(
        &gw,
        "GET",
        "/admin/rate-limits?tenant=other",
        Some(&root),
        Value::Null,
    )
    .await;
    assert_eq!(listed.json()["rate_limits"].as_array().unwrap().len(), 2);
    let bad = admin(
        &gw,
        "PUT",
        "/admin/rate-limits",
        Some(&root),
        json!({"tenant": "other", "scope": "tenant", "requests_per_minute": 0}),
    )
    .await;
    bad.assert_admin_error(400, "invalid_request");
    gw.stop().await;
}
