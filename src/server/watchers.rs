//! The gateway's periodic work beside serving: recording each interval's refused
//! authentications, and checking the data directory's free space. Both stop, finishing
//! what they are doing, when the gateway shuts down.

use super::{AppState, auth_failures};
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The running background tasks.
pub struct Watchers {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Watchers {
    pub fn start(state: &Arc<AppState>) -> Self {
        let (stop, stopped) = watch::channel(false);
        let tasks = vec![
            tokio::spawn(record_auth_failures(state.clone(), stopped.clone())),
            tokio::spawn(watch_disk(state.clone(), stopped)),
        ];
        Self { stop, tasks }
    }

    /// Stops the tasks and waits for them (a round under way finishes first).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            if task.await.is_err() {
                tracing::error!("a background check failed");
            }
        }
    }
}

/// Waits for the next tick of `every`; false once `stop` turned true.
async fn next_tick(every: &mut tokio::time::Interval, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = every.tick() => true,
        _ = stop.wait_for(|stopped| *stopped) => false,
    }
}

/// Records the refused authentications of each interval, until stopped.
async fn record_auth_failures(state: Arc<AppState>, mut stop: watch::Receiver<bool>) {
    let mut every = tokio::time::interval(state.auth_failures.interval);
    every.tick().await;
    while next_tick(&mut every, &mut stop).await {
        auth_failures::record(&state.auth_failures, state.audit.as_ref()).await;
    }
}

/// Checks the data directory's free space at its interval, until stopped.
async fn watch_disk(state: Arc<AppState>, mut stop: watch::Receiver<bool>) {
    let mut every = tokio::time::interval(state.disk.interval);
    every.tick().await;
    while next_tick(&mut every, &mut stop).await {
        let state = state.clone();
        if tokio::task::spawn_blocking(move || state.disk.check())
            .await
            .is_err()
        {
            tracing::error!("the free-space check failed");
        }
    }
}
