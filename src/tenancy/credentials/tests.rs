use super::*;
use crate::config::{CredentialFallback, CredentialStrategy, UpstreamKind};
use crate::tenancy::change_watch::ChangeWatch;
use crate::tenancy::{KeyStore, NewKey, STATE_MIGRATIONS, StateMirror};
use std::collections::HashMap;
use std::sync::Arc;

const SEAL: [u8; 32] = [9; 32];

struct Fixture {
    dir: std::path::PathBuf,
    path: std::path::PathBuf,
    conn: rusqlite::Connection,
    tenant: String,
}

fn fixture(tag: &str) -> Fixture {
    let dir = crate::store::scratch_dir(tag);
    let path = dir.join("airlock.db");
    let conn = crate::store::open(&path, STATE_MIGRATIONS).unwrap();
    let tenant = KeyStore::new(&conn, &[1; 32])
        .create(
            &NewKey {
                tenant: "acme".into(),
                name: "k".into(),
                ..NewKey::default()
            },
            "test",
        )
        .unwrap()
        .info
        .tenant_id;
    Fixture {
        dir,
        path,
        conn,
        tenant,
    }
}

fn new(tenant: Option<&str>, name: &str) -> NewCredential {
    NewCredential {
        tenant_id: tenant.map(str::to_string),
        provider: "openai".into(),
        name: name.into(),
    }
}

/// A credential cache and the state mirror that keeps it in step.
struct Cached {
    mirror: StateMirror,
    cache: Arc<CredentialCache>,
}

impl Cached {
    /// As the data path reads it: the mirror refreshed first.
    fn current(&self) -> Arc<Snapshot> {
        self.mirror.refresh().unwrap();
        self.cache.snapshot()
    }

    /// As the admin API does after a change: reloaded without waiting for the watch.
    fn reload(&self) {
        self.mirror.refresh_now().unwrap();
    }
}

fn cache(f: &Fixture, inotify: bool) -> Cached {
    let kinds = HashMap::from([("openai".to_string(), UpstreamKind::OpenaiCompatible)]);
    let cache = Arc::new(CredentialCache::new(SEAL, kinds));
    let conn = crate::store::open(&f.path, STATE_MIGRATIONS).unwrap();
    let mirrors: Vec<Arc<dyn crate::tenancy::Mirrored>> = vec![cache.clone()];
    let mirror = if inotify {
        StateMirror::new(conn, &f.path, mirrors).unwrap()
    } else {
        StateMirror::with_watch(conn, ChangeWatch::DataVersion, mirrors).unwrap()
    };
    Cached { mirror, cache }
}

fn byok(strategy: CredentialStrategy) -> CredentialPolicy {
    CredentialPolicy {
        source: CredentialSource::Tenant,
        strategy,
        fallback: CredentialFallback::Refuse,
    }
}

/// The secret (without `Bearer `) an attempt would send.
fn pick(cache: &Cached, tenant: &str, strategy: CredentialStrategy) -> Option<String> {
    let snapshot = cache.current();
    let chosen = snapshot
        .pool(&byok(strategy), "openai", tenant)?
        .choose(strategy, &[])?;
    Some(chosen.header().to_str().unwrap()["Bearer ".len()..].to_string())
}

#[test]
fn secrets_are_sealed_listed_by_fingerprint_and_bound_to_their_row() {
    let f = fixture("cred-seal");
    let store = CredentialStore::new(&f.conn, &SEAL);
    let info = store
        .create(&new(Some(&f.tenant), "main"), "sk-live-secret-1", "test")
        .unwrap();
    assert!(info.id.starts_with("cred_"));
    assert_eq!(info.fingerprint, fingerprint("sk-live-secret-1"));
    assert!(info.fingerprint.starts_with("sha256:") && info.fingerprint.len() == 19);
    assert_eq!(info.state, CredentialState::Active);
    assert_eq!(info.tenant.as_deref(), Some("acme"));
    // Nowhere in the database file in the clear, nor in the admin events.
    f.conn
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    let bytes = std::fs::read(&f.path).unwrap();
    assert!(!bytes.windows(16).any(|w| w == b"sk-live-secret-1"));
    let details: Vec<String> = f
        .conn
        .prepare("SELECT action || ' ' || ifnull(detail, '') FROM admin_events")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(details.iter().any(|d| d.starts_with("credential.create")));
    assert!(details.iter().all(|d| !d.contains("sk-live")));
    // A listing never carries the secret.
    let listed = serde_json::to_string(&store.list(None).unwrap()).unwrap();
    assert!(listed.contains(&info.fingerprint) && !listed.contains("sk-live"));
    // Moved to another tenant, the sealed secret no longer opens.
    let c = cache(&f, false);
    assert_eq!(
        pick(&c, &f.tenant, CredentialStrategy::RoundRobin).as_deref(),
        Some("sk-live-secret-1")
    );
    f.conn
        .execute("UPDATE provider_credentials SET tenant_id = NULL", [])
        .unwrap();
    c.reload();
    assert!(pick(&c, &f.tenant, CredentialStrategy::RoundRobin).is_none());
    assert!(c.current().named.is_empty(), "a moved secret does not open");
    // One active credential per name; bad secrets are refused.
    assert!(store.create(&new(None, "x"), "has space", "t").is_err());
    assert!(store.create(&new(None, "x"), "", "t").is_err());
    std::fs::remove_dir_all(&f.dir).unwrap();
}

#[test]
fn rotation_keeps_the_old_key_as_a_fallback_until_its_grace_ends() {
    let f = fixture("cred-rotate");
    let store = CredentialStore::new(&f.conn, &SEAL);
    let c = cache(&f, true);
    let old = store
        .create(&new(Some(&f.tenant), "main"), "sk-old", "test")
        .unwrap();
    let dup = store.create(&new(Some(&f.tenant), "main"), "sk-other", "test");
    assert!(dup.unwrap_err().to_string().contains("rotate it instead"));
    assert_eq!(
        pick(&c, &f.tenant, CredentialStrategy::RoundRobin).as_deref(),
        Some("sk-old")
    );
    let (fresh, previous) = store.rotate(&old.id, "sk-new", 1, "test").unwrap();
    assert_eq!(previous.state, CredentialState::Grace);
    assert_eq!(fresh.replaces.as_deref(), Some(old.id.as_str()));
    assert!(
        store.rotate(&old.id, "sk-x", 1, "test").is_err(),
        "only active ones rotate"
    );
    // The change watch (inotify) brings it in: the new key first, the old one after it.
    let snapshot = c.current();
    let pool = snapshot
        .pool(&byok(CredentialStrategy::RoundRobin), "openai", &f.tenant)
        .unwrap();
    let first = pool.choose(CredentialStrategy::RoundRobin, &[]).unwrap();
    assert_eq!(first.id.as_ref(), fresh.id);
    let second = pool
        .choose(
            CredentialStrategy::RoundRobin,
            std::slice::from_ref(&first.id),
        )
        .unwrap();
    assert_eq!(
        second.id.as_ref(),
        old.id,
        "in its grace period, a fallback"
    );
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert!(
        pool.choose(
            CredentialStrategy::RoundRobin,
            std::slice::from_ref(&first.id)
        )
        .is_none(),
        "after its grace period, never"
    );
    let listed = store.list(Some(Some(&f.tenant))).unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().any(|i| i.state == CredentialState::Retired));
    std::fs::remove_dir_all(&f.dir).unwrap();
}

#[test]
fn revocation_applies_to_the_next_choice_and_strategies_share_the_load() {
    let f = fixture("cred-revoke");
    let store = CredentialStore::new(&f.conn, &SEAL);
    let c = cache(&f, false);
    let a = store
        .create(&new(Some(&f.tenant), "a"), "sk-a", "t")
        .unwrap();
    store
        .create(&new(Some(&f.tenant), "b"), "sk-b", "t")
        .unwrap();
    store
        .create(&new(None, "shared"), "sk-shared", "t")
        .unwrap();
    let mut seen: Vec<String> = (0..4)
        .map(|_| pick(&c, &f.tenant, CredentialStrategy::RoundRobin).unwrap())
        .collect();
    seen.sort();
    assert_eq!(seen, ["sk-a", "sk-a", "sk-b", "sk-b"], "round robin");
    for _ in 0..3 {
        assert_eq!(
            pick(&c, &f.tenant, CredentialStrategy::Failover).unwrap(),
            "sk-a"
        );
    }
    // sk-a has 5 uses, sk-b 2: the least used catches up.
    for _ in 0..3 {
        assert_eq!(
            pick(&c, &f.tenant, CredentialStrategy::LeastUsed).unwrap(),
            "sk-b"
        );
    }
    // Another tenant sees none of them; a route naming `shared` sees the instance one.
    assert!(pick(&c, "ten_other", CredentialStrategy::RoundRobin).is_none());
    let named = CredentialPolicy {
        source: CredentialSource::Named(Arc::from("shared")),
        ..byok(CredentialStrategy::RoundRobin)
    };
    assert!(c.current().pool(&named, "openai", "ten_other").is_some());
    // Resting a credential leaves it out; revoking it too, from the next choice on
    // (here through another connection and the data_version fallback).
    store.revoke(&a.id, "t").unwrap();
    for _ in 0..4 {
        assert_eq!(
            pick(&c, &f.tenant, CredentialStrategy::Failover).unwrap(),
            "sk-b"
        );
    }
    assert!(
        store.revoke(&a.id, "t").is_err(),
        "revoking twice is an error"
    );
    let snapshot = c.current();
    let b = snapshot
        .pool(&byok(CredentialStrategy::Failover), "openai", &f.tenant)
        .unwrap()
        .choose(CredentialStrategy::Failover, &[])
        .unwrap();
    b.rest_until(crate::store::now_unix_ms() + 60_000);
    assert!(pick(&c, &f.tenant, CredentialStrategy::Failover).is_none());
    // Other writes to the database reload nothing.
    let before = c.current();
    f.conn
        .execute(
            "INSERT INTO pii_vault VALUES ('acme', 'k', '', 's', '<P_1>', x'00', 0, 1)",
            [],
        )
        .unwrap();
    assert!(Arc::ptr_eq(&before, &c.current()));
    std::fs::remove_dir_all(&f.dir).unwrap();
}
