//! One tokenisation session in memory: which value each placeholder stands for, both ways,
//! and what has not reached the disk yet.

use super::placeholder;
use ring::hmac;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// A tokenisation session of one tenant. Shared (`Arc`) by the requests that use it.
pub struct Session {
    tenant: String,
    /// Who named the session and how; `None` for an ephemeral session.
    name: Option<SessionName>,
    hash_key: hmac::Key,
    entries: Mutex<Entries>,
}

/// Who a named session belongs to: the virtual key that created it and the person that
/// key acted for. Only the same key, acting for the same person, opens it again: another
/// caller of the tenant who sends the same session id gets a session of its own.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionOwner {
    pub key_id: String,
    /// The key's own user, else the person the caller named (`x-user-id`, the request's
    /// `user`); empty when none.
    pub user_id: String,
}

/// A named session: its owner and the id the caller gave it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionName {
    pub owner: SessionOwner,
    pub id: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("tenant", &self.tenant)
            .field("name", &self.name)
            .field("entries", &self.entries().placeholders.len())
            .finish()
    }
}

/// The placeholders of a session. Values are only reachable through this type, which
/// prints nothing.
pub struct Entries {
    /// Placeholder → value, ordered so prefixes are found by a range query.
    placeholders: BTreeMap<String, String>,
    /// (class, normalised value) → placeholder.
    by_value: HashMap<(&'static str, String), String>,
    /// The next counter per class.
    next: HashMap<&'static str, u32>,
    /// Placeholders not yet handed to the disk writer.
    unsaved: Vec<String>,
    max_entries: usize,
    ttl_ms: i64,
    expires_ms: i64,
    /// The (in-memory) expiry when rows were last handed to the disk writer.
    saved_expires_ms: i64,
    erased: bool,
}

/// The form a value is matched by: e-mail addresses case-folded, everything else exact.
pub fn normalise<'v>(class: &str, value: &'v str) -> Cow<'v, str> {
    if class == "EMAIL_ADDRESS" && value.chars().any(char::is_uppercase) {
        Cow::Owned(value.to_lowercase())
    } else {
        Cow::Borrowed(value)
    }
}

/// Rows for the disk writer: placeholder and value pairs, and when they expire on disk.
pub struct Unsaved {
    pub rows: Vec<(String, String)>,
    pub expires_ms: i64,
}

impl Session {
    /// An empty session expiring `ttl_ms` from `now_ms` unless used.
    pub(crate) fn new(
        tenant: &str,
        name: Option<SessionName>,
        hash_key: hmac::Key,
        max_entries: usize,
        ttl_ms: i64,
        now_ms: i64,
    ) -> Self {
        Self {
            tenant: tenant.to_owned(),
            name,
            hash_key,
            entries: Mutex::new(Entries {
                placeholders: BTreeMap::new(),
                by_value: HashMap::new(),
                next: HashMap::new(),
                unsaved: Vec::new(),
                max_entries,
                ttl_ms,
                expires_ms: now_ms.saturating_add(ttl_ms),
                saved_expires_ms: now_ms.saturating_add(ttl_ms),
                erased: false,
            }),
        }
    }

    /// The tenant the session belongs to.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The session id; `None` for an ephemeral session.
    pub fn id(&self) -> Option<&str> {
        self.name.as_ref().map(|name| name.id.as_str())
    }

    /// The owner and id of a named session; `None` for an ephemeral session.
    pub fn name(&self) -> Option<&SessionName> {
        self.name.as_ref()
    }

    /// The tenant's key for `hash`.
    pub(crate) fn hash_key(&self) -> &hmac::Key {
        &self.hash_key
    }

    /// The session's entries, locked. Hold the lock briefly: no I/O under it.
    pub(crate) fn entries(&self) -> MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Placeholders issued so far.
    pub fn len(&self) -> usize {
        self.entries().placeholders.len()
    }

    /// Whether no placeholder was issued yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Entries {
    /// The placeholder standing for `value` of `class`: the one issued before, or a new one
    /// that is not in `taken` (text already present). `None` when the session is full or
    /// erased; the caller must then not let the value through.
    pub(crate) fn tokenise(
        &mut self,
        class: &'static str,
        value: &str,
        taken: &dyn Fn(&str) -> bool,
        now_ms: i64,
    ) -> Option<String> {
        if self.erased {
            return None;
        }
        self.expires_ms = now_ms.saturating_add(self.ttl_ms);
        let key = (class, normalise(class, value).into_owned());
        if let Some(existing) = self.by_value.get(&key) {
            return Some(existing.clone());
        }
        if self.placeholders.len() >= self.max_entries {
            return None;
        }
        let mut n = self.next.get(class).copied().unwrap_or(1);
        loop {
            let candidate = placeholder::format(class, n);
            n = n.checked_add(1)?;
            if !taken(&candidate) && !self.placeholders.contains_key(&candidate) {
                self.next.insert(class, n);
                self.placeholders
                    .insert(candidate.clone(), value.to_owned());
                self.by_value.insert(key, candidate.clone());
                self.unsaved.push(candidate.clone());
                return Some(candidate);
            }
        }
    }

    /// Adds an entry read back from the disk; ignores text that is not a placeholder.
    pub(crate) fn insert_loaded(&mut self, placeholder: String, value: String) {
        let Some((class, n)) = placeholder::parse(&placeholder) else {
            return;
        };
        let next = self.next.entry(class).or_insert(1);
        *next = (*next).max(n.saturating_add(1));
        self.by_value.insert(
            (class, normalise(class, &value).into_owned()),
            placeholder.clone(),
        );
        self.placeholders.insert(placeholder, value);
    }

    /// How much later rows expire on disk than the session in memory: expiries are
    /// saved only when they moved by more than this, so the disk never expires first.
    fn disk_margin_ms(&self) -> i64 {
        self.ttl_ms / 10
    }

    /// Sets the expiry from the one read back from the disk.
    pub(crate) fn set_disk_expiry(&mut self, disk_expires_ms: i64) {
        self.expires_ms = disk_expires_ms.saturating_sub(self.disk_margin_ms());
        self.saved_expires_ms = self.expires_ms;
    }

    /// The value a placeholder stands for.
    pub(crate) fn value_of(&self, placeholder: &str) -> Option<&str> {
        self.placeholders.get(placeholder).map(String::as_str)
    }

    /// Whether `text` is the start (and not the whole) of a placeholder issued here.
    pub(crate) fn is_issued_prefix(&self, text: &str) -> bool {
        self.placeholders
            .range::<str, _>((Bound::Excluded(text), Bound::Unbounded))
            .next()
            .is_some_and(|(issued, _)| issued.starts_with(text))
    }

    /// Whether `value` of `class` is one this session tokenised.
    pub(crate) fn holds_value(&self, class: &'static str, value: &str) -> bool {
        self.by_value
            .contains_key(&(class, normalise(class, value).into_owned()))
    }

    /// Whether the session's time is up at `now_ms`.
    pub(crate) fn expired(&self, now_ms: i64) -> bool {
        self.expires_ms <= now_ms
    }

    /// Marks the session erased: it issues nothing more and saves nothing more.
    pub(crate) fn erase(&mut self) {
        self.erased = true;
        self.placeholders.clear();
        self.by_value.clear();
        self.unsaved.clear();
    }

    /// What the disk has not seen: new entries, or an expiry moved by more than the disk
    /// margin (so a busy session does not rewrite its rows on every request).
    pub(crate) fn take_unsaved(&mut self) -> Option<Unsaved> {
        let moved = self.expires_ms - self.saved_expires_ms > self.disk_margin_ms();
        if self.erased || (self.unsaved.is_empty() && !moved) {
            return None;
        }
        let rows = std::mem::take(&mut self.unsaved)
            .into_iter()
            .filter_map(|p| {
                let value = self.placeholders.get(&p)?.clone();
                Some((p, value))
            })
            .collect();
        self.saved_expires_ms = self.expires_ms;
        Some(Unsaved {
            rows,
            expires_ms: self.expires_ms.saturating_add(self.disk_margin_ms()),
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn session(max_entries: usize) -> Session {
        let owner = SessionOwner {
            key_id: "k1".into(),
            user_id: String::new(),
        };
        Session::new(
            "t1",
            Some(SessionName {
                owner,
                id: "s1".into(),
            }),
            hmac::Key::new(hmac::HMAC_SHA256, b"k"),
            max_entries,
            60_000,
            0,
        )
    }

    const FREE: &dyn Fn(&str) -> bool = &|_| false;

    #[test]
    fn placeholders_are_stable_and_counted_per_class() {
        let s = session(10);
        let mut e = s.entries();
        assert_eq!(e.tokenise("PERSON", "Ann", FREE, 1).unwrap(), "<PERSON_1>");
        assert_eq!(e.tokenise("PERSON", "Bob", FREE, 1).unwrap(), "<PERSON_2>");
        assert_eq!(
            e.tokenise("EMAIL_ADDRESS", "a@x.io", FREE, 1).unwrap(),
            "<EMAIL_ADDRESS_1>"
        );
        assert_eq!(
            e.tokenise("EMAIL_ADDRESS", "A@X.io", FREE, 1).unwrap(),
            "<EMAIL_ADDRESS_1>"
        );
        assert_eq!(e.tokenise("PERSON", "Ann", FREE, 1).unwrap(), "<PERSON_1>");
        assert_eq!(e.tokenise("PERSON", "ann", FREE, 1).unwrap(), "<PERSON_3>");
        assert_eq!(e.value_of("<EMAIL_ADDRESS_1>"), Some("a@x.io"));
    }

    #[test]
    fn taken_text_is_skipped_and_a_full_session_issues_nothing() {
        let s = session(2);
        let mut e = s.entries();
        let taken = |p: &str| p == "<PERSON_1>";
        assert_eq!(
            e.tokenise("PERSON", "Ann", &taken, 1).unwrap(),
            "<PERSON_2>"
        );
        assert_eq!(
            e.tokenise("PERSON", "Bob", &taken, 1).unwrap(),
            "<PERSON_3>"
        );
        assert_eq!(e.tokenise("PERSON", "Cy", FREE, 1), None);
        assert_eq!(e.tokenise("PERSON", "Bob", FREE, 1).unwrap(), "<PERSON_3>");
    }

    #[test]
    fn prefixes_are_of_issued_placeholders_only() {
        let s = session(10);
        let mut e = s.entries();
        e.tokenise("PERSON", "Ann", FREE, 1).unwrap();
        for prefix in ["<", "<P", "<PERSON_", "<PERSON_1"] {
            assert!(e.is_issued_prefix(prefix), "{prefix}");
        }
        for other in ["<PERSON_1>", "<PERSON_2", "<E", "P", "<PERSON_11"] {
            assert!(!e.is_issued_prefix(other), "{other}");
        }
    }

    #[test]
    fn loaded_entries_continue_the_counters_and_debug_shows_no_values() {
        let s = session(10);
        {
            let mut e = s.entries();
            e.insert_loaded("<PERSON_4>".into(), "Ann".into());
            e.insert_loaded("not a placeholder".into(), "x".into());
            assert_eq!(e.tokenise("PERSON", "Ann", FREE, 1).unwrap(), "<PERSON_4>");
            assert_eq!(e.tokenise("PERSON", "Bob", FREE, 1).unwrap(), "<PERSON_5>");
            assert!(e.holds_value("PERSON", "Ann"));
        }
        let debug = format!("{s:?}");
        assert!(!debug.contains("Ann") && !debug.contains("Bob"), "{debug}");
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn unsaved_rows_are_handed_over_once_and_never_after_erasure() {
        let s = session(10);
        let mut e = s.entries();
        e.tokenise("PERSON", "Ann", FREE, 1).unwrap();
        let unsaved = e.take_unsaved().unwrap();
        assert_eq!(unsaved.rows, vec![("<PERSON_1>".into(), "Ann".into())]);
        assert_eq!(
            unsaved.expires_ms,
            1 + 60_000 + 6_000,
            "the disk keeps a margin"
        );
        assert!(e.take_unsaved().is_none());
        e.tokenise("PERSON", "Ann", FREE, 5_000).unwrap();
        assert!(e.take_unsaved().is_none(), "moved within the margin");
        e.tokenise("PERSON", "Ann", FREE, 30_000).unwrap();
        assert_eq!(e.take_unsaved().unwrap().rows.len(), 0, "expiry moved");
        e.set_disk_expiry(96_000);
        assert!(!e.expired(89_999) && e.expired(90_000));
        e.tokenise("PERSON", "Bob", FREE, 30_000).unwrap();
        e.erase();
        assert!(e.take_unsaved().is_none());
        assert_eq!(e.tokenise("PERSON", "Ann", FREE, 30_000), None);
    }
}
