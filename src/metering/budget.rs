//! Spending budgets of a tenant, team, user or key over a UTC day, ISO week or month. The
//! hard limit holds under concurrency: each request reserves its worst-case cost before
//! it goes upstream and settles its actual cost after, so spent plus reserved never
//! passes the limit. A soft limit alerts once per window; above a share of the limit,
//! named models are downgraded to cheaper ones.

use super::alerts::{Alert, AlertSender};
use super::calendar::Window;
use crate::store::StoreError;
use crate::tenancy::{Mirrored, admin_event, atomically};
use arc_swap::ArcSwap;
use rusqlite::{Connection, params};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Whose spending a budget counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Tenant,
    Team,
    User,
    Key,
}

impl Scope {
    pub fn name(self) -> &'static str {
        match self {
            Scope::Tenant => "tenant",
            Scope::Team => "team",
            Scope::User => "user",
            Scope::Key => "key",
        }
    }

    pub(super) fn from_name(name: &str) -> Option<Self> {
        [Scope::Tenant, Scope::Team, Scope::User, Scope::Key]
            .into_iter()
            .find(|s| s.name() == name)
    }

    /// The request log column holding this scope's id.
    pub fn log_column(self) -> &'static str {
        match self {
            Scope::Tenant => "tenant_id",
            Scope::Team => "team_id",
            Scope::User => "user_id",
            Scope::Key => "key_id",
        }
    }
}

/// A budget as configured.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BudgetDef {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub tenant_id: String,
    pub scope: Scope,
    /// The tenant's, team's or key's id, or the user's name (as records carry it).
    pub scope_id: String,
    pub window: Window,
    /// The hard limit, in nano-dollars: requests that could pass it are refused.
    pub limit_nano_usd: i64,
    /// Alert (audit event and webhook) once per window when spending reaches this share.
    #[serde(default)]
    pub soft_limit_pct: Option<u8>,
    /// From this share on, requests for a model in `downgrade` go to its cheaper model.
    #[serde(default)]
    pub downgrade_at_pct: Option<u8>,
    /// Model asked for → cheaper model served instead.
    #[serde(default)]
    pub downgrade: BTreeMap<String, String>,
    /// Where the soft-limit alert is POSTed (an on-prem URL).
    #[serde(default)]
    pub webhook_url: Option<String>,
}

impl BudgetDef {
    /// Checks the values a store or API caller gave.
    pub fn validate(&self) -> Result<(), String> {
        if self.limit_nano_usd <= 0 {
            return Err("`limit` must be above zero".into());
        }
        for (what, pct) in [
            ("soft_limit_pct", self.soft_limit_pct),
            ("downgrade_at_pct", self.downgrade_at_pct),
        ] {
            if pct.is_some_and(|p| p == 0 || p > 100) {
                return Err(format!("`{what}` must be between 1 and 100"));
            }
        }
        if self.downgrade_at_pct.is_some() == self.downgrade.is_empty() {
            return Err(
                "`downgrade_at_pct` and `downgrade` (model → cheaper model) go together".into(),
            );
        }
        if let Some(url) = &self.webhook_url {
            let ok = url.parse::<http::Uri>().is_ok_and(|u| {
                matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some()
            });
            if !ok {
                return Err(format!(
                    "`webhook_url` `{url}` is not an http:// or https:// URL"
                ));
            }
        }
        Ok(())
    }

    /// The spend at which `pct` is reached.
    fn threshold(&self, pct: u8) -> i64 {
        (i128::from(self.limit_nano_usd) * i128::from(pct) / 100) as i64
    }
}

/// What a budget has counted in its current window.
#[derive(Debug)]
struct Ledger {
    window_start: i64,
    /// Actual costs settled in this window.
    spent: i64,
    /// Worst-case costs of requests still in flight.
    reserved: i64,
    /// The window whose soft-limit alert was raised.
    alerted: Option<i64>,
}

impl Ledger {
    /// Starts a new window when `now` left the current one (reservations carry over).
    fn roll(&mut self, window: Window, now_ms: i64) {
        let (start, _) = window.bounds(now_ms);
        if start != self.window_start {
            self.window_start = start;
            self.spent = 0;
            self.alerted = None;
        }
    }
}

/// A budget and its ledger.
#[derive(Debug)]
pub struct Budget {
    pub def: BudgetDef,
    ledger: Mutex<Ledger>,
}

/// Where a budget's spending stands.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BudgetState {
    #[serde(flatten)]
    pub def: BudgetDef,
    pub window_start_ms: i64,
    pub window_end_ms: i64,
    pub spent_nano_usd: i64,
    pub reserved_nano_usd: i64,
}

impl Budget {
    fn lock(&self) -> std::sync::MutexGuard<'_, Ledger> {
        // A panic while holding it cannot leave the counters half-updated (plain
        // integer writes), so a poisoned lock is still good.
        self.ledger.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn state(&self, now_ms: i64) -> BudgetState {
        let mut ledger = self.lock();
        ledger.roll(self.def.window, now_ms);
        let (start, end) = self.def.window.bounds(now_ms);
        BudgetState {
            def: self.def.clone(),
            window_start_ms: start,
            window_end_ms: end,
            spent_nano_usd: ledger.spent,
            reserved_nano_usd: ledger.reserved,
        }
    }

    /// Whether spending (settled and reserved) reached the downgrade share.
    fn downgrades(&self, now_ms: i64) -> bool {
        let Some(pct) = self.def.downgrade_at_pct else {
            return false;
        };
        let mut ledger = self.lock();
        ledger.roll(self.def.window, now_ms);
        ledger.spent + ledger.reserved >= self.def.threshold(pct)
    }
}

/// The caller a request's budgets are found by.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub tenant_id: &'a str,
    pub team_id: Option<&'a str>,
    pub user: Option<&'a str>,
    pub key_id: &'a str,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exceeded {
    pub scope: Scope,
    pub window: Window,
    /// Seconds until the window ends.
    pub retry_after_secs: u64,
}

/// Budgets or limits by the scope and subject they count, looked up without allocating.
#[derive(Debug)]
pub(super) struct BySubject<T> {
    /// Per scope (in `Scope` order), subject id → entries.
    maps: [HashMap<String, Vec<Arc<T>>>; 4],
}

impl<T> Default for BySubject<T> {
    fn default() -> Self {
        Self {
            maps: Default::default(),
        }
    }
}

impl<T> BySubject<T> {
    pub(super) fn insert(&mut self, scope: Scope, id: &str, entry: Arc<T>) {
        self.maps[scope as usize]
            .entry(id.to_string())
            .or_default()
            .push(entry);
    }

    /// The entries that count a request by `subject`: its tenant's, team's, user's and
    /// key's, each of the subject's own tenant (a user of the same name in another
    /// tenant is someone else).
    pub(super) fn of(&self, subject: Subject<'_>, tenant_of: impl Fn(&T) -> &str) -> Vec<Arc<T>> {
        let subjects = [
            (Scope::Tenant, Some(subject.tenant_id)),
            (Scope::Team, subject.team_id),
            (Scope::User, subject.user),
            (Scope::Key, Some(subject.key_id)),
        ];
        let mut found = Vec::new();
        for (scope, id) in subjects {
            if let Some(list) = id.and_then(|id| self.maps[scope as usize].get(id)) {
                found.extend(
                    list.iter()
                        .filter(|entry| tenant_of(entry) == subject.tenant_id)
                        .cloned(),
                );
            }
        }
        found
    }
}

#[derive(Default)]
struct Snapshot {
    by_subject: BySubject<Budget>,
    all: Vec<Arc<Budget>>,
}

/// Every budget and its ledger, kept in step with the `budgets` table by the state mirror.
pub struct Budgets {
    /// The request log, from which a budget's spending so far is read when it is loaded.
    request_log: PathBuf,
    snapshot: ArcSwap<Snapshot>,
    alerts: AlertSender,
}

impl Budgets {
    pub fn new(request_log: PathBuf, alerts: AlertSender) -> Self {
        Self {
            request_log,
            snapshot: ArcSwap::from_pointee(Snapshot::default()),
            alerts,
        }
    }

    /// The budgets that count a request by `subject` (none, without allocating, when
    /// there are no budgets at all).
    pub fn applicable(&self, subject: Subject<'_>) -> Vec<Arc<Budget>> {
        let snapshot = self.snapshot.load();
        if snapshot.all.is_empty() {
            return Vec::new();
        }
        snapshot
            .by_subject
            .of(subject, |b: &Budget| &b.def.tenant_id)
    }

    /// Every budget's state, of one tenant or all.
    pub fn states(&self, tenant_id: Option<&str>, now_ms: i64) -> Vec<BudgetState> {
        self.snapshot
            .load()
            .all
            .iter()
            .filter(|b| tenant_id.is_none_or(|t| b.def.tenant_id == t))
            .map(|b| b.state(now_ms))
            .collect()
    }

    /// The cheaper model a budget past its downgrade share sends `model` to.
    pub fn downgrade(budgets: &[Arc<Budget>], model: &str, now_ms: i64) -> Option<String> {
        budgets
            .iter()
            .filter(|b| b.def.downgrade.contains_key(model))
            .find(|b| b.downgrades(now_ms))
            .and_then(|b| b.def.downgrade.get(model).cloned())
    }

    /// Reserves `nanos` (a request's worst case) on every budget, or on none when one of
    /// them would pass its limit.
    pub fn reserve(
        &self,
        budgets: Vec<Arc<Budget>>,
        nanos: i64,
        now_ms: i64,
    ) -> Result<Hold, Exceeded> {
        let nanos = nanos.max(0);
        for (index, budget) in budgets.iter().enumerate() {
            let mut ledger = budget.lock();
            ledger.roll(budget.def.window, now_ms);
            let after = ledger
                .spent
                .saturating_add(ledger.reserved)
                .saturating_add(nanos);
            // A request of no known cost (an unpriced model) passes until the limit is
            // spent.
            let refused = if nanos > 0 {
                after > budget.def.limit_nano_usd
            } else {
                ledger.spent >= budget.def.limit_nano_usd
            };
            if refused {
                drop(ledger);
                for taken in &budgets[..index] {
                    taken.lock().reserved -= nanos;
                }
                let (_, end) = budget.def.window.bounds(now_ms);
                return Err(Exceeded {
                    scope: budget.def.scope,
                    window: budget.def.window,
                    retry_after_secs: u64::try_from(end - now_ms)
                        .unwrap_or(0)
                        .div_ceil(1000)
                        .max(1),
                });
            }
            ledger.reserved += nanos;
        }
        Ok(Hold {
            budgets,
            reserved: nanos,
            alerts: self.alerts.clone(),
        })
    }
}

/// A request's reservation on its budgets; settled with its actual cost when it ends.
#[derive(Debug)]
pub struct Hold {
    budgets: Vec<Arc<Budget>>,
    reserved: i64,
    alerts: AlertSender,
}

impl Hold {
    /// The worst-case cost reserved.
    pub fn reserved(&self) -> i64 {
        self.reserved
    }

    /// Replaces the reservation by the actual cost (zero when the request failed), and
    /// raises the soft-limit alert of a budget this crossed it on.
    pub fn settle(self, actual_nanos: i64, now_ms: i64) {
        for budget in &self.budgets {
            let crossed = {
                let mut ledger = budget.lock();
                ledger.reserved -= self.reserved;
                ledger.roll(budget.def.window, now_ms);
                ledger.spent = ledger.spent.saturating_add(actual_nanos.max(0));
                let soft = budget.def.soft_limit_pct.map(|p| budget.def.threshold(p));
                let crossed = soft.is_some_and(|s| ledger.spent >= s)
                    && ledger.alerted != Some(ledger.window_start);
                if crossed {
                    ledger.alerted = Some(ledger.window_start);
                }
                crossed.then_some((ledger.window_start, ledger.spent))
            };
            if let Some((window_start_ms, spent_nano_usd)) = crossed {
                self.alerts.send(Alert {
                    budget: budget.def.clone(),
                    window_start_ms,
                    spent_nano_usd,
                });
            }
        }
    }
}

impl Mirrored for Budgets {
    fn counter(&self) -> &'static str {
        "budgets"
    }

    /// Re-reads the budgets; one whose scope and window did not change keeps its ledger,
    /// a new one starts from the request log's costs in its current window.
    fn reload(&self, conn: &Connection) -> Result<(), StoreError> {
        let defs = BudgetStore::new(conn).list(None)?;
        let old = self.snapshot.load();
        let now = crate::store::now_unix_ms();
        let mut snapshot = Snapshot::default();
        let mut log = None;
        for def in defs {
            let kept = old.all.iter().find(|b| {
                b.def.id == def.id && b.def.scope == def.scope && b.def.window == def.window
            });
            let ledger = match kept {
                Some(budget) => {
                    let ledger = budget.lock();
                    Ledger {
                        window_start: ledger.window_start,
                        spent: ledger.spent,
                        reserved: ledger.reserved,
                        alerted: ledger.alerted,
                    }
                }
                None => {
                    let log = match &mut log {
                        Some(log) => log,
                        None => log.insert(crate::store::request_log::open(&self.request_log)?),
                    };
                    spent_so_far(log, &def, now)?
                }
            };
            let budget = Arc::new(Budget {
                def,
                ledger: Mutex::new(ledger),
            });
            snapshot
                .by_subject
                .insert(budget.def.scope, &budget.def.scope_id, budget.clone());
            snapshot.all.push(budget);
        }
        self.snapshot.store(Arc::new(snapshot));
        Ok(())
    }
}

/// A budget's spending in its current window, from the request log.
fn spent_so_far(log: &Connection, def: &BudgetDef, now_ms: i64) -> Result<Ledger, StoreError> {
    let (start, end) = def.window.bounds(now_ms);
    let sql = format!(
        "SELECT COALESCE(SUM(cost_nano_usd), 0) FROM request_log
         WHERE ts_ms >= ?1 AND ts_ms < ?2 AND tenant_id = ?3 AND {} = ?4",
        def.scope.log_column()
    );
    let spent: i64 = log.query_row(
        &sql,
        params![start, end, def.tenant_id, def.scope_id],
        |r| r.get(0),
    )?;
    Ok(Ledger {
        window_start: start,
        spent,
        reserved: 0,
        alerted: None,
    })
}

/// Budgets in the state database.
pub struct BudgetStore<'a> {
    conn: &'a Connection,
}

impl<'a> BudgetStore<'a> {
    pub fn new(conn: &'a Connection) -> Self {
        Self { conn }
    }

    /// Creates a budget, or replaces the one with the same scope, subject and window.
    pub fn put(&self, def: &BudgetDef, actor: &str) -> Result<BudgetDef, StoreError> {
        def.validate().map_err(StoreError::Invalid)?;
        atomically(self.conn, || {
            let id = super::quota_rows::id_for(
                self.conn,
                "budgets",
                "bud_",
                (&def.tenant_id, def.scope, &def.scope_id),
                Some(def.window.name()),
            )?;
            let downgrade = serde_json::to_string(&def.downgrade)
                .map_err(|e| StoreError::Invalid(e.to_string()))?;
            self.conn.execute(
                "INSERT INTO budgets (id, tenant_id, scope, scope_id, window, limit_nano_usd,
                     soft_limit_pct, downgrade_at_pct, downgrade, webhook_url, updated_ms, actor)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                 ON CONFLICT (id) DO UPDATE SET limit_nano_usd = ?6, soft_limit_pct = ?7,
                     downgrade_at_pct = ?8, downgrade = ?9, webhook_url = ?10,
                     updated_ms = ?11, actor = ?12",
                params![
                    id,
                    def.tenant_id,
                    def.scope.name(),
                    def.scope_id,
                    def.window.name(),
                    def.limit_nano_usd,
                    def.soft_limit_pct,
                    def.downgrade_at_pct,
                    downgrade,
                    def.webhook_url,
                    crate::store::now_unix_ms(),
                    actor
                ],
            )?;
            let detail = format!(
                "{} {} {} limit={}",
                def.scope.name(),
                def.scope_id,
                def.window.name(),
                super::usd(def.limit_nano_usd)
            );
            admin_event(
                self.conn,
                actor,
                "budget.put",
                &id,
                Some(&def.tenant_id),
                Some(&detail),
            )?;
            Ok(BudgetDef { id, ..def.clone() })
        })
    }

    /// Deletes a budget of `tenant_id` (any tenant's with `None`); false when none.
    pub fn delete(
        &self,
        id: &str,
        tenant_id: Option<&str>,
        actor: &str,
    ) -> Result<bool, StoreError> {
        atomically(self.conn, || {
            super::quota_rows::delete(self.conn, "budgets", "budget.delete", id, tenant_id, actor)
        })
    }

    /// Every budget, of one tenant or all.
    pub fn list(&self, tenant_id: Option<&str>) -> Result<Vec<BudgetDef>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, tenant_id, scope, scope_id, window, limit_nano_usd, soft_limit_pct,
                    downgrade_at_pct, downgrade, webhook_url
             FROM budgets WHERE ?1 IS NULL OR tenant_id = ?1 ORDER BY tenant_id, id",
        )?;
        let rows = stmt.query_map([tenant_id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, Option<u8>>(6)?,
                r.get::<_, Option<u8>>(7)?,
                r.get::<_, Option<String>>(8)?,
                r.get::<_, Option<String>>(9)?,
            ))
        })?;
        let mut defs = Vec::new();
        for row in rows {
            let (id, tenant_id, scope, scope_id, window, limit, soft, down_pct, down, webhook) =
                row?;
            let bad = |what: &str| StoreError::Invalid(format!("budget {id}: bad {what}"));
            defs.push(BudgetDef {
                scope: Scope::from_name(&scope).ok_or_else(|| bad("scope"))?,
                window: serde_json::from_value(serde_json::Value::String(window))
                    .map_err(|_| bad("window"))?,
                downgrade: down
                    .map(|d| serde_json::from_str(&d))
                    .transpose()
                    .map_err(|_| bad("downgrade map"))?
                    .unwrap_or_default(),
                id,
                tenant_id,
                scope_id,
                limit_nano_usd: limit,
                soft_limit_pct: soft,
                downgrade_at_pct: down_pct,
                webhook_url: webhook,
            });
        }
        Ok(defs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(id: &str, limit: i64, soft: Option<u8>) -> Arc<Budget> {
        Arc::new(Budget {
            def: BudgetDef {
                id: id.into(),
                tenant_id: "ten_a".into(),
                scope: Scope::Tenant,
                scope_id: "ten_a".into(),
                window: Window::Daily,
                limit_nano_usd: limit,
                soft_limit_pct: soft,
                downgrade_at_pct: None,
                downgrade: BTreeMap::new(),
                webhook_url: None,
            },
            ledger: Mutex::new(Ledger {
                window_start: Window::Daily.bounds(NOW).0,
                spent: 0,
                reserved: 0,
                alerted: None,
            }),
        })
    }

    const NOW: i64 = 1_790_000_000_000;

    fn budgets() -> (Budgets, mpsc::Receiver<Alert>) {
        let (alerts, rx) = AlertSender::capture();
        (Budgets::new(PathBuf::new(), alerts), rx)
    }

    use std::sync::mpsc;

    #[test]
    fn a_refusal_on_one_budget_takes_back_the_others_reservations() {
        let (budgets, _) = budgets();
        let (roomy, tight) = (budget("a", 1000, None), budget("b", 100, None));
        let both = vec![roomy.clone(), tight.clone()];
        let hold = budgets.reserve(both.clone(), 60, NOW).unwrap();
        let refused = budgets.reserve(both.clone(), 60, NOW).unwrap_err();
        assert_eq!(refused.scope, Scope::Tenant);
        assert!(refused.retry_after_secs > 0 && refused.retry_after_secs <= 86_400);
        assert_eq!(roomy.state(NOW).reserved_nano_usd, 60);
        hold.settle(30, NOW);
        let state = tight.state(NOW);
        assert_eq!((state.spent_nano_usd, state.reserved_nano_usd), (30, 0));
        // 30 spent + 60 reserved fits in 100; a second 60 does not.
        let _held = budgets.reserve(both.clone(), 60, NOW).unwrap();
        assert!(budgets.reserve(both, 60, NOW).is_err());
    }

    #[test]
    fn the_soft_limit_alerts_once_per_window_and_a_new_window_starts_empty() {
        let (budgets, alerts) = budgets();
        let b = budget("a", 1000, Some(50));
        for _ in 0..4 {
            budgets
                .reserve(vec![b.clone()], 200, NOW)
                .unwrap()
                .settle(200, NOW);
        }
        let raised: Vec<Alert> = alerts.try_iter().collect();
        assert_eq!(raised.len(), 1);
        assert_eq!(raised[0].spent_nano_usd, 600);
        assert!(budgets.reserve(vec![b.clone()], 300, NOW).is_err());
        // Unknown cost is still refused once the limit is spent.
        budgets
            .reserve(vec![b.clone()], 0, NOW)
            .unwrap()
            .settle(200, NOW);
        assert!(budgets.reserve(vec![b.clone()], 0, NOW).is_err());

        let tomorrow = NOW + 86_400_000;
        assert_eq!(b.state(tomorrow).spent_nano_usd, 0);
        budgets
            .reserve(vec![b.clone()], 600, tomorrow)
            .unwrap()
            .settle(600, tomorrow);
        assert_eq!(alerts.try_iter().count(), 1, "a new window alerts again");
    }

    #[test]
    fn budget_definitions_are_checked() {
        let mut def = budget("a", 1000, Some(50)).def.clone();
        assert_eq!(def.validate(), Ok(()));
        def.soft_limit_pct = Some(0);
        assert!(def.validate().is_err());
        def.soft_limit_pct = None;
        def.downgrade_at_pct = Some(80);
        assert!(def.validate().unwrap_err().contains("go together"));
        def.downgrade.insert("big".into(), "small".into());
        assert_eq!(def.validate(), Ok(()));
        def.webhook_url = Some("ftp://x".into());
        assert!(def.validate().is_err());
        def.webhook_url = None;
        def.limit_nano_usd = 0;
        assert!(def.validate().is_err());
    }
}
