//! Metering admin endpoints: model prices, budgets with their spending, rate limits, and
//! chargeback reports. Budgets, limits and reports are a tenant-admin's own tenant's;
//! prices are global.

use super::auth::Authorized;
use super::error::AdminError;
use super::policy::with_state;
use crate::metering::budget::{BudgetDef, BudgetStore, Scope};
use crate::metering::calendar::{Window, parse_bound};
use crate::metering::chargeback::{ChargebackQuery, GroupBy, chargeback};
use crate::metering::pricing::NANOS_PER_USD;
use crate::metering::rate_limits::{RateLimitDef, RateLimitStore};
use crate::metering::{Price, PricingStore};
use crate::store::StoreError;
use crate::tenancy::rbac::Permission;
use crate::tenancy::{Directory, KeyStore};
use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Largest budget limit accepted, in dollars (a typo guard).
const MAX_LIMIT_USD: f64 = 1e9;

/// `GET /admin/pricing`: every price in force and where it came from.
pub async fn list_prices(auth: Authorized) -> Result<Json<Value>, AdminError> {
    auth.require(Permission::PricingRead).await?;
    let book = auth.state.pricing.book();
    let prices: Vec<Value> = book
        .entries()
        .into_iter()
        .map(|(model, (price, source))| {
            json!({"model": model, "source": source,
                   "input_usd_per_million": price.input as f64 / 1e6,
                   "output_usd_per_million": price.output as f64 / 1e6,
                   "cached_input_usd_per_million": price.cached_input as f64 / 1e6})
        })
        .collect();
    Ok(Json(json!({ "prices": prices })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceRequest {
    /// USD per million prompt tokens.
    input: f64,
    /// USD per million completion tokens.
    output: f64,
    /// USD per million cached prompt tokens; `input` when absent.
    cached_input: Option<f64>,
}

/// `PUT /admin/pricing/{model}`: a price over the built-in and configured ones.
pub async fn set_price(
    auth: Authorized,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<PriceRequest>, JsonRejection>,
) -> Result<Json<Value>, AdminError> {
    auth.require(Permission::PricingWrite).await?;
    let Path(model) = path.map_err(|e| AdminError::invalid(e.body_text()))?;
    let Json(asked) = body.map_err(|e| AdminError::invalid(e.body_text()))?;
    let price = Price::from_usd_per_million(asked.input, asked.output, asked.cached_input)
        .map_err(AdminError::invalid)?;
    let actor = auth.admin.actor();
    let shown = model.clone();
    with_state(&auth, move |conn| {
        PricingStore::new(conn).set(&model, price, &actor)
    })
    .await?;
    auth.changed()?;
    Ok(Json(json!({"model": shown, "price": price})))
}

/// `DELETE /admin/pricing/{model}`: the configured or built-in price applies again.
pub async fn remove_price(
    auth: Authorized,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, AdminError> {
    auth.require(Permission::PricingWrite).await?;
    let Path(model) = path.map_err(|e| AdminError::invalid(e.body_text()))?;
    let actor = auth.admin.actor();
    let shown = model.clone();
    let removed = with_state(&auth, move |conn| {
        PricingStore::new(conn).remove(&model, &actor)
    })
    .await?;
    if !removed {
        return Err(AdminError::not_found(format!(
            "no price set through the API for `{shown}`"
        )));
    }
    auth.changed()?;
    Ok(Json(json!({ "removed": shown })))
}

#[derive(Debug, Deserialize)]
pub struct TenantFilter {
    tenant: Option<String>,
}

/// `GET /admin/budgets?tenant=`: budgets with their spending in the current window.
pub async fn list_budgets(
    auth: Authorized,
    query: Result<Query<TenantFilter>, QueryRejection>,
) -> Result<Json<Value>, AdminError> {
    auth.require(Permission::QuotasRead).await?;
    let Query(filter) = query.map_err(|e| AdminError::invalid(e.body_text()))?;
    let scope = auth.listing_scope(filter.tenant.as_deref()).await?;
    auth.record_read("budgets.list", scope.as_deref()).await?;
    let states = auth
        .state
        .budgets
        .states(scope.as_deref(), crate::store::now_unix_ms());
    let budgets: Vec<Value> = states
        .into_iter()
        .map(|s| {
            let mut v = serde_json::to_value(&s).unwrap_or_default();
            v["limit_usd"] = crate::metering::usd(s.def.limit_nano_usd).into();
            v["spent_usd"] = crate::metering::usd(s.spent_nano_usd).into();
            v["reserved_usd"] = crate::metering::usd(s.reserved_nano_usd).into();
            v
        })
        .collect();
    Ok(Json(json!({ "budgets": budgets })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetRequest {
    tenant: String,
    scope: Scope,
    /// The team's or user's name, or the key's id; absent for a tenant's budget.
    subject: Option<String>,
    window: Window,
    limit_usd: f64,
    soft_limit_pct: Option<u8>,
    downgrade_at_pct: Option<u8>,
    #[serde(default)]
    downgrade: BTreeMap<String, String>,
    webhook_url: Option<String>,
}

/// `PUT /admin/budgets`: creates the budget of a scope, subject and window, or replaces it.
pub async fn put_budget(
    auth: Authorized,
    body: Result<Json<BudgetRequest>, JsonRejection>,
) -> Result<Json<Value>, AdminError> {
    auth.require(Permission::QuotasWrite).await?;
    let Json(asked) = body.map_err(|e| AdminError::invalid(e.body_text()))?;
    if !asked.limit_usd.is_finite() || asked.limit_usd <= 0.0 || asked.limit_usd > MAX_LIMIT_USD {
        return Err(AdminError::invalid(format!(
            "`limit_usd` must be above 0 and at most {MAX_LIMIT_USD}"
        )));
    }
    if let Some(url) = &asked.webhook_url {
        check_webhook_url(&auth, url).await?;
    }
    for model in asked.downgrade.keys().chain(asked.downgrade.values()) {
        if auth.state.routes.get(model).is_none() {
            return Err(AdminError::invalid(format!(
                "`downgrade` names model `{model}`, which this gateway does not serve"
            )));
        }
    }
    let tenant_id = auth.tenant_in_scope(&asked.tenant).await?;
    let secret = super::tenancy::key_hash_secret(&auth)?;
    let actor = auth.admin.actor();
    let def = with_state(&auth, move |conn| {
        let scope_id = subject_id(conn, &secret, &tenant_id, asked.scope, asked.subject)?;
        BudgetStore::new(conn).put(
            &BudgetDef {
                id: String::new(),
                tenant_id,
                scope: asked.scope,
                scope_id,
                window: asked.window,
                limit_nano_usd: (asked.limit_usd * NANOS_PER_USD as f64).round() as i64,
                soft_limit_pct: asked.soft_limit_pct,
                downgrade_at_pct: asked.downgrade_at_pct,
                downgrade: asked.downgrade,
                webhook_url: asked.webhook_url,
            },
            &actor,
        )
    })
    .await?;
    auth.changed()?;
    Ok(Json(
        serde_json::to_value(def).map_err(AdminError::internal)?,
    ))
}

/// Refuses (400 `webhook_url_forbidden`) a webhook URL that is not an http(s) URL or
/// whose host is, or resolves to, an address the instance keeps webhooks from. The
/// answer does not say which address or network: a tenant admin must not be able to map
/// the internal network with it (the operator's log says).
async fn check_webhook_url(auth: &Authorized, url: &str) -> Result<(), AdminError> {
    match auth.state.webhook_destinations.check_url(url).await {
        Ok(()) => Ok(()),
        Err(e) => {
            tracing::info!(actor = %auth.admin.actor(), url, reason = %e, "budget webhook URL refused");
            Err(AdminError::new(
                http::StatusCode::BAD_REQUEST,
                "webhook_url_forbidden",
                "`webhook_url` must be an http:// or https:// URL of a destination this \
                 instance allows webhooks to reach: loopback, private, link-local and other \
                 internal networks are refused unless the instance admin allows them \
                 (`webhooks.allow`), and the name must resolve",
            ))
        }
    }
}

/// The id a budget of `scope` counts by: the tenant's, the team's, the user's name, the
/// key's id, each checked to be the tenant's.
fn subject_id(
    conn: &rusqlite::Connection,
    secret: &[u8; 32],
    tenant_id: &str,
    scope: Scope,
    subject: Option<String>,
) -> Result<String, crate::store::StoreError> {
    let people = Directory::new(conn);
    match (scope, subject) {
        (Scope::Tenant, _) => Ok(tenant_id.to_string()),
        (Scope::Team, Some(team)) => people.team(tenant_id, &team),
        // Records carry a user by name: a registered user's, or one callers give in
        // `x-user-id`.
        (Scope::User, Some(user)) => Ok(user),
        (Scope::Key, Some(key)) => match KeyStore::new(conn, secret).tenant_of(&key)? {
            Some(owner) if owner == tenant_id => Ok(key),
            _ => Err(StoreError::Invalid(format!(
                "no key `{key}` in this tenant"
            ))),
        },
        (_, None) => Err(StoreError::Invalid(format!(
            "a {} budget names its `subject`",
            scope.name()
        ))),
    }
}

/// `DELETE /admin/budgets/{id}`.
pub async fn delete_budget(
    auth: Authorized,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, AdminError> {
    delete_quota(auth, path, "budget", |conn, id, own, actor| {
        BudgetStore::new(conn).delete(id, own, actor)
    })
    .await
}

/// Deletes a budget or rate limit of the admin's tenant (404 for another's).
async fn delete_quota(
    auth: Authorized,
    path: Result<Path<String>, PathRejection>,
    what: &'static str,
    delete: fn(&rusqlite::Connection, &str, Option<&str>, &str) -> Result<bool, StoreError>,
) -> Result<Json<Value>, AdminError> {
    auth.require(Permission::QuotasWrite).await?;
    let Path(id) = path.map_err(|e| AdminError::invalid(e.body_text()))?;
    let (own, actor, shown) = (auth.admin.tenant_id.clone(), auth.admin.actor(), id.clone());
    let deleted = with_state(&auth, move |conn| delete(conn, &id, own.as_deref(), &actor)).await?;
    if !deleted {
        return Err(AdminError::not_found(format!("no {what} `{shown}`")));
    }
    auth.changed()?;
    Ok(Json(json!({ "deleted": shown })))
}

/// `GET /admin/rate-limits?tenant=`.
pub async fn list_rate_limits(
    auth: Authorized,
    query: Result<Query<TenantFilter>, QueryRejection>,
) -> Result<Json<Value>, AdminError> {
    auth.require(Permission::QuotasRead).await?;
    let Query(filter) = query.map_err(|e| AdminError::invalid(e.body_text()))?;
    let scope = auth.listing_scope(filter.tenant.as_deref()).await?;
    auth.record_read("rate_limits.list", scope.as_deref())
        .await?;
    let limits = auth.state.rate_limits.defs(scope.as_deref());
    Ok(Json(json!({ "rate_limits": limits })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitRequest {
    tenant: String,
    scope: Scope,
    /// The team's or user's name, or the key's id; absent for a tenant's limit.
    subject: Option<String>,
    requests_per_minute: Option<u32>,
    tokens_per_minute: Option<u32>,
}

/// `PUT /admin/rate-limits`: sets a scope's subject's limits (replacing earlier ones).
pub async fn put_rate_limit(
    auth: Authorized,
    body: Result<Json<RateLimitRequest>, JsonRejection>,
) -> Result<Json<Value>, AdminError> {
    auth.require(Permission::QuotasWrite).await?;
    let Json(asked) = body.map_err(|e| AdminError::invalid(e.body_text()))?;
    let tenant_id = auth.tenant_in_scope(&asked.tenant).await?;
    let secret = super::tenancy::key_hash_secret(&auth)?;
    let actor = auth.admin.actor();
    let def = with_state(&auth, move |conn| {
        let scope_id = subject_id(conn, &secret, &tenant_id, asked.scope, asked.subject)?;
        RateLimitStore::new(conn).put(
            &RateLimitDef {
                id: String::new(),
                tenant_id,
                scope: asked.scope,
                scope_id,
                requests_per_minute: asked.requests_per_minute,
                tokens_per_minute: asked.tokens_per_minute,
            },
            &actor,
        )
    })
    .await?;
    auth.changed()?;
    Ok(Json(
        serde_json::to_value(def).map_err(AdminError::internal)?,
    ))
}

/// `DELETE /admin/rate-limits/{id}`.
pub async fn delete_rate_limit(
    auth: Authorized,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, AdminError> {
    delete_quota(auth, path, "rate limit", |conn, id, own, actor| {
        RateLimitStore::new(conn).delete(id, own, actor)
    })
    .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChargebackParams {
    from: String,
    to: String,
    #[serde(default = "by_tenant")]
    by: GroupBy,
    tenant: Option<String>,
    #[serde(default)]
    format: ReportFormat,
}

fn by_tenant() -> GroupBy {
    GroupBy::Tenant
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportFormat {
    #[default]
    Json,
    Csv,
}

/// `GET /admin/reports/chargeback?from=&to=&by=&tenant=&format=json|csv`.
pub async fn chargeback_report(
    auth: Authorized,
    query: Result<Query<ChargebackParams>, QueryRejection>,
) -> Result<Response, AdminError> {
    auth.require(Permission::ReportsRead).await?;
    let Query(params) = query.map_err(|e| AdminError::invalid(e.body_text()))?;
    let from_ms = parse_bound(&params.from, false).map_err(AdminError::invalid)?;
    let to_ms = parse_bound(&params.to, true).map_err(AdminError::invalid)?;
    let tenant_id = auth.listing_scope(params.tenant.as_deref()).await?;
    let request_log = auth
        .state
        .admin
        .as_ref()
        .map(|a| a.request_log_db.clone())
        .ok_or_else(|| AdminError::internal("admin API off"))?;
    let query = ChargebackQuery {
        from_ms,
        to_ms,
        by: params.by,
        tenant_id,
    };
    let report = with_state(&auth, move |conn| chargeback(&request_log, conn, &query)).await?;
    auth.record(
        "report.chargeback",
        format!("{}..{}", params.from, params.to),
        None,
    )
    .await?;
    Ok(match params.format {
        ReportFormat::Json => Json(report).into_response(),
        ReportFormat::Csv => (
            [(http::header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            report.to_csv(),
        )
            .into_response(),
    })
}
