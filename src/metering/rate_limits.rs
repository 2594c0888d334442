//! Requests and tokens per minute of a tenant, team, user or key: token buckets, taken
//! from before a request goes upstream (tokens by an estimate) and corrected with its
//! actual tokens after. A refusal says how long until the bucket holds enough.

use super::budget::Scope;
use crate::store::StoreError;
use crate::tenancy::{Mirrored, admin_event, atomically};
use arc_swap::ArcSwap;
use rusqlite::{Connection, params};
use std::sync::{Arc, Mutex};

/// A rate limit as configured.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RateLimitDef {
    pub id: String,
    pub tenant_id: String,
    pub scope: Scope,
    /// The tenant's, team's or key's id, or the user's name.
    pub scope_id: String,
    pub requests_per_minute: Option<u32>,
    pub tokens_per_minute: Option<u32>,
}

/// A bucket that refills `capacity` units per minute, continuously.
#[derive(Debug)]
struct TokenBucket {
    capacity: f64,
    level: f64,
    at_ms: i64,
}

impl TokenBucket {
    fn full(per_minute: u32, now_ms: i64) -> Self {
        Self {
            capacity: f64::from(per_minute),
            level: f64::from(per_minute),
            at_ms: now_ms,
        }
    }

    fn refill(&mut self, now_ms: i64) {
        let elapsed = (now_ms - self.at_ms).max(0) as f64;
        self.level = (self.level + elapsed * self.capacity / 60_000.0).min(self.capacity);
        self.at_ms = self.at_ms.max(now_ms);
    }

    /// Takes `units`, or says how many milliseconds until it could. A take larger than
    /// the whole bucket passes when the bucket is full (and leaves it in debt), so a big
    /// request is slowed, not refused for ever.
    fn take(&mut self, units: f64, now_ms: i64) -> Result<(), i64> {
        self.refill(now_ms);
        let needed = units.min(self.capacity);
        if self.level >= needed {
            self.level -= units;
            return Ok(());
        }
        Err(((needed - self.level) * 60_000.0 / self.capacity).ceil() as i64)
    }

    /// Gives back (or takes more, when negative) after the fact.
    fn give_back(&mut self, units: f64) {
        self.level = (self.level + units).min(self.capacity);
    }
}

/// A limit and its buckets.
#[derive(Debug)]
pub struct RateLimit {
    pub def: RateLimitDef,
    buckets: Mutex<Buckets>,
}

#[derive(Debug)]
struct Buckets {
    requests: Option<TokenBucket>,
    tokens: Option<TokenBucket>,
}

impl RateLimit {
    fn lock(&self) -> std::sync::MutexGuard<'_, Buckets> {
        // Plain number writes cannot be left half-done: a poisoned lock is still good.
        self.buckets.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limited {
    pub scope: Scope,
    /// `requests` or `tokens`.
    pub what: &'static str,
    pub per_minute: u32,
    pub retry_after_secs: u64,
}

/// A request's takes, corrected with its actual tokens when it ends.
#[derive(Debug)]
pub struct Taken {
    limits: Vec<Arc<RateLimit>>,
    estimated_tokens: u64,
}

impl Taken {
    /// Corrects the token buckets by what the request really used; `None` (used, but
    /// not known how much) keeps the estimate.
    pub fn settle(self, actual_tokens: Option<u64>) {
        let Some(actual_tokens) = actual_tokens else {
            return;
        };
        let correction = self.estimated_tokens as f64 - actual_tokens as f64;
        for limit in &self.limits {
            if let Some(bucket) = limit.lock().tokens.as_mut() {
                bucket.give_back(correction);
            }
        }
    }
}

#[derive(Default)]
struct Snapshot {
    by_subject: super::budget::BySubject<RateLimit>,
    all: Vec<Arc<RateLimit>>,
}

/// Every rate limit and its buckets, kept in step with `rate_limits` by the state mirror.
#[derive(Default)]
pub struct RateLimits {
    snapshot: ArcSwap<Snapshot>,
}

impl RateLimits {
    /// Takes one request and its estimated tokens (asked only when some limit applies)
    /// from every limit of the subject, or from none when one of them is out.
    pub fn take(
        &self,
        subject: super::budget::Subject<'_>,
        estimate_tokens: impl FnOnce() -> u64,
        now_ms: i64,
    ) -> Result<Option<Taken>, Limited> {
        let snapshot = self.snapshot.load();
        if snapshot.all.is_empty() {
            return Ok(None);
        }
        let limits = snapshot
            .by_subject
            .of(subject, |l: &RateLimit| &l.def.tenant_id);
        if limits.is_empty() {
            return Ok(None);
        }
        let estimated_tokens = estimate_tokens();
        let tokens = estimated_tokens as f64;
        for (index, limit) in limits.iter().enumerate() {
            let mut buckets = limit.lock();
            let refused = match buckets.requests.as_mut().map(|b| b.take(1.0, now_ms)) {
                Some(Err(wait)) => Some(("requests", limit.def.requests_per_minute, wait)),
                _ => match buckets.tokens.as_mut().map(|b| b.take(tokens, now_ms)) {
                    Some(Err(wait)) => {
                        if let Some(requests) = buckets.requests.as_mut() {
                            requests.give_back(1.0);
                        }
                        Some(("tokens", limit.def.tokens_per_minute, wait))
                    }
                    _ => None,
                },
            };
            let Some((what, per_minute, wait_ms)) = refused else {
                continue;
            };
            drop(buckets);
            for taken in &limits[..index] {
                let mut buckets = taken.lock();
                if let Some(b) = buckets.requests.as_mut() {
                    b.give_back(1.0);
                }
                if let Some(b) = buckets.tokens.as_mut() {
                    b.give_back(tokens);
                }
            }
            return Err(Limited {
                scope: limit.def.scope,
                what,
                per_minute: per_minute.unwrap_or(0),
                retry_after_secs: u64::try_from(wait_ms).unwrap_or(0).div_ceil(1000).max(1),
            });
        }
        Ok(Some(Taken {
            limits,
            estimated_tokens,
        }))
    }

    /// Every limit, of one tenant or all.
    pub fn defs(&self, tenant_id: Option<&str>) -> Vec<RateLimitDef> {
        self.snapshot
            .load()
            .all
            .iter()
            .filter(|l| tenant_id.is_none_or(|t| l.def.tenant_id == t))
            .map(|l| l.def.clone())
            .collect()
    }
}

impl Mirrored for RateLimits {
    fn counter(&self) -> &'static str {
        "rate_limits"
    }

    /// Re-reads the limits; an unchanged one keeps its buckets, a new or changed one
    /// starts full.
    fn reload(&self, conn: &Connection) -> Result<(), StoreError> {
        let old = self.snapshot.load();
        let now = crate::store::now_unix_ms();
        let mut snapshot = Snapshot::default();
        for def in RateLimitStore::new(conn).list(None)? {
            let limit = match old.all.iter().find(|l| l.def == def) {
                Some(kept) => kept.clone(),
                None => Arc::new(RateLimit {
                    buckets: Mutex::new(Buckets {
                        requests: def.requests_per_minute.map(|n| TokenBucket::full(n, now)),
                        tokens: def.tokens_per_minute.map(|n| TokenBucket::full(n, now)),
                    }),
                    def,
                }),
            };
            snapshot
                .by_subject
                .insert(limit.def.scope, &limit.def.scope_id, limit.clone());
            snapshot.all.push(limit);
        }
        self.snapshot.store(Arc::new(snapshot));
        Ok(())
    }
}

/// Rate limits in the state database.
pub struct RateLimitStore<'a> {
    conn: &'a Connection,
}

impl<'a> RateLimitStore<'a> {
    pub fn new(conn: &'a Connection) -> Self {
        Self { conn }
    }

    /// Sets the limits of a scope's subject (replacing its earlier ones).
    pub fn put(&self, def: &RateLimitDef, actor: &str) -> Result<RateLimitDef, StoreError> {
        if def.requests_per_minute.is_none() && def.tokens_per_minute.is_none()
            || def.requests_per_minute == Some(0)
            || def.tokens_per_minute == Some(0)
        {
            return Err(StoreError::Invalid(
                "give `requests_per_minute`, `tokens_per_minute` or both, above zero".into(),
            ));
        }
        atomically(self.conn, || {
            let id = super::quota_rows::id_for(
                self.conn,
                "rate_limits",
                "rl_",
                (&def.tenant_id, def.scope, &def.scope_id),
                None,
            )?;
            self.conn.execute(
                "INSERT INTO rate_limits (id, tenant_id, scope, scope_id, requests_per_minute,
                     tokens_per_minute, updated_ms, actor)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (id) DO UPDATE SET requests_per_minute = ?5,
                     tokens_per_minute = ?6, updated_ms = ?7, actor = ?8",
                params![
                    id,
                    def.tenant_id,
                    def.scope.name(),
                    def.scope_id,
                    def.requests_per_minute,
                    def.tokens_per_minute,
                    crate::store::now_unix_ms(),
                    actor
                ],
            )?;
            let detail = format!(
                "{} {} rpm={:?} tpm={:?}",
                def.scope.name(),
                def.scope_id,
                def.requests_per_minute,
                def.tokens_per_minute
            );
            admin_event(
                self.conn,
                actor,
                "rate_limit.put",
                &id,
                Some(&def.tenant_id),
                Some(&detail),
            )?;
            Ok(RateLimitDef { id, ..def.clone() })
        })
    }

    /// Deletes a limit of `tenant_id` (any tenant's with `None`); false when none.
    pub fn delete(
        &self,
        id: &str,
        tenant_id: Option<&str>,
        actor: &str,
    ) -> Result<bool, StoreError> {
        atomically(self.conn, || {
            super::quota_rows::delete(
                self.conn,
                "rate_limits",
                "rate_limit.delete",
                id,
                tenant_id,
                actor,
            )
        })
    }

    /// Every limit, of one tenant or all.
    pub fn list(&self, tenant_id: Option<&str>) -> Result<Vec<RateLimitDef>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, tenant_id, scope, scope_id, requests_per_minute, tokens_per_minute
             FROM rate_limits WHERE ?1 IS NULL OR tenant_id = ?1 ORDER BY tenant_id, id",
        )?;
        let rows = stmt.query_map([tenant_id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Option<u32>>(4)?,
                r.get::<_, Option<u32>>(5)?,
            ))
        })?;
        let mut defs = Vec::new();
        for row in rows {
            let (id, tenant_id, scope, scope_id, rpm, tpm) = row?;
            defs.push(RateLimitDef {
                scope: Scope::from_name(&scope)
                    .ok_or_else(|| StoreError::Invalid(format!("rate limit {id}: bad scope")))?,
                id,
                tenant_id,
                scope_id,
                requests_per_minute: rpm,
                tokens_per_minute: tpm,
            });
        }
        Ok(defs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_refill_continuously_and_say_when_to_retry() {
        let mut bucket = TokenBucket::full(60, 0);
        for _ in 0..60 {
            bucket.take(1.0, 0).unwrap();
        }
        // One unit a second.
        assert_eq!(bucket.take(1.0, 0), Err(1000));
        assert_eq!(bucket.take(1.0, 500), Err(500));
        bucket.take(1.0, 1000).unwrap();
        // A take larger than the bucket passes only when it is full, leaving a debt.
        let mut tokens = TokenBucket::full(100, 0);
        tokens.take(250.0, 0).unwrap();
        assert_eq!(tokens.take(1.0, 0), Err(90_600));
        tokens.give_back(200.0);
        tokens.take(40.0, 0).unwrap();
        tokens.give_back(1e9);
        assert_eq!(tokens.level, 100.0);
    }
}
