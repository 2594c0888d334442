//! Plain-HTTP/1.1 upstream connections driven by the request that uses them: no task per
//! connection and no hand-off of body chunks between tasks. A response body polls its
//! connection itself, so a burst of SSE chunks read in one `recv` is decoded and relayed
//! in one go; when the body has ended cleanly the connection returns to the pool.

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1::{Connection, SendRequest};
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

type Conn = Connection<TokioIo<TcpStream>, Full<Bytes>>;

/// One keep-alive connection: the request side and the connection future that moves bytes.
pub struct PooledConn {
    sender: SendRequest<Full<Bytes>>,
    conn: Conn,
}

/// Idle connections to one upstream address, for one worker thread.
pub struct InlinePool {
    authority: String,
    connect_timeout: Duration,
    max_idle: usize,
    idle_timeout: Duration,
    /// Idle connections with the moment each became idle, oldest first.
    idle: Mutex<Vec<(PooledConn, Instant)>>,
}

/// Why a request could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("connect to {0}: {1}")]
    Connect(String, String),
    #[error("{0}")]
    Http(#[from] hyper::Error),
    #[error("the connection closed before the response")]
    Closed,
}

impl InlinePool {
    pub fn new(
        authority: String,
        connect_timeout: Duration,
        max_idle: usize,
        idle_timeout: Duration,
    ) -> Self {
        Self {
            authority,
            connect_timeout,
            max_idle,
            idle_timeout,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// The `host:port` requests go to (also their `Host` header).
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// The most recently used idle connection that has not been idle too long.
    fn take_idle(&self) -> Option<PooledConn> {
        let mut idle = self.idle.lock().ok()?;
        let (conn, since) = idle.pop()?;
        if since.elapsed() > self.idle_timeout {
            // This one and every older one have expired.
            idle.clear();
            return None;
        }
        Some(conn)
    }

    fn put_idle(&self, conn: PooledConn) {
        if conn.sender.is_closed() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock() {
            let expired = idle
                .iter()
                .take_while(|(_, since)| since.elapsed() > self.idle_timeout)
                .count();
            idle.drain(..expired);
            if idle.len() < self.max_idle {
                idle.push((conn, Instant::now()));
            }
        }
    }

    async fn connect(&self) -> Result<PooledConn, SendError> {
        let fail = |e: String| SendError::Connect(self.authority.clone(), e);
        let stream =
            tokio::time::timeout(self.connect_timeout, TcpStream::connect(&self.authority))
                .await
                .map_err(|_| fail(format!("timed out after {:?}", self.connect_timeout)))?
                .map_err(|e| fail(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| fail(e.to_string()))?;
        Ok(PooledConn { sender, conn })
    }

    /// An idle connection still open and ready, or a new one; and whether it was reused.
    async fn checkout(&self) -> Result<(PooledConn, bool), SendError> {
        while let Some(mut pooled) = self.take_idle() {
            // One poll tells whether the upstream closed it while it sat idle, and lets
            // it finish the previous exchange so it accepts the next request.
            let usable = std::future::poll_fn(|cx| {
                if Pin::new(&mut pooled.conn).poll(cx).is_ready() {
                    return Poll::Ready(false);
                }
                Poll::Ready(matches!(pooled.sender.poll_ready(cx), Poll::Ready(Ok(()))))
            })
            .await;
            if usable {
                return Ok((pooled, true));
            }
        }
        Ok((self.connect().await?, false))
    }

    /// Sends `request` and drives the connection until the response head arrives. A
    /// reused connection found closed before the request went out is replaced once.
    pub async fn send(
        self: &Arc<Self>,
        request: Request<Full<Bytes>>,
    ) -> Result<Response<InlineBody>, SendError> {
        let (mut pooled, reused) = self.checkout().await?;
        let result = match drive_send(&mut pooled, request).await {
            Err(SendRetry::NotSent(request)) if reused => {
                let mut fresh = self.connect().await?;
                let result = drive_send(&mut fresh, *request).await;
                pooled = fresh;
                result
            }
            other => other,
        };
        let response = result.map_err(SendRetry::into_error)?;
        let pool = self.clone();
        Ok(response.map(|incoming| InlineBody {
            incoming,
            conn: Some(pooled),
            pool,
        }))
    }
}

/// A failed send, keeping the request when it never left.
enum SendRetry {
    NotSent(Box<Request<Full<Bytes>>>),
    Failed(SendError),
}

impl SendRetry {
    fn into_error(self) -> SendError {
        match self {
            SendRetry::NotSent(_) => SendError::Closed,
            SendRetry::Failed(e) => e,
        }
    }
}

async fn drive_send(
    pooled: &mut PooledConn,
    request: Request<Full<Bytes>>,
) -> Result<Response<Incoming>, SendRetry> {
    let response = pooled.sender.try_send_request(request);
    let mut response = std::pin::pin!(response);
    let conn = &mut pooled.conn;
    std::future::poll_fn(move |cx| {
        if let Poll::Ready(result) = response.as_mut().poll(cx) {
            return Poll::Ready(result.map_err(|mut e| match e.take_message() {
                Some(request) => SendRetry::NotSent(Box::new(request)),
                None => SendRetry::Failed(SendError::Http(e.into_error())),
            }));
        }
        match Pin::new(&mut *conn).poll(cx) {
            Poll::Pending => Poll::Pending,
            // The connection ended; the response future now holds the reason.
            Poll::Ready(_) => match response.as_mut().poll(cx) {
                Poll::Ready(result) => {
                    Poll::Ready(result.map_err(|mut e| match e.take_message() {
                        Some(request) => SendRetry::NotSent(Box::new(request)),
                        None => SendRetry::Failed(SendError::Http(e.into_error())),
                    }))
                }
                Poll::Pending => Poll::Ready(Err(SendRetry::Failed(SendError::Closed))),
            },
        }
    })
    .await
}

/// A response body that drives its own connection; the connection is pooled again when
/// the body ended cleanly, and closed when the body is dropped early.
pub struct InlineBody {
    incoming: Incoming,
    conn: Option<PooledConn>,
    pool: Arc<InlinePool>,
}

impl Body for InlineBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        // Body; if it waits, drive the connection (it may decode the next chunk at once
        // from what it already read), then the body once more.
        let mut drove = false;
        loop {
            match Pin::new(&mut this.incoming).poll_frame(cx) {
                Poll::Ready(None) => {
                    if let Some(conn) = this.conn.take() {
                        this.pool.put_idle(conn);
                    }
                    return Poll::Ready(None);
                }
                Poll::Ready(Some(frame)) => return Poll::Ready(Some(frame)),
                Poll::Pending if drove => return Poll::Pending,
                Poll::Pending => drove = true,
            }
            let Some(pooled) = this.conn.as_mut() else {
                return Poll::Pending;
            };
            if Pin::new(&mut pooled.conn).poll(cx).is_ready() {
                // Closed or failed: the body channel now reports the end or the error.
                this.conn = None;
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server that answers one request per connection, then closes it while the
    /// client still believes it is kept alive.
    async fn one_shot_server() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = connections.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let _ = socket.read(&mut buf).await;
                    let body = "{\"ok\":true}";
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                });
            }
        });
        (addr, connections)
    }

    fn request(addr: &str) -> Request<Full<Bytes>> {
        Request::post("/v1/chat/completions")
            .header(http::header::HOST, addr)
            .body(Full::new(Bytes::from_static(b"{}")))
            .unwrap()
    }

    #[tokio::test]
    async fn replaces_connections_the_upstream_closed_while_idle() {
        let (addr, connections) = one_shot_server().await;
        let pool = Arc::new(InlinePool::new(
            addr.clone(),
            Duration::from_secs(1),
            8,
            Duration::from_secs(60),
        ));
        for _ in 0..3 {
            let response = pool.send(request(&addr)).await.unwrap();
            assert_eq!(response.status(), 200);
            let body = response.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(&body[..], b"{\"ok\":true}");
            // Let the server close the connection the pool now holds idle.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn connect_failure_is_reported() {
        let pool = Arc::new(InlinePool::new(
            "127.0.0.1:9".into(),
            Duration::from_millis(500),
            8,
            Duration::from_secs(60),
        ));
        let Err(err) = pool.send(request("127.0.0.1:9")).await else {
            panic!("connecting to a closed port succeeded");
        };
        assert!(err.to_string().contains("127.0.0.1:9"), "{err}");
    }
}
