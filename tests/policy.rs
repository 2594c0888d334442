//! Policies on the wire: a version applied while the gateway runs takes effect on the
//! next request, denies in each caller's wire format, withholds answers, downgrades,
//! shadows, rate-limits, and in-flight requests see one version from start to end; the
//! decision, rules and version land in the request log and the audit record; the
//! command line lints, tests, applies, diffs, rolls back and dry-runs.

mod common;

use airlock::policy::versions;
use airlock::tenancy::STATE_MIGRATIONS;
use common::{Gateway, audit_records, post};
use serde_json::{Value, json};

fn ask(model: &str, text: &str) -> Value {
    json!({"model": model, "max_tokens": 3, "messages": [{"role": "user", "content": text}]})
}

/// Applies `yaml` as a new active version, as `airlock policy apply` does.
fn apply(gw: &Gateway, yaml: &str) -> String {
    let conn = airlock::store::open(&gw.loaded.state_db_path(), STATE_MIGRATIONS).unwrap();
    versions::apply(&conn, yaml.as_bytes(), "test", "test")
        .unwrap()
        .label
}

/// The status of a chat request asking `text`.
async fn status_of(gw: &Gateway, text: &str) -> u16 {
    post(
        &gw.url("/v1/chat/completions"),
        &gw.key,
        &ask("chat-model", text),
    )
    .await
    .status
}

const DENY_AURORA: &str = r#"
policy: test
rules:
  - id: no-aurora
    match: {content: {keywords: [project aurora]}}
    action: deny
    message: Project Aurora is confidential
  - id: tag-all
    action: tag
    tags: [seen]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applied_policy_denies_in_every_wire_format_and_rollback_restores() {
    let gw = Gateway::start().await;
    let chat = gw.url("/v1/chat/completions");
    let secret = "tell me about Project Aurora";
    assert_eq!(status_of(&gw, secret).await, 200);

    let label = apply(&gw, DENY_AURORA);
    let reply = post(&chat, &gw.key, &ask("chat-model", secret)).await;
    reply.assert_error(403, "policy_denied");
    assert_eq!(
        reply.json()["error"]["message"],
        "Project Aurora is confidential"
    );
    assert_eq!(reply.headers["x-airlock-error-code"], "policy_denied");
    assert_eq!(status_of(&gw, "hello").await, 200);

    // Anthropic's shape.
    let reply = post(&gw.url("/v1/messages"), &gw.key, &ask("chat-model", secret)).await;
    assert_eq!(reply.status, 403);
    let body = reply.json();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "permission_error");
    assert_eq!(body["error"]["message"], "Project Aurora is confidential");
    // Gemini's shape.
    let gemini = json!({"contents": [{"role": "user", "parts": [{"text": secret}]}]});
    let reply = post(
        &gw.url("/v1beta/models/chat-model:generateContent"),
        &gw.key,
        &gemini,
    )
    .await;
    assert_eq!(reply.status, 403);
    assert_eq!(reply.json()["error"]["status"], "PERMISSION_DENIED");

    // Roll back to no policy at all is not possible (there was none before); apply an
    // allow-all and roll back to it after a second version.
    let conn = airlock::store::open(&gw.loaded.state_db_path(), STATE_MIGRATIONS).unwrap();
    let relaxed = apply(&gw, "policy: open\nrules: []\n");
    assert_eq!(status_of(&gw, secret).await, 200);
    let back = versions::rollback(&conn, None, "test").unwrap();
    assert_eq!(back.label, label);
    assert_eq!(status_of(&gw, secret).await, 403);
    assert!(relaxed.starts_with("v2-"));

    // Decisions are counted and timed in /metrics.
    let metrics = common::send("GET", &gw.url("/metrics"), &[], "")
        .await
        .text();
    assert!(
        metrics.contains(r#"airlock_policy_decisions_total{phase="request",verdict="deny"} 4"#),
        "{metrics}"
    );
    assert!(metrics.contains("airlock_policy_evaluation_seconds_count"));

    let rows = gw.stop_keeping_files().await;
    let denied = rows.iter().find(|r| r.status == 403).unwrap();
    assert_eq!(denied.decision, Some("deny"));
    assert_eq!(denied.policy_rules.as_deref(), Some("no-aurora"));
    assert_eq!(denied.policy_version.as_deref(), Some(label.as_str()));
    let allowed = rows
        .iter()
        .find(|r| r.status == 200 && r.policy_version.is_some())
        .unwrap();
    assert_eq!(allowed.decision, Some("allow"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_rules_withhold_answers_and_effects_apply() {
    let gw = Gateway::start().await;
    apply(
        &gw,
        r#"
policy: effects
rules:
  - id: withhold-for-carol
    phase: response
    match: {users: [carol], content: {regex: ["\\w+"]}}
    action: deny
    message: the answer was withheld
  - id: small-model-for-dave
    match: {users: [dave]}
    action: downgrade
    model: embed-model
  - id: two-per-minute-for-erin
    match: {users: [erin]}
    action: rate_limit
    rate_limit: {requests: 2, per: 1m, by: user}
  - id: no-payloads-for-frank
    match: {users: [frank]}
    action: log
    log: metadata
"#,
    );
    let chat = gw.url("/v1/chat/completions");
    let with_user = |user: &str| {
        let mut body = ask("chat-model", "hello");
        body["user"] = json!(user);
        body
    };
    post(&chat, &gw.key, &with_user("carol"))
        .await
        .assert_error(403, "policy_denied");
    // The downgraded caller is told, in whole answers and streams alike.
    let dave = post(&chat, &gw.key, &with_user("dave")).await;
    assert_eq!(dave.status, 200);
    assert_eq!(dave.headers["x-airlock-downgraded-from"], "chat-model");
    let mut streamed = with_user("dave");
    streamed["stream"] = json!(true);
    let dave = post(&chat, &gw.key, &streamed).await;
    assert_eq!(dave.status, 200, "{}", dave.text());
    assert_eq!(dave.headers["x-airlock-downgraded-from"], "chat-model");
    let not_rerouted = post(&chat, &gw.key, &with_user("grace")).await;
    assert_eq!(not_rerouted.status, 200);
    assert!(
        !not_rerouted
            .headers
            .contains_key("x-airlock-downgraded-from")
    );
    for _ in 0..2 {
        assert_eq!(post(&chat, &gw.key, &with_user("erin")).await.status, 200);
    }
    let limited = post(&chat, &gw.key, &with_user("erin")).await;
    limited.assert_error(429, "policy_rate_limited");
    assert!(limited.headers.contains_key("retry-after"));
    assert_eq!(post(&chat, &gw.key, &with_user("frank")).await.status, 200);

    let records = audit_records(&gw);
    let of = |user: &str| {
        records
            .iter()
            .filter(|r| r["user_id"] == user)
            .collect::<Vec<_>>()
    };
    let carol = of("carol")[0];
    assert_eq!(carol["decision"], "deny");
    assert_eq!(carol["matched_rules"], json!(["withhold-for-carol"]));
    // The withheld answer is still in the record, for the auditor.
    assert!(carol["response_payload_sha256"].is_string());
    let dave = of("dave")[0];
    assert_eq!(dave["model"], "embed-model");
    assert_eq!(dave["matched_rules"], json!(["small-model-for-dave"]));
    assert_eq!(of("erin")[2]["decision"], "deny");
    let frank = of("frank")[0];
    assert!(frank.get("request_payload_sha256").is_none(), "{frank}");
    assert!(frank.get("response_payload_sha256").is_none(), "{frank}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_decisions_are_recorded_and_never_enforced() {
    let gw = Gateway::start().await;
    apply(
        &gw,
        "policy: open\nrules:\n  - id: allow-all\n    action: allow\n",
    );
    let conn = airlock::store::open(&gw.loaded.state_db_path(), STATE_MIGRATIONS).unwrap();
    let shadow = versions::set_shadow(
        &conn,
        versions::ShadowChange::Source {
            bytes: DENY_AURORA.as_bytes(),
            message: "trying it",
        },
        "test",
    )
    .unwrap()
    .unwrap();
    let chat = gw.url("/v1/chat/completions");
    let reply = post(&chat, &gw.key, &ask("chat-model", "Project Aurora status?")).await;
    assert_eq!(reply.status, 200);
    let records = audit_records(&gw);
    let last = records.last().unwrap();
    assert_eq!(last["decision"], "allow");
    assert_eq!(last["shadow_policy_version"], shadow.as_str());
    assert_eq!(last["shadow_decision"], "deny");
    assert_eq!(last["shadow_rules"], json!(["no-aurora"]));
    gw.stop().await;
}

/// Versions applied and rolled back while requests are in flight: every request is
/// judged, in both phases, by exactly one version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_requests_see_one_version_never_a_mix() {
    let gw = Gateway::start().await;
    let version = |name: &str| {
        format!(
            "policy: {name}\nrules:\n  - id: {name}-in\n    action: tag\n    tags: [{name}-in]\n  - id: {name}-out\n    phase: response\n    action: tag\n    tags: [{name}-out]\n"
        )
    };
    let (one, two) = (version("one"), version("two"));
    apply(&gw, &one);
    let chat = gw.url("/v1/chat/completions");
    let key = gw.key.clone();
    let load = tokio::spawn(async move {
        let mut handles = Vec::new();
        for _ in 0..8 {
            let (chat, key) = (chat.clone(), key.clone());
            handles.push(tokio::spawn(async move {
                for _ in 0..25 {
                    assert_eq!(
                        post(&chat, &key, &ask("chat-model", "hi")).await.status,
                        200
                    );
                }
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
    });
    let conn = airlock::store::open(&gw.loaded.state_db_path(), STATE_MIGRATIONS).unwrap();
    for i in 0..20 {
        if i % 2 == 0 {
            versions::apply(&conn, two.as_bytes(), "test", "flip")
                .unwrap_or_else(|_| versions::rollback(&conn, Some(2), "test").unwrap());
        } else {
            versions::rollback(&conn, Some(1), "test").unwrap();
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    load.await.unwrap();
    let records = audit_records(&gw);
    assert_eq!(records.len(), 200);
    let mut seen = std::collections::BTreeSet::new();
    for r in &records {
        let version = r["policy_version"].as_str().unwrap();
        let name = if version.starts_with("v1-") {
            "one"
        } else {
            "two"
        };
        seen.insert(name);
        assert_eq!(
            r["tags"],
            json!([format!("{name}-in"), format!("{name}-out")]),
            "{r}"
        );
        assert_eq!(
            r["matched_rules"],
            json!([format!("{name}-in"), format!("{name}-out")])
        );
    }
    assert_eq!(seen.len(), 2, "both versions served some requests");
    gw.stop().await;
}

/// Runs `airlock policy …`: success, stdout, stderr.
fn cli(args: &[&str]) -> (bool, String, String) {
    let mut all = vec!["policy"];
    all.extend_from_slice(args);
    common::run_airlock(&all)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_line_lints_tests_applies_diffs_rolls_back_and_dry_runs() {
    let gw = Gateway::start().await;
    let dir = &gw.dir;
    let config = gw.loaded.path.to_str().unwrap().to_string();
    let file = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let apply_file = |file: &std::path::Path, message: &str| {
        cli(&[
            "apply",
            file.to_str().unwrap(),
            "-m",
            message,
            "--config",
            &config,
        ])
    };
    let bad = file(
        "bad.yaml",
        "policy: p\nrules:\n  - id: a\n    match:\n      modls: [x]\n    action: deny\n",
    );
    let (ok, out, err) = cli(&["lint", bad.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        out.contains("bad.yaml:5:7: error: unknown field `modls`"),
        "{out}"
    );
    assert!(out.contains("hint: did you mean `models`?"), "{out}");
    assert!(err.contains("1 error(s)"), "{err}");

    let policy = file("aurora.yaml", DENY_AURORA);
    let tests = file(
        "aurora.test.yaml",
        r#"policy: aurora.yaml
cases:
  - name: the codename is refused
    request: {model: chat-model, content: "What is project AURORA?"}
    expect: {decision: deny, rule: no-aurora}
  - name: other questions pass, tagged
    request: {model: chat-model, content: "What is the weather?"}
    expect: {decision: allow, rule: default, matched: [tag-all], tags: [seen]}
"#,
    );
    let (ok, out, _) = cli(&["test", tests.to_str().unwrap()]);
    assert!(ok, "{out}");
    assert!(out.contains("2 passed, 0 failed"), "{out}");
    let wrong = file(
        "wrong.test.yaml",
        "policy: aurora.yaml\ncases:\n  - name: expects wrongly\n    request: {content: aurora}\n    expect: {decision: deny}\n",
    );
    let (ok, out, _) = cli(&["test", wrong.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        out.contains("FAIL") && out.contains("decision: expected deny, got allow"),
        "{out}"
    );

    // Recorded traffic for the dry run: three requests name the codename.
    for text in [
        "Project Aurora budget",
        "hello",
        "project aurora team",
        "x",
        "PROJECT AURORA",
    ] {
        assert_eq!(status_of(&gw, text).await, 200);
    }
    let (ok, out, err) = cli(&[
        "dry-run",
        policy.to_str().unwrap(),
        "--config",
        &config,
        "--json",
    ]);
    assert!(ok, "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["requests"], 5);
    assert_eq!(report["unchanged"], 2);
    assert_eq!(report["changes"][0]["from"], "allow");
    assert_eq!(report["changes"][0]["to"], "deny");
    assert_eq!(report["changes"][0]["requests"], 3);
    assert_eq!(report["changes"][0]["rules"]["no-aurora"], 3);
    assert_eq!(report["changes"][0]["samples"].as_array().unwrap().len(), 3);

    let (ok, out, err) = apply_file(&policy, "block aurora");
    assert!(ok, "{err}");
    assert!(out.starts_with("v1-"), "{out}");
    let (ok, _, err) = apply_file(&policy, "again");
    assert!(!ok && err.contains("already active"), "{err}");
    assert_eq!(status_of(&gw, "Project Aurora").await, 403);
    // Route and downgrade targets are checked against the instance's models.
    let misrouted = file(
        "misrouted.yaml",
        "policy: p\nrules:\n  - id: small\n    action: downgrade\n    model: chat-modle\n",
    );
    let (ok, out, _) = cli(&["lint", misrouted.to_str().unwrap(), "--config", &config]);
    assert!(!ok);
    assert!(
        out.contains(
            "misrouted.yaml:3:5: error: rule `small` sends requests to model `chat-modle`"
        ),
        "{out}"
    );
    assert!(out.contains("did you mean `chat-model`?"), "{out}");
    let (ok, _, err) = apply_file(&misrouted, "m");
    assert!(!ok && err.contains("does not serve"), "{err}");
    let open = file("open.yaml", "policy: open\nrules: []\n");
    let (ok, _, err) = apply_file(&open, "open up");
    assert!(ok, "{err}");
    let (ok, out, _) = cli(&["diff", "1", "2", "--config", &config]);
    assert!(ok);
    assert!(out.contains("rules removed: no-aurora, tag-all"), "{out}");
    assert!(
        out.contains("-policy: test") && out.contains("+policy: open"),
        "{out}"
    );
    let (ok, out, _) = cli(&["history", "--config", &config]);
    assert!(ok);
    assert!(
        out.lines().next().unwrap().contains("active") && out.contains("open up"),
        "{out}"
    );
    let (ok, out, err) = cli(&["rollback", "--config", &config]);
    assert!(ok, "{err}");
    assert!(out.starts_with("v1-"), "{out}");
    assert_eq!(status_of(&gw, "Project Aurora").await, 403);
    // Every change is in the audit trail.
    let conn = rusqlite::Connection::open(gw.loaded.audit_db_path()).unwrap();
    let actions: Vec<String> = conn
        .prepare("SELECT json_extract(body, '$.action') FROM records WHERE kind = 'admin.action'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for action in ["policy.apply", "policy.rollback", "policy.dry_run"] {
        assert!(actions.iter().any(|a| a == action), "{action}: {actions:?}");
    }
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_manages_policies_with_roles_and_clear_errors() {
    use airlock::tenancy::rbac::Role;
    use common::{admin, admin_token};
    let gw = Gateway::start_with("  admin_api: true\n", &[]).await;
    let root = admin_token(&gw, Role::SuperAdmin);
    let viewer = admin_token(&gw, Role::Viewer);
    let call = |method: &'static str, path: &'static str, token: String, body: Value| {
        let gw = &gw;
        async move { admin(gw, method, path, Some(&token), body).await }
    };

    // Lint and test are open to readers; apply is not.
    let lint = call(
        "POST",
        "/admin/policies/lint",
        viewer.clone(),
        json!({"source": "policy: p\nrules:\n  - id: a\n    action: route\n"}),
    )
    .await;
    assert_eq!(lint.status, 200);
    let lint = lint.json();
    assert_eq!(lint["errors"], true);
    assert_eq!(lint["problems"][0]["line"], 4);
    let tested = call(
        "POST",
        "/admin/policies/test",
        viewer.clone(),
        json!({"source": DENY_AURORA, "cases": "cases:\n  - name: n\n    request: {content: project aurora}\n    expect: {decision: deny}\n"}),
    )
    .await
    .json();
    assert_eq!(tested["passed"], 1);
    call(
        "POST",
        "/admin/policies",
        viewer.clone(),
        json!({"source": DENY_AURORA, "message": "m"}),
    )
    .await
    .assert_admin_error(403, "permission_denied");

    // Apply, list, read, diff, roll back, shadow.
    let applied = call(
        "POST",
        "/admin/policies",
        root.clone(),
        json!({"source": DENY_AURORA, "message": "block aurora"}),
    )
    .await;
    assert_eq!(applied.status, 200, "{}", applied.text());
    assert_eq!(applied.json()["version"], 1);
    assert_eq!(status_of(&gw, "project aurora").await, 403);
    call(
        "POST",
        "/admin/policies",
        root.clone(),
        json!({"source": "policy: p\nrules:\n  - id: a\n    action: route\n", "message": "broken"}),
    )
    .await
    .assert_admin_error(400, "invalid_request");
    call(
        "POST",
        "/admin/policies",
        root.clone(),
        json!({"source": DENY_AURORA}),
    )
    .await
    .assert_admin_error(400, "invalid_request");
    let second = call(
        "POST",
        "/admin/policies",
        root.clone(),
        json!({"source": "policy: open\nrules: []\n", "message": "open"}),
    )
    .await;
    assert_eq!(second.json()["previous"], 1);
    let list = call("GET", "/admin/policies", viewer.clone(), Value::Null)
        .await
        .json();
    assert!(list["active"].as_str().unwrap().starts_with("v2-"));
    assert_eq!(list["versions"].as_array().unwrap().len(), 2);
    let one = call("GET", "/admin/policies/1", viewer.clone(), Value::Null)
        .await
        .json();
    assert_eq!(one["source"], DENY_AURORA);
    call("GET", "/admin/policies/99", viewer.clone(), Value::Null)
        .await
        .assert_admin_error(404, "not_found");
    let d = call(
        "GET",
        "/admin/policies/diff?from=1&to=2",
        viewer.clone(),
        Value::Null,
    )
    .await
    .json();
    assert_eq!(d["removed"], json!(["no-aurora", "tag-all"]));
    let back = call("POST", "/admin/policies/rollback", root.clone(), json!({})).await;
    assert_eq!(back.json()["version"], 1);
    assert_eq!(status_of(&gw, "project aurora").await, 403);
    let shadow = call(
        "PUT",
        "/admin/policies/shadow",
        root.clone(),
        json!({"version": 2}),
    )
    .await;
    assert!(shadow.json()["shadow"].as_str().unwrap().starts_with("v2-"));
    let cleared = call(
        "DELETE",
        "/admin/policies/shadow",
        root.clone(),
        Value::Null,
    )
    .await;
    assert_eq!(cleared.json()["shadow"], Value::Null);

    // A dry run of the open policy: the denied request would now pass.
    let report = call(
        "POST",
        "/admin/policies/dry-run",
        root.clone(),
        json!({"source": "policy: open\nrules: []\n", "since": "1h"}),
    )
    .await;
    assert_eq!(report.status, 200, "{}", report.text());
    let report = report.json();
    assert_eq!(report["changes"][0]["from"], "deny");
    assert_eq!(report["changes"][0]["to"], "allow");
    call(
        "POST",
        "/admin/policies/dry-run",
        viewer.clone(),
        json!({"source": "policy: p\nrules: []\n"}),
    )
    .await
    .assert_admin_error(403, "permission_denied");
    let garbage = admin(
        &gw,
        "POST",
        "/admin/policies/lint",
        Some(&root),
        json!("not an object"),
    )
    .await;
    assert_eq!(garbage.status, 400);
    gw.stop().await;
}

/// A version that no longer loads (here: its stored text corrupted behind Airlock's back)
/// leaves the version in force active, and requests are still judged by it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_that_fails_to_load_keeps_the_previous_one_in_force() {
    let gw = Gateway::start().await;
    apply(&gw, DENY_AURORA);
    let chat = gw.url("/v1/chat/completions");
    assert_eq!(status_of(&gw, "project aurora").await, 403);
    let conn = rusqlite::Connection::open(gw.loaded.state_db_path()).unwrap();
    conn.execute_batch(
        "INSERT INTO policy_versions (name, sha256, source, author, message, created_ms)
         VALUES ('broken', 'ffff', CAST('policy: [' AS BLOB), 'x', 'x', 0);
         UPDATE policy_state SET active = last_insert_rowid() WHERE id = 1;",
    )
    .unwrap();
    let reply = post(&chat, &gw.key, &ask("chat-model", "project aurora")).await;
    assert_eq!(reply.status, 403, "the previous version still decides");
    let rows = gw.stop().await;
    assert!(
        rows[0]
            .policy_version
            .as_deref()
            .unwrap()
            .starts_with("v1-")
    );
}

/// Replaces a stored version's text (and its hash, as a build that reads it differently
/// would see it) with text that does not load.
fn break_version(loaded: &airlock::config::LoadedConfig, version: i64) {
    let text = "policy: [";
    let sha: String = ring::digest::digest(&ring::digest::SHA256, text.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let conn = rusqlite::Connection::open(loaded.state_db_path()).unwrap();
    let changed = conn
        .execute(
            "UPDATE policy_versions SET source = CAST(?1 AS BLOB), sha256 = ?2 WHERE version = ?3",
            rusqlite::params![text, sha, version],
        )
        .unwrap();
    assert_eq!(changed, 1);
}

fn admin_events(gw: &Gateway, action: &str) -> Vec<String> {
    gw.state_db()
        .prepare("SELECT COALESCE(detail, '') FROM admin_events WHERE action = ?1")
        .unwrap()
        .query_map([action], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// A restarted gateway whose active version no longer loads (changed on the stopped
/// instance) never serves a request without a policy: it enforces the last version that
/// loads and says so (`/readyz` degraded, an audit event), and with none that loads it
/// refuses data-path requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_with_an_active_version_that_no_longer_loads_never_serves_unpoliced() {
    let gw = Gateway::start().await;
    let first = apply(&gw, DENY_AURORA);
    apply(
        &gw,
        &DENY_AURORA.replace("Project Aurora is confidential", "Aurora is for legal only"),
    );
    let chat = gw.url("/v1/chat/completions");
    let secret = "tell me about Project Aurora";
    let refused = post(&chat, &gw.key, &ask("chat-model", secret)).await;
    assert_eq!(
        refused.json()["error"]["message"],
        "Aurora is for legal only"
    );

    // The active version (v2) no longer loads: v1, active before it, is enforced.
    let gw = gw.restart(|loaded| break_version(loaded, 2)).await;
    let chat = gw.url("/v1/chat/completions");
    let ready = common::send("GET", &gw.url("/readyz"), &[], "").await;
    assert_eq!(ready.status, 200, "{}", ready.text());
    assert_eq!(ready.json()["status"], "degraded");
    let why = ready.json()["policy"].as_str().unwrap().to_string();
    assert!(
        why.contains("v2 failed to load") && why.contains(&first),
        "{why}"
    );
    let reply = post(&chat, &gw.key, &ask("chat-model", secret)).await;
    reply.assert_error(403, "policy_denied");
    assert_eq!(
        reply.json()["error"]["message"],
        "Project Aurora is confidential"
    );
    assert_eq!(status_of(&gw, "hello").await, 200);
    assert_eq!(admin_events(&gw, "policy.fallback").len(), 1);

    // No version loads: nothing is served, rather than served without a policy.
    let gw = gw.restart(|loaded| break_version(loaded, 1)).await;
    let ready = common::send("GET", &gw.url("/readyz"), &[], "").await;
    assert_eq!(ready.status, 503, "{}", ready.text());
    assert!(ready.json()["policy"].as_str().unwrap().contains("refused"));
    for text in [secret, "hello"] {
        post(
            &gw.url("/v1/chat/completions"),
            &gw.key,
            &ask("chat-model", text),
        )
        .await
        .assert_error(503, "policy_unavailable");
    }
    assert_eq!(admin_events(&gw, "policy.unavailable").len(), 1);
    let rows = gw.stop().await;
    assert_eq!(
        rows.iter().filter(|r| r.policy_version.is_none()).count(),
        2,
        "only the two refused requests ran without a version: {:?}",
        rows.iter()
            .map(|r| (r.status, r.policy_version.clone()))
            .collect::<Vec<_>>()
    );
    assert!(
        rows.iter()
            .all(|r| r.status != 200 || r.policy_version.is_some())
    );
}

/// A stored version whose text no longer matches its hash (altered in the database) is
/// not loaded either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_altered_behind_its_hash_is_not_enforced() {
    let gw = Gateway::start().await;
    apply(&gw, DENY_AURORA);
    let altered = DENY_AURORA.replace("action: deny", "action: allow");
    let gw = gw
        .restart(|loaded| {
            rusqlite::Connection::open(loaded.state_db_path())
                .unwrap()
                .execute(
                    "UPDATE policy_versions SET source = CAST(?1 AS BLOB) WHERE version = 1",
                    [altered],
                )
                .unwrap();
        })
        .await;
    let ready = common::send("GET", &gw.url("/readyz"), &[], "").await;
    assert_eq!(ready.status, 503, "{}", ready.text());
    assert!(
        ready.json()["policy"].as_str().unwrap().contains("SHA-256"),
        "{}",
        ready.text()
    );
    assert_eq!(status_of(&gw, "project aurora").await, 503);
    gw.stop().await;
}

/// Response rules judge a streamed answer at its end: a deny withholds what is left and
/// ends the stream with the policy's error event (in the client's dialect) instead of
/// its clean end; other streams end as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_answers_are_judged_at_their_end() {
    let gw = Gateway::start().await;
    apply(
        &gw,
        "policy: p\nrules:\n  - id: withhold-for-carol\n    phase: response\n    match: {users: [carol], content: {regex: ['\\w+']}}\n    action: deny\n    message: the answer was withheld\n",
    );
    let stream_as = |user: &str| {
        let mut body = ask("chat-model", "hello");
        body["user"] = json!(user);
        body["stream"] = json!(true);
        body["max_tokens"] = json!(12);
        body
    };
    let chat = gw.url("/v1/chat/completions");
    let denied = post(&chat, &gw.key, &stream_as("carol")).await.text();
    assert!(denied.contains(r#""code":"policy_denied""#), "{denied}");
    assert!(!denied.contains("[DONE]"), "{denied}");
    let served = post(&chat, &gw.key, &stream_as("dave")).await.text();
    assert!(served.trim_end().ends_with("data: [DONE]"), "{served}");
    // Anthropic's stream ends with its `error` event.
    let mut anthropic = stream_as("carol");
    anthropic.as_object_mut().unwrap().remove("user");
    anthropic["metadata"] = json!({"user_id": "carol"});
    let events = post(&gw.url("/v1/messages"), &gw.key, &anthropic)
        .await
        .text();
    assert!(events.contains("event: error"), "{events}");
    assert!(!events.contains("message_stop"), "{events}");

    let records = audit_records(&gw);
    let carol: Vec<&Value> = records.iter().filter(|r| r["user_id"] == "carol").collect();
    assert_eq!(carol.len(), 2);
    for r in carol {
        assert_eq!(r["decision"], "deny", "{r}");
        assert_eq!(r["matched_rules"], json!(["withhold-for-carol"]));
        assert_eq!(r["error"], "policy_denied");
    }
    let dave = records.iter().find(|r| r["user_id"] == "dave").unwrap();
    assert_eq!(dave["decision"], "allow");
    gw.stop().await;
}

/// Header conditions and CEL see the request's headers, never its credentials.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_conditions_see_headers_but_not_credentials() {
    let gw = Gateway::start().await;
    apply(
        &gw,
        "policy: p\nrules:\n  - id: no-contractors\n    match: {headers: {x-team: [contractor-*]}}\n    action: deny\n  - id: no-credentials-visible\n    when: '\"authorization\" in request.headers'\n    action: deny\n",
    );
    let url = gw.url("/v1/chat/completions");
    let body = serde_json::to_vec(&ask("chat-model", "hi")).unwrap();
    let auth = format!("Bearer {}", gw.key);
    let with_team = |team: &'static str| {
        let (url, body, auth) = (url.clone(), body.clone(), auth.clone());
        async move {
            common::send(
                "POST",
                &url,
                &[
                    ("authorization", &auth),
                    ("content-type", "application/json"),
                    ("x-team", team),
                ],
                body,
            )
            .await
            .status
        }
    };
    assert_eq!(with_team("contractor-acme").await, 403);
    assert_eq!(with_team("finance").await, 200);
    gw.stop().await;
}

#[tokio::test]
async fn the_baseline_pack_lets_a_coding_agents_default_max_tokens_through() {
    let gw = Gateway::start().await;
    apply(&gw, airlock::policy::BASELINE_PACK);
    // Claude Code asks for 32,000 tokens on every request by default.
    let agent = |max_tokens: u64| {
        json!({"model": "chat-model", "max_tokens": max_tokens, "stream": false,
               "system": [{"type": "text", "text": "You are a coding agent. Be brief."}],
               "messages": [{"role": "user", "content": "List the files here."}]})
    };
    let reply = post(&gw.url("/v1/messages"), &gw.key, &agent(32_000)).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let reply = post(&gw.url("/v1/messages"), &gw.key, &agent(32_769)).await;
    assert_eq!(reply.status, 403, "{}", reply.text());
    assert_eq!(reply.json()["type"], "error");
    let message = reply.json()["error"]["message"].to_string();
    assert!(message.contains("32,768"), "{message}");
}
