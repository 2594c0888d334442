//! Token counting (`POST /v1/messages/count_tokens`, Gemini's `:countTokens`): the
//! prompt tokens of a request, counted by
//! the first target of its model that can count (vLLM's `/tokenize`, Anthropic's
//! `count_tokens`, Gemini's `countTokens`), in the route's order. A target without the
//! endpoint, or out of reach, passes the question to the next.

use super::context::RequestContext;
use super::dispatch::read_upstream_body;
use super::error::ApiError;
use super::handler::{Outcome, json_response, parsed_body, request_body};
use crate::api::anthropic::MessagesRequest;
use crate::api::gemini::ingress;
use crate::api::openai::ChatCompletionRequest;
use crate::api::openai::upstream_error_message;
use crate::providers::wire_format;
use crate::tenancy::Principal;
use http::{Request, StatusCode, header};
use hyper::body::Incoming;
use serde_json::Value;

/// Largest counting answer read (vLLM's lists every token id).
const MAX_COUNT_ANSWER: usize = 16 * 1024 * 1024;

/// `POST /v1/messages/count_tokens`: `{"input_tokens": N}`.
pub(super) async fn count_tokens(
    ctx: &mut RequestContext,
    principal: &Principal,
    req: Request<Incoming>,
) -> Result<Outcome, ApiError> {
    let mut body = parsed_body::<Value>(ctx, req).await?;
    // A count needs no `max_tokens`; the Messages request type wants one.
    if let Some(fields) = body.as_object_mut() {
        fields.entry("max_tokens").or_insert(1.into());
    }
    let request: MessagesRequest =
        serde_json::from_value(body).map_err(|e| ApiError::invalid_json(&e.to_string()))?;
    let chat = request
        .to_chat()
        .map_err(|e| ApiError::invalid_request(&e.0))?;
    let tokens = count(ctx, principal, &chat).await?;
    let body = format!("{{\"input_tokens\":{tokens}}}");
    Ok(Outcome::Response(json_response(
        StatusCode::OK,
        body.into_bytes(),
    )))
}

/// Gemini's `models/NAME:countTokens`: `{"totalTokens": N}`.
pub(super) async fn gemini_count_tokens(
    ctx: &mut RequestContext,
    principal: &Principal,
    req: Request<Incoming>,
    model: &str,
) -> Result<Outcome, ApiError> {
    let body = request_body(ctx, req).await?;
    let chat = ingress::counted_request(&body)
        .and_then(|generate| ingress::to_chat(&generate, model, false))
        .map_err(|e| ApiError::invalid_request(&e.0))?;
    let tokens = count(ctx, principal, &chat).await?;
    let body = format!("{{\"totalTokens\":{tokens}}}");
    Ok(Outcome::Response(json_response(
        StatusCode::OK,
        body.into_bytes(),
    )))
}

/// The prompt tokens of `chat`, counted by the first target of its model that can.
async fn count(
    ctx: &mut RequestContext,
    principal: &Principal,
    chat: &ChatCompletionRequest,
) -> Result<u64, ApiError> {
    let state = ctx.state().clone();
    let route = state
        .routes
        .get(&chat.model)
        .filter(|_| principal.may_use(&chat.model))
        .ok_or_else(|| ApiError::model_not_found(&chat.model))?;
    ctx.record.model = Some(route.model.clone());
    for index in route.attempt_order() {
        let target = &route.targets[index];
        let upstream = &target.upstream;
        if !upstream.is_healthy() {
            continue;
        }
        // One credential per target: a refused one passes the question on.
        let Ok(credential) =
            super::credential::choose(&state, target, &route.model, &principal.tenant_id, &[])
        else {
            continue;
        };
        let count = wire_format::count_request(upstream.kind, chat, &target.upstream_model)?;
        ctx.record.upstream = Some(upstream.name.clone());
        ctx.record.upstream_model = Some(target.upstream_model.clone());
        ctx.record.attempts += 1;
        ctx.upstream_begin();
        let sent = upstream
            .post_json(
                count.path(),
                count.body.clone(),
                false,
                &ctx.record.id,
                credential.as_ref().map(|c| c.header()),
            )
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(e) => {
                ctx.upstream_end();
                tracing::info!(request_id = %ctx.record.id, upstream = %upstream.name, "count_tokens: {e}; trying the next target");
                continue;
            }
        };
        let status = response.status();
        let retry_after = response.headers().get(header::RETRY_AFTER).cloned();
        let answer = read_upstream_body(
            response.into_body(),
            MAX_COUNT_ANSWER,
            upstream.read_timeout,
        )
        .await;
        ctx.upstream_end();
        let answer = answer?;
        if status.is_success() {
            return wire_format::counted_tokens(upstream.kind, &answer)
                .ok_or_else(|| ApiError::upstream_protocol("the token count answer has no count"));
        }
        // No such endpoint there (llama.cpp, TGI, …), or it is failing: ask the next.
        if matches!(status.as_u16(), 404 | 405 | 501) || status.is_server_error() {
            tracing::info!(request_id = %ctx.record.id, upstream = %upstream.name, status = status.as_u16(), "count_tokens: target cannot count; trying the next");
            continue;
        }
        let message = upstream_error_message(&answer);
        return Err(ApiError::from_upstream(status, message, retry_after));
    }
    Err(ApiError::count_tokens_unavailable(&route.model))
}
