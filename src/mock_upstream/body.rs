//! The response body type: a whole buffer, or a paced SSE stream. No boxing on the hot path.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::sse::SseBody;
use super::translated::TranslatedSse;

/// Every response the simulator sends.
#[derive(Debug)]
pub enum MockBody {
    /// A complete body, sent with `content-length`.
    Full(Option<Bytes>),
    /// A streamed body, sent with chunked transfer encoding (HTTP/1.1) or DATA frames.
    Sse(Box<SseBody>),
    /// A stream re-emitted in another wire format (`--flavor anthropic|gemini`).
    Translated(Box<TranslatedSse>),
}

impl MockBody {
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        if bytes.is_empty() {
            Self::Full(None)
        } else {
            Self::Full(Some(bytes))
        }
    }

    pub fn empty() -> Self {
        Self::Full(None)
    }
}

impl Body for MockBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        match self.get_mut() {
            Self::Full(bytes) => Poll::Ready(bytes.take().map(|bytes| Ok(Frame::data(bytes)))),
            Self::Sse(stream) => stream
                .poll_event(cx)
                .map(|event| event.map(|result| result.map(Frame::data))),
            Self::Translated(stream) => stream
                .poll_bytes(cx)
                .map(|event| event.map(|result| result.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Full(bytes) => bytes.is_none(),
            Self::Sse(stream) => stream.is_finished(),
            Self::Translated(stream) => stream.is_finished(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Self::Sse(_) | Self::Translated(_) => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    #[tokio::test]
    async fn full_body_reports_exact_size_and_yields_once() {
        let body = MockBody::full("hello");
        assert_eq!(body.size_hint().exact(), Some(5));
        assert!(!body.is_end_stream());
        let collected = body.collect().await.unwrap().to_bytes();
        assert_eq!(&collected[..], b"hello");
        let empty = MockBody::empty();
        assert!(empty.is_end_stream());
        assert_eq!(empty.size_hint().exact(), Some(0));
    }
}
