//! How many client connections the listener keeps open: the open-file limit raised to
//! its hard ceiling at start, the caps derived from it (in all, and per client address),
//! and the admission check the accept loop makes for each new connection — two atomics
//! and one short lock per connection, never per request.

use crate::telemetry::metrics::{ConnectionLabels, ConnectionMetrics};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// The process's open-file limit (soft), before and after [`raise_file_limit`]; `None`
/// is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileLimit {
    pub before: Option<u64>,
    pub now: Option<u64>,
}

/// Raises the soft open-file limit to the hard one (systemd starts services at 1024
/// soft, 524288 hard): every client connection, upstream connection and database file
/// needs a descriptor.
pub fn raise_file_limit() -> Result<FileLimit, std::io::Error> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let before = limit.current;
    // An unlimited hard limit cannot be the soft one (Linux caps it at `nr_open`).
    if let (Some(current), Some(maximum)) = (limit.current, limit.maximum)
        && current < maximum
    {
        let raised = rustix::process::Rlimit {
            current: Some(maximum),
            maximum: Some(maximum),
        };
        setrlimit(Resource::Nofile, raised)?;
    }
    Ok(FileLimit {
        before,
        now: current_file_limit(),
    })
}

/// The soft open-file limit in force; `None` is unlimited.
pub fn current_file_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

/// The most connections a derived cap allows, however high the file limit: each open
/// connection holds buffers and a task (tens of KiB), so memory runs out long before
/// 500 000 descriptors do.
const AUTO_CEILING: usize = 16_384;

/// The fewest connections a derived cap allows, however low the file limit.
const AUTO_FLOOR: usize = 16;

/// The connection caps in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionCaps {
    /// Client connections open at once, in all.
    pub total: usize,
    /// Client connections open at once from one client address.
    pub per_client: usize,
}

impl ConnectionCaps {
    /// The caps from `server.max_connections` and `server.max_connections_per_client`
    /// (0: derived) under the open-file limit `file_limit`.
    ///
    /// Derived, the total leaves a quarter of the descriptors (at most 256) for the
    /// databases, the search index, the listener and the runtime, and splits the rest
    /// evenly between client connections and the upstream connections serving them;
    /// one client address may hold half of it.
    pub fn derive(total: usize, per_client: usize, file_limit: Option<u64>) -> Self {
        let total = match total {
            0 => auto_total(file_limit),
            n => n,
        };
        let per_client = match per_client {
            0 => (total / 2).max(1),
            n => n.min(total),
        };
        Self { total, per_client }
    }

    /// Whether `total` leaves too few descriptors under `file_limit` for the derived
    /// split (an operator's explicit cap can exceed it); the derived total then.
    pub fn exceeds_file_limit(&self, file_limit: Option<u64>) -> Option<usize> {
        let fits = auto_total(file_limit);
        (self.total > fits && file_limit.is_some()).then_some(fits)
    }
}

fn auto_total(file_limit: Option<u64>) -> usize {
    let Some(limit) = file_limit else {
        return AUTO_CEILING;
    };
    let reserve = (limit / 4).min(256);
    let half = (limit - reserve) / 2;
    usize::try_from(half)
        .unwrap_or(usize::MAX)
        .clamp(AUTO_FLOOR, AUTO_CEILING)
}

/// Whom a per-client cap counts together: an IPv4 address, or an IPv6 /64 (one host
/// usually holds a whole /64, so counting single IPv6 addresses would cap nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey(IpAddr);

impl ClientKey {
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(IpAddr::V4(v4)),
                None => {
                    let prefix = u128::from(v6) & !u128::from(u64::MAX);
                    Self(IpAddr::V6(prefix.into()))
                }
            },
        }
    }
}

/// Why a connection was refused at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `max_connections` connections are open.
    Total,
    /// `max_connections_per_client` connections are open from this client.
    PerClient,
}

impl Refusal {
    pub fn reason(self) -> &'static str {
        match self {
            Self::Total => "total",
            Self::PerClient => "per_client",
        }
    }
}

/// The open connections, counted against the caps.
pub struct Admission {
    caps: ConnectionCaps,
    open: AtomicUsize,
    per_client: Mutex<HashMap<ClientKey, usize>>,
    metrics: ConnectionMetrics,
}

impl Admission {
    pub fn new(caps: ConnectionCaps, metrics: ConnectionMetrics) -> Arc<Self> {
        Arc::new(Self {
            caps,
            open: AtomicUsize::new(0),
            per_client: Mutex::new(HashMap::new()),
            metrics,
        })
    }

    /// Counts a new connection from `ip`, or says which cap is full. The ticket gives
    /// its place back when dropped (when the connection ends).
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Ticket, Refusal> {
        let refused = |refusal: Refusal| {
            self.metrics
                .refused
                .get_or_create(&ConnectionLabels {
                    reason: refusal.reason(),
                })
                .inc();
            Err(refusal)
        };
        if self.open.fetch_add(1, Ordering::AcqRel) >= self.caps.total {
            self.open.fetch_sub(1, Ordering::AcqRel);
            return refused(Refusal::Total);
        }
        let client = ClientKey::of(ip);
        {
            let mut counts = self
                .per_client
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let count = counts.entry(client).or_insert(0);
            if *count >= self.caps.per_client {
                drop(counts);
                self.open.fetch_sub(1, Ordering::AcqRel);
                return refused(Refusal::PerClient);
            }
            *count += 1;
        }
        self.metrics.open.inc();
        Ok(Ticket {
            admission: self.clone(),
            client,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }
}

/// An admitted connection's place under the caps, given back on drop.
pub struct Ticket {
    admission: Arc<Admission>,
    client: ClientKey,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let admission = &self.admission;
        {
            let mut counts = admission
                .per_client
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(count) = counts.get_mut(&self.client) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    counts.remove(&self.client);
                }
            }
        }
        admission.open.fetch_sub(1, Ordering::AcqRel);
        admission.metrics.open.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_caps_leave_room_under_the_file_limit() {
        // systemd's default soft limit: a quarter (256) kept, the rest halved.
        assert_eq!(
            ConnectionCaps::derive(0, 0, Some(1024)),
            ConnectionCaps {
                total: 384,
                per_client: 192
            }
        );
        assert_eq!(ConnectionCaps::derive(0, 0, Some(256)).total, 96);
        assert_eq!(ConnectionCaps::derive(0, 0, Some(10)).total, AUTO_FLOOR);
        assert_eq!(
            ConnectionCaps::derive(0, 0, Some(524_288)).total,
            AUTO_CEILING
        );
        assert_eq!(ConnectionCaps::derive(0, 0, None).total, AUTO_CEILING);
        // Explicit values win; one client never gets more than everyone.
        assert_eq!(
            ConnectionCaps::derive(100, 500, Some(1024)),
            ConnectionCaps {
                total: 100,
                per_client: 100
            }
        );
        let explicit = ConnectionCaps::derive(5000, 0, Some(1024));
        assert_eq!(explicit.exceeds_file_limit(Some(1024)), Some(384));
        assert_eq!(explicit.exceeds_file_limit(None), None);
        assert_eq!(
            ConnectionCaps::derive(0, 0, Some(1024)).exceeds_file_limit(Some(1024)),
            None
        );
    }

    #[test]
    fn ipv6_clients_count_by_their_64_prefix() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(ClientKey::of(a), ClientKey::of(b));
        assert_ne!(ClientKey::of(a), ClientKey::of(other));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(ClientKey::of(mapped), ClientKey::of(v4));
        assert_ne!(
            ClientKey::of("10.0.0.1".parse().unwrap()),
            ClientKey::of("10.0.0.2".parse().unwrap())
        );
    }

    #[test]
    fn admission_holds_both_caps_and_gives_places_back() {
        let metrics = ConnectionMetrics::default();
        let admission = Admission::new(
            ConnectionCaps {
                total: 3,
                per_client: 2,
            },
            metrics.clone(),
        );
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = admission.admit(a).unwrap();
        let _second = admission.admit(a).unwrap();
        assert_eq!(admission.admit(a).err(), Some(Refusal::PerClient));
        let _third = admission.admit(b).unwrap();
        assert_eq!(admission.admit(b).err(), Some(Refusal::Total));
        assert_eq!(admission.open(), 3);
        assert_eq!(metrics.open.get(), 3);
        drop(first);
        assert_eq!(admission.open(), 2);
        let _again = admission.admit(a).unwrap();
        let refused = |reason| {
            metrics
                .refused
                .get_or_create(&ConnectionLabels { reason })
                .get()
        };
        assert_eq!((refused("total"), refused("per_client")), (1, 1));
    }
}
