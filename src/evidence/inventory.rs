//! Access inventories for review: tenants with their teams and users, virtual keys and
//! whom they are issued to, admin tokens, admin users, provider credentials, budgets and
//! rate limits as they stand (ids, names, roles, states, dates: never a secret, a
//! password hash, a hash of a secret, its fingerprint or its prefix), and the change
//! history of the window from the `admin_events` table.

use super::EvidenceError;
use rusqlite::{Connection, params};
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub created_at: i64,
}

#[derive(Debug, Serialize)]
pub struct VirtualKey {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    /// Models the key is limited to (JSON list); all when absent.
    pub models: Option<serde_json::Value>,
    /// The team the key is issued to, if any.
    pub team_id: Option<String>,
    /// The user (a person) the key is issued to and acts for, if any.
    pub user_id: Option<String>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct AdminToken {
    pub id: String,
    pub name: String,
    pub role: String,
    pub tenant_id: Option<String>,
    /// The admin user whose login session this token is (none: made by the CLI).
    pub admin_user_id: Option<String>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct AdminUser {
    pub id: String,
    pub name: String,
    pub role: String,
    pub tenant_id: Option<String>,
    pub created_at: i64,
    pub password_changed_at: i64,
    pub last_login_at: Option<i64>,
    pub locked_until: Option<i64>,
    pub disabled_at: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct ProviderCredential {
    pub id: String,
    /// `None`: instance-wide.
    pub tenant_id: Option<String>,
    pub provider: String,
    pub name: String,
    /// As stored: `active`, `grace` (until `grace_until`), `retired` or `revoked`.
    pub state: String,
    pub created_at: i64,
    pub rotated_at: Option<i64>,
    pub grace_until: Option<i64>,
    pub revoked_at: Option<i64>,
    /// The credential it replaced in a rotation.
    pub replaces: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct AdminEvent {
    pub seq: i64,
    pub ts: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: Option<String>,
}

/// An inventory file: when it was taken, what its times mean, and the rows.
#[derive(Debug, Serialize)]
pub struct Listing<T> {
    pub note: &'static str,
    pub rows: Vec<T>,
}

const TIMES: &str = "Times are seconds since the Unix epoch (UTC). Secrets, their hashes \
and their prefixes are never included.";

/// The rows `sql` selects (with `parameters`), each made by `row`.
fn rows<T>(
    state: &Connection,
    sql: &str,
    parameters: impl rusqlite::Params,
    row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>, EvidenceError> {
    Ok(state
        .prepare(sql)?
        .query_map(parameters, row)?
        .collect::<Result<_, _>>()?)
}

pub fn tenants(state: &Connection) -> Result<Listing<Tenant>, EvidenceError> {
    let rows = rows(
        state,
        "SELECT id, name, created_at FROM tenants ORDER BY created_at, id",
        [],
        |r| {
            Ok(Tenant {
                id: r.get(0)?,
                name: r.get(1)?,
                created_at: r.get(2)?,
            })
        },
    )?;
    Ok(Listing { note: TIMES, rows })
}

pub fn virtual_keys(state: &Connection) -> Result<Listing<VirtualKey>, EvidenceError> {
    let rows = rows(
        state,
        "SELECT id, tenant_id, name, models, created_at, expires_at, revoked_at, team_id,
                user_id
         FROM virtual_keys ORDER BY created_at, id",
        [],
        |r| {
            let models: Option<String> = r.get(3)?;
            Ok(VirtualKey {
                id: r.get(0)?,
                tenant_id: r.get(1)?,
                name: r.get(2)?,
                models: models.and_then(|m| serde_json::from_str(&m).ok()),
                team_id: r.get(7)?,
                user_id: r.get(8)?,
                created_at: r.get(4)?,
                expires_at: r.get(5)?,
                revoked_at: r.get(6)?,
            })
        },
    )?;
    Ok(Listing { note: TIMES, rows })
}

/// Every tenant's teams and users (people, by directory id, with their team).
#[derive(Debug, Serialize)]
pub struct Members {
    pub note: &'static str,
    pub teams: Vec<crate::tenancy::TeamInfo>,
    pub users: Vec<crate::tenancy::UserInfo>,
}

pub fn members(state: &Connection) -> Result<Members, EvidenceError> {
    let people = crate::tenancy::Directory::new(state);
    Ok(Members {
        note: TIMES,
        teams: people.teams(None)?,
        users: people.users(None)?,
    })
}

/// Every budget and rate limit in force, per tenant, team, user or key.
#[derive(Debug, Serialize)]
pub struct Quotas {
    pub note: &'static str,
    pub budgets: Vec<crate::metering::budget::BudgetDef>,
    pub rate_limits: Vec<crate::metering::rate_limits::RateLimitDef>,
}

pub fn quotas(state: &Connection) -> Result<Quotas, EvidenceError> {
    Ok(Quotas {
        note: "Budgets (limits in nano-dollars, 10^-9 USD, per UTC day, ISO week or month; \
               webhook URLs without credentials or query) and rate limits (requests and \
               tokens per minute) as they stand; their changes are in \
               access/admin_events.json.",
        budgets: crate::metering::budget::BudgetStore::new(state)
            .list(None)?
            .into_iter()
            .map(|mut budget| {
                // A webhook URL may carry credentials: the host and path are enough here.
                if let Some(url) = &budget.webhook_url
                    && let Some(clean) = super::redact::clean_url(url)
                {
                    budget.webhook_url = Some(clean);
                }
                budget
            })
            .collect(),
        rate_limits: crate::metering::rate_limits::RateLimitStore::new(state).list(None)?,
    })
}

pub fn admin_tokens(state: &Connection) -> Result<Listing<AdminToken>, EvidenceError> {
    let rows = rows(
        state,
        "SELECT id, name, role, tenant_id, admin_user_id, created_at, expires_at, revoked_at
         FROM admin_tokens ORDER BY created_at, id",
        [],
        |r| {
            Ok(AdminToken {
                id: r.get(0)?,
                name: r.get(1)?,
                role: r.get(2)?,
                tenant_id: r.get(3)?,
                admin_user_id: r.get(4)?,
                created_at: r.get(5)?,
                expires_at: r.get(6)?,
                revoked_at: r.get(7)?,
            })
        },
    )?;
    Ok(Listing { note: TIMES, rows })
}

pub fn admin_users(state: &Connection) -> Result<Listing<AdminUser>, EvidenceError> {
    let rows = rows(
        state,
        "SELECT id, name, role, tenant_id, created_at, password_changed_at, last_login_at,
                locked_until, disabled_at
         FROM admin_users ORDER BY created_at, id",
        [],
        |r| {
            Ok(AdminUser {
                id: r.get(0)?,
                name: r.get(1)?,
                role: r.get(2)?,
                tenant_id: r.get(3)?,
                created_at: r.get(4)?,
                password_changed_at: r.get(5)?,
                last_login_at: r.get(6)?,
                locked_until: r.get(7)?,
                disabled_at: r.get(8)?,
            })
        },
    )?;
    Ok(Listing { note: TIMES, rows })
}

pub fn provider_credentials(
    state: &Connection,
) -> Result<Listing<ProviderCredential>, EvidenceError> {
    let rows = rows(
        state,
        "SELECT id, tenant_id, provider, name, state, created_ms / 1000, rotated_ms / 1000,
                grace_until_ms / 1000, revoked_ms / 1000, replaces
         FROM provider_credentials ORDER BY created_ms, id",
        [],
        |r| {
            Ok(ProviderCredential {
                id: r.get(0)?,
                tenant_id: r.get(1)?,
                provider: r.get(2)?,
                name: r.get(3)?,
                state: r.get(4)?,
                created_at: r.get(5)?,
                rotated_at: r.get(6)?,
                grace_until: r.get(7)?,
                revoked_at: r.get(8)?,
                replaces: r.get(9)?,
            })
        },
    )?;
    Ok(Listing { note: TIMES, rows })
}

/// Admin events of the window (`from_ms..=to_ms`; events are stamped in seconds).
pub fn admin_events(
    state: &Connection,
    from_ms: i64,
    to_ms: i64,
) -> Result<Listing<AdminEvent>, EvidenceError> {
    let rows = rows(
        state,
        "SELECT seq, ts, actor, action, target, detail FROM admin_events
         WHERE ts >= ?1 AND ts <= ?2 ORDER BY seq",
        params![from_ms.div_euclid(1000), to_ms.div_euclid(1000)],
        |r| {
            Ok(AdminEvent {
                seq: r.get(0)?,
                ts: r.get(1)?,
                actor: r.get(2)?,
                action: r.get(3)?,
                target: r.get(4)?,
                detail: r.get(5)?,
            })
        },
    )?;
    Ok(Listing {
        note: "Changes to tenants, teams, users, virtual keys, admin tokens, admin users, \
               provider credentials, prices, budgets and rate limits, admin logins and budget \
               alerts, in the window, from the state database's admin_events table. Times are \
               seconds since the Unix epoch.",
        rows,
    })
}
