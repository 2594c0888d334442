//! Admin routes over the audit trail: a session's timeline, scoped to the caller's
//! tenant (a tenant-admin sees only its own tenant's records).

use super::auth::Authorized;
use super::error::AdminError;
use crate::audit::log::{open_audit_db, session_records};
use crate::tenancy::rbac::Permission;
use axum::Json;
use axum::extract::Path;
use axum::extract::rejection::PathRejection;
use serde_json::Value;

/// `GET /admin/sessions/{id}`: the session's records in order, payloads left out.
pub async fn session(
    auth: Authorized,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, AdminError> {
    auth.require(Permission::AuditRead)?;
    let Path(id) = path.map_err(|e| AdminError::invalid(e.body_text()))?;
    let access = auth
        .state
        .admin
        .as_ref()
        .ok_or_else(|| AdminError::internal("admin API off"))?;
    let audit_db = access.audit_db.clone();
    let wanted = id.clone();
    let records = tokio::task::spawn_blocking(move || {
        let audit = open_audit_db(&audit_db)?;
        session_records(&audit, &wanted)
    })
    .await
    .map_err(AdminError::internal)?
    .map_err(AdminError::internal)?;
    let scope = auth.admin.tenant_id.as_deref();
    let events: Vec<Value> = records
        .into_iter()
        .filter(|r| scope.is_none_or(|tenant| r.tenant_id.as_deref() == Some(tenant)))
        .map(|r| serde_json::to_value(&r).unwrap_or_default())
        .collect();
    if events.is_empty() {
        return Err(AdminError::not_found(format!("no session `{id}`")));
    }
    Ok(Json(serde_json::json!({"session": id, "events": events})))
}
