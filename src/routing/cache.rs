//! An exact-match response cache for one route: opt-in, keyed on the tenant and the
//! normalised request, entries expire after a TTL, and the cache holds at most so many
//! entries and bytes (oldest out first). Only whole, successful answers are kept.

use crate::config::CacheConfig;
use bytes::Bytes;
use http::HeaderValue;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A cache key: SHA-256 of the tenant, the endpoint and the request.
pub type CacheKey = [u8; 32];

/// A cached answer.
#[derive(Debug, Clone)]
pub struct CachedAnswer {
    pub body: Bytes,
    pub content_type: Option<HeaderValue>,
}

#[derive(Debug, Default)]
struct Entries {
    map: HashMap<CacheKey, (CachedAnswer, Instant)>,
    /// Insertion order, oldest first (keys may repeat after a refresh; stale ones skip).
    order: VecDeque<(CacheKey, Instant)>,
    bytes: usize,
}

#[derive(Debug)]
pub struct ResponseCache {
    ttl: Duration,
    max_entries: usize,
    max_bytes: usize,
    max_entry_bytes: usize,
    entries: Mutex<Entries>,
}

/// The key of a request: who asks (`tenant`), where (`endpoint`) and what (`request`,
/// serialised canonically: typed fields in order, every map sorted).
pub fn key(tenant: &str, endpoint: &str, request: &[u8]) -> CacheKey {
    let mut hasher = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [tenant.as_bytes(), endpoint.as_bytes(), request] {
        hasher.update(&(part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(hasher.finish().as_ref());
    key
}

impl ResponseCache {
    pub fn new(config: &CacheConfig) -> Self {
        Self {
            ttl: Duration::from_secs(config.ttl_secs),
            max_entries: config.max_entries,
            max_bytes: config.max_bytes,
            max_entry_bytes: config.max_entry_bytes,
            entries: Mutex::new(Entries::default()),
        }
    }

    /// The answer stored under `key`, unless it expired.
    pub fn get(&self, key: &CacheKey) -> Option<CachedAnswer> {
        let entries = self.entries.lock().ok()?;
        let (answer, stored) = entries.map.get(key)?;
        (stored.elapsed() < self.ttl).then(|| answer.clone())
    }

    /// Stores an answer, evicting expired and then the oldest entries to stay in bounds.
    pub fn put(&self, key: CacheKey, answer: CachedAnswer) {
        let size = answer.body.len();
        if size > self.max_entry_bytes || size > self.max_bytes || self.max_entries == 0 {
            return;
        }
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        let now = Instant::now();
        if let Some((old, _)) = entries.map.insert(key, (answer, now)) {
            entries.bytes -= old.body.len();
        }
        entries.bytes += size;
        entries.order.push_back((key, now));
        while entries.map.len() > self.max_entries
            || entries.bytes > self.max_bytes
            || entries
                .order
                .front()
                .is_some_and(|(_, at)| at.elapsed() >= self.ttl)
        {
            let Some((oldest, at)) = entries.order.pop_front() else {
                break;
            };
            // Only the entry's latest insertion evicts it.
            if entries
                .map
                .get(&oldest)
                .is_some_and(|(_, stored)| *stored == at)
                && let Some((gone, _)) = entries.map.remove(&oldest)
            {
                entries.bytes -= gone.body.len();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(max_entries: usize, max_bytes: usize, ttl_secs: u64) -> ResponseCache {
        ResponseCache::new(&CacheConfig {
            ttl_secs,
            max_entries,
            max_bytes,
            max_entry_bytes: 100,
        })
    }

    fn answer(text: &str) -> CachedAnswer {
        CachedAnswer {
            body: Bytes::from(text.to_string()),
            content_type: None,
        }
    }

    #[test]
    fn keys_separate_tenants_endpoints_and_requests() {
        let base = key("t1", "/chat/completions", b"{}");
        assert_ne!(base, key("t2", "/chat/completions", b"{}"));
        assert_ne!(base, key("t1", "/completions", b"{}"));
        assert_ne!(base, key("t1", "/chat/completions", b"{ }"));
        assert_ne!(
            key("ab", "c", b""),
            key("a", "bc", b""),
            "parts are delimited"
        );
        assert_eq!(base, key("t1", "/chat/completions", b"{}"));
    }

    #[test]
    fn bounds_entries_bytes_and_entry_size() {
        let c = cache(2, 10, 60);
        c.put(key("t", "e", b"1"), answer("aaaa"));
        c.put(key("t", "e", b"2"), answer("bbbb"));
        c.put(key("t", "e", b"3"), answer("cccc"));
        assert!(c.get(&key("t", "e", b"1")).is_none(), "oldest out");
        assert_eq!(&c.get(&key("t", "e", b"3")).unwrap().body[..], b"cccc");
        c.put(key("t", "e", b"4"), answer("dddddddd"));
        assert!(c.get(&key("t", "e", b"2")).is_none(), "bytes bound");
        c.put(key("t", "e", b"5"), answer(&"x".repeat(101)));
        assert!(c.get(&key("t", "e", b"5")).is_none(), "entry too large");
        // Refreshing a key keeps one entry and its bytes right.
        c.put(key("t", "e", b"4"), answer("dd"));
        c.put(key("t", "e", b"4"), answer("dd"));
        assert_eq!(&c.get(&key("t", "e", b"4")).unwrap().body[..], b"dd");
    }

    #[test]
    fn entries_expire() {
        let c = cache(10, 1000, 0);
        c.put(key("t", "e", b"1"), answer("a"));
        assert!(c.get(&key("t", "e", b"1")).is_none());
    }
}
