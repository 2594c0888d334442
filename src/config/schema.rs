//! The configuration schema: every field of `airlock.yaml`, with its default.

use serde::Deserialize;
use serde_saphyr::Spanned;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::NonZeroU64;
use std::path::PathBuf;

/// The whole `airlock.yaml` file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Listener, TLS, limits.
    #[serde(default)]
    pub server: ServerConfig,
    /// Where databases and key material live; relative paths are relative to the config file.
    #[serde(default)]
    pub data_dir: Option<Spanned<PathBuf>>,
    /// Log level and format.
    #[serde(default)]
    pub logging: LoggingConfig,
    /// Model servers Airlock forwards to, by name.
    #[serde(default)]
    pub upstreams: BTreeMap<String, Spanned<UpstreamConfig>>,
    /// Logical model names clients use, each mapped to an upstream and its model name.
    #[serde(default)]
    pub models: BTreeMap<String, Spanned<ModelRoute>>,
    /// The tamper-evident audit trail.
    #[serde(default)]
    pub audit: AuditConfig,
    /// Personal data: detection, redaction and tokenisation.
    #[serde(default)]
    pub pii: super::PiiConfig,
    /// What models cost, per token.
    #[serde(default)]
    pub pricing: super::PricingConfig,
    /// How spending budgets estimate requests.
    #[serde(default)]
    pub budgets: super::BudgetsConfig,
    /// Clients that fail to authenticate: limited per address, recorded in aggregate.
    #[serde(default)]
    pub auth_failures: super::AuthFailuresConfig,
    /// Free space on the data directory's filesystem.
    #[serde(default)]
    pub disk: super::DiskConfig,
    /// Where webhooks set through the admin API may point.
    #[serde(default)]
    pub webhooks: super::WebhooksConfig,
    /// Tools clients declare that Airlock cannot offer to its models as they are.
    #[serde(default)]
    pub tools: ToolsConfig,
}

/// Tools clients declare (`tools.hosted`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ToolsConfig {
    /// Built-in tools a provider runs on its own side (OpenAI's `web_search`,
    /// `file_search`, …): `drop` leaves them out (named in `x-airlock-dropped-tools` and
    /// the audit record), `refuse` answers 400.
    pub hosted: HostedTools,
}

/// What happens to a provider-run tool a client declares.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostedTools {
    /// Left out of the request; the response and the audit record say so.
    #[default]
    Drop,
    /// The request is refused (400), naming the tool.
    Refuse,
}

/// The audit trail: what is recorded and how durably.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Record every request and admin action.
    pub enabled: bool,
    /// `durable`: a response waits until its record is on disk; `async`: it does not.
    pub mode: AuditMode,
    /// When a record cannot be written: `fail_closed` refuses the request, `fail_open`
    /// serves it and logs the failure.
    pub on_failure: OnAuditFailure,
    /// Store request and response payloads (encrypted) in records.
    pub store_payloads: bool,
    /// Longest payload stored, in bytes; longer ones are cut (and flagged).
    pub max_payload_bytes: usize,
    /// Sign a checkpoint once this many records are not yet covered…
    pub checkpoint_every_records: u64,
    /// …or once this many seconds passed with records not yet covered.
    pub checkpoint_interval_secs: u64,
    /// The search index over the log.
    pub search: AuditSearchConfig,
    /// How long stored payloads are kept.
    pub retention: AuditRetentionConfig,
    /// A file outside the data directory that every signed checkpoint is appended to
    /// (one JSON line each, fsync'd), for a place a local attacker cannot rewrite: a
    /// separate mount or owner, `chattr +a`. Relative to the configuration file.
    pub witness_file: Option<PathBuf>,
    /// Events queued for the writer before requests start to wait for room.
    pub queue_capacity: std::num::NonZeroUsize,
    /// A cap on the audit database's size in bytes (0: none): past it, records cannot
    /// be written, exactly as on a full disk.
    pub max_db_bytes: u64,
}

/// `audit.retention`: stored payloads are deleted once older than this (the records,
/// and the chain, are kept).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditRetentionConfig {
    /// Days a payload is kept; 0 keeps payloads.
    pub payload_days: u64,
    /// Per tenant (by name), overriding `payload_days`.
    pub tenants: BTreeMap<String, u64>,
}

impl AuditRetentionConfig {
    /// Days `tenant`'s payloads are kept (0: for ever).
    pub fn payload_days_of(&self, tenant: &str) -> u64 {
        self.tenants
            .get(tenant)
            .copied()
            .unwrap_or(self.payload_days)
    }

    pub fn any(&self) -> bool {
        self.payload_days > 0 || self.tenants.values().any(|d| *d > 0)
    }
}

/// `audit.search`: the tantivy view of the log.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditSearchConfig {
    /// Index records as the gateway writes them.
    pub enabled: bool,
    /// Seconds between index commits (records become searchable within about this).
    pub commit_interval_secs: u64,
    /// Delete index partitions (days) older than this many days; 0 keeps them. The log
    /// itself is not touched: the index can be rebuilt from it.
    pub retention_days: u64,
    /// Take names, places and organisations out of the indexed text with the NER model
    /// (`pii.ner`), beside the values the recognizers find. Off, they stay in the index in
    /// clear, and indexing is far faster (the model costs ~9 ms per 256 tokens of new text
    /// on one core).
    pub find_names: bool,
}

impl Default for AuditSearchConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            commit_interval_secs: 2,
            retention_days: 0,
            find_names: true,
        }
    }
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            mode: AuditMode::Durable,
            on_failure: OnAuditFailure::FailClosed,
            store_payloads: true,
            max_payload_bytes: 256 * 1024,
            checkpoint_every_records: 10_000,
            checkpoint_interval_secs: 60,
            search: AuditSearchConfig::default(),
            retention: AuditRetentionConfig::default(),
            witness_file: None,
            queue_capacity: std::num::NonZeroUsize::new(8192)
                .unwrap_or(std::num::NonZeroUsize::MIN),
            max_db_bytes: 0,
        }
    }
}

/// How long a response waits for its audit record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditMode {
    Durable,
    Async,
}

/// What happens when an audit record cannot be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnAuditFailure {
    FailClosed,
    FailOpen,
}

/// The client-facing listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address and port to listen on.
    pub listen: SocketAddr,
    /// Serve HTTPS with these PEM files; plain HTTP when absent.
    pub tls: Option<Spanned<TlsConfig>>,
    /// Largest request body accepted, in bytes; larger bodies get 413.
    pub max_body_bytes: usize,
    /// Seconds a client may take to send the request body (on every route, the admin
    /// API's included); slower bodies get 408.
    pub client_body_timeout_secs: u64,
    /// Seconds from accepting a connection until its first request head has arrived,
    /// the TLS handshake and HTTP/2's preface included; slower connections are closed.
    pub header_timeout_secs: NonZeroU64,
    /// Seconds a connection may stay open with no request in flight (HTTP/1.1
    /// keep-alive between requests, HTTP/2 with no open stream); then it is closed
    /// (HTTP/2 with a GOAWAY).
    pub idle_timeout_secs: NonZeroU64,
    /// Most client connections open at once; more are closed as soon as they are
    /// accepted. 0 derives it from the file-descriptor limit (see the README).
    pub max_connections: usize,
    /// Most connections open at once from one client address (IPv4 address, or IPv6
    /// /64 prefix). 0 means half of `max_connections`.
    pub max_connections_per_client: usize,
    /// Seconds to let in-flight requests finish after SIGTERM or Ctrl-C.
    pub shutdown_grace_secs: u64,
    /// Serve Prometheus metrics at `GET /metrics`.
    pub metrics: bool,
    /// File whose first line is a bearer token `GET /metrics` then requires; without
    /// it the metrics are open to anyone who reaches the listener.
    pub metrics_token_file: Option<PathBuf>,
    /// Serve the admin API under `/admin/` (admin tokens only).
    pub admin_api: bool,
    /// Threads serving connections; 0 means one per CPU core.
    pub worker_threads: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            tls: None,
            max_body_bytes: 4 * 1024 * 1024,
            client_body_timeout_secs: 60,
            header_timeout_secs: nonzero(10),
            idle_timeout_secs: nonzero(60),
            max_connections: 0,
            max_connections_per_client: 0,
            shutdown_grace_secs: 30,
            metrics: true,
            metrics_token_file: None,
            admin_api: true,
            worker_threads: 0,
        }
    }
}

/// `n` as a non-zero default (1 for 0).
const fn nonzero(n: u64) -> NonZeroU64 {
    match NonZeroU64::new(n) {
        Some(n) => n,
        None => NonZeroU64::MIN,
    }
}

/// TLS certificate chain and private key, both PEM.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// Log output.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingConfig {
    /// A tracing filter: `info`, `debug`, `airlock=debug,hyper=info`, …
    pub level: String,
    /// `text` for people, `json` for log shippers.
    pub format: LogFormat,
    /// Request-log rows queued for their writer before requests start to wait for room.
    pub request_log_queue: std::num::NonZeroUsize,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self {
            level: "info".to_string(),
            format: LogFormat::Text,
            request_log_queue: std::num::NonZeroUsize::new(65_536)
                .unwrap_or(std::num::NonZeroUsize::MIN),
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// The wire format an upstream speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamKind {
    /// vLLM, llama.cpp, TGI, SGLang, Ollama, OpenAI: the OpenAI HTTP API.
    OpenaiCompatible,
    /// Anthropic's Messages API (chat only; requests and answers are translated).
    Anthropic,
    /// Google Gemini's `generateContent` API (chat only; translated likewise).
    Gemini,
}

/// One model server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Wire format.
    #[serde(default = "default_kind")]
    pub kind: UpstreamKind,
    /// Base URL including the version prefix, e.g. `http://10.0.0.5:8000/v1`.
    pub base_url: String,
    /// Environment variable holding the upstream's API key (e.g. vLLM's `--api-key`).
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// File holding the upstream's API key (first line); relative to the config file.
    #[serde(default)]
    pub api_key_file: Option<PathBuf>,
    /// PEM file of the CA certificates an `https://` upstream's certificate must chain
    /// to, instead of the system's (an internal CA); relative to the config file.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// TCP (and TLS) connect timeout, in milliseconds.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Longest wait for the response head, and between two body chunks, in milliseconds.
    #[serde(default = "default_read_timeout_ms")]
    pub read_timeout_ms: u64,
    /// Idle keep-alive connections kept per upstream host.
    #[serde(default = "default_pool_max_idle")]
    pub pool_max_idle_per_host: usize,
    /// Seconds an idle pooled connection is kept.
    #[serde(default = "default_pool_idle_timeout_secs")]
    pub pool_idle_timeout_secs: u64,
    /// Probe the server in the background; while it fails, its targets are skipped.
    #[serde(default)]
    pub health_check: Option<HealthCheckConfig>,
    /// The server accepts chat messages of role `developer` (OpenAI does); otherwise
    /// (vLLM and most chat templates) they are sent as `system` messages.
    #[serde(default)]
    pub developer_role: bool,
}

/// An active health check: `GET path` every `interval_ms`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthCheckConfig {
    /// Path on the server, from its root (vLLM: `/health`).
    pub path: String,
    pub interval_ms: u64,
    /// A probe slower than this fails.
    pub timeout_ms: u64,
    /// Failed probes in a row that mark the server unhealthy.
    pub unhealthy_after: u32,
    /// Successful probes in a row that mark it healthy again.
    pub healthy_after: u32,
}

impl Default for HealthCheckConfig {
    fn default() -> Self {
        Self {
            path: "/health".into(),
            interval_ms: 5_000,
            timeout_ms: 2_000,
            unhealthy_after: 2,
            healthy_after: 1,
        }
    }
}

fn default_kind() -> UpstreamKind {
    UpstreamKind::OpenaiCompatible
}
fn default_connect_timeout_ms() -> u64 {
    5_000
}
fn default_read_timeout_ms() -> u64 {
    300_000
}
fn default_pool_max_idle() -> usize {
    256
}
/// Below vLLM's keep-alive (uvicorn closes idle connections after 5 s), so Airlock
/// never sends on a connection the upstream is closing.
fn default_pool_idle_timeout_secs() -> u64 {
    4
}

/// Where one logical model name goes: one upstream (`upstream`, `model`), or several
/// `targets` tried by priority and shared by weight; with retries and a circuit breaker
/// per target either way.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelRoute {
    /// Name of an entry under `upstreams:` (the one-target form).
    #[serde(default)]
    pub upstream: Option<String>,
    /// Model name the upstream knows; defaults to the logical name (one-target form).
    #[serde(default)]
    pub model: Option<String>,
    /// What the upstream's model can do (one-target form).
    #[serde(default)]
    pub capabilities: Capabilities,
    /// Several targets (instead of `upstream` and `model`).
    #[serde(default)]
    pub targets: Vec<TargetConfig>,
    /// When and how often a failed attempt is tried again.
    #[serde(default)]
    pub retry: RetryConfig,
    /// When a failing target is taken out of rotation.
    #[serde(default)]
    pub breaker: BreakerConfig,
    /// How targets of the same priority are ordered for each request.
    #[serde(default)]
    pub strategy: Strategy,
    /// A canary or A/B experiment: each caller is assigned an arm, and only that arm's
    /// targets (and targets in no arm) serve it.
    #[serde(default)]
    pub experiment: Option<ExperimentConfig>,
    /// An exact-match response cache (opt-in), per tenant; never for streams.
    #[serde(default)]
    pub cache: Option<CacheConfig>,
    /// Race a second target when the first has not answered in time.
    #[serde(default)]
    pub hedge: Option<HedgeConfig>,
    /// Provider credential (one-target form; see [`TargetConfig::credential`]).
    #[serde(default)]
    pub credential: Option<String>,
    /// One-target form of [`TargetConfig::credential_strategy`].
    #[serde(default)]
    pub credential_strategy: CredentialStrategy,
    /// One-target form of [`TargetConfig::credential_fallback`].
    #[serde(default)]
    pub credential_fallback: CredentialFallback,
}

/// Hedging: after `after_ms` without an answer from the first target, the next one is
/// tried too; the first success wins and the other attempt is cancelled.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HedgeConfig {
    pub after_ms: u64,
}

/// Bounds of a route's response cache.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// How long an answer is served from the cache.
    pub ttl_secs: u64,
    /// Most answers kept.
    pub max_entries: usize,
    /// Most bytes of answers kept.
    pub max_bytes: usize,
    /// Larger answers are not kept.
    pub max_entry_bytes: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            ttl_secs: 300,
            max_entries: 10_000,
            max_bytes: 64 * 1024 * 1024,
            max_entry_bytes: 1024 * 1024,
        }
    }
}

/// Named arms with traffic shares; targets join an arm with `arm:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// Recorded on every request-log row with the arm.
    pub name: String,
    /// Arm name → share (relative weights, e.g. `{stable: 95, canary: 5}`).
    pub arms: BTreeMap<String, u32>,
    /// Who keeps the same arm across requests.
    #[serde(default)]
    pub sticky: Sticky,
}

/// What an experiment's assignment is sticky to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sticky {
    /// The request's `user` field (OpenAI's end-user id) within the tenant; the virtual
    /// key when a request has none.
    #[default]
    User,
    /// The virtual key.
    Key,
    /// The tenant.
    Tenant,
}

impl ModelRoute {
    /// The route's targets, whichever form it was written in.
    pub fn target_list(&self) -> Vec<TargetConfig> {
        match &self.upstream {
            Some(upstream) if self.targets.is_empty() => vec![TargetConfig {
                upstream: upstream.clone(),
                model: self.model.clone(),
                weight: default_weight(),
                priority: 0,
                capabilities: self.capabilities.clone(),
                cost: 0.0,
                arm: None,
                credential: self.credential.clone(),
                credential_strategy: self.credential_strategy,
                credential_fallback: self.credential_fallback,
            }],
            _ => self.targets.clone(),
        }
    }
}

/// One place a logical model can be served from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// Name of an entry under `upstreams:`.
    pub upstream: String,
    /// Model name that upstream knows; defaults to the logical name.
    #[serde(default)]
    pub model: Option<String>,
    /// Share of traffic among targets of the same priority.
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Failover order: every target of priority 0 is tried before any of priority 1.
    #[serde(default)]
    pub priority: u32,
    /// What this target's model can do; requests that need more skip it.
    #[serde(default)]
    pub capabilities: Capabilities,
    /// Relative price of this target (any unit, e.g. dollars per million tokens), for
    /// the `cost` strategy.
    #[serde(default)]
    pub cost: f64,
    /// The experiment arm this target serves (see `experiment`); in none, it serves all.
    #[serde(default)]
    pub arm: Option<String>,
    /// Authenticate with provider credentials instead of the upstream's own key:
    /// `tenant` uses the calling tenant's credentials for this upstream (BYOK); any other
    /// value names an instance-wide credential for this upstream.
    #[serde(default)]
    pub credential: Option<String>,
    /// Which of several credentials an attempt uses.
    #[serde(default)]
    pub credential_strategy: CredentialStrategy,
    /// What happens when no credential is usable (none created, all revoked, or all
    /// refused by the provider in this request).
    #[serde(default)]
    pub credential_fallback: CredentialFallback,
}

/// Which of a pool's active credentials an attempt uses. Whatever the strategy, a
/// credential the provider refuses (401/403) or throttles (429) makes the request try
/// the next one on the same target, and rests it for a while; keys in a rotation's grace
/// period are tried only after every active one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialStrategy {
    /// Each in turn.
    #[default]
    RoundRobin,
    /// The one with the fewest attempts so far (counted since the gateway started).
    LeastUsed,
    /// The oldest first; the next only when it fails.
    Failover,
}

/// What a target does when no credential is usable for a request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialFallback {
    /// Skip the target (the next target may serve); with no target left the request is
    /// refused with 403 `no_provider_credential`.
    #[default]
    Refuse,
    /// Use the upstream's own key (`api_key_env` / `api_key_file`), which must be set.
    UpstreamKey,
}

/// How targets of the same priority are ordered for each request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// At random, in proportion to `weight`.
    #[default]
    Weighted,
    /// Fewest requests in flight first.
    LeastOutstanding,
    /// Lowest observed latency first (moving average of time to the answer's start);
    /// targets not yet measured go first.
    Latency,
    /// Lowest `cost` first.
    Cost,
}

/// What a target's model can do. Everything is assumed until declared otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Capabilities {
    /// Function calling (`tools`, `functions`).
    pub tools: bool,
    /// Structured output (`response_format: {type: json_schema}`).
    pub json_schema: bool,
    /// Image inputs (`image_url` content parts).
    pub vision: bool,
    /// Streamed responses.
    pub streaming: bool,
    /// Longest prompt plus completion, in tokens (estimated at four bytes a token);
    /// unlimited when absent.
    pub max_context_tokens: Option<u64>,
}

impl Default for Capabilities {
    fn default() -> Self {
        Self {
            tools: true,
            json_schema: true,
            vision: true,
            streaming: true,
            max_context_tokens: None,
        }
    }
}

fn default_weight() -> u32 {
    1
}

/// Retries of failed attempts: connection failures, timeouts, 429, 500, 502, 503 and 504,
/// and only before anything reached the client.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Attempts per request in all, the first included (1 = no retries).
    pub attempts: u32,
    /// First backoff before a retry, in milliseconds; doubles per retry, with full jitter.
    pub backoff_ms: u64,
    /// Longest backoff, in milliseconds.
    pub max_backoff_ms: u64,
    /// A 429's `Retry-After` up to this long (ms) is waited for before retrying the same
    /// target; a longer one takes the target out of rotation for that time instead.
    pub max_retry_after_ms: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            attempts: 3,
            backoff_ms: 50,
            max_backoff_ms: 2_000,
            max_retry_after_ms: 5_000,
        }
    }
}

/// A circuit breaker per target: opens after `failure_threshold` consecutive failures,
/// or when at least `min_requests` in the last `window_secs` failed at `error_rate` or
/// more; stays open `open_secs`; then lets one probe request through (half-open), which
/// closes it on success and reopens it on failure.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerConfig {
    pub enabled: bool,
    pub failure_threshold: u32,
    pub error_rate: f64,
    pub min_requests: u32,
    pub window_secs: u64,
    pub open_secs: u64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            failure_threshold: 5,
            error_rate: 0.5,
            min_requests: 20,
            window_secs: 30,
            open_secs: 30,
        }
    }
}
