//! Server-sent events: splitting a byte stream into complete events and reading their
//! `data:` payload.

use bytes::{Bytes, BytesMut};

/// Accumulates bytes and yields complete events (each including its blank-line end).
#[derive(Default)]
pub struct SseFramer {
    buf: BytesMut,
}

/// Largest event accepted before the stream is declared malformed.
pub const MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;

impl SseFramer {
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete event, or `None` until more bytes arrive.
    pub fn next_event(&mut self) -> Option<Bytes> {
        let end = event_end(&self.buf)?;
        Some(self.buf.split_to(end).freeze())
    }

    /// Bytes of an event still incomplete.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

/// Index just past the first blank line: two line endings in a row, where a line ending
/// is `\r\n`, `\n` or `\r` (the SSE specification allows all three).
fn event_end(buf: &[u8]) -> Option<usize> {
    let mut line_start = 0;
    let mut i = 0;
    while i < buf.len() {
        let b = buf[i];
        if b != b'\n' && b != b'\r' {
            i += 1;
            continue;
        }
        let after = if b == b'\r' {
            match buf.get(i + 1) {
                Some(b'\n') => i + 2,
                Some(_) => i + 1,
                // A trailing CR may be the first half of CRLF: wait for more bytes.
                None => return None,
            }
        } else {
            i + 1
        };
        if i == line_start && i > 0 {
            return Some(after);
        }
        line_start = after;
        i = after;
    }
    None
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
            while let Some(e) = f.next_event() {
                out.push(e.to_vec());
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
        assert!(f.next_event().is_none());
        assert!(f.pending() > 0);
    }
}
