//! The `auth_failures:`, `disk:` and `webhooks:` sections of airlock.yaml: how clients
//! that fail to authenticate are limited and recorded, when the data directory's free
//! space raises an alert, and which networks webhooks set through the admin API may reach.

use serde::{Deserialize, Deserializer};
use std::net::IpAddr;

/// `auth_failures`: a per-address budget of failed authentications (data path and admin
/// API), and how refused attempts are recorded (in aggregate, not one record each).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthFailuresConfig {
    /// Failures an address may make at once before it is refused with 429…
    #[serde(deserialize_with = "positive")]
    pub burst: u64,
    /// …and the rate at which that allowance comes back.
    #[serde(deserialize_with = "positive")]
    pub per_minute: u64,
    /// Addresses tracked at most; beyond that, new addresses share one allowance.
    #[serde(deserialize_with = "positive")]
    pub max_addresses: u64,
    /// IPv6 addresses are counted by this prefix (a client usually holds a whole /64).
    #[serde(deserialize_with = "ipv6_prefix")]
    pub ipv6_prefix: u8,
    /// Refused attempts are summed per address and reason over this many seconds, then
    /// written as one audit record and one log line each.
    #[serde(deserialize_with = "positive")]
    pub record_interval_secs: u64,
    /// Address-and-reason groups summed at most per interval; more fold into one group.
    #[serde(deserialize_with = "positive")]
    pub max_groups: u64,
}

impl Default for AuthFailuresConfig {
    fn default() -> Self {
        Self {
            burst: 20,
            per_minute: 10,
            max_addresses: 16_384,
            ipv6_prefix: 64,
            record_interval_secs: 60,
            max_groups: 4096,
        }
    }
}

/// `disk`: free space on the data directory's filesystem, checked periodically.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiskConfig {
    /// Below this many free bytes: an alert (error log, audit event) and `/readyz`
    /// reports `degraded`.
    pub low_water_bytes: u64,
    /// Below this many: `/readyz` answers 503 and, when the audit trail fails closed,
    /// data-path requests are refused (503 `disk_space_low`). 0 turns it off.
    pub refuse_below_bytes: u64,
    /// Seconds between checks.
    #[serde(deserialize_with = "positive")]
    pub check_interval_secs: u64,
}

impl Default for DiskConfig {
    fn default() -> Self {
        Self {
            low_water_bytes: 1 << 30,
            refuse_below_bytes: 128 << 20,
            check_interval_secs: 30,
        }
    }
}

/// `webhooks`: where URLs set through the admin API (budget alert webhooks) may point.
/// Loopback, private, link-local, unspecified, multicast and other special networks are
/// refused unless a network of `allow` contains the address.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    /// Networks (`10.20.0.0/16`, `fd00::/8`, or one address) webhooks may reach even
    /// though they are internal.
    pub allow: Vec<IpNetwork>,
}

/// An IP network: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNetwork {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl IpNetwork {
    /// Parses `ADDR/PREFIX` or a single address.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("`{text}` is not an IP address or network (ADDR/PREFIX)"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{text}`: the prefix must be 0 to {max}"))?,
        };
        Ok(Self { addr, prefix })
    }

    /// Whether `ip` is in this network (an IPv4 network never contains an IPv6 address:
    /// callers unwrap mapped forms first).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            _ => false,
        }
    }
}

/// Whether the first `bits` bits of `a` and `b` are equal.
fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let whole = usize::from(bits / 8);
    let rest = bits % 8;
    if a[..whole] != b[..whole] {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    (a[whole] & mask) == (b[whole] & mask)
}

impl DiskConfig {
    /// Whether the marks are in order (the refusal mark below the alert mark).
    pub fn check(&self) -> Result<(), String> {
        if self.refuse_below_bytes > 0 && self.refuse_below_bytes >= self.low_water_bytes {
            return Err(format!(
                "`refuse_below_bytes` ({}) must be below `low_water_bytes` ({}), or 0",
                self.refuse_below_bytes, self.low_water_bytes
            ));
        }
        Ok(())
    }
}

/// A count or duration that must be at least 1.
fn positive<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    match u64::deserialize(deserializer)? {
        0 => Err(serde::de::Error::custom("must be at least 1")),
        n => Ok(n),
    }
}

/// An IPv6 prefix length, 1 to 128.
fn ipv6_prefix<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u8, D::Error> {
    match u8::deserialize(deserializer)? {
        n @ 1..=128 => Ok(n),
        _ => Err(serde::de::Error::custom("must be 1 to 128")),
    }
}

impl<'de> Deserialize<'de> for IpNetwork {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_parse_and_contain() {
        let net = IpNetwork::parse("10.20.0.0/16").unwrap();
        assert!(net.contains("10.20.255.1".parse().unwrap()));
        assert!(!net.contains("10.21.0.1".parse().unwrap()));
        let one = IpNetwork::parse("192.168.1.7").unwrap();
        assert_eq!(one.prefix, 32);
        assert!(one.contains("192.168.1.7".parse().unwrap()));
        assert!(!one.contains("192.168.1.8".parse().unwrap()));
        let v6 = IpNetwork::parse("fd00::/8").unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(!v6.contains("10.0.0.1".parse().unwrap()));
        let odd = IpNetwork::parse("172.16.0.0/12").unwrap();
        assert!(odd.contains("172.31.9.9".parse().unwrap()));
        assert!(!odd.contains("172.32.0.1".parse().unwrap()));
        assert!(
            IpNetwork::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        for bad in [
            "10.0.0.0/33",
            "fd00::/129",
            "host.internal",
            "10.0.0.0/x",
            "",
        ] {
            assert!(IpNetwork::parse(bad).is_err(), "{bad}");
        }
    }
}
