//! vLLM's JSON wire shapes: response bodies, usage, error bodies and JSON string escaping.
//!
//! Field order follows vLLM's pydantic models, and non-streaming bodies carry every field
//! (vLLM serialises them with `model_dump()`), so optional fields appear as `null`.

use bytes::Bytes;
use serde::Serialize;

/// `null` on the wire for a field vLLM always sends but the simulator never fills.
pub type Null = Option<()>;

/// vLLM's `UsageInfo`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub total_tokens: u64,
    pub completion_tokens: u64,
    pub prompt_tokens_details: Null,
}

impl Usage {
    pub fn new(prompt_tokens: u64, completion_tokens: u64) -> Self {
        Self {
            prompt_tokens,
            total_tokens: prompt_tokens + completion_tokens,
            completion_tokens,
            prompt_tokens_details: None,
        }
    }
}

/// vLLM's `ChatCompletionResponse`.
#[derive(Debug, Serialize)]
pub struct ChatCompletion<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created: u64,
    pub model: &'a str,
    pub choices: Vec<ChatChoice<'a>>,
    pub service_tier: Null,
    pub system_fingerprint: Null,
    pub usage: Usage,
    pub prompt_logprobs: Null,
    pub kv_transfer_params: Null,
}

/// vLLM's `ChatCompletionResponseChoice`.
#[derive(Debug, Serialize)]
pub struct ChatChoice<'a> {
    pub index: u32,
    pub message: ChatMessage<'a>,
    pub logprobs: Null,
    pub finish_reason: &'static str,
    pub stop_reason: Null,
}

/// vLLM's `ChatMessage`.
#[derive(Debug, Serialize)]
pub struct ChatMessage<'a> {
    pub role: &'static str,
    pub content: Option<&'a str>,
    pub refusal: Null,
    pub annotations: Null,
    pub audio: Null,
    pub function_call: Null,
    pub tool_calls: Vec<ToolCall<'a>>,
    pub reasoning_content: Null,
}

/// vLLM's `ToolCall`.
#[derive(Debug, Serialize)]
pub struct ToolCall<'a> {
    pub id: &'a str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: FunctionCall<'a>,
}

/// vLLM's `FunctionCall`.
#[derive(Debug, Serialize)]
pub struct FunctionCall<'a> {
    pub name: &'a str,
    pub arguments: &'a str,
}

/// vLLM's `CompletionResponse` (legacy `/v1/completions`).
#[derive(Debug, Serialize)]
pub struct TextCompletion<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created: u64,
    pub model: &'a str,
    pub choices: Vec<TextChoice<'a>>,
    pub service_tier: Null,
    pub system_fingerprint: Null,
    pub usage: Usage,
    pub kv_transfer_params: Null,
}

/// vLLM's `CompletionResponseChoice`.
#[derive(Debug, Serialize)]
pub struct TextChoice<'a> {
    pub index: u32,
    pub text: &'a str,
    pub logprobs: Null,
    pub finish_reason: &'static str,
    pub stop_reason: Null,
    pub prompt_logprobs: Null,
}

/// vLLM's `EmbeddingResponse`.
#[derive(Debug, Serialize)]
pub struct EmbeddingList<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created: u64,
    pub model: &'a str,
    pub data: Vec<EmbeddingData>,
    pub usage: Usage,
}

/// vLLM's `EmbeddingResponseData`.
#[derive(Debug, Serialize)]
pub struct EmbeddingData {
    pub index: u32,
    pub object: &'static str,
    pub embedding: EmbeddingValue,
}

/// A vector as floats, or as base64 of its little-endian `f32` bytes.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum EmbeddingValue {
    Float(Vec<f32>),
    Base64(String),
}

#[derive(Serialize)]
struct ErrorEnvelope<'a> {
    error: ErrorInfo<'a>,
}

/// vLLM's `ErrorInfo`: note that `code` is the HTTP status as an integer.
#[derive(Serialize)]
struct ErrorInfo<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: u16,
}

/// Serialises `value`; the simulator's types cannot fail to serialise, but stay total.
pub fn to_json<T: Serialize>(value: &T) -> Bytes {
    match serde_json::to_vec(value) {
        Ok(json) => Bytes::from(json),
        Err(error) => {
            tracing::error!(%error, "mock-upstream failed to serialise a response");
            Bytes::from_static(b"{}")
        }
    }
}

/// `{"error":{"message","type","param","code"}}` as vLLM's `ErrorResponse` renders it.
pub fn error_body(message: &str, kind: &str, param: Option<&str>, code: u16) -> Bytes {
    to_json(&ErrorEnvelope {
        error: ErrorInfo {
            message,
            kind,
            param,
            code,
        },
    })
}

/// The SSE event vLLM emits when generation fails mid-stream. vLLM builds it with
/// Python's `json.dumps`, hence the spaces after `:` and `,` unlike every other chunk.
pub fn stream_error_event(message: &str, kind: &str, code: u16) -> Bytes {
    let mut out = Vec::with_capacity(96 + message.len());
    out.extend_from_slice(b"data: {\"error\": {\"message\": ");
    push_json_str(&mut out, message);
    out.extend_from_slice(b", \"type\": ");
    push_json_str(&mut out, kind);
    out.extend_from_slice(b", \"param\": null, \"code\": ");
    push_u64(&mut out, u64::from(code));
    out.extend_from_slice(b"}}\n\n");
    Bytes::from(out)
}

/// Appends `text` as a JSON string literal (quotes included).
pub fn push_json_str(out: &mut Vec<u8>, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = text.as_bytes();
    let mut start = 0;
    for (i, &byte) in bytes.iter().enumerate() {
        let escape: &[u8] = match byte {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(byte >> 4)]);
            out.push(HEX[usize::from(byte & 0xf)]);
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Appends the decimal digits of `value`.
pub fn push_u64(out: &mut Vec<u8>, value: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = value;
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(text: &str) -> String {
        let mut out = Vec::new();
        push_json_str(&mut out, text);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn json_strings_round_trip_through_serde() {
        for text in [
            "",
            "plain",
            "quote \" and \\ backslash",
            "lines\nand\ttabs\r",
            "\u{0}\u{1f}\u{8}\u{c}",
            "unicode ✓ ünïcödé",
        ] {
            let literal = escaped(text);
            let back: String = serde_json::from_str(&literal).unwrap();
            assert_eq!(back, text, "literal {literal}");
        }
    }

    #[test]
    fn integers_render_in_decimal() {
        for value in [0, 7, 10, 12345, u64::MAX] {
            let mut out = Vec::new();
            push_u64(&mut out, value);
            assert_eq!(String::from_utf8(out).unwrap(), value.to_string());
        }
    }

    #[test]
    fn error_body_has_integer_code_and_param() {
        let body = error_body(
            "The model `x` does not exist.",
            "NotFoundError",
            Some("model"),
            404,
        );
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"error": {
                "message": "The model `x` does not exist.",
                "type": "NotFoundError",
                "param": "model",
                "code": 404
            }})
        );
    }

    #[test]
    fn stream_error_event_uses_python_json_spacing() {
        let event = stream_error_event("Internal server error", "InternalServerError", 500);
        assert_eq!(
            &event[..],
            b"data: {\"error\": {\"message\": \"Internal server error\", \"type\": \"InternalServerError\", \"param\": null, \"code\": 500}}\n\n"
        );
    }

    #[test]
    fn usage_serialises_in_vllm_field_order() {
        let json = String::from_utf8(to_json(&Usage::new(7, 3)).to_vec()).unwrap();
        assert_eq!(
            json,
            r#"{"prompt_tokens":7,"total_tokens":10,"completion_tokens":3,"prompt_tokens_details":null}"#
        );
    }
}
