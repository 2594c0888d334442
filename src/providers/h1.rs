//! The HTTP/1.1 client wire format for plain-HTTP upstreams: request heads, response
//! heads with their body framing (RFC 9112 §6), and a resumable body decoder for
//! `Content-Length`, chunked and read-until-close bodies.

use bytes::{Buf, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};

/// Largest response head accepted.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Most header lines accepted in a response head.
const MAX_HEADERS: usize = 100;
/// Longest chunk-size line (with extensions) or trailer line accepted.
const MAX_LINE_BYTES: usize = 4096;

/// Why a response could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("malformed response head: {0}")]
    Head(String),
    #[error("response head larger than {MAX_HEAD_BYTES} bytes")]
    HeadTooLarge,
    #[error("malformed chunked body: {0}")]
    Chunked(&'static str),
}

/// Writes a request head; `Host` and `Content-Length` are added here.
pub fn encode_request(
    method: &http::Method,
    path: &str,
    authority: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + body.len());
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(authority.as_bytes());
    for (name, value) in headers {
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
    }
    out.extend_from_slice(b"\r\ncontent-length: ");
    out.extend_from_slice(body.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body);
    out
}

/// A parsed response head: the response (without body), how its body is framed, and
/// whether the connection may carry another request afterwards.
pub struct Head {
    pub response: Response<()>,
    pub body: BodyDecoder,
    pub keep_alive: bool,
}

/// Parses a response head at the front of `buf` and removes it. `Ok(None)`: more bytes
/// are needed. Interim (1xx) responses are skipped.
pub fn parse_head(buf: &mut BytesMut) -> Result<Option<Head>, WireError> {
    loop {
        let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Response::new(&mut slots);
        let len = match parsed.parse(buf) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD_BYTES => {
                return Err(WireError::HeadTooLarge);
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(WireError::Head(e.to_string())),
        };
        let code = parsed.code.unwrap_or(0);
        let status =
            StatusCode::from_u16(code).map_err(|_| WireError::Head(format!("status {code}")))?;
        if status.is_informational() {
            buf.advance(len);
            continue;
        }
        let mut headers = HeaderMap::with_capacity(parsed.headers.len());
        for h in parsed.headers.iter() {
            let name = HeaderName::from_bytes(h.name.as_bytes())
                .map_err(|_| WireError::Head(format!("header name {:?}", h.name)))?;
            let value = HeaderValue::from_bytes(h.value)
                .map_err(|_| WireError::Head(format!("value of {name}")))?;
            headers.append(name, value);
        }
        let http11 = parsed.version == Some(1);
        buf.advance(len);
        let body = framing(status, &headers)?;
        let keep_alive = http11
            && !matches!(body, BodyDecoder::UntilClose)
            && !has_token(&headers, &CONNECTION, "close");
        let mut response = Response::new(());
        *response.status_mut() = status;
        *response.version_mut() = if http11 {
            http::Version::HTTP_11
        } else {
            http::Version::HTTP_10
        };
        *response.headers_mut() = headers;
        return Ok(Some(Head {
            response,
            body,
            keep_alive,
        }));
    }
}

/// Whether a comma-separated header has `token` (case-insensitive) in any of its lines.
fn has_token(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

/// How the body of a response to a POST is delimited.
fn framing(status: StatusCode, headers: &HeaderMap) -> Result<BodyDecoder, WireError> {
    if status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        return Ok(BodyDecoder::Length(0));
    }
    if headers.contains_key(TRANSFER_ENCODING) {
        let last = headers
            .get_all(TRANSFER_ENCODING)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .rfind(|t| !t.is_empty());
        // Chunked last: chunked. Anything else is delimited by the connection's close.
        return Ok(match last {
            Some(t) if t.eq_ignore_ascii_case("chunked") => BodyDecoder::Chunked(Chunk::Size),
            _ => BodyDecoder::UntilClose,
        });
    }
    let mut lengths = headers.get_all(CONTENT_LENGTH).iter().peekable();
    if lengths.peek().is_none() {
        return Ok(BodyDecoder::UntilClose);
    }
    let mut length: Option<u64> = None;
    for value in lengths.flat_map(|v| v.as_bytes().split(|b| *b == b',')) {
        let text = std::str::from_utf8(value).unwrap_or("").trim();
        let parsed = text
            .parse::<u64>()
            .ok()
            .filter(|_| text.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| WireError::Head(format!("content-length {text:?}")))?;
        if length.is_some_and(|l| l != parsed) {
            return Err(WireError::Head("conflicting content-length values".into()));
        }
        length = Some(parsed);
    }
    Ok(BodyDecoder::Length(length.unwrap_or(0)))
}

/// Where a chunked body's decoder stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk's data, with this many bytes left.
    Data(u64),
    /// Expecting the line end after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer lines until a blank one.
    Trailers,
}

/// Decodes a response body from the connection's read buffer as bytes arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyDecoder {
    /// Exactly this many bytes remain.
    Length(u64),
    Chunked(Chunk),
    /// Everything until the server closes the connection.
    UntilClose,
    Done,
}

impl BodyDecoder {
    /// Moves the body bytes at the front of `buf` into `out`. Stops when `buf` holds
    /// nothing more to decode or the body is complete (`is_done`).
    pub fn decode(&mut self, buf: &mut BytesMut, out: &mut BytesMut) -> Result<(), WireError> {
        loop {
            match *self {
                BodyDecoder::Done => return Ok(()),
                BodyDecoder::Length(0) => *self = BodyDecoder::Done,
                BodyDecoder::Length(left) => {
                    let take = take_len(left, buf);
                    if take == 0 {
                        return Ok(());
                    }
                    out.extend_from_slice(&buf[..take]);
                    buf.advance(take);
                    *self = BodyDecoder::Length(left - take as u64);
                }
                BodyDecoder::UntilClose => {
                    out.extend_from_slice(buf);
                    buf.clear();
                    return Ok(());
                }
                BodyDecoder::Chunked(state) => match decode_chunked(state, buf, out)? {
                    Some(next) => *self = next,
                    None => return Ok(()),
                },
            }
        }
    }

    /// The connection closed: whether that ends the body cleanly.
    pub fn finish_at_eof(&mut self) -> bool {
        match self {
            BodyDecoder::UntilClose | BodyDecoder::Done => {
                *self = BodyDecoder::Done;
                true
            }
            _ => false,
        }
    }

    pub fn is_done(&self) -> bool {
        *self == BodyDecoder::Done
    }
}

fn take_len(left: u64, buf: &BytesMut) -> usize {
    usize::try_from(left).map_or(buf.len(), |left| left.min(buf.len()))
}

/// One step of chunked decoding: the next state, or `None` when more bytes are needed.
fn decode_chunked(
    state: Chunk,
    buf: &mut BytesMut,
    out: &mut BytesMut,
) -> Result<Option<BodyDecoder>, WireError> {
    Ok(Some(match state {
        Chunk::Size => {
            let Some((len, total)) = line_at_front(buf)? else {
                return Ok(None);
            };
            let size = chunk_size(&buf[..len])?;
            buf.advance(total);
            if size == 0 {
                BodyDecoder::Chunked(Chunk::Trailers)
            } else {
                BodyDecoder::Chunked(Chunk::Data(size))
            }
        }
        Chunk::Data(left) => {
            let take = take_len(left, buf);
            if take == 0 {
                return Ok(None);
            }
            out.extend_from_slice(&buf[..take]);
            buf.advance(take);
            match left - take as u64 {
                0 => BodyDecoder::Chunked(Chunk::DataEnd),
                rest => BodyDecoder::Chunked(Chunk::Data(rest)),
            }
        }
        Chunk::DataEnd => {
            let Some((len, total)) = line_at_front(buf)? else {
                return Ok(None);
            };
            if len != 0 {
                return Err(WireError::Chunked("chunk data longer than its size"));
            }
            buf.advance(total);
            BodyDecoder::Chunked(Chunk::Size)
        }
        Chunk::Trailers => {
            let Some((len, total)) = line_at_front(buf)? else {
                return Ok(None);
            };
            buf.advance(total);
            if len == 0 {
                BodyDecoder::Done
            } else {
                BodyDecoder::Chunked(Chunk::Trailers)
            }
        }
    }))
}

/// The line at the front of `buf` (ended by `\n`, with an optional `\r` before it): its
/// length without the ending, and with it.
fn line_at_front(buf: &BytesMut) -> Result<Option<(usize, usize)>, WireError> {
    let Some(end) = memchr::memchr(b'\n', buf) else {
        if buf.len() > MAX_LINE_BYTES {
            return Err(WireError::Chunked("line too long"));
        }
        return Ok(None);
    };
    let len = if end > 0 && buf[end - 1] == b'\r' {
        end - 1
    } else {
        end
    };
    Ok(Some((len, end + 1)))
}

/// The size on a chunk-size line (hex digits, then optional `;extensions`).
fn chunk_size(line: &[u8]) -> Result<u64, WireError> {
    let digits = line
        .split(|b| *b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    if digits.is_empty() || digits.len() > 15 {
        return Err(WireError::Chunked("bad chunk size"));
    }
    let text = std::str::from_utf8(digits).map_err(|_| WireError::Chunked("bad chunk size"))?;
    u64::from_str_radix(text, 16).map_err(|_| WireError::Chunked("bad chunk size"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Result<Option<Head>, WireError> {
        parse_head(&mut BytesMut::from(text))
    }

    /// Feeds `wire` to a decoder in pieces of `step` bytes; returns the body and whether
    /// it completed.
    fn decode_in_pieces(mut decoder: BodyDecoder, wire: &[u8], step: usize) -> (Vec<u8>, bool) {
        let mut buf = BytesMut::new();
        let mut out = BytesMut::new();
        for piece in wire.chunks(step) {
            buf.extend_from_slice(piece);
            decoder.decode(&mut buf, &mut out).unwrap();
        }
        (out.to_vec(), decoder.is_done())
    }

    #[test]
    fn encodes_a_request() {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        let wire = encode_request(
            &http::Method::POST,
            "/v1/chat/completions",
            "127.0.0.1:8000",
            &headers,
            b"{}",
        );
        assert_eq!(
            wire,
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1:8000\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
        );
    }

    #[test]
    fn reads_heads_and_their_framing() {
        let mut buf = BytesMut::from(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\nhello",
        );
        let h = parse_head(&mut buf).unwrap().unwrap();
        assert_eq!(h.response.status(), 200);
        assert_eq!(h.response.headers()["content-type"], "application/json");
        assert_eq!(h.body, BodyDecoder::Length(5));
        assert!(h.keep_alive);
        assert_eq!(&buf[..], b"hello");

        let h = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.body, BodyDecoder::Chunked(Chunk::Size));
        let h =
            head("HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 0\r\n\r\n")
                .unwrap()
                .unwrap();
        assert!(!h.keep_alive);
        let h = head("HTTP/1.1 200 OK\r\n\r\n").unwrap().unwrap();
        assert_eq!(h.body, BodyDecoder::UntilClose);
        assert!(!h.keep_alive);
        let h = head("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!h.keep_alive, "HTTP/1.0 closes");
        let h = head("HTTP/1.1 204 No Content\r\n\r\n").unwrap().unwrap();
        assert_eq!(h.body, BodyDecoder::Length(0));
        let h = head("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 429 Too Many Requests\r\nRetry-After: 3\r\nContent-Length: 0\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.response.status(), 429, "interim responses are skipped");
        assert_eq!(h.response.headers()["retry-after"], "3");
    }

    #[test]
    fn waits_for_a_whole_head_and_rejects_bad_ones() {
        assert!(head("HTTP/1.1 200 OK\r\nContent-Len").unwrap().is_none());
        assert!(matches!(
            head("SSH-2.0-OpenSSH\r\n\r\n"),
            Err(WireError::Head(_))
        ));
        let conflicting = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n";
        assert!(matches!(head(conflicting), Err(WireError::Head(_))));
        assert!(matches!(
            head("HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n"),
            Err(WireError::Head(_))
        ));
        let endless = format!("HTTP/1.1 200 OK\r\nx: {}", "a".repeat(MAX_HEAD_BYTES + 1));
        assert_eq!(head(&endless).err(), Some(WireError::HeadTooLarge));
    }

    #[test]
    fn decodes_chunked_bodies_split_anywhere() {
        let wire = b"5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\ntrailer: x\r\n\r\n";
        for step in [1, 2, 3, 7, wire.len()] {
            let (body, done) = decode_in_pieces(BodyDecoder::Chunked(Chunk::Size), wire, step);
            assert_eq!(body, b"hello, world", "step {step}");
            assert!(done, "step {step}");
        }
        let (body, done) = decode_in_pieces(BodyDecoder::Chunked(Chunk::Size), b"5\r\nhel", 64);
        assert_eq!((body.as_slice(), done), (&b"hel"[..], false));
    }

    #[test]
    fn rejects_broken_chunked_bodies() {
        for wire in [
            &b"zz\r\n"[..],
            b"5\r\nhello!!\r\n",
            b"fffffffffffffffff\r\n",
        ] {
            let mut decoder = BodyDecoder::Chunked(Chunk::Size);
            let mut buf = BytesMut::from(wire);
            assert!(
                decoder.decode(&mut buf, &mut BytesMut::new()).is_err(),
                "{wire:?}"
            );
        }
        let mut decoder = BodyDecoder::Chunked(Chunk::Size);
        let mut buf = BytesMut::from(&vec![b'1'; MAX_LINE_BYTES + 1][..]);
        assert!(decoder.decode(&mut buf, &mut BytesMut::new()).is_err());
    }

    #[test]
    fn length_and_close_delimited_bodies() {
        let (body, done) = decode_in_pieces(BodyDecoder::Length(5), b"hello", 2);
        assert_eq!((body.as_slice(), done), (&b"hello"[..], true));
        let mut decoder = BodyDecoder::UntilClose;
        let mut out = BytesMut::new();
        decoder
            .decode(&mut BytesMut::from("abc"), &mut out)
            .unwrap();
        assert!(!decoder.is_done());
        assert!(decoder.finish_at_eof());
        assert_eq!(&out[..], b"abc");
        assert!(
            !BodyDecoder::Length(3).finish_at_eof(),
            "a short body is cut off"
        );
    }
}
