//! Relays an upstream SSE stream to the client chunk by chunk as it arrives: validates
//! each event, captures usage, strips the usage chunk the client did not ask for, maps
//! upstream error events to OpenAI's shape, and ends a broken stream with an explicit
//! error event instead of a silent clean end.

use super::sse::{MAX_EVENT_BYTES, SseFramer, data_event, data_payload};
use crate::api::openai::{UsageProbe, error_json, upstream_error_message};
use crate::server::context::RequestContext;
use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame};
use hyper::body::Incoming;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// The relaying response body. Dropping it (client gone) drops the upstream response,
/// which closes that connection and so cancels the generation upstream.
pub struct SseRelay {
    upstream: Incoming,
    framer: SseFramer,
    strip_usage_chunk: bool,
    read_timeout: Duration,
    idle: Pin<Box<Sleep>>,
    ctx: RequestContext,
    saw_done: bool,
    failure: Option<&'static str>,
    ended: bool,
}

impl SseRelay {
    pub fn new(
        upstream: Incoming,
        ctx: RequestContext,
        strip_usage_chunk: bool,
        read_timeout: Duration,
    ) -> Self {
        Self {
            upstream,
            framer: SseFramer::default(),
            strip_usage_chunk,
            read_timeout,
            idle: Box::pin(tokio::time::sleep(read_timeout)),
            ctx,
            saw_done: false,
            failure: None,
            ended: false,
        }
    }

    pub fn is_end_stream(&self) -> bool {
        self.ended
    }

    /// Turns newly arrived bytes into what the client gets; stops at the first bad event.
    fn relay(&mut self, chunk: &[u8]) -> BytesMut {
        self.framer.push(chunk);
        let mut out = BytesMut::new();
        while self.failure.is_none() {
            let Some(event) = self.framer.next_event() else {
                break;
            };
            if let Some(bytes) = self.relay_event(event) {
                out.extend_from_slice(&bytes);
            }
        }
        if self.failure.is_none() && self.framer.pending() > MAX_EVENT_BYTES {
            out.extend_from_slice(&self.fail(
                "upstream_protocol_error",
                "an upstream event exceeded the size limit",
                "event over MAX_EVENT_BYTES",
            ));
        }
        out
    }

    fn relay_event(&mut self, event: Bytes) -> Option<Bytes> {
        let Some(payload) = data_payload(&event) else {
            return Some(event); // comments and keep-alives pass as they are
        };
        if payload.as_ref() == b"[DONE]" {
            self.saw_done = true;
            return Some(event);
        }
        let probe: UsageProbe = match serde_json::from_slice(&payload) {
            Ok(p) => p,
            Err(_) => {
                return Some(self.fail(
                    "upstream_protocol_error",
                    "the model server sent a malformed stream event",
                    "invalid JSON in a data event",
                ));
            }
        };
        if probe.error.is_some() {
            let message = upstream_error_message(&payload)
                .unwrap_or_else(|| "the model server reported an error".into());
            return Some(self.fail(
                "upstream_error",
                "the model server failed while generating",
                &message,
            ));
        }
        if let Some(usage) = probe.usage {
            self.ctx.set_usage(usage);
            let usage_only = probe.choices.as_ref().is_none_or(Vec::is_empty);
            if self.strip_usage_chunk && usage_only {
                return None;
            }
        }
        self.ctx.first_byte();
        Some(event)
    }

    /// Records a failure, logs it once (with `detail`, which the client never sees) and
    /// returns the error event that tells the client.
    fn fail(&mut self, code: &'static str, message: &str, detail: &str) -> Bytes {
        self.failure = Some(code);
        self.ctx.upstream_end();
        self.ctx.finish(200, Some(code));
        tracing::warn!(request_id = %self.ctx.record.id, code, detail, "stream ended with an error: {message}");
        data_event(&error_json(message, "server_error", None, Some(code)))
    }

    fn finish_clean(&mut self) {
        self.ctx.upstream_end();
        self.ctx.finish(200, None);
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
            if this.failure.is_some() {
                this.ended = true;
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.upstream).poll_frame(cx) {
                Poll::Pending => {
                    if this.idle.as_mut().poll(cx).is_ready() {
                        let event = this.fail(
                            "upstream_timeout",
                            "the model server stopped sending",
                            "read timeout",
                        );
                        return Poll::Ready(Some(Ok(Frame::data(event))));
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Some(Ok(frame))) => {
                    this.idle.as_mut().reset(Instant::now() + this.read_timeout);
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    let out = this.relay(&data);
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(out.freeze()))));
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    let event = this.fail(
                        "upstream_stream_broken",
                        "the connection to the model server broke mid-stream",
                        &e.to_string(),
                    );
                    return Poll::Ready(Some(Ok(Frame::data(event))));
                }
                Poll::Ready(None) => {
                    if this.saw_done {
                        this.finish_clean();
                        this.ended = true;
                        return Poll::Ready(None);
                    }
                    let event = this.fail(
                        "upstream_stream_truncated",
                        "the model server ended the stream early",
                        "the stream ended without [DONE]",
                    );
                    return Poll::Ready(Some(Ok(Frame::data(event))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }
}
