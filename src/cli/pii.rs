//! `airlock pii`: find personal data in text, redact or tokenise it, and score the finders
//! against an annotated JSONL file.

use crate::pii::eval::{Evaluation, Example, Report, Scores};
use crate::pii::ner::{NerSettings, PoolSize, RuntimeSource};
use crate::pii::scan::{NerStatus, Scanner};
use crate::pii::{ActionPlan, PiiAction, Vault, VaultConfig};
use anyhow::{Context, bail};
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, clap::Args)]
pub struct PiiArgs {
    #[command(subcommand)]
    command: PiiCommand,
    #[command(flatten)]
    finders: FinderArgs,
}

/// Which finders run.
#[derive(Debug, clap::Args)]
struct FinderArgs {
    /// Recognizers only: do not run the NER model.
    #[arg(long, global = true)]
    no_ner: bool,
    /// A model directory (model.onnx, tokenizer.json, config.json) instead of the embedded one.
    #[arg(long, global = true, value_name = "DIR")]
    ner_model: Option<PathBuf>,
    /// An ONNX Runtime library instead of the embedded one.
    #[arg(long, global = true, value_name = "FILE")]
    onnxruntime_lib: Option<PathBuf>,
    /// Inference threads.
    #[arg(long, global = true, default_value_t = 1)]
    ner_threads: usize,
}

#[derive(Debug, clap::Subcommand)]
enum PiiCommand {
    /// Read text on stdin and print what personal data it holds (offsets in characters).
    Detect {
        #[arg(long)]
        json: bool,
    },
    /// Read text on stdin and print it with personal data masked or tokenised.
    Redact {
        #[arg(long, value_enum, default_value = "mask")]
        mode: RedactMode,
    },
    /// Measure the recognizers' throughput and the NER model's latency on one thread.
    Bench {
        /// Timed runs per input length.
        #[arg(long, default_value_t = 200)]
        runs: usize,
        #[arg(long)]
        json: bool,
    },
    /// Score the finders on a JSONL file of annotated texts: precision, recall and F1 per
    /// class and overall, for exact spans and for overlapping spans.
    Eval {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum RedactMode {
    Mask,
    #[value(alias = "tokenize")]
    Tokenise,
    Hash,
}

pub fn run(args: PiiArgs) -> anyhow::Result<()> {
    let finders = &args.finders;
    match args.command {
        PiiCommand::Bench { runs, json } => bench(finders, runs, json),
        PiiCommand::Detect { json } => {
            let text = stdin()?;
            with_scanner(finders, |s| async move { detect(&s, &text, json).await })
        }
        PiiCommand::Redact { mode } => {
            let text = stdin()?;
            with_scanner(finders, |s| async move { redact(&s, &text, mode).await })
        }
        PiiCommand::Eval { file, json } => {
            with_scanner(finders, |s| async move { eval(s, &file, json).await })
        }
    }
}

/// Runs `work` with the finders started, on a runtime of its own.
fn with_scanner<Work, Done>(finders: &FinderArgs, work: Work) -> anyhow::Result<()>
where
    Work: FnOnce(Arc<Scanner>) -> Done,
    Done: std::future::Future<Output = anyhow::Result<()>>,
{
    let scanner = Arc::new(scanner(finders)?);
    super::runtime()?.block_on(work(scanner))
}

const TENANT: &str = "cli";

fn ner_settings(finders: &FinderArgs) -> NerSettings {
    NerSettings {
        runtime: RuntimeSource::from_library(finders.onnxruntime_lib.clone()),
        model_dir: finders.ner_model.clone(),
        size: PoolSize {
            threads: finders.ner_threads.max(1),
            queue: 1024,
            max_batch: 8,
        },
    }
}

fn scanner(finders: &FinderArgs) -> anyhow::Result<Scanner> {
    let settings = ner_settings(finders);
    let scanner = Scanner::start((!finders.no_ner).then_some(&settings), 10_000);
    if let NerStatus::Degraded(why) = &scanner.ner_status {
        bail!("{why} (use --no-ner for recognizers only)");
    }
    Ok(scanner)
}

fn stdin() -> anyhow::Result<String> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .context("reading stdin (it must be UTF-8 text)")?;
    Ok(text)
}

async fn detect(scanner: &Scanner, text: &str, json: bool) -> anyhow::Result<()> {
    let scan = scanner.scan(TENANT, text).await;
    let findings: Vec<serde_json::Value> = scan
        .findings
        .iter()
        .map(|f| {
            serde_json::json!({
                "class": f.class,
                "start": text[..f.start].chars().count(),
                "end": text[..f.end].chars().count(),
                "score": (f.score * 100.0).round() / 100.0,
                "recognizer": f.recognizer,
                "text": f.text(text),
            })
        })
        .collect();
    if json {
        println!("{}", serde_json::json!({ "findings": findings }));
        return Ok(());
    }
    if findings.is_empty() {
        println!("no personal data found");
    }
    for f in &findings {
        println!(
            "{:<16} {:>6}..{:<6} {:.2}  {:<20} {}",
            f["class"].as_str().unwrap_or_default(),
            f["start"],
            f["end"],
            f["score"].as_f64().unwrap_or_default(),
            f["recognizer"].as_str().unwrap_or_default(),
            f["text"]
        );
    }
    Ok(())
}

async fn redact(scanner: &Scanner, text: &str, mode: RedactMode) -> anyhow::Result<()> {
    let scan = scanner.scan(TENANT, text).await;
    let action = match mode {
        RedactMode::Mask => PiiAction::Mask,
        RedactMode::Tokenise => PiiAction::Tokenise,
        RedactMode::Hash => PiiAction::Hash,
    };
    // A throwaway key: placeholders and hashes mean nothing beyond this run.
    let key = crate::store::instance_key::InstanceKey::generate()?;
    let vault = Vault::in_memory(&key, VaultConfig::default());
    let session = vault.ephemeral(TENANT);
    let done = crate::pii::apply(text, &scan.findings, &ActionPlan::new(action), &session);
    print!("{}", done.text);
    for (class, action, count) in done.counts.iter() {
        eprintln!("{class}: {count} {}", action.as_str());
    }
    Ok(())
}

fn bench(finders: &FinderArgs, runs: usize, json: bool) -> anyhow::Result<()> {
    let settings = ner_settings(finders);
    let report = crate::pii::bench::run((!finders.no_ner).then_some(&settings), runs)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    for t in &report.recognizers {
        println!(
            "recognizers, {}: {:.1} MB/s ({} findings in {} bytes)",
            t.text, t.mb_per_s, t.findings, t.bytes
        );
    }
    println!("NER: {}", report.model);
    for l in &report.ner {
        println!(
            "  {:>4} tokens: p50 {:.2} ms, p99 {:.2} ms ({} runs)",
            l.tokens, l.p50_ms, l.p99_ms, l.runs
        );
    }
    Ok(())
}

async fn eval(scanner: Arc<Scanner>, file: &PathBuf, json: bool) -> anyhow::Result<()> {
    let content =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let mut examples = Vec::new();
    for (number, line) in content.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let example: Example = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not an annotated text", file.display(), number + 1))?;
        examples.push(example);
    }
    let started = std::time::Instant::now();
    // Several texts in flight at once, so the model's threads batch them.
    let mut scans = tokio::task::JoinSet::new();
    let mut evaluation = Evaluation::default();
    let mut pending = examples.into_iter().enumerate();
    let mut results = Vec::new();
    loop {
        while scans.len() < 16 {
            let Some((index, example)) = pending.next() else {
                break;
            };
            let scanner = Arc::clone(&scanner);
            scans.spawn(async move {
                let scan = scanner.scan(TENANT, &example.text).await;
                (index, example, scan)
            });
        }
        match scans.join_next().await {
            Some(done) => results.push(done?),
            None => break,
        }
    }
    results.sort_by_key(|(index, _, _)| *index);
    for (_, example, scan) in &results {
        if let Some(missing) = &scan.ner_missing {
            bail!("the NER model did not run: {missing}");
        }
        evaluation.add(example, &scan.findings);
    }
    let report = evaluation.report();
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    eprintln!(
        "{} texts in {:.1} s",
        report.texts,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn print_report(report: &Report) {
    println!(
        "{} texts, {} annotated entities",
        report.texts, report.entities
    );
    for (name, scores) in [
        ("exact span", &report.exact),
        ("overlapping span", &report.overlap),
    ] {
        println!("\n{name}:");
        print_scores(scores);
    }
}

fn print_scores(scores: &Scores) {
    println!(
        "  {:<16} {:>9} {:>7} {:>7} {:>6} {:>6} {:>6}",
        "class", "precision", "recall", "f1", "tp", "fp", "fn"
    );
    let rows = scores.per_class.iter().map(|(class, s)| (*class, s));
    for (class, s) in rows.chain([("micro average", &scores.micro)]) {
        println!(
            "  {:<16} {:>9.3} {:>7.3} {:>7.3} {:>6} {:>6} {:>6}",
            class,
            s.precision,
            s.recall,
            s.f1,
            s.true_positives,
            s.false_positives,
            s.false_negatives
        );
    }
}
