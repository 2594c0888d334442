//! Structured logging setup: a tracing subscriber in text or JSON, filtered by level.

use crate::config::LogFormat;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `AIRLOCK_LOG` overrides the configured filter.
/// Logs go to stderr so stdout stays free for what a command prints for people.
pub fn init(level: &str, format: LogFormat) {
    let filter = std::env::var("AIRLOCK_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .or_else(|| EnvFilter::try_new(level).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    // `try_init` fails only when a subscriber is already installed (tests, demo reuse).
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
