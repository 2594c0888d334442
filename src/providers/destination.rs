//! Where the gateway may connect for a URL an admin set through the admin API (budget
//! alert webhooks): not loopback, private, link-local, unspecified, multicast or other
//! special networks — IPv4 carried in IPv6 (mapped, compatible, NAT64, 6to4) judged as
//! the IPv4 address it carries — unless the instance admin allows the network in
//! `webhooks.allow`. A name is resolved and every address checked; the connection goes
//! to a checked address (the resolver below hands the connector only those), so a name
//! cannot resolve to one address when checked and another when connected.

use crate::config::{IpNetwork, WebhooksConfig};
use hyper_util::client::legacy::connect::dns::Name;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// Why a destination was refused.
#[derive(Debug, thiserror::Error)]
pub enum DestinationError {
    #[error("not an http:// or https:// URL with a host")]
    NotHttpUrl,
    #[error("`{host}` is, or resolves to, {addr}: {class}")]
    Forbidden {
        host: String,
        addr: IpAddr,
        class: &'static str,
    },
    #[error("cannot resolve `{host}`: {detail}")]
    Unresolvable { host: String, detail: String },
}

/// The destinations the instance admin allows.
#[derive(Debug, Clone, Default)]
pub struct Destinations {
    allow: Arc<[IpNetwork]>,
}

impl Destinations {
    pub fn new(config: &WebhooksConfig) -> Self {
        Self {
            allow: config.allow.iter().copied().collect(),
        }
    }

    /// Whether the gateway may connect to `ip`; else the kind of network it is in.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), &'static str> {
        let carried = carried_ipv4(ip).map_or(ip, IpAddr::V4);
        if self
            .allow
            .iter()
            .any(|net| net.contains(carried) || net.contains(ip))
        {
            return Ok(());
        }
        match special(carried) {
            Some(class) => Err(class),
            None => Ok(()),
        }
    }

    /// Checks a URL as an admin sets it: an http(s) URL whose host (an address, or a
    /// name resolved now) is allowed, every address of it.
    pub async fn check_url(&self, url: &str) -> Result<(), DestinationError> {
        let uri = parse(url)?;
        if self.check_literal(&uri)? {
            return Ok(());
        }
        self.resolve(uri.host().unwrap_or_default()).await.map(drop)
    }

    /// The addresses `host` resolves to, every one allowed (else the first that is
    /// not).
    async fn resolve(&self, host: &str) -> Result<Vec<SocketAddr>, DestinationError> {
        let addrs = tokio::net::lookup_host((host, 0)).await.map_err(|e| {
            DestinationError::Unresolvable {
                host: host.to_string(),
                detail: e.to_string(),
            }
        })?;
        self.checked(host, addrs)
    }

    /// For a URL whose host is an IP address (which a connector does not resolve):
    /// checks it, and says true. False for a name.
    pub fn check_literal(&self, uri: &http::Uri) -> Result<bool, DestinationError> {
        let host = uri.host().ok_or(DestinationError::NotHttpUrl)?;
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let Ok(ip) = bare.parse::<IpAddr>() else {
            return Ok(false);
        };
        self.check_ip(ip)
            .map_err(|class| DestinationError::Forbidden {
                host: host.to_string(),
                addr: ip,
                class,
            })
            .map(|()| true)
    }

    /// The addresses of `host`, every one allowed (else the first that is not).
    fn checked(
        &self,
        host: &str,
        addrs: impl Iterator<Item = SocketAddr>,
    ) -> Result<Vec<SocketAddr>, DestinationError> {
        let addrs: Vec<SocketAddr> = addrs.collect();
        if addrs.is_empty() {
            return Err(DestinationError::Unresolvable {
                host: host.to_string(),
                detail: "no address".into(),
            });
        }
        for addr in &addrs {
            self.check_ip(addr.ip())
                .map_err(|class| DestinationError::Forbidden {
                    host: host.to_string(),
                    addr: addr.ip(),
                    class,
                })?;
        }
        Ok(addrs)
    }

    /// A resolver for hyper's connector that answers only checked addresses.
    pub fn resolver(&self) -> CheckedResolver {
        CheckedResolver {
            destinations: self.clone(),
        }
    }
}

/// Parses an admin-set URL: http or https, with a host.
pub fn parse(url: &str) -> Result<http::Uri, DestinationError> {
    url.parse::<http::Uri>()
        .ok()
        .filter(|u| matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some())
        .ok_or(DestinationError::NotHttpUrl)
}

/// Resolves names for the connector and refuses any whose addresses are not all
/// allowed; the connector then connects to exactly the addresses it returned.
#[derive(Debug, Clone)]
pub struct CheckedResolver {
    destinations: Destinations,
}

type Resolving =
    Pin<Box<dyn Future<Output = Result<std::vec::IntoIter<SocketAddr>, DestinationError>> + Send>>;

impl tower::Service<Name> for CheckedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = DestinationError;
    type Future = Resolving;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let destinations = self.destinations.clone();
        Box::pin(async move {
            destinations
                .resolve(name.as_str())
                .await
                .map(Vec::into_iter)
        })
    }
}

/// The IPv4 address an IPv6 one carries: mapped (`::ffff:a.b.c.d`), compatible
/// (`::a.b.c.d`), NAT64 (`64:ff9b::a.b.c.d`) or 6to4 (`2002:AABB:CCDD::`).
fn carried_ipv4(ip: IpAddr) -> Option<Ipv4Addr> {
    let IpAddr::V6(v6) = ip else {
        return None;
    };
    let s = v6.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] | [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(low),
        // IPv4-compatible, but not `::` and `::1` themselves.
        [0, 0, 0, 0, 0, 0, hi, _] if hi != 0 => Some(low),
        [0x2002, a, b, ..] => Some(Ipv4Addr::new(
            (a >> 8) as u8,
            a as u8,
            (b >> 8) as u8,
            b as u8,
        )),
        _ => None,
    }
}

/// The special network `ip` is in, if any (IPv4-carrying IPv6 already unwrapped).
fn special(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => special_v4(v4),
        IpAddr::V6(v6) => special_v6(v6),
    }
}

fn special_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (0, ..) => "an unspecified (this-network) address",
        (127, ..) => "a loopback address",
        (10, ..) | (172, 16..=31, _) | (192, 168, _) => "a private address",
        (100, 64..=127, _) => "a shared (carrier-grade NAT) address",
        (169, 254, _) => "a link-local address",
        (192, 0, 0) | (198, 18..=19, _) => "a reserved address",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "a documentation address",
        (224..=239, ..) => "a multicast address",
        (240..=255, ..) => "a reserved or broadcast address",
        _ => return None,
    })
}

fn special_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    Some(match s {
        [0, 0, 0, 0, 0, 0, 0, 0] => "an unspecified address",
        [0, 0, 0, 0, 0, 0, 0, 1] => "a loopback address",
        [first, ..] if first & 0xfe00 == 0xfc00 => "a private (unique local) address",
        [first, ..] if first & 0xffc0 == 0xfe80 || first & 0xffc0 == 0xfec0 => {
            "a link-local or site-local address"
        }
        [first, ..] if first & 0xff00 == 0xff00 => "a multicast address",
        [0x64, 0xff9b, 1, ..] => "a local NAT64 address",
        [0x100, 0, 0, 0, ..] => "a discard-only address",
        [0x2001, 0xdb8, ..] => "a documentation address",
        [0x2001, 0, ..] => "a Teredo address",
        // The rest of ::/8 (IPv4-mapped and compatible forms are unwrapped before).
        [0, ..] => "a reserved address",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(d: &Destinations, ip: &str) -> bool {
        d.check_ip(ip.parse().unwrap()).is_err()
    }

    #[test]
    fn internal_and_special_networks_are_refused_in_every_spelling() {
        let d = Destinations::default();
        for ip in [
            "127.0.0.1",
            "127.9.9.9",
            "0.0.0.0",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.0.10",
            "169.254.169.254",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::7f00:1",
            "2002:7f00:1::",
            "2002:a00:1::1",
        ] {
            assert!(refused(&d, ip), "{ip} must be refused");
        }
        for ip in [
            "8.8.8.8",
            "172.32.0.1",
            "192.169.0.1",
            "2a00:1450::1",
            "::ffff:8.8.8.8",
        ] {
            assert!(!refused(&d, ip), "{ip} is public");
        }
    }

    #[test]
    fn the_allow_list_opens_exactly_its_networks() {
        let d = Destinations::new(&WebhooksConfig {
            allow: vec![
                IpNetwork::parse("10.20.0.0/16").unwrap(),
                IpNetwork::parse("127.0.0.1").unwrap(),
            ],
        });
        assert!(!refused(&d, "10.20.3.4"));
        assert!(
            !refused(&d, "::ffff:10.20.3.4"),
            "judged as the IPv4 it carries"
        );
        assert!(refused(&d, "10.21.0.1"));
        assert!(!refused(&d, "127.0.0.1"));
        assert!(refused(&d, "127.0.0.2"));
        assert!(refused(&d, "::1"), "IPv6 loopback is another network");
    }

    #[tokio::test]
    async fn urls_are_checked_by_literal_and_by_every_resolved_address() {
        let d = Destinations::default();
        for url in [
            "http://127.0.0.1:9/hook",
            "http://[::1]/hook",
            "http://[::ffff:7f00:1]/hook",
            "https://169.254.169.254/latest",
            "http://localhost:8080/hook",
        ] {
            assert!(
                matches!(
                    d.check_url(url).await,
                    Err(DestinationError::Forbidden { .. })
                ),
                "{url}"
            );
        }
        for url in ["ftp://example.com/x", "not a url", "http:///nohost"] {
            assert!(
                matches!(d.check_url(url).await, Err(DestinationError::NotHttpUrl)),
                "{url}"
            );
        }
        assert!(d.check_url("http://8.8.8.8/hook").await.is_ok());
    }
}
