//! `airlock policy bench`: evaluation latency of a policy on a typical request, for the
//! benchmark harness (a synthetic 200-rule policy unless a file is given).

use super::compile::Policy;
use super::eval::evaluate;
use super::facts::Facts;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Instant;

/// Latency percentiles of one run, in microseconds.
#[derive(Debug, Serialize)]
pub struct BenchReport {
    pub rules: usize,
    pub iterations: usize,
    pub prompt_bytes: usize,
    pub matched_rules: usize,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
}

/// A policy of `rules` rules shaped like a real one: identity and model conditions,
/// token ranges, keyword lists, regexes, time windows, headers, built-in detectors and
/// some CEL, most of which do not match a typical request.
pub fn synthetic_policy(rules: usize) -> String {
    let mut yaml = String::from("policy: bench\nlists:\n  codenames: [");
    for i in 0..500 {
        let _ = write!(yaml, "{}codename {i}", if i > 0 { ", " } else { "" });
    }
    yaml.push_str("]\nrules:\n");
    for i in 0..rules {
        let _ = writeln!(yaml, "  - id: rule-{i}");
        let body = match i % 10 {
            0 => format!("    match: {{users: [user-{i}, \"contractor-*\"]}}\n    action: deny\n"),
            1 => format!(
                "    match: {{tenants: [tenant-{i}], models: [\"gpt-*\"]}}\n    action: downgrade\n    model: small\n"
            ),
            2 => format!(
                "    match: {{prompt_tokens: {{gt: {}}}}}\n    action: tag\n    tags: [long-{i}]\n",
                5000 + i
            ),
            3 => format!(
                "    match: {{content: {{keyword_lists: [codenames], keywords: [marker-{i}]}}}}\n    action: deny\n"
            ),
            4 => format!(
                "    match: {{content: {{regex: [\"\\\\bticket-{i}-[0-9]{{6}}\\\\b\"]}}}}\n    action: deny\n"
            ),
            5 => format!(
                "    match: {{time: {{days: [sat, sun], hours: \"00:00-06:00\"}}, keys: [key-{i}]}}\n    action: deny\n"
            ),
            6 => format!(
                "    match: {{headers: {{x-team: [finance, team-{i}]}}}}\n    action: tag\n    tags: [team-{i}]\n"
            ),
            7 => format!(
                "    match: {{content: {{secrets: true, injection: true, keywords: [marker-{i}]}}}}\n    action: deny\n"
            ),
            8 => format!(
                "    when: 'request.tokens.prompt > {} && request.model.startsWith(\"gpt\")'\n    action: tag\n    tags: [cel-{i}]\n",
                100_000 + i
            ),
            _ => format!(
                "    match: {{data_classes: [CREDIT_CARD], not: {{models: [secure-{i}]}}}}\n    action: deny\n"
            ),
        };
        yaml.push_str(&body);
    }
    yaml
}

/// A typical chat request: about 2 KB of prompt, a named user, a few headers.
pub fn typical_request() -> Facts {
    let paragraph = "Please summarise the attached quarterly report for the board. Revenue grew in \
        the northern region while costs in logistics rose; highlight the three largest risks, \
        the hiring plan and any open questions from the audit committee. ";
    let mut headers = BTreeMap::new();
    headers.insert("x-team".to_string(), "finance".to_string());
    headers.insert("content-type".to_string(), "application/json".to_string());
    headers.insert("user-agent".to_string(), "OpenAI/Python 1.99".to_string());
    Facts {
        tenant: "acme".into(),
        user: Some("alice@acme.example".into()),
        key: "key_0123456789abcdef".into(),
        model: "llama-70b".into(),
        provider: Some("vllm".into()),
        prompt_tokens: 520,
        completion_tokens: 512,
        headers,
        content: paragraph.repeat(8),
        ..Facts::default()
    }
}

/// Evaluates `policy` on `facts` `iterations` times (after a warm-up) and reports the
/// latency percentiles.
pub fn run(policy: &Policy, facts: &Facts, iterations: usize) -> BenchReport {
    let iterations = iterations.max(1);
    let matched_rules = evaluate(policy, facts).matched.len();
    for _ in 0..iterations.min(1000) {
        std::hint::black_box(evaluate(policy, facts));
    }
    let mut micros: Vec<f64> = (0..iterations)
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(evaluate(policy, std::hint::black_box(facts)));
            start.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    micros.sort_by(f64::total_cmp);
    let at = |q: f64| crate::telemetry::quantile::quantile(&micros, q);
    BenchReport {
        rules: policy.rules.len(),
        iterations,
        prompt_bytes: facts.content.len(),
        matched_rules,
        p50_us: at(0.50),
        p99_us: at(0.99),
        p999_us: at(0.999),
        max_us: micros[micros.len() - 1],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_synthetic_policy_compiles_lints_clean_and_runs() {
        let yaml = synthetic_policy(200);
        let problems = super::super::lint::lint(yaml.as_bytes());
        assert!(!super::super::lint::has_errors(&problems), "{problems:?}");
        let (policy, _) = super::super::load(yaml.as_bytes()).unwrap();
        assert_eq!(policy.rules.len(), 200);
        let report = run(&policy, &typical_request(), 10);
        assert_eq!(report.iterations, 10);
        // The team header tags (one rule in ten); nothing else matches.
        assert_eq!(report.matched_rules, 20);
    }
}
