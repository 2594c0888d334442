//! Upstream adapters, one per wire format, and SSE parsing and re-framing.

pub mod openai_compat;
pub mod sse;
pub mod sse_relay;
