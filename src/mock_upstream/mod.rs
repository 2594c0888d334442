//! A simulator of vLLM's OpenAI-compatible server for tests, demos and benchmarks.
//!
//! It speaks vLLM's wire format (field names, field order, `null`s, error shapes, SSE
//! framing) closely enough to stand in for a GPU server behind the gateway: chat
//! completions (with tool calls), legacy completions, embeddings, model listing, health,
//! bearer-token auth like `vllm serve --api-key` (with several keys, one throttled, for
//! credential tests), injected faults for resilience tests, HTTPS with HTTP/2 by ALPN
//! (`--tls-cert`, `--tls-key`), and a count of answers the client abandoned.
//!
//! Module map:
//! - `router`: HTTP dispatch, auth (one key or several, some throttled), faults, the
//!   `/mock/last-request` recorder (and `/mock/requests`, every body, when asked),
//!   and `/mock/key-usage` counts.
//! - `request`: validation shared by the generation endpoints.
//! - `body`: the response body (whole buffer or SSE stream).
//! - `chat`, `completions`, `embeddings`, `models`, `tokenize`: one endpoint family each.
//! - `sse`: the lazily rendered, timed SSE body with mid-stream faults.
//! - `wire`: vLLM's JSON shapes and error bodies.
//! - `generate`: deterministic words, token counts, ids and cheap randomness.
//! - `tools`: tool-call arguments generated from a JSON schema.
//! - `script`: `--script`, scripted answers and tool calls for agent tests.
//! - `faults`: the injected fault catalogue.
//! - `cancel`: counts requests whose answer was abandoned before its end (the client
//!   went away), for `/mock/cancelled`.
//! - `anthropic`, `gemini`: the other wire formats (`--flavor`), translated from chat;
//!   `translated` re-emits a chat stream in them.

mod anthropic;
mod body;
mod cancel;
mod chat;
mod completions;
mod embeddings;
mod faults;
mod gemini;
mod generate;
mod models;
mod request;
mod router;
mod script;
mod sse;
mod tokenize;
mod tools;
mod translated;
mod wire;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// How long in-flight requests may run after shutdown before they are cut off.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Command-line options of `airlock mock-upstream`.
#[derive(clap::Args, Debug, Clone)]
pub struct MockArgs {
    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1:8000")]
    pub listen: SocketAddr,
    /// Fixed latency added before a non-streaming response (ms)
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Time to first token for streaming responses (ms)
    #[arg(long, default_value_t = 0)]
    pub ttft_ms: u64,
    /// Streaming speed in tokens per second (0 = as fast as possible)
    #[arg(long, default_value_t = 0.0)]
    pub tokens_per_sec: f64,
    /// Natural answer length in tokens: answers end there ("stop") unless max_tokens is smaller ("length")
    #[arg(long, default_value_t = 16)]
    pub default_tokens: u32,
    /// Model names served (comma-separated); the first is the default
    #[arg(long, value_delimiter = ',', default_value = "mock-llama")]
    pub models: Vec<String>,
    /// Require this bearer token (like `vllm serve --api-key`); repeat it (or separate
    /// keys with commas) to accept several, as a provider accepts each of its keys
    #[arg(long, env = "MOCK_UPSTREAM_API_KEY", value_delimiter = ',')]
    pub api_key: Vec<String>,
    /// Answer generation requests carrying this key (one of `--api-key`) with 429 and a
    /// `RateLimitError`, as a provider throttling one key; repeatable
    #[arg(long)]
    pub rate_limited_key: Vec<String>,
    /// Fraction of requests (0..1) answered with a random injected fault
    #[arg(long, default_value_t = 0.0)]
    pub fault_rate: f64,
    /// Inject this fault (500, 503, 429, reset, malformed, stall, stream_error, slow:MS)
    /// into every request that does not name its own `mock_fault`
    #[arg(long)]
    pub fault: Option<String>,
    /// With --fault: only the first N requests get it, then the server recovers (0 = all)
    #[arg(long, default_value_t = 0)]
    pub fault_count: u64,
    /// Wire format served: `openai` (vLLM's OpenAI server), `anthropic` (Anthropic's
    /// Messages API at /v1/messages, authenticated with x-api-key or a bearer token) or
    /// `gemini` (Gemini's generateContent API under /v1beta, key in x-goog-api-key or ?key=)
    #[arg(long, value_enum, default_value_t = Flavor::Openai)]
    pub flavor: Flavor,
    /// Embedding vector dimension
    #[arg(long, default_value_t = 64)]
    pub embedding_dim: usize,
    /// Answer chat requests with the last message's text (a string content), streamed in
    /// fragments that split it anywhere: for tests of what Airlock does to answers.
    #[arg(long)]
    pub echo: bool,
    /// Answer chat requests from a script (YAML, or JSON for a `.json` file) instead of
    /// generated words, so an agent test runs a planned conversation and ends:
    ///
    ///   turns:
    ///     - match: "list-the-directory"
    ///       tool_calls: [{name: [Bash, exec_command, run_shell_command], arguments: {command: "ls /tmp/x"}}]
    ///     - match: "zebra.txt"
    ///       text: "The directory holds zebra.txt."
    ///     - text: "Hello from the scripted model."
    ///   fallback: {text: "Nothing more is scripted."}
    ///
    /// Each request gets the first turn whose `match` occurs in its latest input (the user
    /// and tool messages after the last assistant message), else the next turn without
    /// `match`, in order, else the fallback (default: a short text). A turn is a `text` or
    /// `tool_calls`; a call's `name` may list candidates, the first the request declares
    /// is called (`options: [{name, arguments}, …]` gives each its own arguments); a call
    /// the request declares no tool for is answered as a text saying so. Requests for
    /// structured output (`response_format`) get JSON following their schema, as without
    /// a script, unless a text turn's `match` picks them, and use no turn. Never calls
    /// tools on its own.
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "echo",
        verbatim_doc_comment
    )]
    pub script: Option<std::path::PathBuf>,
    /// Never call a tool on its own: requests that declare tools get text answers
    /// (without it, the first declared tool is called with generated arguments)
    #[arg(long)]
    pub text_only: bool,
    /// The model's context length, as vLLM's `--max-model-len`: a prompt, or a prompt
    /// plus its `max_tokens`, beyond it is refused with vLLM's 400; `/v1/models` and
    /// `/tokenize` report it
    #[arg(long, value_name = "TOKENS", default_value_t = request::DEFAULT_MAX_MODEL_LEN)]
    pub max_model_len: u64,
    /// Keep the body of every generation request received, for `GET /mock/requests`
    /// (memory grows with every request: for tests)
    #[arg(long)]
    pub record_requests: bool,
    /// Message of injected server errors (500, 503, mid-stream error events) instead of
    /// vLLM's generic ones: a server's internals, which must never reach a client
    #[arg(long)]
    pub error_message: Option<String>,
    /// Serve HTTPS (HTTP/2 and HTTP/1.1 by ALPN) with this PEM certificate chain
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The PEM private key of `--tls-cert`
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
}

/// The API a simulator speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Flavor {
    #[default]
    Openai,
    Anthropic,
    Gemini,
}

impl Default for MockArgs {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            latency_ms: 0,
            ttft_ms: 0,
            tokens_per_sec: 0.0,
            default_tokens: 16,
            models: vec!["mock-llama".to_owned()],
            api_key: Vec::new(),
            rate_limited_key: Vec::new(),
            fault_rate: 0.0,
            fault: None,
            fault_count: 0,
            flavor: Flavor::Openai,
            embedding_dim: 64,
            echo: false,
            script: None,
            text_only: false,
            max_model_len: request::DEFAULT_MAX_MODEL_LEN,
            record_requests: false,
            error_message: None,
            tls_cert: None,
            tls_key: None,
        }
    }
}

/// Serves until `shutdown` resolves. Prints nothing; the caller prints the address.
///
/// After `shutdown` resolves the listener is closed, in-flight requests get a short
/// grace period, and whatever is still running (stalled streams) is then cut off.
pub async fn serve(
    listener: TcpListener,
    args: MockArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(crate::server::tls::acceptor(
            cert,
            key,
            ("--tls-cert", "--tls-key"),
        )?),
        _ => None,
    };
    let state = Arc::new(router::State::new(args)?);
    let builder = auto::Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);

    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _peer)) => stream,
                    Err(error) => {
                        // Usually EMFILE/ECONNABORTED: back off briefly instead of spinning.
                        tracing::debug!(%error, "mock-upstream accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                // Small SSE chunks and small JSON answers must not wait for Nagle.
                if let Err(error) = stream.set_nodelay(true) {
                    tracing::debug!(%error, "mock-upstream could not set TCP_NODELAY");
                }
                let watcher = graceful.watcher();
                let builder = builder.clone();
                let state = Arc::clone(&state);
                let tls = tls.clone();
                connections.spawn(async move {
                    let service = service_fn(move |request| {
                        let state = Arc::clone(&state);
                        async move {
                            let watch = cancel::Unfinished::new(state.abandoned());
                            match router::handle(&state, request).await {
                                Ok(response) => Ok(watch.follow(response)),
                                Err(dropped) => {
                                    watch.settle();
                                    Err(dropped)
                                }
                            }
                        }
                    });
                    let ended = match tls {
                        None => {
                            let connection = builder.serve_connection(TokioIo::new(stream), service);
                            watcher.watch(connection).await
                        }
                        Some(acceptor) => match acceptor.accept(stream).await {
                            Ok(stream) => {
                                let connection =
                                    builder.serve_connection(TokioIo::new(stream), service);
                                watcher.watch(connection).await
                            }
                            Err(error) => Err(error.into()),
                        },
                    };
                    if let Err(error) = ended {
                        tracing::debug!(%error, "mock-upstream connection ended with an error");
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }

    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::debug!("mock-upstream shutdown grace elapsed; cutting remaining connections");
    }
    connections.shutdown().await;
    Ok(())
}
