//! The policies the gateway enforces, in memory: the active version and the shadow,
//! swapped as one snapshot when another process applies or rolls back, so a request sees
//! one version from its start to its end; a version that fails to load leaves the
//! previous one in force and says why.

use super::compile::{Policy, load};
use super::versions;
use crate::store::StoreError;
use crate::tenancy::ChangeWatch;
use arc_swap::ArcSwap;
use rusqlite::Connection;
use std::path::Path;
use std::sync::{Arc, Mutex};

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
}

struct Source {
    conn: Connection,
    watch: ChangeWatch,
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
        let (active, shadow) = versions::state(&conn)?;
        let policies = Policies {
            active: reuse_or_compile(&conn, active, None),
            shadow: reuse_or_compile(&conn, shadow, None),
        };
        if let Some(loaded) = &policies.active {
            tracing::info!(policy = %loaded.label, rules = loaded.policy.rules.len(), "policy active");
        }
        Ok(Self {
            source: Mutex::new(Source { conn, watch }),
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
        let Source { conn, watch } = &mut *source;
        let now = self.current.load();
        let known = (
            now.active.as_ref().map(|l| l.version),
            now.shadow.as_ref().map(|l| l.version),
        );
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
        let policies = Policies {
            active: reuse_or_compile(conn, state.0, now.active.as_ref()),
            shadow: reuse_or_compile(conn, state.1, now.shadow.as_ref()),
        };
        if let Some(loaded) = &policies.active {
            tracing::info!(policy = %loaded.label, "policy activated");
        }
        self.current.store(Arc::new(policies));
    }
}

/// The version `wanted`: the one in force when it is the same, else compiled; when it
/// fails to compile, the one in force stays and the log says why.
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
            tracing::error!(version, %why, "policy version failed to load; the previous version stays in force");
            in_force.cloned()
        }
    }
}

fn try_compile(conn: &Connection, version: i64) -> Result<Loaded, String> {
    let (label, source) = versions::labelled_source(conn, version).map_err(|e| e.to_string())?;
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
