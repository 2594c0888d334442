//! The client-facing server: listener, optional TLS, HTTP/1.1 and HTTP/2, the tower
//! stack around the handler, and graceful shutdown.

pub mod auth_failures;
pub mod body;
mod connection;
pub mod context;
mod count_tokens;
mod credential;
pub mod disk;
mod dispatch;
pub mod error;
mod handler;
pub mod limits;
mod metering_stage;
mod metrics_token;
mod parse_errors;
pub mod pii_stage;
pub mod policy_stage;
pub mod request_id;
mod watchers;

use crate::audit::search::personal::PersonalData;
use crate::audit::search::service::{IndexerThread, SearchHandle};
use crate::config::LoadedConfig;
use crate::routing::RouteTable;
use crate::store::instance_key::InstanceKey;
use crate::store::request_log::{RequestLog, RequestLogWriter};
use crate::telemetry::logging::LogThrottle;
use crate::telemetry::metrics::Metrics;
use crate::tenancy::{KeyCache, STATE_MIGRATIONS, StateMirror};
use anyhow::Context as _;
use connection::{Activity, Deadlines, Ended, Tracked};
use http::Method;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use limits::{Admission, ConnectionCaps, Ticket};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

/// Everything a request handler needs, shared by all connections.
pub struct AppState {
    /// Keeps the snapshots below in step with the state database.
    pub state_mirror: StateMirror,
    pub keys: Arc<KeyCache>,
    /// Model prices, for each request's cost.
    pub pricing: Arc<crate::metering::Pricing>,
    /// Requests and tokens per minute, and their buckets.
    pub rate_limits: Arc<crate::metering::rate_limits::RateLimits>,
    /// Spending budgets and their ledgers.
    pub budgets: Arc<crate::metering::budget::Budgets>,
    /// The completion length a budget reserves for a request that names none.
    pub default_max_tokens: u64,
    /// Provider credentials (BYOK), kept in step by the state mirror.
    pub credentials: Arc<crate::tenancy::credentials::CredentialCache>,
    /// The active and shadow policy versions, refreshed when they change.
    pub policies: crate::policy::active::PolicyCache,
    /// Counters of the policies' `rate_limit` rules.
    pub rate_limiter: crate::policy::limiter::RateLimiter,
    pub routes: RouteTable,
    pub log: RequestLog,
    pub metrics: Metrics,
    pub metrics_enabled: bool,
    /// The bearer token `GET /metrics` requires, if one is configured.
    pub metrics_token: Option<metrics_token::MetricsToken>,
    /// Checks admin tokens and records admin events; `None` when the admin API is off.
    pub admin: Option<crate::admin::AdminAccess>,
    /// Where audit records go; `None` when the audit trail is off.
    pub audit: Option<crate::audit::writer::AuditSink>,
    /// Audit records carry the request and response payloads.
    pub audit_payloads: bool,
    pub max_body_bytes: usize,
    pub body_timeout: Duration,
    /// What happens to provider-run tools clients declare (`tools.hosted`).
    pub hosted_tools: crate::config::HostedTools,
    pub started_unix: i64,
    /// The personal-data stage; `None` when `pii.enabled` is off.
    pub pii: Option<Arc<pii_stage::PiiEngine>>,
    /// Set once shutdown began: `/readyz` turns 503 so load balancers move away.
    pub draining: AtomicBool,
    /// Failed authentications: the per-address allowance and the interval's aggregate.
    pub auth_failures: auth_failures::AuthFailures,
    /// Free space on the data directory.
    pub disk: disk::DiskWatch,
    /// Where webhooks set through the admin API may point.
    pub webhook_destinations: crate::providers::destination::Destinations,
}

impl AppState {
    /// Why an authenticated data-path request cannot be served at all now: no policy
    /// version that loads (rather than none enforced), or the data directory's disk
    /// below its refusal mark.
    pub fn refusal(&self, policies: &crate::policy::active::Policies) -> Option<error::ApiError> {
        if policies.refusing() {
            return Some(error::ApiError::policy_unavailable());
        }
        self.disk
            .refuses_requests()
            .then(error::ApiError::disk_space_low)
    }
}

/// The endpoints Airlock serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    ChatCompletions,
    /// Anthropic's Messages API.
    Messages,
    /// OpenAI's Responses API (stateless).
    Responses,
    /// Anthropic's token counting for a Messages request.
    CountTokens,
    /// Gemini's `models/NAME:generateContent` and `:streamGenerateContent`.
    GenerateContent,
    /// Gemini's `models/NAME:countTokens`.
    GeminiCountTokens,
    /// Gemini's model list.
    GeminiModels,
    /// The admin API (`/admin/…`).
    Admin,
    Completions,
    Embeddings,
    Models,
    Healthz,
    Readyz,
    Metrics,
    WrongMethod,
    NotFound,
}

impl Endpoint {
    /// Routes a method and path.
    pub fn classify(method: &Method, path: &str) -> Self {
        let path = path
            .strip_suffix('/')
            .filter(|p| !p.is_empty())
            .unwrap_or(path);
        if path.starts_with("/admin/") {
            return Self::Admin;
        }
        let gemini = crate::api::gemini::ingress::model_method(path).map(|(_, method)| method);
        let (endpoint, allowed) = match (path, gemini) {
            (_, Some("generateContent" | "streamGenerateContent")) => {
                (Self::GenerateContent, Method::POST)
            }
            (_, Some("countTokens")) => (Self::GeminiCountTokens, Method::POST),
            (_, Some(_)) => return Self::NotFound,
            (path, None) => match Self::plain(path) {
                Some(plain) => plain,
                None => return Self::NotFound,
            },
        };
        if *method == allowed || (allowed == Method::GET && *method == Method::HEAD) {
            endpoint
        } else {
            Self::WrongMethod
        }
    }

    /// The endpoint at a fixed path, and the method it takes.
    fn plain(path: &str) -> Option<(Self, Method)> {
        Some(match path {
            "/v1/chat/completions" => (Self::ChatCompletions, Method::POST),
            "/v1/messages" => (Self::Messages, Method::POST),
            "/v1/responses" => (Self::Responses, Method::POST),
            "/v1/messages/count_tokens" => (Self::CountTokens, Method::POST),
            "/v1/completions" => (Self::Completions, Method::POST),
            "/v1/embeddings" => (Self::Embeddings, Method::POST),
            "/v1/models" => (Self::Models, Method::GET),
            "/healthz" => (Self::Healthz, Method::GET),
            "/readyz" => (Self::Readyz, Method::GET),
            "/metrics" => (Self::Metrics, Method::GET),
            "/v1beta/models" => (Self::GeminiModels, Method::GET),
            _ => return None,
        })
    }

    /// The endpoint's name in logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::ChatCompletions => "chat_completions",
            Self::Messages => "messages",
            Self::Responses => "responses",
            Self::CountTokens => "count_tokens",
            Self::GenerateContent => "generate_content",
            Self::GeminiCountTokens => "gemini_count_tokens",
            Self::GeminiModels => "gemini_models",
            Self::Admin => "admin",
            Self::Completions => "completions",
            Self::Embeddings => "embeddings",
            Self::Models => "models",
            Self::Healthz => "healthz",
            Self::Readyz => "readyz",
            Self::Metrics => "metrics",
            Self::WrongMethod => "wrong_method",
            Self::NotFound => "not_found",
        }
    }
}

/// Maps a stored endpoint name back to its static form.
pub fn endpoint_name(stored: &str) -> &'static str {
    [
        Endpoint::ChatCompletions,
        Endpoint::Messages,
        Endpoint::Responses,
        Endpoint::CountTokens,
        Endpoint::GenerateContent,
        Endpoint::GeminiCountTokens,
        Endpoint::GeminiModels,
        Endpoint::Completions,
        Endpoint::Embeddings,
        Endpoint::Models,
    ]
    .into_iter()
    .map(Endpoint::name)
    .find(|n| *n == stored)
    .unwrap_or("other")
}

/// The writer threads a gateway leaves behind: call [`Writers::finish`] after the
/// runtime stopped, so every queued row and record reaches the disk.
pub struct Writers {
    request_log: RequestLogWriter,
    audit: Option<crate::audit::writer::AuditWriter>,
    audit_index: Option<IndexerThread>,
    vault: Option<crate::pii::VaultWriter>,
}

impl Writers {
    /// Waits until the audit writer signed its last checkpoint, the search index took
    /// every record, and every request-log row is written.
    pub fn finish(self) {
        if let Some(audit) = self.audit {
            audit.finish();
        }
        if let Some(index) = self.audit_index {
            index.finish();
        }
        self.request_log.finish();
        if let Some(vault) = self.vault {
            vault.finish();
        }
    }
}

/// The audit trail's parts, each `None` when it (or its search) is off: where records
/// go, the thread writing them, the indexer, and the search over its index.
struct AuditParts {
    sink: Option<crate::audit::writer::AuditSink>,
    writer: Option<crate::audit::writer::AuditWriter>,
    index: Option<IndexerThread>,
    search: Option<Arc<SearchHandle>>,
}

impl AuditParts {
    fn open(
        loaded: &LoadedConfig,
        instance_key: &InstanceKey,
        metrics: &Metrics,
    ) -> anyhow::Result<Self> {
        let config = &loaded.config.audit;
        let (sink, writer) = if config.enabled {
            let audit_log = crate::audit::log::AuditLog::open_configured(loaded, instance_key)?;
            let (sink, writer) = crate::audit::writer::AuditWriter::start(
                audit_log,
                config,
                &loaded.audit_db_path(),
                metrics.writers.audit_queue_waits.clone(),
            )
            .context("cannot start the audit writer")?;
            (Some(sink), Some(writer))
        } else {
            (None, None)
        };
        let searchable = config.enabled && config.search.enabled;
        let index = searchable
            .then(|| {
                IndexerThread::start(
                    loaded,
                    instance_key.seal_key,
                    PersonalData::configured(loaded, ner_settings(loaded), &instance_key.seal_key),
                    metrics.audit_index.clone(),
                )
            })
            .transpose()
            .context("cannot start the audit indexer")?;
        let search = searchable
            .then(|| SearchHandle::open(loaded, &instance_key.seal_key).map(Arc::new))
            .transpose()?;
        Ok(Self {
            sink,
            writer,
            index,
            search,
        })
    }
}

/// A running gateway's parts that outlive the serve loop.
pub struct Gateway {
    state: Arc<AppState>,
    writer: Writers,
    tls: Option<TlsAcceptor>,
    shutdown_grace: Duration,
    workers: usize,
    deadlines: Deadlines,
    admission: Arc<Admission>,
}

impl Gateway {
    /// Opens the stores, loads keys and builds upstream clients.
    pub fn open(loaded: &LoadedConfig) -> anyhow::Result<Self> {
        crate::store::files::private_umask();
        crate::store::files::secure_data_dir(&loaded.data_dir)
            .with_context(|| format!("cannot create data dir {}", loaded.data_dir.display()))?;
        let instance_key = InstanceKey::read(&loaded.key_file_path())?;
        let state_conn = crate::store::open(&loaded.state_db_path(), STATE_MIGRATIONS)?;
        let keys = Arc::new(KeyCache::new(&instance_key.key_hash_secret));
        let pricing = Arc::new(
            crate::metering::Pricing::new(&loaded.config.pricing).map_err(anyhow::Error::msg)?,
        );
        let webhook_destinations =
            crate::providers::destination::Destinations::new(&loaded.config.webhooks);
        let budgets = Arc::new(crate::metering::budget::Budgets::new(
            loaded.request_log_db_path(),
            crate::metering::alerts::start(loaded.state_db_path(), webhook_destinations.clone())?,
        ));
        let credentials = Arc::new(crate::tenancy::credentials::CredentialCache::new(
            instance_key.seal_key,
            loaded
                .config
                .upstreams
                .iter()
                .map(|(name, u)| (name.clone(), u.value.kind))
                .collect(),
        ));
        let rate_limits = Arc::new(crate::metering::rate_limits::RateLimits::default());
        let state_mirror = StateMirror::new(
            state_conn,
            &loaded.state_db_path(),
            vec![
                keys.clone(),
                pricing.clone(),
                budgets.clone(),
                rate_limits.clone(),
                credentials.clone(),
            ],
        )?;
        let policies = crate::policy::active::PolicyCache::open(
            crate::store::open(&loaded.state_db_path(), STATE_MIGRATIONS)?,
            &loaded.state_db_path(),
        )?;
        let server = &loaded.config.server;
        let workers = match server.worker_threads {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        let metrics = Metrics::new();
        let admission = Admission::new(connection_caps(server), metrics.connections.clone());
        let metrics_token = server
            .metrics_token_file
            .as_ref()
            .map(|file| metrics_token::MetricsToken::read(&loaded.resolve(file)))
            .transpose()?;
        let routes =
            RouteTable::from_config(loaded, workers, &metrics).map_err(anyhow::Error::msg)?;
        let (log, request_log) = RequestLog::open(
            &loaded.request_log_db_path(),
            loaded.config.logging.request_log_queue,
            metrics.writers.request_log_queue_waits.clone(),
        )?;
        let audit_config = &loaded.config.audit;
        let AuditParts {
            sink: audit,
            writer: audit_writer,
            index: audit_index,
            search: audit_search,
        } = AuditParts::open(loaded, &instance_key, &metrics)?;
        let tls = match &server.tls {
            Some(tls) => Some(tls::acceptor(
                &loaded.resolve(&tls.value.cert_file),
                &loaded.resolve(&tls.value.key_file),
                ("server.tls.cert_file", "server.tls.key_file"),
            )?),
            None => None,
        };
        let pii = pii_stage::PiiEngine::start(
            &loaded.config.pii,
            ner_settings(loaded),
            &loaded.state_db_path(),
            &instance_key,
        )
        .context("cannot start the personal-data stage")?;
        let (pii, vault) = pii.map_or((None, None), |(engine, writer)| {
            (Some(engine), Some(writer))
        });
        let state = Arc::new(AppState {
            state_mirror,
            keys,
            pricing,
            rate_limits,
            budgets,
            default_max_tokens: loaded.config.budgets.default_max_tokens,
            credentials,
            policies,
            rate_limiter: Default::default(),
            routes,
            log,
            metrics,
            metrics_enabled: server.metrics,
            metrics_token,
            admin: server.admin_api.then(|| crate::admin::AdminAccess {
                state_db: loaded.state_db_path(),
                audit_db: loaded.audit_db_path(),
                request_log_db: loaded.request_log_db_path(),
                key_hash_secret: instance_key.key_hash_secret,
                seal_key: instance_key.seal_key,
                public_key: instance_key.public_key_hex(),
                audit_search,
                eraser: audit
                    .is_some()
                    .then(|| Arc::new(crate::audit::erasure::Eraser::new(loaded))),
            }),
            audit_payloads: audit.is_some() && audit_config.store_payloads,
            audit,
            max_body_bytes: server.max_body_bytes,
            hosted_tools: loaded.config.tools.hosted,
            body_timeout: Duration::from_secs(server.client_body_timeout_secs),
            started_unix: crate::store::now_unix(),
            pii,
            draining: AtomicBool::new(false),
            auth_failures: auth_failures::AuthFailures::new(&loaded.config.auth_failures),
            disk: disk::DiskWatch::new(
                &loaded.config.disk,
                &loaded.data_dir,
                &loaded.state_db_path(),
                audit_config.on_failure == crate::config::OnAuditFailure::FailClosed,
            ),
            webhook_destinations,
        });
        state.disk.check();
        Ok(Self {
            state,
            writer: Writers {
                request_log,
                audit: audit_writer,
                audit_index,
                vault,
            },
            tls,
            shutdown_grace: Duration::from_secs(server.shutdown_grace_secs),
            workers,
            deadlines: Deadlines {
                header: Duration::from_secs(server.header_timeout_secs.get()),
                idle: Duration::from_secs(server.idle_timeout_secs.get()),
            },
            admission,
        })
    }

    /// Serves on `listener` until `shutdown` resolves, then drains in-flight requests for
    /// up to the grace period. Returns the writers: call [`Writers::finish`] after the
    /// runtime stopped to write every row and record.
    ///
    /// The caller's task accepts connections and deals them round-robin to worker
    /// threads, each a single-threaded runtime with its own upstream connection pools: a
    /// request never hops between threads, which on a small box cost more than the
    /// proxying itself (measured: ~25 µs per request with tokio's work-stealing runtime).
    /// A connection over a cap is closed as soon as it is accepted: no TLS handshake,
    /// no bytes written, no descriptor kept.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> anyhow::Result<Writers> {
        let Gateway {
            state,
            writer,
            tls,
            shutdown_grace,
            workers,
            deadlines,
            admission,
        } = self;
        let mut queues = Vec::with_capacity(workers);
        let mut threads = Vec::with_capacity(workers);
        // `Some(deadline)` once the gateway drains: connections close after their
        // requests, workers wait for them until the deadline.
        let (drain, drain_signal) = tokio::sync::watch::channel(None);
        for index in 0..workers {
            let (queue, connections) = tokio::sync::mpsc::unbounded_channel();
            let worker = Worker {
                index,
                connections,
                state: state.clone(),
                tls: tls.clone(),
                deadlines,
                drain: drain_signal.clone(),
            };
            let thread = std::thread::Builder::new()
                .name(format!("airlock-worker-{index}"))
                .spawn(move || worker.run())
                .context("cannot start a worker thread")?;
            queues.push(queue);
            threads.push(thread);
        }
        drop(drain_signal);
        let health_checks = crate::routing::health::spawn_all(state.routes.upstreams());
        let mut acceptor = Acceptor {
            listener,
            admission,
            queues,
            next: 0,
            accept_errors: LogThrottle::new(LOG_INTERVAL),
            refusals: LogThrottle::new(LOG_INTERVAL),
        };
        let watchers = watchers::Watchers::start(&state);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                () = acceptor.accept_one() => {}
            }
        }
        health_checks
            .iter()
            .for_each(tokio::task::JoinHandle::abort);
        // Draining: in-flight requests finish, and the listener stays open meanwhile so
        // `/readyz` can tell load balancers (503) on new connections, each closed after
        // its request.
        state.draining.store(true, Ordering::Relaxed);
        let deadline = Instant::now() + shutdown_grace;
        drain.send_replace(Some(deadline));
        watchers.stop().await;
        tracing::info!("shutting down: draining in-flight requests");
        while acceptor.admission.open() > 0 {
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => break,
                () = tokio::time::sleep(DRAIN_CHECK) => {}
                () = acceptor.accept_one() => {}
            }
        }
        // Closing the queues tells every worker to stop.
        drop(acceptor);
        for thread in threads {
            let joined = tokio::task::spawn_blocking(move || thread.join()).await;
            if !matches!(joined, Ok(Ok(()))) {
                tracing::error!("a worker thread failed");
            }
        }
        // The refusals of the last interval, now that no more can come.
        auth_failures::record(&state.auth_failures, state.audit.as_ref()).await;
        // The last reference to the state holds the audit queue's sender: dropping it
        // lets the audit writer drain and stop.
        drop(state);
        Ok(writer)
    }
}

/// How often a draining gateway checks whether every connection has ended.
const DRAIN_CHECK: Duration = Duration::from_millis(50);

/// The listener's side of the serve loop: accepts, admits under the caps, and deals
/// connections to the workers.
struct Acceptor {
    listener: TcpListener,
    admission: Arc<Admission>,
    queues: Vec<tokio::sync::mpsc::UnboundedSender<Handover>>,
    next: usize,
    accept_errors: LogThrottle,
    refusals: LogThrottle,
}

impl Acceptor {
    /// Accepts one connection and hands it to the next worker, or closes it at once
    /// when a cap is full: no TLS handshake, no bytes written, no descriptor kept.
    async fn accept_one(&mut self) {
        let (stream, peer) = match self.listener.accept().await {
            Ok(pair) => pair,
            Err(e) => {
                if let Some(suppressed) = self.accept_errors.allow(Instant::now()) {
                    tracing::warn!(error = %e, suppressed, "accept failed");
                }
                // Out of file descriptors and similar: back off instead of spinning.
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                return;
            }
        };
        let accepted = Instant::now();
        let ticket = match self.admission.admit(peer.ip()) {
            Ok(ticket) => ticket,
            Err(refusal) => {
                drop(stream);
                if let Some(suppressed) = self.refusals.allow(accepted) {
                    let open = self.admission.open();
                    tracing::warn!(%peer, cap = refusal.reason(), open, suppressed, "connection refused: a connection cap is full");
                }
                return;
            }
        };
        let _ = stream.set_nodelay(true);
        match stream.into_std() {
            Ok(stream) => {
                let _ = self.queues[self.next].send(Handover {
                    stream,
                    peer,
                    ticket,
                    accepted,
                });
                self.next = (self.next + 1) % self.queues.len();
            }
            Err(e) => tracing::warn!(%peer, error = %e, "cannot hand over a connection"),
        }
    }
}

/// At most one warning per this interval about failed accepts, and one about refused
/// connections, each counting those it held back.
const LOG_INTERVAL: Duration = Duration::from_secs(5);

/// The pause after a failed accept (out of descriptors, say): the backlog keeps the
/// connection, and retrying at once would spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The connection caps from `server:` under the process's open-file limit, with a
/// warning when an explicit cap leaves too few descriptors.
fn connection_caps(server: &crate::config::ServerConfig) -> ConnectionCaps {
    let file_limit = limits::current_file_limit();
    let caps = ConnectionCaps::derive(
        server.max_connections,
        server.max_connections_per_client,
        file_limit,
    );
    tracing::info!(
        max_connections = caps.total,
        max_connections_per_client = caps.per_client,
        file_limit = ?file_limit,
        "connection caps"
    );
    if let Some(fits) = caps.exceeds_file_limit(file_limit) {
        tracing::warn!(
            max_connections = caps.total,
            file_limit = file_limit.unwrap_or(0),
            fits,
            "server.max_connections is above what the open-file limit leaves room for: \
             under load, accepts will fail for want of descriptors"
        );
    }
    caps
}

/// A connection handed to a worker: the socket, its peer, its place under the
/// connection caps (given back when the connection ends), and when it was accepted.
struct Handover {
    stream: std::net::TcpStream,
    peer: SocketAddr,
    ticket: Ticket,
    accepted: Instant,
}

/// One worker thread: a single-threaded runtime serving the connections dealt to it.
struct Worker {
    index: usize,
    connections: tokio::sync::mpsc::UnboundedReceiver<Handover>,
    state: Arc<AppState>,
    tls: Option<TlsAcceptor>,
    deadlines: Deadlines,
    /// `Some(deadline)` once the gateway drains.
    drain: tokio::sync::watch::Receiver<Option<Instant>>,
}

impl Worker {
    fn run(self) {
        crate::providers::set_pool_index(self.index);
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!(worker = self.index, error = %e, "cannot start a worker runtime");
                return;
            }
        };
        runtime.block_on(self.serve_connections());
        // Dropping the runtime ends connections still running after the grace period;
        // their request contexts log them as cut.
    }

    async fn serve_connections(self) {
        let Worker {
            index,
            mut connections,
            state,
            tls,
            deadlines,
            drain,
        } = self;
        // Every connection holds a receiver: all dropped, every connection ended.
        let (alive, alive_token) = tokio::sync::watch::channel(());
        let builder = Arc::new(http_builder());
        while let Some(handover) = connections.recv().await {
            let stream = match tokio::net::TcpStream::from_std(handover.stream) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(peer = %handover.peer, error = %e, "cannot register a connection");
                    continue;
                }
            };
            let connection = Connection {
                peer: handover.peer,
                activity: Activity::new(handover.accepted),
                state: state.clone(),
                builder: builder.clone(),
                deadlines,
                drain: drain.clone(),
            };
            let tls = tls.clone();
            let ticket = handover.ticket;
            let alive = alive_token.clone();
            tokio::spawn(async move {
                connection.serve(stream, tls).await;
                drop((ticket, alive));
            });
        }
        drop(alive_token);
        let deadline = (*drain.borrow()).unwrap_or_else(Instant::now);
        if tokio::time::timeout_at(deadline, alive.closed())
            .await
            .is_err()
        {
            tracing::warn!(
                worker = index,
                "in-flight requests still running after the grace period; cutting them"
            );
        }
    }
}

/// One client connection on its worker.
struct Connection {
    peer: SocketAddr,
    activity: Arc<Activity>,
    state: Arc<AppState>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    deadlines: Deadlines,
    drain: tokio::sync::watch::Receiver<Option<Instant>>,
}

impl Connection {
    /// Serves the connection (after its TLS handshake, within the header deadline) until
    /// it ends, and counts why it ended when the server closed it.
    async fn serve(self, stream: tokio::net::TcpStream, tls: Option<TlsAcceptor>) {
        let peer = self.peer;
        let metrics = self.state.metrics.connections.clone();
        let ended = match tls {
            None => self.serve_http(stream).await,
            Some(acceptor) => {
                let handshake_by = self.activity.accepted() + self.deadlines.header;
                match tokio::time::timeout_at(handshake_by, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => self.serve_http(stream).await,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => Ended::Silent,
                }
            }
        };
        let reason = match ended {
            Ended::Silent => "header",
            Ended::Idle => "idle",
            Ended::Finished(Ok(())) => return,
            Ended::Finished(Err(e)) => {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
                return;
            }
        };
        tracing::debug!(%peer, reason, "connection closed by the server");
        metrics
            .timed_out
            .get_or_create(&crate::telemetry::metrics::ConnectionLabels { reason })
            .inc();
    }

    /// HTTP/1.1 or HTTP/2 on `io`, each request counted in flight until its response
    /// is sent.
    async fn serve_http<I>(self, io: I) -> Ended
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Connection {
            peer,
            activity,
            state,
            builder,
            deadlines,
            drain,
        } = self;
        let client_addr: Arc<str> = peer.to_string().into();
        let requests = activity.clone();
        let service = tower::ServiceBuilder::new()
            .layer(request_id::RequestIdLayer)
            .service_fn(move |req| {
                let in_flight = requests.begin();
                let state = state.clone();
                let client_addr = client_addr.clone();
                async move {
                    let response = handler::handle(state, client_addr, req).await;
                    Ok::<_, std::convert::Infallible>(
                        response.map(|body| Tracked::new(body, in_flight)),
                    )
                }
            });
        let io = TokioIo::new(parse_errors::JsonParseErrors::new(io));
        let conn = builder.serve_connection_with_upgrades(io, TowerToHyperService::new(service));
        connection::drive(conn, &activity, deadlines, drain).await
    }
}

/// HTTP/1.1 and HTTP/2 connection settings. Slow or silent clients are closed by the
/// connection's own deadlines ([`connection::drive`]), so hyper's per-head timer is off.
fn http_builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(None)
        .keep_alive(true);
    builder
        .http2()
        .timer(hyper_util::rt::TokioTimer::new())
        .max_concurrent_streams(1024);
    builder
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

pub(crate) mod tls {
    //! Server TLS from PEM files, rustls with the ring provider, HTTP/2 and HTTP/1.1 by
    //! ALPN: the gateway's listener and mock-upstream's `--tls-cert`.
    use anyhow::Context as _;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use std::path::Path;
    use std::sync::Arc;
    use tokio_rustls::TlsAcceptor;

    /// An acceptor for the certificate chain at `cert_path` and its key at `key_path`;
    /// `names` are the settings they came from, for errors.
    pub fn acceptor(
        cert_path: &Path,
        key_path: &Path,
        names: (&str, &str),
    ) -> anyhow::Result<TlsAcceptor> {
        let (cert_name, key_name) = names;
        let certs = CertificateDer::pem_file_iter(cert_path)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .with_context(|| format!("{cert_name} {}", cert_path.display()))?;
        anyhow::ensure!(
            !certs.is_empty(),
            "{cert_name} {}: no certificate found",
            cert_path.display()
        );
        let key = PrivateKeyDer::from_pem_file(key_path)
            .with_context(|| format!("{key_name} {}", key_path.display()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .with_context(|| format!("{cert_name} and {key_name} do not match"))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

/// The NER model's settings from `pii.ner` (paths relative to the config file), or
/// `None` when it is turned off.
pub fn ner_settings(loaded: &LoadedConfig) -> Option<crate::pii::ner::NerSettings> {
    use crate::pii::ner::{NerSettings, PoolSize, RuntimeSource};
    let ner = &loaded.config.pii.ner;
    ner.enabled.then(|| NerSettings {
        runtime: RuntimeSource::from_library(
            ner.onnxruntime_lib
                .as_deref()
                .map(|lib| loaded.resolve(lib)),
        ),
        model_dir: ner.model_dir.as_deref().map(|dir| loaded.resolve(dir)),
        size: PoolSize {
            threads: ner.threads,
            queue: ner.queue,
            max_batch: ner.max_batch,
        },
    })
}
