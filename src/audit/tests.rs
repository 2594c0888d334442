//! Tamper tests: a real log in real SQLite files, mutated once per class, and
//! verification naming the first bad record and what happened to it.

use super::keys;
use super::log::{AuditLog, CheckpointPolicy, read_data_key};
use super::proof;
use super::record::{AuditEvent, AuditRecord, kind};
use super::verify::{Problem, Report, instance_keys, verify};
use crate::store::instance_key::InstanceKey;
use rusqlite::{Connection, params};
use std::path::PathBuf;
use std::time::Duration;

struct Fixture {
    dir: PathBuf,
    instance: InstanceKey,
}

impl Fixture {
    /// Ten records in batches of 3, 4 and 3, checkpointed once four are uncovered (so
    /// records 1..7; 8..10 only with `final_checkpoint`).
    fn new(tag: &str, final_checkpoint: bool) -> Self {
        let dir = crate::store::scratch_dir(&format!("audit-{tag}"));
        let instance = InstanceKey::generate().unwrap();
        let mut log = AuditLog::open(
            &dir.join("audit.db"),
            &dir.join("airlock.db"),
            &instance,
            CheckpointPolicy {
                every_records: 4,
                every: Duration::from_secs(3600),
            },
            1024,
        )
        .unwrap();
        for batch in [3, 4, 3] {
            let events = (0..batch)
                .map(|i| AuditEvent {
                    record: AuditRecord {
                        kind: kind::LLM_REQUEST.into(),
                        tenant_id: Some("ten_a".into()),
                        user_id: (i % 2 == 0).then(|| "alice".to_string()),
                        model: Some("chat".into()),
                        status: Some(200),
                        ..AuditRecord::default()
                    },
                    request_payload: Some(format!("prompt {i}").into_bytes().into()),
                    response_payload: Some(vec![b'x'; 2000].into()),
                })
                .collect();
            log.append(events).unwrap();
        }
        if final_checkpoint {
            log.checkpoint().unwrap();
        }
        Self { dir, instance }
    }

    fn audit(&self) -> Connection {
        Connection::open(self.dir.join("audit.db")).unwrap()
    }

    fn verify(&self) -> Report {
        self.verify_range(None, None)
    }

    fn verify_range(&self, from: Option<u64>, to: Option<u64>) -> Report {
        let state = Connection::open(self.dir.join("airlock.db")).unwrap();
        let (key, public) = instance_keys(&self.instance);
        verify(&self.audit(), &state, &key, &public, from, to).unwrap()
    }

    /// The first finding after `mutate`.
    fn after(&self, mutate: &str) -> (Problem, u64) {
        self.audit().execute_batch(mutate).unwrap();
        let report = self.verify();
        let first = report
            .findings
            .first()
            .unwrap_or_else(|| panic!("not detected: {mutate}"));
        (first.problem, first.seq)
    }
}

#[test]
fn an_untouched_log_verifies_and_payloads_open_until_erased() {
    let fixture = Fixture::new("clean", true);
    let report = fixture.verify();
    assert!(report.ok(), "{:?}", report.findings);
    // Checkpoints come at batch ends: after 7 records (3 + 4), then the last 3.
    assert_eq!((report.records, report.checkpoints), (10, 2));

    let audit = fixture.audit();
    let (body, request): (String, Vec<u8>) = audit
        .query_row(
            "SELECT body, request_payload FROM records WHERE seq = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let record: AuditRecord = serde_json::from_str(&body).unwrap();
    assert!(!body.contains("prompt 0"), "payloads are stored encrypted");
    assert!(
        record.payload_truncated,
        "the 2000-byte response was cut to 1024"
    );
    let key_id = record.payload_key.clone().unwrap();
    let data_key = read_data_key(&audit, &fixture.instance.seal_key, &key_id)
        .unwrap()
        .unwrap();
    let prompt = keys::open_payload(&data_key, &key_id, &request);
    assert_eq!(prompt.unwrap(), b"prompt 0");
    assert_eq!(
        record.request_payload_sha256.unwrap(),
        keys::payload_digest(&request)
    );

    // Crypto-shredding: the key goes, the chain stays whole.
    audit
        .execute(
            "UPDATE data_keys SET sealed = NULL, destroyed_at = 1 WHERE id = ?1",
            params![key_id],
        )
        .unwrap();
    assert!(fixture.verify().ok());
}

#[test]
fn every_kind_of_tampering_is_named() {
    let cases: [(&str, &str, (Problem, u64)); 7] = [
        ("edit", "UPDATE records SET body = replace(body, '\"status\":200', '\"status\":201') WHERE seq = 5",
         (Problem::Altered, 5)),
        ("column", "UPDATE records SET tenant_id = 'ten_b' WHERE seq = 6", (Problem::Altered, 6)),
        ("delete", "DELETE FROM records WHERE seq = 5", (Problem::Deleted, 5)),
        ("delete-renumber",
         "DELETE FROM records WHERE seq = 5; UPDATE records SET seq = seq - 1 WHERE seq > 5",
         (Problem::Deleted, 5)),
        ("insert",
         "UPDATE records SET seq = seq + 100 WHERE seq >= 5; UPDATE records SET seq = seq - 99 WHERE seq >= 105;
          INSERT INTO records (seq, ts_ms, kind, tenant_id, body, mac)
          SELECT 5, ts_ms, kind, tenant_id, replace(body, '\"model\":\"chat\"', '\"model\":\"evil\"'), mac
          FROM records WHERE seq = 6",
         (Problem::Inserted, 5)),
        ("reorder",
         "UPDATE records SET seq = 100 WHERE seq = 5; UPDATE records SET seq = 5 WHERE seq = 6;
          UPDATE records SET seq = 6 WHERE seq = 100",
         (Problem::Reordered, 5)),
        ("truncate", "DELETE FROM records WHERE seq > 8", (Problem::Truncated, 9)),
    ];
    for (tag, mutate, expected) in cases {
        let fixture = Fixture::new(tag, false);
        assert_eq!(fixture.after(mutate), expected, "{tag}");
    }
}

#[test]
fn checkpoint_tampering_is_named() {
    let fixture = Fixture::new("checkpoint", true);
    let other = InstanceKey::generate().unwrap();
    let forged = hex_signature(&other, "anything");
    let (problem, seq) = fixture.after(&format!(
        "UPDATE checkpoints SET signature = '{forged}' WHERE last_seq = 7"
    ));
    assert_eq!((problem, seq), (Problem::CheckpointSignature, 7));

    let fixture = Fixture::new("checkpoint-root", true);
    let (problem, _) =
        fixture.after("UPDATE checkpoints SET root = zeroblob(32) WHERE last_seq = 7");
    assert!(matches!(
        problem,
        Problem::CheckpointRoot | Problem::CheckpointSignature
    ));
}

fn hex_signature(instance: &InstanceKey, text: &str) -> String {
    let pair = ring::signature::Ed25519KeyPair::from_pkcs8(&instance.signing_key_pkcs8).unwrap();
    crate::store::instance_key::hex(pair.sign(text.as_bytes()).as_ref())
}

#[test]
fn a_range_cutting_into_checkpoints_widens_to_them() {
    let log = Fixture::new("range", true);
    let report = log.verify_range(Some(3), Some(5));
    assert!(report.ok(), "{:?}", report.findings);
    assert_eq!((report.first_seq, report.last_seq), (Some(1), Some(7)));
    let _ = std::fs::remove_dir_all(&log.dir);
}

#[test]
fn records_export_with_proofs_that_verify_without_the_log() {
    let fixture = Fixture::new("proof", false);
    let public = fixture.instance.public_key_hex();
    let audit = fixture.audit();
    for seq in 1..=7 {
        let exported = proof::export(&audit, seq, &public).unwrap();
        assert_eq!(exported.leaf_index, seq - 1);
        let file = serde_json::to_vec(&exported).unwrap();
        let checked = proof::check(&file, Some(&public));
        assert!(checked.report.ok(), "{seq}: {:?}", checked.report);
        assert_eq!(checked.record.unwrap().seq, seq);
    }
    // Records 8..10 are after the last checkpoint; 11 does not exist.
    assert!(matches!(
        proof::export(&audit, 9, &public),
        Err(proof::ExportError::NotCheckpointed { seq: 9, covered: 7 })
    ));
    assert!(matches!(
        proof::export(&audit, 11, &public),
        Err(proof::ExportError::NoRecord { seq: 11, last: 10 })
    ));
    // A log altered under a checkpoint gives no proof of it.
    audit
        .execute_batch("UPDATE records SET body = replace(body, 'chat', 'chaT') WHERE seq = 2")
        .unwrap();
    let error = proof::export(&audit, 5, &public).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("no longer match its signed root")
    );
}
