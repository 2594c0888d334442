//! `airlock audit verify` against an attacker on the box: one real instance is served
//! (requests by two people, one of them erased, checkpoints handed to a witness file
//! outside the data directory) and stopped; each scenario then edits a copy of it with
//! SQLite (or removes files) and the command must fail, naming the finding — and pass on
//! the untouched copy. A cut that also rewrote every local anchor with the instance's own
//! keys, as root could, is caught only by the witness file or a written-down hash.

mod common;

use airlock::audit::anchor::{self, Head};
use airlock::audit::keys::chain_key;
use airlock::audit::verify::checkpoint_at;
use airlock::store::instance_key::InstanceKey;
use common::Gateway;
use rusqlite::Connection;
use serde_json::json;
use std::path::{Path, PathBuf};

/// A stopped instance: its directory, configuration and witness file.
struct Instance {
    data: PathBuf,
    config: PathBuf,
    witness: PathBuf,
    /// The record of the erasure.
    erase_seq: u64,
}

impl Instance {
    fn audit(&self) -> Connection {
        Connection::open(self.data.join("audit.db")).unwrap()
    }

    fn state(&self) -> Connection {
        Connection::open(self.data.join("airlock.db")).unwrap()
    }

    /// An untouched copy, with a witness file of its own.
    fn copy(&self, tag: &str) -> Instance {
        let root = common::scratch_dir(&format!("tamper-{tag}"));
        let data = root.join("data");
        std::fs::create_dir_all(&data).unwrap();
        for entry in std::fs::read_dir(&self.data).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                std::fs::copy(&path, data.join(path.file_name().unwrap())).unwrap();
            }
        }
        let witness = root.join("witness").join("checkpoints.jsonl");
        std::fs::create_dir_all(witness.parent().unwrap()).unwrap();
        std::fs::copy(&self.witness, &witness).unwrap();
        let config = data.join("airlock.yaml");
        let text = std::fs::read_to_string(&config).unwrap().replace(
            &self.witness.display().to_string(),
            &witness.display().to_string(),
        );
        std::fs::write(&config, text).unwrap();
        Instance {
            data,
            config,
            witness,
            erase_seq: self.erase_seq,
        }
    }

    /// `airlock audit verify` with `extra` arguments: whether it passed, and its output.
    fn verify(&self, extra: &[&str]) -> (bool, String) {
        let mut args = vec!["audit", "verify", "--config", self.config.to_str().unwrap()];
        args.extend_from_slice(extra);
        let (ok, stdout, stderr) = common::run_airlock(&args);
        assert!(
            !stderr.contains("database error"),
            "verification stopped instead of naming the record: {stderr}"
        );
        (ok, stdout)
    }

    /// Verification fails, and its first finding is `expected` (e.g. `Truncated at 9`).
    fn fails_with(&self, extra: &[&str], expected: &str) {
        let (ok, out) = self.verify(extra);
        assert!(!ok, "verified though tampered:\n{out}");
        let first = out.lines().find(|l| l.starts_with("FAIL ")).unwrap_or("");
        assert!(
            first.starts_with(&format!("FAIL {expected}")),
            "expected FAIL {expected} first:\n{out}"
        );
    }

    fn scalar(&self, sql: &str) -> u64 {
        self.audit()
            .query_row(sql, [], |r| r.get::<_, i64>(0))
            .unwrap() as u64
    }
}

/// The newest checkpoint's hash, as a clean `verify` prints it for the auditor to keep.
fn newest_hash(out: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix("newest checkpoint "))
        .and_then(|l| l.split(": ").nth(1))
        .unwrap()
        .to_string()
}

fn chat(stream: bool) -> Vec<u8> {
    serde_json::to_vec(
        &json!({"model": "chat-model", "max_tokens": 4, "stream": stream,
        "messages": [{"role": "user", "content": "Tell me about the quarterly numbers"}]}),
    )
    .unwrap()
}

/// Serves requests by `ann` and `bob`, erases `bob` while the gateway runs, serves more,
/// and stops (the last checkpoint goes to the witness file too).
async fn served_instance() -> Instance {
    let witness_dir = common::scratch_dir("tamper-witness");
    let witness = witness_dir.join("checkpoints.jsonl");
    let extra = common::Extra {
        top: format!(
            "audit:\n  checkpoint_every_records: 3\n  witness_file: {}\n",
            witness.display()
        ),
        ..common::Extra::default()
    };
    let gw = Gateway::start_full("", &[], &extra).await;
    let url = gw.url("/v1/chat/completions");
    let auth = format!("Bearer {}", gw.key);
    let ask = |user: &'static str, stream: bool| {
        let (url, auth) = (url.clone(), auth.clone());
        async move {
            let reply = common::send(
                "POST",
                &url,
                &[("authorization", auth.as_str()), ("x-user-id", user)],
                chat(stream),
            )
            .await;
            assert_eq!(reply.status, 200, "{}", reply.text());
        }
    };
    for i in 0..6 {
        ask(if i % 2 == 0 { "ann" } else { "bob" }, i == 3).await;
    }
    let config = gw.loaded.path.clone();
    let (ok, out, err) = common::run_airlock(&[
        "audit",
        "erase",
        "--tenant",
        "acme",
        "--user",
        "bob",
        "--json",
        "--config",
        config.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let erase_seq = serde_json::from_str::<serde_json::Value>(&out).unwrap()["seq"]
        .as_u64()
        .unwrap();
    for _ in 0..5 {
        ask("ann", false).await;
    }
    let data = gw.dir.clone();
    gw.stop_keeping_files().await;
    Instance {
        data,
        config,
        witness,
        erase_seq,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_cut_wipe_and_silent_erasure_fails_verification() {
    let original = served_instance().await;

    // Untouched: it verifies, with the witness, and says which hash to keep.
    let clean = original.copy("clean");
    let (ok, out) = clean.verify(&[]);
    assert!(ok, "{out}");
    assert!(out.contains("and the witness (to record"), "{out}");
    let hash = newest_hash(&out);
    let witness_copy = clean.data.parent().unwrap().join("auditor-copy.jsonl");
    std::fs::copy(&clean.witness, &witness_copy).unwrap();
    let against_file = witness_copy.to_str().unwrap().to_string();
    assert!(clean.verify(&["--against", &against_file]).0);
    assert!(clean.verify(&["--against", &hash]).0);
    let (ok, out) = clean.verify(&["--against", &"ab".repeat(32)]);
    assert!(!ok && out.contains("FAIL Diverged"), "{out}");

    // Records cut under a signed checkpoint, and the head removed.
    let cut = original.copy("cut");
    let newest = cut.scalar("SELECT MAX(last_seq) FROM checkpoints");
    let inside = newest - 1;
    cut.audit()
        .execute("DELETE FROM records WHERE seq >= ?1", [inside as i64])
        .unwrap();
    cut.state().execute("DELETE FROM audit_head", []).unwrap();
    cut.fails_with(&[], &format!("Truncated at {inside}"));

    // Every checkpoint deleted; then the head too.
    let bare = original.copy("no-checkpoints");
    bare.audit().execute("DELETE FROM checkpoints", []).unwrap();
    bare.fails_with(&[], &format!("CheckpointMissing at {newest}"));
    bare.state().execute("DELETE FROM audit_head", []).unwrap();
    bare.fails_with(&[], "HeadMissing");

    // The log removed entirely, and the head with it.
    let wiped = original.copy("wiped");
    for file in ["audit.db", "audit.db-wal", "audit.db-shm"] {
        let _ = std::fs::remove_file(wiped.data.join(file));
    }
    wiped.state().execute("DELETE FROM audit_head", []).unwrap();
    wiped.fails_with(&[], "Wiped at 1");
    assert!(
        !wiped.data.join("audit.db").exists(),
        "verify left it absent"
    );

    // The witness file removed: the log has checkpoints it should hold.
    let unwitnessed = original.copy("witness-gone");
    std::fs::remove_file(&unwitnessed.witness).unwrap();
    unwitnessed.fails_with(&[], "WitnessUnreadable");

    // A payload deleted without an erasure or retention record.
    let nulled = original.copy("payload");
    let seq = nulled.scalar(
        "SELECT MIN(seq) FROM records WHERE request_payload IS NOT NULL AND json_extract(body, '$.user_id') = 'ann'",
    );
    nulled
        .audit()
        .execute(
            "UPDATE records SET request_payload = NULL WHERE seq = ?1",
            [seq as i64],
        )
        .unwrap();
    nulled.fails_with(&[], &format!("PayloadMissing at {seq}"));

    // Ann's data key deleted, or its sealed key emptied, without an erase record; Bob's
    // (erased) stays explained.
    let first_of_ann = original.scalar(
        "SELECT MIN(seq) FROM records WHERE json_extract(body, '$.user_id') = 'ann' AND json_extract(body, '$.payload_key') IS NOT NULL",
    );
    let key_gone = format!("DataKeyMissing at {first_of_ann}");
    let edits = [
        (
            "key-deleted",
            "DELETE FROM data_keys WHERE subject LIKE 'user:%:ann'",
            key_gone.as_str(),
        ),
        (
            "key-nulled",
            "UPDATE data_keys SET sealed = NULL WHERE subject LIKE 'user:%:ann'",
            key_gone.as_str(),
        ),
        // Columns of the wrong type name the record instead of stopping verification.
        (
            "mac-text",
            "UPDATE records SET mac = hex(mac) WHERE seq = 3",
            "Altered at 3",
        ),
        (
            "body-blob",
            "UPDATE records SET body = CAST(body AS BLOB) WHERE seq = 3",
            "Altered at 3",
        ),
    ];
    for (tag, sql, expected) in edits {
        let copy = original.copy(tag);
        copy.audit().execute(sql, []).unwrap();
        copy.fails_with(&[], expected);
    }
    let _ = std::fs::remove_dir_all(&original.data);
}

/// Root holds the chain key: records cut at a checkpoint boundary, later checkpoints
/// deleted and the head rewritten with the key leave nothing local to see. The witness
/// file (configured, or a copy given with `--against`) and a written-down hash see it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_with_forged_anchors_is_caught_by_the_witness_alone() {
    let original = served_instance().await;
    let (ok, out) = original.copy("hash").verify(&[]);
    assert!(ok, "{out}");
    let hash = newest_hash(&out);

    let forged = original.copy("forged");
    let newest = forged.scalar("SELECT MAX(last_seq) FROM checkpoints");
    // The last boundary after the erasure (so the erase record and its keys stay), below
    // the newest checkpoint.
    let cut = forged.scalar(&format!(
        "SELECT MAX(last_seq) FROM checkpoints WHERE last_seq >= {} AND last_seq < {newest}",
        forged.erase_seq
    ));
    assert!(cut >= forged.erase_seq && cut < newest);
    let audit = forged.audit();
    audit
        .execute_batch(&format!(
            "DELETE FROM records WHERE seq > {cut}; DELETE FROM checkpoints WHERE last_seq > {cut};"
        ))
        .unwrap();
    let mac: Vec<u8> = audit
        .query_row(
            "SELECT mac FROM records WHERE seq = ?1",
            [cut as i64],
            |r| r.get(0),
        )
        .unwrap();
    let checkpoint = checkpoint_at(&audit, cut).unwrap().unwrap();
    let instance = InstanceKey::read(&forged.data.join("instance.key")).unwrap();
    let state = forged.state();
    state.execute("DELETE FROM audit_head", []).unwrap();
    let head = Head {
        seq: cut,
        mac,
        checkpoint: Some((cut, checkpoint.hash())),
    };
    anchor::write(&state, &chain_key(&instance), &head, None).unwrap();

    forged.fails_with(&[], &format!("Truncated at {}", cut + 1));

    // Without the witness configured, the local checks are fooled — the point of
    // keeping a checkpoint off the box.
    let text = std::fs::read_to_string(&forged.config).unwrap();
    let unwitnessed: String = text
        .lines()
        .filter(|l| !l.contains("witness_file"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&forged.config, unwitnessed).unwrap();
    let (ok, out) = forged.verify(&[]);
    assert!(ok, "only a witness can tell: {out}");
    let kept = forged.witness.to_str().unwrap().to_string();
    forged.fails_with(&["--against", &kept], &format!("Truncated at {}", cut + 1));
    forged.fails_with(&["--against", &hash], "Diverged");
    assert!(Path::new(&kept).exists());
    let _ = std::fs::remove_dir_all(&original.data);
}

/// A live instance verifies: the anchors are read first, the log in one snapshot, and
/// the witness file only as long as it was before the log was read, so a gateway
/// appending and checkpointing meanwhile does not make the log look cut. (The windows
/// are narrow: this checks that verification of a busy instance passes, it does not
/// reliably hit each window.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_passes_while_the_gateway_appends_and_checkpoints() {
    let witness_dir = common::scratch_dir("tamper-live-witness");
    let extra = common::Extra {
        top: format!(
            "audit:\n  checkpoint_every_records: 2\n  witness_file: {}\n",
            witness_dir.join("w.jsonl").display()
        ),
        ..common::Extra::default()
    };
    let gw = Gateway::start_full("", &[], &extra).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = tokio::spawn({
        let (url, key, stop) = (gw.url("/v1/chat/completions"), gw.key.clone(), stop.clone());
        async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let body = serde_json::from_slice(&chat(false)).unwrap();
                assert_eq!(common::post(&url, &key, &body).await.status, 200);
            }
        }
    });
    let config = gw.loaded.path.to_str().unwrap().to_string();
    for _ in 0..4 {
        let config = config.clone();
        let (ok, out, err) = tokio::task::spawn_blocking(move || {
            common::run_airlock(&["audit", "verify", "--config", &config])
        })
        .await
        .unwrap();
        assert!(ok, "{out}{err}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    load.await.unwrap();
    gw.stop().await;
    let _ = std::fs::remove_dir_all(&witness_dir);
}
