//! Provider credential endpoints: create, list (by fingerprint), rotate and revoke,
//! tenant-scoped (a tenant-bound admin sees and changes its own tenant's only, and
//! another tenant's credential is "not found", so its existence does not leak). Every
//! change reloads the gateway's credential snapshot before the answer leaves.

use super::auth::Authorized;
use super::error::AdminError;
use super::policy::with_state;
use crate::tenancy::credentials::{
    CredentialInfo, CredentialStore, DEFAULT_GRACE_SECS, NewCredential,
};
use crate::tenancy::rbac::Permission;
use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query};
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    /// The upstream (its name under `upstreams:`).
    provider: String,
    name: String,
    /// The provider's key; stored sealed, never shown again.
    secret: String,
    /// Tenant name or id; omitted: a tenant-bound admin's own tenant, else instance-wide.
    #[serde(default)]
    tenant: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateRequest {
    secret: String,
    /// How long the old key stays usable as a fallback (0: retired at once).
    #[serde(default)]
    grace_secs: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    provider: Option<String>,
}

/// `POST /admin/credentials`.
pub async fn create(
    auth: Authorized,
    body: Result<Json<CreateRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<CredentialInfo>), AdminError> {
    auth.require(Permission::CredentialsWrite).await?;
    let Json(request) = body.map_err(|e| AdminError::invalid(e.body_text()))?;
    if !auth
        .state
        .routes
        .upstreams()
        .iter()
        .any(|u| *u.name == request.provider)
    {
        return Err(AdminError::invalid(format!(
            "unknown provider `{}`: name an upstream of the configuration",
            request.provider
        )));
    }
    // Omitted: a tenant admin's own tenant, a super-admin's instance-wide credential.
    let tenant_id = match request.tenant {
        Some(named) => Some(auth.tenant_in_scope(&named).await?),
        None => auth.admin.tenant_id.clone(),
    };
    let new = NewCredential {
        tenant_id,
        provider: request.provider,
        name: request.name,
    };
    let (actor, secret) = (auth.admin.actor(), request.secret);
    let info = change(&auth, move |store| Ok(store.create(&new, &secret, &actor)?)).await?;
    tracing::info!(admin = %auth.admin.actor(), credential = %info.id, "provider credential created");
    Ok((StatusCode::CREATED, Json(info)))
}

/// `GET /admin/credentials[?tenant=&provider=]`: never a secret.
pub async fn list(
    auth: Authorized,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<Value>, AdminError> {
    auth.require(Permission::CredentialsRead).await?;
    let Query(params) = params.map_err(|e| AdminError::invalid(e.body_text()))?;
    let tenant = auth.listing_scope(params.tenant.as_deref()).await?;
    auth.record_read("credentials.list", tenant.as_deref())
        .await?;
    let seal_key = seal_key(&auth)?;
    let mut listed = with_state(&auth, move |conn| {
        CredentialStore::new(conn, &seal_key).list(tenant.as_deref().map(Some))
    })
    .await?;
    if let Some(provider) = params.provider {
        listed.retain(|c| c.provider == provider);
    }
    Ok(Json(json!({"credentials": listed})))
}

/// `POST /admin/credentials/{id}/rotate` with `{"secret", "grace_secs"?}`: the new
/// credential and the old one (in its grace period).
pub async fn rotate(
    auth: Authorized,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<RotateRequest>, JsonRejection>,
) -> Result<Json<Value>, AdminError> {
    auth.require(Permission::CredentialsWrite).await?;
    let Path(id) = path.map_err(|e| AdminError::invalid(e.body_text()))?;
    let Json(request) = body.map_err(|e| AdminError::invalid(e.body_text()))?;
    let grace = request.grace_secs.unwrap_or(DEFAULT_GRACE_SECS);
    let (actor, scope) = (auth.admin.actor(), auth.admin.tenant_id.clone());
    let (new, old) = change(&auth, move |store| {
        visible(store, &id, scope.as_deref())?;
        Ok(store.rotate(&id, &request.secret, grace, &actor)?)
    })
    .await?;
    tracing::info!(admin = %auth.admin.actor(), credential = %new.id, replaces = %old.id, "provider credential rotated");
    Ok(Json(json!({"credential": new, "previous": old})))
}

/// `POST /admin/credentials/{id}/revoke`: in effect for every attempt that starts after
/// the answer.
pub async fn revoke(
    auth: Authorized,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<CredentialInfo>, AdminError> {
    auth.require(Permission::CredentialsWrite).await?;
    let Path(id) = path.map_err(|e| AdminError::invalid(e.body_text()))?;
    let (actor, scope) = (auth.admin.actor(), auth.admin.tenant_id.clone());
    let info = change(&auth, move |store| {
        visible(store, &id, scope.as_deref())?;
        Ok(store.revoke(&id, &actor)?)
    })
    .await?;
    tracing::info!(admin = %auth.admin.actor(), credential = %info.id, "provider credential revoked");
    Ok(Json(info))
}

/// Why a change could not be made: the store's reason, or a credential this admin
/// cannot see.
enum Refused {
    Store(crate::store::StoreError),
    NotFound(String),
}

impl From<crate::store::StoreError> for Refused {
    fn from(e: crate::store::StoreError) -> Self {
        Self::Store(e)
    }
}

/// Checks that credential `id` exists within the admin's tenant (any, when unbound).
fn visible(store: &CredentialStore<'_>, id: &str, scope: Option<&str>) -> Result<(), Refused> {
    match store.get(id)? {
        Some(c) if scope.is_none_or(|own| c.tenant_id.as_deref() == Some(own)) => Ok(()),
        _ => Err(Refused::NotFound(id.to_string())),
    }
}

/// Makes a change off the async workers, then reloads the gateway's credentials before
/// answering, so the change applies to the next attempt (not only once the change watch
/// sees it).
async fn change<T: Send + 'static>(
    auth: &Authorized,
    work: impl FnOnce(&CredentialStore<'_>) -> Result<T, Refused> + Send + 'static,
) -> Result<T, AdminError> {
    let seal_key = seal_key(auth)?;
    let state = auth.state.clone();
    let done = with_state(auth, move |conn| {
        let outcome = work(&CredentialStore::new(conn, &seal_key));
        // Reloaded even after a refusal: cheap (only what moved), and never stale.
        state.state_mirror.refresh_now()?;
        Ok(outcome)
    })
    .await?;
    done.map_err(|refused| match refused {
        Refused::NotFound(id) => AdminError::not_found(format!("no credential `{id}`")),
        Refused::Store(crate::store::StoreError::Invalid(message)) => AdminError::invalid(message),
        Refused::Store(other) => AdminError::internal(other),
    })
}

fn seal_key(auth: &Authorized) -> Result<[u8; 32], AdminError> {
    auth.state
        .admin
        .as_ref()
        .map(|a| a.seal_key)
        .ok_or_else(|| AdminError::internal("admin API off"))
}
