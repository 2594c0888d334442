//! Chargeback: what each tenant, team, user, key or model spent in a time range, summed
//! from the request log's integer costs, so the rows add up exactly to the total.

use crate::store::StoreError;
use crate::store::request_log;
use rusqlite::Connection;
use std::collections::HashMap;
use std::path::Path;

/// What the spend is grouped by.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    Tenant,
    Team,
    User,
    Key,
    Model,
}

impl GroupBy {
    /// The request log column grouped on.
    fn column(self) -> &'static str {
        match self {
            GroupBy::Tenant => "tenant_id",
            GroupBy::Team => "team_id",
            GroupBy::User => "user_id",
            GroupBy::Key => "key_id",
            GroupBy::Model => "model",
        }
    }
}

/// Which requests: `[from_ms, to_ms)`, optionally of one tenant.
#[derive(Debug, Clone)]
pub struct ChargebackQuery {
    pub from_ms: i64,
    pub to_ms: i64,
    pub by: GroupBy,
    pub tenant_id: Option<String>,
}

/// One group's spend.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Spend {
    /// The group's id (tenant, team or key id; the user or model name); none for requests
    /// without one (a team report's keys that belong to no team).
    pub id: Option<String>,
    /// The group's name, where it has one apart from its id.
    pub name: Option<String>,
    pub requests: u64,
    /// Requests with usage but no price for their model (counted at zero cost).
    pub unpriced_requests: u64,
    pub prompt_tokens: u64,
    pub cached_tokens: u64,
    pub completion_tokens: u64,
    pub cost_nano_usd: i64,
    /// `cost_nano_usd` as a decimal dollar amount (exact).
    pub cost_usd: String,
}

/// A chargeback report: its rows (by cost, highest first) and their total.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Chargeback {
    pub from_ms: i64,
    pub to_ms: i64,
    pub by: GroupBy,
    pub rows: Vec<Spend>,
    pub total: Spend,
}

/// Sums the request log at `request_log_path` by `query.by`, naming groups from the state
/// database.
pub fn chargeback(
    request_log_path: &Path,
    state: &Connection,
    query: &ChargebackQuery,
) -> Result<Chargeback, StoreError> {
    if query.from_ms >= query.to_ms {
        return Err(StoreError::Invalid(
            "the report's start must be before its end".into(),
        ));
    }
    let log = request_log::open(request_log_path)?;
    let sql = format!(
        "SELECT {column}, COUNT(*), SUM(cost_nano_usd IS NULL AND prompt_tokens IS NOT NULL),
                COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(cached_tokens), 0),
                COALESCE(SUM(completion_tokens), 0), COALESCE(SUM(cost_nano_usd), 0)
         FROM request_log
         WHERE ts_ms >= ?1 AND ts_ms < ?2 AND (?3 IS NULL OR tenant_id = ?3)
         GROUP BY {column}",
        column = query.by.column()
    );
    let mut stmt = log.prepare(&sql)?;
    let count = |v: i64| u64::try_from(v).unwrap_or(0);
    let rows = stmt.query_map(
        rusqlite::params![query.from_ms, query.to_ms, query.tenant_id],
        |r| {
            Ok(Spend {
                id: r.get(0)?,
                requests: count(r.get(1)?),
                unpriced_requests: count(r.get::<_, Option<i64>>(2)?.unwrap_or(0)),
                prompt_tokens: count(r.get(3)?),
                cached_tokens: count(r.get(4)?),
                completion_tokens: count(r.get(5)?),
                cost_nano_usd: r.get(6)?,
                ..Spend::default()
            })
        },
    )?;
    let mut rows: Vec<Spend> = rows.collect::<Result<_, _>>()?;
    let names = names(state, query.by)?;
    let mut total = Spend {
        id: None,
        name: Some("total".into()),
        ..Spend::default()
    };
    for row in &mut rows {
        row.name = row.id.as_ref().and_then(|id| names.get(id)).cloned();
        row.cost_usd = super::usd(row.cost_nano_usd);
        total.requests += row.requests;
        total.unpriced_requests += row.unpriced_requests;
        total.prompt_tokens += row.prompt_tokens;
        total.cached_tokens += row.cached_tokens;
        total.completion_tokens += row.completion_tokens;
        total.cost_nano_usd = total.cost_nano_usd.saturating_add(row.cost_nano_usd);
    }
    total.cost_usd = super::usd(total.cost_nano_usd);
    rows.sort_by(|a, b| {
        b.cost_nano_usd
            .cmp(&a.cost_nano_usd)
            .then_with(|| a.id.cmp(&b.id))
    });
    Ok(Chargeback {
        from_ms: query.from_ms,
        to_ms: query.to_ms,
        by: query.by,
        rows,
        total,
    })
}

/// Names of the groups that have them apart from their ids.
fn names(state: &Connection, by: GroupBy) -> Result<HashMap<String, String>, StoreError> {
    let sql = match by {
        GroupBy::Tenant => "SELECT id, name FROM tenants",
        GroupBy::Team => "SELECT id, name FROM teams",
        GroupBy::Key => "SELECT id, name FROM virtual_keys WHERE name != ''",
        GroupBy::User | GroupBy::Model => return Ok(HashMap::new()),
    };
    let mut stmt = state.prepare(sql)?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

impl Chargeback {
    /// The rows as CSV (no total row: sum the column, or read `total` from the JSON).
    /// Text cells that a spreadsheet would run as a formula are prefixed with `'`.
    pub fn to_csv(&self) -> String {
        let mut out = String::from(
            "id,name,requests,unpriced_requests,prompt_tokens,cached_tokens,completion_tokens,cost_usd\n",
        );
        for row in &self.rows {
            let cells = [
                csv_text(row.id.as_deref().unwrap_or("")),
                csv_text(row.name.as_deref().unwrap_or("")),
                row.requests.to_string(),
                row.unpriced_requests.to_string(),
                row.prompt_tokens.to_string(),
                row.cached_tokens.to_string(),
                row.completion_tokens.to_string(),
                row.cost_usd.clone(),
            ];
            out.push_str(&cells.join(","));
            out.push('\n');
        }
        out
    }
}

/// A CSV text cell: quoted when it must be, defused when it starts like a formula.
fn csv_text(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_string()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_quoted_and_defused() {
        assert_eq!(csv_text("acme"), "acme");
        assert_eq!(csv_text("a,b"), "\"a,b\"");
        assert_eq!(csv_text("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_text("=cmd()"), "'=cmd()");
        assert_eq!(csv_text("-1+2,3"), "\"'-1+2,3\"");
    }
}
