//! Tamper tests: a real log in real SQLite files, mutated once per class, and
//! verification naming the first bad record and what happened to it.

use super::keys;
use super::log::{AuditLog, CheckpointPolicy, read_data_key};
use super::proof;
use super::record::{AuditEvent, AuditRecord, kind};
use super::verify::{Problem, Report, instance_keys, verify};
use super::witness::{self, External, WitnessFile};
use crate::store::instance_key::{InstanceKey, hex};
use rusqlite::{Connection, params};
use std::path::PathBuf;
use std::time::Duration;

struct Fixture {
    dir: PathBuf,
    instance: InstanceKey,
}

/// An LLM request record of tenant `ten_a`, by alice or by no one, with payloads.
fn request(alice: bool) -> AuditEvent {
    AuditEvent {
        record: AuditRecord {
            kind: kind::LLM_REQUEST.into(),
            tenant_id: Some("ten_a".into()),
            user_id: alice.then(|| "alice".to_string()),
            model: Some("chat".into()),
            status: Some(200),
            ..AuditRecord::default()
        },
        request_payload: Some(b"prompt".to_vec().into()),
        response_payload: Some(vec![b'x'; 2000].into()),
    }
}

impl Fixture {
    /// Ten records in batches of 3, 4 and 3, checkpointed once four are uncovered (so
    /// records 1..7; 8..10 only with `final_checkpoint`).
    fn new(tag: &str, final_checkpoint: bool) -> Self {
        let dir = crate::store::scratch_dir(&format!("audit-{tag}"));
        let fixture = Self {
            dir,
            instance: InstanceKey::generate().unwrap(),
        };
        let mut log = fixture.log();
        for batch in [3, 4, 3] {
            log.append((0..batch).map(|i| request(i % 2 == 0)).collect())
                .unwrap();
        }
        if final_checkpoint {
            log.checkpoint().unwrap();
        }
        fixture
    }

    fn log(&self) -> AuditLog {
        AuditLog::open(
            &self.dir.join("audit.db"),
            &self.dir.join("airlock.db"),
            &self.instance,
            CheckpointPolicy {
                every_records: 4,
                every: Duration::from_secs(3600),
            },
            1024,
        )
        .unwrap()
    }

    fn audit(&self) -> Connection {
        Connection::open(self.dir.join("audit.db")).unwrap()
    }

    fn state(&self) -> Connection {
        Connection::open(self.dir.join("airlock.db")).unwrap()
    }

    fn verify(&self) -> Report {
        self.verify_range(None, None)
    }

    fn verify_range(&self, from: Option<u64>, to: Option<u64>) -> Report {
        let (key, public) = instance_keys(&self.instance);
        verify(&self.audit(), &self.state(), &key, &public, from, to).unwrap()
    }

    /// The first finding after `mutate` (on the log, then `state_mutate` on the state
    /// database).
    fn after_both(&self, mutate: &str, state_mutate: &str) -> (Problem, u64) {
        self.audit().execute_batch(mutate).unwrap();
        self.state().execute_batch(state_mutate).unwrap();
        let report = self.verify();
        let first = report
            .findings
            .first()
            .unwrap_or_else(|| panic!("not detected: {mutate} / {state_mutate}"));
        (first.problem, first.seq)
    }

    fn after(&self, mutate: &str) -> (Problem, u64) {
        self.after_both(mutate, "")
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn an_untouched_log_verifies_and_payloads_open_until_erased() {
    let fixture = Fixture::new("clean", true);
    let report = fixture.verify();
    assert!(report.ok(), "{:?}", report.findings);
    // Checkpoints come at batch ends: after 7 records (3 + 4), then the last 3.
    assert_eq!((report.records, report.checkpoints), (10, 2));
    assert_eq!(report.newest_checkpoint.unwrap().last_seq, 10);

    let audit = fixture.audit();
    let (body, request): (String, Vec<u8>) = audit
        .query_row(
            "SELECT body, request_payload FROM records WHERE seq = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let record: AuditRecord = serde_json::from_str(&body).unwrap();
    assert!(!body.contains("prompt"), "payloads are stored encrypted");
    assert!(
        record.payload_truncated,
        "the 2000-byte response was cut to 1024"
    );
    let key_id = record.payload_key.clone().unwrap();
    let data_key = read_data_key(&audit, &fixture.instance.seal_key, &key_id)
        .unwrap()
        .unwrap();
    let prompt = keys::open_payload(&data_key, &key_id, &request);
    assert_eq!(prompt.unwrap(), b"prompt");
    assert_eq!(
        record.request_payload_sha256.unwrap(),
        keys::payload_digest(&request)
    );

    // Crypto-shredding: the key goes, the chain stays whole, the erasure says so.
    let erasure = fixture.log().erase_user("ten_a", "alice", "test").unwrap();
    assert_eq!(erasure.keys, vec![key_id.clone()]);
    assert!(
        read_data_key(&audit, &fixture.instance.seal_key, &key_id)
            .unwrap()
            .is_none()
    );
    let report = fixture.verify();
    assert!(report.ok(), "{:?}", report.findings);
}

#[test]
fn every_kind_of_tampering_is_named() {
    let cases: [(&str, &str, (Problem, u64)); 12] = [
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
        // Another record's sealed payload put in place of this one's: the chain still
        // holds, the digest the record names does not.
        ("payload-swap",
         "UPDATE records SET response_payload = (SELECT response_payload FROM records WHERE seq = 2)
          WHERE seq = 3",
         (Problem::Altered, 3)),
        ("payload-null", "UPDATE records SET request_payload = NULL WHERE seq = 4",
         (Problem::PayloadMissing, 4)),
        ("mac-as-text", "UPDATE records SET mac = hex(mac) WHERE seq = 5", (Problem::Altered, 5)),
        ("body-as-blob", "UPDATE records SET body = CAST(body AS BLOB) WHERE seq = 6",
         (Problem::Altered, 6)),
        ("time-as-text", "UPDATE records SET ts_ms = 'noon' WHERE seq = 2", (Problem::Altered, 2)),
    ];
    for (tag, mutate, expected) in cases {
        let fixture = Fixture::new(tag, false);
        assert_eq!(fixture.after(mutate), expected, "{tag}");
    }
}

#[test]
fn payload_substitution_is_named_even_when_the_chain_holds() {
    let fixture = Fixture::new("payload-swap-detail", true);
    fixture
        .audit()
        .execute_batch(
            "UPDATE records SET request_payload = (SELECT request_payload FROM records WHERE seq = 1)
             WHERE seq = 3",
        )
        .unwrap();
    let report = fixture.verify();
    let first = &report.findings[0];
    assert_eq!((first.problem, first.seq), (Problem::Altered, 3));
    assert!(
        first
            .detail
            .contains("stored request payload is not the one it names"),
        "{}",
        first.detail
    );
}

#[test]
fn cuts_below_checkpoints_and_removed_anchors_are_named() {
    let cases: [(&str, &str, &str, (Problem, u64)); 8] = [
        // A signed checkpoint (1..7) still covers records 6 and 7.
        (
            "cut-under-checkpoint",
            "DELETE FROM records WHERE seq > 5; DELETE FROM checkpoints WHERE last_seq = 10",
            "DELETE FROM audit_head",
            (Problem::Truncated, 6),
        ),
        (
            "cut-at-checkpoint",
            "DELETE FROM records WHERE seq > 7; DELETE FROM checkpoints WHERE last_seq = 10",
            "DELETE FROM audit_head",
            (Problem::HeadMissing, 8),
        ),
        (
            "no-checkpoints",
            "DELETE FROM checkpoints",
            "",
            (Problem::CheckpointMissing, 10),
        ),
        (
            "no-checkpoints-no-head",
            "DELETE FROM checkpoints",
            "DELETE FROM audit_head",
            (Problem::HeadMissing, 11),
        ),
        (
            "first-checkpoint-gone",
            "DELETE FROM checkpoints WHERE last_seq = 7",
            "",
            (Problem::CheckpointMissing, 7),
        ),
        (
            "wiped",
            "DELETE FROM records; DELETE FROM checkpoints; DELETE FROM data_keys",
            "DELETE FROM audit_head",
            (Problem::Wiped, 1),
        ),
        (
            "data-key-deleted",
            "DELETE FROM data_keys WHERE subject = 'tenant:ten_a'",
            "",
            (Problem::DataKeyMissing, 2),
        ),
        (
            "data-key-nulled",
            "UPDATE data_keys SET sealed = NULL WHERE subject = 'tenant:ten_a'",
            "",
            (Problem::DataKeyMissing, 2),
        ),
    ];
    for (tag, mutate, state_mutate, expected) in cases {
        let fixture = Fixture::new(tag, true);
        assert!(fixture.verify().ok(), "{tag}: clean first");
        assert_eq!(fixture.after_both(mutate, state_mutate), expected, "{tag}");
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

    let fixture = Fixture::new("checkpoint-type", true);
    let (problem, seq) =
        fixture.after("UPDATE checkpoints SET root = hex(root) WHERE last_seq = 7");
    assert_eq!((problem, seq), (Problem::Altered, 7));
}

/// A checkpoint re-signed with the instance key itself (root and signature valid) that
/// does not name the checkpoint before it: only the link check sees it.
#[test]
fn a_checkpoint_signed_but_unlinked_is_named() {
    let fixture = Fixture::new("checkpoint-link", true);
    let mut checkpoint = super::verify::checkpoint_at(&fixture.audit(), 10)
        .unwrap()
        .unwrap();
    checkpoint.previous = [7u8; 32];
    checkpoint.signature = hex_signature(&fixture.instance, &checkpoint.statement());
    fixture
        .audit()
        .execute(
            "UPDATE checkpoints SET previous = ?1, signature = ?2 WHERE last_seq = 10",
            params![checkpoint.previous.as_slice(), checkpoint.signature],
        )
        .unwrap();
    let report = fixture.verify();
    let first = &report.findings[0];
    assert_eq!(
        (first.problem, first.seq),
        (Problem::CheckpointChain, 10),
        "{report:?}"
    );
}

fn hex_signature(instance: &InstanceKey, text: &str) -> String {
    let pair = ring::signature::Ed25519KeyPair::from_pkcs8(&instance.signing_key_pkcs8).unwrap();
    hex(pair.sign(text.as_bytes()).as_ref())
}

/// Appends the record of an erasure by value that removed the payloads of `records`.
fn erased_by_value(log: &mut AuditLog, records: Vec<u64>) {
    log.append(vec![AuditEvent {
        record: AuditRecord {
            kind: kind::AUDIT_ERASE.into(),
            tenant_id: Some("ten_a".into()),
            erased_records: records,
            ..AuditRecord::default()
        },
        ..AuditEvent::default()
    }])
    .unwrap();
}

#[test]
fn erasure_and_retention_records_explain_missing_payloads_and_nothing_else_does() {
    // Retention: the tenant's payloads before the cutoff go, a record says so.
    let fixture = Fixture::new("absent-retention", true);
    let mut log = fixture.log();
    assert_eq!(log.expire_payloads("ten_a", i64::MAX, 100).unwrap(), 10);
    assert!(fixture.verify().ok(), "{:?}", fixture.verify().findings);

    // Erasure by a value: the record lists the records whose payloads it removed.
    let fixture = Fixture::new("absent-by-value", true);
    let mut log = fixture.log();
    fixture
        .audit()
        .execute_batch("UPDATE records SET request_payload = NULL, response_payload = NULL WHERE seq IN (2, 5)")
        .unwrap();
    let first = fixture.verify().findings.remove(0);
    assert_eq!((first.problem, first.seq), (Problem::PayloadMissing, 2));
    erased_by_value(&mut log, vec![2, 5]);
    assert!(fixture.verify().ok(), "{:?}", fixture.verify().findings);

    // An explanation counts only for records before it, and only for its own tenant.
    let fixture = Fixture::new("absent-order", true);
    let mut log = fixture.log();
    erased_by_value(&mut log, vec![12]);
    let mut retention = request(false);
    retention.record.tenant_id = Some("ten_b".into());
    log.append(vec![request(false), retention]).unwrap();
    log.expire_payloads("ten_b", i64::MAX, 100).unwrap();
    fixture
        .audit()
        .execute_batch("UPDATE records SET response_payload = NULL WHERE seq IN (3, 12)")
        .unwrap();
    let findings = fixture.verify().findings;
    let named: Vec<(Problem, u64)> = findings.iter().map(|f| (f.problem, f.seq)).collect();
    assert_eq!(
        named,
        vec![(Problem::PayloadMissing, 3), (Problem::PayloadMissing, 12)],
        "{findings:?}"
    );
}

#[test]
fn a_key_destroyed_without_an_erase_record_is_named() {
    let fixture = Fixture::new("key-destroyed", true);
    fixture
        .audit()
        .execute(
            "UPDATE data_keys SET sealed = NULL, destroyed_at = 1 WHERE subject = 'user:ten_a:alice'",
            [],
        )
        .unwrap();
    let report = fixture.verify();
    let first = &report.findings[0];
    assert_eq!((first.problem, first.seq), (Problem::DataKeyMissing, 1));
    assert!(first.detail.contains("without an audit.erase record"));
}

#[test]
fn a_witness_file_catches_a_cut_that_rewrote_every_local_anchor() {
    let fixture = Fixture::new("witness", false);
    let witness_dir = crate::store::scratch_dir("audit-witness-file");
    let witness_path = witness_dir.join("checkpoints.jsonl");
    let (key, public) = instance_keys(&fixture.instance);
    assert!(matches!(
        WitnessFile::open(&fixture.dir.join("w.jsonl"), &fixture.dir, &public),
        Err(witness::WitnessError::InsideDataDir(_))
    ));
    let mut log = fixture.log();
    // Catches up with the checkpoint made before it was configured, then follows.
    log.add_witness(Box::new(
        WitnessFile::open(&witness_path, &fixture.dir, &public).unwrap(),
    ));
    log.checkpoint().unwrap();
    drop(log);
    let lines = std::fs::read_to_string(&witness_path).unwrap();
    assert_eq!(lines.lines().count(), 2, "{lines}");
    let external = External::File(witness_path.clone());
    let (findings, witnessed) = witness::check(&fixture.audit(), &public, &external).unwrap();
    assert!(findings.is_empty(), "{findings:?}");
    assert_eq!(witnessed, 10);
    let newest = fixture.verify().newest_checkpoint.unwrap();
    let written_down = External::parse(&newest.hash).unwrap();
    assert!(
        witness::check(&fixture.audit(), &public, &written_down)
            .unwrap()
            .0
            .is_empty()
    );

    // Cut below the witnessed checkpoint 8..10, and every local trace of it removed.
    fixture
        .audit()
        .execute_batch(
            "DELETE FROM records WHERE seq > 7; DELETE FROM checkpoints WHERE last_seq = 10",
        )
        .unwrap();
    fixture
        .state()
        .execute_batch("DELETE FROM audit_head; DELETE FROM audit_genesis")
        .unwrap();
    let local = verify(
        &fixture.audit(),
        &fixture.state(),
        &key,
        &public,
        None,
        None,
    )
    .unwrap();
    assert_eq!(
        local.findings.len(),
        1,
        "locally only the missing head shows: {local:?}"
    );
    let (findings, _) = witness::check(&fixture.audit(), &public, &external).unwrap();
    assert_eq!(
        (findings[0].problem, findings[0].seq),
        (Problem::Truncated, 8),
        "{findings:?}"
    );
    let (findings, _) = witness::check(&fixture.audit(), &public, &written_down).unwrap();
    assert_eq!(findings[0].problem, Problem::Diverged, "{findings:?}");

    // A line the instance did not sign is not taken as a checkpoint.
    let mut forged: witness::WitnessLine =
        serde_json::from_str(lines.lines().next().unwrap()).unwrap();
    forged.checkpoint.last_seq = 99;
    forged.hash = forged.checkpoint.hash();
    std::fs::write(&witness_path, serde_json::to_string(&forged).unwrap()).unwrap();
    let (findings, _) = witness::check(&fixture.audit(), &public, &external).unwrap();
    assert_eq!(
        findings[0].problem,
        Problem::WitnessUnreadable,
        "{findings:?}"
    );
    let _ = std::fs::remove_dir_all(&witness_dir);
}

/// A line the instance did not sign, appended by whoever can append to the file, does not
/// make the writer believe the file is ahead and skip checkpoints.
#[test]
fn a_line_appended_by_someone_else_does_not_stop_the_witness() {
    let fixture = Fixture::new("witness-forged", false);
    let witness_dir = crate::store::scratch_dir("audit-forged-witness-file");
    let witness_path = witness_dir.join("checkpoints.jsonl");
    let (_, public) = instance_keys(&fixture.instance);
    let mut log = fixture.log();
    log.add_witness(Box::new(
        WitnessFile::open(&witness_path, &fixture.dir, &public).unwrap(),
    ));
    let first = std::fs::read_to_string(&witness_path).unwrap();
    let mut forged: witness::WitnessLine = serde_json::from_str(first.trim()).unwrap();
    forged.checkpoint.first_seq = 8;
    forged.checkpoint.last_seq = 1_000_000;
    forged.hash = forged.checkpoint.hash();
    let forged = format!("{}\n", serde_json::to_string(&forged).unwrap());
    std::fs::write(&witness_path, format!("{first}{forged}")).unwrap();
    log.checkpoint().unwrap();
    let lines: Vec<witness::WitnessLine> = std::fs::read_to_string(&witness_path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let ranges: Vec<(u64, u64)> = lines
        .iter()
        .map(|l| (l.checkpoint.first_seq, l.checkpoint.last_seq))
        .collect();
    assert_eq!(ranges, vec![(1, 7), (8, 1_000_000), (8, 10)]);
    let _ = std::fs::remove_dir_all(&witness_dir);
}

#[test]
fn a_range_cutting_into_checkpoints_widens_to_them() {
    let log = Fixture::new("range", true);
    let report = log.verify_range(Some(3), Some(5));
    assert!(report.ok(), "{:?}", report.findings);
    assert_eq!((report.first_seq, report.last_seq), (Some(1), Some(7)));
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

/// While appends fail the sink says the log is not writable; the writer keeps trying on
/// its own, and its first record once it can write again is the outage's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_recovers_by_itself_and_records_the_outage() {
    use super::writer::AuditWriter;
    let fixture = Fixture::new("outage", true);
    let audit_db = fixture.dir.join("audit.db");
    let config = crate::config::AuditConfig::default();
    let (sink, writer) =
        AuditWriter::start(fixture.log(), &config, &audit_db, Default::default()).unwrap();
    let full =
        "CREATE TRIGGER full BEFORE INSERT ON records BEGIN SELECT RAISE(FAIL, 'full'); END;";
    fixture.audit().execute_batch(full).unwrap();
    assert!(sink.record(request(false)).await.is_err(), "fails closed");
    assert!(!sink.writable());
    fixture.audit().execute_batch("DROP TRIGGER full").unwrap();
    // No request comes: the writer tries again by itself (every second).
    for _ in 0..100 {
        if sink.writable() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(sink.writable(), "the writer did not recover");
    drop(sink);
    tokio::task::spawn_blocking(move || writer.finish())
        .await
        .unwrap();
    let outage: AuditRecord = serde_json::from_str(
        &fixture
            .audit()
            .query_row(
                "SELECT body FROM records WHERE kind = 'audit.outage'",
                [],
                |r| r.get::<_, String>(0),
            )
            .unwrap(),
    )
    .unwrap();
    let detail = outage.detail.unwrap();
    assert!(detail.ends_with(";unrecorded_events=1"), "{detail}");
    assert!(fixture.verify().ok(), "{:?}", fixture.verify().findings);
}
