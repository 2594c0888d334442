//! The per-request context every stage reads and fills; when it is dropped — after the
//! response ended, or when the client went away — it records metrics and the log row.

use super::AppState;
use crate::api::openai::Usage;
use crate::audit::record::{AuditEvent, AuditRecord, kind};
use crate::audit::writer::AuditSink;
use crate::store::request_log::RequestRecord;
use crate::tenancy::Principal;
use bytes::Bytes;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::OwnedPermit;

/// Status recorded when the client disconnected before the response finished (nginx's 499).
pub const CLIENT_CLOSED: u16 = 499;

/// One request in flight.
pub struct RequestContext {
    state: Arc<AppState>,
    permit: Option<OwnedPermit<RequestRecord>>,
    started: Instant,
    pub record: RequestRecord,
    upstream_started: Option<Instant>,
    upstream_time: Duration,
    error_code: Option<&'static str>,
    finished: bool,
    /// The audit record was handed over (or there is none to write).
    audited: bool,
    request_payload: Option<Bytes>,
    response_payload: Option<Bytes>,
    /// The agent or conversation session the caller names (`x-session-id`, else the
    /// header a coding agent names its session in).
    session_id: Option<String>,
    /// The natural person the caller acts for: the key's user, else `x-user-id`, else
    /// the request's `user`.
    user_id: Option<String>,
    /// `user_id` is the key's own user.
    user_bound: bool,
    /// The policies in force for this request and what they decided.
    pub policy: super::policy_stage::PolicyState,
    /// Personal data found in the prompt and the session its values were tokenised into.
    pub pii: super::pii_stage::PiiState,
    /// A policy rule sent the request to another model (the response says so).
    pub rerouted: Option<super::policy_stage::Rerouted>,
    /// Provider-run tools left out of the request (the response and the record say so).
    pub dropped_tools: crate::api::hosted::DroppedTools,
    /// A policy said to keep no payloads.
    payloads_dropped: bool,
    /// The request's reservation on its budgets, settled when it ends.
    budget_hold: Option<crate::metering::budget::Hold>,
    /// What the request took from its rate limits, corrected when it ends.
    rate_limits_taken: Option<crate::metering::rate_limits::Taken>,
}

/// The response header carrying a whole answer's cost in dollars.
pub const COST_HEADER: &str = "x-airlock-cost-usd";

/// The header a caller names its session with (an agent run, a conversation).
pub const SESSION_HEADER: &str = "x-session-id";

/// Where coding agents name their session when the caller sets no `x-session-id`:
/// Codex CLI's `session-id`, Claude Code's `x-claude-code-session-id`.
const AGENT_SESSION_HEADERS: [&str; 2] = ["session-id", "x-claude-code-session-id"];

/// The header a caller names the person it acts for with (their payloads are sealed
/// with that person's key, so they can be erased on request).
pub const USER_HEADER: &str = "x-user-id";

/// Longest session or user id kept.
const MAX_LABEL: usize = 128;

/// A caller-given label, if it is a sane one (present, short).
fn label(value: Option<&str>) -> Option<String> {
    value
        .map(str::trim)
        .filter(|s| !s.is_empty() && s.len() <= MAX_LABEL)
        .map(str::to_string)
}

impl RequestContext {
    /// Starts a context; the permit guarantees room for the log row, so the row is never
    /// dropped and the caller waits here when the writer is behind.
    pub fn new(
        state: Arc<AppState>,
        permit: OwnedPermit<RequestRecord>,
        id: Arc<str>,
        endpoint: &'static str,
        client_addr: Arc<str>,
    ) -> Self {
        state.metrics.in_flight.inc();
        Self {
            state,
            permit: Some(permit),
            started: Instant::now(),
            record: RequestRecord {
                id,
                ts_ms: crate::store::now_unix_ms(),
                endpoint,
                client_addr: Some(client_addr),
                status: CLIENT_CLOSED,
                ..Default::default()
            },
            upstream_started: None,
            upstream_time: Duration::ZERO,
            error_code: Some("client_closed"),
            finished: false,
            // Listing models decides nothing worth a record.
            audited: matches!(endpoint, "models" | "gemini_models"),
            request_payload: None,
            response_payload: None,
            session_id: None,
            user_id: None,
            user_bound: false,
            policy: Default::default(),
            pii: Default::default(),
            rerouted: None,
            dropped_tools: Default::default(),
            payloads_dropped: false,
            budget_hold: None,
            rate_limits_taken: None,
        }
    }

    /// Keeps the session and the user the caller names in headers, if sane.
    pub fn set_caller_labels(&mut self, headers: &http::HeaderMap) {
        let header = |name: &str| label(headers.get(name).and_then(|v| v.to_str().ok()));
        self.session_id = header(SESSION_HEADER)
            .or_else(|| AGENT_SESSION_HEADERS.iter().find_map(|name| header(name)));
        if !self.user_bound {
            self.user_id = header(USER_HEADER);
        }
    }

    /// Keeps the end user a request names in its body, unless a header or the key
    /// named one.
    pub fn set_end_user(&mut self, user: Option<&str>) {
        if self.user_id.is_none() {
            self.user_id = label(user);
        }
    }

    /// The natural person the caller acts for, when named.
    pub fn session_id(&self) -> Option<&str> {
        self.session_id.as_deref()
    }

    pub fn user_id(&self) -> Option<&str> {
        self.user_id.as_deref()
    }

    /// Keeps no payload in the audit record (a policy's `log: metadata`).
    pub fn drop_payloads(&mut self) {
        self.request_payload = None;
        self.response_payload = None;
        self.payloads_dropped = true;
    }

    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// Records who is calling. A user's key names the person itself: any user the
    /// caller names (header or body) is ignored.
    pub fn set_principal(&mut self, principal: &Principal) {
        self.record.tenant_id = Some(principal.tenant_id.clone());
        self.record.key_id = Some(principal.key_id.clone());
        self.record.team_id = principal.team_id.clone();
        if let Some(user) = &principal.user {
            self.user_id = Some(user.to_string());
            self.user_bound = true;
        }
    }

    /// Marks the moment the request went to the upstream (if not already under way:
    /// a hedged second attempt does not restart the clock).
    pub fn upstream_begin(&mut self) {
        self.upstream_started.get_or_insert_with(Instant::now);
    }

    /// Marks the moment the upstream finished (or failed); idempotent.
    pub fn upstream_end(&mut self) {
        if let Some(start) = self.upstream_started.take() {
            self.upstream_time += start.elapsed();
        }
    }

    /// Marks the first byte of content sent to the client.
    pub fn first_byte(&mut self) {
        if self.record.ttft_ms.is_none() {
            self.record.ttft_ms = Some(ms(self.started.elapsed()));
        }
    }

    /// Records what the upstream reported using, and what that cost at the served
    /// model's price (none when it is unpriced).
    pub fn set_usage(&mut self, usage: Usage) {
        self.record.prompt_tokens = Some(usage.prompt_tokens);
        self.record.completion_tokens = Some(usage.completion_tokens);
        self.record.cached_tokens = (usage.cached_tokens > 0).then_some(usage.cached_tokens);
        let r = &self.record;
        self.record.cost_nano_usd = match (&r.upstream, &r.upstream_model) {
            (Some(upstream), Some(model)) => self.state.pricing.cost_nanos(upstream, model, &usage),
            _ => None,
        };
    }

    /// Keeps what the request took from its rate limits until it ends.
    pub fn hold_rate_limits(&mut self, taken: crate::metering::rate_limits::Taken) {
        self.rate_limits_taken = Some(taken);
    }

    /// Keeps the request's budget reservation until it ends.
    pub fn hold_budget(&mut self, hold: crate::metering::budget::Hold) {
        self.budget_hold = Some(hold);
    }

    /// The request's cost so far, in nano-dollars.
    pub fn cost_nano_usd(&self) -> Option<i64> {
        self.record.cost_nano_usd
    }

    /// Says what a whole answer cost: `x-airlock-cost-usd` (streams say it in a comment
    /// line at their end, when the usage is known).
    pub fn say_cost(&self, headers: &mut http::HeaderMap) {
        if let Some(nanos) = self.record.cost_nano_usd
            && let Ok(value) = http::HeaderValue::from_str(&crate::metering::usd(nanos))
        {
            headers.insert(COST_HEADER, value);
        }
    }

    /// Names the provider-run tools left out of the request (`x-airlock-dropped-tools`).
    pub fn say_dropped_tools(&self, headers: &mut http::HeaderMap) {
        if !self.dropped_tools.is_empty()
            && let Ok(value) = http::HeaderValue::from_str(&self.dropped_tools.header_value())
        {
            headers.insert(crate::api::hosted::DROPPED_TOOLS_HEADER, value);
        }
    }

    /// Keeps the request body for the audit record (when payloads are recorded).
    pub fn set_request_payload(&mut self, body: &Bytes) {
        if self.state.audit_payloads {
            self.request_payload = Some(body.clone());
        }
    }

    /// Keeps the response body (or a stream's bytes) for the audit record.
    pub fn set_response_payload(&mut self, body: Bytes) {
        if self.state.audit_payloads && !self.payloads_dropped {
            self.response_payload = Some(body);
        }
    }

    /// Whether the audit trail wants this request's response payload.
    pub fn wants_response_payload(&self) -> bool {
        self.state.audit_payloads && !self.audited && !self.payloads_dropped
    }

    /// The audit record of this request, once, with where to write it: `None` when the
    /// trail is off or the record was already handed over.
    pub fn take_audit(&mut self) -> Option<(AuditSink, AuditEvent)> {
        if std::mem::replace(&mut self.audited, true) {
            return None;
        }
        let sink = self.state.audit.clone()?;
        Some((sink, self.audit_event()))
    }

    fn audit_event(&mut self) -> AuditEvent {
        self.note_policy();
        let r = &self.record;
        let trace = self.policy.trace.as_ref();
        let shadow = trace.and_then(|t| t.shadow.as_ref());
        let strings = |list: &[Arc<str>]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let text = |s: &Option<Arc<str>>| s.as_deref().map(str::to_string);
        let record = AuditRecord {
            ts_ms: r.ts_ms,
            kind: kind::LLM_REQUEST.into(),
            tenant_id: text(&r.tenant_id),
            key_id: text(&r.key_id),
            user_id: self.user_id.clone(),
            client_addr: text(&r.client_addr),
            request_id: Some(r.id.to_string()),
            session_id: self.session_id.clone(),
            endpoint: Some(r.endpoint.to_string()),
            model: text(&r.model),
            upstream: text(&r.upstream),
            upstream_model: text(&r.upstream_model),
            experiment: text(&r.experiment),
            arm: text(&r.arm),
            decision: Some(r.decision.unwrap_or("allow").into()),
            policy_version: text(&r.policy_version),
            matched_rules: trace.map(|t| strings(&t.rules)).unwrap_or_default(),
            tags: trace.map(|t| strings(&t.tags)).unwrap_or_default(),
            shadow_policy_version: shadow.map(|s| s.version.to_string()),
            shadow_decision: shadow.map(|s| s.verdict.name().to_string()),
            shadow_rules: shadow.map(|s| strings(&s.rules)).unwrap_or_default(),
            status: Some(r.status),
            error: self.error_code.map(str::to_string),
            prompt_tokens: r.prompt_tokens,
            completion_tokens: r.completion_tokens,
            cost_usd: r
                .cost_nano_usd
                .map(|n| n as f64 / crate::metering::pricing::NANOS_PER_USD as f64),
            latency_ms: Some(ms(self.started.elapsed())),
            data_classes: self.pii.found.clone(),
            team_id: text(&r.team_id),
            requested_model: text(&r.requested_model),
            pii_unscanned: self.pii.unscanned(),
            dropped_tools: self
                .dropped_tools
                .kinds()
                .iter()
                .map(|k| k.to_string())
                .collect(),
            ..AuditRecord::default()
        };
        AuditEvent {
            record,
            request_payload: self.request_payload.take(),
            response_payload: self.response_payload.take(),
        }
    }

    /// Copies the policy's verdict, version and rules, and the data classes found, into
    /// the request log row.
    fn note_policy(&mut self) {
        if !self.pii.found.is_empty() {
            let classes: Vec<String> = self
                .pii
                .found
                .iter()
                .map(|(class, count)| format!("{class}:{count}"))
                .collect();
            self.record.data_classes = Some(classes.join(",").into());
        }
        self.record.pii_unscanned = self.pii.unscanned().map(Arc::from);
        let Some(trace) = &self.policy.trace else {
            return;
        };
        let Some(version) = &trace.version else {
            return;
        };
        self.record.decision = Some(trace.verdict.name());
        self.record.policy_version = Some(version.clone());
        if !trace.rules.is_empty() {
            let rules: Vec<&str> = trace.rules.iter().map(|r| &**r).collect();
            self.record.policy_rules = Some(rules.join(",").into());
        }
    }

    /// Settles what the request took from its rate limits and budgets with what it used.
    /// An answer that started but whose usage never came (the client left mid-stream,
    /// the stream broke) keeps its estimate and its reservation: the upstream generated
    /// tokens nobody counted, and leaving early must not make them free. A request that
    /// got no answer (a failure, a cache hit) used nothing.
    fn settle_quotas(&mut self) {
        let r = &self.record;
        let usage_known = r.prompt_tokens.is_some();
        let answer_started = r.ttft_ms.is_some() && !r.cache_hit;
        if let Some(taken) = self.rate_limits_taken.take() {
            let used = r
                .prompt_tokens
                .unwrap_or(0)
                .saturating_add(r.completion_tokens.unwrap_or(0));
            taken.settle((usage_known || !answer_started).then_some(used));
        }
        if let Some(hold) = self.budget_hold.take() {
            let spent = match r.cost_nano_usd {
                Some(cost) => cost,
                None if answer_started && !usage_known => hold.reserved(),
                None => 0,
            };
            hold.settle(spent, crate::store::now_unix_ms());
        }
    }

    /// Records the outcome; the row is written when the context is dropped.
    pub fn finish(&mut self, status: u16, error_code: Option<&'static str>) {
        self.finished = true;
        self.record.status = status;
        self.error_code = error_code;
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl Drop for RequestContext {
    fn drop(&mut self) {
        self.upstream_end();
        let total = self.started.elapsed();
        let record = &mut self.record;
        record.latency_ms = ms(total);
        record.error_type = self.error_code.map(Arc::from);
        if self.upstream_time > Duration::ZERO {
            record.upstream_latency_ms = Some(ms(self.upstream_time));
        }
        let metrics = &self.state.metrics;
        metrics.in_flight.dec();
        let endpoint = record.endpoint;
        metrics
            .requests
            .get_or_create(&crate::telemetry::metrics::RequestLabels {
                endpoint,
                status: record.status,
            })
            .inc();
        let labels = crate::telemetry::metrics::EndpointLabels { endpoint };
        metrics
            .request_duration
            .get_or_create(&labels)
            .observe(total.as_secs_f64());
        if self.upstream_time > Duration::ZERO {
            metrics
                .upstream_duration
                .get_or_create(&labels)
                .observe(self.upstream_time.as_secs_f64());
            metrics
                .gateway_overhead
                .get_or_create(&labels)
                .observe(total.saturating_sub(self.upstream_time).as_secs_f64());
        }
        if let Some(kind) = self.error_code {
            metrics
                .errors
                .get_or_create(&crate::telemetry::metrics::ErrorLabels { endpoint, kind })
                .inc();
        }
        if let Some(t) = record.prompt_tokens {
            metrics.prompt_tokens.inc_by(t);
        }
        if let Some(t) = record.completion_tokens {
            metrics.completion_tokens.inc_by(t);
        }
        if self.finished {
            tracing::debug!(
                request_id = %record.id,
                status = record.status,
                latency_ms = record.latency_ms,
                model = record.model.as_deref().unwrap_or(""),
                "request finished"
            );
        } else {
            tracing::info!(request_id = %record.id, "client closed the connection before the response ended");
        }
        // A request that ended without a delivered response (the client went away)
        // is recorded too, without anyone waiting for it.
        if let Some((sink, event)) = self.take_audit() {
            sink.record_detached(event);
        }
        self.note_policy();
        self.record.user_id = self.user_id.as_deref().map(Arc::from);
        self.settle_quotas();
        if let Some(permit) = self.permit.take() {
            permit.send(std::mem::take(&mut self.record));
        }
    }
}
