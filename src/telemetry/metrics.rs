//! Prometheus metrics: requests, errors, latency, upstream latency, gateway overhead,
//! routing state, policy decisions and the audit index's lag.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Labels of a finished request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub endpoint: &'static str,
    pub status: u16,
}

/// Labels of a timing histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    pub endpoint: &'static str,
}

/// Labels of an error counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub endpoint: &'static str,
    pub kind: &'static str,
}

/// Labels of one route target.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TargetLabels {
    pub model: String,
    pub upstream: String,
    pub upstream_model: String,
}

/// Labels of one upstream server.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamLabels {
    pub upstream: String,
}

/// Labels of an upstream attempt.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AttemptLabels {
    pub model: String,
    pub upstream: String,
    pub upstream_model: String,
    /// `ok`, `error` (the target failed), `rate_limited`, `rejected` (a 4xx).
    pub outcome: &'static str,
}

/// Labels of a policy decision.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    /// `request` or `response`.
    pub phase: &'static str,
    /// `allow`, `require_approval`, `deny`.
    pub verdict: &'static str,
}

/// What the policies decided, and how long deciding took.
#[derive(Clone)]
pub struct PolicyMetrics {
    pub decisions: Family<DecisionLabels, Counter>,
    /// What the shadow version would have decided.
    pub shadow_decisions: Family<DecisionLabels, Counter>,
    /// `when:` conditions that failed to evaluate (their rule did not match).
    pub condition_errors: Counter,
    /// Seconds per evaluation of the active version.
    pub evaluation: Histogram,
}

impl Default for PolicyMetrics {
    fn default() -> Self {
        Self {
            decisions: Family::default(),
            shadow_decisions: Family::default(),
            condition_errors: Counter::default(),
            // 1 µs … 10 ms.
            evaluation: Histogram::new([
                0.000001, 0.0000025, 0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005,
                0.001, 0.01,
            ]),
        }
    }
}

/// The personal-data stage.
#[derive(Clone, Default)]
pub struct PiiMetrics {
    /// Prompt texts the NER model should have read but could not (unloaded, overloaded).
    pub ner_missing: Counter,
    /// Prompt texts answered from the scan-once cache.
    pub cache_hits: Counter,
    /// Findings in prompts, by the role of their message and its handling.
    pub findings: Family<FindingLabels, Counter>,
}

/// Labels of personal data found in a prompt.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FindingLabels {
    /// The role of the message it was in: `system`, `developer`, `user`, `assistant`,
    /// `tool`.
    pub role: &'static str,
    /// What `pii.roles` says for that role: `apply` (the plan rewrites it where it acts)
    /// or `detect` (recorded, forwarded as written).
    pub handling: &'static str,
}

/// Labels of a connection the listener refused or closed: why.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnectionLabels {
    /// Refused: `total` or `per_client` (which cap was full). Closed: `header` (no
    /// request head in time) or `idle` (no request in flight for too long).
    pub reason: &'static str,
}

/// The client connections of the listener.
#[derive(Clone, Default)]
pub struct ConnectionMetrics {
    /// Connections open now.
    pub open: Gauge,
    /// Connections closed as soon as accepted because a cap was full.
    pub refused: Family<ConnectionLabels, Counter>,
    /// Connections the server closed for sending too little.
    pub timed_out: Family<ConnectionLabels, Counter>,
}

fn latency_histogram() -> Histogram {
    // 100 µs … ~100 s: gateway overhead lives at the low end, generations at the high end.
    Histogram::new([
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
        5.0, 10.0, 30.0, 60.0, 120.0,
    ])
}

type HistogramFamily = Family<EndpointLabels, Histogram, fn() -> Histogram>;

/// All metrics of one gateway process.
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub errors: Family<ErrorLabels, Counter>,
    pub request_duration: HistogramFamily,
    pub upstream_duration: HistogramFamily,
    pub gateway_overhead: HistogramFamily,
    pub in_flight: Gauge,
    pub prompt_tokens: Counter,
    pub completion_tokens: Counter,
    pub upstream_attempts: Family<AttemptLabels, Counter>,
    pub breaker_state: Family<TargetLabels, Gauge>,
    pub upstream_healthy: Family<UpstreamLabels, Gauge>,
    pub audit_index: AuditIndexMetrics,
    pub writers: WriterMetrics,
    pub policy: PolicyMetrics,
    pub pii: PiiMetrics,
    pub connections: ConnectionMetrics,
}

/// How far the audit search index trails the log.
#[derive(Clone, Default)]
pub struct AuditIndexMetrics {
    pub lag_records: Gauge,
    pub lag_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub indexed: Counter,
}

/// The writer threads behind bounded queues: how often a request found a queue full and
/// waited for room (rows and records are never dropped to keep up).
#[derive(Clone, Default)]
pub struct WriterMetrics {
    pub audit_queue_waits: Counter,
    pub request_log_queue_waits: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("airlock");
        let requests = Family::<RequestLabels, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let request_duration = HistogramFamily::new_with_constructor(latency_histogram);
        let upstream_duration = HistogramFamily::new_with_constructor(latency_histogram);
        let gateway_overhead = HistogramFamily::new_with_constructor(latency_histogram);
        let in_flight = Gauge::default();
        let prompt_tokens = Counter::default();
        let completion_tokens = Counter::default();
        let upstream_attempts = Family::<AttemptLabels, Counter>::default();
        let breaker_state = Family::<TargetLabels, Gauge>::default();
        let upstream_healthy = Family::<UpstreamLabels, Gauge>::default();
        registry.register(
            "requests",
            "Requests answered, by endpoint and status",
            requests.clone(),
        );
        registry.register(
            "errors",
            "Requests that failed, by endpoint and error kind",
            errors.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from request head to the end of the response",
            request_duration.clone(),
        );
        registry.register(
            "upstream_duration_seconds",
            "Time spent waiting on the upstream (head and body)",
            upstream_duration.clone(),
        );
        registry.register(
            "gateway_overhead_seconds",
            "Request duration minus upstream duration: what Airlock itself adds",
            gateway_overhead.clone(),
        );
        registry.register(
            "in_flight_requests",
            "Requests being served now",
            in_flight.clone(),
        );
        registry.register(
            "prompt_tokens",
            "Prompt tokens reported by upstreams",
            prompt_tokens.clone(),
        );
        registry.register(
            "completion_tokens",
            "Completion tokens reported by upstreams",
            completion_tokens.clone(),
        );
        registry.register(
            "upstream_attempts",
            "Attempts sent to route targets (retries and failovers included), by outcome",
            upstream_attempts.clone(),
        );
        registry.register(
            "breaker_state",
            "Circuit breaker of each route target: 0 closed, 1 half-open, 2 open",
            breaker_state.clone(),
        );
        registry.register(
            "upstream_healthy",
            "Whether each upstream is in rotation: 1, or 0 while its health check fails",
            upstream_healthy.clone(),
        );
        let audit_index = AuditIndexMetrics::registered(&mut registry);
        let writers = WriterMetrics::registered(&mut registry);
        let policy = PolicyMetrics::registered(&mut registry);
        let pii = PiiMetrics::registered(&mut registry);
        let connections = ConnectionMetrics::registered(&mut registry);
        Self {
            registry,
            connections,
            policy,
            pii,
            audit_index,
            writers,
            requests,
            errors,
            request_duration,
            upstream_duration,
            gateway_overhead,
            in_flight,
            prompt_tokens,
            completion_tokens,
            upstream_attempts,
            breaker_state,
            upstream_healthy,
        }
    }

    /// Renders the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8192);
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl AuditIndexMetrics {
    /// The group's metrics, registered.
    fn registered(registry: &mut Registry) -> Self {
        let group = Self::default();
        registry.register(
            "audit_index_lag_records",
            "Audit records not yet searchable, when the indexer last looked",
            group.lag_records.clone(),
        );
        registry.register(
            "audit_index_lag_seconds",
            "Age of the oldest audit record not yet searchable, when the indexer last looked",
            group.lag_seconds.clone(),
        );
        registry.register(
            "audit_indexed_records",
            "Audit records added to the search index",
            group.indexed.clone(),
        );
        group
    }
}

impl WriterMetrics {
    /// The group's metrics, registered.
    fn registered(registry: &mut Registry) -> Self {
        let group = Self::default();
        registry.register(
            "audit_queue_waits",
            "Audit events that found the writer's queue full and waited for room",
            group.audit_queue_waits.clone(),
        );
        registry.register(
            "request_log_queue_waits",
            "Request-log rows that found the writer's queue full and waited for room",
            group.request_log_queue_waits.clone(),
        );
        group
    }
}

impl PolicyMetrics {
    /// The group's metrics, registered.
    fn registered(registry: &mut Registry) -> Self {
        let group = Self::default();
        registry.register(
            "policy_decisions",
            "Decisions of the active policy version, by phase and verdict",
            group.decisions.clone(),
        );
        registry.register(
            "policy_shadow_decisions",
            "What the shadow policy version would have decided, by phase and verdict",
            group.shadow_decisions.clone(),
        );
        registry.register(
            "policy_condition_errors",
            "Policy `when:` conditions that failed to evaluate (their rule did not match)",
            group.condition_errors.clone(),
        );
        registry.register(
            "policy_evaluation_seconds",
            "Time to evaluate the active policy version once",
            group.evaluation.clone(),
        );
        group
    }
}

impl PiiMetrics {
    /// The group's metrics, registered.
    fn registered(registry: &mut Registry) -> Self {
        let group = Self::default();
        registry.register(
            "pii_ner_missing",
            "Requests whose prompt the NER model did not wholly read (not loaded, past the request's budget, over the byte limit), refused or let through as configured",
            group.ner_missing.clone(),
        );
        registry.register(
            "pii_scan_cache_hits",
            "Prompt texts whose findings came from the scan-once cache",
            group.cache_hits.clone(),
        );
        registry.register(
            "pii_findings",
            "Personal data found in prompts, by the role of the message it was in and that role's handling (apply: rewritten where the plan acts; detect: recorded, forwarded as written)",
            group.findings.clone(),
        );
        group
    }
}

impl ConnectionMetrics {
    /// The group's metrics, registered.
    fn registered(registry: &mut Registry) -> Self {
        let group = Self::default();
        registry.register(
            "connections_open",
            "Client connections open now",
            group.open.clone(),
        );
        registry.register(
            "connections_refused",
            "Client connections closed at accept because a connection cap was full, by cap",
            group.refused.clone(),
        );
        registry.register(
            "connections_timed_out",
            "Client connections closed for sending no request head in time (header) or \
             having no request in flight for too long (idle)",
            group.timed_out.clone(),
        );
        group
    }
}
