//! Anyone on the network, without credentials: a flood of bogus keys, tokens and
//! passwords from several addresses leaves one aggregate audit record per address,
//! surface and reason (not one record and one request-log row each), and an address
//! past its allowance is answered 429 in its own wire format while others, and valid
//! keys from the same address, are served. The data directory's free space: below the
//! low-water mark `/readyz` is degraded and the alert is written once; below the
//! refusal mark the gateway refuses.

mod common;

use common::{Extra, Gateway, admin_token, post, send_from};
use serde_json::{Value, json};

/// Each address may fail this often before it is refused.
const BURST: usize = 4;

fn limited_config(interval_secs: u64) -> Extra {
    Extra {
        top: format!(
            "auth_failures:\n  burst: {BURST}\n  per_minute: 1\n  record_interval_secs: {interval_secs}\n"
        ),
        ..Extra::default()
    }
}

fn chat() -> Vec<u8> {
    serde_json::to_vec(
        &json!({"model": "chat-model", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .unwrap()
}

/// The audit records of refused authentications, as stored.
fn refusal_records(gw_audit: &std::path::Path) -> Vec<Value> {
    rusqlite::Connection::open(gw_audit)
        .unwrap()
        .prepare("SELECT body FROM records WHERE kind = 'auth.refused' ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|b| serde_json::from_str(&b.unwrap()).unwrap())
        .collect()
}

/// How many rows of the database at `db` `query` (a `SELECT count(*)` with one
/// parameter) counts.
fn count(db: &std::path::Path, query: &str, value: &str) -> i64 {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row(query, [value], |r| r.get(0))
        .unwrap()
}

const RECORDS_OF_KIND: &str = "SELECT count(*) FROM records WHERE kind = ?1";
const RECORDS_OF_ACTION: &str =
    "SELECT count(*) FROM records WHERE json_extract(body, '$.action') = ?1";
const EVENTS_OF_ACTION: &str = "SELECT count(*) FROM admin_events WHERE action = ?1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bogus_key_flood_leaves_one_record_per_address_and_reason_and_is_limited() {
    let gw = Gateway::start_full("", &[], &limited_config(3600)).await;
    let addresses = ["127.0.0.1", "127.0.0.2", "127.0.0.3"];
    const PER_ADDRESS: usize = 60;
    let chat_url = gw.url("/v1/chat/completions");
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for from in addresses {
        for i in 0..PER_ADDRESS {
            // Two reasons: a key nobody issued, and none at all.
            let bogus = format!("Bearer ak-bogus-{i}");
            let headers: Vec<(&str, &str)> = if i % 2 == 0 {
                vec![
                    ("authorization", bogus.as_str()),
                    ("content-type", "application/json"),
                ]
            } else {
                vec![("content-type", "application/json")]
            };
            let reply = send_from(from, "POST", &chat_url, &headers, chat()).await;
            *statuses.entry(reply.status).or_default() += 1;
            if i < BURST {
                assert_eq!(reply.status, 401, "{from} #{i}: {}", reply.text());
            } else {
                reply.assert_error(429, "too_many_auth_failures");
                reply.retry_after();
            }
        }
    }
    assert_eq!(statuses[&401], addresses.len() * BURST, "{statuses:?}");

    // A refused address is refused in the wire format of the endpoint it called.
    let anthropic = send_from(
        "127.0.0.1",
        "POST",
        &gw.url("/v1/messages"),
        &[
            ("x-api-key", "sk-ant-bogus"),
            ("anthropic-version", "2023-06-01"),
        ],
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(anthropic.status, 429);
    assert_eq!(anthropic.json()["type"], "error", "{}", anthropic.text());
    assert!(anthropic.json()["error"]["message"].is_string());
    let gemini = send_from(
        "127.0.0.1",
        "POST",
        &gw.url("/v1beta/models/chat-model:generateContent"),
        &[("x-goog-api-key", "bogus")],
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(gemini.status, 429);
    assert_eq!(gemini.json()["error"]["code"], 429, "{}", gemini.text());
    assert_eq!(gemini.json()["error"]["status"], "RESOURCE_EXHAUSTED");

    // A valid key is served from a refused address, and another address is untouched.
    let served = send_from(
        "127.0.0.1",
        "POST",
        &chat_url,
        &[
            ("authorization", &format!("Bearer {}", gw.key)),
            ("content-type", "application/json"),
        ],
        chat(),
    )
    .await;
    assert_eq!(served.status, 200, "{}", served.text());
    let fresh = send_from("127.0.0.4", "POST", &chat_url, &[], chat()).await;
    fresh.assert_error(401, "missing_api_key");

    let audit = gw.loaded.audit_db_path();
    let rows = gw.stop_keeping_files().await;
    // The request log holds served requests only: O(1), not O(requests).
    assert_eq!(
        rows.len(),
        1,
        "{:?}",
        rows.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert_eq!(count(&audit, RECORDS_OF_KIND, "llm.request"), 1);
    // The audit trail: one aggregate per address, surface and reason, summing every attempt.
    let records = refusal_records(&audit);
    let total: u64 = records
        .iter()
        .map(|r| {
            let detail: Value = serde_json::from_str(r["detail"].as_str().unwrap()).unwrap();
            assert!(
                detail["first_ms"].as_i64() <= detail["last_ms"].as_i64(),
                "{r}"
            );
            detail["count"].as_u64().unwrap()
        })
        .sum();
    assert_eq!(total as usize, addresses.len() * PER_ADDRESS + 3);
    let groups: Vec<(String, String)> = records
        .iter()
        .map(|r| {
            (
                r["client_addr"].as_str().unwrap().to_string(),
                r["error"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(records.len(), 3 * 2 + 1, "{groups:?}");
    for from in addresses {
        for reason in ["invalid_api_key", "missing_api_key"] {
            assert!(
                groups.contains(&(from.to_string(), reason.to_string())),
                "{groups:?}"
            );
        }
    }
    assert!(
        records
            .iter()
            .all(|r| r["decision"] == "deny" && r["endpoint"] == "data_path")
    );
    // Never the presented secrets.
    let all = records.iter().map(Value::to_string).collect::<String>();
    assert!(!all.contains("ak-bogus"), "{all}");
    let _ = std::fs::remove_dir_all(gw_dir(&audit));
}

fn gw_dir(audit_db: &std::path::Path) -> std::path::PathBuf {
    audit_db.parent().unwrap().to_path_buf()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_tokens_and_logins_are_limited_before_they_cost_a_lookup_and_recorded_in_aggregate() {
    let extra = limited_config(1);
    let gw = Gateway::start_full("  admin_api: true\n", &[], &extra).await;
    let routes = gw.url("/admin/routes");
    let login = gw.url("/admin/login");
    for i in 0..BURST + 6 {
        let reply = send_from(
            "127.0.0.5",
            "GET",
            &routes,
            &[("authorization", "Bearer adm-guessed")],
            Vec::new(),
        )
        .await;
        if i < BURST {
            reply.assert_admin_error(401, "invalid_admin_token");
        } else {
            reply.assert_admin_error(429, "too_many_auth_failures");
            reply.retry_after();
        }
    }
    let attempt =
        serde_json::to_vec(&json!({"user": "root", "password": "hunter2hunter2"})).unwrap();
    for i in 0..BURST + 6 {
        let reply = send_from(
            "127.0.0.6",
            "POST",
            &login,
            &[("content-type", "application/json")],
            attempt.clone(),
        )
        .await;
        if i < BURST {
            reply.assert_admin_error(401, "invalid_credentials");
        } else {
            reply.assert_admin_error(429, "too_many_auth_failures");
        }
    }
    // A valid token is still served from another address.
    let root = admin_token(&gw, airlock::tenancy::rbac::Role::SuperAdmin);
    let ok = common::admin(&gw, "GET", "/admin/routes", Some(&root), Value::Null).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    // The interval (one second here) is recorded by the running gateway.
    let audit = gw.loaded.audit_db_path();
    let mut recorded = false;
    for _ in 0..100 {
        recorded = refusal_records(&audit).len() >= 4;
        if recorded {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        recorded,
        "the running gateway records each interval's refusals"
    );
    gw.stop_keeping_files().await;
    let records = refusal_records(&audit);
    let summary: Vec<(String, String, String, u64)> = records
        .iter()
        .map(|r| {
            let detail: Value = serde_json::from_str(r["detail"].as_str().unwrap()).unwrap();
            (
                r["client_addr"].as_str().unwrap().to_string(),
                r["endpoint"].as_str().unwrap().to_string(),
                r["error"].as_str().unwrap().to_string(),
                detail["count"].as_u64().unwrap(),
            )
        })
        .collect();
    let burst = BURST as u64;
    for (addr, surface, reason, expected) in [
        ("127.0.0.5", "admin", "invalid_admin_token", burst),
        ("127.0.0.5", "admin", "too_many_auth_failures", 6),
        ("127.0.0.6", "admin_login", "unknown_user", burst),
        ("127.0.0.6", "admin_login", "too_many_auth_failures", 6),
    ] {
        let counted: u64 = summary
            .iter()
            .filter(|(a, s, r, _)| a == addr && s == surface && r == reason)
            .map(|(.., n)| n)
            .sum();
        assert_eq!(counted, expected, "{addr} {surface} {reason}: {summary:?}");
    }
    // No per-attempt admin events: nothing grows with the number of attempts.
    let per_attempt = count(&audit, RECORDS_OF_ACTION, "admin.login_refused");
    assert_eq!(per_attempt, 0);
    let _ = std::fs::remove_dir_all(gw_dir(&audit));
}

/// A gateway whose data directory is always "short of space": marks far above any disk.
fn disk_marks(low: u64, refuse: u64) -> Extra {
    Extra {
        top: format!(
            "disk:\n  low_water_bytes: {low}\n  refuse_below_bytes: {refuse}\n  check_interval_secs: 1\n"
        ),
        ..Extra::default()
    }
}

fn disk_alerts(gw: &Gateway, action: &str) -> i64 {
    count(&gw.loaded.state_db_path(), EVENTS_OF_ACTION, action)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn below_the_low_water_mark_readyz_is_degraded_and_the_alert_is_written_once() {
    let gw = Gateway::start_full("", &[], &disk_marks(1 << 62, 0)).await;
    let ready = common::send("GET", &gw.url("/readyz"), &[], "").await;
    assert_eq!(
        ready.status,
        200,
        "degraded, still serving: {}",
        ready.text()
    );
    assert_eq!(ready.json()["status"], "degraded");
    assert!(
        ready.json()["disk"]
            .as_str()
            .unwrap()
            .contains("low-water mark"),
        "{}",
        ready.text()
    );
    assert_eq!(
        disk_alerts(&gw, "disk.low_water"),
        1,
        "the check at start alerts"
    );
    // Several more checks (one a second) find the same: no second alert.
    tokio::time::sleep(std::time::Duration::from_millis(3500)).await;
    assert_eq!(disk_alerts(&gw, "disk.low_water"), 1);
    let served = post(
        &gw.url("/v1/chat/completions"),
        &gw.key,
        &json!({"model": "chat-model", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(served.status, 200, "{}", served.text());
    let audit = gw.loaded.audit_db_path();
    gw.stop_keeping_files().await;
    let in_trail = count(&audit, RECORDS_OF_ACTION, "disk.low_water");
    assert_eq!(in_trail, 1, "the alert is an audit record");
    let _ = std::fs::remove_dir_all(gw_dir(&audit));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn below_the_refusal_mark_readyz_is_503_and_requests_are_refused() {
    let gw = Gateway::start_full("", &[], &disk_marks(1 << 62, 1 << 61)).await;
    let ready = common::send("GET", &gw.url("/readyz"), &[], "").await;
    assert_eq!(ready.status, 503, "{}", ready.text());
    assert!(
        ready.json()["disk"]
            .as_str()
            .unwrap()
            .contains("refusal mark")
    );
    assert_eq!(disk_alerts(&gw, "disk.refuse_below"), 1);
    post(
        &gw.url("/v1/chat/completions"),
        &gw.key,
        &json!({"model": "chat-model", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await
    .assert_error(503, "disk_space_low");
    gw.stop().await;
}
