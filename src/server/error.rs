//! Gateway errors and their HTTP form: OpenAI's error shape with the right status code.

use super::body::GatewayBody;
use crate::api::openai::error_json;
use crate::tenancy::AuthError;
use http::{HeaderValue, Response, StatusCode, header};

/// An error answered to the client.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    /// OpenAI `type`.
    pub kind: &'static str,
    /// OpenAI `code`; also the request log's `error_type`.
    pub code: &'static str,
    pub param: Option<&'static str>,
    pub message: String,
    /// Boxed: rare, and it keeps `Result<_, ApiError>` small on the hot path.
    pub retry_after: Option<Box<HeaderValue>>,
    /// What went wrong in more detail, for the log line only; never sent to the client.
    pub detail: Option<Box<str>>,
}

impl ApiError {
    fn new(
        status: StatusCode,
        kind: &'static str,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            kind,
            code,
            param: None,
            message: message.into(),
            retry_after: None,
            detail: None,
        }
    }

    /// Adds detail for the log line.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into().into_boxed_str());
        self
    }

    fn with_param(mut self, param: &'static str) -> Self {
        self.param = Some(param);
        self
    }

    /// A request that parsed but cannot be served as written.
    pub fn invalid_request(message: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "invalid_request",
            message,
        )
    }

    pub fn invalid_json(detail: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "invalid_json",
            format!("the request body is not valid JSON for this endpoint: {detail}"),
        )
    }

    pub fn body_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            "request_too_large",
            format!("the request body is larger than the {limit}-byte limit"),
        )
    }

    pub fn body_read_failed(detail: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "body_read_failed",
            format!("could not read the request body: {detail}"),
        )
    }

    pub fn body_timeout() -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "invalid_request_error",
            "body_timeout",
            "the request body did not arrive in time",
        )
    }

    /// A request line or header hyper could not parse.
    pub fn malformed_request() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "malformed_request",
            "the request is not valid HTTP/1.1",
        )
    }

    /// A request URI longer than the server reads (64 KiB).
    pub fn uri_too_long() -> Self {
        Self::new(
            StatusCode::URI_TOO_LONG,
            "invalid_request_error",
            "uri_too_long",
            "the request URI is longer than the server accepts",
        )
    }

    /// A request head larger than the server reads, or with more than 100 headers.
    pub fn headers_too_large() -> Self {
        Self::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "invalid_request_error",
            "headers_too_large",
            "the request headers are larger, or more, than the server accepts",
        )
    }

    /// `GET /metrics` without the configured `server.metrics_token_file` token.
    pub fn metrics_unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "invalid_metrics_token",
            "the metrics need `Authorization: Bearer <token>` with the token of \
             `server.metrics_token_file`",
        )
    }

    pub fn auth(err: AuthError) -> Self {
        let (status, code) = match err {
            AuthError::Missing => (StatusCode::UNAUTHORIZED, "missing_api_key"),
            AuthError::Invalid => (StatusCode::UNAUTHORIZED, "invalid_api_key"),
            AuthError::Revoked => (StatusCode::UNAUTHORIZED, "revoked_api_key"),
            AuthError::Expired => (StatusCode::UNAUTHORIZED, "expired_api_key"),
            AuthError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "key_store_unavailable"),
        };
        let kind = if status == StatusCode::UNAUTHORIZED {
            "invalid_request_error"
        } else {
            "server_error"
        };
        Self::new(status, kind, code, err.to_string())
    }

    /// The client's address failed to authenticate too often; it may try again after
    /// `wait_secs`.
    pub fn too_many_auth_failures(wait_secs: u64) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            "too_many_auth_failures",
            format!("too many failed authentications from this address; retry in {wait_secs} s"),
        )
        .with_retry_after(wait_secs)
    }

    fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = HeaderValue::from_str(&secs.to_string()).ok().map(Box::new);
        self
    }

    pub fn model_not_found(model: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "model_not_found",
            format!("The model `{model}` does not exist or you do not have access to it."),
        )
        .with_param("model")
    }

    pub fn route_not_found(path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "unknown_url",
            format!("no endpoint at `{path}`"),
        )
    }

    pub fn method_not_allowed(method: &http::Method, path: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request_error",
            "method_not_allowed",
            format!("`{method}` is not allowed on `{path}`"),
        )
    }

    pub fn upstream_unavailable() -> Self {
        Self::new(
            StatusCode::BAD_GATEWAY,
            "server_error",
            "upstream_unavailable",
            "the model server could not be reached",
        )
    }

    /// Every target of the model is out of rotation (circuit breakers open, or resting
    /// after a long `Retry-After`).
    pub fn no_available_target(model: &str) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "no_available_target",
            format!("no model server for `{model}` is available right now; try again shortly"),
        )
    }

    /// Every target of the model authenticates with provider credentials, and none is
    /// usable for this caller (none created for its tenant, revoked, or refused).
    pub fn no_provider_credential(model: &str, upstream: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "permission_error",
            "no_provider_credential",
            format!(
                "no usable provider credential for model `{model}` (upstream `{upstream}`); \
                 an admin of your tenant can add one (POST /admin/credentials)"
            ),
        )
    }

    /// No target of the model can serve what the request uses.
    pub fn unsupported(model: &str, missing: crate::routing::capabilities::Missing) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "unsupported_capability",
            missing.describe(model),
        )
        .with_param(missing.param())
    }

    /// A policy rule refused the request (or withheld the answer).
    pub fn policy_denied(message: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "permission_error",
            "policy_denied",
            message,
        )
    }

    /// A policy rule holds the request for a human's approval, which LLM calls cannot
    /// wait for: refused, saying so.
    pub fn approval_required(message: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "permission_error",
            "approval_required",
            message,
        )
    }

    /// A policy's `rate_limit` rule was reached; retry after `wait_secs`.
    pub fn policy_rate_limited(wait_secs: u64) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            "policy_rate_limited",
            format!("rate limit reached; retry in {wait_secs} s"),
        )
        .with_retry_after(wait_secs)
    }

    /// A rate limit of the caller's is out; the bucket holds enough again after the wait.
    pub fn rate_limited(limited: crate::metering::rate_limits::Limited) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            "rate_limited",
            format!(
                "the {} limit of {} {} per minute is reached; retry in {} s",
                limited.scope.name(),
                limited.per_minute,
                limited.what,
                limited.retry_after_secs
            ),
        )
        .with_retry_after(limited.retry_after_secs)
    }

    /// A budget's hard limit could be passed by this request; it resets with the window.
    pub fn budget_exceeded(exceeded: crate::metering::budget::Exceeded) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "insufficient_quota",
            "budget_exceeded",
            format!(
                "the {} {} budget does not cover this request; it resets in {} s",
                exceeded.scope.name(),
                exceeded.window.name(),
                exceeded.retry_after_secs
            ),
        )
        .with_retry_after(exceeded.retry_after_secs)
    }

    /// A policy routes the request to a model this gateway does not serve.
    pub fn policy_route_invalid(model: &str) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "policy_route_invalid",
            format!("the policy sends this request to model `{model}`, which is not configured"),
        )
    }

    /// Personal data could not be checked as configured (the NER model could not run
    /// and the configuration refuses such requests, or the vault failed).
    pub fn pii_unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "pii_unavailable",
            "personal data could not be checked as this gateway requires; try again later",
        )
    }

    /// The prompt holds more text than the NER model reads per request, and what it
    /// would not read may not go to the model unread.
    pub fn pii_text_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            "pii_text_too_large",
            format!(
                "the prompt holds more text than the {limit} bytes this gateway checks for \
                 personal data per request; send less"
            ),
        )
    }

    /// The audit record could not be written and audit failures close.
    pub fn audit_unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "audit_unavailable",
            "the request could not be recorded in the audit trail, so it was not served",
        )
    }

    /// No policy version can be enforced (the active one and every earlier one fail to
    /// load): requests are refused rather than served without a policy.
    pub fn policy_unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "policy_unavailable",
            "no policy version can be enforced on this gateway; try again later",
        )
    }

    /// The data directory's disk is below its refusal mark.
    pub fn disk_space_low() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "disk_space_low",
            "this gateway is short of disk space to record requests; try again later",
        )
    }

    /// No target of the model can count tokens (no such endpoint, or none reachable).
    pub fn count_tokens_unavailable(model: &str) -> Self {
        Self::new(
            StatusCode::NOT_IMPLEMENTED,
            "api_error",
            "count_tokens_unavailable",
            format!("no target of model `{model}` can count tokens"),
        )
    }

    pub fn upstream_timeout() -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "server_error",
            "upstream_timeout",
            "the model server did not answer in time",
        )
    }

    pub fn upstream_protocol(detail: &str) -> Self {
        Self::new(
            StatusCode::BAD_GATEWAY,
            "server_error",
            "upstream_protocol_error",
            format!("the model server sent an invalid response: {detail}"),
        )
    }

    /// Maps an upstream's error status. Client errors keep the upstream's message (it
    /// tells the caller what to fix); server errors get a generic one (no internals leak).
    pub fn from_upstream(
        status: StatusCode,
        message: Option<String>,
        retry_after: Option<HeaderValue>,
    ) -> Self {
        let mut err = match status.as_u16() {
            401 | 403 => Self::new(
                StatusCode::BAD_GATEWAY,
                "server_error",
                "upstream_auth_failed",
                "the model server rejected the gateway's credentials",
            ),
            429 => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                "rate_limit_exceeded",
                message.unwrap_or_else(|| "the model server is rate limiting requests".into()),
            ),
            404 => Self::new(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                "upstream_not_found",
                message.unwrap_or_else(|| "the model server does not know this resource".into()),
            ),
            400..=499 => Self::new(
                if status == StatusCode::UNPROCESSABLE_ENTITY {
                    StatusCode::BAD_REQUEST
                } else {
                    status
                },
                "invalid_request_error",
                "upstream_rejected",
                message.unwrap_or_else(|| "the model server rejected the request".into()),
            ),
            503 => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "upstream_overloaded",
                "the model server is temporarily unavailable",
            ),
            _ => Self::new(
                StatusCode::BAD_GATEWAY,
                "server_error",
                "upstream_error",
                format!("the model server failed (status {})", status.as_u16()),
            ),
        };
        err.retry_after = retry_after.map(Box::new);
        err
    }

    /// The JSON body of this error.
    pub fn body_bytes(&self) -> Vec<u8> {
        error_json(&self.message, self.kind, self.param, Some(self.code))
    }

    /// The error as an HTTP response in OpenAI's shape.
    pub fn into_response(self) -> Response<GatewayBody> {
        let body = self.body_bytes();
        self.into_response_with(body)
    }

    /// The error as an HTTP response in Anthropic's shape (`/v1/messages`).
    pub fn into_anthropic_response(self) -> Response<GatewayBody> {
        let body = crate::api::anthropic::error_json(self.status.as_u16(), &self.message);
        self.into_response_with(body)
    }

    /// The error as an HTTP response in Google's shape (Gemini's endpoints).
    pub fn into_gemini_response(self) -> Response<GatewayBody> {
        let body = crate::api::gemini::ingress::error_json(self.status.as_u16(), &self.message)
            .to_string();
        self.into_response_with(body.into_bytes())
    }

    fn into_response_with(self, body: Vec<u8>) -> Response<GatewayBody> {
        let mut response = Response::new(GatewayBody::full(body));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(v) = self.retry_after {
            headers.insert(header::RETRY_AFTER, *v);
        }
        // The stable code, for callers whose error format has no field for it.
        headers.insert(
            http::HeaderName::from_static("x-airlock-error-code"),
            HeaderValue::from_static(self.code),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
