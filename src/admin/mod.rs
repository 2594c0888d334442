//! The admin API under `/admin/`: authenticated with admin tokens (never virtual keys),
//! made by the CLI or by a local admin user's login, each route checking its permission
//! against the role matrix (`tenancy::rbac`), every change recorded as an admin event.
//! The routes are axum's; the gateway hands every `/admin/` request to [`handle`].

mod audit;
mod auth;
mod body;
mod credentials;
mod error;
mod login;
mod metering;
mod pii;
mod policy;
mod routes;
mod tenancy;

use crate::server::AppState;
use crate::server::body::GatewayBody;
use axum::body::Body;
use axum::response::IntoResponse;
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use tower::ServiceExt;

/// What the admin API needs to check tokens and record events.
pub struct AdminAccess {
    /// The state database (`airlock.db`), opened per admin request.
    pub state_db: PathBuf,
    /// The audit log (`audit.db`), read per admin request.
    pub audit_db: PathBuf,
    /// The request log (`requests.db`), read for reports.
    pub request_log_db: PathBuf,
    pub key_hash_secret: [u8; 32],
    /// The instance's Ed25519 public key (hex), named in record proofs.
    pub public_key: String,
    /// Audit search; `None` when the audit trail or its index is off.
    pub audit_search: Option<Arc<crate::audit::search::service::SearchHandle>>,
    /// Opens the data keys that seal audit payloads (policy dry runs read prompts).
    pub seal_key: [u8; 32],
    /// Erases personal values from audit payloads; `None` when the audit trail is off.
    pub eraser: Option<Arc<crate::audit::erasure::Eraser>>,
}

/// Serves one `/admin/` request from `client_addr` (the listener's `ip:port`), its body
/// due within the body timeout.
pub async fn handle(
    state: Arc<AppState>,
    client_addr: Arc<str>,
    mut req: Request<Incoming>,
) -> Response<GatewayBody> {
    static ROUTER: OnceLock<axum::Router> = OnceLock::new();
    let router = ROUTER.get_or_init(routes::router).clone();
    let expired = Arc::new(AtomicBool::new(false));
    let timeout = state.body_timeout;
    req.extensions_mut().insert(state);
    req.extensions_mut()
        .insert(crate::server::auth_failures::ClientAddr(client_addr));
    let req = req.map(|body| Body::new(body::DeadlineBody::new(body, timeout, expired.clone())));
    let mut response = match router.oneshot(req).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    if expired.load(Ordering::Acquire) {
        response = error::AdminError::body_timeout().into_response();
    }
    let (parts, body) = response.into_parts();
    // Admin answers are small JSON documents: collected, then sent whole.
    let bytes = match http_body_util::Limited::new(body, 16 * 1024 * 1024)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            tracing::warn!("admin response body failed: {e}");
            bytes::Bytes::new()
        }
    };
    Response::from_parts(parts, GatewayBody::full(bytes))
}
