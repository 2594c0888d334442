//! The scan-once cache: findings by tenant and text content hash, so a chat client that
//! resends the whole conversation every turn has only its new message scanned.

use super::Finding;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

type Key = [u8; 32];

/// Bounded to `capacity` texts in two generations: when the young one fills, it becomes
/// the old one and the old one is dropped; a hit in the old one moves back to the young.
/// That keeps what is in use at O(1) a lookup, without per-entry recency bookkeeping.
pub struct ScanCache {
    generations: Mutex<Generations>,
    half: usize,
}

#[derive(Default)]
struct Generations {
    young: HashMap<Key, Arc<[Finding]>>,
    old: HashMap<Key, Arc<[Finding]>>,
}

impl ScanCache {
    /// A cache holding between `capacity / 2` and `capacity` texts' findings.
    pub fn new(capacity: usize) -> Self {
        Self {
            generations: Mutex::default(),
            half: (capacity / 2).max(1),
        }
    }

    /// The key of `text` for `tenant`: tenants never share entries.
    pub fn key(tenant: &str, text: &str) -> Key {
        let mut context = ring::digest::Context::new(&ring::digest::SHA256);
        context.update(&(tenant.len() as u64).to_le_bytes());
        context.update(tenant.as_bytes());
        context.update(text.as_bytes());
        let mut key = [0u8; 32];
        key.copy_from_slice(context.finish().as_ref());
        key
    }

    /// The findings cached for `key`.
    pub fn get(&self, key: &Key) -> Option<Arc<[Finding]>> {
        let mut generations = self.lock();
        if let Some(found) = generations.young.get(key) {
            return Some(Arc::clone(found));
        }
        let found = generations.old.remove(key)?;
        Self::insert_young(&mut generations, self.half, *key, Arc::clone(&found));
        Some(found)
    }

    /// Remembers the findings of a scanned text.
    pub fn insert(&self, key: Key, findings: Arc<[Finding]>) {
        let mut generations = self.lock();
        Self::insert_young(&mut generations, self.half, key, findings);
    }

    /// Texts cached now.
    #[cfg(test)]
    fn len(&self) -> usize {
        let generations = self.lock();
        generations.young.len() + generations.old.len()
    }

    fn insert_young(
        generations: &mut Generations,
        half: usize,
        key: Key,
        findings: Arc<[Finding]>,
    ) {
        if generations.young.len() >= half && !generations.young.contains_key(&key) {
            generations.old = std::mem::take(&mut generations.young);
        }
        generations.young.insert(key, findings);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generations> {
        // The maps stay consistent whatever a panicking holder did: recover them.
        self.generations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn findings(n: usize) -> Arc<[Finding]> {
        (0..n)
            .map(|i| Finding {
                class: "PERSON",
                start: i,
                end: i + 1,
                score: 0.9,
                recognizer: "ner",
            })
            .collect()
    }

    #[test]
    fn tenants_never_share_entries() {
        let cache = ScanCache::new(10);
        cache.insert(ScanCache::key("acme", "hello Ann"), findings(1));
        assert!(cache.get(&ScanCache::key("acme", "hello Ann")).is_some());
        assert!(cache.get(&ScanCache::key("globex", "hello Ann")).is_none());
        // The tenant/text boundary is unambiguous.
        assert_ne!(ScanCache::key("ab", "c"), ScanCache::key("a", "bc"));
    }

    #[test]
    fn stays_bounded_and_keeps_what_is_used() {
        let cache = ScanCache::new(100);
        let hot = ScanCache::key("t", "hot");
        cache.insert(hot, findings(2));
        for i in 0..10_000 {
            cache.insert(ScanCache::key("t", &i.to_string()), findings(0));
            if i % 10 == 0 {
                assert_eq!(cache.get(&hot).map(|f| f.len()), Some(2), "lost at {i}");
            }
            assert!(cache.len() <= 100);
        }
    }
}
