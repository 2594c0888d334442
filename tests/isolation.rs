//! Two tenants on one instance: every tenant-scoped admin endpoint, asked by one tenant's
//! admin about the other's objects, answers as if they did not exist, lists only its own,
//! and changes nothing of the other's; instance-wide endpoints refuse tenant admins.

mod common;

use airlock::tenancy::rbac::Role;
use common::{Gateway, admin, admin_token, post, scoped_token};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_admin_endpoint_shows_or_changes_another_tenants_objects() {
    let gw = Gateway::start().await;
    let other_key = gw.create_key("other", None, None);
    let root = admin_token(&gw, Role::SuperAdmin);
    let acme = scoped_token(&gw, Role::TenantAdmin, Some("acme"));
    let call = |method: &'static str, path: String, token: String, body: Value| {
        let gw = &gw;
        async move { admin(gw, method, &path, Some(&token), body).await }
    };
    let ok = |reply: common::Reply| {
        assert!(reply.status < 300, "{}", reply.text());
        reply.json()
    };

    // The other tenant's objects, made by a super-admin.
    let team = ok(call(
        "POST",
        "/admin/tenants/other/teams".into(),
        root.clone(),
        json!({"name": "ops"}),
    )
    .await);
    ok(call(
        "POST",
        "/admin/tenants/other/users".into(),
        root.clone(),
        json!({"name": "olga", "team": "ops"}),
    )
    .await);
    let keys = ok(call(
        "GET",
        "/admin/keys?tenant=other".into(),
        root.clone(),
        Value::Null,
    )
    .await);
    let other_key_id = keys["keys"][0]["id"].as_str().unwrap().to_string();
    let budget = ok(call(
        "PUT",
        "/admin/budgets".into(),
        root.clone(),
        json!({"tenant": "other", "scope": "tenant", "window": "monthly", "limit_usd": 10}),
    )
    .await);
    let limit = ok(call(
        "PUT",
        "/admin/rate-limits".into(),
        root.clone(),
        json!({"tenant": "other", "scope": "team", "subject": "ops", "requests_per_minute": 100}),
    )
    .await);
    let credential = ok(call(
        "POST",
        "/admin/credentials".into(),
        root.clone(),
        json!({"tenant": "other", "provider": "mock", "name": "byok", "secret": "sk-other-123"}),
    )
    .await);
    for key in [&gw.key, &other_key] {
        let reply = post(
            &gw.url("/v1/chat/completions"),
            key,
            &json!({"model": "chat-model", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
        assert_eq!(reply.status, 200);
    }
    let tenants = ok(call("GET", "/admin/tenants".into(), root.clone(), Value::Null).await);
    let id_of = |name: &str| {
        tenants["tenants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (acme_id, other_id) = (id_of("acme"), id_of("other"));

    // Asked about the other tenant's objects, acme's admin finds nothing there.
    let (budget_id, limit_id) = (
        budget["id"].as_str().unwrap(),
        limit["id"].as_str().unwrap(),
    );
    let credential_id = credential["id"].as_str().unwrap();
    let team_id = team["id"].as_str().unwrap();
    let not_found: Vec<(&str, String, Value)> = vec![
        ("GET", "/admin/tenants/other/teams".into(), Value::Null),
        (
            "GET",
            format!("/admin/tenants/{other_id}/teams"),
            Value::Null,
        ),
        (
            "POST",
            "/admin/tenants/other/teams".into(),
            json!({"name": "spies"}),
        ),
        ("GET", "/admin/tenants/other/users".into(), Value::Null),
        (
            "POST",
            "/admin/tenants/other/users".into(),
            json!({"name": "mole"}),
        ),
        (
            "PUT",
            "/admin/tenants/other/users/olga/team".into(),
            json!({"team": null}),
        ),
        ("GET", "/admin/keys?tenant=other".into(), Value::Null),
        ("POST", "/admin/keys".into(), json!({"tenant": "other"})),
        (
            "POST",
            format!("/admin/keys/{other_key_id}/revoke"),
            Value::Null,
        ),
        ("GET", "/admin/budgets?tenant=other".into(), Value::Null),
        (
            "PUT",
            "/admin/budgets".into(),
            json!({"tenant": "other", "scope": "tenant", "window": "daily", "limit_usd": 0.01}),
        ),
        ("DELETE", format!("/admin/budgets/{budget_id}"), Value::Null),
        ("GET", "/admin/rate-limits?tenant=other".into(), Value::Null),
        (
            "PUT",
            "/admin/rate-limits".into(),
            json!({"tenant": "other", "scope": "tenant", "requests_per_minute": 1}),
        ),
        (
            "DELETE",
            format!("/admin/rate-limits/{limit_id}"),
            Value::Null,
        ),
        (
            "POST",
            format!("/admin/credentials/{credential_id}/revoke"),
            Value::Null,
        ),
        (
            "POST",
            format!("/admin/credentials/{credential_id}/rotate"),
            json!({"secret": "sk-x"}),
        ),
        ("GET", "/admin/credentials?tenant=other".into(), Value::Null),
        (
            "GET",
            "/admin/reports/chargeback?from=2020-01-01&to=2100-01-01&tenant=other".into(),
            Value::Null,
        ),
    ];
    for (method, path, body) in not_found {
        let reply = call(method, path.clone(), acme.clone(), body).await;
        assert_eq!(reply.status, 404, "{method} {path}: {}", reply.text());
        // Only what the caller itself named is echoed back.
        let text = reply.text();
        assert!(
            !text.contains(team_id) && !text.contains("sk-other"),
            "{text}"
        );
    }
    // Instance-wide changes are not a tenant admin's.
    for (method, path, body) in [
        ("POST", "/admin/tenants", json!({"name": "third"})),
        (
            "PUT",
            "/admin/pricing/mock-llama",
            json!({"input": 0, "output": 0}),
        ),
        ("DELETE", "/admin/pii/vault/other", Value::Null),
    ] {
        let reply = call(method, path.into(), acme.clone(), body).await;
        assert_eq!(reply.status, 403, "{method} {path}: {}", reply.text());
    }

    // Listings hold the caller's tenant only.
    let own = |v: &Value, list: &str, field: &str| {
        let rows = v[list].as_array().unwrap();
        rows.iter().all(|r| r[field] == acme_id.as_str())
    };
    let listed = ok(call("GET", "/admin/tenants".into(), acme.clone(), Value::Null).await);
    assert_eq!(listed["tenants"].as_array().unwrap().len(), 1);
    assert!(own(&listed, "tenants", "id"));
    let listed = ok(call("GET", "/admin/keys".into(), acme.clone(), Value::Null).await);
    assert!(own(&listed, "keys", "tenant_id") && !listed["keys"].as_array().unwrap().is_empty());
    let listed = ok(call("GET", "/admin/budgets".into(), acme.clone(), Value::Null).await);
    assert!(listed["budgets"].as_array().unwrap().is_empty());
    let listed = ok(call(
        "GET",
        "/admin/rate-limits".into(),
        acme.clone(),
        Value::Null,
    )
    .await);
    assert!(listed["rate_limits"].as_array().unwrap().is_empty());
    let listed = ok(call(
        "GET",
        "/admin/credentials".into(),
        acme.clone(),
        Value::Null,
    )
    .await);
    assert!(!listed.to_string().contains(credential_id), "{listed}");
    let report = ok(call(
        "GET",
        "/admin/reports/chargeback?from=2020-01-01&to=2100-01-01".into(),
        acme.clone(),
        Value::Null,
    )
    .await);
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["id"], acme_id.as_str());
    let search = ok(call(
        "GET",
        "/admin/audit/search".into(),
        acme.clone(),
        Value::Null,
    )
    .await);
    assert!(!search.to_string().contains(&other_id), "{search}");

    // Nothing of the other tenant's changed.
    let reply = post(
        &gw.url("/v1/chat/completions"),
        &other_key,
        &json!({"model": "chat-model", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(reply.status, 200);
    let teams = ok(call(
        "GET",
        "/admin/tenants/other/teams".into(),
        root.clone(),
        Value::Null,
    )
    .await);
    assert_eq!(teams["teams"].as_array().unwrap().len(), 1);
    assert_eq!(teams["teams"][0]["id"], team["id"]);
    let budgets = ok(call(
        "GET",
        "/admin/budgets?tenant=other".into(),
        root.clone(),
        Value::Null,
    )
    .await);
    assert_eq!(budgets["budgets"][0]["limit_nano_usd"], 10_000_000_000i64);
    let users = ok(call(
        "GET",
        "/admin/tenants/other/users".into(),
        root.clone(),
        Value::Null,
    )
    .await);
    assert_eq!(users["users"][0]["team"], "ops");
    // Reading an inventory is itself audited, with the reader and the tenant it covered.
    let reads: i64 = gw
        .state_db()
        .query_row(
            "SELECT count(*) FROM admin_events WHERE action = 'keys.list' AND target = ?1",
            [&acme_id],
            |r| r.get(0),
        )
        .unwrap();
    assert!(reads >= 1);
    gw.stop().await;
}
