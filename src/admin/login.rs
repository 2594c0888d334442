//! Local admin users' login and logout: a name and password for a short-lived session
//! token (`adm-…`), and revoking the token a request comes with.

use super::auth::{Authorized, GatewayState, on_state_db};
use super::error::AdminError;
use crate::tenancy::{AdminTokenStore, AdminUserStore};
use axum::Json;
use axum::extract::rejection::JsonRejection;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

/// Password checks running at once (each holds 19 MiB and tens of milliseconds of a
/// core); more logins wait their turn rather than exhaust memory.
static PASSWORD_CHECKS: Semaphore = Semaphore::const_new(4);

/// `POST /admin/login`'s body. No `Debug`: it holds a password.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LoginRequest {
    user: String,
    password: String,
}

/// `POST /admin/login` `{"user", "password"}`: a session token for the user's role (and
/// tenant), valid for `tenancy::SESSION_SECS`. Every refusal — unknown user, wrong
/// password, locked out, disabled — is the same 401, so names cannot be probed; the
/// audit trail says which it was.
pub(super) async fn login(
    GatewayState(state): GatewayState,
    body: Result<Json<LoginRequest>, JsonRejection>,
) -> Result<Json<Value>, AdminError> {
    let Json(request) = body.map_err(|e| AdminError::invalid(e.body_text()))?;
    let _turn = PASSWORD_CHECKS
        .acquire()
        .await
        .map_err(AdminError::internal)?;
    let outcome = on_state_db(&state, move |conn, secret| {
        AdminUserStore::new(conn, secret).login(&request.user, &request.password)
    })
    .await?
    .map_err(AdminError::internal)?;
    let session = outcome.map_err(|_| {
        AdminError::unauthenticated(
            "invalid_credentials",
            "login failed: unknown user or wrong password, or the user is disabled or \
             locked out after repeated failures",
        )
    })?;
    Ok(Json(json!({
        "token": session.token,
        "expires_at": session.expires_at,
        "role": session.role,
        "tenant": session.tenant,
    })))
}

/// `POST /admin/logout`: revokes the token the request comes with (any role).
pub(super) async fn logout(auth: Authorized) -> Result<Json<Value>, AdminError> {
    let admin = auth.admin.clone();
    on_state_db(&auth.state, move |conn, secret| {
        AdminTokenStore::new(conn, secret).logout(&admin)
    })
    .await?
    .map_err(AdminError::store)?;
    Ok(Json(json!({"revoked": auth.admin.token_id})))
}
