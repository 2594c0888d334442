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
    assert_eq!(
        report.records, 5,
        "the harness's tenant and key creation, two requests, the refused key's aggregate; \
         model listings are not recorded"
    );
    assert!(report.checkpoints >= 1, "shutdown signs a last checkpoint");

    let records: Vec<AuditRecord> = audit
        .prepare("SELECT body FROM records WHERE kind = 'llm.request' ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|b| serde_json::from_str(&b.unwrap()).unwrap())
        .collect();
    let (request, response): (Vec<u8>, Vec<u8>) = audit
        .query_row(
            "SELECT request_payload, response_payload FROM records WHERE seq = ?1",
            [records[1].seq as i64],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let (whole, stream) = (&records[0], &records[1]);
    // The refused key left no record of its own: its address's refusals are summed.
    let denied: AuditRecord = audit
        .query_row(
            "SELECT body FROM records WHERE kind = 'auth.refused'",
            [],
            |r| r.get::<_, String>(0),
        )
        .map(|b| serde_json::from_str(&b).unwrap())
        .unwrap();
    assert_eq!(denied.error.as_deref(), Some("invalid_api_key"));
    assert_eq!(denied.client_addr.as_deref(), Some("127.0.0.1"));
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
        .execute("UPDATE records SET body = replace(body, '\"status\":200', '\"status\":500') WHERE seq = ?1", [records[0].seq as i64])
        .unwrap();
    let bad = cli(&["audit", "verify"]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stdout)
            .contains(&format!("FAIL Altered at {}", records[0].seq))
    );
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

/// Runs an `airlock` command that must succeed; its standard output.
fn airlock_cli(args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("warning"), "{stderr}");
    String::from_utf8(out.stdout).unwrap()
}

/// Starts `airlock serve` on an instance made with the CLI; its address.
fn serve(config: &std::path::Path) -> (std::process::Child, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_airlock"));
    command.args(["serve", "--config"]).arg(config);
    serve_command(&mut command)
}

/// Starts an `airlock serve` command; the process and its address.
fn serve_command(command: &mut std::process::Command) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(addr) = line.strip_prefix("airlock listening on http://") {
            return (child, addr.to_string());
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("airlock serve did not start");
}

/// `airlock audit verify` on an instance: whether it passed, and what it printed.
fn verify_cli(config: &std::path::Path) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["audit", "verify", "--config"])
        .arg(config)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// An instance made with `airlock init` (listening on a free port), with a key for
/// tenant `t`: its directory, configuration file and key.
fn cli_instance(
    dir: &std::path::Path,
    mock: &std::net::SocketAddr,
) -> (std::path::PathBuf, std::path::PathBuf, String) {
    cli_instance_with(dir, mock, airlock_cli)
}

/// [`cli_instance`], running each `airlock` command with `airlock_cli`.
fn cli_instance_with(
    dir: &std::path::Path,
    mock: &std::net::SocketAddr,
    airlock_cli: impl Fn(&[&str]) -> String,
) -> (std::path::PathBuf, std::path::PathBuf, String) {
    let d = dir.join("inst");
    let upstream = format!("http://{mock}/v1");
    airlock_cli(&[
        "init",
        "--dir",
        d.to_str().unwrap(),
        "--upstream-url",
        &upstream,
        "--model",
        "chat-model",
        "--upstream-model",
        "mock-llama",
    ]);
    let config = d.join("airlock.yaml");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("listen: 127.0.0.1:8080", "listen: 127.0.0.1:0");
    std::fs::write(&config, text).unwrap();
    let created = airlock_cli(&[
        "keys",
        "create",
        "--config",
        config.to_str().unwrap(),
        "--tenant",
        "t",
        "--json",
    ]);
    let key = serde_json::from_str::<serde_json::Value>(&created).unwrap()["key"]
        .as_str()
        .unwrap()
        .to_string();
    (d, config, key)
}

/// `kill -9` under load loses no record of a response a client received.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_no_record_of_a_delivered_response() {
    let (mock, _stop) = common::start_mock(&[]).await;
    let dir = common::scratch_dir("audit-kill");
    let (d, config, key) = cli_instance(&dir, &mock);

    let (mut gateway, addr) = serve(&config);
    let url = format!("http://{addr}/v1/chat/completions");
    let delivered = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut load = Vec::new();
    for client in 0..8 {
        let (url, key, delivered) = (url.clone(), key.clone(), delivered.clone());
        load.push(tokio::spawn(async move {
            for i in 0.. {
                let reply = common::send(
                    "POST",
                    &url,
                    &[
                        ("authorization", &format!("Bearer {key}")),
                        ("content-type", "application/json"),
                    ],
                    serde_json::to_vec(&ask(i % 2 == client % 2)).unwrap(),
                )
                .await;
                // A fully read 200 is a delivered response; anything cut is not.
                if reply.status == 200
                    && (reply.text().ends_with("[DONE]\n\n") || reply.text().starts_with('{'))
                {
                    let id = reply.headers["x-request-id"].to_str().unwrap().to_string();
                    delivered.lock().unwrap().push(id);
                }
            }
        }));
    }
    // Kill it mid-load once the load has delivered enough (an event, not a time: loaded
    // CI machines run slowly).
    for _ in 0..600 {
        if delivered.lock().unwrap().len() > 20 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    gateway.kill().unwrap(); // SIGKILL
    gateway.wait().unwrap();
    for task in load {
        task.abort();
    }
    let delivered = delivered.lock().unwrap().clone();
    assert!(delivered.len() > 20, "the load ran: {}", delivered.len());

    let audit = open_audit_db(&d.join("audit.db")).unwrap();
    let recorded: std::collections::HashSet<String> = audit
        .prepare("SELECT request_id FROM records WHERE request_id IS NOT NULL")
        .unwrap()
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let missing: Vec<&String> = delivered
        .iter()
        .filter(|id| !recorded.contains(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} delivered responses without a record: {missing:?}",
        missing.len()
    );
    drop(audit);
    let (ok, report) = verify_cli(&config);
    assert!(ok, "{report}");

    // The instance comes back and keeps the chain going.
    let (mut gateway, addr) = serve(&config);
    let again = common::post(
        &format!("http://{addr}/v1/chat/completions"),
        &key,
        &ask(false),
    )
    .await;
    assert_eq!(again.status, 200);
    gateway.kill().unwrap();
    gateway.wait().unwrap();
    let (ok, report) = verify_cli(&config);
    assert!(ok, "{report}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sessions_records_are_listed_in_order() {
    let gw = Gateway::start().await;
    let url = gw.url("/v1/chat/completions");
    let auth = format!("Bearer {}", gw.key);
    for (session, stream) in [("run-7", false), ("other", false), ("run-7", true)] {
        let reply = send(
            "POST",
            &url,
            &[("authorization", &auth), ("x-session-id", session)],
            serde_json::to_vec(&ask(stream)).unwrap(),
        )
        .await;
        assert_eq!(reply.status, 200);
    }
    let loaded = gw.loaded.clone();
    gw.stop_keeping_files().await;
    let session = |id: &str| -> Vec<AuditRecord> {
        let out = airlock_cli(&[
            "audit",
            "session",
            id,
            "--json",
            "--config",
            loaded.path.to_str().unwrap(),
        ]);
        serde_json::from_str(&out).unwrap()
    };
    let records = session("run-7");
    let seqs: Vec<u64> = records.iter().map(|r| r.seq).collect();
    assert_eq!(seqs.len(), 2);
    // Admin events copied in from the state database may land anywhere in between; the
    // other session's record must.
    let other = session("other");
    assert_eq!(other.len(), 1);
    assert!(
        seqs[0] < other[0].seq && other[0].seq < seqs[1],
        "in order, the other session's record between: {seqs:?} around {}",
        other[0].seq
    );
    assert!(
        records
            .iter()
            .all(|r| r.session_id.as_deref() == Some("run-7"))
    );
    let _ = std::fs::remove_dir_all(&loaded.data_dir);
}

/// Admin changes made on the command line while the gateway serves traffic join the
/// same chain (two processes appending), naming who did what to which object — and the
/// log still verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_changes_join_the_chain_while_the_gateway_serves() {
    let (mock, _stop) = common::start_mock(&[]).await;
    let dir = common::scratch_dir("audit-admin");
    let (d, config, key) = cli_instance(&dir, &mock);
    let config_arg = config.to_str().unwrap().to_string();
    let (mut gateway, addr) = serve(&config);
    let url = format!("http://{addr}/v1/chat/completions");
    let load = tokio::spawn({
        let key = key.clone();
        async move {
            for _ in 0..300 {
                assert_eq!(common::post(&url, &key, &ask(false)).await.status, 200);
            }
        }
    });
    let mut secrets = vec![key.clone()];
    for i in 0..5 {
        let created = airlock_cli(&[
            "keys",
            "create",
            "--config",
            &config_arg,
            "--tenant",
            "t",
            "--name",
            &format!("k{i}"),
            "--json",
        ]);
        let created: serde_json::Value = serde_json::from_str(&created).unwrap();
        secrets.push(created["key"].as_str().unwrap().into());
        airlock_cli(&[
            "keys",
            "revoke",
            "--config",
            &config_arg,
            created["id"].as_str().unwrap(),
        ]);
    }
    let token = airlock_cli(&[
        "admin",
        "token",
        "create",
        "--config",
        &config_arg,
        "--name",
        "ops",
        "--role",
        "auditor",
        "--json",
    ]);
    secrets.push(
        serde_json::from_str::<serde_json::Value>(&token).unwrap()["token"]
            .as_str()
            .unwrap()
            .into(),
    );
    load.await.unwrap();
    gateway.kill().unwrap();
    gateway.wait().unwrap();

    let (ok, report) = verify_cli(&config);
    assert!(ok, "{report}");
    let audit = open_audit_db(&d.join("audit.db")).unwrap();
    let records: Vec<AuditRecord> = audit
        .prepare("SELECT body FROM records ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|body| serde_json::from_str(&body.unwrap()).unwrap())
        .collect();
    let actions: Vec<&str> = records
        .iter()
        .filter(|r| r.kind == "admin.action")
        .map(|r| r.action.as_deref().unwrap())
        .collect();
    let count = |name: &str| actions.iter().filter(|a| **a == name).count();
    assert_eq!(count("tenant.create"), 1, "{actions:?}");
    assert_eq!(count("key.create"), 6, "{actions:?}");
    assert_eq!(count("key.revoke"), 5, "{actions:?}");
    assert_eq!(count("admin_token.create"), 1, "{actions:?}");
    assert_eq!(
        records.iter().filter(|r| r.kind == "llm.request").count(),
        300
    );
    let revoke = records
        .iter()
        .find(|r| r.action.as_deref() == Some("key.revoke"))
        .unwrap();
    assert!(revoke.actor.as_deref().unwrap().starts_with("cli:"));
    assert!(revoke.target.as_deref().unwrap().starts_with("key_"));
    assert!(revoke.tenant_id.as_deref().unwrap().starts_with("ten_"));
    let log = std::fs::read(d.join("audit.db")).unwrap();
    let log = String::from_utf8_lossy(&log);
    for secret in &secrets {
        assert!(
            !log.contains(secret.as_str()),
            "a secret is in the audit log"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// GET `path` from the gateway: status and body.
async fn get(gw: &Gateway, path: &str) -> (u16, String) {
    let reply = send("GET", &gw.url(path), &[], "").await;
    (reply.status, reply.text())
}

/// A counter's value in `/metrics`.
async fn counter(gw: &Gateway, name: &str) -> u64 {
    let (_, text) = get(gw, "/metrics").await;
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .and_then(|value| value.trim().parse::<f64>().ok())
        .map_or(0, |value| value as u64)
}

/// A real full disk as SQLite reports it (`SQLITE_FULL`): the audit database capped by
/// `audit.max_db_bytes`. Requests are refused, `/readyz` says the audit is unavailable,
/// and a stream whose upstream sends `[DONE]` well before its body ends never gives the
/// client its clean end: the end waits for the record, which cannot be written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_audit_disk_withholds_the_streams_end_and_readyz_says_so() {
    let extra = common::Extra {
        top: "audit:\n  max_db_bytes: 131072\n".into(),
        ..common::Extra::default()
    };
    let gw = Gateway::start_full("", &[], &extra).await;
    assert_eq!(
        get(&gw, "/readyz").await,
        (200, r#"{"status":"ready"}"#.into())
    );
    let url = gw.url("/v1/chat/completions");
    let asking = |words: usize, stream: bool| {
        json!({"model": "chat-model", "max_tokens": 4, "stream": stream,
               "messages": [{"role": "user", "content": "word ".repeat(words)}]})
    };
    // Large records until one does not fit, then small ones until none does.
    for words in [6_000, 20] {
        let mut refused = None;
        for _ in 0..200 {
            let reply = post(&url, &gw.key, &asking(words, false)).await;
            if reply.status != 200 {
                refused = Some(reply);
                break;
            }
        }
        refused
            .expect("the capped audit database filled up")
            .assert_error(503, "audit_unavailable");
    }
    let (status, body) = get(&gw, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body, json!({"status": "degraded", "audit": "unavailable"}));

    let mut late = asking(6_000, true);
    late["mock_fault"] = json!("late_end:300");
    let stream = post(&url, &gw.key, &late).await;
    assert_eq!(stream.status, 200);
    let events = stream.sse_data();
    assert!(!events.iter().any(|e| e == "[DONE]"), "{events:?}");
    assert!(
        events.last().unwrap().contains("audit_unavailable"),
        "{events:?}"
    );
    assert!(
        events.len() > 2,
        "the content came before the end: {events:?}"
    );
    gw.stop().await;
}

/// The same slow upstream end with a writable audit: the clean end comes once the
/// record is durable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streams_end_follows_its_durable_record() {
    let gw = Gateway::start().await;
    let mut late = ask(true);
    late["mock_fault"] = json!("late_end:200");
    let stream = post(&gw.url("/v1/chat/completions"), &gw.key, &late).await;
    assert_eq!(stream.sse_data().last().unwrap(), "[DONE]");
    let records = common::audit_records(&gw);
    let id = stream.headers["x-request-id"].to_str().unwrap();
    assert!(records.iter().any(|r| r["request_id"] == id));
    gw.stop().await;
}

/// Sends `count` chat requests at once; the number answered so far, and their handles.
fn concurrent_requests(
    gw: &Gateway,
    count: usize,
) -> (
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
    Vec<tokio::task::JoinHandle<common::Reply>>,
) {
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let tasks = (0..count)
        .map(|_| {
            let (url, key, answered) = (
                gw.url("/v1/chat/completions"),
                gw.key.clone(),
                answered.clone(),
            );
            tokio::spawn(async move {
                let reply = post(&url, &key, &ask(false)).await;
                answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                reply
            })
        })
        .collect();
    (answered, tasks)
}

/// Holds `db`'s write lock (as another process would) until `counter` shows `waits`
/// requests waiting for room in a writer's queue, checking meanwhile that requests are
/// held back; then lets go, and every request is answered 200.
async fn requests_wait_for_a_stalled_writer(
    gw: &Gateway,
    db: &std::path::Path,
    counter_name: &str,
) -> Vec<String> {
    const REQUESTS: usize = 6;
    let lock = rusqlite::Connection::open(db).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    let (answered, tasks) = concurrent_requests(gw, REQUESTS);
    // The writer blocks on the lock with its queue (room for one) full: the others wait.
    let mut waits = 0;
    for _ in 0..400 {
        waits = counter(gw, counter_name).await;
        if waits >= 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(waits >= 3, "requests did not wait for room: {waits}");
    let held = REQUESTS - answered.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        held >= 3,
        "requests were held back while the writer stalled"
    );
    lock.execute_batch("COMMIT").unwrap();
    let mut ids = Vec::new();
    for task in tasks {
        let reply = task.await.unwrap();
        assert_eq!(reply.status, 200, "{}", reply.text());
        ids.push(reply.headers["x-request-id"].to_str().unwrap().to_string());
    }
    ids
}

/// A stalled audit writer with a queue of one: requests wait (counted in
/// `airlock_audit_queue_waits_total`), none is refused, and every record arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_wait_for_the_audit_writer_and_no_record_is_dropped() {
    let extra = common::Extra {
        top: "audit:\n  queue_capacity: 1\n".into(),
        ..common::Extra::default()
    };
    let gw = Gateway::start_full("", &[], &extra).await;
    let db = gw.loaded.audit_db_path();
    let ids = requests_wait_for_a_stalled_writer(&gw, &db, "airlock_audit_queue_waits_total").await;
    let records = common::audit_records(&gw);
    for id in &ids {
        assert!(
            records.iter().any(|r| r["request_id"] == id.as_str()),
            "no record of {id}"
        );
    }
    gw.stop().await;
}

/// The same for the request log: rows wait, none is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_wait_for_the_request_log_writer_and_no_row_is_dropped() {
    let extra = common::Extra {
        logging: "  request_log_queue: 1\n".into(),
        ..common::Extra::default()
    };
    let gw = Gateway::start_full("", &[], &extra).await;
    let db = gw.loaded.request_log_db_path();
    let ids =
        requests_wait_for_a_stalled_writer(&gw, &db, "airlock_request_log_queue_waits_total").await;
    let rows = gw.stop().await;
    for id in &ids {
        assert!(rows.iter().any(|r| &*r.id == id.as_str()), "no row of {id}");
    }
}

/// `airlock ARGS…` started by a shell with umask 000, so whatever modes its files get are
/// the ones it chose itself.
fn with_open_umask(args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new("sh");
    command
        .args([
            "-c",
            "umask 000; exec \"$@\"",
            "sh",
            env!("CARGO_BIN_EXE_airlock"),
        ])
        .args(args);
    command
}

/// `airlock ARGS…` with umask 000 and `input` on its standard input, which must succeed;
/// its output.
fn loosely(args: &[&str], input: &str) -> String {
    let (ok, out, err) = common::run_with_stdin(&mut with_open_umask(args), input);
    assert!(ok, "{out}{err}");
    out
}

/// Everything Airlock writes is its user's alone, whatever umask it was started with:
/// after a real run — init, serve, requests, checkpoints, the search index, an erasure
/// by value, an evidence export — every file in the instance directory is 0600 and every
/// directory 0700.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_file_airlock_writes_is_private_to_its_user() {
    use std::os::unix::fs::PermissionsExt;
    let (mock, _stop) = common::start_mock(&["--echo"]).await;
    let scratch = common::scratch_dir("audit-modes");
    let (d, config, key) = cli_instance_with(&scratch, &mock, |args| loosely(args, ""));
    // Files are the point here, not names: the NER model stays off (it is slow to load).
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("pii:\n  ner:\n    enabled: false\n");
    std::fs::write(&config, text).unwrap();
    let config = config.to_str().unwrap();

    let (mut gateway, addr) = serve_command(&mut with_open_umask(&["serve", "--config", config]));
    let url = format!("http://{addr}/v1/chat/completions");
    let body = json!({"model": "chat-model", "messages": [
        {"role": "user", "content": "Margaret Thornbury paid with 4111 1111 1111 1111"}]});
    for _ in 0..3 {
        assert_eq!(post(&url, &key, &body).await.status, 200);
    }
    let watermark = d.join("audit-index").join("indexed");
    for _ in 0..200 {
        let indexed: u64 = std::fs::read_to_string(&watermark)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0);
        if indexed >= 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    loosely(
        &["audit", "erase", "--value", "--config", config],
        "Margaret Thornbury\n",
    );
    let package = d.join("evidence.tar");
    let export = common::evidence_export_args(config, &package);
    loosely(&export.iter().map(String::as_str).collect::<Vec<_>>(), "");
    let pid = rustix::process::Pid::from_raw(gateway.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    assert!(gateway.wait().unwrap().success());

    let mut seen = Vec::new();
    let mut open = Vec::new();
    let mut pending = vec![d.clone()];
    while let Some(path) = pending.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let mode = meta.permissions().mode() & 0o777;
        let wanted = if meta.is_dir() { 0o700 } else { 0o600 };
        if mode != wanted {
            open.push(format!("{} {mode:o}", path.display()));
        }
        if meta.is_dir() {
            pending.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        }
        seen.push(path);
    }
    for name in [
        "airlock.yaml",
        "instance.key",
        "airlock.db",
        "audit.db",
        "requests.db",
        "audit-index",
        "evidence.tar",
    ] {
        assert!(seen.contains(&d.join(name)), "{name} was not written");
    }
    assert!(
        seen.iter()
            .any(|p| p.extension().is_some_and(|e| e == "idx")),
        "tantivy's files"
    );
    assert!(open.is_empty(), "not private: {open:#?}");
    let _ = std::fs::remove_dir_all(&scratch);
}
