//! Free space on the data directory's filesystem, checked periodically (never per
//! request): below the low-water mark an alert (an error log line and an audit event,
//! once per crossing) and `/readyz` degraded; below the refusal mark `/readyz` answers
//! 503 and, when the audit trail fails closed, data-path requests are refused while
//! there is still room to record what was served.

use crate::config::DiskConfig;
use crate::tenancy::{STATE_MIGRATIONS, admin_event};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

/// The actor disk alerts are recorded under.
const ACTOR: &str = "airlock:disk";

/// How far above a mark free space must climb before the alert is re-armed (a twentieth
/// of the mark), so space hovering around it raises one alert, not one per check.
const HYSTERESIS_DIVISOR: u64 = 20;

/// Where free space stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Level {
    Ok = 0,
    /// Below the low-water mark.
    Low = 1,
    /// Below the refusal mark.
    Critical = 2,
}

impl Level {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Ok,
            1 => Self::Low,
            _ => Self::Critical,
        }
    }
}

/// Watches the data directory's free space.
#[derive(Debug)]
pub struct DiskWatch {
    data_dir: PathBuf,
    state_db: PathBuf,
    low_water: u64,
    refuse_below: u64,
    /// Refuse data-path requests below the refusal mark (the audit trail fails closed).
    refuse_requests: bool,
    pub interval: Duration,
    level: AtomicU8,
    free: AtomicU64,
}

impl DiskWatch {
    pub fn new(config: &DiskConfig, data_dir: &Path, state_db: &Path, fail_closed: bool) -> Self {
        Self {
            data_dir: data_dir.to_path_buf(),
            state_db: state_db.to_path_buf(),
            low_water: config.low_water_bytes,
            refuse_below: config.refuse_below_bytes,
            refuse_requests: fail_closed,
            interval: Duration::from_secs(config.check_interval_secs.max(1)),
            level: AtomicU8::new(Level::Ok as u8),
            free: AtomicU64::new(u64::MAX),
        }
    }

    pub fn level(&self) -> Level {
        Level::from_u8(self.level.load(Ordering::Relaxed))
    }

    /// Reads the free space (blocking: a `statvfs` and, on a crossing, a write to the
    /// state database) and raises or clears the alert when the level changed.
    pub fn check(&self) {
        let free = match rustix::fs::statvfs(&self.data_dir) {
            Ok(stats) => stats.f_bavail.saturating_mul(stats.f_frsize),
            Err(e) => {
                tracing::error!(dir = %self.data_dir.display(), error = %e, "cannot read the data directory's free space");
                return;
            }
        };
        self.free.store(free, Ordering::Relaxed);
        let before = self.level();
        let now = self.level_for(free, before);
        if now == before {
            return;
        }
        self.level.store(now as u8, Ordering::Relaxed);
        let (action, mark) = match now {
            Level::Critical => ("disk.refuse_below", self.refuse_below),
            Level::Low => ("disk.low_water", self.low_water),
            Level::Ok => ("disk.recovered", self.low_water),
        };
        let detail = format!("{free} bytes free; mark {mark} bytes");
        if now > before {
            tracing::error!(dir = %self.data_dir.display(), free, mark, "{}", self.alert_text(now));
        } else {
            tracing::info!(dir = %self.data_dir.display(), free, "free space on the data directory recovered");
        }
        let recorded = crate::store::open(&self.state_db, STATE_MIGRATIONS).and_then(|conn| {
            admin_event(
                &conn,
                ACTOR,
                action,
                &self.data_dir.display().to_string(),
                None,
                Some(&detail),
            )
        });
        if let Err(e) = recorded {
            tracing::error!(error = %e, "cannot record the data directory's free-space alert");
        }
    }

    fn alert_text(&self, level: Level) -> &'static str {
        match (level, self.refuse_requests) {
            (Level::Critical, true) => {
                "free space on the data directory is below the refusal mark: requests are refused"
            }
            (Level::Critical, false) => {
                "free space on the data directory is below the refusal mark (audit.on_failure: fail_open keeps serving)"
            }
            _ => "free space on the data directory is below the low-water mark",
        }
    }

    /// The level `free` bytes mean, coming from `before`: a mark is left upwards only
    /// once free space is a margin above it.
    fn level_for(&self, free: u64, before: Level) -> Level {
        let below = |mark: u64, held: bool| {
            let margin = if held { mark / HYSTERESIS_DIVISOR } else { 0 };
            mark > 0 && free < mark.saturating_add(margin)
        };
        if below(self.refuse_below, before == Level::Critical) {
            Level::Critical
        } else if below(self.low_water, before >= Level::Low) {
            Level::Low
        } else {
            Level::Ok
        }
    }

    /// For `/readyz`: what is wrong, and whether the gateway refuses because of it.
    pub fn readiness(&self) -> Option<(String, bool)> {
        let free = self.free.load(Ordering::Relaxed);
        match self.level() {
            Level::Ok => None,
            Level::Low => Some((
                format!(
                    "{free} bytes free on the data directory, below the low-water mark of {} bytes",
                    self.low_water
                ),
                false,
            )),
            Level::Critical => Some((
                format!(
                    "{free} bytes free on the data directory, below the refusal mark of {} bytes",
                    self.refuse_below
                ),
                true,
            )),
        }
    }

    /// Whether data-path requests are refused now.
    pub fn refuses_requests(&self) -> bool {
        self.refuse_requests && self.level() == Level::Critical
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch(low: u64, refuse: u64) -> DiskWatch {
        let dir = std::env::temp_dir();
        DiskWatch::new(
            &DiskConfig {
                low_water_bytes: low,
                refuse_below_bytes: refuse,
                check_interval_secs: 1,
            },
            &dir,
            &dir.join("unused.db"),
            true,
        )
    }

    #[test]
    fn levels_cross_marks_down_at_once_and_up_past_a_margin() {
        let w = watch(1000, 100);
        assert_eq!(w.level_for(2000, Level::Ok), Level::Ok);
        assert_eq!(w.level_for(999, Level::Ok), Level::Low);
        assert_eq!(w.level_for(99, Level::Low), Level::Critical);
        // Back above a mark, but within its margin: still there.
        assert_eq!(w.level_for(101, Level::Critical), Level::Critical);
        assert_eq!(w.level_for(106, Level::Critical), Level::Low);
        assert_eq!(w.level_for(1001, Level::Low), Level::Low);
        assert_eq!(w.level_for(1050, Level::Low), Level::Ok);
        // Marks of 0 are off.
        let off = watch(0, 0);
        assert_eq!(off.level_for(0, Level::Ok), Level::Ok);
    }
}
