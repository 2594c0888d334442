//! NER for what patterns cannot find (names, places, organisations): the embedded model,
//! run by the embedded ONNX Runtime on a bounded pool of inference threads.

mod decode;
mod fair;
pub mod model;
mod pieces;
pub mod pool;
pub mod runtime;
mod shapes;

pub use model::{EMBEDDED_CLASSES, NerModel};
pub use pool::{NerPool, Pending, PoolSize};
pub use runtime::RuntimeSource;

use std::path::PathBuf;
use std::sync::Arc;

/// Why NER gave no answer (for all or part of a text).
#[derive(Debug, Clone, thiserror::Error)]
pub enum NerError {
    #[error("NER is unavailable: {0}")]
    Unavailable(String),
    #[error("NER model: {0}")]
    Model(String),
    #[error("NER did not finish within the request's time budget")]
    TimedOut,
    #[error("the prompt holds more text than the {limit} bytes the model reads per request")]
    TooMuchText { limit: usize },
}

impl NerError {
    /// A stable name for the reason, for records and response headers.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unavailable(_) => "ner_unavailable",
            Self::Model(_) => "ner_failed",
            Self::TimedOut => "ner_timeout",
            Self::TooMuchText { .. } => "over_scan_limit",
        }
    }
}

/// Where the runtime and the model come from, and the pool's sizes.
#[derive(Debug, Clone)]
pub struct NerSettings {
    pub runtime: RuntimeSource,
    /// `--ner-model DIR`; the embedded model when `None`.
    pub model_dir: Option<PathBuf>,
    pub size: PoolSize,
}

/// Loads the runtime and the model and starts the pool; an error says what failed and
/// leaves recognizers as the only finders (`/readyz` reports it as degraded).
pub fn start(settings: &NerSettings) -> Result<(NerPool, String), NerError> {
    let (runtime, model) = load(settings)?;
    let describe = format!("{} on {}", model.describe, runtime.origin);
    let pool = NerPool::start(Arc::new(model), &runtime.environment, settings.size)?;
    Ok((pool, describe))
}

/// The runtime and the model the settings name.
pub fn load(settings: &NerSettings) -> Result<(&'static runtime::Runtime, NerModel), NerError> {
    let runtime = runtime::load(&settings.runtime).map_err(|e| NerError::Unavailable(e.into()))?;
    let model = match &settings.model_dir {
        Some(dir) => NerModel::from_dir(dir)?,
        None => NerModel::embedded()?,
    };
    Ok((runtime, model))
}
