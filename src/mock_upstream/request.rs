//! Request validation shared by the generation endpoints, with vLLM's error messages.

use std::time::Duration;

use bytes::Bytes;
use hyper::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::MockArgs;
use super::sse::StreamPlan;

/// The default `--max-model-len`: a context like today's coding models' (Llama 3.1,
/// Qwen3, gpt-oss), which an agent's prompt plus its `max_tokens` (32,000 for Claude
/// Code) fits in.
pub const DEFAULT_MAX_MODEL_LEN: u64 = 131_072;

/// Upper bound on `n`, so one request cannot ask for unbounded work.
const MAX_N: i64 = 1_024;

/// A validated generation request, ready to be answered.
#[derive(Debug)]
pub struct Prepared {
    /// The request's `mock_fault`, if any.
    pub fault: Option<String>,
    pub work: Work,
}

/// The answer of a validated request.
#[derive(Debug)]
pub enum Work {
    /// A complete JSON body (status 200).
    Json(Bytes),
    /// An SSE stream.
    Stream(StreamPlan),
}

/// Time to first token and the gap between tokens, from the command line.
pub fn pacing(args: &MockArgs) -> (Duration, Duration) {
    let first = Duration::from_millis(args.ttft_ms);
    let gap = if args.tokens_per_sec > 0.0 {
        Duration::try_from_secs_f64(1.0 / args.tokens_per_sec).unwrap_or(Duration::ZERO)
    } else {
        Duration::ZERO
    };
    (first, gap)
}

/// An error answered in vLLM's `ErrorResponse` shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: String,
    pub param: Option<&'static str>,
}

impl ApiError {
    /// 400 `BadRequestError`, vLLM's answer to anything wrong with a request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            kind: "BadRequestError",
            message: message.into(),
            param: None,
        }
    }

    /// 404 `NotFoundError` for a model the server does not serve.
    pub fn unknown_model(model: &str) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            kind: "NotFoundError",
            message: format!("The model `{model}` does not exist."),
            param: Some("model"),
        }
    }
}

/// Parses a JSON request body, mapping syntax and shape errors to 400 like vLLM does.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|error| {
        let what = if error.is_syntax() || error.is_eof() {
            "JSON decode error"
        } else {
            "Invalid request"
        };
        ApiError::bad_request(format!("{what}: {error}"))
    })
}

/// The model name vLLM puts in responses. vLLM treats all served names as aliases of
/// one model and always answers with the first; an absent or empty name means that one.
pub fn resolve_model<'a>(args: &'a MockArgs, requested: Option<&str>) -> Result<&'a str, ApiError> {
    let served = args.models.first().map_or("", String::as_str);
    match requested {
        None | Some("") => Ok(served),
        Some(name) if args.models.iter().any(|model| model == name) => Ok(served),
        Some(name) => Err(ApiError::unknown_model(name)),
    }
}

/// `mock_fault` as text; numbers are accepted so `"mock_fault": 500` works too.
pub fn fault_name(value: Option<&Value>) -> Result<Option<String>, ApiError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(name)) => Ok(Some(name.clone())),
        Some(Value::Number(number)) => Ok(Some(number.to_string())),
        Some(other) => Err(ApiError::bad_request(format!(
            "mock_fault must be a string, got {other}"
        ))),
    }
}

/// How many tokens each choice generates and why it stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Content tokens (words) per choice.
    pub tokens: u64,
    /// `"length"` when `max_tokens` cut generation short, else `"stop"` (end of sequence).
    pub finish: &'static str,
}

impl Budget {
    /// Generates `min(max_tokens, default_tokens)` tokens; `"length"` only when the
    /// request's limit was the binding one. A prompt, or a prompt and its `max_tokens`,
    /// beyond `max_model_len` is refused with vLLM's words.
    pub fn new(
        max_tokens: Option<i64>,
        default_tokens: u32,
        prompt_tokens: u64,
        max_model_len: u64,
    ) -> Result<Self, ApiError> {
        if prompt_tokens >= max_model_len {
            return Err(ApiError::bad_request(format!(
                "This model's maximum context length is {max_model_len} tokens. However, your \
                 request has {prompt_tokens} input tokens. Please reduce the length of the \
                 input messages."
            )));
        }
        let default = u64::from(default_tokens);
        let Some(limit) = max_tokens else {
            return Ok(Self {
                tokens: default,
                finish: "stop",
            });
        };
        if limit < 1 {
            return Err(ApiError::bad_request(format!(
                "max_tokens must be at least 1, got {limit}."
            )));
        }
        let limit = limit.unsigned_abs();
        if prompt_tokens.saturating_add(limit) > max_model_len {
            return Err(ApiError::bad_request(format!(
                "'max_tokens' or 'max_completion_tokens' is too large: {limit}. This model's \
                 maximum context length is {max_model_len} tokens and your request has \
                 {prompt_tokens} input tokens ({limit} > {max_model_len} - {prompt_tokens})."
            )));
        }
        Ok(if limit < default {
            Self {
                tokens: limit,
                finish: "length",
            }
        } else {
            Self {
                tokens: default,
                finish: "stop",
            }
        })
    }

    /// Tokens vLLM reports for a choice: the end-of-sequence token counts when the
    /// model stopped on its own.
    pub fn completion_tokens(&self) -> u64 {
        self.tokens + u64::from(self.finish == "stop")
    }
}

/// `n`, the number of choices.
pub fn choices(n: Option<i64>) -> Result<u32, ApiError> {
    match n {
        None => Ok(1),
        Some(n) if n < 1 => Err(ApiError::bad_request(format!(
            "n must be at least 1, got {n}."
        ))),
        Some(n) if n > MAX_N => Err(ApiError::bad_request(format!(
            "n must be at most {MAX_N} on this mock server, got {n}."
        ))),
        Some(n) => Ok(u32::try_from(n).unwrap_or(1)),
    }
}

/// Streaming switches, validated like vLLM's `validate_stream_options`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Streaming {
    pub stream: bool,
    /// Send a final chunk with `choices: []` and the usage.
    pub include_usage: bool,
    /// Put the running usage on every chunk (`continuous_usage_stats`).
    pub continuous_usage: bool,
}

impl Streaming {
    pub fn new(stream: Option<bool>, options: Option<&Value>) -> Result<Self, ApiError> {
        let stream = stream.unwrap_or(false);
        let options = match options {
            None | Some(Value::Null) => None,
            Some(Value::Object(options)) => Some(options),
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "stream_options: Input should be a valid dictionary, got {other}"
                )));
            }
        };
        let Some(options) = options else {
            return Ok(Self {
                stream,
                ..Self::default()
            });
        };
        if !stream && !options.is_empty() {
            return Err(ApiError::bad_request(
                "Stream options can only be defined when `stream=True`.",
            ));
        }
        // vLLM's StreamOptions defaults include_usage to true once stream_options is sent.
        let flag = |name: &str, default: bool| match options.get(name) {
            None => Ok(default),
            Some(Value::Null) => Ok(false),
            Some(Value::Bool(value)) => Ok(*value),
            Some(other) => Err(ApiError::bad_request(format!(
                "stream_options.{name}: Input should be a valid boolean, got {other}"
            ))),
        };
        let include_usage = flag("include_usage", true)?;
        let continuous_usage = include_usage && flag("continuous_usage_stats", false)?;
        Ok(Self {
            stream,
            include_usage,
            continuous_usage,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const LEN: u64 = 32_768;

    #[test]
    fn budget_prefers_the_smaller_limit() {
        assert_eq!(
            Budget::new(None, 16, 10, LEN),
            Ok(Budget {
                tokens: 16,
                finish: "stop"
            })
        );
        assert_eq!(
            Budget::new(Some(5), 16, 10, LEN),
            Ok(Budget {
                tokens: 5,
                finish: "length"
            })
        );
        assert_eq!(
            Budget::new(Some(16), 16, 10, LEN),
            Ok(Budget {
                tokens: 16,
                finish: "stop"
            })
        );
        assert_eq!(
            Budget::new(Some(100), 16, 10, LEN),
            Ok(Budget {
                tokens: 16,
                finish: "stop"
            })
        );
        assert!(Budget::new(Some(0), 16, 10, LEN).is_err());
        assert!(Budget::new(Some(-3), 16, 10, LEN).is_err());
        assert!(Budget::new(Some(LEN as i64), 16, 10, LEN).is_err());
        assert!(Budget::new(None, 16, LEN, LEN).is_err());
        assert!(Budget::new(Some(LEN as i64 - 10), 16, 10, LEN).is_ok());
        let stop = Budget {
            tokens: 16,
            finish: "stop",
        };
        let length = Budget {
            tokens: 5,
            finish: "length",
        };
        assert_eq!(stop.completion_tokens(), 17);
        assert_eq!(length.completion_tokens(), 5);
    }

    #[test]
    fn context_refusals_use_vllm_words() {
        assert_eq!(
            Budget::new(Some(32_000), 16, 20_000, LEN)
                .unwrap_err()
                .message,
            "'max_tokens' or 'max_completion_tokens' is too large: 32000. This model's maximum \
             context length is 32768 tokens and your request has 20000 input tokens (32000 > \
             32768 - 20000)."
        );
        assert_eq!(
            Budget::new(None, 16, 100, 100).unwrap_err().message,
            "This model's maximum context length is 100 tokens. However, your request has 100 \
             input tokens. Please reduce the length of the input messages."
        );
        assert!(Budget::new(Some(32_000), 16, 20_000, DEFAULT_MAX_MODEL_LEN).is_ok());
    }

    #[test]
    fn stream_options_follow_vllm_defaults() {
        let on = Some(true);
        assert_eq!(
            Streaming::new(on, None).unwrap(),
            Streaming {
                stream: true,
                ..Streaming::default()
            }
        );
        let usage = Streaming::new(on, Some(&json!({"include_usage": true}))).unwrap();
        assert!(usage.include_usage && !usage.continuous_usage);
        assert!(Streaming::new(on, Some(&json!({}))).unwrap().include_usage);
        assert!(
            !Streaming::new(on, Some(&json!({"include_usage": null})))
                .unwrap()
                .include_usage
        );
        let continuous = Streaming::new(
            on,
            Some(&json!({"include_usage": true, "continuous_usage_stats": true})),
        )
        .unwrap();
        assert!(continuous.continuous_usage);
        assert!(Streaming::new(Some(false), Some(&json!({"include_usage": true}))).is_err());
        assert!(Streaming::new(None, Some(&json!({}))).is_ok());
        assert!(Streaming::new(on, Some(&json!([]))).is_err());
    }

    #[test]
    fn model_resolution_answers_with_the_first_served_name() {
        let args = MockArgs {
            models: vec!["base".into(), "alias".into()],
            ..MockArgs::default()
        };
        assert_eq!(resolve_model(&args, None), Ok("base"));
        assert_eq!(resolve_model(&args, Some("")), Ok("base"));
        assert_eq!(resolve_model(&args, Some("alias")), Ok("base"));
        let missing = resolve_model(&args, Some("gpt-4")).unwrap_err();
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
        assert_eq!(missing.message, "The model `gpt-4` does not exist.");
    }

    #[test]
    fn n_is_bounded() {
        assert_eq!(choices(None), Ok(1));
        assert_eq!(choices(Some(3)), Ok(3));
        assert!(choices(Some(0)).is_err());
        assert!(choices(Some(MAX_N + 1)).is_err());
    }
}
