//! A tower layer that gives every request an id: in the request's extensions for the
//! handlers, on the tracing span of everything logged for it, and in the `x-request-id`
//! response header.

use http::{HeaderValue, Request, Response};
use ring::rand::{SecureRandom, SystemRandom};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use tower::{Layer, Service};
use tracing::Instrument;

/// The id of the request being served.
#[derive(Debug, Clone)]
pub struct RequestId(pub Arc<str>);

/// A new request id: `req_`, a random per-process prefix, then a counter — unique across
/// restarts and replicas, and no system call on the hot path.
pub fn new_request_id() -> String {
    static PREFIX: OnceLock<String> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| {
        let mut bytes = [0u8; 6];
        // The system generator does not fail on Linux after boot; if it ever did, the
        // process id still separates processes, and ids are never security decisions.
        if SystemRandom::new().fill(&mut bytes).is_err() {
            bytes[..4].copy_from_slice(&std::process::id().to_be_bytes());
        }
        crate::store::instance_key::hex(&bytes)
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("req_{prefix}{n:012x}")
}

/// Adds [`RequestId`] to every request.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestIdLayer;

impl<S> Layer<S> for RequestIdLayer {
    type Service = RequestIdService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RequestIdService { inner }
    }
}

/// The service [`RequestIdLayer`] wraps around the handler.
#[derive(Debug, Clone)]
pub struct RequestIdService<S> {
    inner: S,
}

impl<S, B, RB> Service<Request<B>> for RequestIdService<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<RB>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let id: Arc<str> = new_request_id().into();
        let span = tracing::info_span!("request", id = %id, method = %req.method(), path = %req.uri().path());
        req.extensions_mut().insert(RequestId(id.clone()));
        let future = self.inner.call(req);
        Box::pin(
            async move {
                let mut response = future.await?;
                if let Ok(v) = HeaderValue::from_str(&id) {
                    response.headers_mut().insert("x-request-id", v);
                }
                Ok(response)
            }
            .instrument(span),
        )
    }
}
