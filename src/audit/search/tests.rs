//! The index against a real log: payload retention deletes a tenant's old payloads,
//! records the sweep, and the indexer drops exactly those documents' text — others'
//! stay searchable, and the log still verifies; a damaged index is rebuilt.

use super::indexer::Indexer;
use super::partitions::Partitions;
use super::personal::PersonalData;
use super::query::{SearchRequest, search};
use crate::audit::log::{AuditLog, CheckpointPolicy, open_audit_db};
use crate::audit::record::{AuditEvent, AuditRecord, kind};
use crate::audit::values::ValueKeys;
use crate::audit::verify::{instance_keys, verify};
use crate::store::instance_key::InstanceKey;
use std::time::Duration;

const DAY_MS: i64 = 86_400_000;

fn event(tenant: &str, ts_ms: i64, text: &str) -> AuditEvent {
    AuditEvent {
        record: AuditRecord {
            ts_ms,
            kind: kind::LLM_REQUEST.into(),
            tenant_id: Some(tenant.into()),
            status: Some(200),
            ..AuditRecord::default()
        },
        request_payload: Some(
            format!(r#"{{"messages":[{{"content":"{text}"}}]}}"#)
                .into_bytes()
                .into(),
        ),
        response_payload: None,
    }
}

fn hits(dir: &std::path::Path, query: &str) -> u64 {
    let mut parts = Partitions::open(dir).unwrap();
    let request = SearchRequest {
        query: query.into(),
        limit: 10,
        ..SearchRequest::default()
    };
    let keys = ValueKeys::derive(&[0u8; 32]);
    search(&mut parts, &request, &keys).unwrap().total
}

/// The log in `dir` (its state database `airlock.db` beside it).
fn open_log(dir: &std::path::Path, instance: &InstanceKey) -> AuditLog {
    let policy = CheckpointPolicy {
        every_records: 100,
        every: Duration::from_secs(3600),
    };
    AuditLog::open(
        &dir.join("audit.db"),
        &dir.join("airlock.db"),
        instance,
        policy,
        4096,
    )
    .unwrap()
}

/// The log in `dir`, indexed in `dir/audit-index`: a connection to it, and the indexer.
fn index_log(dir: &std::path::Path, instance: &InstanceKey) -> (rusqlite::Connection, Indexer) {
    let audit = open_audit_db(&dir.join("audit.db")).unwrap();
    let mut indexer = Indexer::open(&dir.join("audit-index"), instance.seal_key)
        .unwrap()
        .unwrap();
    indexer
        .catch_up(&audit, &mut personal(), &mut |_, _| {})
        .unwrap();
    (audit, indexer)
}

/// Recognizers only: fast, and enough for these tests.
fn personal() -> PersonalData {
    PersonalData::new(&[0u8; 32], None, false)
}

#[test]
fn retention_deletes_old_payloads_and_their_words_only() {
    let dir = crate::store::scratch_dir("audit-retention");
    let instance = InstanceKey::generate().unwrap();
    let state_db = dir.join("airlock.db");
    let state = crate::store::open(&state_db, crate::tenancy::STATE_MIGRATIONS).unwrap();
    state
        .execute_batch(
            "INSERT INTO tenants (id, name, created_at) VALUES ('ten_a', 'a', 0), ('ten_b', 'b', 0);",
        )
        .unwrap();
    let mut log = open_log(&dir, &instance);
    let now = crate::store::now_unix_ms();
    log.append(vec![
        event("ten_a", now - 10 * DAY_MS, "ancient alpha"),
        event("ten_b", now - 10 * DAY_MS, "ancient beta"),
        event("ten_a", now, "recent alpha"),
    ])
    .unwrap();
    let index_dir = dir.join("audit-index");
    let (audit, mut indexer) = index_log(&dir, &instance);
    assert_eq!(hits(&index_dir, "ancient"), 2);

    // Tenant a keeps payloads 5 days, b for ever.
    let expired = log
        .apply_retention(|tenant| if tenant == "a" { 5 } else { 0 })
        .unwrap();
    assert_eq!(expired, 1);
    assert_eq!(
        log.apply_retention(|_| 5).unwrap(),
        1,
        "b's now; a's already gone"
    );
    indexer
        .catch_up(&audit, &mut personal(), &mut |_, _| {})
        .unwrap();
    assert_eq!(hits(&index_dir, "ancient"), 0);
    assert_eq!(
        hits(&index_dir, "alpha"),
        1,
        "a's recent record keeps its text"
    );
    assert_eq!(hits(&index_dir, "kind:audit.retention"), 2);
    let payloads: Vec<bool> = audit
        .prepare("SELECT request_payload IS NOT NULL FROM records WHERE kind = 'llm.request' ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(payloads, [false, false, true]);

    // A damaged index (torn files after a power loss) is rebuilt from the log.
    drop(indexer);
    for day in std::fs::read_dir(&index_dir).unwrap() {
        let day = day.unwrap().path();
        if day.is_dir() {
            std::fs::write(day.join("meta.json"), b"{ torn").unwrap();
        }
    }
    let mut indexer = Indexer::open(&index_dir, instance.seal_key)
        .unwrap()
        .unwrap();
    assert_eq!(indexer.watermark(), 0);
    indexer
        .catch_up(&audit, &mut personal(), &mut |_, _| {})
        .unwrap();
    assert_eq!(hits(&index_dir, "alpha"), 1);
    assert_eq!(
        hits(&index_dir, "ancient"),
        0,
        "rebuilt without the expired text"
    );

    log.checkpoint().unwrap();
    let (key, public) = instance_keys(&instance);
    let report = verify(&audit, &state, &key, &public, None, None).unwrap();
    assert!(report.ok(), "{:?}", report.findings);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_deleted_index_is_noticed_and_rebuilt_from_the_log() {
    let dir = crate::store::scratch_dir("audit-index-deleted");
    let instance = InstanceKey::generate().unwrap();
    let mut log = open_log(&dir, &instance);
    let now = crate::store::now_unix_ms();
    log.append(vec![
        event("ten_a", now, "zeppelin"),
        event("ten_a", now, "zeppelin"),
    ])
    .unwrap();
    let index_dir = dir.join("audit-index");
    let (audit, indexer) = index_log(&dir, &instance);
    assert!(!indexer.vanished());
    assert_eq!(hits(&index_dir, "zeppelin"), 2);

    std::fs::remove_dir_all(&index_dir).unwrap();
    assert!(
        indexer.vanished(),
        "the running indexer sees its directory gone"
    );
    drop(indexer);
    let mut indexer = Indexer::open(&index_dir, instance.seal_key)
        .unwrap()
        .unwrap();
    assert!(!indexer.vanished());
    assert_eq!(indexer.watermark(), 0);
    assert_eq!(
        indexer
            .catch_up(&audit, &mut personal(), &mut |_, _| {})
            .unwrap(),
        2
    );
    assert_eq!(hits(&index_dir, "zeppelin"), 2);
    let _ = std::fs::remove_dir_all(&dir);
}
