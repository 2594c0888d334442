//! The audit trail on the wire: every request served leaves a chained record (streams
//! aggregated into one, payloads sealed), the log verifies offline, and when records
//! cannot be written the gateway fails closed — or open, when configured so.

mod common;

use airlock::audit::keys;
use airlock::audit::log::{open_audit_db, read_data_key};
use airlock::audit::record::AuditRecord;
use airlock::audit::verify::{instance_keys, verify};
use airlock::store::instance_key::InstanceKey;
use common::{Gateway, post, send};
use serde_json::json;

fn ask(stream: bool) -> serde_json::Value {
    json!({"model": "chat-model", "max_tokens": 4, "stream": stream,
           "messages": [{"role": "user", "content": "Tell me about the audit trail"}]})
}

/// Makes every further audit append fail, as a full disk would.
fn break_audit_writes(gw: &Gateway) {
    let conn = rusqlite::Connection::open(gw.loaded.audit_db_path()).unwrap();
    conn.execute_batch(
        "CREATE TRIGGER full_disk BEFORE INSERT ON records BEGIN SELECT RAISE(FAIL, 'disk full'); END;",
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_leaves_a_verifiable_record() {
    let gw = Gateway::start().await;
    let url = gw.url("/v1/chat/completions");
    assert_eq!(post(&url, &gw.key, &ask(false)).await.status, 200);
    let streamed = post(&url, &gw.key, &ask(true)).await;
    assert_eq!(streamed.sse_data().last().unwrap(), "[DONE]");
    assert_eq!(post(&url, "ak-not-a-key", &ask(false)).await.status, 401);
    let listed = send(
        "GET",
        &gw.url("/v1/models"),
        &[("authorization", &format!("Bearer {}", gw.key))],
        "",
    )
    .await;
    assert_eq!(listed.status, 200);

    let loaded = gw.loaded.clone();
    gw.stop_keeping_files().await;
    let instance = InstanceKey::read(&loaded.key_file_path()).unwrap();
    let audit = open_audit_db(&loaded.audit_db_path()).unwrap();
    let state = rusqlite::Connection::open(loaded.state_db_path()).unwrap();
    let (key, public) = instance_keys(&instance);
    let report = verify(&audit, &state, &key, &public, None, None).unwrap();
    assert!(report.ok(), "{:?}", report.findings);
    assert_eq!(report.records, 3, "model listings are not recorded");
    assert!(report.checkpoints >= 1, "shutdown signs a last checkpoint");

    let records: Vec<AuditRecord> = audit
        .prepare("SELECT body FROM records ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|b| serde_json::from_str(&b.unwrap()).unwrap())
        .collect();
    let (request, response): (Vec<u8>, Vec<u8>) = audit
        .query_row(
            "SELECT request_payload, response_payload FROM records WHERE seq = 2",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let (whole, stream, denied) = (&records[0], &records[1], &records[2]);
    assert_eq!(whole.model.as_deref(), Some("chat-model"));
    assert_eq!(whole.upstream.as_deref(), Some("mock"));
    assert_eq!(
        (whole.status, whole.completion_tokens),
        (Some(200), Some(4))
    );
    assert!(whole.tenant_id.is_some() && whole.request_id.is_some());
    assert_eq!(
        (denied.status, denied.decision.as_deref()),
        (Some(401), Some("deny"))
    );

    // The stream's record holds what the client was sent, sealed.
    let key_id = stream.payload_key.clone().unwrap();
    let data_key = read_data_key(&audit, &instance.seal_key, &key_id)
        .unwrap()
        .unwrap();
    let sent = keys::open_payload(&data_key, &key_id, &response).unwrap();
    assert_eq!(String::from_utf8(sent).unwrap(), streamed.text());
    let asked = keys::open_payload(&data_key, &key_id, &request).unwrap();
    assert!(
        String::from_utf8(asked)
            .unwrap()
            .contains("Tell me about the audit trail")
    );

    // The CLI says the same, and names a tampered record.
    let cli = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_airlock"))
            .args(args)
            .arg("--config")
            .arg(&loaded.path)
            .output()
            .unwrap()
    };
    let ok = cli(&["audit", "verify"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    audit
        .execute("UPDATE records SET body = replace(body, '\"status\":200', '\"status\":500') WHERE seq = 1", [])
        .unwrap();
    let bad = cli(&["audit", "verify"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stdout).contains("FAIL Altered at 1"));
    let _ = std::fs::remove_dir_all(&loaded.data_dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unwritable_records_close_the_gate_unless_configured_open() {
    let gw = Gateway::start().await;
    let url = gw.url("/v1/chat/completions");
    assert_eq!(post(&url, &gw.key, &ask(false)).await.status, 200);
    break_audit_writes(&gw);
    let refused = post(&url, &gw.key, &ask(false)).await;
    refused.assert_error(503, "audit_unavailable");
    let stream = post(&url, &gw.key, &ask(true)).await.sse_data();
    assert!(
        stream.last().unwrap().contains("audit_unavailable"),
        "{stream:?}"
    );
    assert!(!stream.iter().any(|e| e == "[DONE]"), "no clean end");
    gw.stop().await;

    let extra = common::Extra {
        top: "audit:\n  on_failure: fail_open\n".into(),
        ..common::Extra::default()
    };
    let gw = Gateway::start_full("", &[], &extra).await;
    break_audit_writes(&gw);
    assert_eq!(
        post(&gw.url("/v1/chat/completions"), &gw.key, &ask(false))
            .await
            .status,
        200
    );
    gw.stop().await;
}
