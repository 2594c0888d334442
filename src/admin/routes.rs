//! The admin router, and its route-table endpoints: live state (targets, health,
//! breakers, load, attempts), and holding a target's breaker open or closing it.

use super::auth::Authorized;
use super::error::AdminError;
use crate::routing::Route;
use crate::tenancy::rbac::Permission;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Path};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;

/// Largest admin request body.
const MAX_BODY_BYTES: usize = 64 * 1024;

pub fn router() -> Router {
    Router::new()
        .route("/admin/login", post(super::login::login))
        .route("/admin/logout", post(super::login::logout))
        .route("/admin/routes", get(list_routes))
        .route("/admin/routes/{model}", get(get_route))
        .route(
            "/admin/routes/{model}/targets/{index}/breaker",
            post(set_breaker),
        )
        .route("/admin/sessions/{id}", get(super::audit::session))
        .route("/admin/audit/search", get(super::audit::search))
        .route("/admin/audit/erase", post(super::audit::erase_value))
        .route(
            "/admin/pii/vault/{tenant}",
            axum::routing::delete(super::pii::erase_tenant),
        )
        .route(
            "/admin/pii/vault/{tenant}/{session}",
            axum::routing::delete(super::pii::erase_session),
        )
        .route(
            "/admin/credentials",
            get(super::credentials::list).post(super::credentials::create),
        )
        .route(
            "/admin/credentials/{id}/rotate",
            post(super::credentials::rotate),
        )
        .route(
            "/admin/credentials/{id}/revoke",
            post(super::credentials::revoke),
        )
        .route(
            "/admin/audit/records/{seq}/proof",
            get(super::audit::record_proof),
        )
        .merge(tenancy_router())
        .fallback(|| async { AdminError::not_found("no such admin endpoint".into()) })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .merge(policy_router())
}

/// Tenants, teams, users, keys, prices, budgets and chargeback.
fn tenancy_router() -> Router {
    use super::{metering, tenancy};
    use axum::routing::{delete, put};
    Router::new()
        .route(
            "/admin/tenants",
            get(tenancy::list_tenants).post(tenancy::create_tenant),
        )
        .route(
            "/admin/tenants/{tenant}/teams",
            get(tenancy::list_teams).post(tenancy::create_team),
        )
        .route(
            "/admin/tenants/{tenant}/users",
            get(tenancy::list_users).post(tenancy::create_user),
        )
        .route(
            "/admin/tenants/{tenant}/users/{user}/team",
            put(tenancy::move_user),
        )
        .route(
            "/admin/keys",
            get(tenancy::list_keys).post(tenancy::create_key),
        )
        .route("/admin/keys/{id}/revoke", post(tenancy::revoke_key))
        .route("/admin/pricing", get(metering::list_prices))
        .route(
            "/admin/pricing/{model}",
            put(metering::set_price).delete(metering::remove_price),
        )
        .route(
            "/admin/budgets",
            get(metering::list_budgets).put(metering::put_budget),
        )
        .route("/admin/budgets/{id}", delete(metering::delete_budget))
        .route(
            "/admin/rate-limits",
            get(metering::list_rate_limits).put(metering::put_rate_limit),
        )
        .route(
            "/admin/rate-limits/{id}",
            delete(metering::delete_rate_limit),
        )
        .route(
            "/admin/reports/chargeback",
            get(metering::chargeback_report),
        )
}

/// Policy routes: their bodies carry whole policy files, up to the policy size limit.
fn policy_router() -> Router {
    use super::policy;
    Router::new()
        .route("/admin/policies", get(policy::list).post(policy::apply))
        .route("/admin/policies/lint", post(policy::lint_source))
        .route("/admin/policies/test", post(policy::test))
        .route("/admin/policies/dry-run", post(policy::dry_run_source))
        .route("/admin/policies/diff", get(policy::diff_versions))
        .route("/admin/policies/rollback", post(policy::rollback))
        .route(
            "/admin/policies/shadow",
            axum::routing::put(policy::set_shadow).delete(policy::clear_shadow),
        )
        .route("/admin/policies/{version}", get(policy::get))
        .layer(DefaultBodyLimit::max(
            crate::policy::compile::MAX_FILE_BYTES * 2 + 64 * 1024,
        ))
}

/// `GET /admin/routes`: every route with its targets' state.
async fn list_routes(auth: Authorized) -> Result<Json<Value>, AdminError> {
    auth.require(Permission::RoutesRead).await?;
    let routes = &auth.state.routes;
    let list: Vec<Value> = routes
        .names()
        .iter()
        .filter_map(|name| routes.get(name))
        .map(|route| route.snapshot())
        .collect();
    Ok(Json(serde_json::json!({"routes": list})))
}

/// The route of `model`, or 404.
fn route_of<'a>(auth: &'a Authorized, model: &str) -> Result<&'a Arc<Route>, AdminError> {
    auth.state
        .routes
        .get(model)
        .ok_or_else(|| AdminError::not_found(format!("no model `{model}`")))
}

/// `GET /admin/routes/{model}`.
async fn get_route(
    auth: Authorized,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, AdminError> {
    auth.require(Permission::RoutesRead).await?;
    let Path(model) = path.map_err(|e| AdminError::invalid(e.body_text()))?;
    let route = route_of(&auth, &model)?;
    Ok(Json(route.snapshot()))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
enum BreakerAction {
    /// Hold it open: the target takes no traffic until closed (drain it).
    Open,
    /// Close it now, forgetting past failures and any hold.
    Close,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BreakerRequest {
    action: BreakerAction,
}

/// `POST /admin/routes/{model}/targets/{index}/breaker` with `{"action": "open"|"close"}`.
async fn set_breaker(
    auth: Authorized,
    path: Result<Path<(String, usize)>, PathRejection>,
    body: Result<Json<BreakerRequest>, JsonRejection>,
) -> Result<Json<Value>, AdminError> {
    auth.require(Permission::RoutesOperate).await?;
    let Path((model, index)) = path.map_err(|e| AdminError::invalid(e.body_text()))?;
    let Json(request) = body.map_err(|e| AdminError::invalid(e.body_text()))?;
    let route = route_of(&auth, &model)?;
    let target = route
        .targets
        .get(index)
        .ok_or_else(|| AdminError::not_found(format!("model `{model}` has no target {index}")))?;
    let action = match request.action {
        BreakerAction::Open => {
            target.breaker.force_open();
            "breaker.hold_open"
        }
        BreakerAction::Close => {
            target.breaker.close();
            "breaker.close"
        }
    };
    let object = format!("{model}#{index} ({})", target.upstream.name);
    tracing::info!(admin = %auth.admin.actor(), action, target = %object, "admin action");
    auth.record(action, object, None).await?;
    Ok(Json(target.snapshot(index)))
}
