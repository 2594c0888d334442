//! The gateway's policy stage: a request's facts, the active policy's verdict and effects
//! (the shadow's only recorded), and the trace the request log and audit record keep.

use super::context::RequestContext;
use super::error::ApiError;
use crate::api::openai::ForwardedRequest;
use crate::policy::active::{Loaded, Policies};
use crate::policy::eval::{Classes, Decision, Reroute};
use crate::policy::source::{LogLevel, RateLimitScope};
use crate::policy::{Facts, Phase, Verdict, evaluate};
use crate::routing::Route;
use crate::telemetry::metrics::DecisionLabels;
use crate::tenancy::Principal;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Headers a policy never sees: credentials.
const HIDDEN_HEADERS: [&str; 4] = [
    "authorization",
    "x-api-key",
    "cookie",
    "proxy-authorization",
];

/// The policy side of one request: the versions in force when it arrived (kept to its
/// end, so both phases see the same version), its facts, and what was decided.
#[derive(Default)]
pub struct PolicyState {
    policies: Option<Arc<Policies>>,
    headers: BTreeMap<String, String>,
    facts: Option<Box<Facts>>,
    pub trace: Option<PolicyTrace>,
    /// The data classes the active version's rules said to redact and to tokenise.
    pub pii_decision: (Classes, Classes),
}

/// What the policies decided, for the request log and the audit record.
#[derive(Debug, Clone)]
pub struct PolicyTrace {
    /// The active version (none: only a shadow version is set, and nothing is enforced).
    pub version: Option<Arc<str>>,
    pub verdict: Verdict,
    pub rules: Vec<Arc<str>>,
    pub tags: Vec<Arc<str>>,
    pub log: Option<LogLevel>,
    pub shadow: Option<ShadowTrace>,
}

/// What the shadow version would have decided.
#[derive(Debug, Clone)]
pub struct ShadowTrace {
    pub version: Arc<str>,
    pub verdict: Verdict,
    pub rules: Vec<Arc<str>>,
}

impl PolicyState {
    /// Takes the policies in force as the request arrives, and (when there are any) the
    /// request's headers, credentials left out.
    pub fn begin(policies: Arc<Policies>, headers: &http::HeaderMap) -> Self {
        if policies.active.is_none() && policies.shadow.is_none() {
            return Self::default();
        }
        let reads = |l: &Option<Arc<Loaded>>| l.as_ref().is_some_and(|l| l.policy.reads_headers);
        let headers = if reads(&policies.active) || reads(&policies.shadow) {
            headers
                .iter()
                .filter(|(name, _)| !HIDDEN_HEADERS.contains(&name.as_str()))
                .filter_map(|(name, value)| {
                    Some((name.as_str().to_string(), value.to_str().ok()?.to_string()))
                })
                .collect()
        } else {
            BTreeMap::new()
        };
        Self {
            policies: Some(policies),
            headers,
            facts: None,
            trace: None,
            pii_decision: Default::default(),
        }
    }
}

impl PolicyState {
    /// Whether a policy in force has response rules (whole answers are then judged).
    pub fn judges_responses(&self) -> bool {
        let has = |l: &Option<Arc<Loaded>>| l.as_ref().is_some_and(|l| l.policy.judges_responses);
        self.policies
            .as_ref()
            .is_some_and(|p| has(&p.active) || has(&p.shadow))
    }
}

/// A policy rule sent the request to another model than the caller named.
#[derive(Debug)]
pub struct Rerouted {
    /// The model the caller asked for.
    pub from: String,
    /// By a `downgrade` rule (else a `route` rule).
    pub downgrade: bool,
}

impl Rerouted {
    /// Says so in the response: `x-airlock-downgraded-from` or `x-airlock-routed-from`,
    /// naming the model asked for.
    pub fn say(&self, headers: &mut http::HeaderMap) {
        let name = if self.downgrade {
            "x-airlock-downgraded-from"
        } else {
            "x-airlock-routed-from"
        };
        if let Ok(value) = http::HeaderValue::from_str(&self.from) {
            headers.insert(name, value);
        }
    }
}

/// The request phase: evaluates the policies for `request` bound for `route`; refuses
/// it (deny, require_approval, a rate limit reached) or returns the model a route or
/// downgrade rule chose instead, and which rule kind it was.
pub fn request_phase<T: ForwardedRequest>(
    ctx: &mut RequestContext,
    principal: &Principal,
    request: &T,
    route: &Route,
) -> Result<Option<Reroute>, ApiError> {
    let Some(policies) = ctx.policy.policies.clone() else {
        return Ok(None);
    };
    let content = request.prompt_text();
    let facts = Facts {
        phase: Phase::Request,
        tenant: principal.tenant_id.to_string(),
        team: principal.team_id.as_deref().map(str::to_string),
        user: ctx.user_id().map(str::to_string),
        key: principal.key_id.to_string(),
        endpoint: crate::policy::source::EndpointKind::Llm,
        model: request.model().to_string(),
        provider: route.targets.first().map(|t| t.upstream.name.to_string()),
        data_classes: ctx.pii.found.clone(),
        prompt_tokens: (content.len() as u64).div_ceil(4),
        completion_tokens: request.completion_budget(),
        cost_usd: None,
        time_ms: crate::store::now_unix_ms(),
        headers: std::mem::take(&mut ctx.policy.headers),
        content,
        mcp: None,
    };
    let shadow = policies
        .shadow
        .as_ref()
        .map(|s| shadow_trace(ctx, s, &facts));
    let Some(active) = &policies.active else {
        ctx.policy.trace = shadow.map(|shadow| PolicyTrace {
            version: None,
            verdict: Verdict::Allow,
            rules: Vec::new(),
            tags: Vec::new(),
            log: None,
            shadow: Some(shadow),
        });
        ctx.policy.facts = Some(Box::new(facts));
        return Ok(None);
    };
    let decision = judge(ctx, active, &facts);
    let mut trace = PolicyTrace {
        version: Some(active.label.clone()),
        verdict: decision.verdict,
        rules: decision.matched.clone(),
        tags: decision.tags.clone(),
        log: decision.log,
        shadow,
    };
    let refusal = match decision.verdict {
        Verdict::Deny => Some(ApiError::policy_denied(message(&decision))),
        Verdict::RequireApproval => Some(ApiError::approval_required(message(&decision))),
        Verdict::Allow => rate_limited(ctx, principal, &facts, &decision),
    };
    if refusal.is_some() {
        trace.verdict = Verdict::Deny;
    }
    if trace.log == Some(LogLevel::Metadata) {
        ctx.drop_payloads();
    }
    ctx.policy.trace = Some(trace);
    ctx.policy.facts = Some(Box::new(facts));
    ctx.policy.pii_decision = (decision.redact.clone(), decision.tokenise.clone());
    match refusal {
        Some(err) => Err(err),
        None => Ok(decision.reroute),
    }
}

/// The response phase of a whole answer's body: refuses to deliver it when a response
/// rule denies.
pub fn response_phase(
    ctx: &mut RequestContext,
    answer: &serde_json::Value,
) -> Result<(), ApiError> {
    response_text_phase(ctx, crate::policy::facts::response_text(answer))
}

/// The response phase over an answer's text (a whole answer, or a stream's at its end).
pub fn response_text_phase(ctx: &mut RequestContext, text: String) -> Result<(), ApiError> {
    let Some(policies) = ctx.policy.policies.clone() else {
        return Ok(());
    };
    let Some(mut facts) = ctx.policy.facts.take() else {
        return Ok(());
    };
    facts.phase = Phase::Response;
    facts.content = text;
    facts.completion_tokens = ctx.record.completion_tokens.unwrap_or(0);
    let result = match &policies.active {
        Some(active) => {
            let decision = judge(ctx, active, &facts);
            let trace = ctx.policy.trace.get_or_insert_with(|| PolicyTrace {
                version: Some(active.label.clone()),
                verdict: Verdict::Allow,
                rules: Vec::new(),
                tags: Vec::new(),
                log: None,
                shadow: None,
            });
            trace.rules.extend(decision.matched.iter().cloned());
            for tag in &decision.tags {
                if !trace.tags.contains(tag) {
                    trace.tags.push(tag.clone());
                }
            }
            match decision.verdict {
                Verdict::Allow => Ok(()),
                verdict => {
                    trace.verdict = verdict.max(trace.verdict);
                    Err(ApiError::policy_denied(message(&decision)))
                }
            }
        }
        None => Ok(()),
    };
    if let Some(shadow) = &policies.shadow {
        let later = shadow_trace(ctx, shadow, &facts);
        if let Some(trace) = ctx.policy.trace.as_mut().and_then(|t| t.shadow.as_mut()) {
            trace.rules.extend(later.rules);
            trace.verdict = trace.verdict.max(later.verdict);
        }
    }
    ctx.policy.facts = Some(facts);
    result
}

/// Evaluates the active version, counting and timing it, and logs failed conditions.
fn judge(ctx: &RequestContext, active: &Loaded, facts: &Facts) -> Decision {
    let started = std::time::Instant::now();
    let decision = evaluate(&active.policy, facts);
    let metrics = &ctx.state().metrics.policy;
    metrics.evaluation.observe(started.elapsed().as_secs_f64());
    metrics
        .decisions
        .get_or_create(&labels(facts, decision.verdict))
        .inc();
    report_errors(ctx, active, &decision);
    decision
}

fn labels(facts: &Facts, verdict: Verdict) -> DecisionLabels {
    DecisionLabels {
        phase: match facts.phase {
            Phase::Request => "request",
            Phase::Response => "response",
        },
        verdict: verdict.name(),
    }
}

fn shadow_trace(ctx: &RequestContext, shadow: &Loaded, facts: &Facts) -> ShadowTrace {
    let decision = evaluate(&shadow.policy, facts);
    ctx.state()
        .metrics
        .policy
        .shadow_decisions
        .get_or_create(&labels(facts, decision.verdict))
        .inc();
    ShadowTrace {
        version: shadow.label.clone(),
        verdict: decision.verdict,
        rules: decision.matched,
    }
}

fn message(decision: &Decision) -> &str {
    decision
        .message
        .as_deref()
        .unwrap_or(crate::policy::compile::DEFAULT_DENY_MESSAGE)
}

/// Logs `when:` expressions that failed (they count as not matching). Not the error
/// text: it may quote request content, which never goes to the log; `airlock policy
/// test` shows it for a case that reproduces the request.
fn report_errors(ctx: &RequestContext, policy: &Loaded, decision: &Decision) {
    for (rule, _) in &decision.errors {
        ctx.state().metrics.policy.condition_errors.inc();
        tracing::warn!(policy = %policy.label, rule = %rule, "a policy `when:` condition failed to evaluate; the rule did not match");
    }
}

/// Counts the request against every rate limit a matching rule set; the first reached
/// refuses it.
fn rate_limited(
    ctx: &RequestContext,
    principal: &Principal,
    facts: &Facts,
    decision: &Decision,
) -> Option<ApiError> {
    for limit in &decision.limits {
        let subject = match limit.limit.by {
            RateLimitScope::Key => &*principal.key_id,
            RateLimitScope::Tenant => &*principal.tenant_id,
            RateLimitScope::User => facts.user.as_deref().unwrap_or(&principal.key_id),
        };
        if let Err(wait_secs) =
            ctx.state()
                .rate_limiter
                .admit(&limit.rule, subject, &limit.limit, facts.time_ms)
        {
            return Some(ApiError::policy_rate_limited(wait_secs));
        }
    }
    None
}
