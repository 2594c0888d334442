//! What the budget and rate-limit stores share: finding the row of a tenant's scope and
//! subject (to replace it) and deleting a tenant's row with its admin event.

use super::budget::Scope;
use crate::store::StoreError;
use crate::tenancy::admin_event;
use rusqlite::{Connection, OptionalExtension, params};

/// The id of `table`'s row for a tenant's scope, subject and window (`''` when the table
/// has none), or a new id starting with `prefix`.
pub(super) fn id_for(
    conn: &Connection,
    table: &'static str,
    prefix: &str,
    (tenant_id, scope, scope_id): (&str, Scope, &str),
    window: Option<&str>,
) -> Result<String, StoreError> {
    let window_clause = if window.is_some() {
        "AND window = ?4"
    } else {
        "AND ?4 IS NULL"
    };
    let sql = format!(
        "SELECT id FROM {table} WHERE tenant_id = ?1 AND scope = ?2 AND scope_id = ?3 {window_clause}"
    );
    let existing: Option<String> = conn
        .query_row(
            &sql,
            params![tenant_id, scope.name(), scope_id, window],
            |r| r.get(0),
        )
        .optional()?;
    match existing {
        Some(id) => Ok(id),
        None => Ok(format!("{prefix}{}", crate::tenancy::random_hex(8)?)),
    }
}

/// Deletes `table`'s row `id` if it is `tenant_id`'s (any tenant's with `None`), recording
/// `action`; false when there is no such row. Call inside a transaction.
pub(super) fn delete(
    conn: &Connection,
    table: &'static str,
    action: &str,
    id: &str,
    tenant_id: Option<&str>,
    actor: &str,
) -> Result<bool, StoreError> {
    let sql = format!(
        "DELETE FROM {table} WHERE id = ?1 AND (?2 IS NULL OR tenant_id = ?2) RETURNING tenant_id"
    );
    let tenant: Option<String> = conn
        .query_row(&sql, params![id, tenant_id], |r| r.get(0))
        .optional()?;
    if let Some(tenant) = &tenant {
        admin_event(conn, actor, action, id, Some(tenant), None)?;
    }
    Ok(tenant.is_some())
}
