//! Tenancy admin endpoints: tenants, their teams, users and virtual keys. A tenant-admin
//! sees and changes its own tenant only; another tenant's objects answer 404, so their
//! existence does not leak. Every change is an admin event written with it.

use super::auth::Authorized;
use super::error::AdminError;
use super::policy::with_state;
use crate::tenancy::rbac::Permission;
use crate::tenancy::{Directory, KeyStore, NewKey};
use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query};
use serde::Deserialize;
use serde_json::{Value, json};

impl Authorized {
    /// The id of the tenant named (by name or id), if this admin may act in it: 404 for
    /// one that does not exist or is another tenant's.
    pub(super) async fn tenant_in_scope(&self, named: &str) -> Result<String, AdminError> {
        let named = named.to_string();
        let shown = named.clone();
        let found = with_state(self, move |conn| {
            Directory::new(conn).find_tenant_named(&named)
        })
        .await?;
        found
            .filter(|id| self.admin.tenant_id.as_ref().is_none_or(|own| own == id))
            .ok_or_else(|| AdminError::not_found(format!("no tenant `{shown}`")))
    }

    /// The tenant a listing is limited to: the one asked for, or a tenant-admin's own.
    pub(super) async fn listing_scope(
        &self,
        asked: Option<&str>,
    ) -> Result<Option<String>, AdminError> {
        match asked {
            Some(named) => self.tenant_in_scope(named).await.map(Some),
            None => Ok(self.admin.tenant_id.clone()),
        }
    }

    /// Records that this admin read an inventory (of one tenant, or all it may see): who
    /// looked at keys, people, credentials or quotas is itself audited.
    pub(super) async fn record_read(
        &self,
        action: &str,
        tenant: Option<&str>,
    ) -> Result<(), AdminError> {
        self.record(action, tenant.unwrap_or("*").to_string(), None)
            .await
    }

    /// Applies a change this process just made to the gateway's snapshots at once.
    pub(super) fn changed(&self) -> Result<(), AdminError> {
        self.state
            .state_mirror
            .refresh_now()
            .map_err(AdminError::internal)
    }
}

fn bad_path(e: PathRejection) -> AdminError {
    AdminError::invalid(e.body_text())
}

fn bad_body(e: JsonRejection) -> AdminError {
    AdminError::invalid(e.body_text())
}

#[derive(Debug, Deserialize)]
pub struct TenantFilter {
    tenant: Option<String>,
}

/// `GET /admin/tenants`.
pub async fn list_tenants(auth: Authorized) -> Result<Json<Value>, AdminError> {
    auth.require(Permission::TenancyRead).await?;
    let own = auth.admin.tenant_id.clone();
    auth.record_read("tenants.list", own.as_deref()).await?;
    let tenants = with_state(&auth, move |conn| {
        Directory::new(conn).tenants(own.as_deref())
    })
    .await?;
    Ok(Json(json!({ "tenants": tenants })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    name: String,
}

/// `POST /admin/tenants` with `{"name"}`: a super-admin's only.
pub async fn create_tenant(
    auth: Authorized,
    body: Result<Json<NewTenant>, JsonRejection>,
) -> Result<Json<Value>, AdminError> {
    auth.require(Permission::TenancyWrite).await?;
    if auth.admin.tenant_id.is_some() {
        return Err(AdminError::forbidden(
            "a tenant admin cannot create tenants".into(),
        ));
    }
    let Json(new) = body.map_err(bad_body)?;
    let actor = auth.admin.actor();
    let id = with_state(&auth, move |conn| {
        Directory::new(conn).ensure_tenant(&new.name, &actor)
    })
    .await?;
    Ok(Json(json!({ "id": id })))
}

/// `GET /admin/tenants/{tenant}/teams`.
pub async fn list_teams(
    auth: Authorized,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, AdminError> {
    auth.require(Permission::TenancyRead).await?;
    let Path(tenant) = path.map_err(bad_path)?;
    let tenant = auth.tenant_in_scope(&tenant).await?;
    auth.record_read("teams.list", Some(&tenant)).await?;
    let teams = with_state(&auth, move |conn| Directory::new(conn).teams(Some(&tenant))).await?;
    Ok(Json(json!({ "teams": teams })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTeam {
    name: String,
}

/// `POST /admin/tenants/{tenant}/teams` with `{"name"}`.
pub async fn create_team(
    auth: Authorized,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<NewTeam>, JsonRejection>,
) -> Result<Json<Value>, AdminError> {
    auth.require(Permission::TenancyWrite).await?;
    let Path(tenant) = path.map_err(bad_path)?;
    let Json(new) = body.map_err(bad_body)?;
    let tenant = auth.tenant_in_scope(&tenant).await?;
    let actor = auth.admin.actor();
    let team = with_state(&auth, move |conn| {
        Directory::new(conn).create_team(&tenant, &new.name, &actor)
    })
    .await?;
    Ok(Json(
        serde_json::to_value(team).map_err(AdminError::internal)?,
    ))
}

/// `GET /admin/tenants/{tenant}/users`.
pub async fn list_users(
    auth: Authorized,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, AdminError> {
    auth.require(Permission::TenancyRead).await?;
    let Path(tenant) = path.map_err(bad_path)?;
    let tenant = auth.tenant_in_scope(&tenant).await?;
    auth.record_read("users.list", Some(&tenant)).await?;
    let users = with_state(&auth, move |conn| Directory::new(conn).users(Some(&tenant))).await?;
    Ok(Json(json!({ "users": users })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// The person's directory id (e-mail, employee number).
    name: String,
    team: Option<String>,
}

/// `POST /admin/tenants/{tenant}/users` with `{"name", "team"?}`.
pub async fn create_user(
    auth: Authorized,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<NewUser>, JsonRejection>,
) -> Result<Json<Value>, AdminError> {
    auth.require(Permission::TenancyWrite).await?;
    let Path(tenant) = path.map_err(bad_path)?;
    let Json(new) = body.map_err(bad_body)?;
    let tenant = auth.tenant_in_scope(&tenant).await?;
    let actor = auth.admin.actor();
    let user = with_state(&auth, move |conn| {
        Directory::new(conn).create_user(&tenant, &new.name, new.team.as_deref(), &actor)
    })
    .await?;
    Ok(Json(
        serde_json::to_value(user).map_err(AdminError::internal)?,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserTeam {
    /// The team to move to; null: out of any team.
    team: Option<String>,
}

/// `PUT /admin/tenants/{tenant}/users/{user}/team` with `{"team": NAME|null}`.
pub async fn move_user(
    auth: Authorized,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Json<UserTeam>, JsonRejection>,
) -> Result<Json<Value>, AdminError> {
    auth.require(Permission::TenancyWrite).await?;
    let Path((tenant, user)) = path.map_err(bad_path)?;
    let Json(change) = body.map_err(bad_body)?;
    let tenant = auth.tenant_in_scope(&tenant).await?;
    let actor = auth.admin.actor();
    let user = with_state(&auth, move |conn| {
        Directory::new(conn).set_team(&tenant, &user, change.team.as_deref(), &actor)
    })
    .await?;
    auth.changed()?;
    Ok(Json(
        serde_json::to_value(user).map_err(AdminError::internal)?,
    ))
}

/// `GET /admin/keys?tenant=`: keys (never their secrets).
pub async fn list_keys(
    auth: Authorized,
    query: Result<Query<TenantFilter>, QueryRejection>,
) -> Result<Json<Value>, AdminError> {
    auth.require(Permission::TenancyRead).await?;
    let Query(filter) = query.map_err(|e| AdminError::invalid(e.body_text()))?;
    let scope = auth.listing_scope(filter.tenant.as_deref()).await?;
    auth.record_read("keys.list", scope.as_deref()).await?;
    let secret = key_hash_secret(&auth)?;
    let keys = with_state(&auth, move |conn| {
        let keys = KeyStore::new(conn, &secret).list(None)?;
        Ok(keys
            .into_iter()
            .filter(|k| scope.as_ref().is_none_or(|t| *t == k.tenant_id))
            .collect::<Vec<_>>())
    })
    .await?;
    Ok(Json(json!({ "keys": keys })))
}

pub(super) fn key_hash_secret(auth: &Authorized) -> Result<[u8; 32], AdminError> {
    auth.state
        .admin
        .as_ref()
        .map(|a| a.key_hash_secret)
        .ok_or_else(|| AdminError::internal("admin API off"))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKeyRequest {
    tenant: String,
    #[serde(default)]
    name: String,
    team: Option<String>,
    user: Option<String>,
    models: Option<Vec<String>>,
    /// Lifetime in seconds; no expiry when absent.
    expires_in_secs: Option<u64>,
}

/// `POST /admin/keys`: the secret is in this answer and never again.
pub async fn create_key(
    auth: Authorized,
    body: Result<Json<NewKeyRequest>, JsonRejection>,
) -> Result<Json<Value>, AdminError> {
    auth.require(Permission::TenancyWrite).await?;
    let Json(new) = body.map_err(bad_body)?;
    // A key is created in an existing tenant here (the CLI may create the tenant).
    let tenant_id = auth.tenant_in_scope(&new.tenant).await?;
    let secret = key_hash_secret(&auth)?;
    let actor = auth.admin.actor();
    let expires_at = new
        .expires_in_secs
        .map(|s| crate::store::now_unix().saturating_add(i64::try_from(s).unwrap_or(i64::MAX)));
    let created = with_state(&auth, move |conn| {
        let tenant = Directory::new(conn)
            .tenants(Some(&tenant_id))?
            .pop()
            .ok_or_else(|| crate::store::StoreError::Invalid("the tenant is gone".into()))?;
        KeyStore::new(conn, &secret).create(
            &NewKey {
                tenant: tenant.name,
                name: new.name,
                models: new.models,
                expires_at,
                team: new.team,
                user: new.user,
            },
            &actor,
        )
    })
    .await?;
    auth.changed()?;
    let mut value = serde_json::to_value(&created.info).map_err(AdminError::internal)?;
    value["key"] = created.secret.into();
    Ok(Json(value))
}

/// `POST /admin/keys/{id}/revoke`: refused from the very next request.
pub async fn revoke_key(
    auth: Authorized,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, AdminError> {
    auth.require(Permission::TenancyWrite).await?;
    let Path(id) = path.map_err(bad_path)?;
    let secret = key_hash_secret(&auth)?;
    let actor = auth.admin.actor();
    let own = auth.admin.tenant_id.clone();
    let shown = id.clone();
    let revoked = with_state(&auth, move |conn| {
        let store = KeyStore::new(conn, &secret);
        let tenant = store.tenant_of(&id)?;
        if tenant.is_none() || own.is_some() && tenant != own {
            return Ok(false);
        }
        store.revoke(&id, &actor)?;
        Ok(true)
    })
    .await?;
    if !revoked {
        return Err(AdminError::not_found(format!("no key `{shown}`")));
    }
    auth.changed()?;
    Ok(Json(json!({ "revoked": shown })))
}
