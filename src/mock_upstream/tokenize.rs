//! `POST /tokenize` (vLLM's, at the server root): the token count of a chat (`messages`,
//! counted as chat completions count their prompt) or of a text `prompt`.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use super::MockArgs;
use super::chat::prompt_stats;
use super::completions::text_prompt;
use super::request::{ApiError, parse_json, resolve_model};

#[derive(Debug, Deserialize)]
struct TokenizeRequest {
    model: Option<String>,
    messages: Option<Vec<Value>>,
    prompt: Option<String>,
}

/// The number of prompt tokens a chat or completion request with this body would have.
pub fn answer(args: &MockArgs, body: &[u8]) -> Result<Bytes, ApiError> {
    let request: TokenizeRequest = parse_json(body)?;
    resolve_model(args, request.model.as_deref())?;
    let count = match (&request.messages, &request.prompt) {
        (Some(messages), _) => prompt_stats(messages)?.tokens,
        (None, Some(prompt)) => text_prompt(prompt).tokens,
        (None, None) => {
            return Err(ApiError::bad_request(
                "Either `messages` or `prompt` is required.",
            ));
        }
    };
    let tokens: Vec<u64> = (1..=count).collect();
    let answer = json!({"count": count, "max_model_len": args.max_model_len, "tokens": tokens, "token_strs": null});
    Ok(Bytes::from(answer.to_string()))
}
