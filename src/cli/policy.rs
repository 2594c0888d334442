//! `airlock policy`: lint and test policy files, dry-run them on recorded traffic, apply,
//! shadow, diff and roll back versions.

use super::terminal::row;
use super::{StateAccess, cli_actor, open_state, record_access};
use crate::policy::versions::{self, ShadowChange};
use crate::policy::{cases, diff, dry_run, lint};
use anyhow::{Context, bail};
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub struct PolicyArgs {
    #[command(subcommand)]
    command: PolicyCommand,
}

#[derive(Debug, clap::Subcommand)]
enum PolicyCommand {
    /// Check policy files: schema, names, patterns, CEL, unreachable and shadowed rules.
    Lint {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Also check against this instance (models named by route/downgrade rules).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Print the problems as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run policy test files (YAML cases: a request and the decision expected).
    Test {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The policy under test (default: the `policy:` each test file names).
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Print the results as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Evaluate a candidate policy on recorded traffic and show how decisions change
    /// against the active version.
    DryRun {
        file: PathBuf,
        #[arg(long, short, env = "AIRLOCK_CONFIG")]
        config: Option<PathBuf>,
        /// Since when: `7d`, `24h` (ago) or a date/time (default: 7 days ago).
        #[arg(long, default_value = "7d")]
        since: String,
        /// Most requests to evaluate, newest first.
        #[arg(long, default_value_t = 100_000)]
        limit: u64,
        #[arg(long)]
        json: bool,
    },
    /// Store a policy as a new version and make it active (checked by lint first).
    Apply {
        file: PathBuf,
        /// Why: kept with the version and in the audit trail.
        #[arg(long, short)]
        message: String,
        #[arg(long, short, env = "AIRLOCK_CONFIG")]
        config: Option<PathBuf>,
    },
    /// List the stored versions, newest first.
    History {
        #[arg(long, short, env = "AIRLOCK_CONFIG")]
        config: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Print a version's text (default: the active one).
    Show {
        version: Option<String>,
        #[arg(long, short, env = "AIRLOCK_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Compare two versions (`3`, `v3`) or files, rule by rule and line by line.
    Diff {
        old: String,
        new: String,
        #[arg(long, short, env = "AIRLOCK_CONFIG")]
        config: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Make an earlier version active again (default: the one active before).
    Rollback {
        version: Option<String>,
        #[arg(long, short, env = "AIRLOCK_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Measure evaluation latency on a typical request (a synthetic policy of `--rules`
    /// rules unless a file is given); prints JSON.
    Bench {
        file: Option<PathBuf>,
        #[arg(long, default_value_t = 200)]
        rules: usize,
        #[arg(long, default_value_t = 100_000)]
        iterations: usize,
    },
    /// Evaluate a candidate beside the active version on live traffic, enforcing
    /// nothing: its would-be decisions go into the audit records.
    Shadow {
        /// A policy file, or a stored version (`3`, `v3`).
        candidate: Option<String>,
        /// With a file: why.
        #[arg(long, short)]
        message: Option<String>,
        /// Stop shadowing.
        #[arg(long, conflicts_with = "candidate")]
        off: bool,
        #[arg(long, short, env = "AIRLOCK_CONFIG")]
        config: Option<PathBuf>,
    },
}

pub fn run(args: PolicyArgs) -> anyhow::Result<()> {
    match args.command {
        PolicyCommand::Lint {
            files,
            config,
            json,
        } => {
            let models = match config {
                Some(path) => Some(configured_models(&crate::config::LoadedConfig::load(
                    &path,
                )?)),
                None => None,
            };
            lint_files(&files, models.as_deref(), json)
        }
        PolicyCommand::Test {
            files,
            policy,
            json,
        } => test_files(&files, policy.as_deref(), json),
        PolicyCommand::DryRun {
            file,
            config,
            since,
            limit,
            json,
        } => dry_run_file(&file, config, &since, limit, json),
        PolicyCommand::Bench {
            file,
            rules,
            iterations,
        } => {
            let source = match &file {
                Some(f) => read(f)?,
                None => crate::policy::bench::synthetic_policy(rules).into_bytes(),
            };
            let (policy, _) = crate::policy::load(&source).map_err(|_| {
                anyhow::anyhow!("the policy does not load (run `airlock policy lint`)")
            })?;
            let report = crate::policy::bench::run(
                &policy,
                &crate::policy::bench::typical_request(),
                iterations,
            );
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
        PolicyCommand::Apply {
            file,
            message,
            config,
        } => {
            let state = open_state(config)?;
            let source = read(&file)?;
            let models = configured_models(&state.loaded);
            if let Some(p) = lint::unknown_models(&source, &models).first() {
                bail!("{}", p.render(&file.display().to_string()));
            }
            let applied = versions::apply(&state.conn, &source, &cli_actor(), &message)?;
            super::audit_admin_changes(&state);
            row!(
                "{} is active (was {})",
                applied.label,
                applied.previous.map_or("none".into(), |p| format!("v{p}"))
            );
            Ok(())
        }
        PolicyCommand::History { config, json } => {
            let state = open_state(config)?;
            let history = versions::history(&state.conn)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&history)?);
                return Ok(());
            }
            if history.is_empty() {
                row!("no policy version yet: `airlock policy apply FILE -m MESSAGE`");
            }
            for v in &history {
                let role = match (v.active, v.shadow) {
                    (true, _) => "active",
                    (_, true) => "shadow",
                    _ => "",
                };
                row!(
                    "{:<14} {:<7} {}  {:<20} {:<16} {}",
                    v.label(),
                    role,
                    crate::evidence::rfc3339_ms(v.created_ms),
                    v.name,
                    v.author,
                    v.message
                );
            }
            Ok(())
        }
        PolicyCommand::Show { version, config } => {
            let state = open_state(config)?;
            let version = match version {
                Some(v) => parse_version(&v)?,
                None => versions::state(&state.conn)?
                    .0
                    .context("no policy version is active")?,
            };
            let source = versions::source(&state.conn, version)?;
            print!("{}", String::from_utf8_lossy(&source));
            Ok(())
        }
        PolicyCommand::Diff {
            old,
            new,
            config,
            json,
        } => {
            let (old_label, old_text) = version_or_file(&old, config.clone())?;
            let (new_label, new_text) = version_or_file(&new, config)?;
            let d = diff::diff(&old_label, &old_text, &new_label, &new_text);
            if json {
                println!("{}", serde_json::to_string_pretty(&d)?);
                return Ok(());
            }
            let list = |l: &[String]| {
                if l.is_empty() {
                    "-".into()
                } else {
                    l.join(", ")
                }
            };
            row!("rules added:   {}", list(&d.added));
            row!("rules removed: {}", list(&d.removed));
            row!("rules changed: {}", list(&d.changed));
            if d.reordered {
                row!("rules reordered");
            }
            if !d.settings.is_empty() {
                row!("settings changed: {}", d.settings.join(", "));
            }
            print!("\n{}", d.unified);
            Ok(())
        }
        PolicyCommand::Rollback { version, config } => {
            let state = open_state(config)?;
            let to = version.as_deref().map(parse_version).transpose()?;
            let applied = versions::rollback(&state.conn, to, &cli_actor())?;
            super::audit_admin_changes(&state);
            row!(
                "{} is active again (was {})",
                applied.label,
                applied.previous.map_or("none".into(), |p| format!("v{p}"))
            );
            Ok(())
        }
        PolicyCommand::Shadow {
            candidate,
            message,
            off,
            config,
        } => {
            let state = open_state(config)?;
            let source;
            let change = match (&candidate, off) {
                (_, true) => ShadowChange::Off,
                (None, false) => bail!("name a policy file or version to shadow, or pass --off"),
                (Some(c), false) => match parse_version(c) {
                    Ok(v) if !Path::new(c).exists() => ShadowChange::Version(v),
                    _ => {
                        source = read(Path::new(c))?;
                        ShadowChange::Source {
                            bytes: &source,
                            message: message
                                .as_deref()
                                .context("say why with -m when shadowing a new file")?,
                        }
                    }
                },
            };
            let label = versions::set_shadow(&state.conn, change, &cli_actor())?;
            super::audit_admin_changes(&state);
            match label {
                Some(l) => row!("{l} is shadowing the active version"),
                None => row!("no version is shadowing"),
            }
            Ok(())
        }
    }
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// `3` or `v3` (or a label `v3-1a2b…`).
fn parse_version(text: &str) -> anyhow::Result<i64> {
    let digits = text.strip_prefix('v').unwrap_or(text);
    let digits = digits.split('-').next().unwrap_or(digits);
    digits
        .parse()
        .with_context(|| format!("`{text}` is not a version number"))
}

/// A stored version's label and text, or a file's name and content.
fn version_or_file(arg: &str, config: Option<PathBuf>) -> anyhow::Result<(String, Vec<u8>)> {
    if Path::new(arg).exists() {
        return Ok((arg.to_string(), read(Path::new(arg))?));
    }
    let version =
        parse_version(arg).with_context(|| format!("`{arg}` is neither a file nor a version"))?;
    let state = open_state(config)?;
    Ok(versions::labelled_source(&state.conn, version)?)
}

/// The logical models an instance serves.
fn configured_models(loaded: &crate::config::LoadedConfig) -> Vec<String> {
    loaded.config.models.keys().cloned().collect()
}

fn lint_files(files: &[PathBuf], models: Option<&[String]>, json: bool) -> anyhow::Result<()> {
    let mut errors = 0;
    let mut all = Vec::new();
    for file in files {
        let source = read(file)?;
        let mut problems = lint::lint(&source);
        if let Some(models) = models {
            problems.extend(lint::unknown_models(&source, models));
        }
        errors += problems
            .iter()
            .filter(|p| p.severity == crate::policy::Severity::Error)
            .count();
        if json {
            all.push(serde_json::json!({"file": file, "problems": problems}));
        } else {
            for p in &problems {
                row!("{}", p.render(&file.display().to_string()));
            }
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&all)?);
    } else if errors == 0 {
        row!("{} file(s): no errors", files.len());
    }
    if errors > 0 {
        bail!("{errors} error(s)");
    }
    Ok(())
}

fn test_files(files: &[PathBuf], policy: Option<&Path>, json: bool) -> anyhow::Result<()> {
    let (mut passed, mut failed) = (0, 0);
    let mut all = Vec::new();
    for file in files {
        let tests = cases::parse(&read(file)?)
            .map_err(|p| anyhow::anyhow!(p.render(&file.display().to_string())))?;
        let policy_path = match (policy, &tests.policy) {
            (Some(p), _) => p.to_path_buf(),
            (None, Some(relative)) => file.parent().unwrap_or(Path::new(".")).join(relative),
            (None, None) => bail!(
                "{}: name the policy under test with `policy:` or --policy",
                file.display()
            ),
        };
        let (compiled, _) = crate::policy::load(&read(&policy_path)?).map_err(|problems| {
            let rendered: Vec<String> = problems
                .iter()
                .map(|p| p.render(&policy_path.display().to_string()))
                .collect();
            anyhow::anyhow!("the policy does not load:\n{}", rendered.join("\n"))
        })?;
        let outcomes = cases::run(&compiled, &tests);
        for o in &outcomes {
            if o.passed {
                passed += 1;
            } else {
                failed += 1;
            }
            if !json {
                let status = if o.passed { "ok  " } else { "FAIL" };
                row!("{status} {}: {}", file.display(), o.name);
                for f in &o.failures {
                    row!("       {f}");
                }
            }
        }
        if json {
            all.push(serde_json::json!({"file": file, "policy": policy_path, "cases": outcomes}));
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&all)?);
    } else {
        row!("{passed} passed, {failed} failed");
    }
    if failed > 0 {
        bail!("{failed} policy test(s) failed");
    }
    Ok(())
}

fn dry_run_file(
    file: &Path,
    config: Option<PathBuf>,
    since: &str,
    limit: u64,
    json: bool,
) -> anyhow::Result<()> {
    let source = read(file)?;
    let (candidate, _) = crate::policy::load(&source).map_err(|problems| {
        anyhow::anyhow!(
            "the policy does not load (run `airlock policy lint`): {}",
            problems
                .first()
                .map_or(String::new(), |p| p.render(&file.display().to_string()))
        )
    })?;
    let state: StateAccess = open_state(config)?;
    let now = crate::store::now_unix_ms();
    let since_ms = crate::audit::search::query::parse_time(since, now)
        .map_err(|e| anyhow::anyhow!("--since: {e}"))?;
    let active = match versions::state(&state.conn)?.0 {
        Some(v) => {
            let (label, text) = versions::labelled_source(&state.conn, v)?;
            let (policy, _) = crate::policy::load(&text)
                .map_err(|_| anyhow::anyhow!("the active version {label} does not load"))?;
            Some((label, policy))
        }
        None => None,
    };
    let audit = crate::audit::log::open_audit_db(&state.loaded.audit_db_path())?;
    let report = dry_run::dry_run(
        &audit,
        &state.instance_key.seal_key,
        &candidate,
        active.as_ref().map(|(_, p)| p),
        since_ms,
        limit,
    )?;
    record_access(
        &state,
        "policy.dry_run",
        &file.display().to_string(),
        Some(&format!("{} requests since {since}", report.requests)),
    );
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let against = active.as_ref().map_or("no policy (allow all)", |(l, _)| l);
    row!(
        "{} requests since {since} (newest first, at most {limit}), against {against}",
        report.requests
    );
    if report.without_payload > 0 {
        row!(
            "  {} without a readable payload (erased, expired or not kept): content rules saw no text",
            report.without_payload
        );
    }
    row!("  unchanged: {}", report.unchanged);
    for change in &report.changes {
        row!("  {} → {}: {}", change.from, change.to, change.requests);
        for (rule, n) in &change.rules {
            row!("      by {rule}: {n}");
        }
        if !change.samples.is_empty() {
            row!("      e.g. {}", change.samples.join(", "));
        }
    }
    for (rule, n) in &report.errors {
        row!("  rule {rule}: `when:` failed on {n} request(s)");
    }
    Ok(())
}
