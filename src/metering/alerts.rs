//! Budget soft-limit alerts, raised once per budget and window (the claim is stored, so a
//! restart does not raise it again): an admin event in the audit trail, then a webhook
//! POST to the budget's on-prem URL, retried, its failure audited too. The URL is a
//! tenant admin's: it is called only where `webhooks.allow` permits (checked on the
//! address connected to, see `providers::destination`), redirects are not followed, and
//! the audit trail — which the tenant's admins read — says only that delivery failed;
//! why is in the operator's log.

use super::budget::BudgetDef;
use crate::providers::destination::{CheckedResolver, Destinations};
use crate::store::StoreError;
use crate::tenancy::{STATE_MIGRATIONS, admin_event, atomically};
use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rusqlite::{Connection, params};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

/// Webhook attempts per alert, and how long each may take.
const WEBHOOK_ATTEMPTS: u32 = 3;
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);

/// The actor alerts are recorded under.
const ACTOR: &str = "airlock:budgets";

/// What the audit trail says of a webhook that was not delivered, whatever the cause:
/// the tenant's admins read it, and connection details would map the internal network.
pub const DELIVERY_FAILED: &str = "webhook delivery failed (the gateway's log says why)";

/// The client webhooks are posted with: its connector connects only to checked
/// addresses.
type WebhookClient = Client<HttpsConnector<HttpConnector<CheckedResolver>>, Full<Bytes>>;

/// A budget's spending reached its soft limit in a window.
#[derive(Debug, Clone)]
pub struct Alert {
    pub budget: BudgetDef,
    pub window_start_ms: i64,
    pub spent_nano_usd: i64,
}

/// Hands alerts to the alert thread; requests never wait for it.
#[derive(Debug, Clone, Default)]
pub struct AlertSender {
    tx: Option<mpsc::Sender<Alert>>,
}

impl AlertSender {
    /// A sender whose alerts a test reads.
    #[cfg(test)]
    pub fn capture() -> (Self, mpsc::Receiver<Alert>) {
        let (tx, rx) = mpsc::channel();
        (Self { tx: Some(tx) }, rx)
    }

    pub fn send(&self, alert: Alert) {
        if let Some(tx) = &self.tx
            && tx.send(alert).is_err()
        {
            tracing::error!("the budget alert thread is gone; an alert was not raised");
        }
    }
}

/// Starts the alert thread, which records and delivers alerts until every sender is gone;
/// webhooks go only to `destinations`.
pub fn start(state_db: PathBuf, destinations: Destinations) -> Result<AlertSender, StoreError> {
    let conn = crate::store::open(&state_db, STATE_MIGRATIONS)?;
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("budget-alerts".into())
        .spawn(move || deliver_loop(conn, rx, destinations))
        .map_err(|e| StoreError::Invalid(format!("cannot start the budget alert thread: {e}")))?;
    Ok(AlertSender { tx: Some(tx) })
}

fn deliver_loop(conn: Connection, rx: mpsc::Receiver<Alert>, destinations: Destinations) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!(error = %e, "budget alerts cannot be delivered");
            return;
        }
    };
    let connector = match crate::providers::openai_compat::https_over(
        "budget webhooks",
        HttpConnector::new_with_resolver(destinations.resolver()),
        WEBHOOK_TIMEOUT,
        None,
    ) {
        Ok(connector) => connector,
        Err(e) => {
            tracing::error!(error = %e, "budget webhooks cannot be delivered");
            return;
        }
    };
    let client = Client::builder(TokioExecutor::new()).build(connector);
    while let Ok(alert) = rx.recv() {
        match claim(&conn, &alert) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::error!(budget = %alert.budget.id, error = %e, "cannot record a budget alert");
                continue;
            }
        }
        let Some(url) = alert.budget.webhook_url.clone() else {
            continue;
        };
        let body = payload(&alert);
        let delivered = runtime.block_on(async {
            for attempt in 1..=WEBHOOK_ATTEMPTS {
                match post(&client, &destinations, &url, body.clone()).await {
                    Ok(()) => return Ok(()),
                    Err(e) if attempt == WEBHOOK_ATTEMPTS => return Err(e),
                    Err(e) => {
                        tracing::warn!(budget = %alert.budget.id, attempt, error = %e, "budget webhook failed; retrying");
                        tokio::time::sleep(Duration::from_secs(u64::from(attempt))).await;
                    }
                }
            }
            Ok(())
        });
        if let Err(e) = delivered {
            tracing::error!(budget = %alert.budget.id, url = %url, error = %e, "budget webhook not delivered");
            let recorded = admin_event(
                &conn,
                ACTOR,
                "budget.webhook_failed",
                &alert.budget.id,
                Some(&alert.budget.tenant_id),
                Some(DELIVERY_FAILED),
            );
            if let Err(e) = recorded {
                tracing::error!(error = %e, "cannot record a failed budget webhook");
            }
        }
    }
}

/// Records the alert of a budget and window, unless it was already: true when this call
/// raised it.
fn claim(conn: &Connection, alert: &Alert) -> Result<bool, StoreError> {
    let budget = &alert.budget;
    atomically(conn, || {
        let inserted = conn.execute(
            "INSERT OR IGNORE INTO budget_alerts (budget_id, window_start_ms, kind, ts_ms)
             VALUES (?1, ?2, 'soft_limit', ?3)",
            params![
                budget.id,
                alert.window_start_ms,
                crate::store::now_unix_ms()
            ],
        )?;
        if inserted == 0 {
            return Ok(false);
        }
        let detail = format!(
            "{} {} spent {} of {} ({} window from {})",
            budget.scope.name(),
            budget.scope_id,
            super::usd(alert.spent_nano_usd),
            super::usd(budget.limit_nano_usd),
            budget.window.name(),
            alert.window_start_ms
        );
        admin_event(
            conn,
            ACTOR,
            "budget.soft_limit",
            &budget.id,
            Some(&budget.tenant_id),
            Some(&detail),
        )?;
        Ok(true)
    })
}

/// The webhook's JSON body.
fn payload(alert: &Alert) -> Bytes {
    let b = &alert.budget;
    let body = serde_json::json!({
        "event": "budget.soft_limit",
        "budget_id": b.id,
        "tenant_id": b.tenant_id,
        "scope": b.scope,
        "scope_id": b.scope_id,
        "window": b.window,
        "window_start_ms": alert.window_start_ms,
        "limit_usd": super::usd(b.limit_nano_usd),
        "spent_usd": super::usd(alert.spent_nano_usd),
        "soft_limit_pct": b.soft_limit_pct,
    });
    Bytes::from(body.to_string())
}

/// Posts `body` to `url`, which must lead to an allowed destination: an address in the
/// URL is checked here, a name by the client's resolver. A redirect is a failure (the
/// client follows none).
async fn post(
    client: &WebhookClient,
    destinations: &Destinations,
    url: &str,
    body: Bytes,
) -> Result<(), String> {
    let uri = crate::providers::destination::parse(url).map_err(|e| e.to_string())?;
    destinations
        .check_literal(&uri)
        .map_err(|e| e.to_string())?;
    let request = http::Request::post(uri)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(
            http::header::USER_AGENT,
            concat!("airlock/", env!("CARGO_PKG_VERSION")),
        )
        .body(Full::new(body))
        .map_err(|e| e.to_string())?;
    let response = tokio::time::timeout(WEBHOOK_TIMEOUT, client.request(request))
        .await
        .map_err(|_| "timed out".to_string())?
        .map_err(|e| crate::providers::openai_compat::error_chain(&e))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("the webhook answered {}", response.status()))
    }
}
