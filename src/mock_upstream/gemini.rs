//! `--flavor gemini`: Google's Gemini API (`POST /v1beta/models/NAME:generateContent`,
//! `:streamGenerateContent?alt=sse`, `:countTokens`, `GET /v1beta/models`) in front of
//! the same simulated model. Requests go through Airlock's Gemini ingress translation
//! (checked as Google checks them), and the answers go back in Gemini's shapes; the
//! official `google-genai` SDK reads them in the interop tests.

use super::body::MockBody;
use super::translated::{Answer, read_answer};
use crate::api::ClientEvents;
use crate::api::gemini::ingress::{self, GeminiEvents};
use crate::api::openai::ForwardedRequest;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use serde_json::{Map, Value, json};

/// Google's error answer.
pub fn error(status: StatusCode, message: &str) -> Response<MockBody> {
    json_response(status, &ingress::error_json(status.as_u16(), message))
}

fn json_response(status: StatusCode, body: &Value) -> Response<MockBody> {
    let mut response = Response::new(MockBody::full(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    response
}

/// Checks the key (`x-goog-api-key`, or `?key=`) as Google does; the refusal, if any
/// (missing is 403, wrong is 400).
pub fn key_refusal(
    api_keys: &[String],
    headers: &HeaderMap,
    query: Option<&str>,
) -> Option<Response<MockBody>> {
    if api_keys.is_empty() {
        return None;
    }
    let from_query = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| pair.strip_prefix("key="));
    let given = headers
        .get("x-goog-api-key")
        .and_then(|v| v.to_str().ok())
        .or(from_query);
    match given {
        None => Some(error(
            StatusCode::FORBIDDEN,
            "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
        )),
        Some(key) if api_keys.iter().any(|k| k == key) => None,
        Some(_) => Some(error(
            StatusCode::BAD_REQUEST,
            "API key not valid. Please pass a valid API key.",
        )),
    }
}

/// What a path below `/v1beta` asks for.
pub enum Call<'a> {
    ListModels,
    GetModel(&'a str),
    Generate { model: &'a str, stream: bool },
    CountTokens(&'a str),
}

/// Reads `/v1beta/models[/NAME[:METHOD]]`; `None` for anything else.
pub fn parse_path(path: &str) -> Option<Call<'_>> {
    if let Some((model, method)) = ingress::model_method(path) {
        return match method {
            "generateContent" => Some(Call::Generate {
                model,
                stream: false,
            }),
            "streamGenerateContent" => Some(Call::Generate {
                model,
                stream: true,
            }),
            "countTokens" => Some(Call::CountTokens(model)),
            _ => None,
        };
    }
    let rest = path
        .strip_prefix("/v1beta/models")
        .or_else(|| path.strip_prefix("/v1/models"))?;
    match rest.strip_prefix('/') {
        None if rest.is_empty() => Some(Call::ListModels),
        Some(name) if !name.is_empty() => Some(Call::GetModel(name)),
        _ => None,
    }
}

/// One model as `GET /v1beta/models` lists it.
pub fn model_json(name: &str) -> Value {
    json!({"name": format!("models/{name}"), "version": "001", "displayName": name,
           "inputTokenLimit": 1_048_576, "outputTokenLimit": 65_536,
           "supportedGenerationMethods": ["generateContent", "countTokens"]})
}

pub fn list_models(models: &[String]) -> Response<MockBody> {
    let listed: Vec<Value> = models.iter().map(|m| model_json(m)).collect();
    json_response(StatusCode::OK, &json!({"models": listed}))
}

pub fn get_model(models: &[String], name: &str) -> Response<MockBody> {
    match models.iter().find(|m| m.as_str() == name) {
        Some(model) => json_response(StatusCode::OK, &model_json(model)),
        None => not_found(name),
    }
}

pub fn not_found(model: &str) -> Response<MockBody> {
    error(
        StatusCode::NOT_FOUND,
        &format!(
            "models/{model} is not found for API version v1beta, or is not supported for generateContent."
        ),
    )
}

/// What the simulated chat answer must become.
pub struct Translated {
    /// The chat request to simulate.
    pub chat: Vec<u8>,
    /// The prompt's size, which Gemini reports on every event of a stream.
    pub prompt_tokens: u64,
}

/// A Gemini request (for `model`, streaming or not) as the chat request to simulate,
/// through Airlock's own Gemini ingress translation (`mock_fault` kept).
pub fn to_chat(body: &[u8], model: &str, stream: bool) -> Result<Translated, String> {
    let mut request: Map<String, Value> =
        serde_json::from_slice(body).map_err(|e| format!("Invalid JSON payload received. {e}"))?;
    let fault = request.remove("mock_fault");
    let body = serde_json::to_vec(&request).map_err(|e| e.to_string())?;
    let mut chat = ingress::to_chat(&body, model, stream).map_err(|e| e.0)?;
    if stream {
        chat.request_stream_usage();
    }
    if let Some(fault) = fault {
        chat.extra.insert("mock_fault".into(), fault);
    }
    let messages = serde_json::to_value(&chat.messages).map_err(|e| e.to_string())?;
    let messages = messages.as_array().map_or(&[][..], Vec::as_slice);
    let prompt_tokens = super::chat::prompt_stats(messages).map_or(0, |stats| stats.tokens);
    let chat = serde_json::to_vec(&chat).map_err(|e| e.to_string())?;
    Ok(Translated {
        chat,
        prompt_tokens,
    })
}

/// `countTokens`: the prompt tokens of `{"contents": …}` or of a whole
/// `{"generateContentRequest": …}`, counted as `generateContent` counts them.
pub fn count_tokens(body: &[u8], model: &str) -> Result<Value, String> {
    let generate = ingress::counted_request(body).map_err(|e| e.0)?;
    let tokens = to_chat(&generate, model, false)?.prompt_tokens;
    Ok(
        json!({"totalTokens": tokens, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": tokens}]}),
    )
}

/// Turns the simulated chat answer into Gemini's: an error, a response, or a stream.
pub async fn from_chat(
    answer: Response<MockBody>,
    model: &str,
    translated: &Translated,
) -> Response<MockBody> {
    let prompt_tokens = Some(translated.prompt_tokens);
    let rewriter =
        || -> Box<dyn ClientEvents> { Box::new(GeminiEvents::new(model, prompt_tokens)) };
    let bytes = match read_answer(answer, rewriter, error).await {
        Answer::Done(response) => return response,
        Answer::Whole(bytes) => bytes,
    };
    let completion: Value = serde_json::from_slice(&bytes).unwrap_or_default();
    json_response(StatusCode::OK, &ingress::from_chat(&completion, model))
}
