//! Metering: what requests cost (prices, per-request cost) and what was spent, by whom
//! (chargeback).

pub mod calendar;
pub mod chargeback;
pub mod pricing;

pub use pricing::{Price, PriceBook, PriceSource, Pricing, PricingStore, usd};
