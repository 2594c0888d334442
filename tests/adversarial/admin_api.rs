//! Fuzzing the admin API over real sockets with a super-admin's token: damaged JSON
//! bodies on every endpoint that takes one (login included, which anyone can reach), and
//! hostile query strings on the ones that read them — the audit search's query language
//! above all, run against a real tantivy index of real traffic. Every answer must be a
//! success or a client error with the admin API's JSON error (`error.code`), never a 5xx.

use crate::common::{Extra, Gateway, admin_token, post, send};
use crate::fuzz::{arb_json, fuzz, mutated_with};
use airlock::tenancy::rbac::Role;
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestCaseResult};
use serde_json::{Value, json};
use std::time::Duration;

/// Write endpoints and a valid body for each.
fn writes() -> Vec<(&'static str, &'static str, Value)> {
    let policy =
        "policy: p\nrules:\n  - id: r\n    match: {model: [chat-model]}\n    action: deny\n";
    vec![
        (
            "POST",
            "/admin/login",
            json!({"user": "root", "password": "correct horse"}),
        ),
        ("POST", "/admin/tenants", json!({"name": "beta"})),
        ("POST", "/admin/tenants/acme/teams", json!({"name": "red"})),
        (
            "POST",
            "/admin/tenants/acme/users",
            json!({"name": "alice@example.com", "team": "red"}),
        ),
        (
            "POST",
            "/admin/keys",
            json!({"tenant": "acme", "name": "k", "models": ["chat-model"],
            "expires_in_secs": 60}),
        ),
        (
            "PUT",
            "/admin/pricing/chat-model",
            json!({"input": 1.5, "output": 2.0, "cached_input": 0.5}),
        ),
        (
            "PUT",
            "/admin/budgets",
            json!({"tenant": "acme", "scope": "tenant", "window": "month",
            "limit_usd": 10.0, "soft_limit_pct": 80, "downgrade_at_pct": 90}),
        ),
        (
            "PUT",
            "/admin/rate-limits",
            json!({"tenant": "acme", "scope": "tenant",
            "requests_per_minute": 100, "tokens_per_minute": 1000}),
        ),
        (
            "POST",
            "/admin/credentials",
            json!({"provider": "mock", "name": "c", "secret": "sk-1",
            "tenant": "acme"}),
        ),
        (
            "POST",
            "/admin/routes/chat-model/targets/0/breaker",
            json!({"action": "close"}),
        ),
        ("POST", "/admin/policies/lint", json!({"source": policy})),
        (
            "POST",
            "/admin/policies/test",
            json!({"source": policy,
            "cases": "cases:\n  - name: c\n    request: {model: chat-model}\n    expect: {decision: deny}\n"}),
        ),
        (
            "POST",
            "/admin/policies/dry-run",
            json!({"source": policy, "since": "7d", "limit": 10}),
        ),
        ("POST", "/admin/policies/rollback", json!({"version": 1})),
        (
            "PUT",
            "/admin/policies/shadow",
            json!({"source": policy, "message": "m"}),
        ),
    ]
}

/// The admin API's error: `{"error": {"code", "message"}}`.
fn judged(what: &str, status: u16, body: &[u8]) -> TestCaseResult {
    let text = String::from_utf8_lossy(body);
    prop_assert!(status < 500, "{what}: status {status}: {text}");
    if status >= 400 {
        let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        prop_assert!(
            value["error"]["code"].is_string() && value["error"]["message"].is_string(),
            "{what}: status {status} without the admin error shape: {text}"
        );
    }
    Ok(())
}

async fn gateway() -> (Gateway, String) {
    let extra = Extra {
        top: "audit:\n  search:\n    commit_interval_secs: 1\n".into(),
        ..Extra::default()
    };
    let gw = Gateway::start_full("", &[], &extra).await;
    let token = admin_token(&gw, Role::SuperAdmin);
    (gw, token)
}

/// Sends with the token, failing the case on no answer within 20 s.
fn exchange(
    runtime: &tokio::runtime::Runtime,
    gw: &Gateway,
    method: &str,
    path: &str,
    token: &str,
    body: String,
) -> Result<crate::common::Reply, TestCaseError> {
    let auth = format!("Bearer {token}");
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    runtime
        .block_on(async {
            let url = gw.url(path);
            tokio::time::timeout(Duration::from_secs(20), send(method, &url, &headers, body)).await
        })
        .map_err(|_| TestCaseError::fail(format!("no answer within 20 s: {method} {path}")))
}

#[test]
fn damaged_admin_bodies() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (gw, token) = runtime.block_on(gateway());
    let seeds: Vec<((&str, &str), Value)> = writes()
        .into_iter()
        .map(|(method, path, body)| ((method, path), body))
        .collect();
    let endpoints: Vec<(&str, &str)> = seeds.iter().map(|(endpoint, _)| *endpoint).collect();
    let input = prop_oneof![
        5 => mutated_with(seeds),
        1 => (proptest::sample::select(endpoints), arb_json()),
    ];
    fuzz("admin_bodies", input, |((method, path), body)| {
        let reply = exchange(&runtime, &gw, method, path, &token, body.to_string())?;
        judged(&format!("{method} {path}"), reply.status, &reply.body)
    });
    runtime.block_on(gw.stop());
}

/// Words and syntax of the search language, and of the other query parameters.
const QUERY_PIECES: &[&str] = &[
    "revenue",
    "forecast",
    "model:chat-model",
    "decision:deny",
    "status:[500 TO 599]",
    "status:[* TO *]",
    "status:{200 TO 300}",
    "user:alice",
    "kind:llm.request",
    "\"a phrase",
    "\"quarterly revenue\"",
    "AND",
    "OR",
    "NOT",
    "-",
    "+",
    "*",
    "?",
    "~2",
    "^3",
    "(",
    ")",
    ":",
    "[",
    "]",
    "{",
    "}",
    "\\",
    "/regex/",
    "field:",
    ":value",
    "tenant_id:acme",
    "cost:>1",
    "2026-01-01",
    "24h",
    "7d",
    "-1d",
    "99999999999d",
    "1970-01-01T00:00:00Z",
    "\u{0}",
    "é",
    "😀",
    "%",
    "&",
    "=",
    "#",
];

fn query_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            4 => proptest::sample::select(QUERY_PIECES).prop_map(str::to_string),
            1 => ".{0,12}",
        ],
        0..8,
    )
    .prop_map(|pieces| pieces.join(" "))
}

/// Percent-encodes a query parameter's value.
fn encoded(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn hostile_audit_searches_and_report_queries() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (gw, token) = runtime.block_on(gateway());
    let url = gw.url("/v1/chat/completions");
    for i in 0..6 {
        let body = json!({"model": "chat-model", "messages": [{"role": "user",
            "content": format!("quarterly revenue forecast {i} for alice@example.com")}]});
        assert_eq!(runtime.block_on(post(&url, &gw.key, &body)).status, 200);
    }
    let names = [
        "/admin/audit/search?q=",
        "/admin/audit/search?q=revenue&since=",
        "/admin/audit/search?q=revenue&sort=cost&order=",
        "/admin/audit/search?limit=3&offset=",
        "/admin/audit/search?status=",
        "/admin/reports/chargeback?from=2026-01-01&to=",
        "/admin/reports/chargeback?from=2026-01-01&to=2026-02-01&by=",
        "/admin/policies/diff?from=1&to=",
        "/admin/credentials?tenant=",
        "/admin/budgets?tenant=",
    ];
    let input = (proptest::sample::select(names.to_vec()), query_text());
    fuzz("admin_queries", input, |(path, value)| {
        let path = format!("{path}{}", encoded(&value));
        let reply = exchange(&runtime, &gw, "GET", &path, &token, String::new())?;
        judged(&path, reply.status, &reply.body)
    });
    runtime.block_on(gw.stop());
}
