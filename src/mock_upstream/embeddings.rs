//! `POST /v1/embeddings`: deterministic unit vectors, as floats or base64 `f32` bytes.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::Value;

use super::MockArgs;
use super::completions::{Prompt, prompts};
use super::generate;
use super::request::{ApiError, Prepared, Work, fault_name, parse_json, resolve_model};
use super::wire::{self, EmbeddingData, EmbeddingList, EmbeddingValue, Usage};
use crate::random::splitmix64;

/// The fields of vLLM's `EmbeddingCompletionRequest` the simulator reads.
#[derive(Debug, Deserialize)]
struct EmbeddingRequest {
    model: Option<String>,
    input: Option<Value>,
    encoding_format: Option<String>,
    dimensions: Option<i64>,
    mock_fault: Option<Value>,
}

/// A unit-length vector of `dim` components, fully determined by `seed`.
pub fn unit_vector(seed: u64, dim: usize) -> Vec<f32> {
    let mut state = seed;
    let raw: Vec<f64> = (0..dim)
        .map(|_| {
            let unit = (splitmix64(&mut state) >> 11) as f64 / (1u64 << 53) as f64;
            unit * 2.0 - 1.0
        })
        .collect();
    let norm = raw.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norm > 0.0 {
        raw.iter().map(|x| (x / norm) as f32).collect()
    } else {
        let mut axis = vec![0.0; dim];
        if let Some(first) = axis.first_mut() {
            *first = 1.0;
        }
        axis
    }
}

/// Base64 (standard alphabet, padded) of the little-endian `f32` bytes, as vLLM and the
/// OpenAI SDKs (`numpy.frombuffer(…, dtype="float32")`) expect.
pub fn encode_base64(vector: &[f32]) -> String {
    let mut bytes = Vec::with_capacity(vector.len() * 4);
    for value in vector {
        bytes.extend_from_slice(&value.to_le_bytes());
    }
    STANDARD.encode(bytes)
}

/// Validates an embedding request and renders its answer.
pub fn prepare(args: &MockArgs, body: &[u8]) -> Result<Prepared, ApiError> {
    let request: EmbeddingRequest = parse_json(body)?;
    let fault = fault_name(request.mock_fault.as_ref())?;
    let base64 = match request.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "encoding_format: Input should be 'float' or 'base64', got '{other}'"
            )));
        }
    };
    if request.input.is_none() {
        return Err(ApiError::bad_request("input: Field required"));
    }
    let inputs: Vec<Prompt> = prompts(request.input.as_ref(), "input")?;
    let model = resolve_model(args, request.model.as_deref())?;
    if let Some(dimensions) = request.dimensions
        && usize::try_from(dimensions).ok() != Some(args.embedding_dim)
    {
        return Err(ApiError::bad_request(format!(
            "Model \"{model}\" does not support matryoshka representation, changing output \
             dimensions will lead to poor results."
        )));
    }

    let data = inputs
        .iter()
        .zip(0..)
        .map(|(input, index)| {
            let vector = unit_vector(input.seed, args.embedding_dim);
            EmbeddingData {
                index,
                object: "embedding",
                embedding: if base64 {
                    EmbeddingValue::Base64(encode_base64(&vector))
                } else {
                    EmbeddingValue::Float(vector)
                },
            }
        })
        .collect();
    let prompt_tokens = inputs.iter().map(|input| input.tokens).sum();
    let id = generate::new_id("embd-");
    let json = wire::to_json(&EmbeddingList {
        id: &id,
        object: "list",
        created: generate::unix_now(),
        model,
        data,
        usage: Usage::new(prompt_tokens, 0),
    });
    Ok(Prepared {
        fault,
        work: Work::Json(json),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn vectors_are_deterministic_unit_vectors() {
        let a = unit_vector(7, 64);
        assert_eq!(a.len(), 64);
        assert_eq!(a, unit_vector(7, 64));
        assert_ne!(a, unit_vector(8, 64));
        let norm: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
        assert_eq!(unit_vector(1, 1).len(), 1);
        assert!(unit_vector(1, 0).is_empty());
    }

    #[test]
    fn base64_round_trips_to_the_same_floats() {
        let vector = unit_vector(99, 16);
        let encoded = encode_base64(&vector);
        let bytes = STANDARD.decode(encoded).unwrap();
        assert_eq!(bytes.len(), 16 * 4);
        let decoded: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|chunk| f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]))
            .collect();
        assert_eq!(decoded, vector);
        // A known value: 1.0f32 is 00 00 80 3f.
        assert_eq!(encode_base64(&[1.0]), "AACAPw==");
    }

    fn answer(body: Value) -> Value {
        let prepared = prepare(&MockArgs::default(), body.to_string().as_bytes()).unwrap();
        let Work::Json(bytes) = prepared.work else {
            panic!("expected JSON");
        };
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn answers_in_vllm_shape_for_both_encodings() {
        let floats = answer(json!({"model": "mock-llama", "input": ["a b", "c"]}));
        assert!(floats["id"].as_str().unwrap().starts_with("embd-"));
        assert_eq!(floats["object"], "list");
        assert_eq!(floats["data"][1]["index"], 1);
        assert_eq!(floats["data"][0]["object"], "embedding");
        assert_eq!(floats["data"][0]["embedding"].as_array().unwrap().len(), 64);
        assert_eq!(
            floats["usage"],
            json!({"prompt_tokens": 5, "total_tokens": 5, "completion_tokens": 0,
                   "prompt_tokens_details": null})
        );
        let packed = answer(json!({"input": "a b", "encoding_format": "base64"}));
        let text = packed["data"][0]["embedding"].as_str().unwrap();
        assert_eq!(STANDARD.decode(text).unwrap().len(), 64 * 4);
    }

    #[test]
    fn rejects_bad_embedding_requests() {
        let args = MockArgs::default();
        let err = |body: Value| prepare(&args, body.to_string().as_bytes()).unwrap_err();
        assert_eq!(
            err(json!({"model": "mock-llama"})).message,
            "input: Field required"
        );
        assert_eq!(
            err(json!({"input": "x", "encoding_format": "hex"}))
                .status
                .as_u16(),
            400
        );
        assert_eq!(
            err(json!({"input": "x", "dimensions": 3})).status.as_u16(),
            400
        );
        assert_eq!(
            err(json!({"input": "x", "model": "other"})).status.as_u16(),
            404
        );
        assert!(prepare(&args, br#"{"input": "x", "dimensions": 64}"#).is_ok());
    }
}
