//! `POST /v1/chat/completions`: deterministic answers and tool calls in vLLM's shapes.

use serde::Deserialize;
use serde_json::Value;

use super::MockArgs;
use super::generate::{self, FNV_OFFSET, count_words, fnv1a};
use super::request::{
    ApiError, Budget, Prepared, Streaming, Work, choices, fault_name, pacing, parse_json,
    resolve_model,
};
use super::script::{Script, Scripted};
use super::sse::{ChoicePlan, Flavor, Piece, StreamPlan};
use super::tools::{self, PlannedCall};
use super::wire::{self, ChatChoice, ChatCompletion, ChatMessage, FunctionCall, ToolCall, Usage};

/// Tokens the chat template adds around each message.
const TOKENS_PER_MESSAGE: u64 = 4;
/// Argument deltas a streamed tool call is split into.
const ARGUMENT_FRAGMENTS: usize = 3;

/// The fields of vLLM's `ChatCompletionRequest` the simulator reads; the rest is ignored.
#[derive(Debug, Deserialize)]
struct ChatRequest {
    model: Option<String>,
    messages: Vec<Value>,
    max_tokens: Option<i64>,
    max_completion_tokens: Option<i64>,
    n: Option<i64>,
    stream: Option<bool>,
    stream_options: Option<Value>,
    tools: Option<Vec<Value>>,
    tool_choice: Option<Value>,
    response_format: Option<Value>,
    mock_fault: Option<Value>,
}

/// What every choice of the answer holds.
#[derive(Debug, Clone, Copy)]
enum Answer<'a> {
    /// Words, as many as the budget allows.
    Words,
    /// Calls of these tools (one, unless scripted).
    Calls(&'a [PlannedCall]),
    /// This JSON text (`response_format`, as vLLM's structured outputs would make).
    Fixed(&'a str),
    /// The last message's text (`--echo`), streamed a few bytes per chunk so that chunk
    /// boundaries fall everywhere.
    Echo(&'a str),
}

/// The JSON answer a `response_format` asks for: generated from a `json_schema`, `{}`
/// for `json_object`; `None` for plain text.
fn structured_answer(format: Option<&Value>) -> Result<Option<String>, ApiError> {
    let Some(format) = format else {
        return Ok(None);
    };
    match format.get("type").and_then(Value::as_str) {
        None | Some("text") => Ok(None),
        Some("json_object") => Ok(Some("{}".to_owned())),
        Some("json_schema") => {
            let schema = format.pointer("/json_schema/schema");
            Ok(Some(tools::arguments_for(schema).to_string()))
        }
        Some(other) => Err(ApiError::bad_request(format!(
            "response_format.type: Input should be 'text', 'json_object' or 'json_schema', got '{other}'"
        ))),
    }
}

/// Usage tokens of a JSON answer: roughly four characters per token, plus the
/// end-of-sequence token.
/// Chunks a fixed answer streams in: a few for JSON, one per ~5 bytes for an echo.
fn fragments(answer: Answer<'_>, text: &str) -> usize {
    match answer {
        Answer::Echo(_) => text.len().div_ceil(5),
        _ => ARGUMENT_FRAGMENTS,
    }
}

fn json_tokens(text: &str) -> u64 {
    (text.len() as u64).div_ceil(4) + 1
}

/// Prompt size and the seed of the generated words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PromptStats {
    pub tokens: u64,
    pub seed: u64,
}

/// Counts prompt tokens (words of every text content, plus a fixed template overhead per
/// message) and hashes the text into the seed of the answer.
pub fn prompt_stats(messages: &[Value]) -> Result<PromptStats, ApiError> {
    let mut tokens = 0;
    let mut seed = FNV_OFFSET;
    for (i, message) in messages.iter().enumerate() {
        let Some(message) = message.as_object() else {
            return Err(ApiError::bad_request(format!(
                "messages.{i}: Input should be a valid dictionary"
            )));
        };
        let Some(role) = message.get("role").and_then(Value::as_str) else {
            return Err(ApiError::bad_request(format!(
                "messages.{i}.role: Field required"
            )));
        };
        tokens += TOKENS_PER_MESSAGE;
        seed = fnv1a(fnv1a(seed, role.as_bytes()), b"\n");
        let mut add_text = |text: &str| {
            tokens += count_words(text);
            seed = fnv1a(fnv1a(seed, text.as_bytes()), b"\n");
        };
        match message.get("content") {
            Some(Value::String(text)) => add_text(text),
            Some(Value::Array(parts)) => {
                for text in parts.iter().filter_map(|part| part.get("text")?.as_str()) {
                    add_text(text);
                }
            }
            _ => {}
        }
    }
    Ok(PromptStats { tokens, seed })
}

/// Usage tokens of tool calls: roughly four characters of arguments per token, plus the
/// name of each, and the end-of-sequence token.
fn calls_tokens(calls: &[PlannedCall]) -> u64 {
    calls
        .iter()
        .map(|call| (call.arguments.len() as u64).div_ceil(4) + 1)
        .sum::<u64>()
        + 1
}

/// Validates a chat request and renders its answer (JSON or a stream plan): the
/// `script`'s, when there is one, else generated.
pub fn prepare(
    args: &MockArgs,
    script: Option<&Script>,
    body: &[u8],
) -> Result<Prepared, ApiError> {
    let request: ChatRequest = parse_json(body)?;
    let fault = fault_name(request.mock_fault.as_ref())?;
    let streaming = Streaming::new(request.stream, request.stream_options.as_ref())?;
    let n = choices(request.n)?;
    // vLLM's checks of `tools` and `tool_choice` hold whoever answers.
    let call = tools::plan(request.tools.as_deref(), request.tool_choice.as_ref())
        .map_err(ApiError::bad_request)?;
    let json = structured_answer(request.response_format.as_ref())?;
    let model = resolve_model(args, request.model.as_deref())?;
    let prompt = prompt_stats(&request.messages)?;
    // vLLM: `max_completion_tokens or max_tokens`.
    let limit = request.max_completion_tokens.or(request.max_tokens);
    let budget = Budget::new(
        limit,
        args.default_tokens,
        prompt.tokens,
        args.max_model_len,
    )?;
    let scripted = script.and_then(|script| {
        script.answer(
            &request.messages,
            request.tools.as_deref(),
            request.tool_choice.as_ref(),
            json.is_some(),
        )
    });
    // Automatic tool calls: neither with `--text-only` nor with a script.
    let automatic = call.filter(|_| !args.text_only && script.is_none());
    let (scripted_text, calls) = match scripted {
        Some(Scripted::Text(text)) => (Some(text), Vec::new()),
        Some(Scripted::Calls(calls)) => (None, calls),
        None => (None, automatic.into_iter().collect()),
    };
    let echo = args
        .echo
        .then(|| request.messages.last()?.get("content")?.as_str())
        .flatten();
    let answer = match (scripted_text.as_deref(), json.as_deref(), echo) {
        _ if !calls.is_empty() => Answer::Calls(&calls),
        (Some(text), _, _) | (None, Some(text), _) => Answer::Fixed(text),
        (None, None, Some(text)) => Answer::Echo(text),
        (None, None, None) => Answer::Words,
    };

    let id = generate::new_id("chatcmpl-");
    let created = generate::unix_now();
    let work = if streaming.stream {
        Work::Stream(stream_plan(
            args, id, created, model, n, prompt, budget, answer, streaming,
        ))
    } else {
        Work::Json(render_json(&id, created, model, n, prompt, budget, answer))
    };
    Ok(Prepared { fault, work })
}

fn render_json(
    id: &str,
    created: u64,
    model: &str,
    n: u32,
    prompt: PromptStats,
    budget: Budget,
    answer: Answer<'_>,
) -> bytes::Bytes {
    // Owned text the borrowed response fields point into.
    let contents: Vec<String>;
    let tool_ids: Vec<String>;
    let completion_tokens;
    let choices: Vec<ChatChoice<'_>>;
    match answer {
        Answer::Calls(calls) => {
            tool_ids = (0..n as usize * calls.len())
                .map(|_| generate::new_id("chatcmpl-tool-"))
                .collect();
            completion_tokens = calls_tokens(calls) * u64::from(n);
            let content = calls
                .first()
                .and_then(|call| call.content_empty_string.then_some(""));
            choices = tool_ids
                .chunks(calls.len().max(1))
                .zip(0..)
                .map(|(ids, index)| ChatChoice {
                    index,
                    message: ChatMessage {
                        role: "assistant",
                        content,
                        refusal: None,
                        annotations: None,
                        audio: None,
                        function_call: None,
                        tool_calls: ids
                            .iter()
                            .zip(calls.iter())
                            .map(|(id, call)| ToolCall {
                                id,
                                kind: "function",
                                function: FunctionCall {
                                    name: &call.name,
                                    arguments: &call.arguments,
                                },
                            })
                            .collect(),
                        reasoning_content: None,
                    },
                    logprobs: None,
                    finish_reason: "tool_calls",
                    stop_reason: None,
                })
                .collect();
        }
        Answer::Words | Answer::Fixed(_) | Answer::Echo(_) => {
            let finish;
            (contents, completion_tokens, finish) = match answer {
                Answer::Fixed(text) | Answer::Echo(text) => (
                    vec![text.to_owned(); n as usize],
                    json_tokens(text) * u64::from(n),
                    "stop",
                ),
                _ => (
                    (0..n)
                        .map(|index| answer_text(prompt.seed, index, budget.tokens))
                        .collect(),
                    budget.completion_tokens() * u64::from(n),
                    budget.finish,
                ),
            };
            choices = contents
                .iter()
                .zip(0..)
                .map(|(content, index)| ChatChoice {
                    index,
                    message: ChatMessage {
                        role: "assistant",
                        content: Some(content),
                        refusal: None,
                        annotations: None,
                        audio: None,
                        function_call: None,
                        tool_calls: Vec::new(),
                        reasoning_content: None,
                    },
                    logprobs: None,
                    finish_reason: finish,
                    stop_reason: None,
                })
                .collect();
        }
    }
    wire::to_json(&ChatCompletion {
        id,
        object: "chat.completion",
        created,
        model,
        choices,
        service_tier: None,
        system_fingerprint: None,
        usage: Usage::new(prompt.tokens, completion_tokens),
        prompt_logprobs: None,
        kv_transfer_params: None,
    })
}

/// The message text of choice `index`: `tokens` words separated by single spaces.
pub fn answer_text(seed: u64, index: u32, tokens: u64) -> String {
    let mut text = String::with_capacity(tokens as usize * 7);
    for (k, word) in generate::words(seed, index)
        .take(tokens as usize)
        .enumerate()
    {
        if k > 0 {
            text.push(' ');
        }
        text.push_str(word);
    }
    text
}

/// The deltas of streamed tool calls: each call opens with its id and name, then its
/// arguments in a few fragments.
fn tool_call_pieces(calls: &[PlannedCall]) -> Vec<Piece> {
    let mut pieces = Vec::with_capacity(calls.len() * (1 + ARGUMENT_FRAGMENTS));
    for (index, call) in (0..).zip(calls) {
        pieces.push(Piece::ToolStart {
            index,
            id: generate::new_id("chatcmpl-tool-"),
            name: call.name.clone(),
        });
        pieces.extend(
            tools::split_fragments(&call.arguments, ARGUMENT_FRAGMENTS)
                .into_iter()
                .map(|fragment| Piece::ToolArgs {
                    index,
                    fragment: fragment.to_owned(),
                }),
        );
    }
    pieces
}

#[allow(clippy::too_many_arguments)]
fn stream_plan(
    args: &MockArgs,
    id: String,
    created: u64,
    model: &str,
    n: u32,
    prompt: PromptStats,
    budget: Budget,
    answer: Answer<'_>,
    streaming: Streaming,
) -> StreamPlan {
    let choices = (0..n)
        .map(|index| match answer {
            Answer::Calls(calls) => ChoicePlan {
                pieces: tool_call_pieces(calls),
                finish: "tool_calls",
                finish_on_last_piece: false,
                completion_tokens: calls_tokens(calls),
            },
            Answer::Fixed(json) | Answer::Echo(json) => ChoicePlan {
                pieces: tools::split_fragments(json, fragments(answer, json))
                    .into_iter()
                    .map(|fragment| Piece::Text(fragment.to_owned()))
                    .collect(),
                finish: "stop",
                finish_on_last_piece: false,
                completion_tokens: json_tokens(json),
            },
            Answer::Words => ChoicePlan {
                pieces: generate::words(prompt.seed, index)
                    .take(budget.tokens as usize)
                    .enumerate()
                    .map(|(k, word)| Piece::Word { word, space: k > 0 })
                    .collect(),
                finish: budget.finish,
                finish_on_last_piece: budget.finish == "length",
                completion_tokens: budget.completion_tokens(),
            },
        })
        .collect();
    let (time_to_first_token, inter_token) = pacing(args);
    StreamPlan {
        flavor: Flavor::Chat,
        id,
        created,
        model: model.to_owned(),
        choices,
        prompt_tokens: prompt.tokens,
        include_usage: streaming.include_usage,
        continuous_usage: streaming.continuous_usage,
        time_to_first_token,
        inter_token,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn json_work(args: &MockArgs, body: Value) -> Value {
        let prepared = prepare(args, None, body.to_string().as_bytes()).unwrap();
        match prepared.work {
            Work::Json(bytes) => serde_json::from_slice(&bytes).unwrap(),
            Work::Stream(_) => panic!("expected a JSON answer"),
        }
    }

    #[test]
    fn counts_prompt_tokens_across_string_and_part_contents() {
        let messages = [
            json!({"role": "system", "content": "be brief"}),
            json!({"role": "user", "content": [
                {"type": "text", "text": "hello there  world"},
                {"type": "image_url", "image_url": {"url": "data:..."}}
            ]}),
            json!({"role": "assistant", "content": null, "tool_calls": []}),
        ];
        let stats = prompt_stats(&messages).unwrap();
        assert_eq!(stats.tokens, 2 + 3 + 3 * TOKENS_PER_MESSAGE);
        assert_eq!(prompt_stats(&messages).unwrap().seed, stats.seed);
        let other = prompt_stats(&[json!({"role": "user", "content": "different"})]).unwrap();
        assert_ne!(other.seed, stats.seed);
        assert!(prompt_stats(&[json!("hi")]).is_err());
        assert!(prompt_stats(&[json!({"content": "hi"})]).is_err());
    }

    #[test]
    fn non_streaming_answer_has_vllm_shape() {
        let args = MockArgs::default();
        let body = json!({
            "model": "mock-llama",
            "messages": [{"role": "user", "content": "say something"}],
            "max_tokens": 5,
            "n": 2
        });
        let answer = json_work(&args, body.clone());
        assert!(answer["id"].as_str().unwrap().starts_with("chatcmpl-"));
        assert_eq!(answer["object"], "chat.completion");
        assert_eq!(answer["model"], "mock-llama");
        assert_eq!(answer["choices"].as_array().unwrap().len(), 2);
        let first = &answer["choices"][0];
        assert_eq!(first["finish_reason"], "length");
        assert_eq!(first["message"]["tool_calls"], json!([]));
        assert_eq!(first["message"]["reasoning_content"], Value::Null);
        let content = first["message"]["content"].as_str().unwrap();
        assert_eq!(count_words(content), 5);
        assert_eq!(
            answer["usage"],
            json!({"prompt_tokens": 6, "total_tokens": 16, "completion_tokens": 10,
                   "prompt_tokens_details": null})
        );
        // Same prompt, same words.
        assert_eq!(
            json_work(&args, body)["choices"][0]["message"]["content"],
            content
        );
    }

    #[test]
    fn default_length_stops_with_end_of_sequence_token() {
        let args = MockArgs {
            default_tokens: 3,
            ..MockArgs::default()
        };
        let answer = json_work(
            &args,
            json!({"messages": [{"role": "user", "content": "hi"}]}),
        );
        assert_eq!(answer["choices"][0]["finish_reason"], "stop");
        assert_eq!(
            count_words(answer["choices"][0]["message"]["content"].as_str().unwrap()),
            3
        );
        assert_eq!(answer["usage"]["completion_tokens"], 4);
    }

    #[test]
    fn tool_call_answer_fills_required_arguments() {
        let args = MockArgs::default();
        let answer = json_work(
            &args,
            json!({
                "messages": [{"role": "user", "content": "weather?"}],
                "tools": [{"type": "function", "function": {
                    "name": "get_weather",
                    "parameters": {"type": "object",
                        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                        "required": ["city", "days"]}
                }}]
            }),
        );
        let choice = &answer["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls");
        assert_eq!(choice["message"]["content"], Value::Null);
        let call = &choice["message"]["tool_calls"][0];
        assert!(call["id"].as_str().unwrap().starts_with("chatcmpl-tool-"));
        assert_eq!(call["type"], "function");
        assert_eq!(call["function"]["name"], "get_weather");
        let arguments: Value =
            serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(arguments, json!({"city": "mock", "days": 1}));
    }

    #[test]
    fn rejects_bad_requests_like_vllm() {
        let args = MockArgs::default();
        let err = |body: Value| prepare(&args, None, body.to_string().as_bytes()).unwrap_err();
        assert_eq!(
            err(json!({"model": "nope", "messages": []}))
                .status
                .as_u16(),
            404
        );
        assert_eq!(err(json!({"model": "mock-llama"})).status.as_u16(), 400);
        assert_eq!(
            err(json!({"messages": [], "max_tokens": 0}))
                .status
                .as_u16(),
            400
        );
        assert_eq!(err(json!({"messages": [], "n": 0})).status.as_u16(), 400);
        assert_eq!(
            err(json!({"messages": [], "stream_options": {"include_usage": true}})).message,
            "Stream options can only be defined when `stream=True`."
        );
        assert!(
            prepare(&args, None, b"{not json")
                .unwrap_err()
                .message
                .starts_with("JSON decode error")
        );
    }

    #[test]
    fn streaming_requests_get_a_plan() {
        let args = MockArgs::default();
        let body = json!({"messages": [{"role": "user", "content": "hi"}], "stream": true,
                          "stream_options": {"include_usage": true}, "max_tokens": 4,
                          "mock_fault": "reset"});
        let prepared = prepare(&args, None, body.to_string().as_bytes()).unwrap();
        assert_eq!(prepared.fault.as_deref(), Some("reset"));
        let Work::Stream(plan) = prepared.work else {
            panic!("expected a stream");
        };
        assert!(plan.include_usage);
        assert_eq!(plan.choices[0].pieces.len(), 4);
        assert!(plan.choices[0].finish_on_last_piece);
    }
}
