//! The gateway's provider credentials in memory: an `ArcSwap` snapshot of every usable
//! credential, opened into ready header values, which the state mirror reloads when the
//! credentials table changed (at once after a change made by this process); and the
//! choice of a credential for one attempt.

use super::store::{self, Opened};
use crate::config::{CredentialFallback, CredentialStrategy, UpstreamKind};
use crate::store::{StoreError, now_unix_ms};
use crate::tenancy::mirror::Mirrored;
use arc_swap::ArcSwap;
use http::HeaderValue;
use rusqlite::Connection;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};

/// Which credentials a target authenticates with (from its `credential:` setting).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// The instance-wide credential of this name for the target's upstream.
    Named(Arc<str>),
    /// The calling tenant's credentials for the target's upstream (BYOK).
    Tenant,
}

/// A target's credential settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialPolicy {
    pub source: CredentialSource,
    pub strategy: CredentialStrategy,
    pub fallback: CredentialFallback,
}

/// Counters of one credential that outlive snapshot reloads.
#[derive(Debug, Default)]
struct Counters {
    /// Attempts sent with it since the gateway started.
    uses: AtomicU64,
    /// Unix milliseconds until which it is not chosen (after a 401 or 429).
    rest_until_ms: AtomicI64,
}

/// One usable credential, ready to send.
#[derive(Debug)]
pub struct Credential {
    pub id: Arc<str>,
    /// The header value its upstream reads (`Bearer …` or the bare key), sensitive.
    header: HeaderValue,
    /// `Some` while in its grace period: a fallback only, until then.
    grace_until_ms: Option<i64>,
    counters: Arc<Counters>,
}

impl Credential {
    pub fn header(&self) -> &HeaderValue {
        &self.header
    }

    /// Takes it out of the choice until `until_ms` (its provider refused or throttled it).
    pub fn rest_until(&self, until_ms: i64) {
        self.counters
            .rest_until_ms
            .fetch_max(until_ms, Ordering::Relaxed);
    }

    fn usable(&self, now_ms: i64) -> bool {
        self.counters.rest_until_ms.load(Ordering::Relaxed) <= now_ms
            && self.grace_until_ms.is_none_or(|t| t > now_ms)
    }
}

/// The credentials of one tenant (or of one name, instance-wide) for one provider:
/// active ones oldest first, then those in a grace period.
#[derive(Debug, Default)]
pub struct Pool {
    credentials: Vec<Arc<Credential>>,
    /// The round-robin position (kept across reloads).
    cursor: Arc<AtomicUsize>,
}

impl Pool {
    /// The credential for the next attempt: an active one chosen by `strategy` among
    /// those not yet `tried` by this request and not resting; failing that, one in its
    /// grace period; `None` when none is left.
    pub fn choose(
        &self,
        strategy: CredentialStrategy,
        tried: &[Arc<str>],
    ) -> Option<Arc<Credential>> {
        let now = now_unix_ms();
        let open = |c: &&Arc<Credential>| c.usable(now) && !tried.contains(&c.id);
        let active = self
            .credentials
            .iter()
            .take_while(|c| c.grace_until_ms.is_none());
        let count = active.clone().count();
        let chosen = match strategy {
            CredentialStrategy::Failover => active.clone().find(open),
            CredentialStrategy::LeastUsed => active
                .clone()
                .filter(open)
                .min_by_key(|c| c.counters.uses.load(Ordering::Relaxed)),
            CredentialStrategy::RoundRobin if count > 0 => {
                let start = self.cursor.fetch_add(1, Ordering::Relaxed) % count;
                active.clone().cycle().skip(start).take(count).find(open)
            }
            CredentialStrategy::RoundRobin => None,
        };
        let chosen = chosen.or_else(|| self.credentials[count..].iter().find(open))?;
        chosen.counters.uses.fetch_add(1, Ordering::Relaxed);
        Some(chosen.clone())
    }
}

/// Every usable credential, by where routes look for it.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Tenant id → provider → the tenant's credentials (BYOK).
    tenants: HashMap<Arc<str>, HashMap<Arc<str>, Pool>>,
    /// Provider → name → instance-wide credentials.
    pub(super) named: HashMap<Arc<str>, HashMap<Arc<str>, Pool>>,
}

impl Snapshot {
    /// The pool a target with `policy` on `provider` draws from for `tenant_id`.
    pub fn pool(
        &self,
        policy: &CredentialPolicy,
        provider: &str,
        tenant_id: &str,
    ) -> Option<&Pool> {
        match &policy.source {
            CredentialSource::Tenant => self.tenants.get(tenant_id)?.get(provider),
            CredentialSource::Named(name) => self.named.get(provider)?.get(&**name),
        }
    }

    /// Every credential's counters by id, and every pool's cursor by its place, to carry
    /// into the next snapshot.
    fn carried(&self) -> Carried {
        let mut carried = Carried::default();
        let tenants = self
            .tenants
            .iter()
            .map(|(tenant, pools)| (Scope::Tenant(tenant.clone()), pools));
        let named = self
            .named
            .iter()
            .map(|(provider, pools)| (Scope::Named(provider.clone()), pools));
        for (scope, pools) in tenants.chain(named) {
            for (key, pool) in pools {
                carried
                    .cursors
                    .insert((scope.clone(), key.clone()), pool.cursor.clone());
                for c in &pool.credentials {
                    carried.counters.insert(c.id.clone(), c.counters.clone());
                }
            }
        }
        carried
    }
}

/// Where a pool sits in a snapshot: under a tenant (keyed then by provider) or under a
/// provider (keyed then by name).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Scope {
    Tenant(Arc<str>),
    Named(Arc<str>),
}

#[derive(Default)]
struct Carried {
    counters: HashMap<Arc<str>, Arc<Counters>>,
    cursors: HashMap<(Scope, Arc<str>), Arc<AtomicUsize>>,
}

/// Provider credentials in memory, kept in step with the database by the state mirror.
pub struct CredentialCache {
    seal_key: [u8; 32],
    /// The wire format of each configured upstream, which decides the header's form.
    kinds: HashMap<String, UpstreamKind>,
    snapshot: ArcSwap<Snapshot>,
}

impl CredentialCache {
    /// An empty cache for the upstreams in `kinds`; the state mirror loads it.
    pub fn new(seal_key: [u8; 32], kinds: HashMap<String, UpstreamKind>) -> Self {
        Self {
            seal_key,
            kinds,
            snapshot: ArcSwap::from_pointee(Snapshot::default()),
        }
    }

    /// The credentials as of the state mirror's last refresh (the data path refreshes it
    /// before each attempt that uses credentials).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// A snapshot of `opened`, keeping the counters and cursors of the current one.
    fn build(&self, opened: Vec<Opened>) -> Snapshot {
        let mut carried = self.snapshot.load().carried();
        let mut snapshot = Snapshot::default();
        for o in opened {
            let Some(kind) = self.kinds.get(&o.provider) else {
                continue; // an upstream no longer configured: nothing routes there
            };
            let value = match kind {
                UpstreamKind::OpenaiCompatible => format!("Bearer {}", o.secret),
                UpstreamKind::Anthropic | UpstreamKind::Gemini => o.secret,
            };
            let Ok(mut header) = HeaderValue::from_str(&value) else {
                tracing::error!(credential = %o.id, "a provider credential is not a valid header value; it is not used");
                continue;
            };
            header.set_sensitive(true);
            let id: Arc<str> = o.id.into();
            let provider: Arc<str> = o.provider.into();
            let (scope, key, map) = match o.tenant_id {
                Some(tenant) => {
                    let tenant: Arc<str> = tenant.into();
                    (
                        Scope::Tenant(tenant.clone()),
                        provider,
                        snapshot.tenants.entry(tenant).or_default(),
                    )
                }
                None => (
                    Scope::Named(provider.clone()),
                    Arc::from(o.name),
                    snapshot.named.entry(provider).or_default(),
                ),
            };
            let pool = map.entry(key.clone()).or_insert_with(|| Pool {
                credentials: Vec::new(),
                cursor: carried.cursors.remove(&(scope, key)).unwrap_or_default(),
            });
            let counters = carried.counters.remove(&id).unwrap_or_default();
            pool.credentials.push(Arc::new(Credential {
                id,
                header,
                grace_until_ms: o.grace_until_ms,
                counters,
            }));
        }
        // Active first (oldest first, as loaded), then those in a grace period, the
        // latest to expire first.
        for pool in snapshot
            .tenants
            .values_mut()
            .chain(snapshot.named.values_mut())
            .flat_map(|m| m.values_mut())
        {
            pool.credentials
                .sort_by_key(|c| c.grace_until_ms.map_or(i64::MIN, |t| -t));
        }
        snapshot
    }
}

impl Mirrored for CredentialCache {
    fn counter(&self) -> &'static str {
        "provider_credentials"
    }

    fn reload(&self, conn: &Connection) -> Result<(), StoreError> {
        let opened = store::load_usable(conn, &self.seal_key)?;
        self.snapshot.store(Arc::new(self.build(opened)));
        Ok(())
    }
}
