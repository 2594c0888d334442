//! A simulated chat stream re-emitted in another wire format (`--flavor`), one chunk at a
//! time; faults of the inner stream pass through (a malformed event as it was, a reset
//! as the same error).

use super::body::MockBody;
use super::sse::SseBody;
use crate::api::ClientEvents;
use crate::api::chunk::Chunk;
use bytes::{Bytes, BytesMut};
use http::{Response, StatusCode, header};
use http_body_util::BodyExt;
use std::io;
use std::task::{Context, Poll, ready};

#[derive(Debug)]
pub struct TranslatedSse {
    inner: Box<SseBody>,
    rewriter: Box<dyn ClientEvents>,
    /// An error event ended the stream: what follows is not translated.
    failed: bool,
}

impl TranslatedSse {
    pub fn new(inner: Box<SseBody>, rewriter: Box<dyn ClientEvents>) -> Self {
        Self {
            inner,
            rewriter,
            failed: false,
        }
    }

    /// The next translated bytes.
    pub fn poll_bytes(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        loop {
            let Some(event) = ready!(self.inner.poll_event(cx)) else {
                return Poll::Ready(None);
            };
            let event = match event {
                Ok(event) => event,
                Err(e) => return Poll::Ready(Some(Err(e))),
            };
            let payload = event
                .strip_prefix(b"data: ")
                .map(|p| p.trim_ascii_end())
                .unwrap_or_default();
            let mut out = BytesMut::new();
            if self.failed {
                continue;
            }
            if payload == b"[DONE]" {
                self.rewriter.finish(&mut out);
            } else {
                match serde_json::from_slice::<Chunk<'_>>(payload) {
                    // A failure mid-stream, as the flavor says it (Anthropic's `error`
                    // event, Google's error object).
                    Ok(chunk) if chunk.error.is_some() => {
                        let message =
                            crate::api::openai::upstream_error_message(payload).unwrap_or_default();
                        self.rewriter.error(&message, &mut out);
                        self.failed = true;
                    }
                    Ok(chunk) => self.rewriter.on_chunk(&chunk, &mut out),
                    Err(_) => return Poll::Ready(Some(Ok(event))),
                }
            }
            if !out.is_empty() {
                return Poll::Ready(Some(Ok(out.freeze())));
            }
        }
    }

    pub fn is_finished(&self) -> bool {
        self.inner.is_finished()
    }
}

/// A simulated chat answer, as far as the flavor's own code has to look at it.
pub enum Answer {
    /// Already in the flavor's format: a re-emitted stream, or an error.
    Done(Response<MockBody>),
    /// A successful whole chat completion, to rewrite.
    Whole(Bytes),
}

/// Re-emits a stream with `rewriter`, turns an error into the flavor's shape (`error`,
/// `Retry-After` kept), and hands back a whole answer's body.
pub async fn read_answer(
    answer: Response<MockBody>,
    rewriter: impl FnOnce() -> Box<dyn ClientEvents>,
    error: fn(StatusCode, &str) -> Response<MockBody>,
) -> Answer {
    let (mut parts, body) = answer.into_parts();
    if let MockBody::Sse(stream) = body {
        parts.headers.remove(header::CONTENT_LENGTH);
        let translated = TranslatedSse::new(stream, rewriter());
        return Answer::Done(Response::from_parts(
            parts,
            MockBody::Translated(Box::new(translated)),
        ));
    }
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => return Answer::Done(error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string())),
    };
    if parts.status.is_success() {
        return Answer::Whole(bytes);
    }
    let message = crate::api::openai::upstream_error_message(&bytes).unwrap_or_default();
    let mut response = error(parts.status, &message);
    if let Some(retry_after) = parts.headers.get(header::RETRY_AFTER) {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, retry_after.clone());
    }
    Answer::Done(response)
}
