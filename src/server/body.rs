//! The response body type of the gateway: a complete buffer or a relayed upstream stream.

use crate::providers::sse_relay::SseRelay;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Either a whole body or a stream being relayed chunk by chunk.
pub enum GatewayBody {
    Full(Full<Bytes>),
    Stream(Box<SseRelay>),
}

impl GatewayBody {
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        Self::Full(Full::new(bytes.into()))
    }
}

impl Body for GatewayBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            GatewayBody::Full(b) => Pin::new(b).poll_frame(cx),
            GatewayBody::Stream(s) => Pin::new(s.as_mut()).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            GatewayBody::Full(b) => b.is_end_stream(),
            GatewayBody::Stream(s) => s.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            GatewayBody::Full(b) => b.size_hint(),
            GatewayBody::Stream(_) => SizeHint::default(),
        }
    }
}
