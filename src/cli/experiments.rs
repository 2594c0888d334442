//! `airlock experiments`: per-arm results of the models' experiments, from the request log.

use super::terminal::row;
use crate::config::LoadedConfig;
use crate::store::request_log::arm_summary;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct ExperimentsArgs {
    /// Path to airlock.yaml.
    #[arg(long, short, env = "AIRLOCK_CONFIG")]
    config: PathBuf,
    /// Print JSON (one array).
    #[arg(long)]
    json: bool,
}

pub fn run(args: &ExperimentsArgs) -> anyhow::Result<()> {
    let loaded = LoadedConfig::load(&args.config)?;
    let arms = arm_summary(&loaded.request_log_db_path())?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&arms)?);
        return Ok(());
    }
    if arms.is_empty() {
        row!("no request has been assigned to an experiment yet");
        return Ok(());
    }
    row!(
        "{:<16} {:<20} {:<12} {:>9} {:>7} {:>7} {:>9} {:>9} {:>10} {:>10}",
        "MODEL",
        "EXPERIMENT",
        "ARM",
        "REQUESTS",
        "ERRORS",
        "ERR_%",
        "MEAN_MS",
        "MAX_MS",
        "IN_TOK",
        "OUT_TOK"
    );
    for a in &arms {
        let error_share = 100.0 * a.errors as f64 / a.requests.max(1) as f64;
        row!(
            "{:<16} {:<20} {:<12} {:>9} {:>7} {:>7.1} {:>9.1} {:>9.1} {:>10} {:>10}",
            a.model,
            a.experiment,
            a.arm,
            a.requests,
            a.errors,
            error_share,
            a.mean_latency_ms,
            a.max_latency_ms,
            a.prompt_tokens,
            a.completion_tokens
        );
    }
    Ok(())
}
