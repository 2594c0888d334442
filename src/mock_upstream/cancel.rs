//! Answers the client abandoned: a request whose handler, or whose response body, is
//! dropped before the body's end (the client closed its connection or reset its
//! stream) is counted, so a test can see at the upstream that a gateway really
//! cancelled the request it no longer needs (`GET /mock/cancelled`).

use super::body::MockBody;
use bytes::Bytes;
use http::Response;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

/// A request not yet answered in full; counted as abandoned if dropped so.
#[derive(Debug)]
pub struct Unfinished {
    abandoned: Arc<AtomicU64>,
    armed: bool,
}

impl Unfinished {
    pub fn new(abandoned: Arc<AtomicU64>) -> Self {
        Self {
            abandoned,
            armed: true,
        }
    }

    /// Follows the answer's body to its end.
    pub fn follow(mut self, response: Response<MockBody>) -> Response<Watched> {
        if response.body().is_end_stream() {
            self.armed = false;
        }
        response.map(|body| Watched { body, watch: self })
    }

    /// The simulator itself ended the answer (an injected fault): not abandoned.
    pub fn settle(mut self) {
        self.armed = false;
    }
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        if self.armed {
            self.abandoned.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A response body that says when it was dropped before its end.
#[derive(Debug)]
pub struct Watched {
    body: MockBody,
    watch: Unfinished,
}

impl Body for Watched {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        // An error is an injected fault; an end, or a last frame, is the answer's end.
        let ended = match &polled {
            Poll::Ready(None | Some(Err(_))) => true,
            Poll::Ready(Some(Ok(_))) => this.body.is_end_stream(),
            Poll::Pending => false,
        };
        if ended {
            this.watch.armed = false;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn only_answers_dropped_before_their_end_count() {
        let abandoned = Arc::new(AtomicU64::new(0));
        let whole = Unfinished::new(abandoned.clone()).follow(Response::new(MockBody::full("hi")));
        whole.into_body().collect().await.unwrap();
        let empty = Unfinished::new(abandoned.clone()).follow(Response::new(MockBody::empty()));
        drop(empty);
        Unfinished::new(abandoned.clone()).settle();
        assert_eq!(abandoned.load(Ordering::Relaxed), 0);
        drop(Unfinished::new(abandoned.clone()));
        let unread = Unfinished::new(abandoned.clone()).follow(Response::new(MockBody::full("hi")));
        drop(unread);
        assert_eq!(abandoned.load(Ordering::Relaxed), 2);
    }
}
