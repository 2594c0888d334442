//! The data path: authenticate, read and parse the body, resolve the route, forward to
//! the upstream, and relay the answer.

use super::auth_failures::{Known, Refusal, Surface, Verdict};
use super::body::GatewayBody;
use super::context::RequestContext;
use super::count_tokens::{count_tokens, gemini_count_tokens};
use super::dispatch::{self, whole_response};
use super::error::ApiError;
use super::metering_stage;
use super::pii_stage;
use super::policy_stage::{self, PolicyState, Rerouted};
use super::request_id::RequestId;
use super::{AppState, Endpoint};
use crate::api::anthropic::stream::AnthropicStream;
use crate::api::anthropic::{self, MessagesRequest};
use crate::api::gemini::ingress::{self, GeminiEvents};
use crate::api::hosted::DroppedTools;
use crate::api::openai::{
    ChatCompletionRequest, CompletionRequest, EmbeddingRequest, ForwardedRequest,
};
use crate::api::responses::stream::ResponsesStream;
use crate::api::responses::{self, ResponsesRequest};
use crate::api::{ClientEvents, Invalid};
use crate::config::Sticky;
use crate::providers::sse_relay::{SseRelay, StreamDialect, StreamStart};
use crate::routing::{cache, capabilities};
use crate::tenancy::{AuthError, KeyRefused, Principal};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::de::DeserializeOwned;
use std::sync::Arc;

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
        Endpoint::Metrics if state.metrics_enabled => match &state.metrics_token {
            Some(token) if !token.admits(req.headers()) => {
                ApiError::metrics_unauthorized().into_response()
            }
            _ => metrics_response(&state),
        },
        Endpoint::Admin if state.admin.is_some() => {
            crate::admin::handle(state, client_addr, req).await
        }
        Endpoint::Admin => ApiError::route_not_found(req.uri().path()).into_response(),
        Endpoint::Metrics | Endpoint::NotFound => {
            ApiError::route_not_found(req.uri().path()).into_response()
        }
        Endpoint::WrongMethod => {
            ApiError::method_not_allowed(req.method(), req.uri().path()).into_response()
        }
        Endpoint::Models
        | Endpoint::ChatCompletions
        | Endpoint::Messages
        | Endpoint::Responses
        | Endpoint::CountTokens
        | Endpoint::GenerateContent
        | Endpoint::GeminiCountTokens
        | Endpoint::GeminiModels
        | Endpoint::Completions
        | Endpoint::Embeddings => {
            // Before anything is recorded: a refused key leaves no record of its own.
            let principal = match authenticate(&state, &client_addr, req.headers()) {
                Ok(principal) => principal,
                Err(err) => return refused_unrecorded(&state, endpoint, err),
            };
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
            ctx.set_principal(&principal);
            ctx.set_caller_labels(req.headers());
            let policies = state.policies.current();
            let result = match state.refusal(&policies) {
                Some(err) => Err(err),
                None => {
                    ctx.policy = PolicyState::begin(policies, req.headers());
                    serve(&mut ctx, endpoint, &principal, req).await
                }
            };
            let response = match result {
                Ok(Outcome::Response(mut response)) => {
                    ctx.finish(response.status().as_u16(), None);
                    if let Some(rerouted) = &ctx.rerouted {
                        rerouted.say(response.headers_mut());
                    }
                    ctx.say_cost(response.headers_mut());
                    ctx.say_dropped_tools(response.headers_mut());
                    ctx.pii.say_unscanned(response.headers_mut());
                    response
                }
                Ok(Outcome::Stream(stream)) => {
                    let rerouted = ctx.rerouted.take();
                    let mut headers = http::HeaderMap::new();
                    ctx.pii.say_unscanned(&mut headers);
                    ctx.say_dropped_tools(&mut headers);
                    // The relay records the stream when it ends, before its last bytes.
                    let mut relay = SseRelay::new(*stream, ctx);
                    relay.prime().await;
                    let mut response = stream_response(relay);
                    if let Some(rerouted) = rerouted {
                        rerouted.say(response.headers_mut());
                    }
                    response.headers_mut().extend(headers);
                    return response;
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
                    error_response(endpoint, err)
                }
            };
            // No response leaves before its audit record is durable (in durable mode).
            if let Some((sink, event)) = ctx.take_audit()
                && sink.record(event).await.is_err()
            {
                let err = ApiError::audit_unavailable();
                ctx.finish(err.status.as_u16(), Some(err.code));
                return error_response(endpoint, err);
            }
            response
        }
    }
}

/// Serves an authenticated data-path request.
async fn serve(
    ctx: &mut RequestContext,
    endpoint: Endpoint,
    principal: &Principal,
    req: Request<Incoming>,
) -> Result<Outcome, ApiError> {
    match endpoint {
        Endpoint::Models => list_models(ctx, principal, req.headers(), false),
        Endpoint::ChatCompletions => {
            forward::<ChatCompletionRequest>(ctx, principal, req, "/chat/completions").await
        }
        Endpoint::Messages => messages(ctx, principal, req).await,
        Endpoint::Responses => responses(ctx, principal, req).await,
        Endpoint::CountTokens => count_tokens(ctx, principal, req).await,
        Endpoint::GenerateContent => generate_content(ctx, principal, req).await,
        Endpoint::GeminiCountTokens => {
            let path = req.uri().path().to_string();
            let model = ingress::model_method(&path).map_or("", |(model, _)| model);
            gemini_count_tokens(ctx, principal, req, model).await
        }
        Endpoint::GeminiModels => list_models(ctx, principal, req.headers(), true),
        Endpoint::Completions => {
            forward::<CompletionRequest>(ctx, principal, req, "/completions").await
        }
        _ => forward::<EmbeddingRequest>(ctx, principal, req, "/embeddings").await,
    }
}

/// Answers a request refused before it had a context (its key was refused): counted in
/// the metrics, recorded only in the interval's aggregate of refused authentications.
fn refused_unrecorded(
    state: &AppState,
    endpoint: Endpoint,
    err: ApiError,
) -> Response<GatewayBody> {
    use crate::telemetry::metrics::{ErrorLabels, RequestLabels};
    let metrics = &state.metrics;
    let name = endpoint.name();
    metrics
        .requests
        .get_or_create(&RequestLabels {
            endpoint: name,
            status: err.status.as_u16(),
        })
        .inc();
    metrics
        .errors
        .get_or_create(&ErrorLabels {
            endpoint: name,
            kind: err.code,
        })
        .inc();
    error_response(endpoint, err)
}

/// An error in the wire format of the endpoint's callers.
fn error_response(endpoint: Endpoint, err: ApiError) -> Response<GatewayBody> {
    match endpoint {
        Endpoint::Messages | Endpoint::CountTokens => err.into_anthropic_response(),
        Endpoint::GenerateContent | Endpoint::GeminiCountTokens | Endpoint::GeminiModels => {
            err.into_gemini_response()
        }
        _ => err.into_response(),
    }
}

/// What a data-path handler produced: a complete response, or an upstream event stream
/// to relay (the relay then owns the context and finishes it when the stream ends).
pub(super) enum Outcome {
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

pub(super) fn json_response(status: StatusCode, body: Vec<u8>) -> Response<GatewayBody> {
    let mut response = Response::new(GatewayBody::full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// `/readyz`: `ready`, or `degraded` naming each part that is not (the NER model, the
/// data directory's free space, the policy), 503 when one of them refuses requests or
/// the gateway is draining.
fn readiness(state: &AppState) -> Response<GatewayBody> {
    if state.draining.load(std::sync::atomic::Ordering::Relaxed) {
        return json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            br#"{"status":"draining"}"#.to_vec(),
        );
    }
    let policies = state.policies.current();
    let ner = state.pii.as_ref().and_then(|pii| pii.degraded());
    // Records cannot be written (a full disk): fail-closed refuses every request.
    let audit = state
        .audit
        .as_ref()
        .filter(|audit| !audit.writable())
        .map(|audit| ("unavailable".to_string(), audit.fails_closed()));
    let parts = [
        (
            "ner",
            ner.map(|(why, refusing)| (why.to_string(), refusing)),
        ),
        ("audit", audit),
        ("disk", state.disk.readiness()),
        ("policy", policies.readiness()),
    ];
    let mut body = serde_json::Map::new();
    body.insert("status".into(), "degraded".into());
    let mut refusing = false;
    for (part, problem) in parts {
        if let Some((why, refuses)) = problem {
            body.insert(part.into(), why.into());
            refusing |= refuses;
        }
    }
    if body.len() == 1 {
        return json_response(StatusCode::OK, br#"{"status":"ready"}"#.to_vec());
    }
    let status = if refusing {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    json_response(
        status,
        serde_json::Value::Object(body).to_string().into_bytes(),
    )
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

/// The key a client presented: `Authorization: Bearer …`, `x-api-key: …` (Anthropic's
/// clients) or `x-goog-api-key: …` (Gemini's). Never a URL's `?key=`: URLs end up in
/// logs.
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
        .or_else(|| headers.get("x-goog-api-key"))
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The caller of a data-path request. A refused key is counted against its address's
/// allowance of failures (401 while it lasts, 429 once spent) and in the interval's
/// aggregate record, never recorded one by one.
fn authenticate(
    state: &AppState,
    client_addr: &str,
    headers: &HeaderMap,
) -> Result<Principal, ApiError> {
    let refused = match presented_key(headers) {
        None => KeyRefused::from(AuthError::Missing),
        Some(key) => {
            state.state_mirror.refresh().map_err(|e| {
                tracing::error!(error = %e, "cannot read the state database");
                ApiError::auth(AuthError::Unavailable)
            })?;
            match state.keys.authenticate(key) {
                Ok(principal) => return Ok(principal),
                Err(refused) => refused,
            }
        }
    };
    let err = ApiError::auth(refused.error);
    let refusal = Refusal {
        surface: Surface::DataPath,
        reason: err.code,
        known: Known {
            key_id: refused.key_id,
            tenant_id: refused.tenant_id,
            actor: None,
        },
    };
    match state.auth_failures.refuse(client_addr, refusal) {
        Verdict::Unauthorized => Err(err),
        Verdict::Limited { retry_after_secs } => {
            Err(ApiError::too_many_auth_failures(retry_after_secs))
        }
    }
}

/// `GET /v1/models`: the models the caller's key may use, in OpenAI's list shape, or in
/// Anthropic's when the request carries `anthropic-version` (Anthropic's SDKs do), or in
/// Gemini's for `GET /v1beta/models` (`gemini`) or a request with `x-goog-api-key`.
fn list_models(
    ctx: &mut RequestContext,
    principal: &Principal,
    headers: &HeaderMap,
    gemini: bool,
) -> Result<Outcome, ApiError> {
    let state = ctx.state();
    let names: Vec<&String> = state
        .routes
        .names()
        .iter()
        .filter(|name| principal.may_use(name))
        .collect();
    // Gemini's SDK lists `/v1/models` too; its key header tells it apart.
    let list = if gemini || headers.contains_key("x-goog-api-key") {
        let models: Vec<serde_json::Value> = names
            .iter()
            .map(|name| {
                serde_json::json!({"name": format!("models/{name}"), "displayName": name,
                    "supportedGenerationMethods": ["generateContent", "countTokens"]})
            })
            .collect();
        serde_json::json!({"models": models})
    } else if headers.contains_key("anthropic-version") {
        let created = humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH
                + std::time::Duration::from_secs(u64::try_from(state.started_unix).unwrap_or(0)),
        )
        .to_string();
        let data: Vec<serde_json::Value> = names
            .iter()
            .map(|name| {
                serde_json::json!({"type": "model", "id": name, "display_name": name, "created_at": created})
            })
            .collect();
        serde_json::json!({
            "data": data,
            "has_more": false,
            "first_id": names.first(),
            "last_id": names.last(),
        })
    } else {
        let data: Vec<serde_json::Value> = names
            .iter()
            .map(|name| {
                serde_json::json!({
                    "id": name,
                    "object": "model",
                    "created": state.started_unix,
                    "owned_by": "airlock",
                })
            })
            .collect();
        serde_json::json!({"object": "list", "data": data})
    };
    let body =
        serde_json::to_vec(&list).map_err(|e| ApiError::upstream_protocol(&e.to_string()))?;
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
    principal: &Principal,
    req: Request<Incoming>,
    upstream_path: &str,
) -> Result<Outcome, ApiError> {
    let request = parsed_body::<T>(ctx, req).await?;
    route_and_dispatch(ctx, principal, request, upstream_path).await
}

/// `POST /v1/messages`: Anthropic's request served through the chat path, answered in
/// Anthropic's shapes.
async fn messages(
    ctx: &mut RequestContext,
    principal: &Principal,
    req: Request<Incoming>,
) -> Result<Outcome, ApiError> {
    let request = parsed_body::<MessagesRequest>(ctx, req).await?;
    let hosted = ctx.state().hosted_tools;
    let chat = with_dropped_tools(ctx, request.translate(hosted));
    through_chat(
        ctx,
        principal,
        chat,
        |completion| anthropic::from_chat(completion, &request.model),
        || Box::new(AnthropicStream::new(&request.model)),
    )
    .await
}

/// `POST /v1/responses`: a stateless Responses API request served through the chat path,
/// answered as a Response object or its events.
async fn responses(
    ctx: &mut RequestContext,
    principal: &Principal,
    req: Request<Incoming>,
) -> Result<Outcome, ApiError> {
    let request = parsed_body::<ResponsesRequest>(ctx, req).await?;
    let hosted = ctx.state().hosted_tools;
    let chat = with_dropped_tools(ctx, request.translate(hosted));
    through_chat(
        ctx,
        principal,
        chat,
        |completion| responses::from_chat(completion, &request),
        || Box::new(ResponsesStream::new(&request)),
    )
    .await
}

/// The request body, parsed.
pub(super) async fn parsed_body<R: DeserializeOwned>(
    ctx: &mut RequestContext,
    req: Request<Incoming>,
) -> Result<R, ApiError> {
    parse(&request_body(ctx, req).await?)
}

/// The request body as sent, kept for the audit record.
pub(super) async fn request_body(
    ctx: &mut RequestContext,
    req: Request<Incoming>,
) -> Result<Bytes, ApiError> {
    let state = ctx.state().clone();
    let body = read_body(&state, req).await?;
    ctx.set_request_payload(&body);
    Ok(body)
}

/// Gemini's `models/NAME:generateContent` and `:streamGenerateContent?alt=sse`, served
/// through the chat path and answered in Gemini's shapes.
async fn generate_content(
    ctx: &mut RequestContext,
    principal: &Principal,
    req: Request<Incoming>,
) -> Result<Outcome, ApiError> {
    let path = req.uri().path().to_string();
    let (model, method) = ingress::model_method(&path).unwrap_or_default();
    let stream = method == "streamGenerateContent";
    if stream
        && !req
            .uri()
            .query()
            .is_some_and(|q| q.split('&').any(|p| p == "alt=sse"))
    {
        return Err(ApiError::invalid_request(
            "streamGenerateContent is served as server-sent events only: add `alt=sse`",
        ));
    }
    let body = request_body(ctx, req).await?;
    let hosted = ctx.state().hosted_tools;
    let chat = with_dropped_tools(ctx, ingress::translate(&body, model, stream, hosted));
    through_chat(
        ctx,
        principal,
        chat,
        |completion| ingress::from_chat(completion, model),
        || Box::new(GeminiEvents::new(model, None)),
    )
    .await
}

/// A translated request's chat form, the provider-run tools it left out kept for the
/// response header and the audit record.
fn with_dropped_tools(
    ctx: &mut RequestContext,
    translated: Result<(ChatCompletionRequest, DroppedTools), Invalid>,
) -> Result<ChatCompletionRequest, Invalid> {
    translated.map(|(chat, dropped)| {
        ctx.dropped_tools = dropped;
        chat
    })
}

/// Routes a chat request made from another format and turns the answer back into that
/// format: `whole` rewrites a completion, `events` writes the stream.
async fn through_chat(
    ctx: &mut RequestContext,
    principal: &Principal,
    chat: Result<ChatCompletionRequest, Invalid>,
    whole: impl FnOnce(&serde_json::Value) -> serde_json::Value,
    events: impl FnOnce() -> Box<dyn ClientEvents>,
) -> Result<Outcome, ApiError> {
    let chat = chat.map_err(|e| ApiError::invalid_request(&e.0))?;
    match route_and_dispatch(ctx, principal, chat, "/chat/completions").await? {
        Outcome::Response(response) => {
            let (parts, body) = response.into_parts();
            let Ok(collected) = body.collect().await;
            let completion: serde_json::Value = serde_json::from_slice(&collected.to_bytes())
                .map_err(|_| ApiError::upstream_protocol("the response body is not valid JSON"))?;
            let body = Bytes::from(
                serde_json::to_vec(&whole(&completion))
                    .map_err(|e| ApiError::upstream_protocol(&e.to_string()))?,
            );
            ctx.set_response_payload(body.clone());
            Ok(Outcome::Response(Response::from_parts(
                parts,
                GatewayBody::full(body),
            )))
        }
        Outcome::Stream(mut stream) => {
            stream.dialect = StreamDialect::Translated(events());
            Ok(Outcome::Stream(stream))
        }
    }
}

/// Resolves the model's route, narrows its targets to those that can serve the request
/// (and the caller's experiment arm), answers from the cache when it can, and sends it.
async fn route_and_dispatch<T: ForwardedRequest>(
    ctx: &mut RequestContext,
    principal: &Principal,
    mut request: T,
    upstream_path: &str,
) -> Result<Outcome, ApiError> {
    let state = ctx.state().clone();
    let mut route = state
        .routes
        .get(request.model())
        .filter(|_| principal.may_use(request.model()))
        .ok_or_else(|| ApiError::model_not_found(request.model()))?;
    ctx.set_end_user(request.end_user());
    ctx.record.model = Some(route.model.clone());
    pii_stage::inspect(ctx, principal, &mut request).await?;
    if let Some(reroute) = policy_stage::request_phase(ctx, principal, &request, route)? {
        route = state
            .routes
            .get(&reroute.model)
            .ok_or_else(|| ApiError::policy_route_invalid(&reroute.model))?;
        ctx.record.requested_model = Some(request.model().into());
        ctx.rerouted = Some(Rerouted {
            from: request.model().to_string(),
            downgrade: reroute.downgrade,
        });
        request.set_model(reroute.model.to_string());
    }
    metering_stage::admit(ctx, principal, &mut request, &mut route, &state)?;
    pii_stage::transform(ctx, principal, &mut request).await?;
    let stream = request.is_stream();
    ctx.record.stream = stream;
    ctx.record.model = Some(route.model.clone());
    let strip_usage_chunk = stream && request.request_stream_usage();

    let mut order = route.attempt_order();
    // Targets that cannot serve what the request uses are never tried (reading what the
    // request uses only where some target declares a limit).
    if route.limits_capabilities {
        let features = request.features();
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
        ctx.set_response_payload(answer.body.clone());
        let hit = Outcome::Response(whole_response(answer, Some("hit")));
        return judge_response(ctx, hit).await;
    }
    let plan = dispatch::Plan {
        route,
        order,
        upstream_path,
        stream,
        strip_usage_chunk,
        cache_key,
        tenant_id: principal.tenant_id.clone(),
    };
    let outcome = dispatch::dispatch(ctx, plan, &mut request).await?;
    judge_response(ctx, outcome).await
}

/// A whole answer (fresh or cached) before delivery: placeholders restored (and the
/// model's own personal data masked, if configured), then the policy's response phase,
/// refusing it when a response rule denies. Streams pass as they are.
async fn judge_response(ctx: &mut RequestContext, outcome: Outcome) -> Result<Outcome, ApiError> {
    let rewrites = pii_stage::rewrites_answers(ctx);
    match outcome {
        Outcome::Response(response) if rewrites || ctx.policy.judges_responses() => {
            let (parts, body) = response.into_parts();
            let Ok(collected) = body.collect().await;
            let mut bytes = collected.to_bytes();
            if rewrites && parts.status.is_success() {
                bytes = pii_stage::rewrite_answer(ctx, bytes);
                ctx.set_response_payload(bytes.clone());
            }
            if let Ok(answer) = serde_json::from_slice::<serde_json::Value>(&bytes) {
                policy_stage::response_phase(ctx, &answer)?;
            }
            Ok(Outcome::Response(Response::from_parts(
                parts,
                GatewayBody::full(bytes),
            )))
        }
        outcome => Ok(outcome),
    }
}
