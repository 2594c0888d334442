//! An upstream server: OpenAI-compatible (vLLM, llama.cpp, TGI, SGLang, Ollama, OpenAI),
//! Anthropic's API or Gemini's (whose bodies are translated in `providers::wire_format`): a pooled
//! keep-alive client that injects the upstream's own credential in the form its kind
//! expects, and probes it for health checks.

use super::h1;
use super::inline_pool::{InlineBody, InlinePool};
use crate::config::{HealthCheckConfig, LoadedConfig, UpstreamConfig, UpstreamKind};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Why an upstream call failed before a response head arrived.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot reach the upstream: {0}")]
    Connect(String),
    #[error("the upstream did not answer within {0:?}")]
    Timeout(Duration),
    #[error("bad upstream request: {0}")]
    Build(String),
}

/// Where on an upstream a request goes.
#[derive(Debug, Clone, Copy)]
pub enum UpstreamPath<'a> {
    /// Below the base URL: `/chat/completions` goes to `/v1/chat/completions`.
    Api(&'a str),
    /// From the server's root (vLLM's `/tokenize`, health checks).
    Root(&'a str),
}

/// How requests reach an upstream; one pool per worker thread either way.
enum Transport {
    /// `http://`: connections driven inline by the requests using them.
    Inline { pools: Vec<Arc<InlinePool>> },
    /// `https://` (TLS, and HTTP/2 by ALPN): hyper-util's pooled client.
    Client(Vec<Client<HttpsConnector<HttpConnector>, Full<Bytes>>>),
}

/// One configured upstream server.
pub struct Upstream {
    pub name: Arc<str>,
    /// The wire format it speaks.
    pub kind: UpstreamKind,
    /// `scheme://host:port` of the base URL.
    origin: String,
    /// The base URL's path, e.g. `/v1` (no trailing slash).
    base_path: String,
    authorization: Option<HeaderValue>,
    pub read_timeout: Duration,
    transport: Transport,
    /// The active health check, if configured.
    pub health_check: Option<HealthCheckConfig>,
    /// What the health check last concluded (healthy until it says otherwise).
    healthy: AtomicBool,
    /// It takes chat messages of role `developer` (else they are sent as `system`).
    pub developer_role: bool,
}

/// A response body from either transport.
pub enum UpstreamBody {
    /// Boxed: it carries its connection, which is large.
    Inline(Box<InlineBody>),
    Client(Incoming),
}

impl UpstreamBody {
    /// Scheduler turns the connection needs to decode bytes it has already read, once
    /// the body reported it has nothing: so a burst read in one `recv` can leave in one
    /// write. An inline body decodes everything read within its own poll: none.
    /// hyper-util's client (https upstreams) drives each connection in its own task:
    /// two (wake on demand, then decode).
    pub fn turns_to_decode_buffered(&self) -> u8 {
        match self {
            UpstreamBody::Inline(_) => 0,
            UpstreamBody::Client(_) => 2,
        }
    }
}

impl http_body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        match self.get_mut() {
            UpstreamBody::Inline(b) => std::pin::Pin::new(b.as_mut()).poll_frame(cx),
            UpstreamBody::Client(b) => std::pin::Pin::new(b)
                .poll_frame(cx)
                .map_err(std::io::Error::other),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Inline(b) => b.is_end_stream(),
            UpstreamBody::Client(b) => b.is_end_stream(),
        }
    }
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .field("origin", &self.origin)
            .field("base_path", &self.base_path)
            .finish_non_exhaustive()
    }
}

/// Reads the upstream's API key from the configured environment variable or file.
fn read_api_key(
    name: &str,
    cfg: &UpstreamConfig,
    loaded: &LoadedConfig,
) -> Result<Option<String>, String> {
    if let Some(var) = &cfg.api_key_env {
        return std::env::var(var)
            .map(Some)
            .map_err(|_| format!("upstream `{name}`: environment variable `{var}` is not set"));
    }
    if let Some(file) = &cfg.api_key_file {
        let path = loaded.resolve(file);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            format!(
                "upstream `{name}`: cannot read api_key_file {}: {e}",
                path.display()
            )
        })?;
        let key = text.lines().next().unwrap_or("").trim().to_string();
        if key.is_empty() {
            return Err(format!(
                "upstream `{name}`: api_key_file {} is empty",
                path.display()
            ));
        }
        return Ok(Some(key));
    }
    Ok(None)
}

impl Upstream {
    /// Builds the clients for one upstream, one per worker thread.
    pub fn new(
        name: &str,
        cfg: &UpstreamConfig,
        loaded: &LoadedConfig,
        workers: usize,
    ) -> Result<Self, String> {
        // OpenAI-compatible servers take a bearer token; Anthropic takes `x-api-key`,
        // Gemini `x-goog-api-key`.
        let authorization = match read_api_key(name, cfg, loaded)? {
            Some(key) => {
                let value = match cfg.kind {
                    UpstreamKind::OpenaiCompatible => format!("Bearer {key}"),
                    UpstreamKind::Anthropic | UpstreamKind::Gemini => key,
                };
                let mut v = HeaderValue::from_str(&value).map_err(|_| {
                    format!("upstream `{name}`: the API key has invalid characters")
                })?;
                v.set_sensitive(true);
                Some(v)
            }
            None => None,
        };
        let uri: http::Uri = cfg
            .base_url
            .parse()
            .map_err(|e| format!("upstream `{name}`: bad base_url: {e}"))?;
        let connect_timeout = Duration::from_millis(cfg.connect_timeout_ms);
        let transport = if uri.scheme_str() == Some("http") {
            inline_transport(name, &uri, cfg, connect_timeout, workers)?
        } else {
            let roots = match &cfg.ca_file {
                Some(file) => Some(ca_roots(name, &loaded.resolve(file))?),
                None => None,
            };
            client_transport(name, cfg, connect_timeout, workers, roots)?
        };
        Ok(Self {
            name: name.into(),
            kind: cfg.kind,
            origin: format!(
                "{}://{}",
                uri.scheme_str().unwrap_or("http"),
                uri.authority().map_or("", |a| a.as_str())
            ),
            base_path: uri.path().trim_end_matches('/').to_string(),
            authorization,
            read_timeout: Duration::from_millis(cfg.read_timeout_ms),
            transport,
            health_check: cfg.health_check.clone(),
            healthy: AtomicBool::new(true),
            developer_role: cfg.developer_role,
        })
    }

    /// Whether requests may go here (the health check has not found it failing).
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    pub fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::Relaxed);
    }

    /// `GET path` (from the server's root) on a connection of its own; the status.
    pub async fn probe(&self, path: &str) -> Result<http::StatusCode, String> {
        let mut headers = HeaderMap::with_capacity(4);
        headers.insert(
            header::USER_AGENT,
            HeaderValue::from_static(concat!("airlock/", env!("CARGO_PKG_VERSION"))),
        );
        // Hosted APIs answer nothing without it; the key only goes where it belongs.
        self.insert_auth_headers(&mut headers, None);
        match &self.transport {
            Transport::Inline { pools, .. } => {
                let pool = &pools[0];
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
                let wire = h1::encode_request(&Method::GET, path, pool.authority(), &headers, b"");
                pool.probe(&wire).await.map_err(|e| error_chain(&e))
            }
            Transport::Client(clients) => {
                let mut request = Request::get(format!("{}{path}", self.origin))
                    .body(Full::new(Bytes::new()))
                    .map_err(|e| e.to_string())?;
                *request.headers_mut() = headers;
                let response = clients[0]
                    .request(request)
                    .await
                    .map_err(|e| error_chain(&e))?;
                Ok(response.status())
            }
        }
    }

    /// POSTs a JSON body to `path` and waits for the head; authenticated with
    /// `credential` (a provider credential's header value, in the form this upstream's
    /// kind reads) when given, else with the upstream's own key.
    pub async fn post_json(
        &self,
        path: UpstreamPath<'_>,
        body: Vec<u8>,
        stream: bool,
        request_id: &str,
        credential: Option<&HeaderValue>,
    ) -> Result<http::Response<UpstreamBody>, UpstreamError> {
        let headers = self.request_headers(stream, request_id, credential)?;
        let worker = super::pool_index();
        let sent = match &self.transport {
            Transport::Inline { pools } => {
                let pool = &pools[worker % pools.len()];
                let target = match path {
                    UpstreamPath::Api(path) => format!("{}{path}", self.base_path),
                    UpstreamPath::Root(path) => path.to_string(),
                };
                let wire =
                    h1::encode_request(&Method::POST, &target, pool.authority(), &headers, &body);
                tokio::time::timeout(self.read_timeout, pool.send(&wire))
                    .await
                    .map(|r| {
                        r.map(|resp| resp.map(|b| UpstreamBody::Inline(Box::new(b))))
                            .map_err(|e| error_chain(&e))
                    })
            }
            Transport::Client(clients) => {
                let url = match path {
                    UpstreamPath::Api(path) => format!("{}{}{path}", self.origin, self.base_path),
                    UpstreamPath::Root(path) => format!("{}{path}", self.origin),
                };
                let mut request = Request::post(url)
                    .body(Full::new(Bytes::from(body)))
                    .map_err(|e| UpstreamError::Build(e.to_string()))?;
                *request.headers_mut() = headers;
                let client = &clients[worker % clients.len()];
                tokio::time::timeout(self.read_timeout, client.request(request))
                    .await
                    .map(|r| {
                        r.map(|resp| resp.map(UpstreamBody::Client))
                            .map_err(|e| error_chain(&e))
                    })
            }
        };
        match sent {
            Err(_) => Err(UpstreamError::Timeout(self.read_timeout)),
            Ok(Err(e)) => Err(UpstreamError::Connect(e)),
            Ok(Ok(response)) => Ok(response),
        }
    }

    /// The headers of a request to this upstream (the transport adds `Host` and the
    /// body's length): JSON in, JSON or events out, the request id, and the credential.
    fn request_headers(
        &self,
        stream: bool,
        request_id: &str,
        credential: Option<&HeaderValue>,
    ) -> Result<HeaderMap, UpstreamError> {
        let mut headers = HeaderMap::with_capacity(8);
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(
            header::USER_AGENT,
            HeaderValue::from_static(concat!("airlock/", env!("CARGO_PKG_VERSION"))),
        );
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static(if stream {
                "text/event-stream"
            } else {
                "application/json"
            }),
        );
        headers.insert(
            HeaderName::from_static("x-request-id"),
            HeaderValue::from_str(request_id).map_err(|e| UpstreamError::Build(e.to_string()))?,
        );
        self.insert_auth_headers(&mut headers, credential);
        Ok(headers)
    }

    /// `credential`, or the upstream's own key, in the header its kind reads (and the
    /// API version Anthropic requires beside it).
    fn insert_auth_headers(&self, headers: &mut HeaderMap, credential: Option<&HeaderValue>) {
        match (credential.or(self.authorization.as_ref()), self.kind) {
            (Some(auth), UpstreamKind::OpenaiCompatible) => {
                headers.insert(header::AUTHORIZATION, auth.clone());
            }
            (Some(key), UpstreamKind::Anthropic) => {
                headers.insert(HeaderName::from_static("x-api-key"), key.clone());
            }
            (Some(key), UpstreamKind::Gemini) => {
                headers.insert(HeaderName::from_static("x-goog-api-key"), key.clone());
            }
            (None, _) => {}
        }
        if self.kind == UpstreamKind::Anthropic {
            headers.insert(
                HeaderName::from_static("anthropic-version"),
                HeaderValue::from_static("2023-06-01"),
            );
        }
    }
}

/// Per-worker pools of connections driven inline, for an `http://` upstream.
fn inline_transport(
    name: &str,
    uri: &http::Uri,
    cfg: &UpstreamConfig,
    connect_timeout: Duration,
    workers: usize,
) -> Result<Transport, String> {
    let authority = uri
        .authority()
        .map(|a| match a.port() {
            Some(_) => a.to_string(),
            None => format!("{}:80", a.host()),
        })
        .ok_or_else(|| format!("upstream `{name}`: base_url has no host"))?;
    let pools = (0..workers.max(1))
        .map(|_| {
            Arc::new(InlinePool::new(
                authority.clone(),
                connect_timeout,
                cfg.pool_max_idle_per_host,
                Duration::from_secs(cfg.pool_idle_timeout_secs),
            ))
        })
        .collect();
    Ok(Transport::Inline { pools })
}

/// Per-worker hyper-util clients (rustls with ring, HTTP/2 by ALPN), for `https://`,
/// trusting `roots` when given, else the system's CAs.
fn client_transport(
    name: &str,
    cfg: &UpstreamConfig,
    connect_timeout: Duration,
    workers: usize,
    roots: Option<rustls::RootCertStore>,
) -> Result<Transport, String> {
    let connector = https_over(name, HttpConnector::new(), connect_timeout, roots)?;
    let clients = (0..workers.max(1))
        .map(|_| {
            Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(cfg.pool_idle_timeout_secs))
                .pool_max_idle_per_host(cfg.pool_max_idle_per_host)
                .build(connector.clone())
        })
        .collect();
    Ok(Transport::Client(clients))
}

/// A connector for `http://` and `https://` over `http` (a TCP connector of a given
/// resolver: one that checks where names lead, say): rustls with ring, trusting only the
/// CAs in `roots` when given, else the system's (`name` says whose, in the warning when
/// there are none); HTTP/2 by ALPN.
pub fn https_over<R>(
    name: &str,
    mut http: HttpConnector<R>,
    connect_timeout: Duration,
    roots: Option<rustls::RootCertStore>,
) -> Result<HttpsConnector<HttpConnector<R>>, String> {
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    http.set_keepalive(Some(Duration::from_secs(60)));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let with_roots = |roots: rustls::RootCertStore| -> Result<_, String> {
        let config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config))
    };
    let tls = match roots {
        Some(roots) => with_roots(roots)?,
        None => match hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(provider.clone())
        {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(upstream = name, error = %e, "no system CA certificates; https upstreams will fail verification");
                with_roots(rustls::RootCertStore::empty())?
            }
        },
    };
    Ok(tls
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http))
}

/// The CA certificates in the PEM file `path` (an upstream's `ca_file`).
fn ca_roots(name: &str, path: &std::path::Path) -> Result<rustls::RootCertStore, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let problem = |what: String| format!("upstream `{name}`: ca_file {}: {what}", path.display());
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| problem(e.to_string()))?;
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(problem("no usable CA certificate in it".into()));
    }
    Ok(roots)
}

/// A one-line description of an error and its causes.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_without_a_certificate_names_the_upstream_and_the_file() {
        let dir = std::env::temp_dir().join(format!("airlock-ca-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = ca_roots("corp", &empty).unwrap_err();
        assert!(err.contains("upstream `corp`: ca_file"), "{err}");
        assert!(err.contains("no usable CA certificate"), "{err}");
        let err = ca_roots("corp", &dir.join("missing.pem")).unwrap_err();
        assert!(err.contains("missing.pem"), "{err}");
        let generated = rcgen::generate_simple_self_signed(vec!["ca".to_string()]).unwrap();
        let good = dir.join("good.pem");
        std::fs::write(&good, generated.cert.pem()).unwrap();
        assert_eq!(ca_roots("corp", &good).unwrap().len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
