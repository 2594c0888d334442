//! Failed authentications, from anyone on the network: a bounded allowance per client
//! address (an address that spent it is answered 429 before anything touches the disk),
//! and an aggregate record — per address, surface, reason and known identity, one audit
//! record and one log line per interval with the count and the first and last time —
//! instead of one record per attempt, so a flood of bogus keys cannot fill the disk.
//!
//! Separate from connection limits (the listener's): this counts refusals, not sockets.

use crate::audit::record::{AuditEvent, AuditRecord};
use crate::config::AuthFailuresConfig;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The audit record kind of an aggregate of refused authentications.
pub const KIND: &str = "auth.refused";

/// The reason recorded for attempts refused with 429 before their credentials were
/// looked at (the admin API checks the allowance first: its checks cost a database read
/// or a password hash).
pub const LIMITED: &str = "too_many_auth_failures";

/// The client's address, as the listener saw it, carried to the admin API.
#[derive(Debug, Clone)]
pub struct ClientAddr(pub Arc<str>);

/// Where the attempt was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Surface {
    /// A data-path endpoint, with a virtual key.
    DataPath,
    /// The admin API, with an admin token.
    Admin,
    /// `POST /admin/login`, with a user name and password.
    Login,
}

impl Surface {
    pub fn name(self) -> &'static str {
        match self {
            Self::DataPath => "data_path",
            Self::Admin => "admin",
            Self::Login => "admin_login",
        }
    }
}

/// Who the refused credential belonged to, when it is a known one (a revoked key, a
/// known user's wrong password): bounded by what exists, never chosen by the caller.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Known {
    /// A key's id, for the data path.
    pub key_id: Option<Arc<str>>,
    /// An admin token or user, for the admin API.
    pub actor: Option<Arc<str>>,
    pub tenant_id: Option<Arc<str>>,
}

/// One refused attempt.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub surface: Surface,
    /// The error code (`invalid_api_key`, `wrong_password`, …).
    pub reason: &'static str,
    pub known: Known,
}

/// What to answer a refused attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The usual 401.
    Unauthorized,
    /// 429: the address spent its allowance; it comes back after this many seconds.
    Limited { retry_after_secs: u64 },
}

/// Where a client is counted: its address (IPv4, IPv4-mapped IPv6 as IPv4), or its
/// IPv6 network of the configured prefix; `None` for the shared overflow.
type ClientNet = Option<IpAddr>;

/// One unit of allowance in the bucket's fixed-point scale: a token is 60,000 units, so
/// `per_minute` tokens a minute come back as `per_minute` units a millisecond.
const UNITS_PER_TOKEN: u64 = 60_000;

#[derive(Debug)]
struct Bucket {
    units: u64,
    updated: Instant,
}

impl Bucket {
    fn full(capacity: u64) -> Self {
        Self {
            units: capacity,
            updated: Instant::now(),
        }
    }

    fn refill(&mut self, limits: &Limits, now: Instant) {
        let ms = now.saturating_duration_since(self.updated).as_millis();
        let gained = u64::try_from(ms)
            .unwrap_or(u64::MAX)
            .saturating_mul(limits.per_minute);
        self.units = self.units.saturating_add(gained).min(limits.capacity);
        self.updated = now;
    }

    /// Seconds until a whole token is back.
    fn wait_secs(&self, limits: &Limits) -> u64 {
        let missing = UNITS_PER_TOKEN.saturating_sub(self.units);
        missing.div_ceil(limits.per_minute).div_ceil(1000).max(1)
    }
}

#[derive(Debug, Clone, Copy)]
struct Limits {
    capacity: u64,
    per_minute: u64,
    max_addresses: usize,
    ipv6_prefix: u8,
    max_groups: usize,
}

/// What refused attempts of one address, surface, reason and identity add up to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct GroupKey {
    net: ClientNet,
    surface: Surface,
    reason: &'static str,
    known: Known,
}

#[derive(Debug, Clone, Copy)]
struct Tally {
    count: u64,
    /// Of which answered 429.
    limited: u64,
    first_ms: i64,
    last_ms: i64,
}

/// One interval's refusals of one group, as recorded.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The address, the IPv6 network (`2001:db8::/64`), or `*` for addresses beyond
    /// the tracked ones.
    pub client: String,
    pub surface: Surface,
    pub reason: &'static str,
    pub known: Known,
    pub count: u64,
    pub limited: u64,
    pub first_ms: i64,
    pub last_ms: i64,
}

#[derive(Debug, Default)]
struct Inner {
    buckets: HashMap<IpAddr, Bucket>,
    /// Shared by addresses that found the table full.
    overflow: Option<Bucket>,
    groups: HashMap<GroupKey, Tally>,
}

/// The gateway's record of failed authentications.
#[derive(Debug)]
pub struct AuthFailures {
    limits: Limits,
    /// How often [`AuthFailures::drain`] is meant to run.
    pub interval: Duration,
    inner: Mutex<Inner>,
}

impl AuthFailures {
    pub fn new(config: &AuthFailuresConfig) -> Self {
        Self {
            limits: Limits {
                capacity: config.burst.saturating_mul(UNITS_PER_TOKEN),
                per_minute: config.per_minute.max(1),
                max_addresses: usize::try_from(config.max_addresses).unwrap_or(usize::MAX),
                ipv6_prefix: config.ipv6_prefix,
                max_groups: usize::try_from(config.max_groups).unwrap_or(usize::MAX),
            },
            interval: Duration::from_secs(config.record_interval_secs.max(1)),
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Counters only: a panic elsewhere cannot leave them unusable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a refused attempt from `client` (the listener's `ip:port`) against its
    /// address's allowance: 401 while it lasts, 429 once it is spent.
    pub fn refuse(&self, client: &str, refusal: Refusal) -> Verdict {
        let net = self.net_of(client);
        let now = Instant::now();
        let mut inner = self.lock();
        let verdict = match bucket(&mut inner, &self.limits, net, now) {
            Some(bucket) if bucket.units >= UNITS_PER_TOKEN => {
                bucket.units -= UNITS_PER_TOKEN;
                Verdict::Unauthorized
            }
            Some(bucket) => Verdict::Limited {
                retry_after_secs: bucket.wait_secs(&self.limits),
            },
            None => Verdict::Unauthorized,
        };
        let limited = matches!(verdict, Verdict::Limited { .. });
        self.tally(&mut inner, net, refusal, limited);
        verdict
    }

    /// Whether `client` spent its allowance: then the attempt is refused (and counted)
    /// before its credentials are looked at, with the seconds to wait.
    pub fn spent(&self, client: &str, surface: Surface) -> Option<u64> {
        let net = self.net_of(client);
        let now = Instant::now();
        let mut inner = self.lock();
        let wait = bucket(&mut inner, &self.limits, net, now)
            .filter(|b| b.units < UNITS_PER_TOKEN)
            .map(|b| b.wait_secs(&self.limits))?;
        let refusal = Refusal {
            surface,
            reason: LIMITED,
            known: Known::default(),
        };
        self.tally(&mut inner, net, refusal, true);
        Some(wait)
    }

    fn tally(&self, inner: &mut Inner, net: ClientNet, refusal: Refusal, limited: bool) {
        let now_ms = crate::store::now_unix_ms();
        let mut key = GroupKey {
            net,
            surface: refusal.surface,
            reason: refusal.reason,
            known: refusal.known,
        };
        if !inner.groups.contains_key(&key) && inner.groups.len() >= self.limits.max_groups {
            // Too many groups this interval: the rest fold into one per surface and reason.
            key.net = None;
            key.known = Known::default();
        }
        let tally = inner.groups.entry(key).or_insert(Tally {
            count: 0,
            limited: 0,
            first_ms: now_ms,
            last_ms: now_ms,
        });
        tally.count += 1;
        tally.limited += u64::from(limited);
        tally.last_ms = now_ms;
    }

    /// The interval's groups (and forgets them), and drops addresses whose allowance is
    /// whole again, so the table holds only recent offenders.
    pub fn drain(&self) -> Vec<Summary> {
        let now = Instant::now();
        let mut inner = self.lock();
        let limits = self.limits;
        inner.buckets.retain(|_, b| {
            b.refill(&limits, now);
            b.units < limits.capacity
        });
        if let Some(overflow) = &mut inner.overflow {
            overflow.refill(&limits, now);
            if overflow.units >= limits.capacity {
                inner.overflow = None;
            }
        }
        let mut summaries: Vec<Summary> = inner
            .groups
            .drain()
            .map(|(key, tally)| Summary {
                client: self.display(key.net),
                surface: key.surface,
                reason: key.reason,
                known: key.known,
                count: tally.count,
                limited: tally.limited,
                first_ms: tally.first_ms,
                last_ms: tally.last_ms,
            })
            .collect();
        summaries.sort_by_key(|s| s.first_ms);
        summaries
    }

    /// Where `client` (`ip:port`) is counted.
    fn net_of(&self, client: &str) -> ClientNet {
        let ip = client.parse::<SocketAddr>().ok()?.ip();
        Some(match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(mask_v6(v6, self.limits.ipv6_prefix)),
            },
            v4 => v4,
        })
    }

    fn display(&self, net: ClientNet) -> String {
        match net {
            None => "*".into(),
            Some(IpAddr::V6(v6)) if self.limits.ipv6_prefix < 128 => {
                format!("{v6}/{}", self.limits.ipv6_prefix)
            }
            Some(ip) => ip.to_string(),
        }
    }
}

/// The bucket `net` draws on, refilled to `now`: its own, or (the table being full, or
/// the address unknown) the shared overflow. `None` only when the allowance is off.
fn bucket<'a>(
    inner: &'a mut Inner,
    limits: &Limits,
    net: ClientNet,
    now: Instant,
) -> Option<&'a mut Bucket> {
    if limits.capacity == 0 {
        return None;
    }
    let own = net
        .filter(|ip| inner.buckets.contains_key(ip) || inner.buckets.len() < limits.max_addresses);
    let bucket = match own {
        Some(ip) => inner
            .buckets
            .entry(ip)
            .or_insert_with(|| Bucket::full(limits.capacity)),
        None => inner
            .overflow
            .get_or_insert_with(|| Bucket::full(limits.capacity)),
    };
    bucket.refill(limits, now);
    Some(bucket)
}

fn mask_v6(ip: Ipv6Addr, prefix: u8) -> Ipv6Addr {
    let bits = u128::from(ip);
    let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
    Ipv6Addr::from(bits & mask)
}

impl Summary {
    /// The audit record of this group: who (the address, a known identity), where, why,
    /// how often and when (first and last, in `detail`).
    pub fn audit_event(&self) -> AuditEvent {
        let text = |s: &Option<Arc<str>>| s.as_deref().map(str::to_string);
        let detail = serde_json::json!({
            "count": self.count,
            "limited": self.limited,
            "first_ms": self.first_ms,
            "last_ms": self.last_ms,
        });
        AuditEvent {
            record: AuditRecord {
                ts_ms: self.last_ms,
                kind: KIND.into(),
                tenant_id: text(&self.known.tenant_id),
                key_id: text(&self.known.key_id),
                client_addr: Some(self.client.clone()),
                endpoint: Some(self.surface.name().into()),
                decision: Some("deny".into()),
                status: Some(if self.count == self.limited { 429 } else { 401 }),
                error: Some(self.reason.into()),
                detail: Some(detail.to_string()),
                actor: text(&self.known.actor),
                ..AuditRecord::default()
            },
            ..AuditEvent::default()
        }
    }

    /// Writes the log line of this group.
    pub fn log(&self) {
        tracing::warn!(
            client = %self.client,
            surface = self.surface.name(),
            reason = self.reason,
            count = self.count,
            limited = self.limited,
            first_ms = self.first_ms,
            last_ms = self.last_ms,
            key = self.known.key_id.as_deref().unwrap_or(""),
            actor = self.known.actor.as_deref().unwrap_or(""),
            "authentication failures"
        );
    }
}

/// Records the interval's refusals: a log line and an audit record per group, the
/// records handed over together (so they share the writer's commits) and waited for.
pub async fn record(failures: &AuthFailures, audit: Option<&crate::audit::writer::AuditSink>) {
    let mut writes = tokio::task::JoinSet::new();
    for summary in failures.drain() {
        summary.log();
        if let Some(sink) = audit.cloned() {
            let event = summary.audit_event();
            writes.spawn(async move { sink.record(event).await });
        }
    }
    while let Some(written) = writes.join_next().await {
        if !matches!(written, Ok(Ok(()))) {
            tracing::error!("an aggregate of refused authentications could not be audited");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failures(burst: u64, max_addresses: u64, max_groups: u64) -> AuthFailures {
        AuthFailures::new(&AuthFailuresConfig {
            burst,
            per_minute: 1,
            max_addresses,
            ipv6_prefix: 64,
            record_interval_secs: 60,
            max_groups,
        })
    }

    fn bad_key() -> Refusal {
        Refusal {
            surface: Surface::DataPath,
            reason: "invalid_api_key",
            known: Known::default(),
        }
    }

    #[test]
    fn an_address_gets_its_burst_then_429_and_others_are_unaffected() {
        let f = failures(3, 100, 100);
        for _ in 0..3 {
            assert_eq!(f.refuse("10.0.0.1:5000", bad_key()), Verdict::Unauthorized);
        }
        let Verdict::Limited { retry_after_secs } = f.refuse("10.0.0.1:5001", bad_key()) else {
            panic!("the fourth failure is limited");
        };
        assert!((1..=60).contains(&retry_after_secs), "{retry_after_secs}");
        assert!(f.spent("10.0.0.1:1", Surface::Admin).is_some());
        assert_eq!(f.refuse("10.0.0.2:5000", bad_key()), Verdict::Unauthorized);
        assert!(f.spent("10.0.0.2:1", Surface::Admin).is_none());

        let summaries = f.drain();
        let of = |client: &str, reason: &str| {
            summaries
                .iter()
                .find(|s| s.client == client && s.reason == reason)
                .map(|s| (s.count, s.limited))
        };
        assert_eq!(summaries.len(), 3, "{summaries:?}");
        assert_eq!(of("10.0.0.1", "invalid_api_key"), Some((4, 1)));
        assert_eq!(of("10.0.0.1", LIMITED), Some((1, 1)));
        assert_eq!(of("10.0.0.2", "invalid_api_key"), Some((1, 0)));
        assert!(
            f.drain().is_empty(),
            "an interval's groups are recorded once"
        );
    }

    #[test]
    fn ipv6_counts_by_prefix_and_mapped_ipv4_as_ipv4() {
        let f = failures(1, 100, 100);
        assert_eq!(
            f.refuse("[2001:db8:1:2::1]:1", bad_key()),
            Verdict::Unauthorized
        );
        assert!(matches!(
            f.refuse("[2001:db8:1:2:ffff::9]:1", bad_key()),
            Verdict::Limited { .. }
        ));
        assert_eq!(
            f.refuse("[::ffff:192.0.2.1]:1", bad_key()),
            Verdict::Unauthorized
        );
        assert!(matches!(
            f.refuse("192.0.2.1:2", bad_key()),
            Verdict::Limited { .. }
        ));
        let clients: Vec<String> = f.drain().into_iter().map(|s| s.client).collect();
        assert!(
            clients.contains(&"2001:db8:1:2::/64".to_string()),
            "{clients:?}"
        );
        assert!(clients.contains(&"192.0.2.1".to_string()), "{clients:?}");
    }

    #[test]
    fn the_tables_are_bounded_however_many_addresses_come() {
        let f = failures(2, 4, 8);
        for i in 0..1000u32 {
            let client = format!("10.{}.{}.{}:1", i >> 16, (i >> 8) & 255, i & 255);
            f.refuse(&client, bad_key());
        }
        {
            let inner = f.lock();
            assert_eq!(inner.buckets.len(), 4);
            assert!(inner.groups.len() <= 9, "{}", inner.groups.len());
        }
        // Addresses beyond the table share one allowance: the flood is limited as one.
        assert!(matches!(
            f.refuse("172.16.0.1:1", bad_key()),
            Verdict::Limited { .. }
        ));
        let summaries = f.drain();
        let total: u64 = summaries.iter().map(|s| s.count).sum();
        assert_eq!(total, 1001);
        let folded = summaries.iter().find(|s| s.client == "*").unwrap();
        assert!(folded.count > 900 && folded.limited > 900, "{folded:?}");
    }

    #[test]
    fn known_identities_are_kept_apart_and_recorded() {
        let f = failures(10, 10, 10);
        let revoked = |key: &str| Refusal {
            surface: Surface::DataPath,
            reason: "revoked_api_key",
            known: Known {
                key_id: Some(key.into()),
                tenant_id: Some("t1".into()),
                actor: None,
            },
        };
        f.refuse("10.0.0.1:1", revoked("key_a"));
        f.refuse("10.0.0.1:2", revoked("key_a"));
        f.refuse("10.0.0.1:3", revoked("key_b"));
        let summaries = f.drain();
        assert_eq!(summaries.len(), 2);
        let event = summaries
            .iter()
            .find(|s| s.known.key_id.as_deref() == Some("key_a"))
            .unwrap()
            .audit_event();
        let record = event.record;
        assert_eq!(record.kind, KIND);
        assert_eq!(record.client_addr.as_deref(), Some("10.0.0.1"));
        assert_eq!(record.key_id.as_deref(), Some("key_a"));
        assert_eq!(record.tenant_id.as_deref(), Some("t1"));
        assert_eq!(record.error.as_deref(), Some("revoked_api_key"));
        assert_eq!(record.status, Some(401));
        let detail: serde_json::Value =
            serde_json::from_str(record.detail.as_deref().unwrap()).unwrap();
        assert_eq!(detail["count"], 2);
        assert!(detail["first_ms"].as_i64() <= detail["last_ms"].as_i64());
    }
}
