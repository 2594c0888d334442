//! Server-sent events: splitting a byte stream into complete events and reading their
//! `data:` payload.

use bytes::{Bytes, BytesMut};

/// Accumulates bytes and finds complete events (each including its blank-line end) at
/// the front of the buffer. Scanning resumes where it stopped, so an event arriving in
/// many small pieces is scanned once, not once per piece.
#[derive(Default)]
pub struct SseFramer {
    buf: BytesMut,
    /// Start of the first line not yet known to be complete.
    resume_at: usize,
}

/// Largest event accepted before the stream is declared malformed.
pub const MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;

impl SseFramer {
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// Length of the complete event at the front, or `None` until more bytes arrive.
    pub fn next_event_len(&mut self) -> Option<usize> {
        match event_end(&self.buf, self.resume_at) {
            Ok(end) => Some(end),
            Err(resume_at) => {
                self.resume_at = resume_at;
                None
            }
        }
    }

    /// The first `len` bytes (an event whose length `next_event_len` gave).
    pub fn front(&self, len: usize) -> &[u8] {
        &self.buf[..len]
    }

    /// Drops the event at the front.
    pub fn consume(&mut self, len: usize) {
        bytes::Buf::advance(&mut self.buf, len);
        self.resume_at = 0;
    }

    /// Bytes of an event still incomplete.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

/// Index just past the first blank line at or after `from` (a line start): two line
/// endings in a row, where a line ending is `\r\n`, `\n` or `\r` (the SSE specification
/// allows all three). Without one, the start of the last incomplete line, to resume from.
fn event_end(buf: &[u8], from: usize) -> Result<usize, usize> {
    let mut line_start = from;
    let mut i = from;
    while let Some(offset) = memchr::memchr2(b'\n', b'\r', &buf[i..]) {
        i += offset;
        let after = if buf[i] == b'\r' {
            match buf.get(i + 1) {
                Some(b'\n') => i + 2,
                Some(_) => i + 1,
                // A trailing CR may be the first half of CRLF: wait for more bytes.
                None => return Err(line_start),
            }
        } else {
            i + 1
        };
        if i == line_start && i > 0 {
            return Ok(after);
        }
        line_start = after;
        i = after;
    }
    Err(line_start)
}

/// The payload of an event's `data:` lines (joined by `\n`), or `None` for an event
/// without data (a comment or keep-alive).
pub fn data_payload(event: &[u8]) -> Option<std::borrow::Cow<'_, [u8]>> {
    let mut single: Option<&[u8]> = None;
    let mut joined: Option<Vec<u8>> = None;
    for line in event.split(|&b| b == b'\n' || b == b'\r') {
        let Some(rest) = line.strip_prefix(b"data:") else {
            continue;
        };
        let value = rest.strip_prefix(b" ").unwrap_or(rest);
        match (&mut joined, single) {
            (Some(acc), _) => {
                acc.push(b'\n');
                acc.extend_from_slice(value);
            }
            (None, Some(first)) => {
                let mut acc = first.to_vec();
                acc.push(b'\n');
                acc.extend_from_slice(value);
                joined = Some(acc);
            }
            (None, None) => single = Some(value),
        }
    }
    match joined {
        Some(v) => Some(std::borrow::Cow::Owned(v)),
        None => single.map(std::borrow::Cow::Borrowed),
    }
}

/// Frames a JSON payload as one SSE event.
pub fn data_event(json: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(json.len() + 8);
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(json);
    out.extend_from_slice(b"\n\n");
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(chunks: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut f = SseFramer::default();
        let mut out = vec![];
        for c in chunks {
            f.push(c);
            while let Some(len) = f.next_event_len() {
                out.push(f.front(len).to_vec());
                f.consume(len);
            }
        }
        out
    }

    #[test]
    fn splits_events_across_arbitrary_chunk_boundaries() {
        let stream = b"data: {\"a\":1}\n\ndata: {\"b\":2}\n\ndata: [DONE]\n\n";
        for cut in 1..stream.len() {
            let got = events(&[&stream[..cut], &stream[cut..]]);
            assert_eq!(got.len(), 3, "cut at {cut}");
            assert_eq!(got[2], b"data: [DONE]\n\n");
        }
    }

    #[test]
    fn handles_crlf_and_cr_line_endings() {
        let got = events(&[b"data: x\r\n\r\ndata: y\r\rdata: z\n\n"]);
        assert_eq!(got.len(), 3);
        assert_eq!(&*data_payload(&got[0]).unwrap(), b"x");
        assert_eq!(&*data_payload(&got[1]).unwrap(), b"y");
    }

    #[test]
    fn joins_multi_line_data_and_ignores_comments() {
        assert_eq!(&*data_payload(b"data: a\ndata: b\n\n").unwrap(), b"a\nb");
        assert!(data_payload(b": keep-alive\n\n").is_none());
        assert_eq!(&*data_payload(b"event: x\ndata:{}\n\n").unwrap(), b"{}");
    }

    #[test]
    fn incomplete_event_waits() {
        let mut f = SseFramer::default();
        f.push(b"data: {\"a\":");
        assert!(f.next_event_len().is_none());
        assert!(f.pending() > 0);
    }

    #[test]
    fn an_event_arriving_byte_by_byte_is_found_once_complete() {
        let stream = b"data: one\r\ndata: two\r\n\r\ndata: x\n\n";
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        let got = events(&bytes);
        assert_eq!(got.len(), 2);
        assert_eq!(&*data_payload(&got[0]).unwrap(), b"one\ntwo");
    }
}
