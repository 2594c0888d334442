//! `airlock policy dry-run`: a candidate policy evaluated on recorded traffic (the audit
//! log's requests, payloads opened on the box) beside the active one, and how decisions
//! would change.

use super::compile::Policy;
use super::eval::{Verdict, evaluate};
use super::facts::{Facts, Phase, request_text};
use super::source::EndpointKind;
use crate::audit::keys::open_payload;
use crate::audit::log::read_data_key;
use crate::audit::record::{AuditRecord, kind};
use crate::store::StoreError;
use rusqlite::Connection;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// Sample request ids kept per change.
const SAMPLES: usize = 5;

/// Requests whose decision changes one way (e.g. allow → deny).
#[derive(Debug, Default, Serialize)]
pub struct Change {
    pub from: &'static str,
    pub to: &'static str,
    pub requests: u64,
    /// The candidate's deciding rule, with how many of these requests it decided.
    pub rules: BTreeMap<String, u64>,
    /// A few of the requests, by request id.
    pub samples: Vec<String>,
}

/// What a dry run found.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// Requests evaluated.
    pub requests: u64,
    /// Of which the payload could not be read (erased, expired, not kept): content rules
    /// saw no text for them.
    pub without_payload: u64,
    pub unchanged: u64,
    pub changes: Vec<Change>,
    /// Rules of the candidate whose `when:` failed, with how often.
    pub errors: BTreeMap<String, u64>,
    /// Candidate rules that matched at least once, with how often.
    pub matched: BTreeMap<String, u64>,
}

/// Evaluates `candidate` and `active` (none: everything allowed) on the recorded LLM
/// requests since `since_ms`, newest first, at most `limit`.
pub fn dry_run(
    audit: &Connection,
    seal_key: &[u8; 32],
    candidate: &Policy,
    active: Option<&Policy>,
    since_ms: i64,
    limit: u64,
) -> Result<Report, StoreError> {
    let mut stmt = audit.prepare(
        "SELECT body, request_payload FROM records
         WHERE kind = ?1 AND ts_ms >= ?2 ORDER BY seq DESC LIMIT ?3",
    )?;
    let mut rows = stmt.query(rusqlite::params![
        kind::LLM_REQUEST,
        since_ms,
        i64::try_from(limit).unwrap_or(i64::MAX)
    ])?;
    let mut report = Report::default();
    let mut keys: HashMap<String, Option<[u8; 32]>> = HashMap::new();
    let mut changes: BTreeMap<(Verdict, Verdict), Change> = BTreeMap::new();
    while let Some(row) = rows.next()? {
        let body: String = row.get(0)?;
        let Ok(record) = serde_json::from_str::<AuditRecord>(&body) else {
            continue;
        };
        let sealed: Option<Vec<u8>> = row.get(1)?;
        let content = match (&record.payload_key, sealed) {
            (Some(key_id), Some(sealed)) => {
                if !keys.contains_key(key_id) {
                    keys.insert(key_id.clone(), read_data_key(audit, seal_key, key_id)?);
                }
                keys.get(key_id)
                    .and_then(|k| k.as_ref())
                    .and_then(|k| open_payload(k, key_id, &sealed))
                    .and_then(|plain| serde_json::from_slice(&plain).ok())
                    .map(|body| request_text(&body))
            }
            _ => None,
        };
        report.requests += 1;
        if content.is_none() {
            report.without_payload += 1;
        }
        let facts = facts_of(&record, content.unwrap_or_default());
        let before = active.map_or(Verdict::Allow, |p| evaluate(p, &facts).verdict);
        let after = evaluate(candidate, &facts);
        for rule in &after.matched {
            *report.matched.entry(rule.to_string()).or_default() += 1;
        }
        for (rule, _) in &after.errors {
            *report.errors.entry(rule.to_string()).or_default() += 1;
        }
        if before == after.verdict {
            report.unchanged += 1;
            continue;
        }
        let change = changes
            .entry((before, after.verdict))
            .or_insert_with(|| Change {
                from: before.name(),
                to: after.verdict.name(),
                ..Change::default()
            });
        change.requests += 1;
        let rule = after.decided_by.as_deref().unwrap_or("(default)");
        *change.rules.entry(rule.to_string()).or_default() += 1;
        if change.samples.len() < SAMPLES
            && let Some(id) = &record.request_id
        {
            change.samples.push(id.clone());
        }
    }
    report.changes = changes.into_values().collect();
    Ok(report)
}

/// The facts of a recorded request (headers are not recorded: header conditions do not
/// hold in a dry run).
fn facts_of(record: &AuditRecord, content: String) -> Facts {
    Facts {
        phase: Phase::Request,
        tenant: record.tenant_id.clone().unwrap_or_default(),
        team: record.team_id.clone(),
        user: record.user_id.clone(),
        key: record.key_id.clone().unwrap_or_default(),
        endpoint: EndpointKind::Llm,
        model: record.model.clone().unwrap_or_default(),
        provider: record.upstream.clone(),
        data_classes: record.data_classes.clone(),
        prompt_tokens: record
            .prompt_tokens
            .unwrap_or_else(|| (content.len() as u64).div_ceil(4)),
        completion_tokens: record.completion_tokens.unwrap_or(0),
        cost_usd: record.cost_usd,
        time_ms: record.ts_ms,
        headers: BTreeMap::new(),
        content,
        mcp: None,
    }
}
