//! Admin routes over the audit trail: search, a session's timeline, one record's
//! inclusion proof, and erasure of a personal value from the stored payloads — scoped to
//! the caller's tenant (a tenant-admin sees and erases only its own tenant's records).

use super::auth::Authorized;
use super::error::AdminError;
use crate::audit::erasure::ErasureError;
use crate::audit::log::{open_audit_db, session_records};
use crate::audit::proof::{ExportError, export};
use crate::audit::record::AuditRecord;
use crate::audit::search::query::{SearchError, SearchParams};
use crate::tenancy::rbac::Permission;
use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query};
use http::StatusCode;
use serde_json::Value;

/// Results per page unless the caller asks otherwise, and the most it may ask for.
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 1000;

/// `GET /admin/audit/search`: matching records, newest first unless sorted otherwise,
/// one page at a time; a tenant-admin searches only its own tenant.
pub async fn search(
    auth: Authorized,
    params: Result<Query<SearchParams>, QueryRejection>,
) -> Result<Json<Value>, AdminError> {
    auth.require(Permission::AuditRead).await?;
    let Query(mut params) = params.map_err(|e| AdminError::invalid(e.body_text()))?;
    let tenant = match (auth.admin.tenant_id.as_deref(), params.tenant.take()) {
        (Some(own), Some(asked)) if asked != own => {
            return Err(AdminError::forbidden(format!(
                "this token may search only tenant `{own}`"
            )));
        }
        (Some(own), _) => Some(own.to_string()),
        (None, asked) => asked,
    };
    if params.limit.is_some_and(|limit| limit > MAX_LIMIT) {
        return Err(AdminError::invalid(format!(
            "limit may be at most {MAX_LIMIT}"
        )));
    }
    let request = params
        .into_request(tenant, crate::store::now_unix_ms(), DEFAULT_LIMIT)
        .map_err(AdminError::invalid)?;
    let handle = auth
        .state
        .admin
        .as_ref()
        .and_then(|access| access.audit_search.clone())
        .ok_or_else(|| {
            AdminError::not_found("audit search is off (audit.search.enabled)".into())
        })?;
    let (offset, wanted) = (request.offset, request.limit);
    let (found, request) =
        tokio::task::spawn_blocking(move || handle.run(&request).map(|found| (found, request)))
            .await
            .map_err(AdminError::internal)?
            .map_err(|e| match e {
                SearchError::BadRequest(message) => AdminError::invalid(message),
                SearchError::Store(e) => AdminError::internal(e),
            })?;
    // Reading the audit trail is itself audited.
    auth.record(
        "audit.search",
        "audit-log".into(),
        Some(request.describe(found.total)),
    )
    .await?;
    let next = offset + found.records.len();
    Ok(Json(serde_json::json!({
        "total": found.total,
        "offset": offset,
        "limit": wanted,
        "next_offset": (found.records.len() == wanted && (next as u64) < found.total).then_some(next),
        "records": found.records,
    })))
}

/// `GET /admin/sessions/{id}`: the session's records in order, payloads left out.
pub async fn session(
    auth: Authorized,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, AdminError> {
    auth.require(Permission::AuditRead).await?;
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
    auth.record("audit.session", id.clone(), None).await?;
    if events.is_empty() {
        return Err(AdminError::not_found(format!("no session `{id}`")));
    }
    Ok(Json(serde_json::json!({"session": id, "events": events})))
}

/// `GET /admin/audit/records/{seq}/proof`: the record with its Merkle inclusion proof
/// and the signed checkpoint covering it — what `airlock audit verify-record` checks
/// anywhere. 404 for a record outside the caller's tenant, 409 before a checkpoint
/// covers it.
pub async fn record_proof(
    auth: Authorized,
    path: Result<Path<u64>, PathRejection>,
) -> Result<Json<Value>, AdminError> {
    auth.require(Permission::AuditRead).await?;
    let Path(seq) = path.map_err(|e| AdminError::invalid(e.body_text()))?;
    let access = auth
        .state
        .admin
        .as_ref()
        .ok_or_else(|| AdminError::internal("admin API off"))?;
    let (audit_db, public_key) = (access.audit_db.clone(), access.public_key.clone());
    let exported = tokio::task::spawn_blocking(move || {
        let audit = open_audit_db(&audit_db)?;
        Ok::<_, ExportError>(export(&audit, seq, &public_key))
    })
    .await
    .map_err(AdminError::internal)?
    .map_err(AdminError::internal)?;
    let proof = match exported {
        Ok(proof) => proof,
        Err(ExportError::NoRecord { .. }) => {
            return Err(AdminError::not_found(format!("no record {seq}")));
        }
        Err(e @ ExportError::NotCheckpointed { .. }) => {
            return Err(AdminError::new(
                StatusCode::CONFLICT,
                "not_checkpointed",
                e.to_string(),
            ));
        }
        Err(e) => return Err(AdminError::internal(e)),
    };
    let tenant = serde_json::from_str::<AuditRecord>(&proof.body)
        .map_err(AdminError::internal)?
        .tenant_id;
    if let Some(own) = auth.admin.tenant_id.as_deref()
        && tenant.as_deref() != Some(own)
    {
        return Err(AdminError::not_found(format!("no record {seq}")));
    }
    auth.record("audit.export_record", seq.to_string(), None)
        .await?;
    Ok(Json(
        serde_json::to_value(&proof).map_err(AdminError::internal)?,
    ))
}

/// `POST /admin/audit/erase`: the value to erase travels in the body, never in a URL
/// (which proxies and access logs keep).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EraseValue {
    /// A name, an email, a card number, … as it appears in payloads.
    value: String,
    /// Only this tenant's records (name or id); a tenant admin's own tenant always.
    #[serde(default)]
    tenant: Option<String>,
    /// Say which records hold the value; erase nothing.
    #[serde(default)]
    dry_run: bool,
}

/// `POST /admin/audit/erase` with `{"value": …, "tenant"?: …, "dry_run"?: bool}`: deletes
/// the stored payloads holding the value (GDPR Art. 17, for whoever it names) and records
/// the erasure under a keyed hash of the value; answers which records lost their payloads.
/// Super-admins erase in every tenant unless they name one; tenant admins in their own.
pub async fn erase_value(
    auth: Authorized,
    body: Result<Json<EraseValue>, JsonRejection>,
) -> Result<Json<Value>, AdminError> {
    auth.require(Permission::PiiErase).await?;
    let Json(request) = body.map_err(|e| AdminError::invalid(e.body_text()))?;
    let asked = match request.tenant {
        Some(named) => Some(super::pii::tenant_id(&auth, named).await?),
        None => None,
    };
    let tenant = match (auth.admin.tenant_id.clone(), asked) {
        (Some(own), Some(asked)) if asked != own => {
            return Err(AdminError::forbidden(
                "a tenant admin erases its own tenant's records only".into(),
            ));
        }
        (Some(own), _) => Some(own),
        (None, asked) => asked,
    };
    let eraser = auth
        .state
        .admin
        .as_ref()
        .and_then(|access| access.eraser.clone())
        .ok_or_else(|| AdminError::not_found("the audit trail is off (audit.enabled)".into()))?;
    let (actor, scope, dry_run) = (auth.admin.actor(), tenant.clone(), request.dry_run);
    let erasure = tokio::task::spawn_blocking(move || {
        eraser.erase_value(&request.value, scope.as_deref(), &actor, dry_run)
    })
    .await
    .map_err(AdminError::internal)?
    .map_err(|e| match e {
        ErasureError::Value(e) => AdminError::invalid(e.to_string()),
        ErasureError::Store(e) => AdminError::internal(e),
    })?;
    let action = if dry_run {
        "audit.erase_dry_run"
    } else {
        "audit.erase"
    };
    let detail = format!(
        "{} records; tenant: {}",
        erasure.records.len(),
        tenant.as_deref().unwrap_or("all")
    );
    auth.record(action, erasure.target.clone(), Some(detail))
        .await?;
    tracing::info!(admin = %auth.admin.actor(), records = erasure.records.len(), dry_run, "audit payloads erased by value");
    Ok(Json(serde_json::json!({
        "seq": erasure.seq,
        "target": erasure.target,
        "tenant": tenant,
        "records": erasure.records,
        "examined": erasure.examined,
        "dry_run": dry_run,
    })))
}
