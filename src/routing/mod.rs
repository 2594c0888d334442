//! The route table: which targets (upstream + upstream model) serve a logical model name,
//! in which order a request tries them, and how long it waits between tries.

pub mod breaker;
pub mod cache;
pub mod capabilities;
pub mod experiment;
pub mod health;

use crate::config::{LoadedConfig, RetryConfig, Strategy};
use crate::providers::openai_compat::Upstream;
use crate::telemetry::metrics::{AttemptLabels, Metrics, TargetLabels, UpstreamLabels};
use crate::tenancy::credentials::{CredentialPolicy, CredentialSource};
use breaker::Breaker;
use prometheus_client::metrics::counter::Counter;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// One place a logical model is served from.
#[derive(Debug)]
pub struct Target {
    pub upstream: Arc<Upstream>,
    pub upstream_model: Arc<str>,
    pub weight: u32,
    pub priority: u32,
    pub capabilities: crate::config::Capabilities,
    pub cost: f64,
    /// The experiment arm this target serves; `None` serves every arm.
    pub arm: Option<Arc<str>>,
    /// Provider credentials to authenticate with instead of the upstream's own key.
    pub credential: Option<CredentialPolicy>,
    pub breaker: Breaker,
    /// Attempts sent and not yet answered in full (streams: until they end).
    outstanding: AtomicU32,
    /// Moving average of the time to the answer's start, in microseconds; 0 until the
    /// first success.
    latency_us: AtomicU64,
    /// Attempt counters by outcome, resolved once (no label lookup per request).
    attempts: [Counter; ATTEMPT_OUTCOMES.len()],
    labels: TargetLabels,
}

/// Outcome labels of `airlock_upstream_attempts`.
const ATTEMPT_OUTCOMES: [&str; 4] = ["ok", "error", "rate_limited", "rejected"];

/// How an attempt on a target ended, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    Ok = 0,
    Error = 1,
    RateLimited = 2,
    Rejected = 3,
}

impl Target {
    /// Counts one attempt.
    pub fn count_attempt(&self, outcome: AttemptOutcome) {
        self.attempts[outcome as usize].inc();
    }

    /// Marks an attempt in flight until the returned guard is dropped (kept only for
    /// the `least_outstanding` strategy, which reads it).
    pub fn begin(&self) -> InFlight<'_> {
        self.outstanding.fetch_add(1, Ordering::Relaxed);
        InFlight { target: self }
    }

    /// Folds one observed time to the answer's start into the moving average
    /// (weight 1/4 for the newest sample).
    pub fn observe_latency(&self, elapsed: Duration) {
        let sample = u64::try_from(elapsed.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        let _ = self
            .latency_us
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                Some(if old == 0 {
                    sample
                } else {
                    (old * 3 + sample) / 4
                })
            });
    }

    /// The target as operators see it: where it goes, its health, breaker, load and
    /// attempt counts.
    pub fn snapshot(&self, index: usize) -> serde_json::Value {
        let latency_us = self.latency_us.load(Ordering::Relaxed);
        let attempts: serde_json::Map<String, serde_json::Value> = ATTEMPT_OUTCOMES
            .iter()
            .zip(&self.attempts)
            .map(|(outcome, counter)| ((*outcome).to_string(), counter.get().into()))
            .collect();
        serde_json::json!({
            "index": index,
            "upstream": self.upstream.name,
            "upstream_model": self.upstream_model,
            "weight": self.weight,
            "priority": self.priority,
            "cost": self.cost,
            "arm": self.arm,
            "credential": self.credential.as_ref().map(|c| match &c.source {
                CredentialSource::Tenant => "tenant",
                CredentialSource::Named(name) => name,
            }),
            "healthy": self.upstream.is_healthy(),
            "breaker": self.breaker.snapshot(std::time::Instant::now()),
            "outstanding": self.outstanding.load(Ordering::Relaxed),
            "latency_ms": (latency_us > 0).then(|| latency_us as f64 / 1000.0),
            "attempts": attempts,
        })
    }

    /// The sort key of this target under `strategy` (lower goes first).
    fn rank(&self, strategy: Strategy) -> f64 {
        match strategy {
            Strategy::Weighted => 0.0,
            Strategy::LeastOutstanding => f64::from(self.outstanding.load(Ordering::Relaxed)),
            Strategy::Latency => self.latency_us.load(Ordering::Relaxed) as f64,
            Strategy::Cost => self.cost,
        }
    }
}

/// An attempt in flight on a target (see [`Target::begin`]).
#[derive(Debug)]
pub struct InFlight<'a> {
    target: &'a Target,
}

impl InFlight<'_> {
    /// Keeps the attempt counted after the guard goes; [`StreamOutcome`] ends it.
    fn hand_over(self) {
        std::mem::forget(self);
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.target.outstanding.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Where one logical model goes.
#[derive(Debug)]
pub struct Route {
    pub model: Arc<str>,
    /// Sorted by priority.
    pub targets: Vec<Target>,
    pub retry: RetryConfig,
    pub strategy: Strategy,
    pub experiment: Option<experiment::Experiment>,
    pub cache: Option<cache::ResponseCache>,
    /// Start a second target after this long without an answer.
    pub hedge: Option<Duration>,
    /// Some target declares it cannot do something: requests must be matched against
    /// capabilities (otherwise every target serves every request).
    pub limits_capabilities: bool,
}

impl Route {
    /// The route as operators see it, with every target's state.
    pub fn snapshot(&self) -> serde_json::Value {
        let targets: Vec<serde_json::Value> = self
            .targets
            .iter()
            .enumerate()
            .map(|(index, target)| target.snapshot(index))
            .collect();
        serde_json::json!({
            "model": self.model,
            "strategy": self.strategy,
            "retry_attempts": self.retry.attempts,
            "experiment": self.experiment.as_ref().map(|e| &e.name),
            "hedge_after_ms": self.hedge.map(|h| h.as_millis() as u64),
            "cache": self.cache.is_some(),
            "targets": targets,
        })
    }
}

/// A streamed attempt's breaker outcome, known only when the stream ends; the attempt
/// counts as in flight until then. Dropped unsettled (the client went away), it records
/// nothing and frees a probe slot.
#[derive(Debug)]
pub struct StreamOutcome {
    route: Arc<Route>,
    index: usize,
    probe: bool,
    settled: bool,
    /// The attempt is counted in flight (see [`Target::begin`]).
    in_flight: bool,
}

impl StreamOutcome {
    /// Takes over `admission` and `in_flight` for target `index` of `route`.
    pub fn new(
        route: Arc<Route>,
        index: usize,
        admission: breaker::Admission<'_>,
        in_flight: Option<InFlight<'_>>,
    ) -> Self {
        Self {
            probe: admission.defer(),
            in_flight: in_flight.map(InFlight::hand_over).is_some(),
            route,
            index,
            settled: false,
        }
    }

    pub fn settle(&mut self, outcome: breaker::Outcome) {
        if !std::mem::replace(&mut self.settled, true) {
            self.target().breaker.settle_deferred(self.probe, outcome);
        }
    }

    fn target(&self) -> &Target {
        &self.route.targets[self.index]
    }
}

impl Drop for StreamOutcome {
    fn drop(&mut self) {
        if self.in_flight {
            self.target().outstanding.fetch_sub(1, Ordering::Relaxed);
        }
        if !self.settled && self.probe {
            self.target().breaker.release_probe();
        }
    }
}

/// All routes, by logical model name.
#[derive(Debug, Default)]
pub struct RouteTable {
    routes: HashMap<String, Arc<Route>>,
    /// Every upstream, by name.
    upstreams: Vec<Arc<Upstream>>,
    /// Logical names, sorted, for `/v1/models`.
    names: Vec<String>,
}

impl RouteTable {
    /// Builds clients for every upstream (one connection pool per worker thread) and
    /// the routes that use them.
    pub fn from_config(
        loaded: &LoadedConfig,
        workers: usize,
        metrics: &Metrics,
    ) -> Result<Self, String> {
        let mut upstreams = HashMap::new();
        for (name, cfg) in &loaded.config.upstreams {
            upstreams.insert(
                name.clone(),
                Arc::new(Upstream::new(name, &cfg.value, loaded, workers)?),
            );
        }
        let mut routes = HashMap::new();
        for (model, route) in &loaded.config.models {
            let mut targets = Vec::new();
            for target in route.value.target_list() {
                let upstream = upstreams.get(&target.upstream).ok_or_else(|| {
                    format!("model `{model}`: unknown upstream `{}`", target.upstream)
                })?;
                let upstream_model = target.model.as_deref().unwrap_or(model);
                let labels = TargetLabels {
                    model: model.clone(),
                    upstream: target.upstream.clone(),
                    upstream_model: upstream_model.to_string(),
                };
                let attempts = ATTEMPT_OUTCOMES.map(|outcome| {
                    metrics
                        .upstream_attempts
                        .get_or_create(&AttemptLabels {
                            model: labels.model.clone(),
                            upstream: labels.upstream.clone(),
                            upstream_model: labels.upstream_model.clone(),
                            outcome,
                        })
                        .clone()
                });
                targets.push(Target {
                    upstream: upstream.clone(),
                    upstream_model: upstream_model.into(),
                    weight: target.weight.max(1),
                    priority: target.priority,
                    capabilities: target.capabilities.clone(),
                    cost: target.cost,
                    arm: target.arm.as_deref().map(Arc::from),
                    credential: target.credential.as_deref().map(|c| CredentialPolicy {
                        source: match c {
                            "tenant" => CredentialSource::Tenant,
                            name => CredentialSource::Named(name.into()),
                        },
                        strategy: target.credential_strategy,
                        fallback: target.credential_fallback,
                    }),
                    breaker: Breaker::new(&route.value.breaker),
                    outstanding: AtomicU32::new(0),
                    latency_us: AtomicU64::new(0),
                    attempts,
                    labels,
                });
            }
            targets.sort_by_key(|t| t.priority);
            let limits_capabilities = targets
                .iter()
                .any(|t| t.capabilities != crate::config::Capabilities::default());
            routes.insert(
                model.clone(),
                Arc::new(Route {
                    model: model.as_str().into(),
                    targets,
                    retry: route.value.retry.clone(),
                    strategy: route.value.strategy,
                    experiment: route
                        .value
                        .experiment
                        .as_ref()
                        .map(experiment::Experiment::new),
                    cache: route.value.cache.as_ref().map(cache::ResponseCache::new),
                    hedge: route
                        .value
                        .hedge
                        .as_ref()
                        .map(|h| Duration::from_millis(h.after_ms)),
                    limits_capabilities,
                }),
            );
        }
        let mut names: Vec<String> = routes.keys().cloned().collect();
        names.sort();
        let mut upstreams: Vec<Arc<Upstream>> = upstreams.into_values().collect();
        upstreams.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Self {
            routes,
            upstreams,
            names,
        })
    }

    pub fn get(&self, model: &str) -> Option<&Arc<Route>> {
        self.routes.get(model)
    }

    /// Logical model names, sorted.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn upstreams(&self) -> &[Arc<Upstream>] {
        &self.upstreams
    }

    /// Sets the breaker-state and upstream-health gauges (called when metrics are
    /// scraped).
    pub fn export_state(&self, metrics: &Metrics) {
        for upstream in &self.upstreams {
            metrics
                .upstream_healthy
                .get_or_create(&UpstreamLabels {
                    upstream: upstream.name.to_string(),
                })
                .set(i64::from(upstream.is_healthy()));
        }
        let now = std::time::Instant::now();
        for target in self.routes.values().flat_map(|r| r.targets.iter()) {
            metrics
                .breaker_state
                .get_or_create(&target.labels)
                .set(target.breaker.state(now) as i64);
        }
    }
}

impl Route {
    /// The order one request tries the targets in: priority by priority; within a
    /// priority, a weighted random order (each next target drawn with probability
    /// proportional to its weight among those left), then sorted by the route's
    /// strategy (ties keep the weighted order).
    pub fn attempt_order(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.targets.len()).collect();
        let mut start = 0;
        while start < order.len() {
            let priority = self.targets[order[start]].priority;
            let end = order[start..]
                .iter()
                .position(|&i| self.targets[i].priority != priority)
                .map_or(order.len(), |n| start + n);
            for slot in start..end.saturating_sub(1) {
                let total: u64 = order[slot..end]
                    .iter()
                    .map(|&i| u64::from(self.targets[i].weight))
                    .sum();
                let mut pick = crate::random::random_u64() % total.max(1);
                let chosen = order[slot..end]
                    .iter()
                    .position(|&i| {
                        let weight = u64::from(self.targets[i].weight);
                        if pick < weight {
                            return true;
                        }
                        pick -= weight;
                        false
                    })
                    .unwrap_or(0);
                order.swap(slot, slot + chosen);
            }
            if self.strategy != Strategy::Weighted {
                order[start..end].sort_by(|&a, &b| {
                    let rank = |i: usize| self.targets[i].rank(self.strategy);
                    rank(a).total_cmp(&rank(b))
                });
            }
            start = end;
        }
        order
    }

    /// The wait before retry number `retry` (1 for the first retry): exponential from
    /// `backoff_ms`, capped at `max_backoff_ms`, with full jitter.
    pub fn backoff(&self, retry: u32) -> Duration {
        let base = self.retry.backoff_ms.max(1);
        let ceiling = base
            .saturating_mul(1u64 << retry.saturating_sub(1).min(20))
            .min(self.retry.max_backoff_ms.max(base));
        Duration::from_millis(crate::random::random_u64() % (ceiling + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(targets: &str) -> Arc<Route> {
        route_with(targets, "")
    }

    /// A route `m` over upstreams a, b, c with `targets` and more `settings` lines.
    fn route_with(targets: &str, settings: &str) -> Arc<Route> {
        let text = format!(
            "upstreams:
  a: {{base_url: 'http://127.0.0.1:9/v1'}}
  b: {{base_url: 'http://127.0.0.1:9/v1'}}
  c: {{base_url: 'http://127.0.0.1:9/v1'}}
models:
  m:
    targets: {targets}
{settings}"
        );
        let loaded =
            LoadedConfig::from_text(std::path::Path::new("/nonexistent/airlock.yaml"), &text)
                .unwrap();
        RouteTable::from_config(&loaded, 1, &Metrics::new())
            .unwrap()
            .get("m")
            .unwrap()
            .clone()
    }

    #[test]
    fn priorities_come_in_order_and_weights_share_the_first_place() {
        // The table sorts targets by priority: a, b (priority 0), then c.
        let route = route(
            "[{upstream: a, weight: 3}, {upstream: c, priority: 1, weight: 5}, {upstream: b}]",
        );
        assert_eq!(&*route.targets[2].upstream.name, "c");
        let mut first = [0u32; 3];
        for _ in 0..10_000 {
            let order = route.attempt_order();
            assert_eq!(order.len(), 3);
            assert_eq!(order[2], 2, "priority 1 only after every priority 0");
            first[order[0]] += 1;
        }
        // 3:1 → 75% first; five standard deviations is about ±2.2%.
        let share = f64::from(first[0]) / 10_000.0;
        assert!((0.728..=0.772).contains(&share), "share {share}");
    }

    #[test]
    fn strategies_order_targets_of_one_priority() {
        let fewest = route_with(
            "[{upstream: a}, {upstream: b}]",
            "    strategy: least_outstanding\n",
        );
        let busy = fewest.targets[0].begin();
        for _ in 0..50 {
            assert_eq!(fewest.attempt_order(), [1, 0]);
        }
        drop(busy);
        let fastest = route_with(
            "[{upstream: a}, {upstream: b}, {upstream: c}]",
            "    strategy: latency\n",
        );
        fastest.targets[0].observe_latency(Duration::from_millis(10));
        fastest.targets[1].observe_latency(Duration::from_millis(1));
        assert_eq!(
            fastest.attempt_order(),
            [2, 1, 0],
            "unmeasured first, then fastest"
        );
        for _ in 0..20 {
            fastest.targets[1].observe_latency(Duration::from_millis(50));
        }
        fastest.targets[2].observe_latency(Duration::from_millis(20));
        assert_eq!(
            fastest.attempt_order(),
            [0, 2, 1],
            "the average follows what it sees"
        );
        let cheapest = route_with(
            "[{upstream: a, cost: 5}, {upstream: b, cost: 0.5}, {upstream: c, cost: 1, priority: 1}]",
            "    strategy: cost\n",
        );
        assert_eq!(
            cheapest.attempt_order(),
            [1, 0, 2],
            "priority still comes first"
        );
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let route = route("[{upstream: a}]");
        for retry in 1..12 {
            let cap = (50u64 << (retry - 1)).min(2_000);
            for _ in 0..100 {
                assert!(route.backoff(retry) <= Duration::from_millis(cap));
            }
        }
    }
}
