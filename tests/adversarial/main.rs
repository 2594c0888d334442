//! The standing adversarial suite: generated hostile input for every parser that reads
//! untrusted bytes (each wire format's JSON bodies, upstream SSE streams, policy YAML and
//! its test cases, raw HTTP, admin API bodies, audit search queries), each target
//! time-boxed by `AIRLOCK_FUZZ_SECS` (3 s in CI; run longer on demand:
//! `AIRLOCK_FUZZ_SECS=600 cargo test --release --test adversarial`).
//! The attacks of the security review have their tests beside the features they break;
//! docs/security.md lists them all.

mod admin_api;
#[path = "../common/mod.rs"]
mod common;
mod fuzz;
mod live_endpoints;
mod policy_yaml;
mod upstream_streams;
mod wire_formats;
