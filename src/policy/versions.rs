//! Policy versions in the state database: immutable versions (content hash, author, time,
//! message), the active and shadow versions, activation history, rollback. Every change
//! writes its admin event in the same transaction.

use super::lint;
use crate::store::{StoreError, now_unix_ms};
use crate::tenancy::{admin_event, atomically};
use ring::digest;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

/// One stored version.
#[derive(Debug, Clone, Serialize)]
pub struct Version {
    pub version: i64,
    pub name: String,
    pub sha256: String,
    pub author: String,
    pub message: String,
    pub created_ms: i64,
    /// Currently active / shadowing.
    pub active: bool,
    pub shadow: bool,
}

impl Version {
    /// How decisions and audit records name it: `v3-1a2b3c4d`.
    pub fn label(&self) -> String {
        label(self.version, &self.sha256)
    }
}

/// `v{version}-{first 8 hex of the hash}`.
pub fn label(version: i64, sha256: &str) -> String {
    format!("v{version}-{}", sha256.get(..8).unwrap_or(sha256))
}

/// One activation: which version became active (or shadow, or neither), when, by whom.
#[derive(Debug, Clone, Serialize)]
pub struct Activation {
    pub seq: i64,
    pub version: Option<i64>,
    pub role: String,
    pub actor: String,
    pub ts_ms: i64,
    pub message: Option<String>,
}

/// What [`apply`] and [`rollback`] did.
#[derive(Debug, Clone, Serialize)]
pub struct Applied {
    pub version: i64,
    pub label: String,
    /// The version active before (none: no policy was).
    pub previous: Option<i64>,
}

fn sha256_hex(bytes: &[u8]) -> String {
    digest::digest(&digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The active and shadow version numbers.
pub fn state(conn: &Connection) -> Result<(Option<i64>, Option<i64>), StoreError> {
    Ok(conn
        .query_row(
            "SELECT active, shadow FROM policy_state WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?
        .unwrap_or((None, None)))
}

fn set_state(
    conn: &Connection,
    active: Option<i64>,
    shadow: Option<i64>,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO policy_state (id, active, shadow) VALUES (1, ?1, ?2)
         ON CONFLICT(id) DO UPDATE SET active = excluded.active, shadow = excluded.shadow",
        params![active, shadow],
    )?;
    Ok(())
}

fn record_activation(
    conn: &Connection,
    version: Option<i64>,
    role: &str,
    actor: &str,
    message: Option<&str>,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO policy_activations (version, role, actor, ts_ms, message)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![version, role, actor, now_unix_ms(), message],
    )?;
    Ok(())
}

/// Checks `source` with lint (errors refuse it) and stores it as a new version.
fn store_version(
    conn: &Connection,
    source: &[u8],
    author: &str,
    message: &str,
) -> Result<(i64, String), StoreError> {
    let problems = lint::lint(source);
    if let Some(first) = problems
        .iter()
        .find(|p| p.severity == super::Severity::Error)
    {
        let count = problems
            .iter()
            .filter(|p| p.severity == super::Severity::Error)
            .count();
        return Err(StoreError::Invalid(format!(
            "the policy has {count} error(s); the first: {} (run `airlock policy lint`)",
            first.render("policy")
        )));
    }
    let name = super::compile::parse(source)
        .map(|s| s.policy)
        .map_err(|p| StoreError::Invalid(p.render("policy")))?;
    let sha = sha256_hex(source);
    conn.execute(
        "INSERT INTO policy_versions (name, sha256, source, author, message, created_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![name, sha, source, author, message, now_unix_ms()],
    )?;
    Ok((conn.last_insert_rowid(), sha))
}

/// Stores `source` as a new version and makes it active, in one transaction, with its
/// admin event. Refuses a policy lint finds errors in, and one identical to the active.
pub fn apply(
    conn: &Connection,
    source: &[u8],
    author: &str,
    message: &str,
) -> Result<Applied, StoreError> {
    if message.trim().is_empty() {
        return Err(StoreError::Invalid(
            "say why: a message is required (-m)".into(),
        ));
    }
    atomically(conn, || {
        let (previous, shadow) = state(conn)?;
        if let Some(active) = previous {
            let active_sha = sha256_of(conn, active)?;
            if active_sha == sha256_hex(source) {
                return Err(StoreError::Invalid(format!(
                    "this policy is already active as {}",
                    label(active, &active_sha)
                )));
            }
        }
        let (version, sha) = store_version(conn, source, author, message)?;
        set_state(conn, Some(version), shadow.filter(|s| *s != version))?;
        record_activation(conn, Some(version), "active", author, Some(message))?;
        let label = label(version, &sha);
        admin_event(
            conn,
            author,
            "policy.apply",
            &label,
            None,
            Some(&format!(
                "{message} (previous: {})",
                previous.map_or("none".into(), |p| format!("v{p}"))
            )),
        )?;
        Ok(Applied {
            version,
            label,
            previous,
        })
    })
}

/// Makes `to` (default: the version active before the current one) active again.
pub fn rollback(conn: &Connection, to: Option<i64>, actor: &str) -> Result<Applied, StoreError> {
    atomically(conn, || {
        let (previous, shadow) = state(conn)?;
        let target = match to {
            Some(v) => v,
            None => before(conn, previous)?
                .ok_or_else(|| StoreError::Invalid("no earlier version to roll back to".into()))?,
        };
        if Some(target) == previous {
            return Err(StoreError::Invalid(format!("v{target} is already active")));
        }
        // A stored version was checked when applied; check again, in case this build
        // reads it differently.
        let (label, source) = verified_source(conn, target)?;
        if let Err(problems) = super::compile::load(&source) {
            return Err(StoreError::Invalid(format!(
                "v{target} no longer loads: {}",
                problems
                    .first()
                    .map_or(String::new(), |p| p.render("policy"))
            )));
        }
        set_state(conn, Some(target), shadow.filter(|s| *s != target))?;
        let note = format!(
            "rollback from {}",
            previous.map_or("none".into(), |p| format!("v{p}"))
        );
        record_activation(conn, Some(target), "active", actor, Some(&note))?;
        admin_event(conn, actor, "policy.rollback", &label, None, Some(&note))?;
        Ok(Applied {
            version: target,
            label,
            previous,
        })
    })
}

/// The versions that have been active, most recent activation first, each once.
pub fn active_history(conn: &Connection) -> Result<Vec<i64>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT version FROM policy_activations
         WHERE role = 'active' AND version IS NOT NULL ORDER BY seq DESC",
    )?;
    let mut versions: Vec<i64> = Vec::new();
    for version in stmt.query_map([], |r| r.get(0))? {
        let version = version?;
        if !versions.contains(&version) {
            versions.push(version);
        }
    }
    Ok(versions)
}

/// The version that was active before `current` became active the last time.
fn before(conn: &Connection, current: Option<i64>) -> Result<Option<i64>, StoreError> {
    let Some(current) = current else {
        return Ok(None);
    };
    let mut stmt = conn.prepare(
        "SELECT version FROM policy_activations WHERE role = 'active' ORDER BY seq DESC",
    )?;
    let versions: Vec<Option<i64>> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    // Skip the latest activation of `current`, then take the first different version.
    let mut iter = versions.into_iter().skip_while(|v| *v != Some(current));
    iter.next();
    Ok(iter.flatten().find(|v| *v != current))
}

/// Stores `source` (or names an existing `version`) as the shadow, evaluated beside the
/// active version on live traffic and enforced never; `None` for both stops shadowing.
pub fn set_shadow(
    conn: &Connection,
    shadow: ShadowChange<'_>,
    actor: &str,
) -> Result<Option<String>, StoreError> {
    atomically(conn, || {
        let (active, _) = state(conn)?;
        let (version, message) = match shadow {
            ShadowChange::Off => (None, None),
            ShadowChange::Version(v) => (Some(v), None),
            ShadowChange::Source { bytes, message } => (
                Some(store_version(conn, bytes, actor, message)?.0),
                Some(message),
            ),
        };
        // Also checks that a version named exists.
        let label = match version {
            Some(v) => Some(label(v, &sha256_of(conn, v)?)),
            None => None,
        };
        set_state(conn, active, version)?;
        record_activation(conn, version, "shadow", actor, message)?;
        admin_event(
            conn,
            actor,
            if version.is_some() {
                "policy.shadow"
            } else {
                "policy.shadow_off"
            },
            label.as_deref().unwrap_or("-"),
            None,
            message,
        )?;
        Ok(label)
    })
}

/// What [`set_shadow`] should shadow.
pub enum ShadowChange<'a> {
    Off,
    Version(i64),
    Source { bytes: &'a [u8], message: &'a str },
}

/// Every version, newest first.
pub fn history(conn: &Connection) -> Result<Vec<Version>, StoreError> {
    let (active, shadow) = state(conn)?;
    let mut stmt = conn.prepare(
        "SELECT version, name, sha256, author, message, created_ms FROM policy_versions
         ORDER BY version DESC",
    )?;
    let rows = stmt.query_map([], |r| {
        let version: i64 = r.get(0)?;
        Ok(Version {
            version,
            name: r.get(1)?,
            sha256: r.get(2)?,
            author: r.get(3)?,
            message: r.get(4)?,
            created_ms: r.get(5)?,
            active: Some(version) == active,
            shadow: Some(version) == shadow,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Every activation, oldest first.
pub fn activations(conn: &Connection) -> Result<Vec<Activation>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT seq, version, role, actor, ts_ms, message FROM policy_activations ORDER BY seq",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(Activation {
            seq: r.get(0)?,
            version: r.get(1)?,
            role: r.get(2)?,
            actor: r.get(3)?,
            ts_ms: r.get(4)?,
            message: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The text of a version.
pub fn source(conn: &Connection, version: i64) -> Result<Vec<u8>, StoreError> {
    conn.query_row(
        "SELECT source FROM policy_versions WHERE version = ?1",
        [version],
        |r| r.get(0),
    )
    .optional()?
    .ok_or_else(|| StoreError::Invalid(format!("there is no version {version}")))
}

/// The SHA-256 (hex) of a version's text.
fn sha256_of(conn: &Connection, version: i64) -> Result<String, StoreError> {
    conn.query_row(
        "SELECT sha256 FROM policy_versions WHERE version = ?1",
        [version],
        |r| r.get(0),
    )
    .optional()?
    .ok_or_else(|| StoreError::Invalid(format!("there is no version {version}")))
}

/// A version's label and text, refused when the text no longer matches the SHA-256 it
/// was stored with (the database was altered).
pub fn verified_source(conn: &Connection, version: i64) -> Result<(String, Vec<u8>), StoreError> {
    let (label, source) = labelled_source(conn, version)?;
    let stored = sha256_of(conn, version)?;
    if sha256_hex(&source) != stored {
        return Err(StoreError::Invalid(format!(
            "the text of {label} does not match its SHA-256: it was altered in the database"
        )));
    }
    Ok((label, source))
}

/// A version's label and text.
pub fn labelled_source(conn: &Connection, version: i64) -> Result<(String, Vec<u8>), StoreError> {
    let (sha, source): (String, Vec<u8>) = conn
        .query_row(
            "SELECT sha256, source FROM policy_versions WHERE version = ?1",
            [version],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?
        .ok_or_else(|| StoreError::Invalid(format!("there is no version {version}")))?;
    Ok((label(version, &sha), source))
}
