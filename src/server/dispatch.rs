//! Sending a routed request: the attempt loop over a route's targets (breakers, health,
//! backoff, Retry-After, hedging), each attempt received as far as the client has seen
//! none of it, so that anything failing until then can still go elsewhere.

use super::body::GatewayBody;
use super::context::RequestContext;
use super::credential;
use super::error::ApiError;
use super::handler::Outcome;
use crate::api::openai::{ForwardedRequest, Usage, UsageProbe, upstream_error_message};
use crate::config::Strategy;
use crate::providers::openai_compat::{UpstreamBody, UpstreamError, UpstreamPath};
use crate::providers::sse::{MAX_EVENT_BYTES, SseFramer};
use crate::providers::sse_relay::{StreamDialect, StreamStart};
use crate::providers::wire_format;
use crate::routing::breaker::{self, Admission};
use crate::routing::cache::{CacheKey, CachedAnswer};
use crate::routing::{AttemptOutcome, InFlight, Route, StreamOutcome, Target};
use crate::tenancy::credentials::Credential;
use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::BodyExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest upstream response body buffered for a non-streaming request.
const MAX_UPSTREAM_BODY: usize = 256 * 1024 * 1024;
/// Largest upstream error body read.
const MAX_UPSTREAM_ERROR_BODY: usize = 64 * 1024;

/// What to send where: the route, its targets in this request's order (already
/// filtered by capabilities and experiment arm), and how to answer.
pub(super) struct Plan<'a> {
    pub route: &'a Arc<Route>,
    pub order: Vec<usize>,
    pub upstream_path: &'a str,
    pub stream: bool,
    pub strip_usage_chunk: bool,
    pub cache_key: Option<CacheKey>,
    /// The caller's tenant, whose credentials BYOK targets use.
    pub tenant_id: Arc<str>,
}

/// Walks the order round and round, handing out targets that are healthy and whose
/// breaker admits an attempt; `None` after a full round without one.
struct Rotation<'a> {
    route: &'a Route,
    order: &'a [usize],
    next: usize,
}

impl<'a> Rotation<'a> {
    fn next(&mut self) -> Option<(usize, Admission<'a>)> {
        for _ in 0..self.order.len() {
            let index = self.order[self.next % self.order.len()];
            self.next += 1;
            if let Some(admission) = self.admit(index) {
                return Some((index, admission));
            }
        }
        None
    }

    /// Target `index` again (another credential), if it is healthy and admits an
    /// attempt; else the next in turn.
    fn again(&mut self, index: usize) -> Option<(usize, Admission<'a>)> {
        match self.admit(index) {
            Some(admission) => Some((index, admission)),
            None => self.next(),
        }
    }

    fn admit(&self, index: usize) -> Option<Admission<'a>> {
        let target = &self.route.targets[index];
        if target.upstream.is_healthy() {
            target.breaker.admit(Instant::now())
        } else {
            None
        }
    }
}

/// One attempt under way: its target, breaker admission and in-flight mark.
struct Attempting<'a> {
    index: usize,
    admission: Admission<'a>,
    /// Counted only where the route's strategy reads it.
    in_flight: Option<InFlight<'a>>,
    started: Instant,
    /// The provider credential it authenticates with (`None`: the upstream's own key).
    credential: Option<Arc<Credential>>,
}

/// Tries the plan's targets until one answers, a failure is final, or the route's
/// attempts run out.
pub(super) async fn dispatch<T: ForwardedRequest>(
    ctx: &mut RequestContext,
    plan: Plan<'_>,
    request: &mut T,
) -> Result<Outcome, ApiError> {
    let route = plan.route;
    let mut rotation = Rotation {
        route,
        order: &plan.order,
        next: 0,
    };
    let mut last_error = None;
    // The previous attempt's target and the `Retry-After` it answered with.
    let mut previous: Option<(usize, Option<Duration>)> = None;
    // Credentials the provider refused in this request; the target to try again with
    // the next one; why a target was skipped for want of a credential.
    let mut tried: Vec<Arc<str>> = Vec::new();
    let mut same_target: Option<usize> = None;
    let mut uncredentialed: Option<ApiError> = None;
    let mut skipped = 0;
    while ctx.record.attempts < route.retry.attempts {
        let switching_credential = same_target.is_some();
        let next = match same_target.take() {
            Some(index) => rotation.again(index),
            None => rotation.next(),
        };
        let Some((index, admission)) = next else {
            break;
        };
        let target = &route.targets[index];
        let credential =
            match credential::choose(ctx.state(), target, &route.model, &plan.tenant_id, &tried) {
                Ok(credential) => credential,
                Err(refusal) => {
                    uncredentialed = Some(refusal);
                    skipped += 1;
                    if skipped > plan.order.len() {
                        break;
                    }
                    continue;
                }
            };
        skipped = 0;
        if ctx.record.attempts > 0 && !switching_credential {
            let mut wait = route.backoff(ctx.record.attempts);
            if let Some((prev, Some(retry_after))) = previous
                && prev == index
            {
                wait = wait.max(retry_after);
            }
            tokio::time::sleep(wait).await;
        }
        let hedge = route.hedge.filter(|_| {
            ctx.record.attempts == 0 && route.retry.attempts >= 2 && plan.order.len() >= 2
        });
        let first = start(ctx, route, index, admission, credential, request)?;
        let first_run = attempt(
            route,
            index,
            first.1,
            &plan,
            ctx.record.id.clone(),
            first.0.credential.as_ref().map(|c| c.header().clone()),
        );
        let (attempting, received) = match hedge {
            None => (first.0, first_run.await),
            // Boxed: a rarely taken branch should not enlarge every request's future.
            Some(after) => {
                Box::pin(hedged(
                    ctx,
                    &plan,
                    &mut rotation,
                    request,
                    (first.0, first_run),
                    after,
                ))
                .await?
            }
        };
        let target = &route.targets[attempting.index];
        ctx.record.upstream = Some(target.upstream.name.clone());
        ctx.record.upstream_model = Some(target.upstream_model.clone());
        match received {
            Ok(received) => {
                if route.strategy == Strategy::Latency {
                    target.observe_latency(attempting.started.elapsed());
                }
                target.count_attempt(AttemptOutcome::Ok);
                return Ok(answer(ctx, &plan, attempting, received));
            }
            Err(failure) => {
                ctx.upstream_end();
                let failed = attempting.index;
                let refused = attempting
                    .credential
                    .as_ref()
                    .filter(|_| failure.credential_refused)
                    .map(|c| c.id.clone());
                settle_failure(route, attempting, &failure);
                if !failure.retryable {
                    return Err(failure.error);
                }
                if let Some(id) = refused {
                    tried.push(id);
                    same_target = Some(failed);
                }
                if ctx.record.attempts < route.retry.attempts {
                    tracing::info!(
                        request_id = %ctx.record.id,
                        upstream = %target.upstream.name,
                        attempt = ctx.record.attempts,
                        code = failure.error.code,
                        detail = failure.error.detail.as_deref().unwrap_or(""),
                        "attempt failed; trying again"
                    );
                }
                previous = Some((failed, failure.retry_after));
                last_error = Some(failure.error);
            }
        }
    }
    Err(last_error
        .or(uncredentialed)
        .unwrap_or_else(|| ApiError::no_available_target(&route.model)))
}

/// Counts an attempt and prepares its body for the target (the target's model name).
fn start<'a, T: ForwardedRequest>(
    ctx: &mut RequestContext,
    route: &'a Route,
    index: usize,
    admission: Admission<'a>,
    credential: Option<Arc<Credential>>,
    request: &mut T,
) -> Result<(Attempting<'a>, Vec<u8>), ApiError> {
    let target = &route.targets[index];
    request.set_model(target.upstream_model.to_string());
    let body = wire_format::request_body(&target.upstream, &*request, &target.upstream_model)?;
    ctx.record.attempts += 1;
    ctx.upstream_begin();
    Ok((
        Attempting {
            index,
            admission,
            in_flight: (route.strategy == Strategy::LeastOutstanding).then(|| target.begin()),
            started: Instant::now(),
            credential,
        },
        body,
    ))
}

/// Races a second target against a first that has not answered within `after`: the
/// first success wins and the other attempt is dropped (its connection closed, which
/// cancels it upstream); a failure waits for the other.
async fn hedged<'a, T: ForwardedRequest>(
    ctx: &mut RequestContext,
    plan: &Plan<'a>,
    rotation: &mut Rotation<'a>,
    request: &mut T,
    first: (
        Attempting<'a>,
        impl Future<Output = Result<Received, AttemptFailure>>,
    ),
    after: Duration,
) -> Result<(Attempting<'a>, Result<Received, AttemptFailure>), ApiError> {
    let (a, run_a) = first;
    let mut run_a = std::pin::pin!(run_a);
    tokio::select! {
        received = &mut run_a => return Ok((a, received)),
        () = tokio::time::sleep(after) => {}
    }
    let second = match rotation.next() {
        Some((index, admission)) if index != a.index => {
            let target = &plan.route.targets[index];
            credential::choose(ctx.state(), target, &plan.route.model, &plan.tenant_id, &[])
                .ok()
                .map(|credential| (index, admission, credential))
        }
        _ => None,
    };
    let Some((index_b, admission_b, credential_b)) = second else {
        return Ok((a, run_a.await));
    };
    let (b, body_b) = start(ctx, plan.route, index_b, admission_b, credential_b, request)?;
    tracing::debug!(request_id = %ctx.record.id, upstream = %plan.route.targets[index_b].upstream.name, "hedging: second attempt started");
    let header_b = b.credential.as_ref().map(|c| c.header().clone());
    let run_b = attempt(
        plan.route,
        index_b,
        body_b,
        plan,
        ctx.record.id.clone(),
        header_b,
    );
    let mut run_b = std::pin::pin!(run_b);
    tokio::select! {
        received = &mut run_a => match received {
            Ok(_) => Ok((a, received)),
            Err(failure) => {
                settle_failure(plan.route, a, &failure);
                Ok((b, run_b.await))
            }
        },
        received = &mut run_b => match received {
            Ok(_) => Ok((b, received)),
            Err(failure) => {
                settle_failure(plan.route, b, &failure);
                Ok((a, run_a.await))
            }
        },
    }
}

/// Books a failed attempt against its target: breaker, metrics, and a long
/// `Retry-After` resting the target; or, when the provider refused or throttled the
/// credential, resting that credential instead of the target.
fn settle_failure(route: &Route, attempting: Attempting<'_>, failure: &AttemptFailure) {
    let target = &route.targets[attempting.index];
    attempting.admission.settle(failure.outcome);
    target.count_attempt(match failure.outcome {
        breaker::Outcome::Failure => AttemptOutcome::Error,
        _ if failure.error.status == StatusCode::TOO_MANY_REQUESTS => AttemptOutcome::RateLimited,
        _ => AttemptOutcome::Rejected,
    });
    if let (true, Some(c)) = (failure.credential_refused, &attempting.credential) {
        let throttled = failure.error.status == StatusCode::TOO_MANY_REQUESTS;
        credential::rest(c, throttled, failure.retry_after);
        return;
    }
    let rest = Duration::from_millis(route.retry.max_retry_after_ms);
    if let Some(retry_after) = failure.retry_after.filter(|r| *r > rest) {
        target.breaker.rest_until(Instant::now() + retry_after);
    }
}

/// Turns a received answer into what the client gets; a stream's breaker outcome and
/// in-flight mark go with it to the relay.
fn answer(
    ctx: &mut RequestContext,
    plan: &Plan<'_>,
    attempting: Attempting<'_>,
    received: Received,
) -> Outcome {
    let route = plan.route;
    match received {
        Received::Whole { answer, usage } => {
            ctx.upstream_end();
            if let Some(usage) = usage {
                ctx.set_usage(usage);
            }
            ctx.first_byte();
            attempting.admission.settle(breaker::Outcome::Success);
            if let (Some(cache), Some(key)) = (&route.cache, plan.cache_key) {
                cache.put(key, answer.clone());
            }
            ctx.set_response_payload(answer.body.clone());
            let cache_state = route.cache.as_ref().map(|_| "miss");
            Outcome::Response(whole_response(answer, cache_state))
        }
        Received::Stream { body, first } => {
            let target = &route.targets[attempting.index];
            // The breaker hears how it went when the stream ends.
            Outcome::Stream(Box::new(StreamStart {
                upstream: body,
                first,
                strip_usage_chunk: plan.strip_usage_chunk,
                read_timeout: target.upstream.read_timeout,
                outcome: StreamOutcome::new(
                    route.clone(),
                    attempting.index,
                    attempting.admission,
                    attempting.in_flight,
                ),
                dialect: StreamDialect::OpenAi,
                upstream_events: wire_format::stream_events(
                    target.upstream.kind,
                    &target.upstream_model,
                ),
            }))
        }
    }
}

/// A failed attempt: the error the client gets if it was the last, whether another
/// attempt may follow, and what it says about the target.
struct AttemptFailure {
    error: ApiError,
    retryable: bool,
    outcome: breaker::Outcome,
    retry_after: Option<Duration>,
    /// The provider refused (401/403) or throttled (429) the provider credential sent:
    /// another credential may do on the same target.
    credential_refused: bool,
}

impl AttemptFailure {
    /// The target failed before answering: unreachable, reset, or silent too long.
    fn unreachable(error: ApiError) -> Self {
        Self {
            error,
            retryable: true,
            outcome: breaker::Outcome::Failure,
            retry_after: None,
            credential_refused: false,
        }
    }
}

/// A successful answer, received as far as it must be before the client sees any of
/// it: a whole body (with the usage it reports), or a stream's head and first event.
enum Received {
    Whole {
        answer: CachedAnswer,
        usage: Option<Usage>,
    },
    Stream {
        body: UpstreamBody,
        first: Bytes,
    },
}

/// Sends `body` to one target and receives its answer (see [`Received`]).
async fn attempt(
    route: &Route,
    index: usize,
    body: Vec<u8>,
    plan: &Plan<'_>,
    request_id: Arc<str>,
    credential: Option<HeaderValue>,
) -> Result<Received, AttemptFailure> {
    let target = &route.targets[index];
    let upstream = &target.upstream;
    let path = wire_format::path(
        upstream.kind,
        plan.upstream_path,
        &target.upstream_model,
        plan.stream,
    );
    let sent = upstream
        .post_json(
            UpstreamPath::Api(&path),
            body,
            plan.stream,
            &request_id,
            credential.as_ref(),
        )
        .await;
    let response = match sent {
        Ok(response) => response,
        Err(e) => {
            let error = match e {
                UpstreamError::Timeout(_) => ApiError::upstream_timeout(),
                UpstreamError::Connect(_) | UpstreamError::Build(_) => {
                    ApiError::upstream_unavailable()
                }
            };
            return Err(AttemptFailure::unreachable(
                error.with_detail(format!("upstream `{}`: {e}", upstream.name)),
            ));
        }
    };
    let status = response.status();
    if status.is_success() {
        return receive(response, plan.stream, target).await.map_err(|e| {
            AttemptFailure::unreachable(e.with_detail(format!("upstream `{}`", upstream.name)))
        });
    }
    let retry_after_header = response.headers().get(header::RETRY_AFTER).cloned();
    let body = read_upstream_body(
        response.into_body(),
        MAX_UPSTREAM_ERROR_BODY,
        upstream.read_timeout,
    )
    .await;
    let message = body.ok().and_then(|b| upstream_error_message(&b));
    let detail = format!(
        "upstream `{}` answered {}: {}",
        upstream.name,
        status.as_u16(),
        message.as_deref().unwrap_or("(no message)")
    );
    let retry_after = retry_after_header
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let credential_refused = credential.is_some() && credential::refused(status.as_u16());
    Err(AttemptFailure {
        error: ApiError::from_upstream(status, message, retry_after_header).with_detail(detail),
        retryable: credential_refused || matches!(status.as_u16(), 429 | 500 | 502 | 503 | 504),
        outcome: if status.is_server_error() {
            breaker::Outcome::Failure
        } else {
            breaker::Outcome::Neutral
        },
        retry_after,
        credential_refused,
    })
}

/// Receives a successful upstream response: for a stream, up to its first complete
/// event; otherwise the whole body, checked, with the usage it reports.
async fn receive(
    response: http::Response<UpstreamBody>,
    stream: bool,
    target: &Target,
) -> Result<Received, ApiError> {
    let read_timeout = target.upstream.read_timeout;
    let is_event_stream = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if stream && is_event_stream {
        let mut body = response.into_body();
        let first = read_first_event(&mut body, read_timeout).await?;
        return Ok(Received::Stream { body, first });
    }
    let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
    let body = read_upstream_body(response.into_body(), MAX_UPSTREAM_BODY, read_timeout).await?;
    let body = wire_format::whole_answer(target.upstream.kind, body, &target.upstream_model)?;
    let probe: UsageProbe = serde_json::from_slice(&body)
        .map_err(|_| ApiError::upstream_protocol("the response body is not valid JSON"))?;
    Ok(Received::Whole {
        answer: CachedAnswer { body, content_type },
        usage: probe.usage,
    })
}

/// A whole answer as the client gets it; `cache` says `hit` or `miss` on cached routes.
pub(super) fn whole_response(
    answer: CachedAnswer,
    cache: Option<&'static str>,
) -> Response<GatewayBody> {
    let mut response = Response::new(GatewayBody::full(answer.body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        answer
            .content_type
            .unwrap_or(HeaderValue::from_static("application/json")),
    );
    if let Some(cache) = cache {
        headers.insert("x-airlock-cache", HeaderValue::from_static(cache));
    }
    response
}

/// Reads a stream until its first complete event is in hand (usually one frame).
async fn read_first_event(body: &mut UpstreamBody, idle: Duration) -> Result<Bytes, ApiError> {
    let mut framer = SseFramer::default();
    let mut received = bytes::BytesMut::new();
    loop {
        let frame = match tokio::time::timeout(idle, body.frame()).await {
            Err(_) => return Err(ApiError::upstream_timeout()),
            Ok(None) => {
                return Err(ApiError::upstream_protocol(
                    "the stream ended before its first event",
                ));
            }
            Ok(Some(Err(e))) => {
                return Err(
                    ApiError::upstream_protocol("the stream broke before its first event")
                        .with_detail(e.to_string()),
                );
            }
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        framer.push(&data);
        if received.is_empty()
            && framer.pending() == data.len()
            && framer.next_event_len().is_some()
        {
            return Ok(data); // the common case: one frame holds the first event
        }
        received.extend_from_slice(&data);
        if framer.next_event_len().is_some() {
            return Ok(received.freeze());
        }
        if framer.pending() > MAX_EVENT_BYTES {
            return Err(ApiError::upstream_protocol(
                "the first event exceeded the size limit",
            ));
        }
    }
}

/// Reads an upstream body with a size limit and a timeout between chunks.
pub(super) async fn read_upstream_body(
    mut body: UpstreamBody,
    limit: usize,
    idle: Duration,
) -> Result<Bytes, ApiError> {
    // Most bodies arrive as one frame: keep it as is, and copy only when there are more.
    let mut first: Option<Bytes> = None;
    let mut rest = bytes::BytesMut::new();
    loop {
        let frame = match tokio::time::timeout(idle, body.frame()).await {
            Err(_) => return Err(ApiError::upstream_timeout()),
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                return Err(ApiError::upstream_protocol("the response body was cut off")
                    .with_detail(e.to_string()));
            }
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let so_far = first.as_ref().map_or(0, Bytes::len) + rest.len();
        if so_far + data.len() > limit {
            return Err(ApiError::upstream_protocol(
                "the response body is too large",
            ));
        }
        match &first {
            None => first = Some(data),
            Some(_) => rest.extend_from_slice(&data),
        }
    }
    Ok(match first {
        None => Bytes::new(),
        Some(first) if rest.is_empty() => first,
        Some(first) => {
            let mut all = bytes::BytesMut::with_capacity(first.len() + rest.len());
            all.extend_from_slice(&first);
            all.extend_from_slice(&rest);
            all.freeze()
        }
    })
}
