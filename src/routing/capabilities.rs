//! Matching what a request uses with what a target's model can do.

use crate::api::openai::Features;
use crate::config::Capabilities;

/// A capability a request needs and a target lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    Tools,
    JsonSchema,
    Vision,
    Streaming,
    /// The request is longer than the target's context (estimated tokens, the limit).
    Context {
        needed: u64,
        limit: u64,
    },
}

impl Missing {
    /// The request field that asked for it.
    pub fn param(self) -> &'static str {
        match self {
            Missing::Tools => "tools",
            Missing::JsonSchema => "response_format",
            Missing::Vision => "messages",
            Missing::Streaming => "stream",
            Missing::Context { .. } => "messages",
        }
    }

    /// Says what no target offers, for the client.
    pub fn describe(self, model: &str) -> String {
        let what = match self {
            Missing::Tools => "tool calls",
            Missing::JsonSchema => "structured output (json_schema)",
            Missing::Vision => "image inputs",
            Missing::Streaming => "streaming",
            Missing::Context { needed, limit } => {
                return format!(
                    "the request (about {needed} tokens with its completion) is longer than any model server for `{model}` accepts ({limit} tokens)"
                );
            }
        };
        format!("no model server for `{model}` supports {what}")
    }
}

/// The first capability `features` needs that `capabilities` lacks.
pub fn missing(features: &Features, capabilities: &Capabilities) -> Option<Missing> {
    if features.tools && !capabilities.tools {
        return Some(Missing::Tools);
    }
    if features.json_schema && !capabilities.json_schema {
        return Some(Missing::JsonSchema);
    }
    if features.vision && !capabilities.vision {
        return Some(Missing::Vision);
    }
    if features.streaming && !capabilities.streaming {
        return Some(Missing::Streaming);
    }
    match capabilities.max_context_tokens {
        Some(limit) if features.context_tokens > limit => Some(Missing::Context {
            needed: features.context_tokens,
            limit,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::openai::{ChatCompletionRequest, ForwardedRequest};

    fn features(body: serde_json::Value) -> Features {
        serde_json::from_value::<ChatCompletionRequest>(body)
            .unwrap()
            .features()
    }

    #[test]
    fn reads_what_a_chat_request_uses() {
        let plain = features(serde_json::json!({
            "model": "m", "messages": [{"role": "user", "content": "12345678"}], "max_tokens": 10
        }));
        assert_eq!(
            plain,
            Features {
                context_tokens: 2 + 10,
                ..Features::default()
            }
        );
        let rich = features(serde_json::json!({
            "model": "m", "stream": true,
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
            ]}],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}
        }));
        assert!(rich.tools && rich.json_schema && rich.vision && rich.streaming);
        assert!(!features(serde_json::json!({"model": "m", "messages": [], "tools": []})).tools);
    }

    #[test]
    fn names_the_first_missing_capability() {
        let all = Capabilities::default();
        let needs = Features {
            tools: true,
            vision: true,
            context_tokens: 5_000,
            ..Features::default()
        };
        assert_eq!(missing(&needs, &all), None);
        let no_tools = Capabilities {
            tools: false,
            ..all.clone()
        };
        assert_eq!(missing(&needs, &no_tools), Some(Missing::Tools));
        let small = Capabilities {
            max_context_tokens: Some(4_096),
            ..all
        };
        assert_eq!(
            missing(&needs, &small),
            Some(Missing::Context {
                needed: 5_000,
                limit: 4_096
            })
        );
    }
}
