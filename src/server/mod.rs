//! The client-facing server: listener, optional TLS, HTTP/1.1 and HTTP/2, the tower
//! stack around the handler, and graceful shutdown.

pub mod auth_failures;
pub mod body;
pub mod context;
mod count_tokens;
mod credential;
pub mod disk;
mod dispatch;
pub mod error;
mod handler;
mod metering_stage;
pub mod pii_stage;
pub mod policy_stage;
pub mod request_id;
mod watchers;

use crate::audit::search::service::{IndexerThread, SearchHandle};
use crate::config::LoadedConfig;
use crate::routing::RouteTable;
use crate::store::instance_key::InstanceKey;
use crate::store::request_log::{RequestLog, RequestLogWriter};
use crate::telemetry::metrics::Metrics;
use crate::tenancy::{KeyCache, STATE_MIGRATIONS, StateMirror};
use anyhow::Context as _;
use http::Method;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;
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
    /// Checks admin tokens and records admin events; `None` when the admin API is off.
    pub admin: Option<crate::admin::AdminAccess>,
    /// Where audit records go; `None` when the audit trail is off.
    pub audit: Option<crate::audit::writer::AuditSink>,
    /// Audit records carry the request and response payloads.
    pub audit_payloads: bool,
    pub max_body_bytes: usize,
    pub body_timeout: Duration,
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

/// A running gateway's parts that outlive the serve loop.
pub struct Gateway {
    state: Arc<AppState>,
    writer: Writers,
    tls: Option<TlsAcceptor>,
    shutdown_grace: Duration,
    workers: usize,
}

impl Gateway {
    /// Opens the stores, loads keys and builds upstream clients.
    pub fn open(loaded: &LoadedConfig) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&loaded.data_dir)
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
        let routes =
            RouteTable::from_config(loaded, workers, &metrics).map_err(anyhow::Error::msg)?;
        let (log, request_log) = RequestLog::open(&loaded.request_log_db_path())?;
        let audit_config = &loaded.config.audit;
        let (audit, audit_writer) = if audit_config.enabled {
            let audit_log = crate::audit::log::AuditLog::open_configured(loaded, &instance_key)?;
            let (sink, writer) = crate::audit::writer::AuditWriter::start(
                audit_log,
                audit_config,
                &loaded.audit_db_path(),
            )
            .context("cannot start the audit writer")?;
            (Some(sink), Some(writer))
        } else {
            (None, None)
        };
        let searchable = audit_config.enabled && audit_config.search.enabled;
        let audit_index = searchable
            .then(|| {
                IndexerThread::start(loaded, instance_key.seal_key, metrics.audit_index.clone())
            })
            .transpose()
            .context("cannot start the audit indexer")?;
        let audit_search = searchable
            .then(|| SearchHandle::open(loaded).map(Arc::new))
            .transpose()?;
        let tls = match &server.tls {
            Some(tls) => Some(tls::acceptor(loaded, &tls.value)?),
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
            admin: server.admin_api.then(|| crate::admin::AdminAccess {
                state_db: loaded.state_db_path(),
                audit_db: loaded.audit_db_path(),
                request_log_db: loaded.request_log_db_path(),
                key_hash_secret: instance_key.key_hash_secret,
                seal_key: instance_key.seal_key,
                public_key: instance_key.public_key_hex(),
                audit_search,
            }),
            audit_payloads: audit.is_some() && audit_config.store_payloads,
            audit,
            max_body_bytes: server.max_body_bytes,
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
        } = self;
        let mut queues = Vec::with_capacity(workers);
        let mut threads = Vec::with_capacity(workers);
        for index in 0..workers {
            let (queue, connections) = tokio::sync::mpsc::unbounded_channel();
            let worker = Worker {
                index,
                connections,
                state: state.clone(),
                tls: tls.clone(),
                shutdown_grace,
            };
            let thread = std::thread::Builder::new()
                .name(format!("airlock-worker-{index}"))
                .spawn(move || worker.run())
                .context("cannot start a worker thread")?;
            queues.push(queue);
            threads.push(thread);
        }
        let health_checks = crate::routing::health::spawn_all(state.routes.upstreams());
        let watchers = watchers::Watchers::start(&state);
        tokio::pin!(shutdown);
        let mut next = 0;
        loop {
            let (stream, peer) = tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // Out of file descriptors and similar: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            match stream.into_std() {
                Ok(stream) => {
                    let _ = queues[next].send((stream, peer));
                    next = (next + 1) % queues.len();
                }
                Err(e) => tracing::warn!(%peer, error = %e, "cannot hand over a connection"),
            }
        }
        drop(listener);
        health_checks
            .iter()
            .for_each(tokio::task::JoinHandle::abort);
        state.draining.store(true, Ordering::Relaxed);
        watchers.stop().await;
        tracing::info!("shutting down: draining in-flight requests");
        // Closing the queues tells every worker to stop and drain.
        drop(queues);
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

/// A connection handed to a worker.
type Handover = (std::net::TcpStream, std::net::SocketAddr);

/// One worker thread: a single-threaded runtime serving the connections dealt to it.
struct Worker {
    index: usize,
    connections: tokio::sync::mpsc::UnboundedReceiver<Handover>,
    state: Arc<AppState>,
    tls: Option<TlsAcceptor>,
    shutdown_grace: Duration,
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
            shutdown_grace,
        } = self;
        let graceful = GracefulShutdown::new();
        let builder = Arc::new(http_builder());
        while let Some((stream, peer)) = connections.recv().await {
            let stream = match tokio::net::TcpStream::from_std(stream) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "cannot register a connection");
                    continue;
                }
            };
            let state = state.clone();
            let client_addr: Arc<str> = peer.to_string().into();
            let service = tower::ServiceBuilder::new()
                .layer(request_id::RequestIdLayer)
                .service_fn(move |req| {
                    let state = state.clone();
                    let client_addr = client_addr.clone();
                    async move {
                        Ok::<_, std::convert::Infallible>(
                            handler::handle(state, client_addr, req).await,
                        )
                    }
                });
            let service = TowerToHyperService::new(service);
            let builder = builder.clone();
            let watcher = graceful.watcher();
            let tls = tls.clone();
            tokio::spawn(async move {
                let result = match tls {
                    None => {
                        let conn =
                            builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                        watcher.watch(conn.into_owned()).await
                    }
                    Some(acceptor) => {
                        let handshake =
                            tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream))
                                .await;
                        let tls_stream = match handshake {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "TLS handshake timed out");
                                return;
                            }
                        };
                        let conn = builder
                            .serve_connection_with_upgrades(TokioIo::new(tls_stream), service);
                        watcher.watch(conn.into_owned()).await
                    }
                };
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
            });
        }
        if tokio::time::timeout(shutdown_grace, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(worker = index, grace = ?shutdown_grace, "in-flight requests still running after the grace period; cutting them");
        }
    }
}

/// HTTP/1.1 and HTTP/2 connection settings.
fn http_builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
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

mod tls {
    //! Server TLS from PEM files, rustls with the ring provider.
    use crate::config::{LoadedConfig, TlsConfig};
    use anyhow::Context as _;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use std::sync::Arc;
    use tokio_rustls::TlsAcceptor;

    pub fn acceptor(loaded: &LoadedConfig, cfg: &TlsConfig) -> anyhow::Result<TlsAcceptor> {
        let cert_path = loaded.resolve(&cfg.cert_file);
        let key_path = loaded.resolve(&cfg.key_file);
        let certs = CertificateDer::pem_file_iter(&cert_path)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .with_context(|| format!("server.tls.cert_file {}", cert_path.display()))?;
        anyhow::ensure!(
            !certs.is_empty(),
            "server.tls.cert_file {}: no certificate found",
            cert_path.display()
        );
        let key = PrivateKeyDer::from_pem_file(&key_path)
            .with_context(|| format!("server.tls.key_file {}", key_path.display()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .context("server.tls: certificate and key do not match")?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

/// The NER model's settings from `pii.ner` (paths relative to the config file), or
/// `None` when it is turned off.
fn ner_settings(loaded: &LoadedConfig) -> Option<crate::pii::ner::NerSettings> {
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
