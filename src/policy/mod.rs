//! Policy as code: a YAML DSL of ordered rules (declarative matchers plus CEL), compiled
//! once and evaluated per request and response; lint, unit tests, versions and dry runs.

pub mod active;
pub mod bench;
pub mod cases;
pub mod cel;
pub mod compile;
pub mod content_index;
pub mod diff;
pub mod dry_run;
pub mod eval;
pub mod facts;
pub mod guardrails;
pub mod limiter;
pub mod lint;
pub mod matchers;
pub mod source;
pub mod time;
pub mod versions;

#[cfg(test)]
mod tests;

pub use compile::{Policy, Problem, Severity, load};

/// The `baseline` pack (`policies/baseline/policy.yaml`), which `airlock demo` applies.
pub const BASELINE_PACK: &str = include_str!("../../policies/baseline/policy.yaml");
pub use eval::{Decision, Verdict, evaluate};
pub use facts::{Facts, Phase};
