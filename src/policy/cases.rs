//! Policy unit tests: YAML cases (a request's facts and the decision expected) run
//! against a policy, for `airlock policy test` and the packs' tests in CI.

use super::compile::{Policy, Problem, Severity};
use super::eval::{Decision, Verdict, evaluate};
use super::facts::Facts;
use serde::{Deserialize, Serialize};

/// A test file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseFile {
    /// The policy under test, relative to this file (the command line may name it instead).
    #[serde(default)]
    pub policy: Option<String>,
    pub cases: Vec<Case>,
}

/// One case.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    pub request: Facts,
    pub expect: Expect,
}

/// What the case expects; only what is given is checked.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    pub decision: Verdict,
    /// The deciding rule's id, or `default` when no rule decides.
    #[serde(default)]
    pub rule: Option<String>,
    /// Exactly these rules matched, in evaluation order.
    #[serde(default)]
    pub matched: Option<Vec<String>>,
    /// At least these rules matched.
    #[serde(default)]
    pub includes: Vec<String>,
    /// Tags the decision carries (at least).
    #[serde(default)]
    pub tags: Vec<String>,
    /// The model a route/downgrade rule chose (`none`: no substitution).
    #[serde(default)]
    pub model: Option<String>,
    /// Text the caller's message contains.
    #[serde(default)]
    pub message: Option<String>,
}

/// The result of one case.
#[derive(Debug, Serialize)]
pub struct Outcome {
    pub name: String,
    pub passed: bool,
    /// What differed from the expectation.
    pub failures: Vec<String>,
}

/// Parses a test file.
pub fn parse(bytes: &[u8]) -> Result<CaseFile, Problem> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| Problem::new(0, 0, Severity::Error, "the file is not valid UTF-8"))?;
    super::compile::from_yaml(text)
}

/// Runs every case against `policy`.
pub fn run(policy: &Policy, file: &CaseFile) -> Vec<Outcome> {
    file.cases
        .iter()
        .map(|case| {
            let decision = evaluate(policy, &case.request);
            let failures = differences(&case.expect, &decision);
            Outcome {
                name: case.name.clone(),
                passed: failures.is_empty(),
                failures,
            }
        })
        .collect()
}

fn differences(expect: &Expect, got: &Decision) -> Vec<String> {
    let mut failures = Vec::new();
    if expect.decision != got.verdict {
        failures.push(format!(
            "decision: expected {}, got {}",
            expect.decision.name(),
            got.verdict.name()
        ));
    }
    let decided_by = got.decided_by.as_deref().unwrap_or("default");
    if let Some(rule) = &expect.rule
        && rule != decided_by
    {
        failures.push(format!(
            "deciding rule: expected `{rule}`, got `{decided_by}`"
        ));
    }
    let matched = got.rule_ids();
    if let Some(expected) = &expect.matched
        && *expected != matched
    {
        failures.push(format!(
            "matched rules: expected {expected:?}, got {matched:?}"
        ));
    }
    for rule in &expect.includes {
        if !matched.contains(rule) {
            failures.push(format!(
                "rule `{rule}` did not match (matched: {matched:?})"
            ));
        }
    }
    for tag in &expect.tags {
        if !got.tags.iter().any(|t| **t == **tag) {
            failures.push(format!("tag `{tag}` missing (tags: {:?})", got.tags));
        }
    }
    if let Some(model) = &expect.model {
        let chosen = got.reroute.as_ref().map_or("none", |r| &*r.model);
        if model != chosen {
            failures.push(format!("model: expected `{model}`, got `{chosen}`"));
        }
    }
    if let Some(text) = &expect.message {
        let message = got.message.as_deref().unwrap_or("");
        if !message.contains(text.as_str()) {
            failures.push(format!(
                "message: expected it to contain {text:?}, got {message:?}"
            ));
        }
    }
    for (rule, error) in &got.errors {
        failures.push(format!("rule `{rule}`: `when:` failed: {error}"));
    }
    failures
}
