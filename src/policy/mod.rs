//! Policy as code: rules evaluated on every request and response passing the gateway.

pub mod guardrails;
