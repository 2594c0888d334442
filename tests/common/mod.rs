//! Shared harness for integration tests: a real mock-upstream and a real gateway on
//! loopback ephemeral ports, real SQLite files in a temporary directory, and a plain
//! hyper client.
#![allow(dead_code)]

pub mod formats;

use airlock::config::LoadedConfig;
use airlock::mock_upstream::MockArgs;
use airlock::store::instance_key::InstanceKey;
use airlock::store::request_log::{RequestRecord, read_recent};
use airlock::tenancy::{KeyStore, NewKey, STATE_MIGRATIONS};
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Parser)]
struct MockCli {
    #[command(flatten)]
    args: MockArgs,
}

/// Mock-upstream arguments as its command line would parse them.
pub fn mock_args(extra: &[&str]) -> MockArgs {
    let mut argv = vec!["mock-upstream"];
    argv.extend_from_slice(extra);
    MockCli::parse_from(argv).args
}

/// A unique scratch directory under the system temp dir.
pub fn scratch_dir(tag: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "airlock-it-{tag}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Starts mock-upstream on an ephemeral port; returns its address and a stop switch.
pub async fn start_mock(extra: &[&str]) -> (SocketAddr, watch::Sender<bool>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, mut rx) = watch::channel(false);
    let args = mock_args(extra);
    tokio::spawn(airlock::mock_upstream::serve(listener, args, async move {
        let _ = rx.wait_for(|s| *s).await;
    }));
    (addr, tx)
}

pub const UPSTREAM_SECRET: &str = "upstream-secret-123";

pub struct Gateway {
    pub addr: SocketAddr,
    pub mock: SocketAddr,
    pub dir: PathBuf,
    pub loaded: LoadedConfig,
    pub key: String,
    stop: watch::Sender<bool>,
    mock_stop: watch::Sender<bool>,
    task: JoinHandle<anyhow::Result<airlock::server::Writers>>,
}

/// The gateway's config for a test; `extra_server` lines go under `server:`, `extra`
/// lines (more upstreams and models, two-space indented) under `upstreams:` and `models:`.
pub fn config_text(
    gateway: SocketAddr,
    mock: SocketAddr,
    extra_server: &str,
    extra: &Extra,
) -> String {
    let Extra {
        upstreams,
        models,
        top,
        logging,
    } = extra;
    // A test may set its own body limit under `server:`.
    let body_limit = if extra_server.contains("max_body_bytes:") {
        ""
    } else {
        "  max_body_bytes: 65536\n"
    };
    format!(
        "server:
  listen: {gateway}
{body_limit}  client_body_timeout_secs: 1
  shutdown_grace_secs: 5
{extra_server}logging:
  level: warn
{logging}upstreams:
  mock:
    base_url: http://{mock}/v1
    api_key_file: upstream.key
    read_timeout_ms: 3000
  down:
    base_url: http://127.0.0.1:9/v1
    connect_timeout_ms: 500
{upstreams}models:
  # One attempt, no breaker: each error case reaches the client as the upstream made it.
  chat-model:
    upstream: mock
    model: mock-llama
    retry: {{attempts: 1}}
    breaker: {{enabled: false}}
  embed-model:
    upstream: mock
    model: mock-llama
    retry: {{attempts: 1}}
    breaker: {{enabled: false}}
  broken-model:
    upstream: down
    retry: {{attempts: 1}}
    breaker: {{enabled: false}}
{models}{top}"
    )
}

/// An admin token of `role` across tenants.
pub fn admin_token(gw: &Gateway, role: airlock::tenancy::rbac::Role) -> String {
    scoped_token(gw, role, None)
}

/// An admin token of `role`, scoped to `tenant` when given.
pub fn scoped_token(
    gw: &Gateway,
    role: airlock::tenancy::rbac::Role,
    tenant: Option<&str>,
) -> String {
    let ik = InstanceKey::read(&gw.loaded.key_file_path()).unwrap();
    let conn = airlock::store::open(&gw.loaded.state_db_path(), STATE_MIGRATIONS).unwrap();
    airlock::tenancy::AdminTokenStore::new(&conn, &ik.key_hash_secret)
        .create(role.name(), role, tenant, None, "test")
        .unwrap()
        .1
}

/// An admin API request with `token`; a null body sends none.
pub async fn admin(
    gw: &Gateway,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Value,
) -> Reply {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("content-type", "application/json")];
    if let Some(auth) = &auth {
        headers.push(("authorization", auth.as_str()));
    }
    let body = if body.is_null() {
        Vec::new()
    } else {
        serde_json::to_vec(&body).unwrap()
    };
    send(method, &gw.url(path), &headers, body).await
}

/// More upstreams and models for a test's gateway.
#[derive(Default)]
pub struct Extra {
    pub upstreams: String,
    pub models: String,
    /// Top-level sections (e.g. `audit:`), appended last.
    pub top: String,
    /// More `logging:` lines (two-space indented).
    pub logging: String,
}

impl Gateway {
    /// A gateway whose `cut-model` goes, without retries, to a second mock-upstream that
    /// injects `fault` (e.g. `reset`) into every request; the stop switch of that mock.
    pub async fn with_cut_model(fault: &str) -> (Self, watch::Sender<bool>) {
        let (cut, stop) = start_mock(&["--fault", fault]).await;
        let extra = Extra {
            upstreams: format!("  cut:\n    base_url: http://{cut}/v1\n"),
            models:
                "  cut-model:\n    upstream: cut\n    model: mock-llama\n    retry: {attempts: 1}\n"
                    .into(),
            ..Extra::default()
        };
        (Self::start_full("", &[], &extra).await, stop)
    }

    pub async fn start() -> Self {
        Self::start_with("", &[]).await
    }

    /// Starts mock-upstream (with `mock_flags`) and a gateway (with extra `server:` lines).
    pub async fn start_with(extra_server: &str, mock_flags: &[&str]) -> Self {
        Self::start_full(extra_server, mock_flags, &Extra::default()).await
    }

    /// A gateway with these more upstreams and models (lines under `upstreams:` and
    /// `models:`).
    pub async fn with_routes(upstreams: String, models: String) -> Self {
        let extra = Extra {
            upstreams,
            models,
            ..Extra::default()
        };
        Self::start_full("", &[], &extra).await
    }

    /// Like `start_with`, with more upstreams and models in the config.
    pub async fn start_full(extra_server: &str, mock_flags: &[&str], extra: &Extra) -> Self {
        let mut flags = vec!["--api-key", UPSTREAM_SECRET];
        flags.extend_from_slice(mock_flags);
        let (mock, mock_stop) = start_mock(&flags).await;
        let dir = scratch_dir("gw");
        std::fs::write(dir.join("upstream.key"), format!("{UPSTREAM_SECRET}\n")).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let text = config_text(addr, mock, extra_server, extra);
        let config_path = dir.join("airlock.yaml");
        std::fs::write(&config_path, &text).unwrap();
        let loaded = LoadedConfig::load(&config_path).unwrap();
        InstanceKey::generate()
            .unwrap()
            .write_new(&loaded.key_file_path())
            .unwrap();
        let gateway = airlock::server::Gateway::open(&loaded).unwrap();
        let (stop, mut rx) = watch::channel(false);
        let task = tokio::spawn(gateway.serve(listener, async move {
            let _ = rx.wait_for(|s| *s).await;
        }));
        let mut gw = Self {
            addr,
            mock,
            dir,
            loaded,
            key: String::new(),
            stop,
            mock_stop,
            task,
        };
        gw.key = gw.create_key("acme", None, None);
        gw
    }

    /// Creates a key through the state database, as the CLI does.
    pub fn create_key(
        &self,
        tenant: &str,
        models: Option<Vec<String>>,
        expires_at: Option<i64>,
    ) -> String {
        self.issue_key(NewKey {
            tenant: tenant.into(),
            name: "test".into(),
            models,
            expires_at,
            ..NewKey::default()
        })
    }

    /// Creates a key as described (to a team or user, say), as the CLI does.
    pub fn issue_key(&self, new: NewKey) -> String {
        let ik = InstanceKey::read(&self.loaded.key_file_path()).unwrap();
        KeyStore::new(&self.state_db(), &ik.key_hash_secret)
            .create(&new, "test")
            .unwrap()
            .secret
    }

    /// A connection to the state database, as the CLI opens it.
    pub fn state_db(&self) -> rusqlite::Connection {
        airlock::store::open(&self.loaded.state_db_path(), STATE_MIGRATIONS).unwrap()
    }

    /// Revokes a key by its secret's id, through another connection.
    pub fn revoke_all(&self, tenant: &str) {
        let ik = InstanceKey::read(&self.loaded.key_file_path()).unwrap();
        let conn = airlock::store::open(&self.loaded.state_db_path(), STATE_MIGRATIONS).unwrap();
        let store = KeyStore::new(&conn, &ik.key_hash_secret);
        for k in store.list(Some(tenant)).unwrap() {
            if k.revoked_at.is_none() {
                store.revoke(&k.id, "test").unwrap();
            }
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Stops the gateway and the mock; returns every request-log row, newest first.
    pub async fn stop(self) -> Vec<RequestRecord> {
        let dir = self.dir.clone();
        let rows = self.stop_keeping_files().await;
        let _ = std::fs::remove_dir_all(&dir);
        rows
    }

    /// Stops the gateway (the mock keeps running), lets `edit` change the stopped
    /// instance's files, and starts a gateway again on the same directory and
    /// configuration, as restarting the service would. Keys and tokens stay valid.
    pub async fn restart(self, edit: impl FnOnce(&LoadedConfig)) -> Self {
        self.stop.send(true).unwrap();
        let writer = self.task.await.unwrap().unwrap();
        tokio::task::spawn_blocking(move || writer.finish())
            .await
            .unwrap();
        edit(&self.loaded);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let gateway = airlock::server::Gateway::open(&self.loaded).unwrap();
        let (stop, mut rx) = watch::channel(false);
        let task = tokio::spawn(gateway.serve(listener, async move {
            let _ = rx.wait_for(|s| *s).await;
        }));
        Self {
            addr,
            stop,
            task,
            ..self
        }
    }

    /// Like `stop`, leaving the instance directory in place.
    pub async fn stop_keeping_files(self) -> Vec<RequestRecord> {
        self.stop.send(true).unwrap();
        let writer = self.task.await.unwrap().unwrap();
        tokio::task::spawn_blocking(move || writer.finish())
            .await
            .unwrap();
        let _ = self.mock_stop.send(true);
        read_recent(&self.loaded.request_log_db_path(), 100_000).unwrap()
    }
}

/// A response read whole.
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts an OpenAI-shaped error with this status and code.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "body: {}", self.text());
        let v = self.json();
        let e = &v["error"];
        assert_eq!(e["code"], code, "body: {v}");
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        assert!(e["type"].is_string(), "{v}");
        assert!(e.get("param").is_some(), "{v}");
    }

    /// The `Retry-After` header's seconds, checked to be a sane wait (1 to 60 s).
    pub fn retry_after(&self) -> u64 {
        let wait: u64 = self.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&wait), "{wait}");
        wait
    }

    /// Asserts an admin API error: its status and `error.code`, with a message.
    pub fn assert_admin_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "body: {}", self.text());
        let v = self.json();
        assert_eq!(v["error"]["code"], code, "body: {v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{v}"
        );
    }

    /// `(event name, data)` of each named event of an SSE body (Anthropic's and the
    /// Responses API's streams).
    pub fn named_events(&self) -> Vec<(String, Value)> {
        self.text()
            .split("\n\n")
            .filter(|e| !e.trim().is_empty())
            .map(|e| {
                let (name, data) = e.split_once('\n').unwrap();
                let data = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
                (name.strip_prefix("event: ").unwrap().to_string(), data)
            })
            .collect()
    }

    pub fn sse_data(&self) -> Vec<String> {
        self.text()
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: ").map(str::to_string))
            .collect()
    }
}

pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

/// An HTTPS client trusting only `root`, speaking HTTP/2 (by ALPN) or HTTP/1.1.
pub fn https_client(
    root: rustls::pki_types::CertificateDer<'static>,
    h2: bool,
) -> Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only();
    let connector = if h2 {
        builder.enable_http2().build()
    } else {
        builder.enable_http1().build()
    };
    Client::builder(TokioExecutor::new())
        .http2_only(h2)
        .build(connector)
}

/// Sends a request and reads the whole answer.
pub async fn send(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Reply {
    send_with(client(), method, url, headers, body).await
}

/// Like [`send`], from the local address `from` (loopback answers on all of 127/8, so
/// a test can be several clients).
pub async fn send_from(
    from: &str,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Reply {
    let mut connector = HttpConnector::new();
    connector.set_local_address(Some(from.parse().unwrap()));
    let client = Client::builder(TokioExecutor::new()).build(connector);
    send_with(client, method, url, headers, body).await
}

async fn send_with(
    client: Client<HttpConnector, Full<Bytes>>,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Reply {
    let mut builder = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let response = client
        .request(builder.body(Full::new(body.into())).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        body,
    }
}

/// A POST of the JSON `body` to `url` with a bearer key, for a test that reads its
/// answer frame by frame.
pub fn json_request(url: &str, key: &str, body: &Value) -> http::Request<Full<Bytes>> {
    http::Request::post(url)
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(serde_json::to_vec(body).unwrap())))
        .unwrap()
}

/// POSTs JSON with a bearer key.
pub async fn post(url: &str, key: &str, body: &Value) -> Reply {
    let auth = format!("Bearer {key}");
    send(
        "POST",
        url,
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        serde_json::to_vec(body).unwrap(),
    )
    .await
}

/// Waits (up to 30 s) until mock-upstream at `mock` counts one abandoned answer: the
/// gateway really cancelled a request it no longer needed.
pub async fn wait_for_upstream_cancellation(mock: SocketAddr) {
    let url = format!("http://{mock}/mock/cancelled");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while send("GET", &url, &[], "").await.json()["cancelled"] != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the upstream kept working on a request the gateway no longer needed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Every request body the mock-upstream at `mock` kept (`--record-requests`), oldest first.
pub async fn upstream_bodies(mock: SocketAddr) -> Vec<Value> {
    let url = format!("http://{mock}/mock/requests");
    let kept = send("GET", &url, &[], Bytes::new()).await.json();
    kept.as_array()
        .cloned()
        .expect("GET /mock/requests answers a list (is --record-requests on?)")
}

/// What mock-upstream last received.
pub async fn last_upstream_request(mock: SocketAddr) -> Value {
    send(
        "GET",
        &format!("http://{mock}/mock/last-request"),
        &[],
        Bytes::new(),
    )
    .await
    .json()
}

/// Runs the `airlock` binary with `args`: success, stdout, stderr.
pub fn run_airlock(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(args)
        .output()
        .unwrap();
    outcome(out)
}

/// Runs the `airlock` binary with `args` and `input` on its stdin: success, stdout, stderr.
pub fn run_airlock_with_stdin(args: &[&str], input: &str) -> (bool, String, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_airlock"));
    command.args(args);
    run_with_stdin(&mut command, input)
}

/// Runs `command` with `input` on its stdin: success, stdout, stderr.
pub fn run_with_stdin(command: &mut std::process::Command, input: &str) -> (bool, String, String) {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    outcome(child.wait_with_output().unwrap())
}

/// The arguments of `airlock evidence export` writing a SOC 2 package of every record of
/// the instance `config` to `out`.
pub fn evidence_export_args(config: &str, out: &std::path::Path) -> Vec<String> {
    [
        "evidence",
        "export",
        "--config",
        config,
        "--framework",
        "soc2",
        "--from",
        "2000-01-01T00:00:00Z",
        "--to",
        "2100-01-01T00:00:00Z",
        "--out",
    ]
    .into_iter()
    .map(str::to_string)
    .chain([out.display().to_string()])
    .collect()
}

fn outcome(out: std::process::Output) -> (bool, String, String) {
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The audit records of LLM requests, oldest first.
pub fn audit_records(gw: &Gateway) -> Vec<Value> {
    let conn = rusqlite::Connection::open(gw.loaded.audit_db_path()).unwrap();
    let mut stmt = conn
        .prepare("SELECT body FROM records WHERE kind = 'llm.request' ORDER BY seq")
        .unwrap();
    stmt.query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|b| serde_json::from_str(&b.unwrap()).unwrap())
        .collect()
}

/// `airlock serve` as its own process (the real binary, started through `sh` so a test
/// can set its open-file limit with `ulimit`), with a mock-upstream in this process and
/// everything the gateway logs collected.
pub struct Served {
    pub child: std::process::Child,
    pub addr: SocketAddr,
    pub mock: SocketAddr,
    pub key: String,
    pub dir: PathBuf,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
    mock_stop: watch::Sender<bool>,
}

impl Served {
    /// Starts mock-upstream (with `mock_flags`) and `airlock serve` with `extra_server`
    /// lines under `server:`, after `ulimit` runs with `ulimit_args` (none: no change);
    /// `log_filter` goes to `AIRLOCK_LOG`.
    pub async fn start(
        extra_server: &str,
        ulimit_args: &str,
        mock_flags: &[&str],
        log_filter: &str,
    ) -> Self {
        use std::io::{BufRead, Read};
        let mut flags = vec!["--api-key", UPSTREAM_SECRET];
        flags.extend_from_slice(mock_flags);
        let (mock, mock_stop) = start_mock(&flags).await;
        let dir = scratch_dir("served");
        std::fs::write(dir.join("upstream.key"), format!("{UPSTREAM_SECRET}\n")).unwrap();
        let any_port: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let config = dir.join("airlock.yaml");
        std::fs::write(
            &config,
            config_text(any_port, mock, extra_server, &Extra::default()),
        )
        .unwrap();
        let loaded = LoadedConfig::load(&config).unwrap();
        let instance_key = InstanceKey::generate().unwrap();
        instance_key.write_new(&loaded.key_file_path()).unwrap();
        let conn = airlock::store::open(&loaded.state_db_path(), STATE_MIGRATIONS).unwrap();
        let key = KeyStore::new(&conn, &instance_key.key_hash_secret)
            .create(
                &NewKey {
                    tenant: "acme".into(),
                    name: "test".into(),
                    ..NewKey::default()
                },
                "test",
            )
            .unwrap()
            .secret;
        let limit = if ulimit_args.is_empty() {
            String::new()
        } else {
            format!("ulimit {ulimit_args} && ")
        };
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{limit}exec \"$0\" serve --config \"$1\""))
            .arg(env!("CARGO_BIN_EXE_airlock"))
            .arg(&config)
            .env("AIRLOCK_LOG", log_filter)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut pipe = child.stderr.take().unwrap();
        let collected = stderr.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            while let Ok(n) = pipe.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                collected
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&chunk[..n]));
            }
        });
        let stdout = child.stdout.take().unwrap();
        let addr = tokio::task::spawn_blocking(move || {
            std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .find_map(|line| {
                    line.strip_prefix("airlock listening on http://")
                        .map(|addr| addr.parse::<SocketAddr>().unwrap())
                })
        })
        .await
        .unwrap();
        let Some(addr) = addr else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("airlock serve did not start: {}", stderr.lock().unwrap());
        };
        Self {
            child,
            addr,
            mock,
            key,
            dir,
            stderr,
            mock_stop,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// What the gateway logged so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Sends SIGTERM, as systemd does to stop the service.
    pub fn terminate(&self) {
        rustix::process::kill_process(
            rustix::process::Pid::from_child(&self.child),
            rustix::process::Signal::TERM,
        )
        .unwrap();
    }

    /// Waits for the process to exit (after [`Served::terminate`]); whether it succeeded.
    pub async fn wait(&mut self) -> bool {
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = self.mock_stop.send(true);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
