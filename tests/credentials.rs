//! Provider credentials (BYOK) end to end: sealed at rest, listed by fingerprint, each
//! tenant's requests carrying its own key, rotation under traffic, revocation for the
//! next request (admin API and another process), failover on 401/429, tenant scoping.

mod common;

use airlock::store::instance_key::InstanceKey;
use airlock::tenancy::STATE_MIGRATIONS;
use airlock::tenancy::credentials::CredentialStore;
use airlock::tenancy::rbac::Role;
use common::*;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// A gateway whose `byok` upstream (a mock accepting `keys`, `throttled` among them
/// answering 429) has no key of its own: its models use provider credentials.
async fn byok_gateway(keys: &[&str], throttled: &[&str]) -> (Gateway, SocketAddr) {
    let mut flags = Vec::new();
    for key in keys {
        flags.extend(["--api-key", key]);
    }
    for key in throttled {
        flags.extend(["--rate-limited-key", key]);
    }
    let (byok, stop) = start_mock(&flags).await;
    // A server that never answers, for requests still retrying when a revocation lands.
    let (stall, stop_stall) = start_mock(&["--fault", "stall"]).await;
    std::mem::forget((stop, stop_stall)); // the mocks live as long as the test
    let retry = "    retry: {attempts: 3, backoff_ms: 1, max_backoff_ms: 1}\n    breaker: {enabled: false}\n";
    let extra = Extra {
        upstreams: format!(
            "  byok:\n    base_url: http://{byok}/v1\n  stall:\n    base_url: http://{stall}/v1\n    read_timeout_ms: 600\n"
        ),
        models: format!(
            "  byok-model:\n    upstream: byok\n    model: mock-llama\n    credential: tenant\n{retry}\
             \x20 failover-model:\n    upstream: byok\n    model: mock-llama\n    credential: tenant\n    credential_strategy: failover\n{retry}\
             \x20 shared-model:\n    upstream: byok\n    model: mock-llama\n    credential: shared\n{retry}\
             \x20 fallback-model:\n    upstream: mock\n    model: mock-llama\n    credential: tenant\n    credential_fallback: upstream_key\n\
             \x20 retrying-model:\n    targets:\n      - {{upstream: stall, model: mock-llama}}\n      - {{upstream: byok, model: mock-llama, credential: tenant, priority: 1}}\n{retry}"
        ),
        ..Extra::default()
    };
    (Gateway::start_full("", &[], &extra).await, byok)
}

async fn chat(gw: &Gateway, key: &str, model: &str) -> Reply {
    let body = json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
    post(&gw.url("/v1/chat/completions"), key, &body).await
}

/// Requests the mock received per key.
async fn key_usage(mock: SocketAddr) -> Value {
    send("GET", &format!("http://{mock}/mock/key-usage"), &[], "")
        .await
        .json()
}

async fn create(gw: &Gateway, token: &str, body: Value) -> Value {
    let reply = admin(gw, "POST", "/admin/credentials", Some(token), body).await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    reply.json()
}

fn uses(usage: &Value, key: &str) -> u64 {
    usage[key].as_u64().unwrap()
}

#[tokio::test]
async fn credentials_are_sealed_shown_by_fingerprint_and_each_tenant_sends_its_own() {
    let (gw, byok) = byok_gateway(&["sk-acme-1", "sk-beta-1", "sk-shared"], &[]).await;
    let beta = gw.create_key("beta", None, None);
    let gamma = gw.create_key("gamma", None, None);
    let root = admin_token(&gw, Role::SuperAdmin);
    let a = create(
        &gw,
        &root,
        json!({"tenant": "acme", "provider": "byok", "name": "main", "secret": "sk-acme-1"}),
    )
    .await;
    assert!(a["id"].as_str().unwrap().starts_with("cred_"));
    assert_eq!(
        a["fingerprint"],
        airlock::tenancy::credentials::fingerprint("sk-acme-1")
    );
    assert_eq!(a["state"], "active");
    assert!(a.get("secret").is_none() && !a.to_string().contains("sk-acme-1"));
    create(
        &gw,
        &root,
        json!({"tenant": "beta", "provider": "byok", "name": "main", "secret": "sk-beta-1"}),
    )
    .await;
    create(
        &gw,
        &root,
        json!({"provider": "byok", "name": "shared", "secret": "sk-shared"}),
    )
    .await;
    // Unknown providers and tenants are refused with a reason.
    admin(
        &gw,
        "POST",
        "/admin/credentials",
        Some(&root),
        json!({"provider": "nope", "name": "x", "secret": "s"}),
    )
    .await
    .assert_admin_error(400, "invalid_request");
    admin(
        &gw,
        "POST",
        "/admin/credentials",
        Some(&root),
        json!({"tenant": "nobody", "provider": "byok", "name": "x", "secret": "s"}),
    )
    .await
    .assert_admin_error(404, "not_found");

    // Each tenant's requests reach the provider with its own key.
    assert_eq!(chat(&gw, &gw.key, "byok-model").await.status, 200);
    assert_eq!(chat(&gw, &beta, "byok-model").await.status, 200);
    assert_eq!(chat(&gw, &beta, "byok-model").await.status, 200);
    let usage = key_usage(byok).await;
    assert_eq!(
        (uses(&usage, "sk-acme-1"), uses(&usage, "sk-beta-1")),
        (1, 2)
    );
    // A route naming an instance-wide credential uses it for every tenant.
    assert_eq!(chat(&gw, &gamma, "shared-model").await.status, 200);
    assert_eq!(uses(&key_usage(byok).await, "sk-shared"), 1);
    // A tenant without a credential is refused (in its own wire format), unless the
    // target falls back to the upstream's own key.
    chat(&gw, &gamma, "byok-model")
        .await
        .assert_error(403, "no_provider_credential");
    let anthropic = post(
        &gw.url("/v1/messages"),
        &gamma,
        &json!({"model": "byok-model", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(anthropic.status, 403);
    assert_eq!(anthropic.json()["type"], "error");
    assert_eq!(chat(&gw, &gamma, "fallback-model").await.status, 200);
    let upstream = last_upstream_request(gw.mock).await;
    assert_eq!(
        upstream["headers"]["authorization"],
        format!("Bearer {UPSTREAM_SECRET}")
    );

    // Listed by fingerprint, never by secret; the route shows what it uses.
    let listed = admin(&gw, "GET", "/admin/credentials", Some(&root), Value::Null).await;
    assert_eq!(listed.status, 200);
    let all = listed.json()["credentials"].as_array().unwrap().clone();
    assert_eq!(all.len(), 3);
    assert!(
        all.iter()
            .all(|c| c["fingerprint"].as_str().unwrap().starts_with("sha256:"))
    );
    assert!(!listed.text().contains("sk-"), "{}", listed.text());
    let route = admin(
        &gw,
        "GET",
        "/admin/routes/byok-model",
        Some(&root),
        Value::Null,
    )
    .await;
    assert_eq!(route.json()["targets"][0]["credential"], "tenant");

    // Nothing in the clear at rest: not in the database (nor its WAL), not in the admin
    // events, not in the audit trail.
    let conn = airlock::store::open(&gw.loaded.state_db_path(), STATE_MIGRATIONS).unwrap();
    let events: Vec<String> = conn
        .prepare("SELECT action || ' ' || ifnull(detail, '') FROM admin_events WHERE action LIKE 'credential.%'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(events.len(), 3);
    assert!(
        events
            .iter()
            .all(|e| e.starts_with("credential.create") && !e.contains("sk-"))
    );
    drop(conn);
    let dir = gw.dir.clone();
    gw.stop_keeping_files().await;
    for file in [
        "airlock.db",
        "airlock.db-wal",
        "audit.db",
        "audit.db-wal",
        "requests.db",
    ] {
        let bytes = std::fs::read(dir.join(file)).unwrap_or_default();
        for secret in ["sk-acme-1", "sk-beta-1", "sk-shared"] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret} in {file}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn tenant_admins_see_and_change_only_their_own_tenants_credentials() {
    let (gw, _byok) = byok_gateway(&["sk-a", "sk-b"], &[]).await;
    gw.create_key("beta", None, None);
    let root = admin_token(&gw, Role::SuperAdmin);
    let theirs = create(
        &gw,
        &root,
        json!({"tenant": "beta", "provider": "byok", "name": "main", "secret": "sk-b"}),
    )
    .await;
    let acme_admin = scoped_token(&gw, Role::TenantAdmin, Some("acme"));
    // Created without a tenant: its own.
    let ours = create(
        &gw,
        &acme_admin,
        json!({"provider": "byok", "name": "main", "secret": "sk-a"}),
    )
    .await;
    assert_eq!(ours["tenant"], "acme");
    admin(
        &gw,
        "POST",
        "/admin/credentials",
        Some(&acme_admin),
        json!({"tenant": "beta", "provider": "byok", "name": "x", "secret": "sk-x"}),
    )
    .await
    .assert_admin_error(404, "not_found");
    let listed = admin(
        &gw,
        "GET",
        "/admin/credentials",
        Some(&acme_admin),
        Value::Null,
    )
    .await;
    let ids: Vec<Value> = listed.json()["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].clone())
        .collect();
    assert_eq!(ids, [ours["id"].clone()]);
    admin(
        &gw,
        "GET",
        "/admin/credentials?tenant=beta",
        Some(&acme_admin),
        Value::Null,
    )
    .await
    .assert_admin_error(404, "not_found");
    // Another tenant's credential does not exist for it: 404, as for an unknown id.
    let id = theirs["id"].as_str().unwrap();
    for action in ["revoke", "rotate"] {
        let path = format!("/admin/credentials/{id}/{action}");
        admin(
            &gw,
            "POST",
            &path,
            Some(&acme_admin),
            json!({"secret": "sk-new"}),
        )
        .await
        .assert_admin_error(404, "not_found");
    }
    admin(
        &gw,
        "POST",
        "/admin/credentials/cred_nope/revoke",
        Some(&acme_admin),
        Value::Null,
    )
    .await
    .assert_admin_error(404, "not_found");
    // Roles: viewers and operators read, only admins write, auditors neither.
    let viewer = admin_token(&gw, Role::Viewer);
    assert_eq!(
        admin(&gw, "GET", "/admin/credentials", Some(&viewer), Value::Null)
            .await
            .status,
        200
    );
    admin(
        &gw,
        "POST",
        &format!("/admin/credentials/{id}/revoke"),
        Some(&viewer),
        Value::Null,
    )
    .await
    .assert_admin_error(403, "permission_denied");
    let auditor = admin_token(&gw, Role::Auditor);
    admin(
        &gw,
        "GET",
        "/admin/credentials",
        Some(&auditor),
        Value::Null,
    )
    .await
    .assert_admin_error(403, "permission_denied");
    // The super-admin can revoke it; revoking twice is refused.
    let path = format!("/admin/credentials/{id}/revoke");
    let revoked = admin(&gw, "POST", &path, Some(&root), Value::Null).await;
    assert_eq!(revoked.json()["state"], "revoked");
    admin(&gw, "POST", &path, Some(&root), Value::Null)
        .await
        .assert_admin_error(400, "invalid_request");
    gw.stop().await;
}

/// Runs the `airlock` binary with `stdin` piped in: success, stdout, stderr.
fn airlock_with_stdin(args: &[&str], stdin: &str) -> (bool, String, String) {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn acme_id(gw: &Gateway) -> String {
    airlock::tenancy::Directory::new(&gw.state_db())
        .tenant("acme")
        .unwrap()
}

#[tokio::test]
async fn rotation_with_traffic_flowing_fails_no_request_and_retires_the_old_key() {
    let (gw, byok) = byok_gateway(&["sk-old", "sk-new"], &[]).await;
    let root = admin_token(&gw, Role::SuperAdmin);
    let old = create(
        &gw,
        &root,
        json!({"tenant": "acme", "provider": "byok", "name": "main", "secret": "sk-old"}),
    )
    .await;
    let gw = std::sync::Arc::new(gw);
    let stop_at = Instant::now() + Duration::from_millis(1500);
    let mut workers = Vec::new();
    for _ in 0..8 {
        let gw = gw.clone();
        workers.push(tokio::spawn(async move {
            let (mut ok, mut failed) = (0, Vec::new());
            while Instant::now() < stop_at {
                let reply = chat(&gw, &gw.key, "byok-model").await;
                if reply.status == 200 {
                    ok += 1;
                } else {
                    failed.push(reply.text());
                }
            }
            (ok, failed)
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let path = format!("/admin/credentials/{}/rotate", old["id"].as_str().unwrap());
    let rotated = admin(
        &gw,
        "POST",
        &path,
        Some(&root),
        json!({"secret": "sk-new", "grace_secs": 1}),
    )
    .await;
    assert_eq!(rotated.status, 200, "{}", rotated.text());
    let rotated = rotated.json();
    assert_eq!(rotated["previous"]["state"], "grace");
    assert_eq!(rotated["credential"]["state"], "active");
    assert!(!rotated.to_string().contains("sk-new"));
    let mut total = 0;
    for worker in workers {
        let (ok, failed) = worker.await.unwrap();
        assert!(failed.is_empty(), "failed during rotation: {failed:?}");
        total += ok;
    }
    assert!(total > 50, "traffic flowed: {total} requests");
    let usage = key_usage(byok).await;
    assert!(
        uses(&usage, "sk-old") > 0 && uses(&usage, "sk-new") > 0,
        "{usage}"
    );
    // After the grace period the old key is never sent again.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let before = uses(&key_usage(byok).await, "sk-old");
    for _ in 0..20 {
        assert_eq!(chat(&gw, &gw.key, "byok-model").await.status, 200);
    }
    assert_eq!(uses(&key_usage(byok).await, "sk-old"), before);
    let listed = admin(&gw, "GET", "/admin/credentials", Some(&root), Value::Null).await;
    let states: Vec<Value> = listed.json()["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["state"].clone())
        .collect();
    assert_eq!(states, ["active", "retired"]);
    std::sync::Arc::try_unwrap(gw).ok().unwrap().stop().await;
}

#[tokio::test]
async fn revocation_refuses_the_very_next_request() {
    let (gw, byok) = byok_gateway(&["sk-one", "sk-two"], &[]).await;
    let root = admin_token(&gw, Role::SuperAdmin);
    // Through the admin API: in effect when the call returns.
    for _ in 0..20 {
        let created = create(
            &gw,
            &root,
            json!({"tenant": "acme", "provider": "byok", "name": "main", "secret": "sk-one"}),
        )
        .await;
        assert_eq!(chat(&gw, &gw.key, "byok-model").await.status, 200);
        let path = format!(
            "/admin/credentials/{}/revoke",
            created["id"].as_str().unwrap()
        );
        assert_eq!(
            admin(&gw, "POST", &path, Some(&root), Value::Null)
                .await
                .status,
            200
        );
        chat(&gw, &gw.key, "byok-model")
            .await
            .assert_error(403, "no_provider_credential");
    }
    assert_eq!(uses(&key_usage(byok).await, "sk-one"), 20);
    // A request already under way re-checks before each attempt: its first attempt waits
    // on a server that never answers (timed out after 600 ms), the revocation lands
    // meanwhile, and its retry does not use the revoked key.
    for revoke in [false, true] {
        let created = create(
            &gw,
            &root,
            json!({"tenant": "acme", "provider": "byok", "name": "main", "secret": "sk-one"}),
        )
        .await;
        let before = uses(&key_usage(byok).await, "sk-one");
        let (url, key) = (gw.url("/v1/chat/completions"), gw.key.clone());
        let pending = tokio::spawn(async move {
            let body =
                json!({"model": "retrying-model", "messages": [{"role": "user", "content": "hi"}]});
            post(&url, &key, &body).await
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        let path = format!(
            "/admin/credentials/{}/revoke",
            created["id"].as_str().unwrap()
        );
        if revoke {
            assert_eq!(
                admin(&gw, "POST", &path, Some(&root), Value::Null)
                    .await
                    .status,
                200
            );
        }
        let reply = pending.await.unwrap();
        let after = uses(&key_usage(byok).await, "sk-one");
        if revoke {
            // The timeout is what the client hears: the retry found no credential to use.
            reply.assert_error(504, "upstream_timeout");
            assert_eq!(after, before, "the revoked key was not sent");
        } else {
            assert_eq!(reply.status, 200, "{}", reply.text());
            assert_eq!(after, before + 1);
            assert_eq!(
                admin(&gw, "POST", &path, Some(&root), Value::Null)
                    .await
                    .status,
                200
            );
        }
    }
    // From another process (the command line), seen through the change watch by the
    // next request; the secret comes in on standard input and is never printed.
    let config = gw.dir.join("airlock.yaml");
    let config = config.to_str().unwrap();
    let (ok, out, err) = airlock_with_stdin(
        &[
            "credentials",
            "create",
            "--config",
            config,
            "--provider",
            "byok",
            "--name",
            "cli",
            "--tenant",
            "acme",
            "--json",
        ],
        "sk-two\n",
    );
    assert!(ok, "{err}");
    assert!(!out.contains("sk-two"), "{out}");
    let created: Value = serde_json::from_str(&out).unwrap();
    let id = created[0]["id"].as_str().unwrap().to_string();
    assert_eq!(chat(&gw, &gw.key, "byok-model").await.status, 200);
    let (ok, out, _) = airlock_with_stdin(&["credentials", "list", "--config", config], "");
    assert!(
        ok && out.contains(&id) && out.contains("sha256:") && !out.contains("sk-two"),
        "{out}"
    );
    let (ok, _, err) = airlock_with_stdin(&["credentials", "revoke", "--config", config, &id], "");
    assert!(ok, "{err}");
    chat(&gw, &gw.key, "byok-model")
        .await
        .assert_error(403, "no_provider_credential");
    assert_eq!(uses(&key_usage(byok).await, "sk-two"), 1);
    // Through another connection in this process too (the data_version-free path is the
    // same watch): a credential rotated elsewhere is used at once.
    let ik = InstanceKey::read(&gw.loaded.key_file_path()).unwrap();
    let conn = airlock::store::open(&gw.loaded.state_db_path(), STATE_MIGRATIONS).unwrap();
    let store = CredentialStore::new(&conn, &ik.seal_key);
    let new = airlock::tenancy::credentials::NewCredential {
        tenant_id: Some(acme_id(&gw)),
        provider: "byok".into(),
        name: "direct".into(),
    };
    let created = store.create(&new, "sk-one", "test").unwrap();
    store.rotate(&created.id, "sk-two", 0, "test").unwrap();
    assert_eq!(chat(&gw, &gw.key, "byok-model").await.status, 200);
    assert_eq!(uses(&key_usage(byok).await, "sk-two"), 2);
    gw.stop().await;
}

#[tokio::test]
async fn a_refused_or_throttled_credential_fails_over_to_the_tenants_next() {
    // sk-bad is unknown to the provider (401), sk-busy is throttled (429).
    let (gw, byok) = byok_gateway(&["sk-busy", "sk-good"], &["sk-busy"]).await;
    let root = admin_token(&gw, Role::SuperAdmin);
    for (name, secret) in [("bad", "sk-bad"), ("busy", "sk-busy"), ("good", "sk-good")] {
        create(
            &gw,
            &root,
            json!({"tenant": "acme", "provider": "byok", "name": name, "secret": secret}),
        )
        .await;
    }
    // Failover tries them oldest first: 401, 429, then the good one, on the same target.
    let reply = chat(&gw, &gw.key, "failover-model").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let usage = key_usage(byok).await;
    assert_eq!((uses(&usage, "sk-busy"), uses(&usage, "sk-good")), (1, 1));
    // The refused and throttled ones rest; the target does not: the next request goes
    // straight to the good key.
    for _ in 0..5 {
        assert_eq!(chat(&gw, &gw.key, "failover-model").await.status, 200);
    }
    let usage = key_usage(byok).await;
    assert_eq!((uses(&usage, "sk-busy"), uses(&usage, "sk-good")), (1, 6));
    // A rotation to a key the provider does not accept yet fails no request while the
    // old key is in its grace period: the new one is refused, rested, and the old one
    // serves.
    let listed = admin(&gw, "GET", "/admin/credentials", Some(&root), Value::Null).await;
    let good = listed.json()["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "good")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/admin/credentials/{good}/rotate");
    let body = json!({"secret": "sk-not-yet", "grace_secs": 60});
    assert_eq!(
        admin(&gw, "POST", &path, Some(&root), body).await.status,
        200
    );
    for _ in 0..5 {
        assert_eq!(chat(&gw, &gw.key, "failover-model").await.status, 200);
    }
    assert_eq!(uses(&key_usage(byok).await, "sk-good"), 11);
    let rows = gw.stop().await;
    // Newest first: the first request took three attempts, the next five one each.
    let attempts: Vec<u32> = rows.iter().rev().map(|r| r.attempts).collect();
    assert_eq!(attempts[..6], [3, 1, 1, 1, 1, 1], "{attempts:?}");
}
