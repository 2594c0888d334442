//! Which provider credential an attempt authenticates with: none (the upstream's own
//! key), or one chosen from the current credential snapshot by the target's policy; and
//! how long a credential the provider refused or throttled is left out.

use super::AppState;
use super::error::ApiError;
use crate::config::CredentialFallback;
use crate::routing::Target;
use crate::tenancy::credentials::Credential;
use std::sync::Arc;
use std::time::Duration;

/// A credential the provider refused (401/403) is not chosen again for this long.
const REFUSED_REST: Duration = Duration::from_secs(30);
/// A throttled credential (429) rests for its `Retry-After`, at least this long…
const THROTTLED_REST_MIN: Duration = Duration::from_secs(1);
/// …and at most this long.
const THROTTLED_REST_MAX: Duration = Duration::from_secs(60);

/// The credential for an attempt on `target` by a caller of `tenant_id`, skipping those
/// already `tried` by this request: `Ok(None)` means the upstream's own key; an error
/// means this target cannot be used for this request (no usable credential, and the
/// target refuses to fall back).
pub(super) fn choose(
    state: &AppState,
    target: &Target,
    model: &str,
    tenant_id: &str,
    tried: &[Arc<str>],
) -> Result<Option<Arc<Credential>>, ApiError> {
    let Some(policy) = &target.credential else {
        return Ok(None);
    };
    // Refreshed per attempt, so a revocation from another process also reaches requests
    // between retries (one non-blocking system call when nothing changed).
    if let Err(e) = state.state_mirror.refresh() {
        tracing::error!(error = %e, "cannot tell whether provider credentials changed");
    }
    let snapshot = state.credentials.snapshot();
    let chosen = snapshot
        .pool(policy, &target.upstream.name, tenant_id)
        .and_then(|pool| pool.choose(policy.strategy, tried));
    match (chosen, policy.fallback) {
        (Some(credential), _) => Ok(Some(credential)),
        (None, CredentialFallback::UpstreamKey) => Ok(None),
        (None, CredentialFallback::Refuse) => Err(ApiError::no_provider_credential(
            model,
            &target.upstream.name,
        )),
    }
}

/// Leaves out a credential its provider refused, or `throttled` (with `retry_after`).
pub(super) fn rest(credential: &Credential, throttled: bool, retry_after: Option<Duration>) {
    let rest = if throttled {
        retry_after
            .unwrap_or(THROTTLED_REST_MIN)
            .clamp(THROTTLED_REST_MIN, THROTTLED_REST_MAX)
    } else {
        REFUSED_REST
    };
    let rest_ms = i64::try_from(rest.as_millis()).unwrap_or(i64::MAX);
    credential.rest_until(crate::store::now_unix_ms().saturating_add(rest_ms));
    tracing::info!(credential = %credential.id, throttled, rest_ms, "provider refused a credential; trying the next");
}

/// Whether a failed attempt's status says the provider refused or throttled the
/// credential (rather than the request or the server).
pub(super) fn refused(status: u16) -> bool {
    matches!(status, 401 | 403 | 429)
}
