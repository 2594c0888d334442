//! The metering stage: takes the request from the caller's rate limits (tokens by an
//! estimate), sends it to a cheaper model when a budget is past its downgrade share, and
//! reserves its worst-case cost — a bound, not an estimate: the prompt at most one token
//! a byte of the request, the completion capped at what was reserved — refusing it when
//! a limit could be passed. The context settles both with the actual usage when the
//! request ends, however it ends.

use super::context::RequestContext;
use super::error::ApiError;
use super::policy_stage::Rerouted;
use crate::api::openai::ForwardedRequest;
use crate::metering::budget::{Budgets, Subject};
use crate::routing::Route;
use crate::tenancy::Principal;

/// Runs the stage for `request`, bound for `route` (one of `state`'s, which a
/// downgrade replaces).
pub fn admit<'r, T: ForwardedRequest>(
    ctx: &mut RequestContext,
    principal: &Principal,
    request: &mut T,
    route: &mut &'r std::sync::Arc<Route>,
    state: &'r super::AppState,
) -> Result<(), ApiError> {
    let now = crate::store::now_unix_ms();
    let (taken, budgets) = {
        let subject = Subject {
            tenant_id: &principal.tenant_id,
            team_id: principal.team_id.as_deref(),
            user: ctx.user_id(),
            key_id: &principal.key_id,
        };
        let taken = state
            .rate_limits
            .take(
                subject,
                || {
                    request_tokens_estimate(
                        request.prompt_text().len(),
                        request.completion_budget(),
                    )
                },
                now,
            )
            .map_err(ApiError::rate_limited)?;
        (taken, state.budgets.applicable(subject))
    };
    if let Some(taken) = taken {
        ctx.hold_rate_limits(taken);
    }
    if budgets.is_empty() {
        return Ok(());
    }
    if let Some(cheaper) = Budgets::downgrade(&budgets, request.model(), now) {
        match state.routes.get(&cheaper) {
            Some(cheaper_route) => {
                if ctx.rerouted.is_none() {
                    ctx.record.requested_model = Some(request.model().into());
                    ctx.rerouted = Some(Rerouted {
                        from: request.model().to_string(),
                        downgrade: true,
                    });
                }
                request.set_model(cheaper);
                *route = cheaper_route;
            }
            None => tracing::warn!(
                model = %cheaper,
                "a budget downgrades to a model this gateway does not serve; not downgrading"
            ),
        }
    }
    let completion = match request.completion_budget() {
        0 => state.default_max_tokens,
        asked => asked,
    };
    let worst = worst_case_nanos(state, request, completion, route);
    let hold = state
        .budgets
        .reserve(budgets, worst, now)
        .map_err(ApiError::budget_exceeded)?;
    if worst > 0 {
        // The upstream may not generate more than was reserved.
        request.limit_completion(completion);
    }
    ctx.hold_budget(hold);
    Ok(())
}

/// The length of `request` as JSON, without building it.
fn serialized_len<T: serde::Serialize>(request: &T) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    // Writing to a counter cannot fail; a value that cannot serialise counts what it wrote.
    let _ = serde_json::to_writer(&mut counter, request);
    counter.0
}

/// A request's tokens as rate limits estimate them before it goes: its prompt at four
/// bytes a token, and the completion limit it names (corrected by actual usage after).
fn request_tokens_estimate(prompt_bytes: usize, completion_budget: u64) -> u64 {
    (prompt_bytes as u64)
        .div_ceil(4)
        .saturating_add(completion_budget)
}

/// A prompt's tokens at most: no more than the bytes of the whole request as JSON (a
/// token covers at least one byte of text; the JSON's own keys and quotes, at least
/// twenty bytes a message, outnumber the tokens a chat template adds around it), plus a
/// margin for a template's fixed preamble.
fn prompt_tokens_at_most(request_bytes: usize) -> u64 {
    request_bytes as u64 + TEMPLATE_TOKENS
}

/// Tokens a chat template may add beyond its per-message markers (a default system line).
const TEMPLATE_TOKENS: u64 = 32;

/// What the request could cost at most: its prompt (bounded by the request's size) and
/// its completion limit, at the dearest price among the route's targets.
fn worst_case_nanos<T: serde::Serialize>(
    state: &super::AppState,
    request: &T,
    completion: u64,
    route: &Route,
) -> i64 {
    let book = state.pricing.book();
    let (mut input, mut output) = (0u64, 0u64);
    for target in &route.targets {
        if let Some(price) = book.lookup(&target.upstream.name, &target.upstream_model) {
            input = input.max(price.input);
            output = output.max(price.output);
        }
    }
    if input == 0 && output == 0 {
        return 0;
    }
    // Measured only for a priced model: it costs a pass over the request.
    let prompt = prompt_tokens_at_most(serialized_len(request));
    crate::metering::Price {
        input,
        output,
        cached_input: input,
    }
    .cost_nanos(&crate::api::openai::Usage {
        prompt_tokens: prompt,
        completion_tokens: completion,
        cached_tokens: 0,
    })
}
