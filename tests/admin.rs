//! The admin API on the wire: admin tokens (never virtual keys), local admin users'
//! login and logout, the role matrix, route state, holding a breaker open to drain a
//! target and closing it, every change recorded as an admin event.

mod common;

use airlock::store::instance_key::InstanceKey;
use airlock::tenancy::rbac::Role;
use airlock::tenancy::{AdminTokenStore, STATE_MIGRATIONS};
use common::{
    Extra, Gateway, admin, admin_token, post, run_airlock, run_airlock_with_stdin, scoped_token,
    send, start_mock,
};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_drain_a_target_through_the_admin_api() {
    let (second, _s) = start_mock(&[]).await;
    let extra = Extra {
        upstreams: format!("  second:\n    base_url: http://{second}/v1\n"),
        models: "  pair:\n    targets:\n      - {upstream: mock, model: mock-llama, priority: 0}\n      - {upstream: second, model: mock-llama, priority: 1}\n    retry: {attempts: 1}\n"
            .into(), ..Extra::default() };
    let gw = Gateway::start_full("", &[], &extra).await;
    let (viewer, operator, auditor) = (
        admin_token(&gw, Role::Viewer),
        admin_token(&gw, Role::Operator),
        admin_token(&gw, Role::Auditor),
    );
    let breaker = "/admin/routes/pair/targets/0/breaker";

    let anonymous = admin(&gw, "GET", "/admin/routes", None, Value::Null).await;
    assert_eq!(anonymous.status, 401);
    assert_eq!(anonymous.json()["error"]["code"], "missing_admin_token");
    assert_eq!(anonymous.headers["www-authenticate"], "Bearer");
    let with_virtual_key = admin(&gw, "GET", "/admin/routes", Some(&gw.key), Value::Null).await;
    assert_eq!(
        with_virtual_key.json()["error"]["code"],
        "invalid_admin_token"
    );
    let not_for_auditors = admin(&gw, "GET", "/admin/routes", Some(&auditor), Value::Null).await;
    assert_eq!(not_for_auditors.status, 403);

    let routes = admin(&gw, "GET", "/admin/routes", Some(&viewer), Value::Null).await;
    assert_eq!(routes.status, 200, "{}", routes.text());
    let pair = admin(&gw, "GET", "/admin/routes/pair", Some(&viewer), Value::Null)
        .await
        .json();
    assert_eq!(pair["targets"][0]["upstream"], "mock");
    assert_eq!(pair["targets"][0]["breaker"]["state"], "closed");
    let denied = admin(
        &gw,
        "POST",
        breaker,
        Some(&viewer),
        json!({"action": "open"}),
    )
    .await;
    assert_eq!(denied.status, 403);
    assert_eq!(denied.json()["error"]["type"], "permission_error");

    let ask =
        json!({"model": "pair", "max_tokens": 2, "messages": [{"role": "user", "content": "Hi"}]});
    let chat = gw.url("/v1/chat/completions");
    assert_eq!(post(&chat, &gw.key, &ask).await.status, 200);
    let held = admin(
        &gw,
        "POST",
        breaker,
        Some(&operator),
        json!({"action": "open"}),
    )
    .await;
    assert_eq!(held.status, 200, "{}", held.text());
    assert_eq!(
        held.json()["breaker"],
        json!({"state": "open", "forced": true, "enabled": true,
        "consecutive_failures": 0, "window_attempts": 1, "window_failures": 0, "open_for_ms": null})
    );
    assert_eq!(post(&chat, &gw.key, &ask).await.status, 200);
    let closed = admin(
        &gw,
        "POST",
        breaker,
        Some(&operator),
        json!({"action": "close"}),
    )
    .await;
    assert_eq!(closed.json()["breaker"]["state"], "closed");
    assert_eq!(post(&chat, &gw.key, &ask).await.status, 200);

    for (path, body, status) in [
        (breaker, json!({"action": "explode"}), 400),
        (breaker, json!({}), 400),
        (
            "/admin/routes/pair/targets/9/breaker",
            json!({"action": "open"}),
            404,
        ),
        (
            "/admin/routes/pair/targets/x/breaker",
            json!({"action": "open"}),
            400,
        ),
        (
            "/admin/routes/nope/targets/0/breaker",
            json!({"action": "open"}),
            404,
        ),
        ("/admin/nothing-here", json!({}), 404),
    ] {
        let reply = admin(&gw, "POST", path, Some(&operator), body).await;
        assert_eq!(reply.status, status, "{path}: {}", reply.text());
        assert!(
            reply.json()["error"]["message"].is_string(),
            "JSON error for {path}"
        );
    }

    let audit_db = gw.loaded.audit_db_path();
    let rows = gw.stop_keeping_files().await;
    let served: Vec<&str> = rows
        .iter()
        .rev()
        .map(|r| r.upstream.as_deref().unwrap_or("-"))
        .collect();
    assert_eq!(
        served,
        ["mock", "second", "mock"],
        "the held target was skipped"
    );
    // Each action is in the audit trail: who, what, on which target.
    let conn = rusqlite::Connection::open(audit_db).unwrap();
    let actions: Vec<(String, String, String)> = conn
        .prepare("SELECT body FROM records WHERE kind = 'admin.action' ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|body| {
            serde_json::from_str::<airlock::audit::record::AuditRecord>(&body.unwrap()).unwrap()
        })
        .map(|r| (r.actor.unwrap(), r.action.unwrap(), r.target.unwrap()))
        .collect();
    let events: Vec<_> = actions
        .iter()
        .filter(|(_, action, _)| action.starts_with("breaker."))
        .collect();
    assert_eq!(events[1].1, "breaker.close");
    // The refusals too: the auditor reading routes, the viewer holding a breaker.
    let refused: Vec<&str> = actions
        .iter()
        .filter(|(_, action, _)| action == "admin.forbidden")
        .map(|(_, _, target)| target.as_str())
        .collect();
    assert_eq!(refused, ["RoutesRead", "RoutesOperate"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_can_be_switched_off_and_tokens_revoked() {
    let gw = Gateway::start().await;
    let token = admin_token(&gw, Role::SuperAdmin);
    assert_eq!(
        admin(&gw, "GET", "/admin/routes", Some(&token), Value::Null)
            .await
            .status,
        200
    );
    let ik = InstanceKey::read(&gw.loaded.key_file_path()).unwrap();
    let conn = airlock::store::open(&gw.loaded.state_db_path(), STATE_MIGRATIONS).unwrap();
    let store = AdminTokenStore::new(&conn, &ik.key_hash_secret);
    let id = store.list().unwrap()[0].id.clone();
    store.revoke(&id, "test").unwrap();
    let revoked = admin(&gw, "GET", "/admin/routes", Some(&token), Value::Null).await;
    assert_eq!(revoked.json()["error"]["code"], "revoked_admin_token");
    let guessed = admin(&gw, "GET", "/admin/routes", Some("adm-guess"), Value::Null).await;
    assert_eq!(guessed.json()["error"]["code"], "invalid_admin_token");
    // Refused tokens are audit records, in aggregate per address and reason: who (when
    // the token is known) and why, never the secret.
    let audit_db = gw.loaded.audit_db_path();
    let loaded = gw.loaded.clone();
    gw.stop_keeping_files().await;
    let refused: Vec<(Option<String>, String, i64)> = rusqlite::Connection::open(audit_db)
        .unwrap()
        .prepare(
            "SELECT json_extract(body, '$.actor'), json_extract(body, '$.error'),
                    json_extract(json_extract(body, '$.detail'), '$.count')
             FROM records WHERE kind = 'auth.refused' ORDER BY json_extract(body, '$.error')",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert_eq!(
        (refused[0].0.as_deref(), refused[0].1.as_str(), refused[0].2),
        (None, "invalid_admin_token", 1)
    );
    assert!(
        refused[1]
            .0
            .as_deref()
            .unwrap()
            .starts_with(&format!("admin-token:{id}"))
    );
    assert_eq!(
        (refused[1].1.as_str(), refused[1].2),
        ("revoked_admin_token", 1)
    );
    let _ = std::fs::remove_dir_all(&loaded.data_dir);

    let off = Gateway::start_with("  admin_api: false\n", &[]).await;
    let token = admin_token(&off, Role::SuperAdmin);
    let gone = admin(&off, "GET", "/admin/routes", Some(&token), Value::Null).await;
    assert_eq!(gone.status, 404);
    off.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_timelines_are_scoped_to_the_callers_tenant() {
    let gw = Gateway::start().await;
    let beta_key = gw.create_key("beta", None, None);
    let ask = json!({"model": "chat-model", "max_tokens": 2, "messages": [{"role": "user", "content": "Hi"}]});
    for (key, session) in [
        (&gw.key, "s1"),
        (&beta_key, "s1"),
        (&gw.key, "s1"),
        (&beta_key, "beta-only"),
    ] {
        let reply = send(
            "POST",
            &gw.url("/v1/chat/completions"),
            &[
                ("authorization", &format!("Bearer {key}")),
                ("x-session-id", session),
            ],
            serde_json::to_vec(&ask).unwrap(),
        )
        .await;
        assert_eq!(reply.status, 200);
    }
    let auditor = admin_token(&gw, Role::Auditor);
    let acme_admin = scoped_token(&gw, Role::TenantAdmin, Some("acme"));
    let viewer = admin_token(&gw, Role::Viewer);

    let all = admin(
        &gw,
        "GET",
        "/admin/sessions/s1",
        Some(&auditor),
        Value::Null,
    )
    .await;
    assert_eq!(all.status, 200, "{}", all.text());
    let events = all.json()["events"].as_array().unwrap().clone();
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.len() == 3 && seqs.is_sorted(), "{seqs:?}");
    let acme = admin(
        &gw,
        "GET",
        "/admin/sessions/s1",
        Some(&acme_admin),
        Value::Null,
    )
    .await
    .json();
    let tenants: Vec<&str> = acme["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["tenant_id"].as_str().unwrap())
        .collect();
    assert_eq!(tenants.len(), 2);
    assert!(
        tenants.iter().all(|t| *t == tenants[0]),
        "only acme's records"
    );
    let other = admin(
        &gw,
        "GET",
        "/admin/sessions/beta-only",
        Some(&acme_admin),
        Value::Null,
    )
    .await;
    assert_eq!(
        other.status, 404,
        "another tenant's session does not exist for acme"
    );
    let denied = admin(&gw, "GET", "/admin/sessions/s1", Some(&viewer), Value::Null).await;
    assert_eq!(denied.status, 403);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_users_log_in_for_sessions_of_their_role_and_log_out() {
    const PASSWORD: &str = "a long operator passphrase";
    let gw = Gateway::start().await;
    let config = gw.dir.join("airlock.yaml");
    let cfg = config.to_str().unwrap();
    for (name, role) in [("olga", "operator"), ("vic", "viewer")] {
        let (ok, _, err) = run_airlock_with_stdin(
            &[
                "admin",
                "user",
                "create",
                "--config",
                cfg,
                "--name",
                name,
                "--role",
                role,
                "--password-stdin",
            ],
            &format!("{PASSWORD}\n"),
        );
        assert!(ok, "{err}");
    }
    let login = |user: &str, password: &str| {
        admin(
            &gw,
            "POST",
            "/admin/login",
            None,
            json!({"user": user, "password": password}),
        )
    };

    let session = login("olga", PASSWORD).await;
    assert_eq!(session.status, 200, "{}", session.text());
    let session = session.json();
    let token = session["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("adm-"), "{session}");
    assert_eq!(
        (&session["role"], &session["tenant"]),
        (&json!("operator"), &Value::Null)
    );
    let lasts = session["expires_at"].as_i64().unwrap() - airlock::store::now_unix();
    assert!((8 * 3600 - 60..=8 * 3600).contains(&lasts), "{lasts}");
    // The session acts with the user's role: routes yes, the audit trail no.
    let routes = admin(&gw, "GET", "/admin/routes", Some(&token), Value::Null).await;
    assert_eq!(routes.status, 200, "{}", routes.text());
    admin(&gw, "GET", "/admin/audit/search", Some(&token), Value::Null)
        .await
        .assert_admin_error(403, "permission_denied");

    // A wrong password and an unknown user get the very same answer.
    let wrong = login("olga", "not the password at all").await;
    let unknown = login("nobody", PASSWORD).await;
    wrong.assert_admin_error(401, "invalid_credentials");
    assert_eq!((unknown.status, unknown.json()), (401, wrong.json()));
    login("olga", "")
        .await
        .assert_admin_error(401, "invalid_credentials");
    admin(&gw, "POST", "/admin/login", None, json!({"user": "olga"}))
        .await
        .assert_admin_error(400, "invalid_request");

    // Logging out ends the session.
    let out = admin(&gw, "POST", "/admin/logout", Some(&token), Value::Null).await;
    assert_eq!(out.status, 200, "{}", out.text());
    admin(&gw, "GET", "/admin/routes", Some(&token), Value::Null)
        .await
        .assert_admin_error(401, "revoked_admin_token");

    // Disabling a user ends its live sessions and its logins.
    let viewer = login("vic", PASSWORD).await.json()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let viewing = admin(&gw, "GET", "/admin/routes", Some(&viewer), Value::Null).await;
    assert_eq!(viewing.status, 200);
    let (ok, _, err) = run_airlock(&["admin", "user", "disable", "--config", cfg, "vic"]);
    assert!(ok, "{err}");
    admin(&gw, "GET", "/admin/routes", Some(&viewer), Value::Null)
        .await
        .assert_admin_error(401, "revoked_admin_token");
    login("vic", PASSWORD)
        .await
        .assert_admin_error(401, "invalid_credentials");

    // Every step is in the audit trail, naming the user, never a password or a token.
    let loaded = gw.loaded.clone();
    gw.stop_keeping_files().await;
    let conn = rusqlite::Connection::open(loaded.audit_db_path()).unwrap();
    let actions: Vec<(String, String, String)> = conn
        .prepare(
            "SELECT json_extract(body, '$.actor'), json_extract(body, '$.action'),
                    COALESCE(json_extract(body, '$.detail'), '')
             FROM records WHERE kind = 'admin.action' ORDER BY seq",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .filter(|(_, action, _): &(String, String, String)| {
            action.starts_with("admin.") || action.starts_with("admin_user.")
        })
        .collect();
    let summary: Vec<(&str, &str, &str)> = actions
        .iter()
        .map(|(actor, action, detail)| {
            let actor = actor.split(" (").next().unwrap();
            let actor = if actor.starts_with("cli:") {
                "cli"
            } else {
                actor
            };
            (actor, action.as_str(), detail.as_str())
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("cli", "admin_user.create", "operator"),
            ("cli", "admin_user.create", "viewer"),
            ("admin-user:olga", "admin.login", "operator"),
            ("admin-user:olga", "admin.forbidden", ""),
            ("admin-user:olga", "admin.logout", ""),
            ("admin-user:vic", "admin.login", "viewer"),
            ("cli", "admin_user.disable", "1 session(s) ended"),
        ]
    );
    // Refusals are recorded in aggregate, per address, surface, reason and known user
    // (an unknown name is not repeated: it could be a password typed in its place).
    let refused: Vec<(String, String, String, i64)> = conn
        .prepare(
            "SELECT json_extract(body, '$.endpoint'), json_extract(body, '$.error'),
                    COALESCE(json_extract(body, '$.actor'), ''),
                    json_extract(json_extract(body, '$.detail'), '$.count')
             FROM records WHERE kind = 'auth.refused' ORDER BY 1, 2, 3",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let refused: Vec<(&str, &str, &str, i64)> = refused
        .iter()
        .map(|(surface, reason, actor, count)| {
            let actor = actor.split(" (").next().unwrap();
            (surface.as_str(), reason.as_str(), actor, *count)
        })
        .collect();
    assert_eq!(
        refused,
        [
            ("admin", "revoked_admin_token", "admin-user:olga", 1),
            ("admin", "revoked_admin_token", "admin-user:vic", 1),
            ("admin_login", "disabled_user", "admin-user:vic", 1),
            ("admin_login", "unknown_user", "", 1),
            ("admin_login", "wrong_password", "admin-user:olga", 2),
        ]
    );
    assert!(
        !refused
            .iter()
            .any(|(.., actor, _)| actor.contains("nobody")),
        "{refused:?}"
    );
    for file in std::fs::read_dir(&loaded.data_dir).unwrap() {
        let bytes = std::fs::read(file.unwrap().path()).unwrap_or_default();
        for secret in [PASSWORD, &token, &viewer] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "a secret is stored"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&loaded.data_dir);
}
