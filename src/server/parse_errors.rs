//! HTTP/1.1 requests hyper cannot parse — a URI over 64 KiB, a header section over its
//! read buffer, more than 100 headers, a malformed request line or header — are answered
//! by hyper itself before any service sees them: `400`, `414` or `431` with an empty
//! body. [`JsonParseErrors`] wraps a connection's byte stream, recognises those answers
//! as hyper writes them, and sends them instead with a JSON body in OpenAI's error shape.
//!
//! hyper's own answer is told apart from the gateway's by its shape: a status line
//! `HTTP/1.1 400|414|431`, no body, and no `x-request-id` header, which every response
//! of the gateway's service carries. HTTP/2 never writes such bytes (its frames are
//! binary; a frame type of `P` does not exist).

use super::error::ApiError;
use bytes::Bytes;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A connection's byte stream, with hyper's own error answers rewritten.
pub struct JsonParseErrors<S> {
    inner: S,
    /// A rewritten answer not yet written in full.
    pending: Bytes,
}

impl<S> JsonParseErrors<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            pending: Bytes::new(),
        }
    }
}

impl<S: AsyncWrite + Unpin> JsonParseErrors<S> {
    /// Writes what is left of a rewritten answer.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.pending.is_empty() {
            let written = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            let _ = self.pending.split_to(written);
        }
        Poll::Ready(Ok(()))
    }

    /// Takes `answer` in place of the `len` bytes hyper wrote, and starts sending it.
    fn substitute(&mut self, cx: &mut Context<'_>, answer: Bytes, len: usize) -> io::Result<usize> {
        self.pending = answer;
        // Pending is fine: flush and shutdown finish it.
        if let Poll::Ready(Err(e)) = self.poll_pending(cx) {
            return Err(e);
        }
        Ok(len)
    }
}

/// The JSON answer in place of `written`, when it is one of hyper's own error answers.
fn own_answer(written: &[u8]) -> Option<Bytes> {
    let status = written.strip_prefix(b"HTTP/1.1 ")?.get(..3)?;
    let error = match status {
        b"400" => ApiError::malformed_request(),
        b"414" => ApiError::uri_too_long(),
        b"431" => ApiError::headers_too_large(),
        _ => return None,
    };
    // The whole write is one head: no body follows.
    let head_end = memchr::memmem::find(written, b"\r\n\r\n")?;
    if head_end + 4 != written.len() {
        return None;
    }
    if memchr::memmem::find(&written[..head_end], b"\r\nx-request-id:").is_some() {
        return None;
    }
    let body = error.body_bytes();
    let reason = error.status.canonical_reason().unwrap_or("");
    let head = format!(
        "HTTP/1.1 {} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         x-airlock-error-code: {}\r\nconnection: close\r\n\r\n",
        error.status.as_u16(),
        body.len(),
        error.code,
    );
    let mut answer = head.into_bytes();
    answer.extend_from_slice(&body);
    Some(Bytes::from(answer))
}

impl<S: AsyncRead + Unpin> AsyncRead for JsonParseErrors<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for JsonParseErrors<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        if buf.starts_with(b"HTTP/1.1 4")
            && let Some(answer) = own_answer(buf)
        {
            return Poll::Ready(this.substitute(cx, answer, buf.len()));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        let mut filled = bufs.iter().filter(|b| !b.is_empty());
        if let (Some(only), None) = (filled.next(), filled.next())
            && only.starts_with(b"HTTP/1.1 4")
            && let Some(answer) = own_answer(only)
        {
            return Poll::Ready(this.substitute(cx, answer, only.len()));
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypers_own_answers_become_json() {
        for (status, code) in [
            ("414 URI Too Long", "uri_too_long"),
            ("431 Request Header Fields Too Large", "headers_too_large"),
            ("400 Bad Request", "malformed_request"),
        ] {
            let head = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\ndate: x\r\n\r\n");
            let answer = own_answer(head.as_bytes()).unwrap();
            let text = String::from_utf8(answer.to_vec()).unwrap();
            let (head, body) = text.split_once("\r\n\r\n").unwrap();
            assert!(
                head.starts_with(&format!("HTTP/1.1 {status}\r\n")),
                "{head}"
            );
            assert!(head.contains(&format!("content-length: {}", body.len())));
            let json: serde_json::Value = serde_json::from_str(body).unwrap();
            assert_eq!(json["error"]["code"], code);
        }
    }

    #[test]
    fn the_gateways_own_answers_pass_untouched() {
        let ours = b"HTTP/1.1 400 Bad Request\r\nx-request-id: req_1\r\n\r\n";
        assert!(own_answer(ours).is_none());
        let with_body = b"HTTP/1.1 431 Request Header Fields Too Large\r\n\r\n{}";
        assert!(own_answer(with_body).is_none());
        assert!(own_answer(b"HTTP/1.1 404 Not Found\r\n\r\n").is_none());
        assert!(own_answer(b"HTTP/1.1 414 URI Too Long\r\n").is_none());
    }
}
