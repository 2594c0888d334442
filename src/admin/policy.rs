//! Admin routes over policies, for the UI and automation: versions, lint, tests, dry
//! runs, apply, diff, rollback and shadow — the same operations as `airlock policy`.

use super::auth::Authorized;
use super::error::AdminError;
use crate::policy::versions::{self, ShadowChange};
use crate::policy::{cases, diff, dry_run, lint};
use crate::store::StoreError;
use crate::tenancy::STATE_MIGRATIONS;
use crate::tenancy::rbac::Permission;
use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query};
use serde::Deserialize;
use serde_json::{Value, json};

/// Runs `work` on the state database off the async workers.
pub(super) async fn with_state<T: Send + 'static>(
    auth: &Authorized,
    work: impl FnOnce(&rusqlite::Connection) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, AdminError> {
    super::auth::on_state_db(&auth.state, |conn, _| work(conn))
        .await?
        .map_err(AdminError::store)
}

fn body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, AdminError> {
    body.map(|Json(b)| b)
        .map_err(|e| AdminError::invalid(e.body_text()))
}

/// `GET /admin/policies`: every version, newest first, with the active and shadow ones.
pub async fn list(auth: Authorized) -> Result<Json<Value>, AdminError> {
    auth.require(Permission::PolicyRead).await?;
    let (history, activations) = with_state(&auth, |conn| {
        Ok((versions::history(conn)?, versions::activations(conn)?))
    })
    .await?;
    let label_of = |pick: fn(&versions::Version) -> bool| {
        history
            .iter()
            .find(|v| pick(v))
            .map(versions::Version::label)
    };
    Ok(Json(json!({
        "active": label_of(|v| v.active),
        "shadow": label_of(|v| v.shadow),
        "versions": history,
        "activations": activations,
    })))
}

/// `GET /admin/policies/{version}`: one version with its text.
pub async fn get(
    auth: Authorized,
    path: Result<Path<i64>, PathRejection>,
) -> Result<Json<Value>, AdminError> {
    auth.require(Permission::PolicyRead).await?;
    let Path(version) = path.map_err(|e| AdminError::invalid(e.body_text()))?;
    let found = with_state(&auth, move |conn| {
        match versions::labelled_source(conn, version) {
            Ok(found) => Ok(Some(found)),
            Err(StoreError::Invalid(_)) => Ok(None),
            Err(e) => Err(e),
        }
    })
    .await?;
    let (label, source) =
        found.ok_or_else(|| AdminError::not_found(format!("there is no version {version}")))?;
    Ok(Json(json!({
        "version": version,
        "label": label,
        "source": String::from_utf8_lossy(&source),
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceBody {
    source: String,
}

/// `POST /admin/policies/lint` with `{"source"}`: every problem, with its place.
pub async fn lint_source(
    auth: Authorized,
    request: Result<Json<SourceBody>, JsonRejection>,
) -> Result<Json<Value>, AdminError> {
    auth.require(Permission::PolicyRead).await?;
    let request = body(request)?;
    let problems = lint::lint(request.source.as_bytes());
    Ok(Json(json!({
        "errors": lint::has_errors(&problems),
        "problems": problems,
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestBody {
    source: String,
    /// The test file's text (its `policy:` is ignored).
    cases: String,
}

/// `POST /admin/policies/test` with `{"source", "cases"}`: each case's outcome.
pub async fn test(
    auth: Authorized,
    request: Result<Json<TestBody>, JsonRejection>,
) -> Result<Json<Value>, AdminError> {
    auth.require(Permission::PolicyRead).await?;
    let request = body(request)?;
    let (policy, _) = crate::policy::load(request.source.as_bytes())
        .map_err(|problems| AdminError::invalid(first_problem("the policy", &problems)))?;
    let file = cases::parse(request.cases.as_bytes())
        .map_err(|p| AdminError::invalid(p.render("cases")))?;
    let outcomes = cases::run(&policy, &file);
    let failed = outcomes.iter().filter(|o| !o.passed).count();
    Ok(Json(json!({
        "passed": outcomes.len() - failed,
        "failed": failed,
        "cases": outcomes,
    })))
}

fn first_problem(what: &str, problems: &[crate::policy::Problem]) -> String {
    match problems.first() {
        Some(p) => format!(
            "{what} has {} problem(s); the first: {}",
            problems.len(),
            p.render("policy")
        ),
        None => format!("{what} does not load"),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplyBody {
    source: String,
    message: String,
}

/// `POST /admin/policies` with `{"source", "message"}`: stores and activates a version.
pub async fn apply(
    auth: Authorized,
    request: Result<Json<ApplyBody>, JsonRejection>,
) -> Result<Json<Value>, AdminError> {
    auth.require(Permission::PolicyWrite).await?;
    let request = body(request)?;
    let models = auth.state.routes.names().to_vec();
    if let Some(p) = lint::unknown_models(request.source.as_bytes(), &models).first() {
        return Err(AdminError::invalid(p.render("policy")));
    }
    let actor = auth.admin.actor();
    let applied = with_state(&auth, move |conn| {
        versions::apply(conn, request.source.as_bytes(), &actor, &request.message)
    })
    .await?;
    tracing::info!(admin = %auth.admin.actor(), policy = %applied.label, "policy applied");
    Ok(Json(json!(applied)))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackBody {
    #[serde(default)]
    version: Option<i64>,
}

/// `POST /admin/policies/rollback` with `{"version"}` (default: the one before).
pub async fn rollback(
    auth: Authorized,
    request: Result<Json<RollbackBody>, JsonRejection>,
) -> Result<Json<Value>, AdminError> {
    auth.require(Permission::PolicyWrite).await?;
    let to = body(request)?.version;
    let actor = auth.admin.actor();
    let applied = with_state(&auth, move |conn| versions::rollback(conn, to, &actor)).await?;
    tracing::info!(admin = %auth.admin.actor(), policy = %applied.label, "policy rolled back");
    Ok(Json(json!(applied)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShadowBody {
    #[serde(default)]
    version: Option<i64>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// `PUT /admin/policies/shadow` with `{"version"}` or `{"source", "message"}`.
pub async fn set_shadow(
    auth: Authorized,
    request: Result<Json<ShadowBody>, JsonRejection>,
) -> Result<Json<Value>, AdminError> {
    auth.require(Permission::PolicyWrite).await?;
    let request = body(request)?;
    let actor = auth.admin.actor();
    let label = with_state(&auth, move |conn| {
        let change = match (&request.version, &request.source, &request.message) {
            (Some(v), None, _) => ShadowChange::Version(*v),
            (None, Some(source), Some(message)) => ShadowChange::Source {
                bytes: source.as_bytes(),
                message,
            },
            _ => {
                return Err(StoreError::Invalid(
                    "give either `version`, or `source` and `message`".into(),
                ));
            }
        };
        versions::set_shadow(conn, change, &actor)
    })
    .await?;
    Ok(Json(json!({"shadow": label})))
}

/// `DELETE /admin/policies/shadow`: stops shadowing.
pub async fn clear_shadow(auth: Authorized) -> Result<Json<Value>, AdminError> {
    auth.require(Permission::PolicyWrite).await?;
    let actor = auth.admin.actor();
    with_state(&auth, move |conn| {
        versions::set_shadow(conn, ShadowChange::Off, &actor)
    })
    .await?;
    Ok(Json(json!({"shadow": null})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiffQuery {
    from: i64,
    to: i64,
}

/// `GET /admin/policies/diff?from=V1&to=V2`.
pub async fn diff_versions(
    auth: Authorized,
    query: Result<Query<DiffQuery>, QueryRejection>,
) -> Result<Json<Value>, AdminError> {
    auth.require(Permission::PolicyRead).await?;
    let Query(q) = query.map_err(|e| AdminError::invalid(e.body_text()))?;
    let (old, new) = with_state(&auth, move |conn| {
        Ok((
            versions::labelled_source(conn, q.from)?,
            versions::labelled_source(conn, q.to)?,
        ))
    })
    .await?;
    Ok(Json(json!(diff::diff(&old.0, &old.1, &new.0, &new.1))))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DryRunBody {
    source: String,
    /// `7d`, `24h` or a date/time (default 7 days).
    #[serde(default)]
    since: Option<String>,
    #[serde(default)]
    limit: Option<u64>,
}

/// Most requests one dry run evaluates over the API.
const MAX_DRY_RUN: u64 = 1_000_000;

/// `POST /admin/policies/dry-run` with `{"source", "since", "limit"}`: the decision diff
/// of the candidate against the active version on recorded traffic (every tenant's, so
/// it takes the right to change policies; recorded as an access to the trail).
pub async fn dry_run_source(
    auth: Authorized,
    request: Result<Json<DryRunBody>, JsonRejection>,
) -> Result<Json<Value>, AdminError> {
    auth.require(Permission::PolicyWrite).await?;
    let request = body(request)?;
    let (candidate, _) = crate::policy::load(request.source.as_bytes())
        .map_err(|problems| AdminError::invalid(first_problem("the policy", &problems)))?;
    let since = request.since.unwrap_or_else(|| "7d".into());
    let since_ms = crate::audit::search::query::parse_time(&since, crate::store::now_unix_ms())
        .map_err(|e| AdminError::invalid(format!("since: {e}")))?;
    let limit = request.limit.unwrap_or(100_000).min(MAX_DRY_RUN);
    let access = auth
        .state
        .admin
        .as_ref()
        .ok_or_else(|| AdminError::internal("admin API off"))?;
    let (state_db, audit_db, seal_key) = (
        access.state_db.clone(),
        access.audit_db.clone(),
        access.seal_key,
    );
    let report = tokio::task::spawn_blocking(move || -> Result<_, StoreError> {
        let state = crate::store::open(&state_db, STATE_MIGRATIONS)?;
        let active = match versions::state(&state)?.0 {
            Some(v) => crate::policy::load(&versions::source(&state, v)?)
                .ok()
                .map(|(p, _)| p),
            None => None,
        };
        let audit = crate::audit::log::open_audit_db(&audit_db)?;
        dry_run::dry_run(
            &audit,
            &seal_key,
            &candidate,
            active.as_ref(),
            since_ms,
            limit,
        )
    })
    .await
    .map_err(AdminError::internal)?
    .map_err(AdminError::store)?;
    auth.record(
        "policy.dry_run",
        "audit-log".into(),
        Some(format!("{} requests since {since}", report.requests)),
    )
    .await?;
    Ok(Json(json!(report)))
}
