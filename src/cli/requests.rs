//! `airlock requests`: the most recent rows of the request log, for people or as JSON.

use super::terminal::row;
use crate::config::LoadedConfig;
use crate::store::request_log::{RequestRecord, read_recent};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

#[derive(Debug, clap::Args)]
pub struct RequestsArgs {
    /// Path to airlock.yaml.
    #[arg(long, short, env = "AIRLOCK_CONFIG")]
    config: PathBuf,
    /// How many rows, newest first.
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// Print JSON (one array).
    #[arg(long)]
    json: bool,
}

pub fn run(args: &RequestsArgs) -> anyhow::Result<()> {
    let loaded = LoadedConfig::load(&args.config)?;
    let rows = read_recent(&loaded.request_log_db_path(), args.limit)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    row!(
        "{:<24} {:<31} {:<17} {:<16} {:<16} {:>5} {:<6} {:>9} {:>9} {:>7} {:>7} {:>12} {:<8} ERROR / RULES",
        "TIME",
        "ID",
        "ENDPOINT",
        "MODEL",
        "UPSTREAM",
        "TRIES",
        "STATUS",
        "MS",
        "UPSTR_MS",
        "IN_TOK",
        "OUT_TOK",
        "COST_USD",
        "DECISION"
    );
    for r in &rows {
        print_row(r);
    }
    Ok(())
}

fn print_row(r: &RequestRecord) {
    let time = humantime::format_rfc3339_millis(
        SystemTime::UNIX_EPOCH + Duration::from_millis(r.ts_ms.max(0) as u64),
    );
    let num = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
    let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
    row!(
        "{:<24} {:<31} {:<17} {:<16} {:<16} {:>5} {:<6} {:>9.1} {:>9} {:>7} {:>7} {:>12} {:<8} {}",
        time.to_string(),
        r.id,
        format!("{}{}", r.endpoint, if r.stream { " (sse)" } else { "" }),
        r.model.as_deref().unwrap_or("-"),
        r.upstream.as_deref().unwrap_or("-"),
        r.attempts,
        r.status,
        r.latency_ms,
        ms(r.upstream_latency_ms),
        num(r.prompt_tokens),
        num(r.completion_tokens),
        r.cost_nano_usd
            .map_or("-".to_string(), |n| format!("{:.6}", n as f64 / 1e9)),
        r.decision.unwrap_or("-"),
        [
            r.error_type.as_deref(),
            r.policy_rules.as_deref(),
            r.data_classes.as_deref(),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" "),
    );
}
