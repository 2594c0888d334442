//! Teams, users and cost: keys issued to teams and people, each request's cost from its
//! usage at the configured price (header on whole answers, comment on streams, record),
//! and chargeback totals that add up exactly, through the CLI as an operator runs them.

mod common;

use airlock::metering::chargeback::{ChargebackQuery, GroupBy, chargeback};
use airlock::tenancy::{Directory, NewKey};
use common::{Extra, Gateway, post, run_airlock, send};
use serde_json::{Value, json};

/// `mock-llama` at $1 per million prompt tokens and $2 per million completion tokens:
/// a request costs 1000 nano-dollars per prompt token and 2000 per completion token.
fn priced() -> Extra {
    Extra {
        top: "pricing:\n  models:\n    mock-llama: {input: 1.0, output: 2.0}\n".into(),
        ..Extra::default()
    }
}

fn expected_nanos(usage: &Value) -> i64 {
    usage["prompt_tokens"].as_i64().unwrap() * 1000
        + usage["completion_tokens"].as_i64().unwrap() * 2000
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_cost_what_their_usage_does_and_chargeback_adds_up() {
    let gw = Gateway::start_full("", &[], &priced()).await;
    let (acme, other) = {
        let db = gw.state_db();
        let people = Directory::new(&db);
        let acme = people.ensure_tenant("acme", "test").unwrap();
        let other = people.ensure_tenant("other", "test").unwrap();
        people.create_team(&acme, "risk", "test").unwrap();
        people
            .create_user(&acme, "alice@acme.example", Some("risk"), "test")
            .unwrap();
        (acme, other)
    };
    let alice = gw.issue_key(NewKey {
        tenant: "acme".into(),
        user: Some("alice@acme.example".into()),
        ..NewKey::default()
    });
    let risk = gw.issue_key(NewKey {
        tenant: "acme".into(),
        team: Some("risk".into()),
        ..NewKey::default()
    });
    let outsider = gw.create_key("other", None, None);
    let url = gw.url("/v1/chat/completions");
    let chat = |content: &str| {
        json!({"model": "chat-model", "max_tokens": 5,
        "messages": [{"role": "user", "content": content}]})
    };

    // A whole answer says what it cost, to the nano-dollar.
    let mut expected_total = 0;
    let reply = post(&url, &gw.key, &chat("one two three")).await;
    assert_eq!(reply.status, 200);
    let nanos = expected_nanos(&reply.json()["usage"]);
    assert!(nanos > 0);
    expected_total += nanos;
    assert_eq!(
        reply.headers["x-airlock-cost-usd"],
        airlock::metering::usd(nanos).as_str()
    );

    // A user's key acts for that person, whatever user the caller names.
    let auth = format!("Bearer {alice}");
    let body = serde_json::to_vec(&chat("four five")).unwrap();
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
        ("x-user-id", "mallory"),
    ];
    let reply = send("POST", &url, &headers, body).await;
    assert_eq!(reply.status, 200);
    expected_total += expected_nanos(&reply.json()["usage"]);

    // A stream says it in a comment line before its end (headers left long ago).
    let mut stream = chat("six seven eight nine");
    stream["stream"] = true.into();
    stream["stream_options"] = json!({"include_usage": true});
    let reply = post(&url, &risk, &stream).await;
    assert_eq!(reply.status, 200);
    assert!(reply.headers.get("x-airlock-cost-usd").is_none());
    let usage: Value = reply
        .sse_data()
        .iter()
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str::<Value>(d).unwrap())
        .find(|c| c["usage"].is_object())
        .unwrap()["usage"]
        .clone();
    let stream_nanos = expected_nanos(&usage);
    expected_total += stream_nanos;
    let comment = format!(
        ": x-airlock-cost-usd: {}\n\ndata: [DONE]",
        airlock::metering::usd(stream_nanos)
    );
    assert!(reply.text().contains(&comment), "{}", reply.text());

    let reply = post(&url, &outsider, &chat("ten")).await;
    assert_eq!(reply.status, 200);
    let outsider_nanos = expected_nanos(&reply.json()["usage"]);

    let loaded = gw.loaded.clone();
    let rows = gw.stop_keeping_files().await;
    assert_eq!(rows.len(), 4);
    let alice_row = rows
        .iter()
        .find(|r| r.user_id.as_deref() == Some("alice@acme.example"))
        .unwrap();
    assert!(alice_row.team_id.is_some());
    assert!(rows.iter().all(|r| r.user_id.as_deref() != Some("mallory")));
    let logged: i64 = rows.iter().map(|r| r.cost_nano_usd.unwrap()).sum();
    assert_eq!(logged, expected_total + outsider_nanos);

    // Chargeback: every grouping's rows add up to the same exact total.
    let state =
        airlock::store::open(&loaded.state_db_path(), airlock::tenancy::STATE_MIGRATIONS).unwrap();
    for by in [
        GroupBy::Tenant,
        GroupBy::Team,
        GroupBy::User,
        GroupBy::Key,
        GroupBy::Model,
    ] {
        let report = chargeback(
            &loaded.request_log_db_path(),
            &state,
            &ChargebackQuery {
                from_ms: 0,
                to_ms: i64::MAX,
                by,
                tenant_id: None,
            },
        )
        .unwrap();
        let sum: i64 = report.rows.iter().map(|r| r.cost_nano_usd).sum();
        assert_eq!(sum, logged, "{by:?}");
        assert_eq!(report.total.cost_nano_usd, logged);
        assert_eq!(report.total.requests, 4);
    }
    let by_tenant = chargeback(
        &loaded.request_log_db_path(),
        &state,
        &ChargebackQuery {
            from_ms: 0,
            to_ms: i64::MAX,
            by: GroupBy::Tenant,
            tenant_id: Some(acme.clone()),
        },
    )
    .unwrap();
    assert_eq!(by_tenant.rows.len(), 1);
    assert_eq!(by_tenant.rows[0].name.as_deref(), Some("acme"));
    assert_eq!(by_tenant.total.cost_nano_usd, expected_total);
    assert_ne!(acme, other);

    // The CLI: CSV and JSON, by team (alice's key counts in her team).
    let config = loaded.path.to_str().unwrap();
    let (ok, csv, err) = run_airlock(&[
        "report",
        "chargeback",
        "-c",
        config,
        "--from",
        "2020-01-01",
        "--to",
        "2100-12-31",
        "--by",
        "team",
        "--format",
        "csv",
    ]);
    assert!(ok, "{err}");
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some(
            "id,name,requests,unpriced_requests,prompt_tokens,cached_tokens,completion_tokens,cost_usd"
        )
    );
    let risk_line = lines.find(|l| l.contains(",risk,")).unwrap();
    assert!(risk_line.contains(",2,0,"), "{risk_line}");
    let (ok, out, err) = run_airlock(&[
        "report",
        "chargeback",
        "-c",
        config,
        "--from",
        "2020-01-01",
        "--to",
        "2100-12-31",
        "--by",
        "user",
        "--format",
        "json",
        "--tenant",
        "acme",
    ]);
    assert!(ok, "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        report["total"]["cost_usd"],
        airlock::metering::usd(expected_total)
    );
    let (ok, _, err) = run_airlock(&[
        "report",
        "chargeback",
        "-c",
        config,
        "--from",
        "2026-02-30",
        "--to",
        "2026-03-01",
    ]);
    assert!(!ok && err.contains("is not a date"), "{err}");
    let _ = std::fs::remove_dir_all(loaded.data_dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_manages_teams_and_users_and_issues_keys_to_them() {
    let gw = Gateway::start().await;
    let config = gw.loaded.path.to_str().unwrap().to_string();
    let run = |args: &[&str]| {
        let mut all = vec![args[0], "-c", &config];
        all.extend_from_slice(&args[1..]);
        let (ok, out, err) = run_airlock(&all);
        assert!(ok, "{args:?}: {err}");
        out
    };
    run(&["tenants", "teams", "--tenant", "acme", "--create", "risk"]);
    run(&[
        "tenants",
        "users",
        "--tenant",
        "acme",
        "--create",
        "bob@acme.example",
        "--team",
        "risk",
    ]);
    let users: Value =
        serde_json::from_str(&run(&["tenants", "users", "--tenant", "acme", "--json"])).unwrap();
    assert_eq!(users[0]["team"], "risk");
    let created: Value = serde_json::from_str(&run(&[
        "keys",
        "create",
        "--tenant",
        "acme",
        "--user",
        "bob@acme.example",
        "--json",
    ]))
    .unwrap();
    assert_eq!(created["user"], "bob@acme.example");
    let key = created["key"].as_str().unwrap();
    let reply = post(
        &gw.url("/v1/chat/completions"),
        key,
        &json!({"model": "chat-model", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(reply.status, 200);
    // Moving bob out of the team applies to his key's next request.
    run(&[
        "tenants",
        "users",
        "--tenant",
        "acme",
        "--move",
        "bob@acme.example",
    ]);
    let reply = post(
        &gw.url("/v1/chat/completions"),
        key,
        &json!({"model": "chat-model", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(reply.status, 200);
    // Refusals are clear: no such team, a key for both a team and a user.
    let (ok, _, err) = run_airlock(&[
        "tenants", "users", "-c", &config, "--tenant", "acme", "--create", "eve", "--team", "nope",
    ]);
    assert!(!ok && err.contains("no team named `nope`"), "{err}");
    let (ok, _, err) = run_airlock(&[
        "keys",
        "create",
        "-c",
        &config,
        "--tenant",
        "acme",
        "--team",
        "risk",
        "--user",
        "bob@acme.example",
    ]);
    assert!(!ok && err.contains("cannot be used with"), "{err}");
    let listed = run(&["keys", "list", "--tenant", "acme"]);
    assert!(listed.contains("user bob@acme.example"), "{listed}");

    let rows = gw.stop().await;
    // No test checks the cost here: the default instance prices no mock model.
    assert!(rows.iter().all(|r| r.cost_nano_usd.is_none()));
    assert_eq!(rows[0].team_id, None);
    assert!(
        rows[1]
            .team_id
            .as_deref()
            .is_some_and(|t| t.starts_with("team_"))
    );
    assert!(
        rows.iter()
            .take(2)
            .all(|r| r.user_id.as_deref() == Some("bob@acme.example"))
    );
}
