//! `airlock report chargeback`: what each tenant, team, user, key or model spent.

use super::terminal::row;
use crate::metering::calendar::parse_bound;
use crate::metering::chargeback::{Chargeback, ChargebackQuery, GroupBy, chargeback};
use crate::tenancy::Directory;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Path to airlock.yaml.
    #[arg(long, short, env = "AIRLOCK_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: ReportCommand,
}

#[derive(Debug, clap::Subcommand)]
enum ReportCommand {
    /// Spend per tenant, team, user, key or model over a time range, from the request log.
    Chargeback {
        /// First day (`2026-11-01`, UTC) or time (RFC 3339) included.
        #[arg(long)]
        from: String,
        /// Last day included (`2026-11-30`), or the time (RFC 3339) the range ends before.
        #[arg(long)]
        to: String,
        #[arg(long, value_enum, default_value = "tenant")]
        by: GroupBy,
        /// Only this tenant's requests (by name).
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    Table,
    Csv,
    Json,
}

pub fn run(args: ReportArgs) -> anyhow::Result<()> {
    let state = super::open_state(args.config)?;
    match args.command {
        ReportCommand::Chargeback {
            from,
            to,
            by,
            tenant,
            format,
        } => {
            let tenant_id = tenant
                .map(|name| Directory::new(&state.conn).tenant(&name))
                .transpose()?;
            let query = ChargebackQuery {
                from_ms: parse_bound(&from, false).map_err(anyhow::Error::msg)?,
                to_ms: parse_bound(&to, true).map_err(anyhow::Error::msg)?,
                by,
                tenant_id,
            };
            let report = chargeback(&state.loaded.request_log_db_path(), &state.conn, &query)?;
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
                Format::Csv => print!("{}", report.to_csv()),
                Format::Table => print_table(&report),
            }
        }
    }
    Ok(())
}

fn print_table(report: &Chargeback) {
    row!(
        "{:<24} {:<24} {:>9} {:>12} {:>12} {:>12} {:>18}",
        "ID",
        "NAME",
        "REQUESTS",
        "PROMPT",
        "CACHED",
        "COMPLETION",
        "COST_USD"
    );
    for row in report.rows.iter().chain([&report.total]) {
        row!(
            "{:<24} {:<24} {:>9} {:>12} {:>12} {:>12} {:>18}",
            row.id.as_deref().unwrap_or("-"),
            row.name.as_deref().unwrap_or("-"),
            row.requests,
            row.prompt_tokens,
            row.cached_tokens,
            row.completion_tokens,
            row.cost_usd,
        );
    }
    if report.total.unpriced_requests > 0 {
        eprintln!(
            "note: {} requests used models without a price and count at zero cost (see `pricing:`)",
            report.total.unpriced_requests
        );
    }
}
