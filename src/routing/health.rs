//! Active health checks: every upstream with a `health_check` is probed in the
//! background, and its targets are skipped while it is unhealthy.

use crate::config::HealthCheckConfig;
use crate::providers::openai_compat::Upstream;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// Starts a checker for each upstream that has a health check; abort the handles to stop.
pub fn spawn_all(upstreams: &[Arc<Upstream>]) -> Vec<JoinHandle<()>> {
    upstreams
        .iter()
        .filter_map(|u| {
            let check = u.health_check.clone()?;
            Some(tokio::spawn(check_forever(u.clone(), check)))
        })
        .collect()
}

async fn check_forever(upstream: Arc<Upstream>, check: HealthCheckConfig) {
    let mut ticker = tokio::time::interval(Duration::from_millis(check.interval_ms));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let timeout = Duration::from_millis(check.timeout_ms);
    let (mut failures, mut successes) = (0u32, 0u32);
    loop {
        ticker.tick().await;
        let verdict = match tokio::time::timeout(timeout, upstream.probe(&check.path)).await {
            Ok(Ok(status)) if status.is_success() => Ok(()),
            Ok(Ok(status)) => Err(format!("answered {status}")),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(format!("no answer within {timeout:?}")),
        };
        match verdict {
            Ok(()) => {
                (failures, successes) = (0, successes.saturating_add(1));
                if !upstream.is_healthy() && successes >= check.healthy_after {
                    upstream.set_healthy(true);
                    tracing::warn!(upstream = %upstream.name, "health check passes again; upstream back in rotation");
                }
            }
            Err(reason) => {
                (failures, successes) = (failures.saturating_add(1), 0);
                if upstream.is_healthy() && failures >= check.unhealthy_after {
                    upstream.set_healthy(false);
                    tracing::warn!(upstream = %upstream.name, path = %check.path, %reason, "health check failing; upstream out of rotation");
                }
            }
        }
    }
}
