//! HTTP dispatch: routes, `--api-key` auth (several keys, some throttled), faults, the
//! `/mock/last-request` recorder (and `/mock/requests` with `--record-requests`) and the
//! `/mock/key-usage` counts.

use std::convert::Infallible;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Map, Value};

use super::MockArgs;
use super::body::MockBody;
use super::faults::{self, Fault};
use super::request::{ApiError, Prepared, Work};
use super::script::Script;
use super::sse::{self, SseBody};
use super::wire;
use super::{Flavor, anthropic, gemini};
use super::{chat, completions, embeddings, models, tokenize};

/// Largest request body accepted (vLLM itself sets no limit; this only bounds memory).
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Shared state of one simulator instance.
#[derive(Debug)]
pub struct State {
    args: MockArgs,
    /// The `--script`, loaded.
    script: Option<Script>,
    last_request: Mutex<Option<Recorded>>,
    /// Every generation request's body, with `--record-requests`.
    all_requests: Mutex<Vec<Bytes>>,
    /// Requests that got the `--fault` so far.
    faulted: std::sync::atomic::AtomicU64,
    /// Generation requests per `--api-key`, in the same order.
    key_uses: Vec<std::sync::atomic::AtomicU64>,
    /// Requests whose answer the client abandoned before its end.
    abandoned: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// The last generation request received, for `GET /mock/last-request`.
#[derive(Debug)]
struct Recorded {
    method: Method,
    version: http::Version,
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

impl State {
    /// Checks the options a running server relies on.
    pub fn new(args: MockArgs) -> anyhow::Result<Self> {
        if args.models.is_empty() || args.models.iter().any(String::is_empty) {
            anyhow::bail!("--models needs at least one non-empty model name");
        }
        if !(0.0..=1.0).contains(&args.fault_rate) {
            anyhow::bail!(
                "--fault-rate must be between 0 and 1, got {}",
                args.fault_rate
            );
        }
        if let Some(fault) = &args.fault {
            fault.parse::<Fault>()?;
        }
        if !args.tokens_per_sec.is_finite() || args.tokens_per_sec < 0.0 {
            anyhow::bail!(
                "--tokens-per-sec must be a finite number >= 0, got {}",
                args.tokens_per_sec
            );
        }
        if args.embedding_dim == 0 || args.embedding_dim > 65_536 {
            anyhow::bail!(
                "--embedding-dim must be between 1 and 65536, got {}",
                args.embedding_dim
            );
        }
        if args
            .api_key
            .iter()
            .any(|key| key.is_empty() || HeaderValue::from_str(&format!("Bearer {key}")).is_err())
        {
            anyhow::bail!("--api-key must be a non-empty printable token");
        }
        if let Some(key) = args
            .rate_limited_key
            .iter()
            .find(|k| !args.api_key.contains(k))
        {
            anyhow::bail!("--rate-limited-key {key:?} is not one of the --api-key values");
        }
        if args.max_model_len == 0 {
            anyhow::bail!("--max-model-len must be at least 1");
        }
        let script = args.script.as_deref().map(Script::load).transpose()?;
        Ok(Self {
            script,
            key_uses: args.api_key.iter().map(|_| Default::default()).collect(),
            args,
            last_request: Mutex::new(None),
            all_requests: Mutex::new(Vec::new()),
            faulted: std::sync::atomic::AtomicU64::new(0),
            abandoned: Default::default(),
        })
    }

    /// The count of abandoned answers, for each request to add to.
    pub fn abandoned(&self) -> std::sync::Arc<std::sync::atomic::AtomicU64> {
        self.abandoned.clone()
    }

    /// The message of injected server errors.
    fn error_message<'a>(&'a self, generic: &'a str) -> &'a str {
        self.args.error_message.as_deref().unwrap_or(generic)
    }

    /// The `--fault` for this request, while `--fault-count` lasts.
    fn server_fault(&self) -> Option<&str> {
        let fault = self.args.fault.as_deref()?;
        let count = self.args.fault_count;
        let seen = self
            .faulted
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        (count == 0 || seen < count).then_some(fault)
    }

    /// Counts a generation request against the key it carries; the 429 a throttled key
    /// gets.
    fn key_gate(&self, headers: &HeaderMap) -> Option<Response<MockBody>> {
        let index = key_index(&self.args.api_key, headers)?;
        self.key_uses[index].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.args
            .rate_limited_key
            .contains(&self.args.api_key[index])
            .then(rate_limited)
    }

    /// `{"<key>": requests}` for every `--api-key`.
    fn key_usage_json(&self) -> Bytes {
        let counts: Map<String, Value> = self
            .args
            .api_key
            .iter()
            .zip(&self.key_uses)
            .map(|(key, uses)| {
                let n = uses.load(std::sync::atomic::Ordering::Relaxed);
                (key.clone(), Value::from(n))
            })
            .collect();
        wire::to_json(&Value::Object(counts))
    }

    fn record(&self, recorded: Recorded) {
        if self.args.record_requests {
            match self.all_requests.lock() {
                Ok(mut all) => all.push(recorded.body.clone()),
                Err(poisoned) => poisoned.into_inner().push(recorded.body.clone()),
            }
        }
        let previous = match self.last_request.lock() {
            Ok(mut slot) => slot.replace(recorded),
            Err(poisoned) => poisoned.into_inner().replace(recorded),
        };
        // Free the previous request outside the lock.
        drop(previous);
    }

    /// `GET /mock/requests`: every body kept, oldest first (JSON bodies as JSON).
    fn all_requests_json(&self) -> Bytes {
        let all = match self.all_requests.lock() {
            Ok(all) => all,
            Err(poisoned) => poisoned.into_inner(),
        };
        let bodies = all.iter().map(|body| json_or_text(body)).collect();
        wire::to_json(&Value::Array(bodies))
    }

    fn last_request_json(&self) -> Option<Bytes> {
        let slot = match self.last_request.lock() {
            Ok(slot) => slot,
            Err(poisoned) => poisoned.into_inner(),
        };
        let recorded = slot.as_ref()?;
        let mut headers = Map::new();
        for name in recorded.headers.keys() {
            let values: Vec<String> = recorded
                .headers
                .get_all(name)
                .iter()
                .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
                .collect();
            headers.insert(name.as_str().to_owned(), Value::String(values.join(", ")));
        }
        let body = json_or_text(&recorded.body);
        let mut out = Map::new();
        out.insert("method".into(), Value::String(recorded.method.to_string()));
        out.insert(
            "version".into(),
            Value::String(format!("{:?}", recorded.version)),
        );
        out.insert("path".into(), Value::String(recorded.path.clone()));
        out.insert("headers".into(), Value::Object(headers));
        out.insert("body".into(), body);
        Some(wire::to_json(&Value::Object(out)))
    }
}

/// A body as JSON when it is, else as a string.
fn json_or_text(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

/// Returned by the service to make hyper drop the connection without a response.
#[derive(Debug)]
pub struct DropConnection;

impl fmt::Display for DropConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("mock_fault: connection dropped")
    }
}

impl std::error::Error for DropConnection {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Health,
    Version,
    Models,
    Chat,
    Completions,
    Embeddings,
    Tokenize,
    LastRequest,
    AllRequests,
    KeyUsage,
    Abandoned,
}

impl Route {
    fn of(path: &str) -> Option<Self> {
        Some(match path {
            "/health" => Self::Health,
            "/version" => Self::Version,
            "/v1/models" => Self::Models,
            "/v1/chat/completions" => Self::Chat,
            "/v1/completions" => Self::Completions,
            "/v1/embeddings" => Self::Embeddings,
            "/tokenize" => Self::Tokenize,
            "/mock/last-request" => Self::LastRequest,
            "/mock/requests" => Self::AllRequests,
            "/mock/key-usage" => Self::KeyUsage,
            "/mock/cancelled" => Self::Abandoned,
            _ => return None,
        })
    }

    fn is_generation(self) -> bool {
        matches!(self, Self::Chat | Self::Completions | Self::Embeddings)
    }

    /// Takes a JSON body by POST.
    fn takes_body(self) -> bool {
        self.is_generation() || self == Self::Tokenize
    }

    fn allows(self, method: &Method) -> bool {
        if self.takes_body() {
            method == Method::POST
        } else {
            method == Method::GET || method == Method::HEAD
        }
    }

    fn allow_header(self) -> &'static str {
        if self.takes_body() { "POST" } else { "GET" }
    }
}

/// Reads a generation request's body within the size limit and records it for
/// `/mock/last-request` (before authentication, so tests see refused requests too).
async fn read_body(
    state: &State,
    parts: &http::request::Parts,
    body: Incoming,
) -> Result<Bytes, Result<Response<MockBody>, DropConnection>> {
    let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            if error.is::<http_body_util::LengthLimitError>() {
                return Err(Ok(error_response(&ApiError {
                    status: StatusCode::PAYLOAD_TOO_LARGE,
                    kind: "BadRequestError",
                    message: format!("Request body exceeds {MAX_BODY_BYTES} bytes."),
                    param: None,
                })));
            }
            // The client went away mid-body.
            return Err(Err(DropConnection));
        }
    };
    state.record(Recorded {
        method: parts.method.clone(),
        version: parts.version,
        path: parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned()),
        headers: parts.headers.clone(),
        body: body.clone(),
    });
    Ok(body)
}

/// `--flavor anthropic`: `POST /v1/messages` and `/v1/messages/count_tokens`
/// (authenticated with `x-api-key` or a bearer token), and
/// Anthropic's not-found for every other `/v1` path.
async fn messages(
    state: &State,
    parts: http::request::Parts,
    body: Incoming,
) -> Result<Response<MockBody>, DropConnection> {
    let counting = parts.uri.path() == "/v1/messages/count_tokens";
    if !(parts.uri.path() == "/v1/messages" || counting) || parts.method != Method::POST {
        return Ok(anthropic::error(StatusCode::NOT_FOUND, "Not found"));
    }
    let body = match read_body(state, &parts, body).await {
        Ok(body) => body,
        Err(answer) => return answer,
    };
    let key = &state.args.api_key;
    // Anthropic's SDKs send `x-api-key`, or (newer ones) a bearer token.
    if !(anthropic::is_authorized(key, &parts.headers) || is_authorized(key, &parts.headers)) {
        return Ok(anthropic::error(
            StatusCode::UNAUTHORIZED,
            "invalid x-api-key",
        ));
    }
    if counting {
        return Ok(match anthropic::count_tokens(&body) {
            Ok(tokens) => json(
                StatusCode::OK,
                Bytes::from(format!("{{\"input_tokens\":{tokens}}}")),
            ),
            Err(message) => anthropic::error(StatusCode::BAD_REQUEST, &message),
        });
    }
    let (chat, model, _) = match anthropic::to_chat(&body) {
        Ok(translated) => translated,
        Err(message) => return Ok(anthropic::error(StatusCode::BAD_REQUEST, &message)),
    };
    let answer = generate(state, Route::Chat, &chat).await?;
    Ok(anthropic::from_chat(answer, &model).await)
}

/// `--flavor gemini`: the model methods below `/v1beta` (key in `x-goog-api-key` or
/// `?key=`), and Google's not-found for every other path there.
async fn gemini_api(
    state: &State,
    parts: http::request::Parts,
    body: Incoming,
) -> Result<Response<MockBody>, DropConnection> {
    let models = &state.args.models;
    let call = gemini::parse_path(parts.uri.path());
    let body = match call {
        Some(gemini::Call::Generate { .. } | gemini::Call::CountTokens(_))
            if parts.method == Method::POST =>
        {
            match read_body(state, &parts, body).await {
                Ok(body) => body,
                Err(answer) => return answer,
            }
        }
        _ => Bytes::new(),
    };
    if let Some(refused) =
        gemini::key_refusal(&state.args.api_key, &parts.headers, parts.uri.query())
    {
        return Ok(refused);
    }
    let (model, stream) = match call {
        Some(gemini::Call::ListModels) if parts.method == Method::GET => {
            return Ok(gemini::list_models(models));
        }
        Some(gemini::Call::GetModel(name)) if parts.method == Method::GET => {
            return Ok(gemini::get_model(models, name));
        }
        Some(gemini::Call::Generate { model, stream }) if parts.method == Method::POST => {
            (model, stream)
        }
        Some(gemini::Call::CountTokens(model)) if parts.method == Method::POST => {
            if !models.iter().any(|m| m == model) {
                return Ok(gemini::not_found(model));
            }
            return Ok(match gemini::count_tokens(&body, model) {
                Ok(count) => json(StatusCode::OK, Bytes::from(count.to_string())),
                Err(message) => gemini::error(StatusCode::BAD_REQUEST, &message),
            });
        }
        _ => return Ok(gemini::error(StatusCode::NOT_FOUND, "Not found")),
    };
    if !models.iter().any(|m| m == model) {
        return Ok(gemini::not_found(model));
    }
    if stream
        && !parts
            .uri
            .query()
            .is_some_and(|q| q.split('&').any(|p| p == "alt=sse"))
    {
        return Ok(gemini::error(
            StatusCode::BAD_REQUEST,
            "the simulator streams only with alt=sse",
        ));
    }
    let translated = match gemini::to_chat(&body, model, stream) {
        Ok(translated) => translated,
        Err(message) => return Ok(gemini::error(StatusCode::BAD_REQUEST, &message)),
    };
    let answer = generate(state, Route::Chat, &translated.chat).await?;
    Ok(gemini::from_chat(answer, model, &translated).await)
}

/// Answers one request.
pub async fn handle(
    state: &State,
    request: Request<Incoming>,
) -> Result<Response<MockBody>, DropConnection> {
    let (parts, body) = request.into_parts();
    if state.args.flavor == Flavor::Anthropic && parts.uri.path().starts_with("/v1") {
        return messages(state, parts, body).await;
    }
    if state.args.flavor == Flavor::Gemini && parts.uri.path().starts_with("/v1") {
        return gemini_api(state, parts, body).await;
    }
    // vLLM's AuthenticationMiddleware runs before routing and guards `/v1/…`.
    let authorized = !parts.uri.path().starts_with("/v1")
        || parts.method == Method::OPTIONS
        || is_authorized(&state.args.api_key, &parts.headers);

    let Some(route) = Route::of(parts.uri.path()) else {
        if !authorized {
            return Ok(unauthorized());
        }
        return Ok(detail(StatusCode::NOT_FOUND));
    };
    if !route.allows(&parts.method) {
        if !authorized {
            return Ok(unauthorized());
        }
        let mut response = detail(StatusCode::METHOD_NOT_ALLOWED);
        response.headers_mut().insert(
            header::ALLOW,
            HeaderValue::from_static(route.allow_header()),
        );
        return Ok(response);
    }

    if route.takes_body() {
        let body = match read_body(state, &parts, body).await {
            Ok(body) => body,
            Err(answer) => return answer,
        };
        if !authorized {
            return Ok(unauthorized());
        }
        if let Some(throttled) = state.key_gate(&parts.headers) {
            return Ok(throttled);
        }
        if route == Route::Tokenize {
            return Ok(match tokenize::answer(&state.args, &body) {
                Ok(answer) => json(StatusCode::OK, answer),
                Err(error) => error_response(&error),
            });
        }
        return generate(state, route, &body).await;
    }

    if !authorized {
        return Ok(unauthorized());
    }
    Ok(match route {
        Route::Health => with_server(Response::new(MockBody::empty())),
        Route::Version => json(StatusCode::OK, models::version()),
        Route::Models => json(StatusCode::OK, models::list(&state.args)),
        Route::KeyUsage => json(StatusCode::OK, state.key_usage_json()),
        Route::AllRequests => json(StatusCode::OK, state.all_requests_json()),
        Route::Abandoned => json(
            StatusCode::OK,
            Bytes::from(format!(
                "{{\"cancelled\":{}}}",
                state.abandoned.load(std::sync::atomic::Ordering::Relaxed)
            )),
        ),
        Route::LastRequest => match state.last_request_json() {
            Some(recorded) => json(StatusCode::OK, recorded),
            None => error_response(&ApiError {
                status: StatusCode::NOT_FOUND,
                kind: "NotFoundError",
                message: "No generation request has been received yet.".into(),
                param: None,
            }),
        },
        Route::Chat | Route::Completions | Route::Embeddings | Route::Tokenize => {
            detail(StatusCode::METHOD_NOT_ALLOWED)
        }
    })
}

/// Validates, applies any fault, and answers a generation request.
async fn generate(
    state: &State,
    route: Route,
    body: &[u8],
) -> Result<Response<MockBody>, DropConnection> {
    let args = &state.args;
    let prepared = match route {
        Route::Chat => chat::prepare(args, state.script.as_ref(), body),
        Route::Completions => completions::prepare(args, body),
        _ => embeddings::prepare(args, body),
    };
    let Prepared { fault, work } = match prepared {
        Ok(prepared) => prepared,
        Err(error) => return Ok(error_response(&error)),
    };
    let explicit = fault.as_deref().or_else(|| state.server_fault());
    let fault = match faults::choose(explicit, args.fault_rate) {
        Ok(fault) => fault,
        Err(unknown) => return Ok(error_response(&ApiError::bad_request(unknown.to_string()))),
    };

    match fault {
        Some(Fault::Slow(millis)) => tokio::time::sleep(Duration::from_millis(millis)).await,
        Some(Fault::InternalError) => return Ok(error_response(&internal_error(state))),
        Some(Fault::Unavailable) => {
            return Ok(error_response(&ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                kind: "ServiceUnavailableError",
                message: state
                    .error_message("The server is temporarily unable to handle the request.")
                    .into(),
                param: None,
            }));
        }
        Some(Fault::RateLimited) => return Ok(rate_limited()),
        _ => {}
    }

    match work {
        Work::Stream(plan) => {
            let sse = SseBody::new(plan, fault)
                .with_error_message(state.error_message(sse::GENERIC_ERROR).into());
            let mut response = Response::new(MockBody::Sse(Box::new(sse)));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream; charset=utf-8"),
            );
            Ok(with_server(response))
        }
        Work::Json(json_body) => match fault {
            Some(Fault::Reset | Fault::ResetAfter(_)) => Err(DropConnection),
            Some(Fault::Stall) => {
                // Never answer; the connection task ends when the client gives up.
                match std::future::pending::<Infallible>().await {}
            }
            Some(Fault::Malformed) => {
                let cut = json_body.len() / 2;
                Ok(json(StatusCode::OK, json_body.slice(..cut)))
            }
            // A failure during non-streamed generation surfaces as a plain 500.
            Some(Fault::StreamError) => Ok(error_response(&internal_error(state))),
            _ => {
                if args.latency_ms > 0 {
                    tokio::time::sleep(Duration::from_millis(args.latency_ms)).await;
                }
                Ok(json(StatusCode::OK, json_body))
            }
        },
    }
}

/// Whether the request may pass vLLM's auth middleware: no key required, or a bearer
/// token that is one of the keys.
fn is_authorized(api_keys: &[String], headers: &HeaderMap) -> bool {
    api_keys.is_empty() || key_index(api_keys, headers).is_some()
}

/// Which of the keys `Authorization: Bearer <key>` carries, compared in constant time
/// as vLLM's middleware does (case-insensitive scheme, exact token).
fn key_index(api_keys: &[String], headers: &HeaderMap) -> Option<usize> {
    let value = headers.get(header::AUTHORIZATION)?.as_bytes();
    let (scheme, token) = match value.iter().position(|&b| b == b' ') {
        Some(space) => (&value[..space], &value[space + 1..]),
        None => (value, &b""[..]),
    };
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    let mut found = None;
    for (index, expected) in api_keys.iter().enumerate() {
        let expected = expected.as_bytes();
        let mut difference = u8::from(token.len() != expected.len());
        for (a, b) in token.iter().zip(expected) {
            difference |= a ^ b;
        }
        if difference == 0 {
            found = Some(index);
        }
    }
    found
}

/// A provider's throttling answer: 429 with `Retry-After: 1` and a `RateLimitError`.
fn rate_limited() -> Response<MockBody> {
    let mut response = error_response(&ApiError {
        status: StatusCode::TOO_MANY_REQUESTS,
        kind: "RateLimitError",
        message: "Too many requests; retry after 1 second.".into(),
        param: None,
    });
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

fn internal_error(state: &State) -> ApiError {
    ApiError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        kind: "InternalServerError",
        message: state.error_message(sse::GENERIC_ERROR).into(),
        param: None,
    }
}

fn with_server(mut response: Response<MockBody>) -> Response<MockBody> {
    // uvicorn, which serves vLLM, names itself.
    response
        .headers_mut()
        .insert(header::SERVER, HeaderValue::from_static("uvicorn"));
    response
}

fn json(status: StatusCode, body: Bytes) -> Response<MockBody> {
    let mut response = Response::new(MockBody::full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    with_server(response)
}

fn error_response(error: &ApiError) -> Response<MockBody> {
    json(
        error.status,
        wire::error_body(
            &error.message,
            error.kind,
            error.param,
            error.status.as_u16(),
        ),
    )
}

/// vLLM's auth middleware answer: note the bare string, not the usual error object.
fn unauthorized() -> Response<MockBody> {
    json(
        StatusCode::UNAUTHORIZED,
        Bytes::from_static(br#"{"error":"Unauthorized"}"#),
    )
}

/// FastAPI's answer for unknown routes (404) and methods (405).
fn detail(status: StatusCode) -> Response<MockBody> {
    let body: &'static [u8] = if status == StatusCode::METHOD_NOT_ALLOWED {
        br#"{"detail":"Method Not Allowed"}"#
    } else {
        br#"{"detail":"Not Found"}"#
    };
    json(status, Bytes::from_static(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(authorization: Option<&'static str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(value) = authorization {
            headers.insert(header::AUTHORIZATION, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn bearer_check_matches_vllm_middleware() {
        let one = ["sk-1".to_string()];
        assert!(is_authorized(&[], &headers(None)));
        assert!(is_authorized(&one, &headers(Some("Bearer sk-1"))));
        assert!(is_authorized(&one, &headers(Some("bearer sk-1"))));
        assert!(!is_authorized(&one, &headers(None)));
        assert!(!is_authorized(&one, &headers(Some("Bearer sk-2"))));
        assert!(!is_authorized(&one, &headers(Some("Bearer sk-1x"))));
        assert!(!is_authorized(&one, &headers(Some("Basic sk-1"))));
        assert!(!is_authorized(&one, &headers(Some("sk-1"))));
        let two = ["sk-1".to_string(), "sk-2".to_string()];
        assert_eq!(key_index(&two, &headers(Some("Bearer sk-2"))), Some(1));
        assert_eq!(key_index(&two, &headers(Some("Bearer sk-3"))), None);
    }

    #[test]
    fn a_server_wide_fault_lasts_for_its_count() {
        let state = State::new(MockArgs {
            fault: Some("503".into()),
            fault_count: 2,
            ..MockArgs::default()
        })
        .unwrap();
        let seen: Vec<Option<&str>> = (0..4).map(|_| state.server_fault()).collect();
        assert_eq!(seen, [Some("503"), Some("503"), None, None]);
    }

    #[test]
    fn state_rejects_unusable_options() {
        assert!(State::new(MockArgs::default()).is_ok());
        let bad = [
            MockArgs {
                models: vec![],
                ..MockArgs::default()
            },
            MockArgs {
                fault_rate: 1.5,
                ..MockArgs::default()
            },
            MockArgs {
                fault: Some("explode".into()),
                ..MockArgs::default()
            },
            MockArgs {
                tokens_per_sec: f64::NAN,
                ..MockArgs::default()
            },
            MockArgs {
                embedding_dim: 0,
                ..MockArgs::default()
            },
            MockArgs {
                api_key: vec![String::new()],
                ..MockArgs::default()
            },
            MockArgs {
                api_key: vec!["a".into()],
                rate_limited_key: vec!["b".into()],
                ..MockArgs::default()
            },
        ];
        for args in bad {
            assert!(State::new(args).is_err());
        }
    }

    #[test]
    fn routes_know_their_methods() {
        assert_eq!(Route::of("/v1/chat/completions"), Some(Route::Chat));
        assert_eq!(Route::of("/v1/chat/completions/"), None);
        assert!(Route::Chat.allows(&Method::POST));
        assert!(!Route::Chat.allows(&Method::GET));
        assert!(Route::Models.allows(&Method::GET));
        assert!(!Route::Health.allows(&Method::POST));
    }
}
