//! The `pricing:` and `budgets:` sections of airlock.yaml: what each model's tokens cost
//! (for per-request cost, budgets and chargeback), and how budgets estimate requests.

use serde::Deserialize;
use serde_saphyr::Spanned;
use std::collections::BTreeMap;

/// Model prices, on top of the built-in list prices of common hosted models.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PricingConfig {
    /// Start from the built-in list prices of common hosted models (assets/pricing).
    pub builtin: bool,
    /// Prices by model: the upstream's model name (`gpt-4o-mini`), or `UPSTREAM/MODEL`
    /// for one upstream's copy of a model (an on-prem GPU server of its own cost).
    pub models: BTreeMap<String, Spanned<ModelPriceConfig>>,
}

impl Default for PricingConfig {
    fn default() -> Self {
        Self {
            builtin: true,
            models: BTreeMap::new(),
        }
    }
}

/// One model's price: USD per million tokens, or a GPU server's hourly cost amortised
/// over the tokens it serves.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPriceConfig {
    /// USD per million prompt tokens.
    pub input: Option<f64>,
    /// USD per million completion tokens.
    pub output: Option<f64>,
    /// USD per million prompt tokens served from the prompt cache; `input` when unset.
    pub cached_input: Option<f64>,
    /// An on-prem model's cost: its servers' hourly cost over its throughput.
    pub gpu_hour: Option<GpuHourConfig>,
}

/// What serving a model on-prem costs per hour, and how many tokens it serves in that hour.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuHourConfig {
    /// USD per GPU-hour (hardware amortisation, power, hosting).
    pub usd_per_gpu_hour: f64,
    /// GPUs the model occupies.
    #[serde(default = "one")]
    pub gpus: u32,
    /// Prompt tokens per second the deployment sustains (prefill).
    pub input_tokens_per_second: f64,
    /// Completion tokens per second it sustains (decode, all batched requests together).
    pub output_tokens_per_second: f64,
}

fn one() -> u32 {
    1
}

/// How budgets treat requests (the budgets themselves are set through the admin API).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BudgetsConfig {
    /// Completion tokens a request that names no `max_tokens` may cost at most, for the
    /// reservation made before it goes upstream.
    pub default_max_tokens: u64,
}

impl Default for BudgetsConfig {
    fn default() -> Self {
        Self {
            default_max_tokens: 4096,
        }
    }
}
