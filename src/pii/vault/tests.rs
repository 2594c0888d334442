use super::*;
use crate::pii::action::{ActionPlan, PiiAction};
use crate::pii::restore::restore;
use crate::pii::transform::{apply, tests::finding};

fn config() -> VaultConfig {
    VaultConfig::default()
}

/// The owner of sessions named with the key `key_id`, acting for no one in particular.
fn owner(key_id: &str) -> SessionOwner {
    SessionOwner {
        key_id: key_id.into(),
        user_id: String::new(),
    }
}

fn tokenise(session: &Session, text: &str, values: &[(&str, &'static str)]) -> String {
    let findings: Vec<_> = values.iter().map(|(v, c)| finding(text, v, c)).collect();
    apply(
        text,
        &findings,
        &ActionPlan::new(PiiAction::Tokenise),
        session,
    )
    .text
}

/// A scratch directory, its state database path, and fresh instance key material.
fn scratch(tag: &str) -> (std::path::PathBuf, std::path::PathBuf, InstanceKey) {
    let dir = crate::store::scratch_dir(tag);
    let db = dir.join("airlock.db");
    (dir, db, InstanceKey::generate().unwrap())
}

fn db_bytes(dir: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for name in ["airlock.db", "airlock.db-wal"] {
        all.extend(std::fs::read(dir.join(name)).unwrap_or_default());
    }
    all
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn placeholders_are_stable_per_session_and_independent_across_sessions_and_tenants() {
    let vault = Vault::in_memory(&InstanceKey::generate().unwrap(), config());
    let a1 = vault.session("a", &owner("k1"), "s1").await.unwrap();
    assert_eq!(
        tokenise(&a1, "Ann and Bob", &[("Ann", "PERSON"), ("Bob", "PERSON")]),
        "<PERSON_1> and <PERSON_2>"
    );
    let again = vault.session("a", &owner("k1"), "s1").await.unwrap();
    assert_eq!(
        tokenise(&again, "Bob?", &[("Bob", "PERSON")]),
        "<PERSON_2>?"
    );
    let a2 = vault.session("a", &owner("k1"), "s2").await.unwrap();
    assert_eq!(tokenise(&a2, "Bob?", &[("Bob", "PERSON")]), "<PERSON_1>?");
    let b1 = vault.session("b", &owner("k1"), "s1").await.unwrap();
    assert_eq!(
        restore("<PERSON_1> <PERSON_2>", &b1),
        "<PERSON_1> <PERSON_2>"
    );
    assert_eq!(restore("<PERSON_1> <PERSON_2>", &a1), "Ann Bob");
    assert_eq!(restore("<PERSON_1>", &a2), "Bob");
    let eph = vault.ephemeral("a");
    assert_eq!(eph.id(), None);
    assert_eq!(restore("<PERSON_1>", &eph), "<PERSON_1>");
    assert!(matches!(
        vault.session("a", &owner("k1"), "").await,
        Err(VaultError::BadSessionId)
    ));
    assert!(matches!(
        vault.session("a", &owner("k1"), "x y").await,
        Err(VaultError::BadSessionId)
    ));
    assert!(matches!(
        vault.session("a", &owner("k1"), &"x".repeat(129)).await,
        Err(VaultError::BadSessionId)
    ));
}

#[tokio::test]
async fn sessions_survive_a_restart_sealed_and_load_lazily() {
    let (dir, db, instance) = scratch("vault-restart");
    {
        let (vault, writer) = Vault::open(&db, &instance, config()).unwrap();
        let s = vault
            .session("tenant-a", &owner("k1"), "chat-7")
            .await
            .unwrap();
        let text = "Ann <Lee> at ann.secret@x.io";
        let out = tokenise(
            &s,
            text,
            &[
                ("Ann <Lee>", "PERSON"),
                ("ann.secret@x.io", "EMAIL_ADDRESS"),
            ],
        );
        assert_eq!(out, "<PERSON_1> at <EMAIL_ADDRESS_1>");
        vault.commit(&s).await.unwrap();
        drop((s, vault));
        tokio::task::spawn_blocking(|| writer.finish())
            .await
            .unwrap();
    }
    let bytes = db_bytes(&dir);
    assert!(contains(&bytes, "chat-7"), "the row is there");
    assert!(
        !contains(&bytes, "ann.secret") && !contains(&bytes, "Lee>"),
        "values are sealed"
    );

    let (vault, _writer) = Vault::open(&db, &instance, config()).unwrap();
    let s = vault
        .session("tenant-a", &owner("k1"), "chat-7")
        .await
        .unwrap();
    assert_eq!(
        restore("<PERSON_1>, <EMAIL_ADDRESS_1>", &s),
        "Ann <Lee>, ann.secret@x.io"
    );
    assert_eq!(
        tokenise(&s, "Cy", &[("Cy", "PERSON")]),
        "<PERSON_2>",
        "counters continue"
    );
    assert_eq!(
        tokenise(&s, "Ann <Lee>", &[("Ann <Lee>", "PERSON")]),
        "<PERSON_1>"
    );
    let other = vault
        .session("tenant-b", &owner("k1"), "chat-7")
        .await
        .unwrap();
    assert_eq!(restore("<PERSON_1>", &other), "<PERSON_1>");

    let (wrong_key, _w) = Vault::open(&db, &InstanceKey::generate().unwrap(), config()).unwrap();
    let s = wrong_key
        .session("tenant-a", &owner("k1"), "chat-7")
        .await
        .unwrap();
    assert_eq!(
        restore("<PERSON_1>", &s),
        "<PERSON_1>",
        "another instance's key opens nothing"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn swapped_or_altered_rows_do_not_open() {
    let (dir, db, instance) = scratch("vault-swap");
    let (vault, writer) = Vault::open(&db, &instance, config()).unwrap();
    for (tenant, name) in [("a", "Ann"), ("b", "Bob")] {
        let s = vault.session(tenant, &owner("k1"), "s").await.unwrap();
        tokenise(&s, name, &[(name, "PERSON")]);
        tokenise(&s, "x@y.io", &[("x@y.io", "EMAIL_ADDRESS")]);
        vault.commit(&s).await.unwrap();
    }
    drop(vault);
    writer.finish();
    let conn = crate::store::open(&db, crate::tenancy::STATE_MIGRATIONS).unwrap();
    // Tenant a's PERSON row gets tenant b's ciphertext; a's e-mail row is altered.
    conn.execute(
        "UPDATE pii_vault SET sealed = (SELECT sealed FROM pii_vault WHERE tenant_id = 'b' AND placeholder = '<PERSON_1>')
         WHERE tenant_id = 'a' AND placeholder = '<PERSON_1>'",
        [],
    )
    .unwrap();
    let sealed: Vec<u8> = conn
        .query_row("SELECT sealed FROM pii_vault WHERE tenant_id = 'a' AND placeholder = '<EMAIL_ADDRESS_1>'", [], |r| r.get(0))
        .unwrap();
    let mut altered = sealed.clone();
    let last = altered.len() - 1;
    altered[last] ^= 1;
    conn.execute(
        "UPDATE pii_vault SET sealed = ?1 WHERE tenant_id = 'a' AND placeholder = '<EMAIL_ADDRESS_1>'",
        [altered],
    )
    .unwrap();
    // b's row moved to another placeholder name.
    conn.execute(
        "UPDATE pii_vault SET placeholder = '<PERSON_2>' WHERE tenant_id = 'b' AND placeholder = '<PERSON_1>'",
        [],
    )
    .unwrap();
    drop(conn);

    let (vault, _writer) = Vault::open(&db, &instance, config()).unwrap();
    let a = vault.session("a", &owner("k1"), "s").await.unwrap();
    assert_eq!(
        restore("<PERSON_1> <EMAIL_ADDRESS_1>", &a),
        "<PERSON_1> <EMAIL_ADDRESS_1>"
    );
    let b = vault.session("b", &owner("k1"), "s").await.unwrap();
    assert_eq!(
        restore("<PERSON_1> <PERSON_2> <EMAIL_ADDRESS_1>", &b),
        "<PERSON_1> <PERSON_2> x@y.io"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn expired_sessions_are_gone_from_memory_and_disk() {
    let (dir, db, instance) = scratch("vault-ttl");
    let short = VaultConfig {
        ttl: Duration::from_millis(300),
        ..config()
    };
    let (vault, _writer) = Vault::open(&db, &instance, short).unwrap();
    let s = vault.session("a", &owner("k1"), "s").await.unwrap();
    tokenise(&s, "Ann", &[("Ann", "PERSON")]);
    vault.commit(&s).await.unwrap();
    assert_eq!(
        restore(
            "<PERSON_1>",
            &vault.session("a", &owner("k1"), "s").await.unwrap()
        ),
        "Ann"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let s = vault.session("a", &owner("k1"), "s").await.unwrap();
    assert_eq!(
        restore("<PERSON_1>", &s),
        "<PERSON_1>",
        "expired in memory and not loaded"
    );
    assert_eq!(vault.purge_expired().await.unwrap(), 1);
    let conn = crate::store::open(&db, crate::tenancy::STATE_MIGRATIONS).unwrap();
    let rows: i64 = conn
        .query_row("SELECT COUNT(*) FROM pii_vault", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn erasure_leaves_nothing_in_memory_or_in_the_database_files() {
    let (dir, db, instance) = scratch("vault-erase");
    let (vault, _writer) = Vault::open(&db, &instance, config()).unwrap();
    let mut sessions = Vec::new();
    for (tenant, id) in [
        ("acme", "sess-erase-one"),
        ("acme", "sess-erase-two"),
        ("other", "sess-keep-three"),
    ] {
        let s = vault.session(tenant, &owner("k1"), id).await.unwrap();
        tokenise(&s, "Ann", &[("Ann", "PERSON")]);
        vault.commit(&s).await.unwrap();
        sessions.push(s);
    }
    vault.purge_expired().await.unwrap(); // a barrier: everything before it is written
    assert!(contains(&db_bytes(&dir), "sess-erase-one"));

    assert_eq!(
        vault.erase_session("acme", "sess-erase-one").await.unwrap(),
        1
    );
    assert_eq!(
        restore("<PERSON_1>", &sessions[0]),
        "<PERSON_1>",
        "an in-flight holder sees it erased"
    );
    tokenise(&sessions[0], "Bob", &[("Bob", "PERSON")]);
    vault.commit(&sessions[0]).await.unwrap();
    let bytes = db_bytes(&dir);
    assert!(
        !contains(&bytes, "sess-erase-one"),
        "neither row nor trace on disk"
    );
    assert!(contains(&bytes, "sess-erase-two"));
    let fresh = vault
        .session("acme", &owner("k1"), "sess-erase-one")
        .await
        .unwrap();
    assert_eq!(restore("<PERSON_1>", &fresh), "<PERSON_1>");

    assert_eq!(vault.erase_tenant("acme").await.unwrap(), 1);
    let bytes = db_bytes(&dir);
    assert!(!contains(&bytes, "sess-erase-two"));
    assert!(
        contains(&bytes, "sess-keep-three"),
        "other tenants keep theirs"
    );
    let again = vault
        .session("acme", &owner("k1"), "sess-erase-two")
        .await
        .unwrap();
    assert_eq!(restore("<PERSON_1>", &again), "<PERSON_1>");
    let kept = vault
        .session("other", &owner("k1"), "sess-keep-three")
        .await
        .unwrap();
    assert_eq!(restore("<PERSON_1>", &kept), "Ann");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn memory_is_bounded_and_evicted_sessions_reload_from_disk() {
    let (dir, db, _) = scratch("vault-lru");
    let small = VaultConfig {
        max_sessions: 2,
        ..config()
    };
    let (vault, _writer) = Vault::open(&db, &InstanceKey::generate().unwrap(), small).unwrap();
    for id in ["s1", "s2", "s3"] {
        let s = vault.session("a", &owner("k1"), id).await.unwrap();
        tokenise(&s, id, &[(id, "PERSON")]);
        vault.commit(&s).await.unwrap();
        vault.session("a", &owner("k1"), "s1").await.unwrap(); // keep s1 recently used
    }
    assert_eq!(vault.memory().sessions.len(), 2);
    assert!(!vault.memory().sessions.contains_key(&(
        "a".into(),
        SessionName {
            owner: owner("k1"),
            id: "s2".into()
        }
    )));
    let s2 = vault.session("a", &owner("k1"), "s2").await.unwrap();
    assert_eq!(restore("<PERSON_1>", &s2), "s2");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn vault_futures_and_restorers_can_move_between_runtime_threads() {
    fn send<T: Send>(_: &T) {}
    let vault = Vault::in_memory(&InstanceKey::generate().unwrap(), config());
    let session = vault.ephemeral("a");
    send(&vault.session("a", &owner("k1"), "s"));
    send(&vault.commit(&session));
    send(&vault.erase_session("a", "s"));
    send(&vault.erase_tenant("a"));
    send(&vault.purge_expired());
    send(&crate::pii::Restorer::new(session.clone()));
}

#[tokio::test]
async fn a_session_id_sent_by_another_key_or_person_opens_nothing_of_the_first() {
    let (dir, db, instance) = scratch("vault-owner");
    let alice = SessionOwner {
        key_id: "k1".into(),
        user_id: "alice".into(),
    };
    let bob_same_key = SessionOwner {
        key_id: "k1".into(),
        user_id: "bob".into(),
    };
    let others = [owner("k1"), owner("k2"), bob_same_key];
    {
        let (vault, writer) = Vault::open(&db, &instance, config()).unwrap();
        let first = vault.session("acme", &alice, "conv").await.unwrap();
        assert_eq!(tokenise(&first, "Ann", &[("Ann", "PERSON")]), "<PERSON_1>");
        vault.commit(&first).await.unwrap();
        for other in &others {
            let theirs = vault.session("acme", other, "conv").await.unwrap();
            assert_eq!(restore("<PERSON_1>", &theirs), "<PERSON_1>", "{other:?}");
            // Their own values number from 1 too, and never become the first's.
            assert_eq!(tokenise(&theirs, "Cy", &[("Cy", "PERSON")]), "<PERSON_1>");
            vault.commit(&theirs).await.unwrap();
        }
        assert_eq!(restore("<PERSON_1>", &first), "Ann");
        drop((first, vault));
        tokio::task::spawn_blocking(|| writer.finish())
            .await
            .unwrap();
    }
    // Read back from disk after a restart: still each owner's own.
    let (vault, _writer) = Vault::open(&db, &instance, config()).unwrap();
    let first = vault.session("acme", &alice, "conv").await.unwrap();
    assert_eq!(restore("<PERSON_1>", &first), "Ann");
    for other in &others {
        let theirs = vault.session("acme", other, "conv").await.unwrap();
        assert_eq!(restore("<PERSON_1>", &theirs), "Cy", "{other:?}");
    }
    // A row moved to another owner does not open: its ciphertext names its owner.
    let conn = crate::store::open(&db, crate::tenancy::STATE_MIGRATIONS).unwrap();
    conn.execute(
        "UPDATE pii_vault SET key_id = 'k9' WHERE user_id = 'alice'",
        [],
    )
    .unwrap();
    drop(conn);
    let (vault, _writer) = Vault::open(&db, &instance, config()).unwrap();
    let thief = vault.session("acme", &owner("k9"), "conv").await.unwrap();
    assert_eq!(restore("<PERSON_1>", &thief), "<PERSON_1>");
    // Erasing the session id erases it for every owner.
    assert_eq!(vault.erase_session("acme", "conv").await.unwrap(), 4);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn rows_from_before_owners_are_dropped_by_the_migration() {
    let (dir, db, _) = scratch("vault-migrate");
    let migrations = crate::tenancy::STATE_MIGRATIONS;
    let owners = migrations
        .iter()
        .position(|m| m.starts_with("DROP TABLE pii_vault;"))
        .unwrap();
    let before = crate::store::open(&db, &migrations[..owners]).unwrap();
    before
        .execute(
            "INSERT INTO pii_vault VALUES ('acme', 'conv', '<PERSON_1>', x'00', 0, 9e15)",
            [],
        )
        .unwrap();
    drop(before);
    let after = crate::store::open(&db, migrations).unwrap();
    let rows: i64 = after
        .query_row("SELECT COUNT(*) FROM pii_vault", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 0, "an ownerless row would open for any caller");
    after
        .execute(
            "INSERT INTO pii_vault VALUES ('acme', 'k1', '', 'conv', '<PERSON_1>', x'00', 0, 1)",
            [],
        )
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}
