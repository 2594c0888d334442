//! The NER model's files (embedded or from `--ner-model DIR`), its tokenizer and label
//! scheme, and one inference over a batch of texts: windows in, findings out.

use super::NerError;
use super::decode::{self, Label};
use crate::pii::Finding;
use ort::session::Session;
use ort::value::Tensor;
use serde::Deserialize;
use std::borrow::Cow;
use std::path::Path;
use tokenizers::Tokenizer;

static EMBEDDED_ONNX: &[u8] = include_bytes!("../../../models/ner/model.onnx");
static EMBEDDED_TOKENIZER: &[u8] = include_bytes!("../../../models/ner/tokenizer.json");
static EMBEDDED_CONFIG: &[u8] = include_bytes!("../../../models/ner/config.json");

/// Windows in one run of the model: bounds the memory one long text can take.
const MAX_WINDOWS_PER_RUN: usize = 32;

/// The classes the embedded model finds: what text it did not read may hold unseen
/// (also when the configured model could not load).
pub const EMBEDDED_CLASSES: &[&str] = &["PERSON", "LOCATION", "ORGANIZATION"];

/// `models/ner/config.json`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelConfig {
    /// BIO labels in logit order: `O`, `B-PERSON`, `I-PERSON`, …
    labels: Vec<String>,
    /// Window length in tokens, special tokens included.
    max_tokens: usize,
    /// Tokens shared by consecutive windows.
    stride: usize,
    /// Whether the model takes word shapes (`shape_ids`) besides the tokens.
    #[serde(default)]
    word_shapes: bool,
    #[serde(default)]
    base: String,
    #[serde(default)]
    version: String,
}

/// A loaded model, shared by the inference threads (each has its own session).
pub struct NerModel {
    onnx: Cow<'static, [u8]>,
    tokenizer: Tokenizer,
    labels: Vec<Label>,
    /// Content tokens per window (the window minus its two special tokens).
    window: usize,
    /// Content tokens consecutive windows share.
    overlap: usize,
    cls: i64,
    sep: i64,
    /// Whether the model takes `shape_ids`.
    word_shapes: bool,
    /// Model name and version, for `/readyz` and the audit record.
    pub describe: String,
}

impl NerModel {
    /// The model embedded in the binary.
    pub fn embedded() -> Result<Self, NerError> {
        Self::from_parts(
            Cow::Borrowed(EMBEDDED_ONNX),
            EMBEDDED_TOKENIZER,
            EMBEDDED_CONFIG,
        )
    }

    /// A model directory holding `model.onnx`, `tokenizer.json` and `config.json`.
    pub fn from_dir(dir: &Path) -> Result<Self, NerError> {
        let read = |name: &str| {
            std::fs::read(dir.join(name))
                .map_err(|e| NerError::Model(format!("{}: {e}", dir.join(name).display())))
        };
        Self::from_parts(
            Cow::Owned(read("model.onnx")?),
            &read("tokenizer.json")?,
            &read("config.json")?,
        )
    }

    fn from_parts(
        onnx: Cow<'static, [u8]>,
        tokenizer: &[u8],
        config: &[u8],
    ) -> Result<Self, NerError> {
        let config: ModelConfig = serde_json::from_slice(config)
            .map_err(|e| NerError::Model(format!("config.json: {e}")))?;
        let labels = config
            .labels
            .iter()
            .map(|name| Label::parse(name))
            .collect::<Result<Vec<_>, _>>()?;
        if config.max_tokens < 8 || config.stride * 2 >= config.max_tokens - 2 {
            return Err(NerError::Model(format!(
                "config.json: max_tokens {} with stride {} leaves no room",
                config.max_tokens, config.stride
            )));
        }
        let mut tokenizer = Tokenizer::from_bytes(tokenizer)
            .map_err(|e| NerError::Model(format!("tokenizer.json: {e}")))?;
        tokenizer
            .with_truncation(None)
            .map_err(|e| NerError::Model(format!("tokenizer.json: {e}")))?;
        tokenizer.with_padding(None);
        let special = |names: [&str; 2]| {
            names
                .iter()
                .find_map(|name| tokenizer.token_to_id(name))
                .map(i64::from)
                .ok_or_else(|| NerError::Model(format!("tokenizer.json has no {}", names[0])))
        };
        let cls = special(["[CLS]", "<s>"])?;
        let sep = special(["[SEP]", "</s>"])?;
        let describe = match (config.base.as_str(), config.version.as_str()) {
            ("", "") => "ner model".to_owned(),
            (base, version) => format!("ner {version} ({base})"),
        };
        Ok(Self {
            onnx,
            tokenizer,
            labels,
            window: config.max_tokens - 2,
            overlap: config.stride,
            cls,
            sep,
            word_shapes: config.word_shapes,
            describe,
        })
    }

    /// A session for one inference thread: single-threaded, fully optimised.
    pub fn session(
        &self,
        environment: &ort::environment::Environment,
    ) -> Result<Session, NerError> {
        use ort::session::builder::GraphOptimizationLevel;
        let fail = |e: ort::Error<_>| NerError::Model(format!("cannot create the session: {e}"));
        Session::builder(environment)
            .map_err(|e| NerError::Model(format!("cannot create the session: {e}")))?
            .with_intra_threads(1)
            .map_err(fail)?
            .with_inter_threads(1)
            .map_err(fail)?
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(fail)?
            .commit_from_memory(&self.onnx)
            .map_err(|e| NerError::Model(format!("cannot load the model: {e}")))
    }

    /// The data classes the model finds, in label order.
    pub fn classes(&self) -> Vec<&'static str> {
        let mut classes = Vec::new();
        for label in &self.labels {
            if let Label::Begin(class) = label
                && !classes.contains(class)
            {
                classes.push(*class);
            }
        }
        classes
    }

    /// Model tokens in `text` (special tokens not counted).
    pub fn token_count(&self, text: &str) -> usize {
        self.tokenizer.encode(text, false).map_or(0, |e| e.len())
    }

    /// Findings in each text, in one batched run of the model over all their windows.
    pub fn find(
        &self,
        session: &mut Session,
        texts: &[&str],
    ) -> Result<Vec<Vec<Finding>>, NerError> {
        let mut encoded = Vec::with_capacity(texts.len());
        let mut shapes = Vec::new();
        let mut windows = Vec::new();
        for (index, text) in texts.iter().enumerate() {
            let encoding = self
                .tokenizer
                .encode(*text, false)
                .map_err(|e| NerError::Model(format!("tokenizer: {e}")))?;
            for range in window_ranges(encoding.len(), self.window, self.overlap) {
                windows.push((index, range));
            }
            if self.word_shapes {
                shapes.push(super::shapes::shape_ids(text, &encoding));
            }
            encoded.push(encoding);
        }
        let labels = self.labels.len();
        let mut predictions: Vec<Vec<f32>> = encoded
            .iter()
            .map(|encoding| vec![0.0; encoding.len() * labels])
            .collect();
        for chunk in windows.chunks(MAX_WINDOWS_PER_RUN) {
            let logits = self.run(session, &encoded, &shapes, chunk)?;
            self.collect(&logits, chunk, &mut predictions);
        }
        Ok(texts
            .iter()
            .zip(&encoded)
            .zip(&predictions)
            .map(|((text, encoding), log_probs)| {
                decode::findings(&self.labels, text, encoding, log_probs)
            })
            .collect())
    }

    /// Logits for every window, padded to the longest: `[windows × length × labels]`.
    /// `shapes` holds each text's word shapes when the model takes them.
    fn run(
        &self,
        session: &mut Session,
        encoded: &[tokenizers::Encoding],
        shapes: &[Vec<i64>],
        windows: &[(usize, std::ops::Range<usize>)],
    ) -> Result<(Vec<f32>, usize), NerError> {
        let length = windows.iter().map(|(_, r)| r.len()).max().unwrap_or(0) + 2;
        let mut ids = vec![0i64; windows.len() * length];
        let mut mask = vec![0i64; windows.len() * length];
        let mut shape_ids = vec![0i64; if self.word_shapes { ids.len() } else { 0 }];
        for (row, (text, range)) in windows.iter().enumerate() {
            let base = row * length;
            let tokens = &encoded[*text].get_ids()[range.clone()];
            ids[base] = self.cls;
            for (i, id) in tokens.iter().enumerate() {
                ids[base + 1 + i] = i64::from(*id);
            }
            ids[base + 1 + tokens.len()] = self.sep;
            mask[base..base + tokens.len() + 2].fill(1);
            if let Some(text_shapes) = shapes.get(*text) {
                shape_ids[base + 1..base + 1 + tokens.len()]
                    .copy_from_slice(&text_shapes[range.clone()]);
            }
        }
        let shape = [windows.len(), length];
        let fail = |e: ort::Error| NerError::Model(format!("inference failed: {e}"));
        let mut inputs = ort::inputs![
            "input_ids" => Tensor::from_array((shape, ids)).map_err(fail)?,
            "attention_mask" => Tensor::from_array((shape, mask)).map_err(fail)?,
        ];
        if self.word_shapes {
            inputs.push((
                "shape_ids".into(),
                Tensor::from_array((shape, shape_ids)).map_err(fail)?.into(),
            ));
        }
        let outputs = session.run(inputs).map_err(fail)?;
        let logits = outputs
            .get("logits")
            .ok_or_else(|| NerError::Model("the model has no `logits` output".into()))?;
        let (dims, values) = logits.try_extract_tensor::<f32>().map_err(fail)?;
        let expected = [
            windows.len() as i64,
            length as i64,
            self.labels.len() as i64,
        ];
        if dims.as_ref() != expected {
            return Err(NerError::Model(format!(
                "logits have shape {dims:?}, expected {expected:?}"
            )));
        }
        Ok((values.to_vec(), length))
    }

    /// Each token's label log-probabilities, from the window that sees it with the most
    /// context (tokens in an overlap go to the window they sit deeper in).
    fn collect(
        &self,
        (logits, length): &(Vec<f32>, usize),
        windows: &[(usize, std::ops::Range<usize>)],
        predictions: &mut [Vec<f32>],
    ) {
        let labels = self.labels.len();
        let half = self.overlap / 2;
        for (row, (text, range)) in windows.iter().enumerate() {
            let tokens = predictions[*text].len() / labels;
            let first_window = range.start == 0;
            let last_window = range.end == tokens;
            for (i, token) in range.clone().enumerate() {
                let owned = (first_window || i >= half)
                    && (last_window || i < range.len().saturating_sub(half));
                if !owned {
                    continue;
                }
                let at = (row * length + 1 + i) * labels;
                let into = &mut predictions[*text][token * labels..(token + 1) * labels];
                log_softmax(&logits[at..at + labels], into);
            }
        }
    }
}

/// `into` = log-softmax of `logits`.
fn log_softmax(logits: &[f32], into: &mut [f32]) {
    let top = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let log_sum = logits.iter().map(|v| (v - top).exp()).sum::<f32>().ln();
    for (out, v) in into.iter_mut().zip(logits) {
        *out = v - top - log_sum;
    }
}

/// Token ranges of the windows over `tokens` content tokens: `window` long, sharing
/// `overlap` tokens with the next; one empty text gives no window.
fn window_ranges(tokens: usize, window: usize, overlap: usize) -> Vec<std::ops::Range<usize>> {
    let step = window - overlap;
    let mut ranges = Vec::new();
    let mut start = 0;
    while start < tokens {
        let end = (start + window).min(tokens);
        ranges.push(start..end);
        if end == tokens {
            break;
        }
        start += step;
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cover_every_token_and_overlap_as_configured() {
        assert!(window_ranges(0, 10, 2).is_empty());
        assert_eq!(window_ranges(5, 10, 2), vec![0..5]);
        assert_eq!(window_ranges(10, 10, 2), vec![0..10]);
        assert_eq!(window_ranges(11, 10, 2), vec![0..10, 8..11]);
        assert_eq!(
            window_ranges(30, 10, 4),
            vec![0..10, 6..16, 12..22, 18..28, 24..30]
        );
    }

    #[test]
    fn the_embedded_models_classes_are_the_ones_named() {
        let config: ModelConfig = serde_json::from_slice(EMBEDDED_CONFIG).unwrap();
        let mut classes: Vec<&str> = config
            .labels
            .iter()
            .filter_map(|label| label.strip_prefix("B-"))
            .collect();
        classes.dedup();
        assert_eq!(classes, EMBEDDED_CLASSES);
    }

    #[test]
    fn log_softmax_normalises() {
        let mut out = [0.0; 3];
        log_softmax(&[0.0, 2.0, 0.0], &mut out);
        assert!((out[1].exp() - 0.787).abs() < 0.01, "{out:?}");
        assert!((out.iter().map(|v| v.exp()).sum::<f32>() - 1.0).abs() < 1e-5);
    }
}
