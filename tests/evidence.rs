//! Evidence packages end to end with the real binary: a gateway serves requests, then
//! `airlock evidence export` writes a package that `airlock evidence verify` accepts
//! offline; a package with one byte changed, a file dropped or added, or a foreign
//! signature is rejected with the problem named; no secret of the instance or its
//! configuration is in the package.

mod common;

use airlock::evidence::{Files, archive, manifest, path};
use airlock::store::instance_key::{InstanceKey, hex};
use common::{Extra, Gateway, UPSTREAM_SECRET, post};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Output;

/// A password in an upstream URL of the test config: it must never reach a package.
const URL_PASSWORD: &str = "pw-in-url-9f3c";

fn airlock(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(args)
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Exports a package of the given window; the CLI's output.
fn export(config: &Path, from: &str, to: &str, out: &Path) -> Output {
    let out = airlock(&[
        "evidence",
        "export",
        "--config",
        config.to_str().unwrap(),
        "--framework",
        "soc2",
        "--from",
        from,
        "--to",
        to,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "export failed: {}{}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn verify(package: &Path, public_key: Option<&str>) -> Output {
    let mut args = vec!["evidence", "verify", package.to_str().unwrap()];
    if let Some(key) = public_key {
        args.extend(["--public-key", key]);
    }
    airlock(&args)
}

/// Writes `files` as a package next to `like` and verifies it with `key`; the output,
/// after checking that verification failed.
fn verify_tampered(like: &Path, name: &str, files: &Files, key: &str) -> String {
    let tampered: PathBuf = like.with_file_name(name);
    archive::write(files, &tampered, 0).unwrap();
    let out = verify(&tampered, Some(key));
    let text = stdout(&out);
    assert!(!out.status.success(), "{name} verified:\n{text}");
    assert!(!text.contains("OK:"), "{text}");
    text
}

fn json_of(files: &Files, name: &str) -> Value {
    serde_json::from_slice(&files[name]).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packages_export_verify_offline_and_reject_tampering() {
    let extra = Extra {
        upstreams: format!(
            "  vault:\n    base_url: http://svc:{URL_PASSWORD}@127.0.0.1:9/v1\n    connect_timeout_ms: 200\n"
        ),
        ..Extra::default()
    };
    let gw = Gateway::start_full("", &[], &extra).await;
    let url = gw.url("/v1/chat/completions");
    let ask = json!({"model": "chat-model", "max_tokens": 4,
                     "messages": [{"role": "user", "content": "evidence please"}]});
    for _ in 0..3 {
        assert_eq!(post(&url, &gw.key, &ask).await.status, 200);
    }
    let virtual_key = gw.key.clone();
    let loaded = gw.loaded.clone();
    {
        // A team, a person in it, and a budget whose webhook carries a password.
        let db = gw.state_db();
        let people = airlock::tenancy::Directory::new(&db);
        let acme = people.find_tenant("acme").unwrap().unwrap();
        people.create_team(&acme, "risk", "test").unwrap();
        people
            .create_user(&acme, "rita@acme.example", Some("risk"), "test")
            .unwrap();
        airlock::metering::budget::BudgetStore::new(&db)
            .put(
                &serde_json::from_value(json!({
                    "tenant_id": acme, "scope": "team", "scope_id": "risk", "window": "monthly",
                    "limit_nano_usd": 5_000_000_000i64,
                    "webhook_url": format!("https://hook:{URL_PASSWORD}@alerts.example/b?token=x")
                }))
                .unwrap(),
                "test",
            )
            .unwrap();
    }

    // Exported while the gateway runs: its records are not yet under a checkpoint, so
    // the package verifies but says what it could not check offline.
    let live = loaded.data_dir.join("live.tar");
    let live_out = export(
        &loaded.path,
        "2000-01-01T00:00:00Z",
        "2100-01-01T00:00:00Z",
        &live,
    );
    assert!(
        stdout(&live_out).contains("records are after the last checkpoint"),
        "{}",
        stdout(&live_out)
    );
    let checked = verify(&live, None);
    assert!(checked.status.success(), "{}", stdout(&checked));
    assert!(
        String::from_utf8_lossy(&checked.stderr)
            .contains("records after the last checkpoint are not yet covered")
    );
    gw.stop_keeping_files().await;
    let config = loaded.path.clone();
    let cfg = config.to_str().unwrap();
    let token_out = airlock(&[
        "admin", "token", "create", "--name", "auditor", "--role", "auditor", "--json", "--config",
        cfg,
    ]);
    assert!(token_out.status.success(), "{}", stdout(&token_out));
    let token: Value = serde_json::from_slice(&token_out.stdout).unwrap();
    let admin_secret = token["token"].as_str().unwrap_or_default().to_string();
    assert!(admin_secret.starts_with("adm-"), "{token}");
    const ADMIN_PASSWORD: &str = "an auditor's passphrase";
    let (made, _, err) = common::run_airlock_with_stdin(
        &[
            "admin",
            "user",
            "create",
            "--name",
            "ida",
            "--role",
            "auditor",
            "--config",
            cfg,
            "--password-stdin",
        ],
        ADMIN_PASSWORD,
    );
    assert!(made, "{err}");

    let package = loaded.data_dir.join("evidence-soc2.tar");
    let exported = export(
        &config,
        "2000-01-01T00:00:00Z",
        "2100-01-01T00:00:00Z",
        &package,
    );
    assert!(
        // Three requests and eight admin actions (tenant, key, team, user, budget, the
        // live export, the token, the admin user).
        stdout(&exported).contains("11 records in the window"),
        "{}",
        stdout(&exported)
    );
    let key_out = airlock(&["audit", "public-key", "--config", cfg]);
    let public_key = stdout(&key_out).trim().to_string();
    assert_eq!(public_key.len(), 64);

    // Verifies with the key obtained apart; without it, verifies but warns.
    let ok = verify(&package, Some(&public_key));
    assert!(ok.status.success(), "{}", stdout(&ok));
    let text = stdout(&ok);
    for expected in [
        "ok   manifest signature verifies with the key given with --public-key",
        "match their SHA-256",
        "audit/records.jsonl: 11 records",
        "Merkle roots recomputed from the records match",
        "OK:",
    ] {
        assert!(text.contains(expected), "{expected:?} not in:\n{text}");
    }
    let unkeyed = verify(&package, None);
    assert!(unkeyed.status.success());
    assert!(String::from_utf8_lossy(&unkeyed.stderr).contains("WARNING: no --public-key given"));

    // What the package holds.
    let files = archive::read(&package).unwrap();
    assert_eq!(json_of(&files, path::CONTROLS)["framework"], "soc2");
    assert_eq!(
        json_of(&files, path::POLICY_VERSIONS)["versions"],
        json!([])
    );
    assert_eq!(
        json_of(&files, path::PII_STATISTICS)["records_in_window"],
        11
    );
    // Admin actions are audit records: the harness's tenant and key, the first
    // export, the token, the admin user.
    let admin_actions = json_of(&files, path::ADMIN_ACTIONS).to_string();
    for action in [
        "tenant.create",
        "key.create",
        "evidence.export",
        "admin_token.create",
        "admin_user.create",
    ] {
        assert!(
            admin_actions.contains(action),
            "{action} not in {admin_actions}"
        );
    }
    let keys = json_of(&files, path::VIRTUAL_KEYS);
    assert_eq!(keys["rows"].as_array().unwrap().len(), 1);
    assert!(keys["rows"][0].get("prefix").is_none() && keys["rows"][0].get("hash").is_none());
    let tokens = json_of(&files, path::ADMIN_TOKENS);
    assert_eq!(tokens["rows"][0]["role"], "auditor");
    let members = json_of(&files, path::MEMBERS);
    assert_eq!(members["teams"][0]["name"], "risk");
    assert_eq!(members["users"][0]["team"], "risk");
    let quotas = json_of(&files, path::QUOTAS);
    assert_eq!(
        quotas["budgets"][0]["webhook_url"],
        "https://[redacted]@alerts.example/b?[redacted]"
    );
    let users = json_of(&files, path::ADMIN_USERS);
    assert_eq!(users["rows"][0]["name"], "ida");
    assert!(users["rows"][0].get("password_hash").is_none(), "{users}");
    let events = json_of(&files, path::ADMIN_EVENTS);
    let actions: Vec<&str> = events["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"key.create"), "{actions:?}");
    let snapshot = json_of(&files, path::CONFIG);
    assert_eq!(
        snapshot["config"]["upstreams"]["vault"]["base_url"],
        "http://[redacted]@127.0.0.1:9/v1"
    );
    assert_eq!(
        snapshot["config"]["upstreams"]["mock"]["api_key_file"],
        "[redacted]"
    );

    // No secret anywhere in the archive's bytes.
    let raw = std::fs::read(&package).unwrap();
    let raw = String::from_utf8_lossy(&raw);
    let instance = InstanceKey::read(&loaded.key_file_path()).unwrap();
    let state = rusqlite::Connection::open(loaded.state_db_path()).unwrap();
    let mut hashes: Vec<String> = state
        .prepare("SELECT hash FROM virtual_keys UNION ALL SELECT hash FROM admin_tokens")
        .unwrap()
        .query_map([], |r| r.get::<_, Vec<u8>>(0))
        .unwrap()
        .map(|h| hex(&h.unwrap()))
        .collect();
    hashes.extend([
        hex(&instance.key_hash_secret),
        hex(&instance.seal_key),
        hex(&instance.signing_key_pkcs8),
    ]);
    let mut secrets = vec![
        UPSTREAM_SECRET.to_string(),
        URL_PASSWORD.to_string(),
        virtual_key.clone(),
        admin_secret.clone(),
        ADMIN_PASSWORD.to_string(),
        // Any password hash (PHC strings start so).
        "$argon2".to_string(),
        "upstream.key".to_string(),
    ];
    secrets.extend(hashes);
    for secret in &secrets {
        assert!(
            !raw.contains(secret.as_str()),
            "a secret is in the package: {secret}"
        );
    }

    // One byte of one file changed.
    let mut altered = files.clone();
    let records = altered.get_mut(path::RECORDS).unwrap();
    let at = records.iter().position(|b| *b == b'4').unwrap();
    records[at] = b'5';
    let text = verify_tampered(&package, "altered.tar", &altered, &public_key);
    assert!(
        text.contains("FAIL audit/records.jsonl: SHA-256 differs from the manifest (altered)"),
        "{text}"
    );
    assert!(
        text.contains("Merkle root of the extract's records differs"),
        "{text}"
    );

    // A file dropped; a file added.
    let mut dropped = files.clone();
    dropped.remove(path::VIRTUAL_KEYS);
    let text = verify_tampered(&package, "dropped.tar", &dropped, &public_key);
    assert!(
        text.contains("FAIL access/virtual_keys.json: missing from the package"),
        "{text}"
    );
    let mut added = files.clone();
    added.insert("access/extra.json".into(), b"{}\n".to_vec());
    let text = verify_tampered(&package, "added.tar", &added, &public_key);
    assert!(text.contains("FAIL access/extra.json: in the package but not in the manifest"));

    // The manifest signature swapped for one by another key.
    let forger = InstanceKey::generate().unwrap();
    let mut swapped = files.clone();
    let foreign = manifest::sign(&files[path::MANIFEST], &forger.signing_key_pkcs8).unwrap();
    swapped.insert(path::SIGNATURE.into(), foreign);
    let text = verify_tampered(&package, "swapped.tar", &swapped, &public_key);
    assert!(
        text.contains("FAIL manifest signature does not verify with the key in the package"),
        "{text}"
    );

    // A forger who re-signs everything with its own key: self-consistent, but not the
    // instance's key, and the checkpoints do not verify under it.
    let mut forged = altered.clone();
    let mut m: manifest::Manifest = serde_json::from_slice(&files[path::MANIFEST]).unwrap();
    m.public_key = forger.public_key_hex();
    forged.insert(
        path::PUBLIC_KEY.into(),
        format!("{}\n", m.public_key).into_bytes(),
    );
    forged.remove(path::MANIFEST);
    forged.remove(path::SIGNATURE);
    let resigned = manifest::Manifest::new(
        &m.framework,
        &m.from,
        &m.to,
        m.created_at.clone(),
        m.public_key.clone(),
        &forged,
    );
    let bytes = airlock::evidence::json_file(&resigned).unwrap();
    forged.insert(
        path::SIGNATURE.into(),
        manifest::sign(&bytes, &forger.signing_key_pkcs8).unwrap(),
    );
    forged.insert(path::MANIFEST.into(), bytes);
    let text = verify_tampered(&package, "forged.tar", &forged, &public_key);
    assert!(
        text.contains("is not the one given with --public-key"),
        "{text}"
    );
    let forged_path = package.with_file_name("forged.tar");
    let unkeyed = stdout(&verify(&forged_path, None));
    assert!(
        unkeyed.contains("the signature does not verify"),
        "{unkeyed}"
    );

    // A window holding only record 2: the extract widens to its whole checkpoint, so the
    // checkpoint's root is still recomputed.
    let audit = rusqlite::Connection::open(loaded.audit_db_path()).unwrap();
    let ts: i64 = audit
        .query_row("SELECT ts_ms FROM records WHERE seq = 2", [], |r| r.get(0))
        .unwrap();
    let at = airlock::evidence::rfc3339_ms(ts);
    let narrow = loaded.data_dir.join("narrow.tar");
    export(&config, &at, &at, &narrow);
    let ok = verify(&narrow, Some(&public_key));
    assert!(ok.status.success(), "{}", stdout(&ok));
    let info = json_of(&archive::read(&narrow).unwrap(), path::EXTRACT);
    assert_eq!(
        (info["first_seq"].as_u64(), info["last_seq"].as_u64()),
        (Some(1), Some(9))
    );
    assert!(info["window_records"].as_u64().unwrap() >= 1);

    // A window with no records: an empty extract, still a valid package.
    let empty = loaded.data_dir.join("empty.tar");
    let exported = export(
        &config,
        "1999-01-01T00:00:00Z",
        "1999-12-31T23:59:59Z",
        &empty,
    );
    assert!(stdout(&exported).contains("0 records in the window"));
    let ok = verify(&empty, Some(&public_key));
    assert!(ok.status.success(), "{}", stdout(&ok));

    // Bad arguments are refused with a clear message.
    let bad = airlock(&[
        "evidence",
        "export",
        "--config",
        cfg,
        "--framework",
        "soc2",
        "--from",
        "yesterday",
        "--to",
        "2100-01-01T00:00:00Z",
        "--out",
        "/tmp/x.tar",
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("expected RFC 3339"));
    let _ = std::fs::remove_dir_all(&loaded.data_dir);
}
