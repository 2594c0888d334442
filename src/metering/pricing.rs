//! Model prices and what a request cost. Prices come from the built-in list of hosted
//! models, then airlock.yaml, then the admin API (each overriding the one before), looked
//! up by upstream and model. Costs are integer nano-dollars, so totals add up exactly.

use crate::api::openai::Usage;
use crate::config::{GpuHourConfig, ModelPriceConfig, PricingConfig};
use crate::store::StoreError;
use crate::tenancy::{Mirrored, admin_event, atomically};
use arc_swap::ArcSwap;
use rusqlite::{Connection, params};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Nano-dollars in a dollar.
pub const NANOS_PER_USD: i64 = 1_000_000_000;

/// Highest price accepted, USD per million tokens (a typo guard, far above any model's).
const MAX_USD_PER_MILLION: f64 = 100_000.0;

/// Longest model name priced.
const MAX_MODEL_NAME: usize = 256;

/// The built-in list prices.
const HOSTED_PRICES: &str = include_str!("../../assets/pricing/hosted.yaml");

/// One model's prices, in micro-dollars per million tokens (which is picodollars per
/// token): integers, so a cost is exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Price {
    pub input: u64,
    pub output: u64,
    pub cached_input: u64,
}

impl Price {
    /// From USD per million tokens; cached input costs as much as input unless given.
    pub fn from_usd_per_million(
        input: f64,
        output: f64,
        cached_input: Option<f64>,
    ) -> Result<Self, String> {
        let micros = |what: &str, usd: f64| {
            if !usd.is_finite() || !(0.0..=MAX_USD_PER_MILLION).contains(&usd) {
                return Err(format!(
                    "`{what}` must be between 0 and {MAX_USD_PER_MILLION} USD per million tokens"
                ));
            }
            Ok((usd * 1e6).round() as u64)
        };
        Ok(Self {
            input: micros("input", input)?,
            output: micros("output", output)?,
            cached_input: micros("cached_input", cached_input.unwrap_or(input))?,
        })
    }

    /// A GPU deployment's hourly cost spread over the tokens it serves in an hour.
    pub fn from_gpu_hour(gpu: &GpuHourConfig) -> Result<Self, String> {
        let hourly = gpu.usd_per_gpu_hour * f64::from(gpu.gpus);
        let per_million = |what: &str, tokens_per_second: f64| {
            if !tokens_per_second.is_finite() || tokens_per_second < 1.0 {
                return Err(format!("`{what}` must be at least 1"));
            }
            Ok(hourly / (tokens_per_second * 3600.0) * 1e6)
        };
        let input = per_million("input_tokens_per_second", gpu.input_tokens_per_second)?;
        let output = per_million("output_tokens_per_second", gpu.output_tokens_per_second)?;
        Self::from_usd_per_million(input, output, None)
    }

    /// From a configured price (USD per million tokens, or GPU hours).
    pub fn from_config(config: &ModelPriceConfig) -> Result<Self, String> {
        match (config, &config.gpu_hour) {
            (
                ModelPriceConfig {
                    input: None,
                    output: None,
                    cached_input: None,
                    ..
                },
                Some(gpu),
            ) => Self::from_gpu_hour(gpu),
            (
                ModelPriceConfig {
                    input: Some(input),
                    output: Some(output),
                    ..
                },
                None,
            ) => Self::from_usd_per_million(*input, *output, config.cached_input),
            _ => Err(
                "give `input` and `output` (and optionally `cached_input`), or `gpu_hour`".into(),
            ),
        }
    }

    /// What `usage` cost, in nano-dollars, rounded to the nearest.
    pub fn cost_nanos(&self, usage: &Usage) -> i64 {
        let cached = usage.cached_tokens.min(usage.prompt_tokens);
        let picos = u128::from(usage.prompt_tokens - cached) * u128::from(self.input)
            + u128::from(cached) * u128::from(self.cached_input)
            + u128::from(usage.completion_tokens) * u128::from(self.output);
        i64::try_from((picos + 500) / 1000).unwrap_or(i64::MAX)
    }
}

/// Nano-dollars as a decimal dollar amount with nine places (`0.000123450`).
pub fn usd(nanos: i64) -> String {
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    let whole = NANOS_PER_USD.unsigned_abs();
    format!("{sign}{}.{:09}", n / whole, n % whole)
}

/// Where a price came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PriceSource {
    Builtin,
    Config,
    Api,
}

/// Every price in force, by model key (`MODEL` or `UPSTREAM/MODEL`).
#[derive(Debug, Clone, Default)]
pub struct PriceBook {
    prices: HashMap<String, (Price, PriceSource)>,
    /// What comes before the first `/` of each key: the upstreams that may have prices
    /// of their own (so other lookups build no `UPSTREAM/MODEL` string).
    prefixes: std::collections::HashSet<String>,
}

impl PriceBook {
    /// The built-in list (when `builtin`) overlaid with the configuration's prices.
    pub fn from_config(config: &PricingConfig) -> Result<Self, String> {
        let mut book = Self::default();
        if config.builtin {
            let hosted: BTreeMap<String, ModelPriceConfig> = serde_saphyr::from_str(HOSTED_PRICES)
                .map_err(|e| format!("the built-in price list does not parse: {e}"))?;
            book.insert_all(hosted.iter(), PriceSource::Builtin)?;
        }
        let configured = config.models.iter().map(|(m, p)| (m, &p.value));
        book.insert_all(configured, PriceSource::Config)?;
        Ok(book)
    }

    fn insert_all<'c>(
        &mut self,
        models: impl Iterator<Item = (&'c String, &'c ModelPriceConfig)>,
        source: PriceSource,
    ) -> Result<(), String> {
        for (model, config) in models {
            let model = valid_model(model)?;
            let price =
                Price::from_config(config).map_err(|e| format!("pricing.models.{model}: {e}"))?;
            self.insert(model, price, source);
        }
        Ok(())
    }

    fn insert(&mut self, model: &str, price: Price, source: PriceSource) {
        if let Some((prefix, _)) = model.split_once('/') {
            self.prefixes.insert(prefix.to_string());
        }
        self.prices.insert(model.to_string(), (price, source));
    }

    /// The price of `model` served by `upstream`: the upstream's own price for it, else
    /// the model's, else that of the model's name without a date or `latest` suffix
    /// (`claude-sonnet-4-20250514` → `claude-sonnet-4`).
    pub fn lookup(&self, upstream: &str, model: &str) -> Option<Price> {
        if self.prefixes.contains(upstream)
            && let Some((price, _)) = self.prices.get(&format!("{upstream}/{model}"))
        {
            return Some(*price);
        }
        let mut name = model;
        loop {
            if let Some((price, _)) = self.prices.get(name) {
                return Some(*price);
            }
            let (stem, suffix) = name.rsplit_once('-')?;
            let dated = !suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_digit());
            if !(dated || suffix == "latest") {
                return None;
            }
            name = stem;
        }
    }

    /// Every price, by model key.
    pub fn entries(&self) -> BTreeMap<&str, (Price, PriceSource)> {
        self.prices
            .iter()
            .map(|(model, entry)| (model.as_str(), *entry))
            .collect()
    }
}

/// A model key the pricing table accepts.
pub fn valid_model(model: &str) -> Result<&str, String> {
    let model = model.trim();
    if model.is_empty() || model.len() > MAX_MODEL_NAME || model.chars().any(char::is_control) {
        return Err(format!(
            "a priced model name must be 1 to {MAX_MODEL_NAME} printable characters"
        ));
    }
    Ok(model)
}

/// The prices in force, kept in step with the `pricing` table by the state mirror.
pub struct Pricing {
    configured: PriceBook,
    book: ArcSwap<PriceBook>,
}

impl Pricing {
    pub fn new(config: &PricingConfig) -> Result<Self, String> {
        let configured = PriceBook::from_config(config)?;
        Ok(Self {
            book: ArcSwap::from_pointee(configured.clone()),
            configured,
        })
    }

    pub fn book(&self) -> Arc<PriceBook> {
        self.book.load_full()
    }

    /// What `usage` of `model` on `upstream` cost, if the model is priced.
    pub fn cost_nanos(&self, upstream: &str, model: &str, usage: &Usage) -> Option<i64> {
        self.book
            .load()
            .lookup(upstream, model)
            .map(|p| p.cost_nanos(usage))
    }
}

impl Mirrored for Pricing {
    fn counter(&self) -> &'static str {
        "pricing"
    }

    fn reload(&self, conn: &Connection) -> Result<(), StoreError> {
        let mut book = self.configured.clone();
        for (model, price) in PricingStore::new(conn).list()? {
            book.insert(&model, price, PriceSource::Api);
        }
        self.book.store(Arc::new(book));
        Ok(())
    }
}

/// Prices set through the admin API, in the state database.
pub struct PricingStore<'a> {
    conn: &'a Connection,
}

impl<'a> PricingStore<'a> {
    pub fn new(conn: &'a Connection) -> Self {
        Self { conn }
    }

    /// Sets a model's price (overriding the built-in and configured ones).
    pub fn set(&self, model: &str, price: Price, actor: &str) -> Result<(), StoreError> {
        let model = valid_model(model).map_err(StoreError::Invalid)?;
        let micros = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        atomically(self.conn, || {
            self.conn.execute(
                "INSERT INTO pricing (model, input, output, cached_input, updated_ms, actor)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (model) DO UPDATE SET input = ?2, output = ?3,
                     cached_input = ?4, updated_ms = ?5, actor = ?6",
                params![
                    model,
                    micros(price.input),
                    micros(price.output),
                    micros(price.cached_input),
                    crate::store::now_unix_ms(),
                    actor
                ],
            )?;
            let detail = format!(
                "input={} output={} cached_input={} (micro-USD per million tokens)",
                price.input, price.output, price.cached_input
            );
            admin_event(self.conn, actor, "pricing.set", model, None, Some(&detail))
        })
    }

    /// Removes a model's API-set price (the configured or built-in one applies again).
    pub fn remove(&self, model: &str, actor: &str) -> Result<bool, StoreError> {
        atomically(self.conn, || {
            let removed = self
                .conn
                .execute("DELETE FROM pricing WHERE model = ?1", [model])?;
            if removed > 0 {
                admin_event(self.conn, actor, "pricing.remove", model, None, None)?;
            }
            Ok(removed > 0)
        })
    }

    /// Every API-set price.
    pub fn list(&self) -> Result<Vec<(String, Price)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT model, input, output, cached_input FROM pricing ORDER BY model")?;
        let micros = |v: i64| u64::try_from(v).unwrap_or(0);
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get(0)?,
                Price {
                    input: micros(r.get(1)?),
                    output: micros(r.get(2)?),
                    cached_input: micros(r.get(3)?),
                },
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(prompt: u64, cached: u64, completion: u64) -> Usage {
        Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            cached_tokens: cached,
        }
    }

    #[test]
    fn costs_are_exact_nano_dollars() {
        // gpt-4o-mini: $0.15 in, $0.075 cached, $0.60 out per million.
        let price = Price::from_usd_per_million(0.15, 0.60, Some(0.075)).unwrap();
        assert_eq!(price.input, 150_000);
        // 1000 prompt (400 cached) + 200 completion:
        // 600×150000 + 400×75000 + 200×600000 = 240_000_000 picodollars = 240_000 nanos.
        assert_eq!(price.cost_nanos(&usage(1000, 400, 200)), 240_000);
        assert_eq!(usd(240_000), "0.000240000");
        assert_eq!(usd(12 * NANOS_PER_USD + 5), "12.000000005");
        // A cached count above the prompt's is capped.
        assert_eq!(
            price.cost_nanos(&usage(10, 50, 0)),
            price.cost_nanos(&usage(10, 10, 0))
        );
        assert_eq!(price.cost_nanos(&usage(u64::MAX, 0, u64::MAX)), i64::MAX);
        assert!(Price::from_usd_per_million(-1.0, 1.0, None).is_err());
        assert!(Price::from_usd_per_million(f64::NAN, 1.0, None).is_err());
    }

    #[test]
    fn gpu_hours_are_spread_over_throughput() {
        // 4 GPUs at $2.50/h = $10/h; 10,000 prompt tokens/s = 36M/h → $0.2778 per million.
        let price = Price::from_gpu_hour(&GpuHourConfig {
            usd_per_gpu_hour: 2.5,
            gpus: 4,
            input_tokens_per_second: 10_000.0,
            output_tokens_per_second: 1_000.0,
        })
        .unwrap();
        assert_eq!(price.input, 277_778);
        assert_eq!(price.output, 2_777_778);
    }

    #[test]
    fn lookup_prefers_the_upstreams_price_then_the_model_then_its_undated_name() {
        let config: PricingConfig = serde_saphyr::from_str(
            "models:\n  gpt-4o: {input: 1, output: 2}\n  gpu-a/llama: {gpu_hour: {usd_per_gpu_hour: 3.6, input_tokens_per_second: 1000, output_tokens_per_second: 100}}\n  llama: {input: 0.5, output: 0.5}\n",
        )
        .unwrap();
        let book = PriceBook::from_config(&config).unwrap();
        assert_eq!(book.lookup("openai", "gpt-4o").unwrap().input, 1_000_000);
        assert_eq!(
            book.lookup("openai", "gpt-4o-2024-08-06").unwrap().input,
            1_000_000
        );
        assert_eq!(book.lookup("openai", "gpt-4o-mini").unwrap().input, 150_000);
        assert_eq!(
            book.lookup("anthropic", "claude-sonnet-4-20250514")
                .unwrap()
                .output,
            15_000_000
        );
        assert_eq!(book.lookup("gpu-a", "llama").unwrap().input, 1_000_000);
        assert_eq!(book.lookup("gpu-b", "llama").unwrap().input, 500_000);
        // Only date and `latest` suffixes fall back.
        assert_eq!(book.lookup("openai", "gpt-4o-audio-preview"), None);
        assert_eq!(book.lookup("x", "unknown"), None);

        let without: PricingConfig = serde_saphyr::from_str("builtin: false").unwrap();
        assert_eq!(
            PriceBook::from_config(&without)
                .unwrap()
                .lookup("openai", "gpt-4o"),
            None
        );
        let bad: PricingConfig = serde_saphyr::from_str("models:\n  m: {input: 1}\n").unwrap();
        assert!(PriceBook::from_config(&bad).is_err());
    }
}
