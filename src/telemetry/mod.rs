//! Logs (tracing) and Prometheus metrics.

pub mod logging;
pub mod metrics;
pub mod quantile;
