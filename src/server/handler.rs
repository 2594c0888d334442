//! The data path: authenticate, read and parse the body, resolve the route, forward to
//! the upstream, and relay the answer.

use super::body::GatewayBody;
use super::context::RequestContext;
use super::error::ApiError;
use super::request_id::RequestId;
use super::{AppState, Endpoint};
use crate::api::openai::{
    ChatCompletionRequest, CompletionRequest, EmbeddingRequest, ForwardedRequest, UsageProbe,
    upstream_error_message,
};
use crate::config::Sticky;
use crate::providers::openai_compat::{UpstreamBody, UpstreamError};
use crate::providers::sse::{MAX_EVENT_BYTES, SseFramer};
use crate::providers::sse_relay::{SseRelay, StreamStart};
use crate::routing::cache::{self, CachedAnswer};
use crate::routing::{AttemptOutcome, Route, StreamOutcome};
use crate::routing::{breaker, capabilities};
use crate::tenancy::{AuthError, Principal};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest upstream response body buffered for a non-streaming request.
const MAX_UPSTREAM_BODY: usize = 256 * 1024 * 1024;
/// Largest upstream error body read.
const MAX_UPSTREAM_ERROR_BODY: usize = 64 * 1024;

/// Serves one request.
pub async fn handle(
    state: Arc<AppState>,
    client_addr: Arc<str>,
    req: Request<Incoming>,
) -> Response<GatewayBody> {
    let endpoint = Endpoint::classify(req.method(), req.uri().path());
    match endpoint {
        Endpoint::Healthz => json_response(StatusCode::OK, br#"{"status":"ok"}"#.to_vec()),
        Endpoint::Readyz => readiness(&state),
        Endpoint::Metrics if state.metrics_enabled => metrics_response(&state),
        Endpoint::Metrics | Endpoint::NotFound => {
            ApiError::route_not_found(req.uri().path()).into_response()
        }
        Endpoint::WrongMethod => {
            ApiError::method_not_allowed(req.method(), req.uri().path()).into_response()
        }
        Endpoint::Models
        | Endpoint::ChatCompletions
        | Endpoint::Completions
        | Endpoint::Embeddings => {
            let Some(permit) = state.log.reserve().await else {
                return ApiError::auth(AuthError::Unavailable).into_response();
            };
            let id = req
                .extensions()
                .get::<RequestId>()
                .map(|r| r.0.clone())
                .unwrap_or_else(|| Arc::from(""));
            let mut ctx =
                RequestContext::new(state.clone(), permit, id, endpoint.name(), client_addr);
            let result = match endpoint {
                Endpoint::Models => list_models(&mut ctx, req.headers()),
                Endpoint::ChatCompletions => {
                    forward::<ChatCompletionRequest>(&mut ctx, req, "/chat/completions").await
                }
                Endpoint::Completions => {
                    forward::<CompletionRequest>(&mut ctx, req, "/completions").await
                }
                _ => forward::<EmbeddingRequest>(&mut ctx, req, "/embeddings").await,
            };
            match result {
                Ok(Outcome::Response(response)) => {
                    ctx.finish(response.status().as_u16(), None);
                    response
                }
                Ok(Outcome::Stream(stream)) => {
                    let mut relay = SseRelay::new(*stream, ctx);
                    relay.prime().await;
                    stream_response(relay)
                }
                Err(err) => {
                    let detail = err.detail.as_deref().unwrap_or("");
                    if err.status.is_server_error() {
                        tracing::warn!(
                            status = err.status.as_u16(),
                            code = err.code,
                            detail,
                            "{}",
                            err.message
                        );
                    } else {
                        tracing::info!(
                            status = err.status.as_u16(),
                            code = err.code,
                            detail,
                            "{}",
                            err.message
                        );
                    }
                    ctx.finish(err.status.as_u16(), Some(err.code));
                    err.into_response()
                }
            }
        }
    }
}

/// What a data-path handler produced: a complete response, or an upstream event stream
/// to relay (the relay then owns the context and finishes it when the stream ends).
enum Outcome {
    Response(Response<GatewayBody>),
    /// Boxed: it carries the upstream body, which is large.
    Stream(Box<StreamStart>),
}

fn stream_response(relay: SseRelay) -> Response<GatewayBody> {
    let mut response = Response::new(GatewayBody::Stream(Box::new(relay)));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response<GatewayBody> {
    let mut response = Response::new(GatewayBody::full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn readiness(state: &AppState) -> Response<GatewayBody> {
    if state.draining.load(std::sync::atomic::Ordering::Relaxed) {
        return json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            br#"{"status":"draining"}"#.to_vec(),
        );
    }
    json_response(StatusCode::OK, br#"{"status":"ready"}"#.to_vec())
}

fn metrics_response(state: &AppState) -> Response<GatewayBody> {
    state.routes.export_state(&state.metrics);
    let mut response = Response::new(GatewayBody::full(state.metrics.render()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}

/// The key a client presented: `Authorization: Bearer …` or `x-api-key: …`.
fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let v = v.trim();
        let (scheme, rest) = v.split_once(' ')?;
        if scheme.eq_ignore_ascii_case("bearer") && !rest.trim().is_empty() {
            return Some(rest.trim());
        }
        return None;
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

fn authenticate(ctx: &mut RequestContext, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let key = presented_key(headers).ok_or(ApiError::auth(AuthError::Missing))?;
    let principal = ctx.state().keys.authenticate(key).map_err(ApiError::auth)?;
    ctx.set_principal(&principal);
    Ok(principal)
}

fn list_models(ctx: &mut RequestContext, headers: &HeaderMap) -> Result<Outcome, ApiError> {
    let principal = authenticate(ctx, headers)?;
    let state = ctx.state();
    let data: Vec<serde_json::Value> = state
        .routes
        .names()
        .iter()
        .filter(|name| principal.may_use(name))
        .map(|name| {
            serde_json::json!({
                "id": name,
                "object": "model",
                "created": state.started_unix,
                "owned_by": "airlock",
            })
        })
        .collect();
    let body = serde_json::to_vec(&serde_json::json!({"object": "list", "data": data}))
        .map_err(|e| ApiError::upstream_protocol(&e.to_string()))?;
    Ok(Outcome::Response(json_response(StatusCode::OK, body)))
}

/// Reads the whole request body within the size limit and the body timeout.
async fn read_body(state: &AppState, req: Request<Incoming>) -> Result<Bytes, ApiError> {
    let limit = state.max_body_bytes;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(ApiError::body_too_large(limit));
    }
    let collect = Limited::new(req.into_body(), limit).collect();
    match tokio::time::timeout(state.body_timeout, collect).await {
        Err(_) => Err(ApiError::body_timeout()),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            Err(ApiError::body_too_large(limit))
        }
        Ok(Err(e)) => Err(ApiError::body_read_failed(&e.to_string())),
    }
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::invalid_json(&e.to_string()))
}

/// Forwards a chat, completion or embedding request to its model's targets: in the
/// route's attempt order, skipping targets whose breaker is open, retrying what is safe
/// to retry until the route's attempts run out.
async fn forward<T: ForwardedRequest + DeserializeOwned>(
    ctx: &mut RequestContext,
    req: Request<Incoming>,
    upstream_path: &str,
) -> Result<Outcome, ApiError> {
    let principal = authenticate(ctx, req.headers())?;
    let state = ctx.state().clone();
    let body = read_body(&state, req).await?;
    let mut request: T = parse(&body)?;
    let route = state
        .routes
        .get(request.model())
        .filter(|_| principal.may_use(request.model()))
        .ok_or_else(|| ApiError::model_not_found(request.model()))?
        .clone();
    let stream = request.is_stream();
    ctx.record.stream = stream;
    ctx.record.model = Some(route.model.clone());
    let strip_usage_chunk = stream && request.request_stream_usage();

    // Targets that cannot serve what the request uses are never tried.
    let features = request.features();
    let mut order = route.attempt_order();
    let mut first_missing = None;
    order.retain(
        |&i| match capabilities::missing(&features, &route.targets[i].capabilities) {
            None => true,
            Some(missing) => {
                first_missing.get_or_insert(missing);
                false
            }
        },
    );
    if let (true, Some(missing)) = (order.is_empty(), first_missing) {
        return Err(ApiError::unsupported(&route.model, missing));
    }
    if let Some(experiment) = &route.experiment {
        let caller = match (experiment.sticky, request.end_user()) {
            (Sticky::User, Some(user)) => format!("{}\0{user}", principal.tenant_id),
            (Sticky::Tenant, _) => principal.tenant_id.to_string(),
            _ => principal.key_id.to_string(),
        };
        let arm = experiment.assign(&caller);
        order.retain(|&i| route.targets[i].arm.as_ref().is_none_or(|a| a == arm));
        ctx.record.experiment = Some(experiment.name.clone());
        ctx.record.arm = Some(arm.clone());
    }
    // Cached routes answer repeated requests (same tenant, endpoint, arm and body) from
    // memory; streams always go upstream.
    let cache_key = match (&route.cache, stream) {
        (Some(_), false) => {
            let canonical =
                serde_json::to_vec(&request).map_err(|e| ApiError::invalid_json(&e.to_string()))?;
            let scope = format!(
                "{upstream_path}\0{}",
                ctx.record.arm.as_deref().unwrap_or("")
            );
            Some(cache::key(&principal.tenant_id, &scope, &canonical))
        }
        _ => None,
    };
    if let (Some(cache), Some(key)) = (&route.cache, &cache_key)
        && let Some(answer) = cache.get(key)
    {
        ctx.record.cache_hit = true;
        ctx.first_byte();
        return Ok(Outcome::Response(whole_response(answer, Some("hit"))));
    }
    let mut last_error = None;
    // Consecutive targets skipped because their breaker is open: all of them ends it.
    let mut skipped = 0;
    // The previous attempt's target and the `Retry-After` it answered with.
    let mut previous: Option<(usize, Option<Duration>)> = None;
    for &index in order.iter().cycle() {
        if ctx.record.attempts >= route.retry.attempts || skipped == order.len() {
            break;
        }
        let target = &route.targets[index];
        let admission = match target.upstream.is_healthy() {
            true => target.breaker.admit(Instant::now()),
            false => None,
        };
        let Some(admission) = admission else {
            skipped += 1;
            continue;
        };
        skipped = 0;
        if ctx.record.attempts > 0 {
            let mut wait = route.backoff(ctx.record.attempts);
            if let Some((prev, Some(retry_after))) = previous
                && prev == index
            {
                wait = wait.max(retry_after);
            }
            tokio::time::sleep(wait).await;
        }
        ctx.record.attempts += 1;
        let in_flight = target.begin();
        let started = Instant::now();
        let received = attempt(ctx, &route, index, &mut request, upstream_path, stream).await;
        if received.is_ok() {
            target.observe_latency(started.elapsed());
        }
        match received {
            Ok(Received::Whole(answer)) => {
                admission.settle(breaker::Outcome::Success);
                target.count_attempt(AttemptOutcome::Ok);
                if let (Some(cache), Some(key)) = (&route.cache, cache_key) {
                    cache.put(key, answer.clone());
                }
                let cache_state = route.cache.as_ref().map(|_| "miss");
                return Ok(Outcome::Response(whole_response(answer, cache_state)));
            }
            Ok(Received::Stream { body, first }) => {
                // The breaker hears how it went when the stream ends.
                target.count_attempt(AttemptOutcome::Ok);
                return Ok(Outcome::Stream(Box::new(StreamStart {
                    upstream: body,
                    first,
                    strip_usage_chunk,
                    read_timeout: target.upstream.read_timeout,
                    outcome: StreamOutcome::new(route.clone(), index, admission, in_flight),
                })));
            }
            Err(failure) => {
                admission.settle(failure.outcome);
                target.count_attempt(match failure.outcome {
                    breaker::Outcome::Failure => AttemptOutcome::Error,
                    _ if failure.error.status == StatusCode::TOO_MANY_REQUESTS => {
                        AttemptOutcome::RateLimited
                    }
                    _ => AttemptOutcome::Rejected,
                });
                let rest = Duration::from_millis(route.retry.max_retry_after_ms);
                if let Some(retry_after) = failure.retry_after.filter(|r| *r > rest) {
                    target.breaker.rest_until(Instant::now() + retry_after);
                }
                if !failure.retryable {
                    return Err(failure.error);
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
                previous = Some((index, failure.retry_after));
                last_error = Some(failure.error);
            }
        }
    }
    Err(last_error.unwrap_or_else(|| ApiError::no_available_target(&route.model)))
}

/// A failed attempt: the error the client gets if it was the last, whether another
/// attempt may follow, and what it says about the target.
struct AttemptFailure {
    error: ApiError,
    retryable: bool,
    outcome: breaker::Outcome,
    retry_after: Option<Duration>,
}

impl AttemptFailure {
    /// The target failed before answering: unreachable, reset, or silent too long.
    fn unreachable(error: ApiError) -> Self {
        Self {
            error,
            retryable: true,
            outcome: breaker::Outcome::Failure,
            retry_after: None,
        }
    }
}

/// A successful answer, received as far as it must be before the client sees any of
/// it: a whole body, or a stream's head and first event.
enum Received {
    Whole(CachedAnswer),
    Stream { body: UpstreamBody, first: Bytes },
}

/// Sends the request to one target and receives its answer (see [`Received`]); any
/// failure until then may still be retried elsewhere.
async fn attempt<T: ForwardedRequest>(
    ctx: &mut RequestContext,
    route: &Route,
    index: usize,
    request: &mut T,
    upstream_path: &str,
    stream: bool,
) -> Result<Received, AttemptFailure> {
    let target = &route.targets[index];
    let upstream = &target.upstream;
    ctx.record.upstream = Some(upstream.name.clone());
    ctx.record.upstream_model = Some(target.upstream_model.clone());
    request.set_model(target.upstream_model.to_string());
    let upstream_body = serde_json::to_vec(&*request).map_err(|e| AttemptFailure {
        error: ApiError::invalid_json(&e.to_string()),
        retryable: false,
        outcome: breaker::Outcome::Neutral,
        retry_after: None,
    })?;
    ctx.upstream_begin();
    let sent = upstream
        .post_json(upstream_path, upstream_body, stream, &ctx.record.id)
        .await;
    let response = match sent {
        Ok(response) => response,
        Err(e) => {
            ctx.upstream_end();
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
        return receive(ctx, response, stream, upstream.read_timeout)
            .await
            .map_err(|e| {
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
    ctx.upstream_end();
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
    Err(AttemptFailure {
        error: ApiError::from_upstream(status, message, retry_after_header).with_detail(detail),
        retryable: matches!(status.as_u16(), 429 | 500 | 502 | 503 | 504),
        outcome: if status.is_server_error() {
            breaker::Outcome::Failure
        } else {
            breaker::Outcome::Neutral
        },
        retry_after,
    })
}

/// Receives a successful upstream response: for a stream, up to its first complete
/// event; otherwise the whole body, checked, with its usage recorded.
async fn receive(
    ctx: &mut RequestContext,
    response: http::Response<UpstreamBody>,
    stream: bool,
    read_timeout: Duration,
) -> Result<Received, ApiError> {
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
    let body = read_upstream_body(response.into_body(), MAX_UPSTREAM_BODY, read_timeout).await;
    ctx.upstream_end();
    let body = body?;
    let probe: UsageProbe = serde_json::from_slice(&body)
        .map_err(|_| ApiError::upstream_protocol("the response body is not valid JSON"))?;
    if let Some(usage) = probe.usage {
        ctx.set_usage(usage);
    }
    ctx.first_byte();
    Ok(Received::Whole(CachedAnswer { body, content_type }))
}

/// A whole answer as the client gets it; `cache` says `hit` or `miss` on cached routes.
fn whole_response(answer: CachedAnswer, cache: Option<&'static str>) -> Response<GatewayBody> {
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
async fn read_upstream_body(
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
