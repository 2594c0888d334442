//! The policies the gateway enforces, in memory: the active version and the shadow,
//! swapped as one snapshot when another process applies or rolls back, so a request sees
//! one version from its start to its end. When the active version fails to load (a build
//! that reads it differently, an altered database), the version in force stays — at
//! start, the most recently active version that loads — and the gateway says so (error
//! log, audit event, `/readyz` degraded); with none that loads it refuses data-path
//! requests rather than serve them without a policy.

use super::compile::{Policy, load};
use super::versions;
use crate::store::StoreError;
use crate::tenancy::{ChangeWatch, admin_event};
use arc_swap::ArcSwap;
use rusqlite::Connection;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The actor policy fallbacks are recorded under.
const ACTOR: &str = "airlock:policy";

/// A compiled version and its label (`v3-1a2b3c4d`).
#[derive(Debug)]
pub struct Loaded {
    pub version: i64,
    pub label: Arc<str>,
    pub policy: Policy,
}

/// What is enforced (active) and what is only recorded (shadow).
#[derive(Debug, Default)]
pub struct Policies {
    pub active: Option<Arc<Loaded>>,
    pub shadow: Option<Arc<Loaded>>,
    /// The active version of the state database failed to load: why, and what is
    /// enforced instead (`active`; none: requests are refused).
    pub fault: Option<Arc<str>>,
}

impl Policies {
    /// Whether data-path requests must be refused: a version should be enforced and
    /// none loads.
    pub fn refusing(&self) -> bool {
        self.fault.is_some() && self.active.is_none()
    }

    /// For `/readyz`: what is wrong, and whether requests are refused because of it.
    pub fn readiness(&self) -> Option<(String, bool)> {
        self.fault
            .as_ref()
            .map(|fault| (fault.to_string(), self.refusing()))
    }
}

struct Source {
    conn: Connection,
    watch: ChangeWatch,
    /// The active and shadow versions the state database named when last read.
    seen: (Option<i64>, Option<i64>),
}

/// The policies in force, refreshed when the state database changes.
pub struct PolicyCache {
    source: Mutex<Source>,
    current: ArcSwap<Policies>,
}

impl PolicyCache {
    /// Loads the active and shadow versions from the state database at `db_path`.
    pub fn open(conn: Connection, db_path: &Path) -> Result<Self, StoreError> {
        let watch = ChangeWatch::new(db_path);
        let seen = versions::state(&conn)?;
        let (active, fault) = resolve_active(&conn, seen.0, None);
        let policies = Policies {
            active,
            shadow: reuse_or_compile(&conn, seen.1, None),
            fault,
        };
        if let Some(loaded) = &policies.active {
            tracing::info!(policy = %loaded.label, rules = loaded.policy.rules.len(), "policy active");
        }
        Ok(Self {
            source: Mutex::new(Source { conn, watch, seen }),
            current: ArcSwap::from_pointee(policies),
        })
    }

    /// The policies in force now (checking first whether another process changed them).
    pub fn current(&self) -> Arc<Policies> {
        self.refresh_if_changed();
        self.current.load_full()
    }

    fn refresh_if_changed(&self) {
        // Wait while another request checks: it may be loading a version applied before
        // this request arrived, which this request must be judged by too.
        let Ok(mut source) = self.source.lock() else {
            return;
        };
        let Source { conn, watch, seen } = &mut *source;
        let known = *seen;
        let changed = watch.changed(|| {
            versions::state(conn)
                .map(|state| state != known)
                .map_err(|_| rusqlite::Error::InvalidQuery)
        });
        if !matches!(changed, Ok(true)) {
            return;
        }
        let Ok(state) = versions::state(conn) else {
            tracing::error!("cannot read the policy state; the policies in force stay");
            return;
        };
        if state == known {
            return;
        }
        *seen = state;
        let now = self.current.load();
        let (active, fault) = if state.0 == known.0 {
            (now.active.clone(), now.fault.clone())
        } else {
            resolve_active(conn, state.0, now.active.as_ref())
        };
        let policies = Policies {
            active,
            shadow: reuse_or_compile(conn, state.1, now.shadow.as_ref()),
            fault,
        };
        if let Some(loaded) = policies
            .active
            .as_ref()
            .filter(|_| policies.fault.is_none())
        {
            tracing::info!(policy = %loaded.label, "policy activated");
        }
        self.current.store(Arc::new(policies));
    }
}

/// The version to enforce when the state database names `wanted`: it, when it loads;
/// else the one in force, or (at start, none in force) the most recently active version
/// that loads; else none, and requests are refused. A fallback is logged and recorded
/// as an admin event, and named in the fault.
fn resolve_active(
    conn: &Connection,
    wanted: Option<i64>,
    in_force: Option<&Arc<Loaded>>,
) -> (Option<Arc<Loaded>>, Option<Arc<str>>) {
    let Some(version) = wanted else {
        return (None, None);
    };
    if let Some(loaded) = in_force.filter(|l| l.version == version) {
        return (Some(loaded.clone()), None);
    }
    let why = match try_compile(conn, version) {
        Ok(loaded) => return (Some(Arc::new(loaded)), None),
        Err(why) => why,
    };
    let fallback = in_force
        .cloned()
        .or_else(|| last_loadable(conn, version).map(Arc::new));
    let (action, fault) = match &fallback {
        Some(loaded) => (
            "policy.fallback",
            format!(
                "the active policy v{version} failed to load ({why}); {} is enforced instead",
                loaded.label
            ),
        ),
        None => (
            "policy.unavailable",
            format!(
                "the active policy v{version} failed to load ({why}) and no earlier version \
                 loads; data-path requests are refused"
            ),
        ),
    };
    tracing::error!(version, "{fault}");
    if let Err(e) = admin_event(
        conn,
        ACTOR,
        action,
        &format!("v{version}"),
        None,
        Some(&fault),
    ) {
        tracing::error!(error = %e, "cannot record the policy fallback");
    }
    (fallback, Some(fault.into()))
}

/// The most recently active version other than `failed` that loads.
fn last_loadable(conn: &Connection, failed: i64) -> Option<Loaded> {
    let history = match versions::active_history(conn) {
        Ok(history) => history,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the policy activations");
            return None;
        }
    };
    history
        .into_iter()
        .filter(|v| *v != failed)
        .find_map(|version| match try_compile(conn, version) {
            Ok(loaded) => Some(loaded),
            Err(why) => {
                tracing::error!(version, %why, "an earlier policy version does not load either");
                None
            }
        })
}

/// The shadow version `wanted`: the one in force when it is the same, else compiled;
/// when it fails to load, the shadow in force stays (it enforces nothing) and the log
/// says why.
fn reuse_or_compile(
    conn: &Connection,
    wanted: Option<i64>,
    in_force: Option<&Arc<Loaded>>,
) -> Option<Arc<Loaded>> {
    let version = wanted?;
    if let Some(loaded) = in_force.filter(|l| l.version == version) {
        return Some(loaded.clone());
    }
    match try_compile(conn, version) {
        Ok(loaded) => Some(Arc::new(loaded)),
        Err(why) => {
            tracing::error!(version, %why, "shadow policy version failed to load; the previous shadow stays");
            in_force.cloned()
        }
    }
}

fn try_compile(conn: &Connection, version: i64) -> Result<Loaded, String> {
    let (label, source) = versions::verified_source(conn, version).map_err(|e| e.to_string())?;
    let (policy, _) = load(&source).map_err(|problems| {
        problems
            .first()
            .map_or_else(|| "invalid policy".to_string(), |p| p.render(&label))
    })?;
    Ok(Loaded {
        version,
        label: label.into(),
        policy,
    })
}
