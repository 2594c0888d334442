//! What of a payload is searchable: the string values of a JSON body (keys and
//! structure left out), or of a stream the text its events carry, joined as the client
//! read it — as pieces (each string; the stream's text), which the indexer scans for
//! personal data one by one, so a conversation's earlier messages, resent with every
//! turn, are scanned once.

use serde_json::Value;

/// Keys whose string values in stream events are pieces of the generated text.
const STREAM_TEXT_KEYS: &[&str] = &["content", "text", "arguments", "partial_json", "refusal"];

/// The searchable text of a stored payload (a JSON body or an SSE stream): its pieces,
/// each ended by a newline.
pub fn searchable(payload: &[u8]) -> String {
    let mut out = String::new();
    for piece in pieces(payload) {
        out.push_str(&piece);
        out.push('\n');
    }
    out
}

/// The searchable pieces of a stored payload: each string value of a JSON body (a
/// message, a name), or the text of a stream as the client read it.
pub fn pieces(payload: &[u8]) -> Vec<String> {
    if let Ok(value) = serde_json::from_slice::<Value>(payload) {
        let mut out = Vec::new();
        strings(&value, &mut |s| out.push(s.to_string()));
        return out;
    }
    // A stream: the data of each event.
    let mut out = String::new();
    for line in payload.split(|b| *b == b'\n') {
        let Some(data) = line.strip_prefix(b"data:") else {
            continue;
        };
        let Ok(event) = serde_json::from_slice::<Value>(data.trim_ascii()) else {
            continue;
        };
        stream_text(&event, &mut out);
    }
    if out.is_empty() {
        return Vec::new();
    }
    vec![out]
}

/// Every string value in `value`, depth first.
fn strings(value: &Value, sink: &mut impl FnMut(&str)) {
    match value {
        Value::String(s) => sink(s),
        Value::Array(items) => items.iter().for_each(|v| strings(v, sink)),
        Value::Object(map) => map.values().for_each(|v| strings(v, sink)),
        _ => {}
    }
}

/// The text pieces of one stream event, appended without separators (a word may be cut
/// across events).
fn stream_text(value: &Value, out: &mut String) {
    match value {
        Value::Array(items) => items.iter().for_each(|v| stream_text(v, out)),
        Value::Object(map) => {
            for (key, v) in map {
                match v {
                    Value::String(s) if STREAM_TEXT_KEYS.contains(&key.as_str()) => out.push_str(s),
                    _ => stream_text(v, out),
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_give_their_strings_and_streams_their_text() {
        let body =
            br#"{"model":"m","messages":[{"role":"user","content":"the quarterly figures"}]}"#;
        let text = searchable(body);
        assert!(text.contains("the quarterly figures") && !text.contains("messages"));
        let stream = b"data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n\
                       data: {\"choices\":[{\"delta\":{\"content\":\"lo there\"}}]}\n\n\
                       data: [DONE]\n\n";
        assert_eq!(pieces(stream), ["Hello there"]);
        assert_eq!(searchable(stream), "Hello there\n");
        let mut each = pieces(body);
        each.sort();
        assert_eq!(each, ["m", "the quarterly figures", "user"]);
        assert_eq!(searchable(b"\xff\xfe not json"), "");
    }
}
