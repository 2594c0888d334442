//! Network identifiers: IPv4 and IPv6 addresses (parsed by `std::net`) and MAC addresses.
//!
//! Version numbers are the usual IPv4 look-alike: `v1.2.3.4` never matches (no word
//! boundary between `v` and `1`), a fifth dotted part (`1.2.3.4.5`) rejects the candidate,
//! and words such as "version" or "build" just before it push it under the threshold.
//! Loopback, unspecified and broadcast addresses identify no one and score under it.

use super::context::Context;
use super::{LazyRegex, Recognizer, Scan, compile, neighbours};
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

const MAC_ADDRESS: Recognizer = Recognizer {
    class: "MAC_ADDRESS",
    name: "mac",
    context: Context {
        support: &[
            "mac", "hwaddr", "ether", "bssid", "device", "wifi", "adapter",
        ],
        against: &["sha", "hash", "checksum", "fingerprint"],
    },
};

const IPV4_ADDRESS: Recognizer = Recognizer {
    class: "IP_ADDRESS",
    name: "ipv4",
    context: IP_CONTEXT,
};

const IPV6_ADDRESS: Recognizer = Recognizer {
    class: "IP_ADDRESS",
    name: "ipv6",
    context: IP_CONTEXT,
};

pub(super) static V4: LazyRegex =
    LazyLock::new(|| compile(r"(?-u:\b)[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}(?-u:\b)"));

pub(super) static V6: LazyRegex = LazyLock::new(|| {
    compile(r"[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:(?:\.[0-9]{1,3}){3})?")
});

pub(super) static MAC_PATTERN: LazyRegex = LazyLock::new(|| {
    compile(
        r"(?-u:\b)(?:[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}|[0-9A-Fa-f]{2}(?:-[0-9A-Fa-f]{2}){5}|[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4})(?-u:\b)",
    )
});

/// A byte that, next to a candidate, makes it part of something larger.
fn joins(b: Option<u8>) -> bool {
    b.is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b':' | b'_'))
}

pub fn find(scan: &Scan<'_>, out: &mut Vec<Finding>) {
    let text = scan.text;
    let bytes = text.as_bytes();
    let has_dot = memchr::memchr(b'.', bytes).is_some();
    let has_colon = memchr::memchr(b':', bytes).is_some();
    if has_dot {
        IPV4_ADDRESS.scan(scan, &V4, out, |m| ipv4(text, m));
    }
    if has_colon {
        IPV6_ADDRESS.scan(scan, &V6, out, |m| ipv6(text, m));
    }
    if has_dot || has_colon || memchr::memchr(b'-', bytes).is_some() {
        MAC_ADDRESS.scan(scan, &MAC_PATTERN, out, |m| mac(text, m));
    }
}

/// The base score of an IPv4 candidate, `None` if it is none or part of something longer
/// (`1.2.3.4.5`).
fn ipv4(text: &str, m: &regex::Match<'_>) -> Option<f32> {
    let (before, after) = neighbours(text, m.start(), m.end());
    let after_next = text.as_bytes().get(m.end() + 1).copied();
    let continues = after == Some(b'.') && after_next.is_some_and(|b| b.is_ascii_digit());
    if before == Some(b'.') || continues {
        return None;
    }
    let ip = m.as_str().parse::<Ipv4Addr>().ok()?;
    Some(
        if ip.is_loopback() || ip.is_unspecified() || ip.is_broadcast() {
            NOBODY
        } else {
            IPV4
        },
    )
}

/// The base score of an IPv6 candidate, `None` if it is none or joined to a word
/// (`Vec::add`).
fn ipv6(text: &str, m: &regex::Match<'_>) -> Option<f32> {
    let (before, after) = neighbours(text, m.start(), m.end());
    let groups = m
        .as_str()
        .split([':', '.'])
        .filter(|g| !g.is_empty())
        .count();
    if joins(before) || joins(after) || groups < 2 {
        return None;
    }
    let ip = m.as_str().parse::<Ipv6Addr>().ok()?;
    Some(if ip.is_loopback() || ip.is_unspecified() {
        NOBODY
    } else {
        IPV6
    })
}

/// The base score of a MAC candidate, `None` if it is joined to something longer.
fn mac(text: &str, m: &regex::Match<'_>) -> Option<f32> {
    let (before, after) = neighbours(text, m.start(), m.end());
    if joins(before) || joins(after) {
        return None;
    }
    let hex = m.as_str().bytes().filter(u8::is_ascii_hexdigit);
    let all_zero = hex.clone().all(|b| b == b'0');
    let all_f = hex.clone().all(|b| b.eq_ignore_ascii_case(&b'f'));
    Some(if all_zero || all_f { NOBODY } else { MAC })
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
