//! `airlock audit`: verify the audit trail offline, search it, list a session's
//! records, rebuild the search index, print the key that checks its checkpoints
//! elsewhere, and export one record with its inclusion proof (checked elsewhere by
//! `verify-record`, without the database).

use super::progress::Progress;
use super::terminal::row;
use crate::audit::erasure::Eraser;
use crate::audit::log::open_audit_db;
use crate::audit::proof;
use crate::audit::record::AuditRecord;
use crate::audit::search::indexer::Indexer;
use crate::audit::search::personal::PersonalData;
use crate::audit::search::query::SearchParams;
use crate::audit::search::service::SearchHandle;
use crate::audit::verify::{Finding, Problem, Report, instance_keys, verify};
use crate::audit::witness::{self, External};
use crate::evidence::rfc3339_ms;
use anyhow::Context;
use std::path::{Path, PathBuf};

/// Records `audit search` prints unless asked for more.
const DEFAULT_LIMIT: usize = 20;

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// Path to airlock.yaml.
    #[arg(long, short, env = "AIRLOCK_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Debug, clap::Subcommand)]
enum AuditCommand {
    /// Check the MAC chain, every checkpoint's Merkle root, signature and link, the
    /// anchors in the state database, that every missing payload or data key was erased
    /// or expired by a record saying so, and the log against the configured witness file:
    /// names the first bad record and what is wrong. Exits 1 when anything is.
    Verify {
        /// First sequence number to check (widened to the start of its checkpoint).
        #[arg(long)]
        from: Option<u64>,
        /// Last sequence number to check (widened to the end of its checkpoint).
        #[arg(long)]
        to: Option<u64>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Also hold the log against a checkpoint kept apart from it: a witness file (or
        /// a copy of one), or one checkpoint's hash as this command printed it. Fails if
        /// the log was cut below it or rewritten.
        #[arg(long, value_name = "FILE|HASH")]
        against: Option<String>,
    },
    /// Print the instance's Ed25519 public key (hex), which verifies checkpoints.
    PublicKey,
    /// Write one record with its Merkle inclusion proof, the signed checkpoint that
    /// covers it and the public key, for `verify-record` on another machine. The record
    /// must be under a checkpoint already.
    ExportRecord {
        /// The record's sequence number.
        seq: u64,
        /// The file to write (JSON).
        #[arg(long)]
        out: PathBuf,
    },
    /// Check a file from `export-record` offline, without any database or config: the
    /// record's place in its checkpoint, its inclusion proof up to the signed root, and
    /// the checkpoint's signature. Exits 1 when anything fails.
    VerifyRecord {
        /// The file `export-record` wrote.
        file: PathBuf,
        /// The instance public key (hex), obtained apart from the file (`airlock audit
        /// public-key` on the instance).
        #[arg(long)]
        public_key: Option<String>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Search the records: full text over their (redacted) payloads and `field:value`
    /// terms (tantivy query syntax), narrowed by the filters below.
    Search(Box<SearchArgs>),
    /// Rebuild the search index from the log (stop the gateway first).
    Reindex,
    /// Append synthetic records, for benchmarks: realistic payloads from ten tenants
    /// over the last days, sealed and chained like real ones. Prints the append rate.
    Seed {
        #[arg(long, default_value_t = 100_000)]
        records: u64,
        /// Spread the records over this many days, ending now.
        #[arg(long, default_value_t = 30)]
        days: u64,
        /// Do not fsync each batch (to measure what durability costs).
        #[arg(long)]
        no_fsync: bool,
        #[arg(long)]
        json: bool,
    },
    /// Erase personal data (GDPR Art. 17) and record the erasure, naming what was erased
    /// by a keyed hash; the chain still verifies. With --user: a person's payloads (their
    /// data keys destroyed). With --value: every stored payload holding a value — a name,
    /// an email, a card number — whoever sent it; the value is read from standard input,
    /// or typed at a prompt without echo, never from the command line (shell history).
    /// Their words leave the search index too.
    #[command(group = clap::ArgGroup::new("whom").required(true).args(["user", "value"]))]
    Erase {
        /// The tenant (name or id): the person's with --user (required); with --value, only
        /// its records (all tenants' without it).
        #[arg(long, required_unless_present = "value")]
        tenant: Option<String>,
        /// The person, as recorded (`x-user-id`, or the request's `user`).
        #[arg(long)]
        user: Option<String>,
        /// Erase by a value found in payloads (read from stdin or a prompt).
        #[arg(long)]
        value: bool,
        /// With --value: list the records that hold it, erase nothing.
        #[arg(long, requires = "value")]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
    /// List one session's records in order (requests that named it in `x-session-id`).
    Session {
        /// The session id.
        id: String,
        /// Print the records as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, clap::Args)]
struct SearchArgs {
    #[command(flatten)]
    params: SearchParams,
    /// Print the records as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: AuditArgs) -> anyhow::Result<bool> {
    // Runs on any machine: no config, no database.
    if let AuditCommand::VerifyRecord {
        file,
        public_key,
        json,
    } = &args.command
    {
        verify_record(file, public_key.as_deref(), *json)?;
        return Ok(true);
    }
    let state = super::open_state(args.config)?;
    match args.command {
        // Checked above, before any config or database is opened.
        AuditCommand::VerifyRecord { .. } => Ok(true),
        AuditCommand::ExportRecord { seq, out } => {
            export_record(&state, seq, &out)?;
            super::record_access(&state, "audit.export_record", &seq.to_string(), None);
            Ok(true)
        }
        AuditCommand::Search(search) => {
            run_search(&state, *search)?;
            Ok(true)
        }
        AuditCommand::Reindex => {
            reindex(&state)?;
            Ok(true)
        }
        AuditCommand::Seed {
            records,
            days,
            no_fsync,
            json,
        } => {
            let mut log =
                crate::audit::log::AuditLog::open_configured(&state.loaded, &state.instance_key)?;
            if no_fsync {
                log.without_fsync()?;
            }
            // Folded as the gateway folds it, so the rate includes that work.
            let _wal = crate::audit::wal::WalFolder::start(&state.loaded.audit_db_path())?;
            let mut progress = Progress::new("seeding");
            let seeded = crate::audit::seed::seed(&mut log, records, days, &mut |done, total| {
                progress.update(done, total)
            })?;
            progress.finish();
            if json {
                println!("{}", serde_json::to_string_pretty(&seeded)?);
            } else {
                row!(
                    "appended {} records in {:.1}s: {:.0} records/s{}",
                    seeded.records,
                    seeded.seconds,
                    seeded.per_second,
                    if no_fsync { " (no fsync)" } else { "" }
                );
            }
            Ok(true)
        }
        AuditCommand::Erase {
            tenant,
            user,
            value,
            dry_run,
            json,
        } => {
            let tenant = tenant.map(|t| tenant_id(&state, &t)).transpose()?;
            match (user, tenant.as_deref()) {
                (Some(user), Some(tenant)) => erase_user(&state, tenant, &user, json)?,
                _ if value => erase_value(&state, tenant.as_deref(), dry_run, json)?,
                _ => anyhow::bail!("pass --tenant with --user"),
            }
            Ok(true)
        }
        AuditCommand::PublicKey => {
            row!("{}", state.instance_key.public_key_hex());
            Ok(true)
        }
        AuditCommand::Session { id, json } => {
            let audit = open_audit_db(&state.loaded.audit_db_path())?;
            let records = crate::audit::log::session_records(&audit, &id)?;
            super::record_access(&state, "audit.session", &id, None);
            if json {
                println!("{}", serde_json::to_string_pretty(&records)?);
            } else {
                print_records(&records);
            }
            Ok(true)
        }
        AuditCommand::Verify {
            from,
            to,
            json,
            against,
        } => {
            let report = verify_instance(&state, from, to, against.as_deref())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print_report(&report);
            }
            Ok(report.ok())
        }
    }
}

/// Verifies the instance's log, and holds it against the configured witness file and
/// the checkpoint given with `--against`.
fn verify_instance(
    state: &super::StateAccess,
    from: Option<u64>,
    to: Option<u64>,
    against: Option<&str>,
) -> anyhow::Result<Report> {
    let external = against.map(External::parse).transpose()?;
    let audit = open_log_to_verify(&state.loaded.audit_db_path())?;
    let (key, public) = instance_keys(&state.instance_key);
    let mut report = verify(&audit, &state.conn, &key, &public, from, to)?;
    if let Some(path) = state.loaded.audit_witness_path() {
        if path.is_file() {
            hold_against(&audit, &public, &External::File(path), &mut report)?;
        } else if report.newest_checkpoint.is_some() {
            report.findings.push(Finding::new(
                Problem::WitnessUnreadable,
                0,
                format!(
                    "the witness file {} (audit.witness_file) is missing, though the log has \
                     checkpoints: it was removed (or the gateway has not run since it was \
                     configured)",
                    path.display()
                ),
            ));
        }
    }
    if let Some(external) = external {
        hold_against(&audit, &public, &external, &mut report)?;
    }
    Ok(report)
}

fn hold_against(
    audit: &rusqlite::Connection,
    public: &[u8],
    external: &External,
    report: &mut Report,
) -> anyhow::Result<()> {
    let (findings, witnessed) = witness::check(audit, public, external)?;
    report.findings.extend(findings);
    report.witnessed = report.witnessed.max(Some(witnessed));
    Ok(())
}

/// The log to verify, opened without creating or changing it: a removed `audit.db` is
/// verified as the empty log it now is (which the anchors then tell apart from a new one).
fn open_log_to_verify(path: &Path) -> anyhow::Result<rusqlite::Connection> {
    if path.exists() {
        return Ok(open_audit_db(path)?);
    }
    let empty = rusqlite::Connection::open_in_memory()?;
    for migration in crate::audit::log::AUDIT_MIGRATIONS {
        empty.execute_batch(migration)?;
    }
    Ok(empty)
}

fn print_report(report: &Report) {
    row!(
        "{} records ({}..{}), {} checkpoints",
        report.records,
        report.first_seq.unwrap_or(0),
        report.last_seq.unwrap_or(0),
        report.checkpoints
    );
    for finding in &report.findings {
        row!(
            "FAIL {:?} at {}: {}",
            finding.problem,
            finding.seq,
            finding.detail
        );
    }
    if !report.ok() {
        return;
    }
    match report.witnessed {
        Some(witnessed) => row!(
            "OK: the chain, every checkpoint, the anchors and the witness (to record {witnessed}) verify"
        ),
        None => row!("OK: the chain, every checkpoint and the anchors verify"),
    }
    if let Some(newest) = &report.newest_checkpoint {
        row!(
            "newest checkpoint {}..{}: {}",
            newest.first_seq,
            newest.last_seq,
            newest.hash
        );
        row!(
            "(kept off this machine, this hash lets `airlock audit verify --against HASH` \
             prove later that nothing up to record {} was cut or rewritten)",
            newest.last_seq
        );
    }
}

fn erase_user(
    state: &super::StateAccess,
    tenant: &str,
    user: &str,
    json: bool,
) -> anyhow::Result<()> {
    let erasure = Eraser::new(&state.loaded).erase_user(tenant, user, &super::cli_actor())?;
    // The running gateway's indexer drops the text within seconds; without one, do it now.
    let indexed_now = catch_up(state, false)?.is_some();
    if json {
        println!("{}", serde_json::to_string_pretty(&erasure)?);
        return Ok(());
    }
    row!(
        "erased the payloads of user `{user}`: {} data key(s) destroyed, stored payloads of {} record(s) deleted; recorded as #{} ({})",
        erasure.keys.len(),
        erasure.records,
        erasure.seq,
        erasure.target
    );
    say_index_follows(indexed_now);
    Ok(())
}

fn erase_value(
    state: &super::StateAccess,
    tenant: Option<&str>,
    dry_run: bool,
    json: bool,
) -> anyhow::Result<()> {
    let value = super::password::read_value("Value to erase: ")?;
    let erasure =
        Eraser::new(&state.loaded).erase_value(&value, tenant, &super::cli_actor(), dry_run)?;
    let indexed_now = !dry_run && catch_up(state, false)?.is_some();
    if json {
        println!("{}", serde_json::to_string_pretty(&erasure)?);
        return Ok(());
    }
    let seqs: Vec<String> = erasure.records.iter().map(u64::to_string).collect();
    match erasure.seq {
        None => row!(
            "{} record(s) hold the value (of {} examined): {}; nothing erased (dry run)",
            seqs.len(),
            erasure.examined,
            seqs.join(", ")
        ),
        Some(seq) => {
            row!(
                "erased the stored payloads of {} record(s) holding the value (of {} examined): {}; recorded as #{seq} ({})",
                seqs.len(),
                erasure.examined,
                seqs.join(", "),
                erasure.target
            );
            say_index_follows(indexed_now);
        }
    }
    Ok(())
}

fn say_index_follows(indexed_now: bool) {
    if !indexed_now {
        row!("the running gateway removes the words from the search index within seconds");
    }
}

fn export_record(state: &super::StateAccess, seq: u64, out: &Path) -> anyhow::Result<()> {
    let audit = open_audit_db(&state.loaded.audit_db_path())?;
    let public_key = state.instance_key.public_key_hex();
    let exported = match proof::export(&audit, seq, &public_key) {
        Ok(exported) => exported,
        Err(e @ proof::ExportError::NotCheckpointed { .. }) => {
            let config = &state.loaded.config.audit;
            anyhow::bail!(
                "{e} (a running gateway signs one within {}s, or once {} records are uncovered, and when it stops)",
                config.checkpoint_interval_secs.max(1),
                config.checkpoint_every_records.max(1)
            )
        }
        Err(e) => return Err(e.into()),
    };
    let mut text = serde_json::to_vec_pretty(&exported)?;
    text.push(b'\n');
    std::fs::write(out, text).with_context(|| format!("cannot write {}", out.display()))?;
    let checkpoint = &exported.checkpoint;
    row!(
        "wrote {}: record {seq}, leaf {} of checkpoint {}..{} ({} proof steps)",
        out.display(),
        exported.leaf_index,
        checkpoint.first_seq,
        checkpoint.last_seq,
        exported.proof.len()
    );
    row!("public key: {public_key}");
    Ok(())
}

/// Checks a record proof; an error (exit 1) naming the file when anything fails.
fn verify_record(file: &Path, public_key: Option<&str>, json: bool) -> anyhow::Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let checked = proof::check(&bytes, public_key);
    let ok = checked.report.ok();
    if json {
        println!("{}", serde_json::to_string_pretty(&checked)?);
    } else {
        for c in &checked.report.checks {
            row!("{} {}", if c.ok { "ok  " } else { "FAIL" }, c.what);
        }
        if let Some(record) = &checked.record {
            if ok {
                row!("record:");
            } else {
                row!("record, as the file states it (NOT verified):");
            }
            print_record_fields(record);
        }
        for warning in &checked.report.warnings {
            eprintln!("WARNING: {warning}");
        }
    }
    if !ok {
        anyhow::bail!("{} does not verify", file.display());
    }
    if !json {
        let whose = if public_key.is_some() {
            "the instance key given with --public-key"
        } else {
            "the key in the file (not checked against one obtained apart)"
        };
        let seq = checked.record.as_ref().map_or(0, |r| r.seq);
        row!("OK: record {seq} is covered by a checkpoint signed with {whose}");
    }
    Ok(())
}

/// The key fields of a record, one per line.
fn print_record_fields(r: &AuditRecord) {
    let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let fields = [
        ("seq", r.seq.to_string()),
        ("time", rfc3339_ms(r.ts_ms)),
        ("kind", r.kind.clone()),
        ("tenant", or_dash(&r.tenant_id)),
        ("model", or_dash(&r.model)),
        ("action", or_dash(&r.action)),
        ("decision", or_dash(&r.decision)),
        (
            "status",
            r.status.map_or_else(|| "-".into(), |s| s.to_string()),
        ),
        ("request id", or_dash(&r.request_id)),
        ("request sha256", or_dash(&r.request_payload_sha256)),
        ("response sha256", or_dash(&r.response_payload_sha256)),
    ];
    for (name, value) in fields {
        row!("  {name:<16} {value}");
    }
}

/// Brings the index up to date when no gateway is indexing (with a progress bar when
/// that takes a while); the indexer, if it could take the lock.
fn catch_up(state: &super::StateAccess, from_scratch: bool) -> anyhow::Result<Option<Indexer>> {
    let Ok(mut indexer) =
        Indexer::open(&state.loaded.audit_index_dir(), state.instance_key.seal_key)?
    else {
        return Ok(None);
    };
    let mut personal = PersonalData::configured(
        &state.loaded,
        crate::server::ner_settings(&state.loaded),
        &state.instance_key.seal_key,
    );
    if from_scratch {
        indexer.clear()?;
    }
    let audit = open_audit_db(&state.loaded.audit_db_path())?;
    let mut progress = Progress::new("indexing");
    let mut shown = false;
    indexer.catch_up(&audit, &mut personal, &mut |done, total| {
        if total >= 10_000 || from_scratch {
            shown = true;
            progress.update(done, total);
        }
    })?;
    if shown {
        progress.finish();
    }
    Ok(Some(indexer))
}

fn reindex(state: &super::StateAccess) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let Some(indexer) = catch_up(state, true)? else {
        anyhow::bail!(
            "another process (the running gateway, or a reindex) is indexing this log; stop it first"
        );
    };
    let records = indexer.watermark();
    let seconds = started.elapsed().as_secs_f64();
    row!(
        "indexed {records} records in {seconds:.1}s ({:.0}/s); the index takes {} bytes in {}",
        records as f64 / seconds.max(1e-3),
        indexer.partitions().size_on_disk(),
        state.loaded.audit_index_dir().display()
    );
    Ok(())
}

fn run_search(state: &super::StateAccess, args: SearchArgs) -> anyhow::Result<()> {
    // The gateway indexes as it runs; without one, catch up here.
    drop(catch_up(state, false)?);
    let mut params = args.params;
    // Records keep the ids of tenants since removed (or of other instances' seeds): an
    // unknown name is searched as an id, with a warning.
    let tenant = params.tenant.take().map(|tenant| {
        tenant_id(state, &tenant).unwrap_or_else(|_| {
            eprintln!("warning: no tenant `{tenant}` here; searching records with that tenant id");
            tenant
        })
    });
    let request = params
        .into_request(tenant, crate::store::now_unix_ms(), DEFAULT_LIMIT)
        .map_err(anyhow::Error::msg)?;
    let found = SearchHandle::open(&state.loaded, &state.instance_key.seal_key)?.run(&request)?;
    super::record_access(
        state,
        "audit.search",
        "audit-log",
        Some(&request.describe(found.total)),
    );
    if args.json {
        println!("{}", serde_json::to_string_pretty(&found)?);
    } else {
        print_records(&found.records);
        row!(
            "{} of {} matching records (from {})",
            found.records.len(),
            found.total,
            request.offset
        );
    }
    Ok(())
}

/// The id of the tenant named (by name or id).
fn tenant_id(state: &super::StateAccess, tenant: &str) -> anyhow::Result<String> {
    crate::tenancy::Directory::new(&state.conn)
        .find_tenant_named(tenant)?
        .ok_or_else(|| anyhow::anyhow!("no tenant `{tenant}`"))
}

fn print_records(records: &[AuditRecord]) {
    row!(
        "{:>8} {:<24} {:<16} {:<16} {:>6} {:<8} {:>8} {:>8} {:>10}",
        "SEQ",
        "TIME",
        "WHAT",
        "MODEL",
        "STATUS",
        "DECISION",
        "IN",
        "OUT",
        "LATENCY"
    );
    for r in records {
        let time = rfc3339_ms(r.ts_ms);
        let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        let num = |v: Option<u64>| v.map_or_else(|| "-".into(), |n| n.to_string());
        row!(
            "{:>8} {:<24} {:<16} {:<16} {:>6} {:<8} {:>8} {:>8} {:>8.1}ms",
            r.seq,
            time,
            or_dash(&r.endpoint.clone().or_else(|| r.action.clone())),
            or_dash(&r.model),
            r.status.map_or_else(|| "-".into(), |s| s.to_string()),
            or_dash(&r.decision),
            num(r.prompt_tokens),
            num(r.completion_tokens),
            r.latency_ms.unwrap_or(0.0),
        );
    }
}
