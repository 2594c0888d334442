//! `POST /v1/completions`: the legacy text completion endpoint, one or many prompts.

use serde::Deserialize;
use serde_json::Value;

use super::MockArgs;
use super::generate::{self, FNV_OFFSET, count_words, fnv1a};
use super::request::{
    ApiError, Budget, Prepared, Streaming, Work, choices, fault_name, pacing, parse_json,
    resolve_model,
};
use super::sse::{ChoicePlan, Flavor, Piece, StreamPlan};
use super::wire::{self, TextChoice, TextCompletion, Usage};

/// The fields of vLLM's `CompletionRequest` the simulator reads; the rest is ignored.
#[derive(Debug, Deserialize)]
struct CompletionRequest {
    model: Option<String>,
    prompt: Option<Value>,
    max_tokens: Option<i64>,
    n: Option<i64>,
    stream: Option<bool>,
    stream_options: Option<Value>,
    mock_fault: Option<Value>,
}

/// Size and seed of one prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prompt {
    pub tokens: u64,
    pub seed: u64,
}

/// A text prompt: its words plus the beginning-of-sequence token.
pub fn text_prompt(text: &str) -> Prompt {
    Prompt {
        tokens: count_words(text) + 1,
        seed: fnv1a(FNV_OFFSET, text.as_bytes()),
    }
}

/// A pre-tokenised prompt: one token per id.
pub fn token_prompt(ids: &[Value]) -> Option<Prompt> {
    let mut seed = FNV_OFFSET;
    for id in ids {
        let id = id.as_i64()?;
        seed = fnv1a(seed, &id.to_le_bytes());
    }
    Some(Prompt {
        tokens: ids.len() as u64,
        seed,
    })
}

/// The prompts of `prompt`/`input`: a string, a list of strings, a list of token ids, or a
/// list of token id lists. `what` names the field in error messages.
pub fn prompts(value: Option<&Value>, what: &str) -> Result<Vec<Prompt>, ApiError> {
    let invalid = || {
        ApiError::bad_request(format!(
            "{what}: Input should be a string, a list of strings, a list of token ids or a list \
             of token id lists"
        ))
    };
    match value {
        None | Some(Value::Null) => Err(ApiError::bad_request(format!(
            "At least one of `{what}` or `{what}_embeds` must be set."
        ))),
        Some(Value::String(text)) => Ok(vec![text_prompt(text)]),
        Some(Value::Array(items)) if items.is_empty() => {
            Err(ApiError::bad_request(format!("{what} cannot be empty")))
        }
        Some(Value::Array(items)) => match items.first() {
            Some(Value::String(_)) => items
                .iter()
                .map(|item| item.as_str().map(text_prompt).ok_or_else(invalid))
                .collect(),
            Some(Value::Number(_)) => Ok(vec![token_prompt(items).ok_or_else(invalid)?]),
            Some(Value::Array(_)) => items
                .iter()
                .map(|item| {
                    item.as_array()
                        .and_then(|ids| token_prompt(ids))
                        .ok_or_else(invalid)
                })
                .collect(),
            _ => Err(invalid()),
        },
        Some(_) => Err(invalid()),
    }
}

/// The generated text of one choice: every word preceded by a space, like a continuation.
fn continuation(seed: u64, index: u32, tokens: u64) -> String {
    let mut text = String::with_capacity(tokens as usize * 7);
    for word in generate::words(seed, index).take(tokens as usize) {
        text.push(' ');
        text.push_str(word);
    }
    text
}

/// Validates a completion request and renders its answer (JSON or a stream plan).
pub fn prepare(args: &MockArgs, body: &[u8]) -> Result<Prepared, ApiError> {
    let request: CompletionRequest = parse_json(body)?;
    let fault = fault_name(request.mock_fault.as_ref())?;
    let streaming = Streaming::new(request.stream, request.stream_options.as_ref())?;
    let n = choices(request.n)?;
    let prompts = prompts(request.prompt.as_ref(), "prompt")?;
    let model = resolve_model(args, request.model.as_deref())?;
    let longest = prompts.iter().map(|p| p.tokens).max().unwrap_or(0);
    let budget = Budget::new(
        request.max_tokens,
        args.default_tokens,
        longest,
        args.max_model_len,
    )?;
    let prompt_tokens: u64 = prompts.iter().map(|p| p.tokens).sum();
    // vLLM numbers choices prompt by prompt: index = prompt * n + choice.
    let seeds = prompts
        .iter()
        .flat_map(|prompt| (0..n).map(move |choice| (prompt.seed, choice)));

    let id = generate::new_id("cmpl-");
    let created = generate::unix_now();
    let work = if streaming.stream {
        let choices = seeds
            .map(|(seed, choice)| ChoicePlan {
                pieces: generate::words(seed, choice)
                    .take(budget.tokens as usize)
                    .map(|word| Piece::Word { word, space: true })
                    .collect(),
                finish: budget.finish,
                finish_on_last_piece: budget.finish == "length",
                completion_tokens: budget.completion_tokens(),
            })
            .collect();
        let (time_to_first_token, inter_token) = pacing(args);
        Work::Stream(StreamPlan {
            flavor: Flavor::Completion,
            id,
            created,
            model: model.to_owned(),
            choices,
            prompt_tokens,
            include_usage: streaming.include_usage,
            continuous_usage: streaming.continuous_usage,
            time_to_first_token,
            inter_token,
        })
    } else {
        let texts: Vec<String> = seeds
            .map(|(seed, choice)| continuation(seed, choice, budget.tokens))
            .collect();
        let completion_tokens = budget.completion_tokens() * texts.len() as u64;
        let choices = texts
            .iter()
            .zip(0..)
            .map(|(text, index)| TextChoice {
                index,
                text,
                logprobs: None,
                finish_reason: budget.finish,
                stop_reason: None,
                prompt_logprobs: None,
            })
            .collect();
        Work::Json(wire::to_json(&TextCompletion {
            id: &id,
            object: "text_completion",
            created,
            model,
            choices,
            service_tier: None,
            system_fingerprint: None,
            usage: Usage::new(prompt_tokens, completion_tokens),
            kv_transfer_params: None,
        }))
    };
    Ok(Prepared { fault, work })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn accepts_every_prompt_form() {
        let one = prompts(Some(&json!("once upon a time")), "prompt").unwrap();
        assert_eq!(one, vec![text_prompt("once upon a time")]);
        assert_eq!(one[0].tokens, 5);
        assert_eq!(
            prompts(Some(&json!(["a b", "c"])), "prompt").unwrap().len(),
            2
        );
        let ids = prompts(Some(&json!([1, 2, 3])), "prompt").unwrap();
        assert_eq!(ids.len(), 1);
        assert_eq!(ids[0].tokens, 3);
        let nested = prompts(Some(&json!([[1, 2], [3]])), "prompt").unwrap();
        assert_eq!(nested.iter().map(|p| p.tokens).collect::<Vec<_>>(), [2, 1]);
        assert!(prompts(None, "prompt").is_err());
        assert!(prompts(Some(&json!([])), "prompt").is_err());
        assert!(prompts(Some(&json!(["a", 1])), "prompt").is_err());
        assert!(prompts(Some(&json!({"a": 1})), "prompt").is_err());
    }

    #[test]
    fn answers_each_prompt_n_times() {
        let body = json!({"model": "mock-llama", "prompt": ["one two", "three"], "n": 2,
                          "max_tokens": 3});
        let prepared = prepare(&MockArgs::default(), body.to_string().as_bytes()).unwrap();
        let Work::Json(bytes) = prepared.work else {
            panic!("expected JSON");
        };
        let answer: Value = serde_json::from_slice(&bytes).unwrap();
        assert!(answer["id"].as_str().unwrap().starts_with("cmpl-"));
        assert_eq!(answer["object"], "text_completion");
        let choices = answer["choices"].as_array().unwrap();
        assert_eq!(choices.len(), 4);
        for (k, choice) in choices.iter().enumerate() {
            assert_eq!(choice["index"], k);
            assert_eq!(choice["finish_reason"], "length");
            assert_eq!(count_words(choice["text"].as_str().unwrap()), 3);
            assert!(choice["text"].as_str().unwrap().starts_with(' '));
        }
        assert_eq!(
            answer["usage"],
            json!({"prompt_tokens": 5, "total_tokens": 17, "completion_tokens": 12,
                   "prompt_tokens_details": null})
        );
    }
}
