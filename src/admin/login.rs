//! Local admin users' login and logout: a name and password for a short-lived session
//! token (`adm-…`), and revoking the token a request comes with.

use super::auth::{
    Authorized, GatewayState, client_addr, count_refusal, on_state_db, refuse_if_spent,
};
use super::error::AdminError;
use crate::server::auth_failures::{Known, Surface};
use crate::tenancy::{AdminTokenStore, AdminUserStore};
use axum::Json;
use axum::extract::rejection::JsonRejection;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Password checks running at once (each holds 19 MiB and tens of milliseconds of a
/// core); more logins wait their turn rather than exhaust memory.
static PASSWORD_CHECKS: Semaphore = Semaphore::const_new(4);

/// The address a login comes from.
pub(super) struct LoginClient(Arc<str>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for LoginClient {
    type Rejection = AdminError;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(client_addr(parts)))
    }
}

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
    client: LoginClient,
    body: Result<Json<LoginRequest>, JsonRejection>,
) -> Result<Json<Value>, AdminError> {
    let Json(request) = body.map_err(|e| AdminError::invalid(e.body_text()))?;
    // An address that spent its allowance of failures costs no password hash.
    refuse_if_spent(&state, &client.0, Surface::Login)?;
    let _turn = PASSWORD_CHECKS
        .acquire()
        .await
        .map_err(AdminError::internal)?;
    let outcome = on_state_db(&state, move |conn, secret| {
        AdminUserStore::new(conn, secret).login(&request.user, &request.password)
    })
    .await?
    .map_err(AdminError::internal)?;
    let session = outcome.map_err(|refused| {
        let answer = AdminError::unauthenticated(
            "invalid_credentials",
            "login failed: unknown user or wrong password, or the user is disabled or \
             locked out after repeated failures",
        );
        // The aggregate record says which it was; the caller is told none of it.
        let known = Known {
            key_id: None,
            actor: refused.actor.map(Arc::from),
            tenant_id: refused.tenant_id.map(Arc::from),
        };
        count_refusal(
            &state,
            &client.0,
            Surface::Login,
            refused.reason.code(),
            known,
        )
        .unwrap_or(answer)
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
