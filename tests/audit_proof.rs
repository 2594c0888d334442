//! One record out of the audit trail, proved elsewhere: a gateway serves requests and
//! stops (signing a last checkpoint), `airlock audit export-record` writes a record with
//! its inclusion proof, and `airlock audit verify-record` accepts it without config or
//! database — and names the problem when the body, a proof step, the signature or the
//! key is not what the instance wrote. Records not yet under a checkpoint cannot be
//! exported.

mod common;

use airlock::audit::log::open_audit_db;
use airlock::store::instance_key::InstanceKey;
use common::{Gateway, post};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Output;

fn airlock(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(args)
        .env_remove("AIRLOCK_CONFIG")
        .output()
        .unwrap()
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn verify_record(file: &Path, key: Option<&str>) -> Output {
    let mut args = vec!["audit", "verify-record", file.to_str().unwrap()];
    if let Some(key) = key {
        args.extend(["--public-key", key]);
    }
    airlock(&args)
}

/// Writes `proof` next to `like` as `name`, verifies it with `key`, and checks that it
/// failed with `expected` among the failures, and without a panic.
fn rejected(like: &Path, name: &str, proof: &Value, key: &str, expected: &[&str]) {
    let file = like.with_file_name(name);
    std::fs::write(&file, serde_json::to_vec_pretty(proof).unwrap()).unwrap();
    let out = verify_record(&file, Some(key));
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{name}:\n{stdout}{stderr}");
    assert!(!stdout.contains("OK:"), "{name}:\n{stdout}");
    assert!(!stderr.contains("panicked"), "{name}:\n{stderr}");
    assert!(stderr.contains("does not verify"), "{name}:\n{stderr}");
    assert!(stdout.contains("(NOT verified)"), "{name}:\n{stdout}");
    for expected in expected {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with("FAIL") && l.contains(expected)),
            "{name}: {expected:?} not failed in:\n{stdout}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_exports_with_its_proof_and_verifies_elsewhere() {
    let gw = Gateway::start().await;
    let url = gw.url("/v1/chat/completions");
    let ask = json!({"model": "chat-model", "max_tokens": 4,
                     "messages": [{"role": "user", "content": "prove this one"}]});
    for _ in 0..3 {
        assert_eq!(post(&url, &gw.key, &ask).await.status, 200);
    }
    let loaded = gw.loaded.clone();
    gw.stop_keeping_files().await;
    let cfg = loaded.path.to_str().unwrap();

    let audit = open_audit_db(&loaded.audit_db_path()).unwrap();
    let (seq, stored_body): (i64, String) = audit
        .query_row(
            "SELECT seq, body FROM records WHERE kind = 'llm.request' ORDER BY seq LIMIT 1 OFFSET 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let seq = seq.to_string();
    let key_out = airlock(&["audit", "public-key", "--config", cfg]);
    let public_key = text(&key_out).0.trim().to_string();
    assert_eq!(public_key.len(), 64);

    let file = loaded.data_dir.join("record.json");
    let exported = airlock(&[
        "audit",
        "export-record",
        &seq,
        "--out",
        file.to_str().unwrap(),
        "--config",
        cfg,
    ]);
    let (stdout, stderr) = text(&exported);
    assert!(exported.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains(&format!("record {seq}, leaf")), "{stdout}");

    // The file: the exact stored body, a proof, the checkpoint; no payload text.
    let raw = std::fs::read_to_string(&file).unwrap();
    let proof: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(proof["format"], "airlock audit record proof v1");
    assert_eq!(proof["body"].as_str().unwrap(), stored_body);
    assert_eq!(proof["public_key"].as_str().unwrap(), public_key);
    assert!(!proof["proof"].as_array().unwrap().is_empty(), "{raw}");
    assert!(proof["checkpoint"]["signature"].as_str().unwrap().len() == 128);
    assert!(!raw.contains("prove this one"), "no payload plaintext");

    // Verifies with the key obtained apart, with no config and no database.
    let ok = verify_record(&file, Some(&public_key));
    let (stdout, stderr) = text(&ok);
    assert!(ok.status.success(), "{stdout}{stderr}");
    for expected in [
        &format!("seq              {seq}") as &str,
        "llm.request",
        "chat-model",
        "status           200",
        "ok   the file's public key is the one given with --public-key",
        "inclusion proof lead to the root of checkpoint",
        "the signature verifies with the key given with --public-key",
        &format!("OK: record {seq} is covered by a checkpoint signed with the instance key given"),
    ] {
        assert!(stdout.contains(expected), "{expected:?} not in:\n{stdout}");
    }
    assert!(!stdout.contains("FAIL"), "{stdout}");
    // Without a key: checked against the file's own, and a loud warning.
    let unkeyed = verify_record(&file, None);
    assert!(unkeyed.status.success());
    assert!(text(&unkeyed).1.contains("WARNING: no --public-key given"));

    // (a) a byte of the body changed.
    let mut body = proof.clone();
    body["body"] = stored_body
        .replace("\"status\":200", "\"status\":500")
        .into();
    assert_ne!(body["body"], proof["body"]);
    rejected(
        &file,
        "body.json",
        &body,
        &public_key,
        &["Merkle root mismatch"],
    );
    // (b) a proof step altered: its hash, or its side.
    let mut step = proof.clone();
    let sibling = step["proof"][0]["sibling"].as_str().unwrap().to_string();
    let flipped = if sibling.starts_with('0') { "1" } else { "0" };
    step["proof"][0]["sibling"] = format!("{flipped}{}", &sibling[1..]).into();
    rejected(
        &file,
        "step.json",
        &step,
        &public_key,
        &["Merkle root mismatch"],
    );
    let mut side = proof.clone();
    side["proof"][0]["left"] = (!proof["proof"][0]["left"].as_bool().unwrap()).into();
    rejected(
        &file,
        "side.json",
        &side,
        &public_key,
        &["the proof was altered"],
    );
    // (c) the checkpoint's signature replaced by another key's over the same statement.
    let other = InstanceKey::generate().unwrap();
    let signer = ring::signature::Ed25519KeyPair::from_pkcs8(&other.signing_key_pkcs8).unwrap();
    let statement = format!(
        "airlock audit checkpoint v1\nfirst={}\nlast={}\nroot={}\nprevious={}\nts_ms={}\n",
        proof["checkpoint"]["first_seq"],
        proof["checkpoint"]["last_seq"],
        proof["checkpoint"]["root"].as_str().unwrap(),
        proof["checkpoint"]["previous"].as_str().unwrap(),
        proof["checkpoint"]["ts_ms"]
    );
    let mut signature = proof.clone();
    signature["checkpoint"]["signature"] =
        airlock::store::instance_key::hex(signer.sign(statement.as_bytes()).as_ref()).into();
    rejected(
        &file,
        "signature.json",
        &signature,
        &public_key,
        &["the signature does not verify with the key given with --public-key"],
    );
    // (d) checked with another instance's key.
    rejected(
        &file,
        "other-key.json",
        &proof,
        &other.public_key_hex(),
        &[
            "is not the one given with --public-key",
            "the record comes from another instance",
        ],
    );

    // Malformed files: a clear error, exit 1, no panic.
    let garbage = file.with_file_name("garbage.json");
    std::fs::write(&garbage, "{\"format\": \"airlock audit record proof v1\", ").unwrap();
    let out = verify_record(&garbage, Some(&public_key));
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("FAIL the file is not a record proof"),
        "{stdout}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    let out = verify_record(&file.with_file_name("missing.json"), Some(&public_key));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("cannot read"), "{}", text(&out).1);

    // An admin change made with the CLI after the gateway stopped is after the last
    // checkpoint: it cannot be exported yet.
    let token = airlock(&[
        "admin", "token", "create", "--name", "auditor", "--role", "auditor", "--config", cfg,
    ]);
    assert!(token.status.success(), "{}", text(&token).1);
    let last: i64 = audit
        .query_row("SELECT MAX(seq) FROM records", [], |r| r.get(0))
        .unwrap();
    let late = file.with_file_name("late.json");
    let out = airlock(&[
        "audit",
        "export-record",
        &last.to_string(),
        "--out",
        late.to_str().unwrap(),
        "--config",
        cfg,
    ]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains(&format!(
            "record {last} is not yet under a signed checkpoint"
        )) && stderr.contains("wait for the next checkpoint"),
        "{stderr}"
    );
    assert!(!late.exists());
    let _ = std::fs::remove_dir_all(&loaded.data_dir);
}

/// `GET /admin/audit/records/{seq}/proof` serves the same proof over the admin API,
/// confined to the caller's tenant; the file it gives verifies offline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_serves_record_proofs_within_the_callers_tenant() {
    use airlock::tenancy::rbac::Role;
    use common::{Extra, admin, admin_token, scoped_token};
    let extra = Extra {
        top: "audit:\n  checkpoint_every_records: 1\n".into(),
        ..Extra::default()
    };
    let gw = Gateway::start_full("", &[], &extra).await;
    let beta = gw.create_key("beta", None, None);
    let url = gw.url("/v1/chat/completions");
    let ask = json!({"model": "chat-model", "max_tokens": 2, "messages": [{"role": "user", "content": "hi"}]});
    for key in [&gw.key, &beta] {
        assert_eq!(post(&url, key, &ask).await.status, 200);
    }
    let audit = open_audit_db(&gw.loaded.audit_db_path()).unwrap();
    // The requests were recorded in order: acme's, then beta's.
    let requests: Vec<u64> = audit
        .prepare("SELECT seq FROM records WHERE kind = 'llm.request' ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get::<_, i64>(0))
        .unwrap()
        .map(|seq| seq.unwrap() as u64)
        .collect();
    let (acme_seq, beta_seq) = (requests[0], requests[1]);
    let proof_path = |seq: u64| format!("/admin/audit/records/{seq}/proof");

    let auditor = admin_token(&gw, Role::Auditor);
    let got = admin(
        &gw,
        "GET",
        &proof_path(acme_seq),
        Some(&auditor),
        Value::Null,
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.text());
    let file = gw.loaded.data_dir.join("proof.json");
    std::fs::write(&file, &got.body).unwrap();
    let key = InstanceKey::read(&gw.loaded.key_file_path())
        .unwrap()
        .public_key_hex();
    let checked = verify_record(&file, Some(&key));
    assert!(checked.status.success(), "{:?}", text(&checked));

    let acme_admin = scoped_token(&gw, Role::TenantAdmin, Some("acme"));
    let own = admin(
        &gw,
        "GET",
        &proof_path(acme_seq),
        Some(&acme_admin),
        Value::Null,
    )
    .await;
    assert_eq!(own.status, 200);
    admin(
        &gw,
        "GET",
        &proof_path(beta_seq),
        Some(&acme_admin),
        Value::Null,
    )
    .await
    .assert_admin_error(404, "not_found");
    admin(
        &gw,
        "GET",
        &proof_path(999_999),
        Some(&auditor),
        Value::Null,
    )
    .await
    .assert_admin_error(404, "not_found");
    admin(
        &gw,
        "GET",
        "/admin/audit/records/x/proof",
        Some(&auditor),
        Value::Null,
    )
    .await
    .assert_admin_error(400, "invalid_request");
    let viewer = admin_token(&gw, Role::Viewer);
    admin(
        &gw,
        "GET",
        &proof_path(acme_seq),
        Some(&viewer),
        Value::Null,
    )
    .await
    .assert_admin_error(403, "permission_denied");
    gw.stop().await;
}
