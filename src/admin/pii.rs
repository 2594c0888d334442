//! Personal-data admin endpoints: erasing tokenised values from the vault, for one
//! session or a whole tenant (memory and disk), each erasure an audited admin action.

use super::auth::Authorized;
use super::error::AdminError;
use crate::tenancy::rbac::Permission;
use axum::Json;
use axum::extract::Path;
use axum::extract::rejection::PathRejection;
use serde_json::{Value, json};

/// The id of the tenant named (by name or id) in the path or body.
pub(super) async fn tenant_id(auth: &Authorized, named: String) -> Result<String, AdminError> {
    let shown = named.clone();
    let found = super::policy::with_state(auth, move |conn| {
        crate::tenancy::Directory::new(conn).find_tenant_named(&named)
    })
    .await?;
    found.ok_or_else(|| AdminError::not_found(format!("no tenant `{shown}`")))
}

/// `DELETE /admin/pii/vault/{tenant}`: every session of the tenant.
pub async fn erase_tenant(
    auth: Authorized,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, AdminError> {
    let Path(tenant) = path.map_err(|e| AdminError::invalid(e.body_text()))?;
    erase(auth, tenant, None).await
}

/// `DELETE /admin/pii/vault/{tenant}/{session}`: one session.
pub async fn erase_session(
    auth: Authorized,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<Value>, AdminError> {
    let Path((tenant, session)) = path.map_err(|e| AdminError::invalid(e.body_text()))?;
    erase(auth, tenant, Some(session)).await
}

async fn erase(
    auth: Authorized,
    tenant: String,
    session: Option<String>,
) -> Result<Json<Value>, AdminError> {
    auth.require(Permission::PiiErase).await?;
    let tenant = tenant_id(&auth, tenant).await?;
    if auth
        .admin
        .tenant_id
        .as_ref()
        .is_some_and(|own| *own != tenant)
    {
        return Err(AdminError::forbidden(
            "a tenant admin erases its own tenant's values only".into(),
        ));
    }
    let engine = auth
        .state
        .pii
        .clone()
        .ok_or_else(|| AdminError::not_found("the personal-data stage is off".into()))?;
    let erased = match &session {
        Some(id) => engine.vault().erase_session(&tenant, id).await,
        None => engine.vault().erase_tenant(&tenant).await,
    }
    .map_err(|e| match e {
        crate::pii::VaultError::BadSessionId => AdminError::invalid("bad session id".into()),
        other => AdminError::internal(other),
    })?;
    let target = match &session {
        Some(id) => format!("{tenant}/{id}"),
        None => tenant.clone(),
    };
    auth.record("pii.vault.erase", target, Some(format!("{erased} values")))
        .await?;
    tracing::info!(admin = %auth.admin.actor(), tenant = %tenant, erased, "tokenised values erased");
    Ok(Json(
        json!({"tenant": tenant, "session": session, "erased": erased}),
    ))
}
