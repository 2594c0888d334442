//! Plain-HTTP/1.1 upstream connections driven by the request that uses them: no task per
//! connection and no hand-off of body chunks between tasks. The request is written in one
//! system call; a response body decodes straight from its connection's read buffer, so a
//! burst of SSE chunks read in one `recv` leaves as one frame; when the body has ended
//! cleanly the connection returns to the pool.

use super::h1::{self, BodyDecoder, WireError};
use bytes::{Bytes, BytesMut};
use http::Response;
use http_body::{Body, Frame};
use std::io::ErrorKind;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Room made in a connection's read buffer before each read.
const READ_CHUNK: usize = 16 * 1024;
/// Idle connections older than this are probed (one `recv`) before reuse; younger ones
/// are used directly, and if the upstream had closed one anyway the request is retried
/// on a fresh connection (see `send`).
const PROBE_IDLE_AFTER: Duration = Duration::from_millis(250);

/// One keep-alive connection and the bytes read from it but not yet decoded.
pub struct PooledConn {
    stream: TcpStream,
    buf: BytesMut,
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

/// Why a request could not be sent or its response head read.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("connect to {0}: {1}")]
    Connect(String, String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Wire(#[from] WireError),
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

    /// The most recently used idle connection that has not been idle too long, and how
    /// long it was idle.
    fn take_idle(&self) -> Option<(PooledConn, Duration)> {
        let mut idle = self.idle.lock().ok()?;
        let (conn, since) = idle.pop()?;
        let idle_for = since.elapsed();
        if idle_for > self.idle_timeout {
            // This one and every older one have expired.
            idle.clear();
            return None;
        }
        Some((conn, idle_for))
    }

    fn put_idle(&self, conn: PooledConn) {
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
        Ok(PooledConn {
            stream,
            buf: BytesMut::with_capacity(READ_CHUNK),
        })
    }

    /// An idle connection the upstream has not closed, or a new one; and whether it was
    /// reused.
    async fn checkout(&self) -> Result<(PooledConn, bool), SendError> {
        while let Some((pooled, idle_for)) = self.take_idle() {
            // Idle connections have nothing to read: end of file means the upstream
            // closed it, and stray bytes mean it cannot be trusted.
            let mut probe = [0u8; 1];
            if idle_for < PROBE_IDLE_AFTER
                || matches!(pooled.stream.try_read(&mut probe), Err(e) if e.kind() == ErrorKind::WouldBlock)
            {
                return Ok((pooled, true));
            }
        }
        Ok((self.connect().await?, false))
    }

    /// Sends an encoded request (see [`h1::encode_request`]) and reads the response
    /// head. When a reused connection turns out closed — the write fails, or it ends
    /// before the first byte of a response — the request is sent once more on a fresh
    /// connection: an upstream closing an idle keep-alive connection never read it.
    pub async fn send(self: &Arc<Self>, request: &[u8]) -> Result<Response<InlineBody>, SendError> {
        let (conn, reused) = self.checkout().await?;
        let (conn, head) = match exchange(conn, request).await {
            Err(Failure::Stale(_)) if reused => exchange(self.connect().await?, request).await,
            other => other,
        }
        .map_err(Failure::into_error)?;
        let (parts, ()) = head.response.into_parts();
        Ok(Response::from_parts(
            parts,
            InlineBody {
                conn: Some(conn),
                decoder: head.body,
                keep_alive: head.keep_alive,
                out: BytesMut::new(),
                pool: self.clone(),
            },
        ))
    }
}

impl InlinePool {
    /// Sends `request` on a connection of its own, never pooled, and returns the
    /// answer's status: for health checks.
    pub async fn probe(&self, request: &[u8]) -> Result<http::StatusCode, SendError> {
        let conn = self.connect().await?;
        let (_, head) = exchange(conn, request).await.map_err(Failure::into_error)?;
        Ok(head.response.status())
    }
}

/// A failed exchange: `Stale` when the connection was found closed before any of the
/// response arrived.
enum Failure {
    Stale(SendError),
    Fatal(SendError),
}

impl Failure {
    fn into_error(self) -> SendError {
        match self {
            Failure::Stale(e) | Failure::Fatal(e) => e,
        }
    }
}

/// Writes the request and reads the response head.
async fn exchange(mut conn: PooledConn, request: &[u8]) -> Result<(PooledConn, h1::Head), Failure> {
    if let Err(e) = conn.stream.write_all(request).await {
        return Err(Failure::Stale(e.into()));
    }
    loop {
        if let Some(head) = h1::parse_head(&mut conn.buf).map_err(|e| Failure::Fatal(e.into()))? {
            return Ok((conn, head));
        }
        let nothing_yet = conn.buf.is_empty();
        match std::future::poll_fn(|cx| read_into(&conn.stream, &mut conn.buf, cx)).await {
            Ok(0) if nothing_yet => return Err(Failure::Stale(SendError::Closed)),
            Ok(0) => return Err(Failure::Fatal(SendError::Closed)),
            Ok(_) => {}
            Err(e)
                if nothing_yet
                    && matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) =>
            {
                return Err(Failure::Stale(e.into()));
            }
            Err(e) => return Err(Failure::Fatal(e.into())),
        }
    }
}

/// Reads what the socket has into `buf`; 0 at end of file.
fn read_into(
    stream: &TcpStream,
    buf: &mut BytesMut,
    cx: &mut Context<'_>,
) -> Poll<std::io::Result<usize>> {
    buf.reserve(READ_CHUNK);
    loop {
        match stream.try_read_buf(buf) {
            Err(e) if e.kind() == ErrorKind::WouldBlock => ready!(stream.poll_read_ready(cx))?,
            other => return Poll::Ready(other),
        }
    }
}

/// A response body read from its own connection; the connection is pooled again once
/// the body has ended cleanly, and closed when the body is dropped early (which cancels
/// the upstream's work).
pub struct InlineBody {
    /// `None` once the body ended or failed.
    conn: Option<PooledConn>,
    decoder: BodyDecoder,
    keep_alive: bool,
    /// Decoded bytes for the next frame.
    out: BytesMut,
    pool: Arc<InlinePool>,
}

impl InlineBody {
    /// Decodes what is buffered; on the body's end hands the connection back.
    fn decode_buffered(&mut self) -> Result<(), WireError> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(());
        };
        self.decoder.decode(&mut conn.buf, &mut self.out)?;
        if self.decoder.is_done()
            && let Some(conn) = self.conn.take()
            && self.keep_alive
            && conn.buf.is_empty()
        {
            self.pool.put_idle(conn);
        }
        Ok(())
    }
}

impl Body for InlineBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        loop {
            if let Err(e) = this.decode_buffered() {
                this.conn = None;
                return Poll::Ready(Some(Err(std::io::Error::new(ErrorKind::InvalidData, e))));
            }
            if !this.out.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(this.out.split().freeze()))));
            }
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            let read = ready!(read_into(&conn.stream, &mut conn.buf, cx));
            match read {
                Ok(0) => {
                    this.conn = None;
                    if !this.decoder.finish_at_eof() {
                        return Poll::Ready(Some(Err(std::io::Error::new(
                            ErrorKind::UnexpectedEof,
                            "the upstream closed the connection before the body ended",
                        ))));
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    this.conn = None;
                    return Poll::Ready(Some(Err(e)));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.decoder.is_done() && self.out.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::AsyncReadExt;

    /// A server that answers every request on a connection with `answer`, closing the
    /// connection after `per_connection` requests (while the client may still believe
    /// it is kept alive); counts connections.
    async fn server(answer: &'static str, per_connection: usize) -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    for _ in 0..per_connection {
                        let mut buf = vec![0u8; 4096];
                        if matches!(socket.read(&mut buf).await, Ok(0) | Err(_)) {
                            return;
                        }
                        if socket.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                });
            }
        });
        (addr, connections)
    }

    const JSON: &str = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"ok\":true}";

    fn pool(addr: &str) -> Arc<InlinePool> {
        Arc::new(InlinePool::new(
            addr.into(),
            Duration::from_secs(1),
            8,
            Duration::from_secs(60),
        ))
    }

    fn request(addr: &str) -> Vec<u8> {
        h1::encode_request(
            &http::Method::POST,
            "/v1/chat/completions",
            addr,
            &http::HeaderMap::new(),
            b"{}",
        )
    }

    async fn body_of(pool: &Arc<InlinePool>, addr: &str) -> Result<Bytes, std::io::Error> {
        let response = pool.send(&request(addr)).await.unwrap();
        assert_eq!(response.status(), 200);
        Ok(response.into_body().collect().await?.to_bytes())
    }

    #[tokio::test]
    async fn reuses_kept_alive_connections() {
        let (addr, connections) = server(JSON, 100).await;
        let pool = pool(&addr);
        for _ in 0..3 {
            assert_eq!(&body_of(&pool, &addr).await.unwrap()[..], b"{\"ok\":true}");
        }
        assert_eq!(connections.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn replaces_connections_the_upstream_closed_while_idle() {
        let (addr, connections) = server(JSON, 1).await;
        let pool = pool(&addr);
        // Shorter idle: sent, found closed, sent again. Longer: probed and replaced.
        for pause_ms in [60, 60, 300, 300] {
            assert_eq!(&body_of(&pool, &addr).await.unwrap()[..], b"{\"ok\":true}");
            // Let the server close the connection the pool now holds idle.
            tokio::time::sleep(Duration::from_millis(pause_ms)).await;
        }
        assert_eq!(connections.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn relays_chunked_bodies_and_closes_connections_marked_close() {
        let chunked = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\ntransfer-encoding: chunked\r\n\r\n6\r\ndata: \r\n3\r\nhi\n\r\n0\r\n\r\n";
        let (addr, connections) = server(chunked, 100).await;
        let pool = pool(&addr);
        for _ in 0..2 {
            assert_eq!(&body_of(&pool, &addr).await.unwrap()[..], b"data: hi\n");
        }
        assert_eq!(connections.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_body_cut_short_is_an_error_and_its_connection_is_not_reused() {
        let cut = "HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial";
        let (addr, connections) = server(cut, 1).await;
        let pool = pool(&addr);
        let err = body_of(&pool, &addr).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnexpectedEof);
        assert!(pool.take_idle().is_none());
        assert_eq!(connections.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_body_dropped_early_closes_its_connection() {
        let (addr, connections) = server(JSON, 100).await;
        let pool = pool(&addr);
        drop(pool.send(&request(&addr)).await.unwrap());
        assert!(pool.take_idle().is_none());
        body_of(&pool, &addr).await.unwrap();
        assert_eq!(connections.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn connect_failure_is_reported() {
        let pool = Arc::new(InlinePool::new(
            "127.0.0.1:9".into(),
            Duration::from_millis(500),
            8,
            Duration::from_secs(60),
        ));
        let Err(err) = pool.send(&request("127.0.0.1:9")).await else {
            panic!("connecting to a closed port succeeded");
        };
        assert!(err.to_string().contains("127.0.0.1:9"), "{err}");
    }
}
