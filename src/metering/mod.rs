//! Metering: what requests cost (prices, per-request cost), rate limits and budgets that
//! hold back, stop or downgrade traffic, and what was spent, by whom (chargeback).

pub mod alerts;
pub mod budget;
pub mod calendar;
pub mod chargeback;
pub mod pricing;
mod quota_rows;
pub mod rate_limits;

pub use pricing::{Price, PriceBook, PriceSource, Pricing, PricingStore, usd};
