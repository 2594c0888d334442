//! The admin behind a request: its bearer token checked against the state database
//! (off the async workers), and its role checked against what a route needs. Refused
//! tokens count against the client address's allowance of failures (see
//! `server::auth_failures`): recorded in aggregate, 429 once the allowance is spent.

use super::error::AdminError;
use crate::server::AppState;
use crate::server::auth_failures::{ClientAddr, Known, Refusal, Surface, Verdict};
use crate::store::StoreError;
use crate::tenancy::rbac::Permission;
use crate::tenancy::{Admin, AdminAuthError, AdminTokenStore, STATE_MIGRATIONS};
use axum::extract::FromRequestParts;
use http::header;
use http::request::Parts;
use rusqlite::Connection;
use std::sync::Arc;

/// Runs `work` on the state database (given the key-hash secret) off the async workers,
/// opening it for this request.
pub(super) async fn on_state_db<T: Send + 'static>(
    state: &AppState,
    work: impl FnOnce(&Connection, &[u8; 32]) -> Result<T, StoreError> + Send + 'static,
) -> Result<Result<T, StoreError>, AdminError> {
    let access = state
        .admin
        .as_ref()
        .ok_or_else(|| AdminError::internal("admin API off"))?;
    let (path, secret) = (access.state_db.clone(), access.key_hash_secret);
    tokio::task::spawn_blocking(move || {
        let conn = crate::store::open(&path, STATE_MIGRATIONS)?;
        work(&conn, &secret)
    })
    .await
    .map_err(AdminError::internal)
}

/// The gateway state an admin request carries, for routes open without a token (login).
pub struct GatewayState(pub Arc<AppState>);

impl<S: Send + Sync> FromRequestParts<S> for GatewayState {
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Arc<AppState>>()
            .cloned()
            .map(Self)
            .ok_or_else(|| AdminError::internal("no gateway state on an admin request"))
    }
}

/// An authenticated admin.
pub struct Authorized {
    pub admin: Admin,
    pub state: Arc<AppState>,
}

impl Authorized {
    /// Refuses (403) unless the admin's role allows `permission`; a refusal is itself an
    /// audited admin event (`admin.forbidden`, naming the permission).
    pub async fn require(&self, permission: Permission) -> Result<(), AdminError> {
        if self.admin.role.allows(permission) {
            return Ok(());
        }
        let refused = AdminError::forbidden(format!(
            "the role {} may not do this ({permission:?})",
            self.admin.role
        ));
        // A failure to record is logged by AdminError::internal; the refusal stands.
        let _ = self
            .record("admin.forbidden", format!("{permission:?}"), None)
            .await;
        Err(refused)
    }

    /// Records an admin action (who, what, on which object) in the state database.
    pub async fn record(
        &self,
        action: &str,
        target: String,
        detail: Option<String>,
    ) -> Result<(), AdminError> {
        let (admin, action) = (self.admin.clone(), action.to_string());
        on_state_db(&self.state, move |conn, secret| {
            AdminTokenStore::new(conn, secret).record(&admin, &action, &target, detail.as_deref())
        })
        .await?
        .map_err(AdminError::internal)
    }
}

/// The bearer token of a request.
fn bearer(parts: &Parts) -> Option<String> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
        .filter(|t| !t.is_empty())
}

impl<S: Send + Sync> FromRequestParts<S> for Authorized {
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let GatewayState(state) = GatewayState::from_request_parts(parts, state).await?;
        let client = client_addr(parts);
        // An address that spent its allowance of failures is refused before its token
        // costs a database read.
        refuse_if_spent(&state, &client, Surface::Admin)?;
        let Some(token) = bearer(parts) else {
            let refused = AdminError::unauthenticated(
                "missing_admin_token",
                "an admin token is required (Authorization: Bearer adm-…)",
            );
            let limited = count_refusal(
                &state,
                &client,
                Surface::Admin,
                refused.code(),
                Known::default(),
            );
            return Err(limited.unwrap_or(refused));
        };
        let checked = on_state_db(&state, move |conn, secret| {
            AdminTokenStore::new(conn, secret).authenticate(&token)
        })
        .await?
        .map_err(AdminError::internal)?;
        let refused = match checked {
            Ok(admin) => return Ok(Self { admin, state }),
            Err(refused) => refused,
        };
        let error = match refused.reason {
            AdminAuthError::Unknown => {
                AdminError::unauthenticated("invalid_admin_token", "the admin token is not valid")
            }
            AdminAuthError::Revoked => {
                AdminError::unauthenticated("revoked_admin_token", "the admin token was revoked")
            }
            AdminAuthError::Expired => {
                AdminError::unauthenticated("expired_admin_token", "the admin token has expired")
            }
            AdminAuthError::Disabled => AdminError::unauthenticated(
                "disabled_admin_user",
                "the admin user this session belongs to is disabled",
            ),
        };
        let known = Known {
            key_id: None,
            actor: refused.actor.map(Arc::from),
            tenant_id: refused.tenant_id.map(Arc::from),
        };
        let limited = count_refusal(&state, &client, Surface::Admin, error.code(), known);
        Err(limited.unwrap_or(error))
    }
}

/// The client address the gateway handed the request with.
pub(super) fn client_addr(parts: &Parts) -> Arc<str> {
    parts
        .extensions
        .get::<ClientAddr>()
        .map_or_else(|| Arc::from(""), |addr| addr.0.clone())
}

/// 429 when `client` spent its allowance of failed authentications (the attempt is
/// counted, its credentials never looked at).
pub(super) fn refuse_if_spent(
    state: &AppState,
    client: &str,
    surface: Surface,
) -> Result<(), AdminError> {
    match state.auth_failures.spent(client, surface) {
        Some(wait) => Err(AdminError::too_many_auth_failures(wait)),
        None => Ok(()),
    }
}

/// Counts a refused authentication (for `reason`) against `client`'s allowance and in
/// the interval's aggregate record: the 429 to answer once the allowance is spent, else
/// `None` (the caller's 401 stands).
pub(super) fn count_refusal(
    state: &AppState,
    client: &str,
    surface: Surface,
    reason: &'static str,
    known: Known,
) -> Option<AdminError> {
    let refusal = Refusal {
        surface,
        reason,
        known,
    };
    match state.auth_failures.refuse(client, refusal) {
        Verdict::Unauthorized => None,
        Verdict::Limited { retry_after_secs } => {
            Some(AdminError::too_many_auth_failures(retry_after_secs))
        }
    }
}
