//! Network identifiers: IPv4 and IPv6 addresses (parsed by `std::net`) and MAC addresses.
//!
//! Version numbers are the usual IPv4 look-alike: `v1.2.3.4` never matches (no word
//! boundary between `v` and `1`), a fifth dotted part (`1.2.3.4.5`) rejects the candidate,
//! and words such as "version" or "build" just before it push it under the threshold.
//! Loopback, unspecified and broadcast addresses identify no one and score under it.

use super::context::Context;
use super::{LazyRegex, compile, finding, matches, neighbours};
use crate::pii::Finding;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

const IPV4: f32 = 0.6;
const IPV6: f32 = 0.7;
const MAC: f32 = 0.6;
/// Loopback, unspecified, broadcast: not anyone's address.
const NOBODY: f32 = 0.2;

const IP_CONTEXT: Context = Context {
    support: &[
        "ip",
        "ipv4",
        "ipv6",
        "address",
        "addr",
        "host",
        "client",
        "src",
        "dst",
        "source",
        "remote",
        "login",
        "connected",
        "from",
    ],
    against: &[
        "version", "ver", "v", "build", "release", "firmware", "oid", "snmp", "chrome", "firefox",
        "windows", "sdk",
    ],
};

const MAC_CONTEXT: Context = Context {
    support: &[
        "mac", "hwaddr", "ether", "bssid", "device", "wifi", "adapter",
    ],
    against: &["sha", "hash", "checksum", "fingerprint"],
};

static V4: LazyRegex =
    LazyLock::new(|| compile(r"(?-u:\b)[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}(?-u:\b)"));

static V6: LazyRegex = LazyLock::new(|| {
    compile(r"[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:(?:\.[0-9]{1,3}){3})?")
});

static MAC_PATTERN: LazyRegex = LazyLock::new(|| {
    compile(
        r"(?-u:\b)(?:[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}|[0-9A-Fa-f]{2}(?:-[0-9A-Fa-f]{2}){5}|[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4})(?-u:\b)",
    )
});

/// A byte that, next to a candidate, makes it part of something larger.
fn joins(b: Option<u8>) -> bool {
    b.is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b':' | b'_'))
}

pub fn find(text: &str, out: &mut Vec<Finding>) {
    let bytes = text.as_bytes();
    let has_dot = memchr::memchr(b'.', bytes).is_some();
    let has_colon = memchr::memchr(b':', bytes).is_some();
    if has_dot {
        ipv4(text, out);
    }
    if has_colon {
        ipv6(text, out);
    }
    if has_dot || has_colon || memchr::memchr(b'-', bytes).is_some() {
        mac(text, out);
    }
}

fn ipv4(text: &str, out: &mut Vec<Finding>) {
    for m in matches(&V4, text) {
        let (before, after) = neighbours(text, m.start(), m.end());
        let after_next = text.as_bytes().get(m.end() + 1).copied();
        let continues = after == Some(b'.') && after_next.is_some_and(|b| b.is_ascii_digit());
        if before == Some(b'.') || continues {
            continue;
        }
        let Ok(ip) = m.as_str().parse::<Ipv4Addr>() else {
            continue;
        };
        let base = if ip.is_loopback() || ip.is_unspecified() || ip.is_broadcast() {
            NOBODY
        } else {
            IPV4
        };
        let score = IP_CONTEXT.score(text, m.start(), base);
        out.push(finding("IP_ADDRESS", "ipv4", m.start(), m.end(), score));
    }
}

fn ipv6(text: &str, out: &mut Vec<Finding>) {
    for m in matches(&V6, text) {
        let (before, after) = neighbours(text, m.start(), m.end());
        let groups = m
            .as_str()
            .split([':', '.'])
            .filter(|g| !g.is_empty())
            .count();
        if joins(before) || joins(after) || groups < 2 {
            continue;
        }
        let Ok(ip) = m.as_str().parse::<Ipv6Addr>() else {
            continue;
        };
        let base = if ip.is_loopback() || ip.is_unspecified() {
            NOBODY
        } else {
            IPV6
        };
        let score = IP_CONTEXT.score(text, m.start(), base);
        out.push(finding("IP_ADDRESS", "ipv6", m.start(), m.end(), score));
    }
}

fn mac(text: &str, out: &mut Vec<Finding>) {
    for m in matches(&MAC_PATTERN, text) {
        let (before, after) = neighbours(text, m.start(), m.end());
        if joins(before) || joins(after) {
            continue;
        }
        let hex = m.as_str().bytes().filter(u8::is_ascii_hexdigit);
        let all_zero = hex.clone().all(|b| b == b'0');
        let all_f = hex.clone().all(|b| b.eq_ignore_ascii_case(&b'f'));
        let base = if all_zero || all_f { NOBODY } else { MAC };
        let score = MAC_CONTEXT.score(text, m.start(), base);
        out.push(finding("MAC_ADDRESS", "mac", m.start(), m.end(), score));
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{found, spans};

    #[test]
    fn ipv4_addresses_and_version_look_alikes() {
        assert_eq!(
            spans("login from 203.0.113.42 failed", "ipv4"),
            ["203.0.113.42"]
        );
        assert_eq!(
            spans("10.1.2.3, 192.168.0.1", "ipv4"),
            ["10.1.2.3", "192.168.0.1"]
        );
        for not in [
            "v1.2.3.4",
            "version 1.2.3.4",
            "build 10.0.19045.2364",
            "1.2.3.4.5",
            "256.1.1.1",
            "01.02.03.04",
            "127.0.0.1",
            "0.0.0.0",
            "255.255.255.255",
        ] {
            assert!(found(not, "ipv4").is_empty(), "{not}");
        }
    }

    #[test]
    fn ipv6_addresses_and_code_look_alikes() {
        for ip in [
            "2001:db8::8a2e:370:7334",
            "fe80::1ff:fe23:4567:890a",
            "::ffff:192.0.2.128",
        ] {
            assert_eq!(spans(&format!("client {ip} connected"), "ipv6"), [ip]);
        }
        for not in [
            "std::vec::Vec",
            "Foo::add(x)",
            "::",
            "::1",
            "10:45:30",
            "a::b::c",
        ] {
            assert!(found(not, "ipv6").is_empty(), "{not}");
        }
    }

    #[test]
    fn mac_addresses() {
        for mac in ["00:1A:2B:3C:4D:5E", "00-1a-2b-3c-4d-5e", "001a.2b3c.4d5e"] {
            assert_eq!(spans(&format!("device {mac} joined"), "mac"), [mac]);
        }
        for not in [
            "00:00:00:00:00:00",
            "ff:ff:ff:ff:ff:ff",
            "00:1A:2B:3C:4D:5E:6F",
        ] {
            assert!(found(not, "mac").is_empty(), "{not}");
        }
    }
}
