//! The `airlock` command line: argument parsing and dispatch to the subcommands.

mod admin;
mod audit;
mod credentials;
mod demo;
mod evidence;
mod experiments;
mod init;
mod keys;
mod password;
mod pii;
mod policy;
mod progress;
mod report;
mod requests;
mod tenants;
pub(crate) mod terminal;

use crate::config::LoadedConfig;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Airlock: a governance gateway for LLM and MCP traffic on isolated servers.
#[derive(Debug, Parser)]
#[command(name = "airlock", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway with a configuration file.
    Serve {
        /// Path to airlock.yaml.
        #[arg(long, short, env = "AIRLOCK_CONFIG")]
        config: PathBuf,
        /// A NER model directory (model.onnx, tokenizer.json, config.json) instead of the
        /// embedded model (overrides `pii.ner.model_dir`).
        #[arg(long, value_name = "DIR")]
        ner_model: Option<PathBuf>,
    },
    /// Create a new instance: a commented airlock.yaml and the instance key material.
    Init(init::InitArgs),
    /// Run a simulator of vLLM's OpenAI-compatible server (for tests, demos, benchmarks).
    MockUpstream(crate::mock_upstream::MockArgs),
    /// Start a mock model server and the gateway, create a demo key, and print how to use them.
    Demo(demo::DemoArgs),
    /// Create, list and revoke virtual keys.
    Keys(keys::KeysArgs),
    /// Tenants, their teams and users.
    Tenants(tenants::TenantsArgs),
    /// Create, list, rotate and revoke provider credentials (BYOK).
    Credentials(credentials::CredentialsArgs),
    /// Administer the instance: admin API tokens and local admin users.
    Admin(admin::AdminArgs),
    /// Verify the tamper-evident audit trail; print its public key.
    Audit(audit::AuditArgs),
    /// Export an evidence package for an auditor; verify one offline.
    Evidence(evidence::EvidenceArgs),
    /// Lint, test, dry-run, apply, diff and roll back policies.
    Policy(policy::PolicyArgs),
    /// Find personal data in text, redact or tokenise it, score the finders on a test set.
    Pii(pii::PiiArgs),
    /// Show the most recent rows of the request log.
    Requests(requests::RequestsArgs),
    /// Reports from the request log: chargeback (spend per tenant, team, user, key, model).
    Report(report::ReportArgs),
    /// Show each experiment arm's requests, errors, latency and tokens.
    Experiments(experiments::ExperimentsArgs),
    /// Print the version.
    Version,
}

/// Parses arguments and runs the chosen subcommand.
pub fn main() -> ExitCode {
    // Every file and directory Airlock creates is its user's alone.
    crate::store::files::private_umask();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// The gateway serves from its own worker threads; the main thread only waits for the
/// shutdown signal.
fn coordinator_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { config, ner_model } => serve(&config, ner_model),
        Command::Init(args) => init::run(&args),
        Command::MockUpstream(args) => mock_upstream(args),
        Command::Demo(args) => demo::run(args),
        Command::Keys(args) => keys::run(args),
        Command::Tenants(args) => tenants::run(args),
        Command::Credentials(args) => credentials::run(args),
        Command::Admin(args) => admin::run(args),
        Command::Audit(args) => {
            if audit::run(args)? {
                Ok(())
            } else {
                anyhow::bail!("the audit trail does not verify")
            }
        }
        Command::Evidence(args) => {
            if evidence::run(args)? {
                Ok(())
            } else {
                anyhow::bail!("the evidence package does not verify")
            }
        }
        Command::Policy(args) => policy::run(args),
        Command::Pii(args) => pii::run(args),
        Command::Requests(args) => requests::run(&args),
        Command::Experiments(args) => experiments::run(&args),
        Command::Report(args) => report::run(args),
        Command::Version => {
            println!("airlock {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
    }
}

fn serve(config: &std::path::Path, ner_model: Option<PathBuf>) -> anyhow::Result<()> {
    let mut loaded = LoadedConfig::load(config)?;
    if ner_model.is_some() {
        loaded.config.pii.ner.model_dir = ner_model;
    }
    let logging = &loaded.config.logging;
    crate::telemetry::logging::init(&logging.level, logging.format);
    match crate::server::limits::raise_file_limit() {
        Ok(limit) if limit.before != limit.now => {
            tracing::info!(from = ?limit.before, to = ?limit.now, "raised the open-file limit");
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
    }
    let rt = coordinator_runtime()?;
    let writer = rt.block_on(async {
        let gateway = crate::server::Gateway::open(&loaded)?;
        let listen = loaded.config.server.listen;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
        let scheme = if loaded.config.server.tls.is_some() {
            "https"
        } else {
            "http"
        };
        tracing::info!(address = %listener.local_addr()?, "airlock listening");
        println!("airlock listening on {scheme}://{}", listener.local_addr()?);
        gateway
            .serve(listener, crate::server::shutdown_signal())
            .await
    })?;
    finish(rt, writer);
    Ok(())
}

/// Stops the runtime (ending any request cut after the grace period, which logs it) and
/// then waits until every request-log row is on disk.
fn finish(rt: tokio::runtime::Runtime, writer: crate::server::Writers) {
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    writer.finish();
    tracing::info!("stopped");
}

fn mock_upstream(args: crate::mock_upstream::MockArgs) -> anyhow::Result<()> {
    crate::telemetry::logging::init("warn", crate::config::LogFormat::Text);
    runtime()?.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.listen))?;
        let scheme = if args.tls_cert.is_some() {
            "https"
        } else {
            "http"
        };
        println!(
            "mock-upstream listening on {scheme}://{}",
            listener.local_addr()?
        );
        crate::mock_upstream::serve(listener, args, crate::server::shutdown_signal()).await
    })
}

/// An instance's state database, opened for an administrative command.
struct StateAccess {
    config_path: PathBuf,
    loaded: LoadedConfig,
    conn: rusqlite::Connection,
    instance_key: crate::store::instance_key::InstanceKey,
}

/// Opens the state database of the instance `--config` names.
fn open_state(config: Option<PathBuf>) -> anyhow::Result<StateAccess> {
    let config_path =
        config.ok_or_else(|| anyhow::anyhow!("pass --config FILE (or set AIRLOCK_CONFIG)"))?;
    let loaded = LoadedConfig::load(&config_path)?;
    let instance_key = crate::store::instance_key::InstanceKey::read(&loaded.key_file_path())?;
    let conn = crate::store::open(&loaded.state_db_path(), crate::tenancy::STATE_MIGRATIONS)?;
    Ok(StateAccess {
        config_path,
        loaded,
        conn,
        instance_key,
    })
}

/// Copies the admin changes just made into the audit trail (when auditing is on), so
/// they are there even while no gateway runs. The change itself is already recorded in
/// the state database, which a running gateway copies in, so a failure here only warns.
fn audit_admin_changes(state: &StateAccess) {
    if !state.loaded.config.audit.enabled {
        return;
    }
    let copied = crate::audit::log::AuditLog::open_configured(&state.loaded, &state.instance_key)
        .and_then(|mut log| log.ingest_admin_events());
    if let Err(e) = copied {
        eprintln!(
            "warning: the change is not in the audit trail yet ({e}); the gateway copies it in when it runs"
        );
    }
}

/// Records that the audit trail was read or exported from the command line (who, what,
/// on which object), and copies it into the trail.
fn record_access(state: &StateAccess, action: &str, target: &str, detail: Option<&str>) {
    let recorded =
        crate::tenancy::admin_event(&state.conn, &cli_actor(), action, target, None, detail);
    match recorded {
        Ok(()) => audit_admin_changes(state),
        Err(e) => eprintln!("warning: this access could not be recorded: {e}"),
    }
}

/// Who performs an admin action from the command line.
fn cli_actor() -> String {
    let user = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "unknown".into());
    format!("cli:{user}")
}
