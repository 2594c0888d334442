//! Searching the index: a query string (full text, or `field:value`, ranges, phrases;
//! personal values matched by their keyed hashes) narrowed by filters — the tenant first,
//! which a caller's own query cannot widen — and the matching records' sequence numbers,
//! sorted and paged across the day partitions the time range touches.

use super::partitions::{Partitions, index_error};
use super::rewrite::rewrite;
use crate::audit::values::ValueKeys;
use crate::store::StoreError;
use std::ops::Bound;
use tantivy::collector::{Count, DocSetCollector, TopDocs};
use tantivy::query::{AllQuery, BooleanQuery, Occur, Query, QueryParser, RangeQuery, TermQuery};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{DocAddress, Order, Searcher, Term};

/// Deepest result reachable by paging (offset + limit).
pub const MAX_WINDOW: usize = 10_000;
/// Longest query string, in characters.
const MAX_QUERY_CHARS: usize = 2048;
/// Deepest nesting of parentheses in a query (the parser recurses on each level; a
/// hostile query must not exhaust the stack).
const MAX_QUERY_DEPTH: usize = 16;

/// What to sort results by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum SortBy {
    /// Log order (sequence number), which is time order.
    #[default]
    Time,
    Cost,
    Latency,
    Tokens,
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Desc,
    Asc,
}

/// A search as a caller writes it — the command line's flags, the admin API's query
/// parameters — before times are resolved and the tenant is scoped.
#[derive(Debug, Default, clap::Args, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    /// Words to find (all of them), `"a phrase"`, `field:value` (model, decision, user,
    /// kind, status, …), `status:[500 TO 599]`; empty lists everything.
    #[arg(default_value = "")]
    #[serde(rename = "q", default)]
    pub query: String,
    /// Only this tenant's records.
    #[arg(long)]
    pub tenant: Option<String>,
    /// From this time: RFC 3339, a date (YYYY-MM-DD, UTC) or an age (24h, 7d).
    #[arg(long)]
    pub since: Option<String>,
    /// Up to this time (same forms as --since).
    #[arg(long)]
    pub until: Option<String>,
    /// Record kind: llm.request, admin.action, audit.erase.
    #[arg(long)]
    pub kind: Option<String>,
    #[arg(long)]
    pub model: Option<String>,
    /// allow or deny.
    #[arg(long)]
    pub decision: Option<String>,
    /// The natural person, as recorded.
    #[arg(long)]
    pub user: Option<String>,
    #[arg(long)]
    pub session: Option<String>,
    /// A data class found in the payloads (EMAIL, …).
    #[arg(long)]
    pub data_class: Option<String>,
    /// HTTP status.
    #[arg(long)]
    pub status: Option<u16>,
    /// time (log order), cost, latency or tokens.
    #[arg(long, value_enum)]
    pub sort: Option<SortBy>,
    /// desc (the default: newest, largest first) or asc.
    #[arg(long, value_enum)]
    pub order: Option<Direction>,
    #[arg(long)]
    pub limit: Option<usize>,
    #[arg(long)]
    pub offset: Option<usize>,
}

impl SearchParams {
    /// The search to run, confined to `tenant` (a tenant id, already checked), with
    /// `default_limit` results unless asked otherwise.
    pub fn into_request(
        self,
        tenant: Option<String>,
        now_ms: i64,
        default_limit: usize,
    ) -> Result<SearchRequest, String> {
        let time = |t: Option<String>| t.map(|t| parse_time(&t, now_ms)).transpose();
        Ok(SearchRequest {
            query: self.query,
            tenant,
            since_ms: time(self.since)?,
            until_ms: time(self.until)?,
            kind: self.kind,
            model: self.model,
            decision: self.decision,
            user: self.user,
            session: self.session,
            data_class: self.data_class,
            status: self.status,
            sort: self.sort.unwrap_or_default(),
            ascending: self.order == Some(Direction::Asc),
            limit: self.limit.unwrap_or(default_limit),
            offset: self.offset.unwrap_or(0),
        })
    }
}

/// A search: the query and its filters, sort and page.
#[derive(Debug, Clone, Default)]
pub struct SearchRequest {
    pub query: String,
    /// Only this tenant's records (by tenant id).
    pub tenant: Option<String>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub kind: Option<String>,
    pub model: Option<String>,
    pub decision: Option<String>,
    pub user: Option<String>,
    pub session: Option<String>,
    pub data_class: Option<String>,
    pub status: Option<u16>,
    pub sort: SortBy,
    pub ascending: bool,
    pub limit: usize,
    pub offset: usize,
}

impl SearchRequest {
    /// What an audit record of this search says: which filters it used and how much it
    /// found — never the words or values searched for, which may name a person and
    /// would otherwise sit unencrypted, and unerasable, in the chain.
    pub fn describe(&self, total: u64) -> String {
        let used: Vec<&str> = [
            ("text", !self.query.trim().is_empty()),
            ("since", self.since_ms.is_some()),
            ("until", self.until_ms.is_some()),
            ("kind", self.kind.is_some()),
            ("model", self.model.is_some()),
            ("decision", self.decision.is_some()),
            ("user", self.user.is_some()),
            ("session", self.session.is_some()),
            ("data_class", self.data_class.is_some()),
            ("status", self.status.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, on)| on.then_some(name))
        .collect();
        format!(
            "filters: {}; tenant: {}; {total} matches",
            if used.is_empty() {
                "none".to_string()
            } else {
                used.join(", ")
            },
            self.tenant.as_deref().unwrap_or("all")
        )
    }
}

/// One page of results.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchPage {
    /// Every match, across pages.
    pub total: u64,
    /// This page's records, in order.
    pub seqs: Vec<u64>,
}

/// Why a search could not run.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A time as RFC 3339 (`2026-11-26T10:00:00Z`), a date (`2026-11-26`: its start, UTC),
/// or an age (`15m`, `24h`, `7d`: that long before `now_ms`); in ms since the epoch.
pub fn parse_time(text: &str, now_ms: i64) -> Result<i64, String> {
    let text = text.trim();
    let stamp = if text.len() == 10 {
        format!("{text}T00:00:00Z")
    } else {
        text.to_string()
    };
    if let Ok(at) = humantime::parse_rfc3339_weak(&stamp) {
        return at
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .map_err(|_| format!("`{text}` is before 1970"));
    }
    humantime::parse_duration(text)
        .map(|ago| now_ms - ago.as_millis() as i64)
        .map_err(|_| {
            format!(
                "`{text}` is not a time: give RFC 3339, a date (YYYY-MM-DD) or an age (24h, 7d)"
            )
        })
}

/// Runs `request` over the partitions its time range touches; values in its query are
/// hashed with `keys`.
pub fn search(
    parts: &mut Partitions,
    request: &SearchRequest,
    keys: &ValueKeys,
) -> Result<SearchPage, SearchError> {
    let window = request.offset.saturating_add(request.limit);
    if window > MAX_WINDOW {
        return Err(SearchError::BadRequest(format!(
            "offset + limit may be at most {MAX_WINDOW}; narrow the search instead"
        )));
    }
    let names = parts.overlapping(request.since_ms, request.until_ms)?;
    let Some(first) = names.first() else {
        return Ok(SearchPage::default());
    };
    let query = build_query(parts, first, request, keys)?;
    let mut total = 0u64;
    // (sort key, seq) of each partition's best `window` matches.
    let mut hits: Vec<(f64, u64)> = Vec::new();
    for name in &names {
        let searcher = parts.get(name)?.reader.searcher();
        total += searcher.search(&query, &Count).map_err(index_error)? as u64;
        if window > 0 {
            hits.extend(top(&searcher, &query, request, window)?);
        }
    }
    let sign = if request.ascending { 1.0 } else { -1.0 };
    hits.sort_by(|a, b| {
        (sign * a.0).total_cmp(&(sign * b.0)).then_with(|| {
            if request.ascending {
                a.1.cmp(&b.1)
            } else {
                b.1.cmp(&a.1)
            }
        })
    });
    let seqs = hits
        .into_iter()
        .skip(request.offset)
        .take(request.limit)
        .map(|(_, seq)| seq)
        .collect();
    Ok(SearchPage { total, seqs })
}

/// The sequence numbers of every record `query` matches, in `tenant` when given, in
/// every partition.
pub fn all_matching(
    parts: &mut Partitions,
    query: Box<dyn Query>,
    tenant: Option<&str>,
) -> Result<Vec<u64>, StoreError> {
    let query: Box<dyn Query> = match tenant {
        Some(tenant) => Box::new(BooleanQuery::intersection(vec![
            query,
            Box::new(TermQuery::new(
                Term::from_field_text(parts.fields.tenant, tenant),
                IndexRecordOption::Basic,
            )),
        ])),
        None => query,
    };
    let mut seqs = Vec::new();
    for name in parts.names()? {
        let searcher = parts.get(&name)?.reader.searcher();
        seqs.extend(matching_seqs(&searcher, query.as_ref())?);
    }
    seqs.sort_unstable();
    Ok(seqs)
}

/// The sequence numbers of the records `query` matches in one partition, unordered.
pub fn matching_seqs(searcher: &Searcher, query: &dyn Query) -> Result<Vec<u64>, StoreError> {
    let hits = searcher
        .search(query, &DocSetCollector)
        .map_err(index_error)?;
    let mut seqs = Vec::with_capacity(hits.len());
    for hit in hits {
        let column = searcher
            .segment_reader(hit.segment_ord)
            .fast_fields()
            .u64("seq")
            .map_err(index_error)?;
        seqs.extend(column.first(hit.doc_id));
    }
    Ok(seqs)
}

/// One partition's best `window` matches as (sort key, seq).
fn top(
    searcher: &Searcher,
    query: &dyn Query,
    request: &SearchRequest,
    window: usize,
) -> Result<Vec<(f64, u64)>, SearchError> {
    let order = if request.ascending {
        Order::Asc
    } else {
        Order::Desc
    };
    let docs = TopDocs::with_limit(window);
    let keyed: Vec<(f64, DocAddress)> = match request.sort {
        SortBy::Time => {
            let found = searcher
                .search(query, &docs.order_by_fast_field::<u64>("seq", order))
                .map_err(index_error)?;
            return Ok(found
                .into_iter()
                .filter_map(|(seq, _)| seq.map(|s| (s as f64, s)))
                .collect());
        }
        SortBy::Tokens => searcher
            .search(query, &docs.order_by_fast_field::<u64>("tokens", order))
            .map_err(index_error)?
            .into_iter()
            .map(|(v, a)| (v.unwrap_or(0) as f64, a))
            .collect(),
        SortBy::Cost | SortBy::Latency => {
            let field = if request.sort == SortBy::Cost {
                "cost"
            } else {
                "latency"
            };
            searcher
                .search(query, &docs.order_by_fast_field::<f64>(field, order))
                .map_err(index_error)?
                .into_iter()
                .map(|(v, a)| (v.unwrap_or(0.0), a))
                .collect()
        }
    };
    let mut out = Vec::with_capacity(keyed.len());
    for (key, address) in keyed {
        let column = searcher
            .segment_reader(address.segment_ord)
            .fast_fields()
            .u64("seq")
            .map_err(index_error)?;
        out.extend(column.first(address.doc_id).map(|seq| (key, seq)));
    }
    Ok(out)
}

/// Refuses queries too long or nested too deeply to parse safely.
fn check_shape(text: &str) -> Result<(), SearchError> {
    if text.chars().count() > MAX_QUERY_CHARS {
        return Err(SearchError::BadRequest(format!(
            "the query is longer than {MAX_QUERY_CHARS} characters"
        )));
    }
    let (mut depth, mut deepest, mut quoted) = (0usize, 0usize, false);
    for c in text.chars() {
        match c {
            '"' => quoted = !quoted,
            '(' if !quoted => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            ')' if !quoted => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    if deepest > MAX_QUERY_DEPTH {
        return Err(SearchError::BadRequest(format!(
            "the query nests parentheses {deepest} deep; at most {MAX_QUERY_DEPTH}"
        )));
    }
    Ok(())
}

/// The query string and every filter, all required.
fn build_query(
    parts: &mut Partitions,
    any_partition: &str,
    request: &SearchRequest,
    keys: &ValueKeys,
) -> Result<Box<dyn Query>, SearchError> {
    let f = parts.fields;
    let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
    let text = request.query.trim();
    check_shape(text)?;
    if !text.is_empty() {
        let index = &parts.get(any_partition)?.index;
        let mut parser = QueryParser::for_index(index, vec![f.text]);
        parser.set_conjunction_by_default();
        let parsed = parser
            .build_query_from_user_input_ast(rewrite(text, keys)?)
            .map_err(|e| SearchError::BadRequest(format!("the query does not parse: {e}")))?;
        clauses.push((Occur::Must, parsed));
    }
    let terms: [(Field, &Option<String>); 7] = [
        (f.tenant, &request.tenant),
        (f.kind, &request.kind),
        (f.model, &request.model),
        (f.decision, &request.decision),
        (f.user, &request.user),
        (f.session, &request.session),
        (f.data_class, &request.data_class),
    ];
    for (field, value) in terms {
        if let Some(value) = value {
            let term = Term::from_field_text(field, value);
            clauses.push((
                Occur::Must,
                Box::new(TermQuery::new(term, IndexRecordOption::Basic)),
            ));
        }
    }
    if let Some(status) = request.status {
        let term = Term::from_field_u64(f.status, u64::from(status));
        clauses.push((
            Occur::Must,
            Box::new(TermQuery::new(term, IndexRecordOption::Basic)),
        ));
    }
    if request.since_ms.is_some() || request.until_ms.is_some() {
        let bound = |ms: Option<i64>| {
            ms.map_or(Bound::Unbounded, |ms| {
                Bound::Included(Term::from_field_i64(f.ts_ms, ms))
            })
        };
        let (lower, upper) = (bound(request.since_ms), bound(request.until_ms));
        // A range needs one bounded side to name its field.
        let (lower, upper) = match (lower, upper) {
            (Bound::Unbounded, upper) => (
                Bound::Included(Term::from_field_i64(f.ts_ms, i64::MIN)),
                upper,
            ),
            pair => pair,
        };
        clauses.push((Occur::Must, Box::new(RangeQuery::new(lower, upper))));
    }
    Ok(match clauses.len() {
        0 => Box::new(AllQuery),
        _ => Box::new(BooleanQuery::new(clauses)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_stamps_dates_or_ages() {
        let now = 1_800_000_000_000;
        assert_eq!(parse_time("1970-01-02", now).unwrap(), 86_400_000);
        assert_eq!(parse_time("1970-01-01T00:00:01Z", now).unwrap(), 1000);
        assert_eq!(parse_time("1970-01-01T00:00:01.5Z", now).unwrap(), 1500);
        assert_eq!(parse_time("2h", now).unwrap(), now - 7_200_000);
        assert_eq!(parse_time("7d", now).unwrap(), now - 7 * 86_400_000);
        assert!(parse_time("yesterday-ish", now).is_err());
    }

    #[test]
    fn hostile_queries_are_refused_before_parsing() {
        assert!(check_shape(&format!("{}x{}", "(".repeat(17), ")".repeat(17))).is_err());
        assert!(check_shape(&"x ".repeat(1500)).is_err());
        assert!(check_shape(&format!("{}x{}", "(".repeat(16), ")".repeat(16))).is_ok());
        assert!(
            check_shape(r#""((((((((((((((((((" merger"#).is_ok(),
            "quoted"
        );
    }
}
