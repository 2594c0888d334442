//! Airlock: a self-hosted governance gateway for LLM and MCP traffic.
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod admin;
pub mod api;
pub mod audit;
pub mod cli;
pub mod config;
pub mod evidence;
pub mod metering;
pub mod mock_upstream;
pub mod pii;
pub mod policy;
pub mod providers;
pub mod random;
pub mod routing;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod tenancy;
