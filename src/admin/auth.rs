//! The admin behind a request: its bearer token checked against the state database
//! (off the async workers), and its role checked against what a route needs.

use super::error::AdminError;
use crate::server::AppState;
use crate::tenancy::rbac::Permission;
use crate::tenancy::{Admin, AdminAuthError, AdminTokenStore, STATE_MIGRATIONS};
use axum::extract::FromRequestParts;
use http::header;
use http::request::Parts;
use std::sync::Arc;

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
        let access = self
            .state
            .admin
            .as_ref()
            .ok_or_else(|| AdminError::internal("admin API off"))?;
        let (path, secret, admin, action) = (
            access.state_db.clone(),
            access.key_hash_secret,
            self.admin.clone(),
            action.to_string(),
        );
        tokio::task::spawn_blocking(move || {
            let conn = crate::store::open(&path, STATE_MIGRATIONS)?;
            AdminTokenStore::new(&conn, &secret).record(&admin, &action, &target, detail.as_deref())
        })
        .await
        .map_err(AdminError::internal)?
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

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let state = parts
            .extensions
            .get::<Arc<AppState>>()
            .cloned()
            .ok_or_else(|| AdminError::internal("no gateway state on an admin request"))?;
        let token = bearer(parts).ok_or_else(|| {
            AdminError::unauthenticated(
                "missing_admin_token",
                "an admin token is required (Authorization: Bearer adm-…)",
            )
        })?;
        let access = state
            .admin
            .as_ref()
            .ok_or_else(|| AdminError::internal("admin API off"))?;
        let (path, secret) = (access.state_db.clone(), access.key_hash_secret);
        let checked = tokio::task::spawn_blocking(move || {
            let conn = crate::store::open(&path, STATE_MIGRATIONS)?;
            AdminTokenStore::new(&conn, &secret).authenticate(&token)
        })
        .await
        .map_err(AdminError::internal)?
        .map_err(AdminError::internal)?;
        let admin = checked.map_err(|e| match e {
            AdminAuthError::Unknown => {
                AdminError::unauthenticated("invalid_admin_token", "the admin token is not valid")
            }
            AdminAuthError::Revoked => {
                AdminError::unauthenticated("revoked_admin_token", "the admin token was revoked")
            }
            AdminAuthError::Expired => {
                AdminError::unauthenticated("expired_admin_token", "the admin token has expired")
            }
        })?;
        Ok(Self { admin, state })
    }
}
