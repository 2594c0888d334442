//! Relays an upstream SSE stream to the client as it arrives: validates each event,
//! captures usage, strips the usage chunk the client did not ask for, maps upstream error
//! events to OpenAI's shape, and ends a broken stream with an explicit error event
//! instead of a silent clean end. Events that arrive together leave together: one write
//! to the client per burst, not one per event.

use super::openai_compat::UpstreamBody;
use super::sse::{MAX_EVENT_BYTES, SseFramer, data_event, data_payload};
use super::stream_restore::StreamRestore;
use crate::api::chunk::{Chunk, ChunkOut};
use crate::api::openai::{Usage, UsageProbe, error_json, upstream_error_message};
use crate::api::{ClientEvents, UpstreamEvents};
use crate::audit::writer::AuditUnavailable;
use crate::routing::{StreamOutcome, breaker};
use crate::server::context::RequestContext;
use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// Where a relay starts: the upstream body after its first event, that event, the
/// target's breaker outcome (settled when the stream ends), and the client's format.
pub struct StreamStart {
    pub upstream: UpstreamBody,
    pub first: Bytes,
    pub strip_usage_chunk: bool,
    pub read_timeout: Duration,
    pub outcome: StreamOutcome,
    pub dialect: StreamDialect,
    /// For an upstream that streams events of another format: rewrites them as OpenAI
    /// chunks before anything else looks at them.
    pub upstream_events: Option<Box<dyn UpstreamEvents>>,
}

/// The format the client reads the stream in.
pub enum StreamDialect {
    /// OpenAI's chunks, relayed as they come.
    OpenAi,
    /// Another format (Anthropic's events, the Responses API's), written from the chunks.
    Translated(Box<dyn ClientEvents>),
}

/// What the relay reads from one valid chunk.
struct Judged {
    usage: Option<Usage>,
    /// The chunk carries no choices (only usage).
    usage_only: bool,
}

/// The relaying response body. Dropping it (client gone) drops the upstream response,
/// which closes that connection and so cancels the generation upstream.
pub struct SseRelay {
    upstream: UpstreamBody,
    /// The first event(s), received before the relay started; relayed first.
    first: Option<Bytes>,
    outcome: StreamOutcome,
    dialect: StreamDialect,
    upstream_events: Option<Box<dyn UpstreamEvents>>,
    framer: SseFramer,
    strip_usage_chunk: bool,
    read_timeout: Duration,
    idle: Pin<Box<Sleep>>,
    ctx: RequestContext,
    saw_done: bool,
    /// The stream failed; its error event is queued and nothing more is relayed.
    failed: bool,
    /// The upstream body has ended (cleanly or not).
    upstream_finished: bool,
    /// Relayed bytes not yet handed to the client connection.
    out: BytesMut,
    /// Where in `out` the stream's clean end begins (its `[DONE]`, or a translated
    /// stream's closing events): held back until the stream's audit record is durable.
    end_at: Option<usize>,
    /// Scheduler turns given to the upstream connection, without new data, since `out`
    /// last grew.
    yielded: u8,
    /// Turns to give it before handing over what we have (see `UpstreamBody`).
    turns_before_flush: u8,
    /// `prime` gathered the first burst: hand it over on the first poll.
    hand_over_now: bool,
    /// Frames arrived since the idle timer last restarted.
    active: bool,
    ended: bool,
    /// What the client was sent, kept for the audit record (when payloads are recorded).
    sent: Option<BytesMut>,
    /// The stream's audit record on its way to disk; the stream's end waits for it.
    audit: Audit,
    /// The answer's text so far, when a policy judges answers (at the stream's end).
    answer: Option<String>,
    /// Restores tokenised values in the answer, when the prompt had some.
    restore: Option<StreamRestore>,
}

/// Where a stream's audit record stands.
enum Audit {
    NotYet,
    Writing(Pin<Box<dyn Future<Output = Result<(), AuditUnavailable>> + Send>>),
    Done,
}

/// Hand relayed bytes over once this many are waiting, burst or not.
const FLUSH_BYTES: usize = 32 * 1024;

impl SseRelay {
    pub fn new(start: StreamStart, ctx: RequestContext) -> Self {
        let StreamStart {
            upstream,
            first,
            strip_usage_chunk,
            read_timeout,
            outcome,
            dialect,
            upstream_events,
        } = start;
        let turns_before_flush = upstream.turns_to_decode_buffered();
        let restore = crate::server::pii_stage::stream_rewriter(&ctx);
        Self {
            upstream,
            first: Some(first),
            outcome,
            dialect,
            upstream_events,
            framer: SseFramer::default(),
            strip_usage_chunk,
            read_timeout,
            idle: Box::pin(tokio::time::sleep(read_timeout)),
            ctx,
            saw_done: false,
            failed: false,
            upstream_finished: false,
            out: BytesMut::new(),
            end_at: None,
            yielded: 0,
            turns_before_flush,
            hand_over_now: false,
            active: false,
            ended: false,
            sent: None,
            audit: Audit::NotYet,
            answer: None,
            restore,
        }
        .keeping_payload()
        .keeping_answer()
    }

    /// Starts gathering the answer's text, if a policy in force judges answers.
    fn keeping_answer(mut self) -> Self {
        if self.ctx.policy.judges_responses() {
            self.answer = Some(String::new());
        }
        self
    }

    /// Adds a chunk's text (its `choices[].delta.content`) to the answer being gathered.
    fn gather(&mut self, payload: &[u8]) {
        if let Some(answer) = self.answer.as_mut()
            && let Ok(chunk) = serde_json::from_slice::<serde_json::Value>(payload)
            && let Some(choices) = chunk.get("choices")
        {
            answer.push_str(&crate::policy::facts::chat_text(std::iter::once(choices)));
        }
    }

    /// At the stream's clean end: the policy's response phase over the whole answer. A
    /// deny cannot recall what was already sent; the rest is withheld and the stream
    /// ends with the policy's error event instead of its clean end.
    fn judge_answer(&mut self) {
        let Some(answer) = self.answer.take() else {
            return;
        };
        if self.failed {
            return;
        }
        if let Err(err) = crate::server::policy_stage::response_text_phase(&mut self.ctx, answer) {
            self.ctx.finish(200, Some(err.code));
            self.withhold_rest();
            self.error_event(&err.message, err.code);
        }
    }

    /// Drops what was not handed over yet (the stream's end with it): an error event
    /// takes its place.
    fn withhold_rest(&mut self) {
        self.out.clear();
        self.end_at = None;
    }

    /// Queues an error event in the client's dialect.
    fn error_event(&mut self, message: &str, code: &'static str) {
        match &mut self.dialect {
            StreamDialect::OpenAi => self.out.extend_from_slice(&data_event(&error_json(
                message,
                "server_error",
                None,
                Some(code),
            ))),
            StreamDialect::Translated(stream) => stream.error(message, &mut self.out),
        }
    }

    /// Starts keeping a copy of what the client is sent, if the audit trail wants it.
    fn keeping_payload(mut self) -> Self {
        if self.ctx.wants_response_payload() {
            self.sent = Some(BytesMut::new());
        }
        self
    }

    /// Turns newly arrived bytes into what the client gets (appended to `out`); stops at
    /// the first bad event.
    fn relay(&mut self, chunk: &[u8]) {
        // The framer is taken out while its events are judged, which needs `&mut self`.
        let mut framer = std::mem::take(&mut self.framer);
        framer.push(chunk);
        while !self.failed {
            let Some(len) = framer.next_event_len() else {
                break;
            };
            let event = framer.front(len);
            match self.upstream_events.as_mut() {
                None => {
                    let restored = self.restore_event(event);
                    let event = restored.as_deref().unwrap_or(event);
                    if self.forward_event(event) {
                        self.out.extend_from_slice(event);
                    }
                }
                Some(translator) => {
                    if let Some(payload) = data_payload(event) {
                        match translator.on_event(&payload) {
                            Ok(chunks) => {
                                for chunk in chunks {
                                    self.forward_chunk(chunk);
                                }
                            }
                            Err(detail) => self.fail(
                                "upstream_protocol_error",
                                "the model server sent a malformed stream event",
                                &detail,
                            ),
                        }
                    }
                }
            }
            framer.consume(len);
        }
        self.framer = framer;
        if !self.failed && self.framer.pending() > MAX_EVENT_BYTES {
            self.fail(
                "upstream_protocol_error",
                "an upstream event exceeded the size limit",
                "event over MAX_EVENT_BYTES",
            );
        }
    }

    /// An OpenAI event with tokenised values restored (`None`: it goes as it is). Before
    /// the stream's `[DONE]`, whatever the restorers still hold goes out first.
    fn restore_event(&mut self, event: &[u8]) -> Option<Bytes> {
        let payload = data_payload(event)?;
        let restore = self.restore.as_mut()?;
        if payload.as_ref() == b"[DONE]" {
            self.release_held();
            return None;
        }
        restore.chunk(&payload).map(|json| data_event(&json))
    }

    /// Sends what the restorers still hold as chunks of their own.
    fn release_held(&mut self) {
        let held = self
            .restore
            .as_mut()
            .map(StreamRestore::finish)
            .unwrap_or_default();
        for event in held {
            if self.forward_event(&event) {
                self.out.extend_from_slice(&event);
            }
        }
    }

    /// Reads one event: records usage, done and failures, and says whether the client
    /// gets it.
    fn forward_event(&mut self, event: &[u8]) -> bool {
        let translating = matches!(self.dialect, StreamDialect::Translated(_));
        let Some(payload) = data_payload(event) else {
            return !translating; // comments and keep-alives pass as they are
        };
        if payload.as_ref() == b"[DONE]" {
            self.saw_done = true;
            self.end_at.get_or_insert(self.out.len());
            self.say_cost();
            if let StreamDialect::Translated(stream) = &mut self.dialect {
                stream.finish(&mut self.out);
                return false;
            }
            return true;
        }
        if translating {
            self.translate(&payload);
            return false;
        }
        self.gather(&payload);
        let probe: UsageProbe = match serde_json::from_slice(&payload) {
            Ok(p) => p,
            Err(_) => {
                self.fail(
                    "upstream_protocol_error",
                    "the model server sent a malformed stream event",
                    "invalid JSON in a data event",
                );
                return false;
            }
        };
        if probe.error.is_some() {
            let message = upstream_error_message(&payload)
                .unwrap_or_else(|| "the model server reported an error".into());
            self.fail(
                "upstream_error",
                "the model server failed while generating",
                &message,
            );
            return false;
        }
        self.pass_on(Judged {
            usage: probe.usage,
            usage_only: probe.choices.as_ref().is_none_or(Vec::is_empty),
        })
    }

    /// For a client of another format: reads one chunk into typed fields, records its
    /// usage, and writes the client's events for it.
    fn translate(&mut self, payload: &[u8]) {
        self.gather(payload);
        let chunk: Chunk<'_> = match serde_json::from_slice(payload) {
            Ok(chunk) => chunk,
            Err(_) => {
                self.fail(
                    "upstream_protocol_error",
                    "the model server sent a malformed stream event",
                    "invalid JSON in a data event",
                );
                return;
            }
        };
        if chunk.error.is_some() {
            let message = upstream_error_message(payload)
                .unwrap_or_else(|| "the model server reported an error".into());
            self.fail(
                "upstream_error",
                "the model server failed while generating",
                &message,
            );
            return;
        }
        if let Some(usage) = chunk.usage {
            self.ctx.set_usage(usage.counts());
        }
        if !chunk.choices.is_empty() {
            self.ctx.first_byte();
        }
        if let StreamDialect::Translated(stream) = &mut self.dialect {
            stream.on_chunk(&chunk, &mut self.out);
        }
    }

    /// A chunk Airlock itself made from an upstream's events (`upstream_events`): judged
    /// from what the translator knows, without parsing it again.
    fn forward_chunk(&mut self, chunk: ChunkOut) {
        match chunk {
            ChunkOut::Done => {
                self.release_held();
                let done = data_event(b"[DONE]");
                if self.forward_event(&done) {
                    self.out.extend_from_slice(&done);
                }
            }
            ChunkOut::Error(message) => self.fail(
                "upstream_error",
                "the model server failed while generating",
                &message,
            ),
            ChunkOut::Chunk {
                mut json,
                usage,
                has_choices,
            } => {
                if let Some(restored) = self.restore.as_mut().and_then(|r| r.chunk(json.as_bytes()))
                {
                    json = String::from_utf8(restored).unwrap_or(json);
                }
                if matches!(self.dialect, StreamDialect::Translated(_)) {
                    self.translate(json.as_bytes());
                    return;
                }
                self.gather(json.as_bytes());
                if self.pass_on(Judged {
                    usage,
                    usage_only: !has_choices,
                }) {
                    self.out.extend_from_slice(&data_event(json.as_bytes()));
                }
            }
        }
    }

    /// Before the stream's end, says what it cost in an SSE comment line (which SSE
    /// clients skip): `: x-airlock-cost-usd: 0.000240000`. Headers left long ago.
    fn say_cost(&mut self) {
        if let Some(nanos) = self.ctx.cost_nano_usd() {
            let line = format!(
                ": {}: {}\n\n",
                crate::server::context::COST_HEADER,
                crate::metering::usd(nanos)
            );
            self.out.extend_from_slice(line.as_bytes());
        }
    }

    /// For an OpenAI client, after a chunk passed its checks: records its usage and
    /// says whether the chunk goes on (a usage chunk the client did not ask for does not).
    fn pass_on(&mut self, judged: Judged) -> bool {
        if let Some(usage) = judged.usage {
            self.ctx.set_usage(usage);
        }
        if judged.usage.is_some() && self.strip_usage_chunk && judged.usage_only {
            return false;
        }
        self.ctx.first_byte();
        true
    }

    /// Records a failure, logs it once (with `detail`, which the client never sees) and
    /// queues the error event that tells the client.
    fn fail(&mut self, code: &'static str, message: &str, detail: &str) {
        self.failed = true;
        // Every way a stream fails here is the upstream's doing.
        self.outcome.settle(breaker::Outcome::Failure);
        self.ctx.upstream_end();
        self.ctx.finish(200, Some(code));
        tracing::warn!(request_id = %self.ctx.record.id, code, detail, "stream ended with an error: {message}");
        self.error_event(message, code);
    }

    /// How much of `out` may go to the client now: all of it, except the stream's end
    /// while its audit record is not yet durable.
    fn sendable(&self) -> usize {
        match self.end_at {
            Some(end) if !matches!(self.audit, Audit::Done) => end.min(self.out.len()),
            _ => self.out.len(),
        }
    }

    /// Hands what may go ([`SseRelay::sendable`]) to the client connection.
    fn flush(&mut self) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.yielded = 0;
        let sendable = self.sendable();
        if let Some(end) = self.end_at.as_mut() {
            *end = end.saturating_sub(sendable);
        }
        let frame = self.out.split_to(sendable).freeze();
        if let Some(sent) = self.sent.as_mut() {
            sent.extend_from_slice(&frame);
        }
        Poll::Ready(Some(Ok(Frame::data(frame))))
    }

    /// Once the upstream is done: writes the stream's audit record and holds the stream's
    /// last bytes until it is durable. If it cannot be written (and failures close), the
    /// stream ends with an error event instead of its clean end.
    fn poll_audit(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if matches!(self.audit, Audit::NotYet) {
            self.judge_answer();
            if let Some(mut sent) = self.sent.take() {
                sent.extend_from_slice(&self.out);
                self.ctx.set_response_payload(sent.freeze());
            }
            self.audit = match self.ctx.take_audit() {
                Some((sink, event)) => {
                    Audit::Writing(Box::pin(async move { sink.record(event).await }))
                }
                None => Audit::Done,
            };
        }
        let Audit::Writing(writing) = &mut self.audit else {
            return Poll::Ready(());
        };
        let written = std::task::ready!(writing.as_mut().poll(cx));
        self.audit = Audit::Done;
        if written.is_err() {
            self.ctx.finish(200, Some("audit_unavailable"));
            self.withhold_rest();
            self.error_event(
                "the stream could not be recorded in the audit trail",
                "audit_unavailable",
            );
        }
        Poll::Ready(())
    }

    fn finish_clean(&mut self) {
        self.outcome.settle(breaker::Outcome::Success);
        self.ctx.upstream_end();
        self.ctx.finish(200, None);
    }
}

impl SseRelay {
    /// Takes one step from the upstream: relays a data frame, or records the stream's end
    /// or failure. Pending only while the upstream has nothing and the idle timer runs.
    fn pull(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match Pin::new(&mut self.upstream).poll_frame(cx) {
            Poll::Pending => {
                // The idle timer restarts once per burst, not per frame (it reads the clock).
                if std::mem::take(&mut self.active) {
                    self.idle.as_mut().reset(Instant::now() + self.read_timeout);
                }
                if self.idle.as_mut().poll(cx).is_ready() {
                    self.fail(
                        "upstream_timeout",
                        "the model server stopped sending",
                        "read timeout",
                    );
                    return Poll::Ready(());
                }
                Poll::Pending
            }
            Poll::Ready(Some(Ok(frame))) => {
                self.active = true;
                if let Ok(data) = frame.into_data() {
                    self.relay(&data);
                }
                Poll::Ready(())
            }
            Poll::Ready(Some(Err(e))) => {
                self.fail(
                    "upstream_stream_broken",
                    "the connection to the model server broke mid-stream",
                    &e.to_string(),
                );
                Poll::Ready(())
            }
            Poll::Ready(None) => {
                self.upstream_finished = true;
                if let Some(mut translator) = self.upstream_events.take() {
                    for chunk in translator.on_end() {
                        self.forward_chunk(chunk);
                    }
                }
                if self.failed {
                    return Poll::Ready(());
                }
                if self.saw_done {
                    self.finish_clean();
                } else {
                    self.fail(
                        "upstream_stream_truncated",
                        "the model server ended the stream early",
                        "the stream ended without [DONE]",
                    );
                }
                Poll::Ready(())
            }
        }
    }

    /// Nothing more will come from the upstream.
    fn done_pulling(&self) -> bool {
        self.failed || self.upstream_finished
    }

    /// Gathers what the upstream has ready. Ready when `out` should be handed over (a
    /// burst is complete, or enough waits) or the upstream is done; Pending while there
    /// is nothing to hand over.
    fn poll_burst(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(first) = self.first.take() {
            self.active = true;
            self.relay(&first);
        }
        loop {
            if self.done_pulling() || self.sendable() >= FLUSH_BYTES {
                return Poll::Ready(());
            }
            let before = self.out.len();
            match self.pull(cx) {
                Poll::Ready(()) => {
                    if self.out.len() > before {
                        self.yielded = 0;
                    }
                }
                Poll::Pending if self.sendable() == 0 => return Poll::Pending,
                Poll::Pending => {
                    // Let the upstream connection decode what it has already read
                    // (scheduler turns, no system call) so a burst goes out in one
                    // write; then hand over whatever we have.
                    if self.yielded < self.turns_before_flush {
                        self.yielded += 1;
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                    return Poll::Ready(());
                }
            }
        }
    }

    /// Waits for the first burst for the client, so the response head leaves together
    /// with it (one write instead of two) and a stream that fails before its first byte
    /// is known to have failed.
    pub async fn prime(&mut self) {
        std::future::poll_fn(|cx| self.poll_burst(cx)).await;
        self.hand_over_now = true;
    }
}

impl Body for SseRelay {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        loop {
            if this.ended {
                return Poll::Ready(None);
            }
            if !std::mem::take(&mut this.hand_over_now) {
                std::task::ready!(this.poll_burst(cx));
            }
            if this.done_pulling() {
                std::task::ready!(this.poll_audit(cx));
            }
            if this.sendable() > 0 {
                return this.flush();
            }
            if this.done_pulling() {
                this.ended = true;
                return Poll::Ready(None);
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }
}
