//! Streaming responses: vLLM's SSE chunk sequence, rendered lazily, paced, and faultable.
//!
//! A [`StreamPlan`] describes what the "model" says; [`SseBody`] walks it one event at a
//! time, sleeping for time-to-first-token and inter-token gaps, so each chunk reaches
//! the socket when it is "generated". Injected faults cut, corrupt or stall the stream.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::{Instant, Sleep};

use super::faults::Fault;
use super::wire::{push_json_str, push_u64, stream_error_event};

/// The terminating event of every vLLM stream.
const DONE: &[u8] = b"data: [DONE]\n\n";
/// The invalid chunk of the `malformed` fault.
const MALFORMED: &[u8] = b"data: {\"id\": broken\n\n";
/// Events sent before `reset`, `malformed` and `stream_error` strike.
const EVENTS_BEFORE_FAULT: usize = 3;
/// Pause before a `reset`, so the chunks already produced reach the socket first
/// (hyper only flushes when the body is pending).
const RESET_FLUSH_DELAY: Duration = Duration::from_millis(10);

/// Which endpoint's chunk shape to render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// `chat.completion.chunk`, serialised by vLLM with `exclude_unset=True`.
    Chat,
    /// `text_completion`, serialised by vLLM with every field (`"usage":null` included).
    Completion,
}

/// One generated token's worth of output for one choice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// A word, preceded by a space unless it opens a chat message.
    Word { word: &'static str, space: bool },
    /// A fragment of message text (a structured answer's JSON).
    Text(String),
    /// The opening delta of a tool call: its index in the message, id, type and name.
    ToolStart {
        index: u32,
        id: String,
        name: String,
    },
    /// A fragment of the arguments of the tool call at `index`.
    ToolArgs { index: u32, fragment: String },
}

/// What one choice streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChoicePlan {
    pub pieces: Vec<Piece>,
    pub finish: &'static str,
    /// vLLM sends the finish reason with the last token when the length limit hits, but
    /// in a chunk of its own (the end-of-sequence token, empty text) when the model stops.
    pub finish_on_last_piece: bool,
    /// Tokens counted in usage for this choice.
    pub completion_tokens: u64,
}

impl ChoicePlan {
    fn steps(&self) -> usize {
        let separate_final = !self.finish_on_last_piece || self.pieces.is_empty();
        self.pieces.len() + usize::from(separate_final)
    }

    fn is_tool_call(&self) -> bool {
        matches!(self.pieces.first(), Some(Piece::ToolStart { .. }))
    }
}

/// Everything needed to render one streamed response.
#[derive(Debug, Clone)]
pub struct StreamPlan {
    pub flavor: Flavor,
    pub id: String,
    pub created: u64,
    pub model: String,
    pub choices: Vec<ChoicePlan>,
    pub prompt_tokens: u64,
    pub include_usage: bool,
    pub continuous_usage: bool,
    pub time_to_first_token: Duration,
    pub inter_token: Duration,
}

/// One SSE event and when to send it.
#[derive(Debug)]
struct Event {
    /// Offset from the start of the stream. Offsets, not gaps: a late timer does not
    /// push back every later token, so the average rate stays what was asked for.
    at: Duration,
    bytes: Bytes,
    is_done: bool,
}

#[derive(Debug, Clone, Copy)]
enum Stage {
    Role(usize),
    Step { t: usize, i: usize },
    Usage,
    Done,
    End,
}

/// Walks a plan, rendering each event on demand.
#[derive(Debug)]
struct Script {
    plan: StreamPlan,
    /// `data: {"id":…,"object":…,"created":…,"model":…,"choices":[`
    prefix: Vec<u8>,
    steps: Vec<usize>,
    max_steps: usize,
    stage: Stage,
    started: bool,
    new_step: bool,
    /// Offset of the current step.
    clock: Duration,
}

impl Script {
    fn new(plan: StreamPlan) -> Self {
        let object: &[u8] = match plan.flavor {
            Flavor::Chat => b"chat.completion.chunk",
            Flavor::Completion => b"text_completion",
        };
        let mut prefix = Vec::with_capacity(96 + plan.id.len() + plan.model.len());
        prefix.extend_from_slice(b"data: {\"id\":");
        push_json_str(&mut prefix, &plan.id);
        prefix.extend_from_slice(b",\"object\":\"");
        prefix.extend_from_slice(object);
        prefix.extend_from_slice(b"\",\"created\":");
        push_u64(&mut prefix, plan.created);
        prefix.extend_from_slice(b",\"model\":");
        push_json_str(&mut prefix, &plan.model);
        prefix.extend_from_slice(b",\"choices\":[");
        let steps: Vec<usize> = plan.choices.iter().map(ChoicePlan::steps).collect();
        let max_steps = steps.iter().copied().max().unwrap_or(0);
        let stage = match plan.flavor {
            Flavor::Chat => Stage::Role(0),
            Flavor::Completion => Stage::Step { t: 0, i: 0 },
        };
        Self {
            plan,
            prefix,
            steps,
            max_steps,
            stage,
            started: false,
            new_step: false,
            clock: Duration::ZERO,
        }
    }

    fn next_event(&mut self) -> Option<Event> {
        loop {
            match self.stage {
                Stage::Role(i) => {
                    if i >= self.plan.choices.len() {
                        self.stage = Stage::Step { t: 0, i: 0 };
                        continue;
                    }
                    self.stage = Stage::Role(i + 1);
                    return Some(self.emit(|script, out| script.role_chunk(out, i)));
                }
                Stage::Step { t, i } => {
                    if t >= self.max_steps {
                        self.stage = Stage::Usage;
                        continue;
                    }
                    if i >= self.plan.choices.len() {
                        self.stage = Stage::Step { t: t + 1, i: 0 };
                        self.new_step = true;
                        continue;
                    }
                    self.stage = Stage::Step { t, i: i + 1 };
                    if t >= self.steps.get(i).copied().unwrap_or(0) {
                        continue;
                    }
                    return Some(self.emit(|script, out| script.step_chunk(out, t, i)));
                }
                Stage::Usage => {
                    self.stage = Stage::Done;
                    if self.plan.include_usage {
                        return Some(self.emit(Self::usage_chunk));
                    }
                }
                Stage::Done => {
                    self.stage = Stage::End;
                    return Some(Event {
                        at: self.clock,
                        bytes: Bytes::from_static(DONE),
                        is_done: true,
                    });
                }
                Stage::End => return None,
            }
        }
    }

    /// Renders a chunk and works out when it is due.
    fn emit(&mut self, render: impl FnOnce(&Self, &mut Vec<u8>)) -> Event {
        if !self.started {
            self.clock = self.plan.time_to_first_token;
        } else if self.new_step {
            self.clock += self.plan.inter_token;
        }
        self.started = true;
        self.new_step = false;
        let mut out = Vec::with_capacity(self.prefix.len() + 160);
        out.extend_from_slice(&self.prefix);
        render(self, &mut out);
        out.extend_from_slice(b"}\n\n");
        Event {
            at: self.clock,
            bytes: Bytes::from(out),
            is_done: false,
        }
    }

    fn role_chunk(&self, out: &mut Vec<u8>, i: usize) {
        out.extend_from_slice(b"{\"index\":");
        push_u64(out, i as u64);
        out.extend_from_slice(
            b",\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]",
        );
        self.usage_tail(out, 0);
    }

    fn step_chunk(&self, out: &mut Vec<u8>, t: usize, i: usize) {
        let Some(choice) = self.plan.choices.get(i) else {
            return;
        };
        let last_step = t + 1 >= self.steps.get(i).copied().unwrap_or(0);
        let piece = choice.pieces.get(t);
        let finish = last_step.then_some(choice.finish);
        out.extend_from_slice(b"{\"index\":");
        push_u64(out, i as u64);
        match self.plan.flavor {
            Flavor::Chat => {
                out.extend_from_slice(b",\"delta\":");
                match piece {
                    Some(piece) => push_delta(out, piece),
                    // The end-of-sequence token decodes to "", a tool call's to nothing.
                    None if choice.is_tool_call() => out.extend_from_slice(b"{}"),
                    None => out.extend_from_slice(b"{\"content\":\"\"}"),
                }
                out.extend_from_slice(b",\"logprobs\":null,\"finish_reason\":");
                match finish {
                    Some(reason) => {
                        push_json_str(out, reason);
                        out.extend_from_slice(b",\"stop_reason\":null}]");
                    }
                    None => out.extend_from_slice(b"null}]"),
                }
            }
            Flavor::Completion => {
                out.extend_from_slice(b",\"text\":");
                match piece {
                    Some(piece) => push_text(out, piece),
                    None => out.extend_from_slice(b"\"\""),
                }
                out.extend_from_slice(b",\"logprobs\":null,\"finish_reason\":");
                match finish {
                    Some(reason) => push_json_str(out, reason),
                    None => out.extend_from_slice(b"null"),
                }
                out.extend_from_slice(b",\"stop_reason\":null}]");
            }
        }
        let so_far = if last_step {
            choice.completion_tokens
        } else {
            (t as u64 + 1).min(choice.completion_tokens)
        };
        self.usage_tail(out, so_far);
    }

    /// What follows `choices` in a regular chunk.
    fn usage_tail(&self, out: &mut Vec<u8>, completion_tokens: u64) {
        match (self.plan.flavor, self.plan.continuous_usage) {
            (Flavor::Chat, false) => {}
            (Flavor::Chat, true) => {
                out.extend_from_slice(b",\"usage\":");
                push_usage(out, self.plan.prompt_tokens, completion_tokens);
                out.push(b'}');
            }
            (Flavor::Completion, false) => out.extend_from_slice(b",\"usage\":null"),
            (Flavor::Completion, true) => {
                out.extend_from_slice(b",\"usage\":");
                push_usage(out, self.plan.prompt_tokens, completion_tokens);
                out.extend_from_slice(b",\"prompt_tokens_details\":null}");
            }
        }
    }

    /// The last data chunk when `include_usage` is set: no choices, the total usage.
    fn usage_chunk(&self, out: &mut Vec<u8>) {
        let completion: u64 = self.plan.choices.iter().map(|c| c.completion_tokens).sum();
        out.extend_from_slice(b"],\"usage\":");
        push_usage(out, self.plan.prompt_tokens, completion);
        out.push(b'}');
    }
}

/// `{"prompt_tokens":P,"total_tokens":T,"completion_tokens":C` (left open).
fn push_usage(out: &mut Vec<u8>, prompt: u64, completion: u64) {
    out.extend_from_slice(b"{\"prompt_tokens\":");
    push_u64(out, prompt);
    out.extend_from_slice(b",\"total_tokens\":");
    push_u64(out, prompt + completion);
    out.extend_from_slice(b",\"completion_tokens\":");
    push_u64(out, completion);
}

fn push_delta(out: &mut Vec<u8>, piece: &Piece) {
    match piece {
        Piece::Word { .. } | Piece::Text(_) => {
            out.extend_from_slice(b"{\"content\":");
            push_text(out, piece);
            out.push(b'}');
        }
        Piece::ToolStart { index, id, name } => {
            out.extend_from_slice(b"{\"tool_calls\":[{\"id\":");
            push_json_str(out, id);
            out.extend_from_slice(b",\"type\":\"function\",\"index\":");
            push_u64(out, u64::from(*index));
            out.extend_from_slice(b",\"function\":{\"name\":");
            push_json_str(out, name);
            out.extend_from_slice(b",\"arguments\":\"\"}}]}");
        }
        Piece::ToolArgs { index, fragment } => {
            out.extend_from_slice(b"{\"tool_calls\":[{\"index\":");
            push_u64(out, u64::from(*index));
            out.extend_from_slice(b",\"function\":{\"arguments\":");
            push_json_str(out, fragment);
            out.extend_from_slice(b"}}]}");
        }
    }
}

fn push_text(out: &mut Vec<u8>, piece: &Piece) {
    match piece {
        Piece::Word { word, space } => {
            out.push(b'"');
            if *space {
                out.push(b' ');
            }
            // The vocabulary is plain lowercase ASCII: nothing to escape.
            out.extend_from_slice(word.as_bytes());
            out.push(b'"');
        }
        Piece::ToolStart { .. } => out.extend_from_slice(b"\"\""),
        Piece::ToolArgs { fragment, .. } | Piece::Text(fragment) => push_json_str(out, fragment),
    }
}

/// How an injected fault disturbs a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StreamFault {
    /// Drop the connection: no terminating chunk, no `[DONE]`.
    Reset,
    /// Insert an invalid JSON chunk, then carry on.
    Malformed,
    /// Stop sending, keep the connection open.
    Stall,
    /// vLLM's error event, then `[DONE]`.
    Error,
}

#[derive(Debug, PartialEq, Eq)]
enum Mode {
    Running,
    Stalled,
    /// Fail the body (dropping the connection) once the pending sleep is over.
    Resetting,
    Finished,
}

/// vLLM's message for a failure while generating.
pub const GENERIC_ERROR: &str = "Internal server error";

/// A streaming response body: vLLM's SSE events, paced and possibly faulted.
#[derive(Debug)]
pub struct SseBody {
    script: Script,
    /// The message of a mid-stream error event.
    error_message: Box<str>,
    /// When the request arrived: event offsets count from here.
    origin: Instant,
    fault: Option<(StreamFault, usize)>,
    emitted: usize,
    sleep: Option<Pin<Box<Sleep>>>,
    queue: VecDeque<Bytes>,
    mode: Mode,
    /// How long the body stays open after its `[DONE]` (the `late_end` fault).
    late_end: Option<Duration>,
}

impl SseBody {
    /// A stream for `plan`, disturbed by `fault` if it is a streaming fault.
    pub fn new(plan: StreamPlan, fault: Option<Fault>) -> Self {
        let late_end = match fault {
            Some(Fault::LateEnd(millis)) => Some(Duration::from_millis(millis)),
            _ => None,
        };
        let fault = match fault {
            Some(Fault::Reset) => Some((StreamFault::Reset, EVENTS_BEFORE_FAULT)),
            Some(Fault::ResetAfter(events)) => Some((StreamFault::Reset, events)),
            Some(Fault::Malformed) => Some((StreamFault::Malformed, EVENTS_BEFORE_FAULT)),
            Some(Fault::StreamError) => Some((StreamFault::Error, EVENTS_BEFORE_FAULT)),
            Some(Fault::Stall) => Some((StreamFault::Stall, 1)),
            _ => None,
        };
        Self {
            script: Script::new(plan),
            error_message: GENERIC_ERROR.into(),
            origin: Instant::now(),
            fault,
            emitted: 0,
            sleep: None,
            queue: VecDeque::new(),
            mode: Mode::Running,
            late_end,
        }
    }

    /// Says `message` in a mid-stream error event.
    pub fn with_error_message(mut self, message: Box<str>) -> Self {
        self.error_message = message;
        self
    }

    /// The next SSE event, `None` at the end, `Err` to abort the connection.
    pub fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        loop {
            if let Some(sleep) = self.sleep.as_mut() {
                ready!(sleep.as_mut().poll(cx));
                self.sleep = None;
            }
            if let Some(bytes) = self.queue.pop_front() {
                self.emitted += 1;
                return Poll::Ready(Some(Ok(bytes)));
            }
            match self.mode {
                Mode::Running => {}
                // Nothing will ever wake this body: it waits for the client to hang up.
                Mode::Stalled => return Poll::Pending,
                Mode::Resetting => {
                    self.mode = Mode::Finished;
                    return Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::ConnectionReset,
                        "mock_fault reset: connection dropped mid-stream",
                    ))));
                }
                Mode::Finished => return Poll::Ready(None),
            }
            let next = self.script.next_event();
            if let Some((fault, after)) = self.fault {
                // Strike after a few events, and at the latest before `[DONE]`.
                let at_end = next.as_ref().is_none_or(|event| event.is_done);
                if self.emitted >= after || at_end {
                    self.fault = None;
                    match fault {
                        StreamFault::Reset => {
                            self.mode = Mode::Resetting;
                            self.sleep = Some(Box::pin(tokio::time::sleep(RESET_FLUSH_DELAY)));
                            continue;
                        }
                        StreamFault::Stall => {
                            self.mode = Mode::Stalled;
                            continue;
                        }
                        StreamFault::Error => {
                            self.queue.push_back(stream_error_event(
                                &self.error_message,
                                "InternalServerError",
                                500,
                            ));
                            self.queue.push_back(Bytes::from_static(DONE));
                            self.mode = Mode::Finished;
                            continue;
                        }
                        StreamFault::Malformed => {
                            self.queue.push_back(Bytes::from_static(MALFORMED));
                        }
                    }
                }
            }
            match next {
                Some(event) => {
                    if !event.at.is_zero() {
                        let due = self.origin + event.at;
                        if due > Instant::now() {
                            self.sleep = Some(Box::pin(tokio::time::sleep_until(due)));
                        }
                    }
                    self.queue.push_back(event.bytes);
                }
                None => {
                    self.mode = Mode::Finished;
                    if let Some(delay) = self.late_end.take() {
                        self.sleep = Some(Box::pin(tokio::time::sleep(delay)));
                    }
                }
            }
        }
    }

    /// True once nothing more will be sent.
    pub fn is_finished(&self) -> bool {
        self.mode == Mode::Finished && self.queue.is_empty() && self.sleep.is_none()
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;

    use super::*;

    fn words(n: usize, chat: bool) -> Vec<Piece> {
        ["alpha", "beta", "gamma", "delta", "omega"]
            .into_iter()
            .take(n)
            .enumerate()
            .map(|(k, word)| Piece::Word {
                word,
                space: !chat || k > 0,
            })
            .collect()
    }

    fn plan(flavor: Flavor, choices: Vec<ChoicePlan>) -> StreamPlan {
        StreamPlan {
            flavor,
            id: "chatcmpl-abc".into(),
            created: 1_700_000_000,
            model: "mock-llama".into(),
            choices,
            prompt_tokens: 9,
            include_usage: false,
            continuous_usage: false,
            time_to_first_token: Duration::ZERO,
            inter_token: Duration::ZERO,
        }
    }

    fn stop_choice(n: usize, chat: bool) -> ChoicePlan {
        ChoicePlan {
            pieces: words(n, chat),
            finish: "stop",
            finish_on_last_piece: false,
            completion_tokens: n as u64 + 1,
        }
    }

    /// Collects every event until the end, or until an error (reported as `Err`).
    async fn collect(mut body: SseBody) -> (Vec<String>, Option<io::Error>) {
        let mut events = Vec::new();
        loop {
            match poll_fn(|cx| body.poll_event(cx)).await {
                Some(Ok(bytes)) => events.push(String::from_utf8(bytes.to_vec()).unwrap()),
                Some(Err(error)) => return (events, Some(error)),
                None => return (events, None),
            }
        }
    }

    fn json_of(event: &str) -> serde_json::Value {
        let data = event
            .strip_prefix("data: ")
            .unwrap()
            .strip_suffix("\n\n")
            .unwrap();
        serde_json::from_str(data).unwrap()
    }

    #[tokio::test]
    async fn chat_stream_is_framed_like_vllm() {
        let (events, error) = collect(SseBody::new(
            plan(Flavor::Chat, vec![stop_choice(2, true)]),
            None,
        ))
        .await;
        assert!(error.is_none());
        assert_eq!(
            events,
            [
                "data: {\"id\":\"chatcmpl-abc\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"mock-llama\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n",
                "data: {\"id\":\"chatcmpl-abc\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"mock-llama\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"alpha\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n",
                "data: {\"id\":\"chatcmpl-abc\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"mock-llama\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" beta\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n",
                "data: {\"id\":\"chatcmpl-abc\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"mock-llama\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\"},\"logprobs\":null,\"finish_reason\":\"stop\",\"stop_reason\":null}]}\n\n",
                "data: [DONE]\n\n",
            ]
        );
    }

    #[tokio::test]
    async fn usage_chunk_has_empty_choices_and_no_details() {
        let mut with_usage = plan(Flavor::Chat, vec![stop_choice(3, true)]);
        with_usage.include_usage = true;
        let (events, _) = collect(SseBody::new(with_usage, None)).await;
        assert_eq!(events.last().map(String::as_str), Some("data: [DONE]\n\n"));
        let usage = json_of(&events[events.len() - 2]);
        assert_eq!(usage["choices"], serde_json::json!([]));
        assert_eq!(
            usage["usage"],
            serde_json::json!({"prompt_tokens": 9, "total_tokens": 13, "completion_tokens": 4})
        );
        // vLLM leaves `usage` out of the other chat chunks (exclude_unset).
        for event in &events[..events.len() - 2] {
            assert!(json_of(event).get("usage").is_none());
        }
    }

    #[tokio::test]
    async fn length_finish_rides_on_the_last_token() {
        let choice = ChoicePlan {
            pieces: words(2, true),
            finish: "length",
            finish_on_last_piece: true,
            completion_tokens: 2,
        };
        let (events, _) = collect(SseBody::new(plan(Flavor::Chat, vec![choice]), None)).await;
        assert_eq!(events.len(), 4); // role, alpha, beta+finish, [DONE]
        let last = json_of(&events[2]);
        assert_eq!(
            last["choices"][0]["delta"],
            serde_json::json!({"content": " beta"})
        );
        assert_eq!(last["choices"][0]["finish_reason"], "length");
    }

    #[tokio::test]
    async fn completion_chunks_carry_usage_null_and_interleave_choices() {
        let mut two = plan(
            Flavor::Completion,
            vec![stop_choice(1, false), stop_choice(1, false)],
        );
        two.continuous_usage = false;
        let (events, _) = collect(SseBody::new(two, None)).await;
        // alpha×2, final×2, [DONE]
        assert_eq!(events.len(), 5);
        let first = json_of(&events[0]);
        assert_eq!(first["object"], "text_completion");
        assert_eq!(first["usage"], serde_json::Value::Null);
        assert!(first.as_object().unwrap().contains_key("usage"));
        assert_eq!(first["choices"][0]["text"], " alpha");
        assert_eq!(json_of(&events[1])["choices"][0]["index"], 1);
        assert_eq!(json_of(&events[2])["choices"][0]["finish_reason"], "stop");
    }

    #[tokio::test]
    async fn tool_call_deltas_reassemble() {
        let choice = ChoicePlan {
            pieces: vec![
                Piece::ToolStart {
                    index: 0,
                    id: "chatcmpl-tool-1".into(),
                    name: "get_weather".into(),
                },
                Piece::ToolArgs {
                    index: 0,
                    fragment: "{\"city\"".into(),
                },
                Piece::ToolArgs {
                    index: 0,
                    fragment: ":\"mo".into(),
                },
                Piece::ToolArgs {
                    index: 0,
                    fragment: "ck\"}".into(),
                },
            ],
            finish: "tool_calls",
            finish_on_last_piece: false,
            completion_tokens: 8,
        };
        let (events, _) = collect(SseBody::new(plan(Flavor::Chat, vec![choice]), None)).await;
        let mut arguments = String::new();
        for event in &events[1..events.len() - 1] {
            let chunk = json_of(event);
            if let Some(calls) = chunk["choices"][0]["delta"]["tool_calls"].as_array() {
                arguments.push_str(calls[0]["function"]["arguments"].as_str().unwrap());
            }
        }
        let parsed: serde_json::Value = serde_json::from_str(&arguments).unwrap();
        assert_eq!(parsed, serde_json::json!({"city": "mock"}));
        let last = json_of(&events[events.len() - 2]);
        assert_eq!(last["choices"][0]["delta"], serde_json::json!({}));
        assert_eq!(last["choices"][0]["finish_reason"], "tool_calls");
    }

    #[tokio::test]
    async fn reset_drops_the_stream_before_done() {
        let body = SseBody::new(
            plan(Flavor::Chat, vec![stop_choice(5, true)]),
            Some(Fault::Reset),
        );
        let (events, error) = collect(body).await;
        assert_eq!(events.len(), EVENTS_BEFORE_FAULT);
        assert!(events.iter().all(|e| e != "data: [DONE]\n\n"));
        assert_eq!(
            error.map(|e| e.kind()),
            Some(io::ErrorKind::ConnectionReset)
        );
    }

    #[tokio::test]
    async fn faults_strike_before_done_even_on_short_streams() {
        let body = SseBody::new(
            plan(Flavor::Completion, vec![stop_choice(0, false)]),
            Some(Fault::Reset),
        );
        let (events, error) = collect(body).await;
        assert_eq!(events.len(), 1);
        assert!(error.is_some());
    }

    #[tokio::test]
    async fn malformed_chunk_is_inserted_and_stream_completes() {
        let body = SseBody::new(
            plan(Flavor::Chat, vec![stop_choice(4, true)]),
            Some(Fault::Malformed),
        );
        let (events, error) = collect(body).await;
        assert!(error.is_none());
        assert_eq!(events[EVENTS_BEFORE_FAULT], "data: {\"id\": broken\n\n");
        assert_eq!(events.len(), 1 + 4 + 1 + 1 + 1); // role, words, final, malformed, done
        assert_eq!(events.last().map(String::as_str), Some("data: [DONE]\n\n"));
    }

    #[tokio::test]
    async fn stream_error_event_then_done() {
        let body = SseBody::new(
            plan(Flavor::Chat, vec![stop_choice(4, true)]),
            Some(Fault::StreamError),
        );
        let (events, error) = collect(body).await;
        assert!(error.is_none());
        assert_eq!(events.len(), EVENTS_BEFORE_FAULT + 2);
        let failure = json_of(&events[EVENTS_BEFORE_FAULT]);
        assert_eq!(failure["error"]["code"], 500);
        assert_eq!(failure["error"]["type"], "InternalServerError");
        assert_eq!(events[EVENTS_BEFORE_FAULT + 1], "data: [DONE]\n\n");
    }

    #[tokio::test]
    async fn stall_sends_one_chunk_then_nothing() {
        let mut body = SseBody::new(
            plan(Flavor::Chat, vec![stop_choice(4, true)]),
            Some(Fault::Stall),
        );
        let first = poll_fn(|cx| body.poll_event(cx)).await;
        assert!(matches!(first, Some(Ok(_))));
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert!(body.poll_event(&mut cx).is_pending());
        assert!(body.poll_event(&mut cx).is_pending());
        assert!(!body.is_finished());
    }

    #[tokio::test]
    async fn pacing_waits_for_first_token_and_between_tokens() {
        let mut paced = plan(Flavor::Chat, vec![stop_choice(3, true)]);
        paced.time_to_first_token = Duration::from_millis(80);
        paced.inter_token = Duration::from_millis(20);
        let started = tokio::time::Instant::now();
        let mut body = SseBody::new(paced, None);
        let mut times = Vec::new();
        while let Some(Ok(_)) = poll_fn(|cx| body.poll_event(cx)).await {
            times.push(started.elapsed());
        }
        // role, 3 words, end of sequence, [DONE]
        assert_eq!(times.len(), 6);
        // Each token is due at TTFT + k gaps after the request (end of sequence included).
        // Only lower bounds: timers never fire early, but a busy machine may be late.
        let due = |k: u64| Duration::from_millis(80 + 20 * k);
        assert!(times[0] >= due(0), "{times:?}");
        for (k, time) in times[1..5].iter().enumerate() {
            assert!(*time >= due(k as u64), "{times:?}");
        }
        assert!(times[5] >= due(3), "{times:?}");
    }
}
