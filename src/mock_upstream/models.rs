//! `GET /v1/models` and `GET /version`: vLLM's model cards and server version.

use bytes::Bytes;
use serde::Serialize;

use super::MockArgs;
use super::generate;
use super::wire::{self, Null};

/// The vLLM release whose wire format the simulator follows.
pub const VLLM_VERSION: &str = "0.10.1";

#[derive(Serialize)]
struct ModelList<'a> {
    object: &'static str,
    data: Vec<ModelCard<'a>>,
}

/// vLLM's `ModelCard`.
#[derive(Serialize)]
struct ModelCard<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    owned_by: &'static str,
    root: &'a str,
    parent: Null,
    max_model_len: u64,
    permission: [ModelPermission; 1],
}

/// vLLM's `ModelPermission`, always the same permissive card.
#[derive(Serialize)]
struct ModelPermission {
    id: String,
    object: &'static str,
    created: u64,
    allow_create_engine: bool,
    allow_sampling: bool,
    allow_logprobs: bool,
    allow_search_indices: bool,
    allow_view: bool,
    allow_fine_tuning: bool,
    organization: &'static str,
    group: Null,
    is_blocking: bool,
}

/// The model list: one card per served name, all rooted at the first (the "weights").
pub fn list(args: &MockArgs) -> Bytes {
    let created = generate::unix_now();
    let root = args.models.first().map_or("", String::as_str);
    let data = args
        .models
        .iter()
        .map(|name| ModelCard {
            id: name,
            object: "model",
            created,
            owned_by: "vllm",
            root,
            parent: None,
            max_model_len: args.max_model_len,
            permission: [ModelPermission {
                id: generate::new_id("modelperm-"),
                object: "model_permission",
                created,
                allow_create_engine: false,
                allow_sampling: true,
                allow_logprobs: true,
                allow_search_indices: false,
                allow_view: true,
                allow_fine_tuning: false,
                organization: "*",
                group: None,
                is_blocking: false,
            }],
        })
        .collect();
    wire::to_json(&ModelList {
        object: "list",
        data,
    })
}

/// `{"version":"…"}`.
pub fn version() -> Bytes {
    Bytes::from(format!("{{\"version\":\"{VLLM_VERSION}\"}}"))
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    #[test]
    fn lists_every_served_name_with_vllm_fields() {
        let args = MockArgs {
            models: vec!["llama".into(), "alias".into()],
            max_model_len: 8_192,
            ..MockArgs::default()
        };
        let list: Value = serde_json::from_slice(&list(&args)).unwrap();
        assert_eq!(list["object"], "list");
        let data = list["data"].as_array().unwrap();
        assert_eq!(data.len(), 2);
        assert_eq!(data[1]["id"], "alias");
        assert_eq!(data[1]["root"], "llama");
        assert_eq!(data[0]["owned_by"], "vllm");
        assert_eq!(data[0]["parent"], Value::Null);
        assert_eq!(data[0]["max_model_len"], 8_192);
        assert_eq!(data[0]["permission"][0]["object"], "model_permission");
        assert_eq!(data[0]["permission"][0]["group"], Value::Null);
        let version: Value = serde_json::from_slice(&version()).unwrap();
        assert_eq!(version, json!({"version": VLLM_VERSION}));
    }
}
