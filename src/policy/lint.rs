//! `airlock policy lint`: every problem of a policy file, including rules that can never
//! take effect because an earlier rule always decides first.

use super::compile::{self, Policy, Problem, Rule, Severity};
use super::source::Resolution;

/// Every problem in `bytes`, in file order.
pub fn lint(bytes: &[u8]) -> Vec<Problem> {
    let mut problems = match compile::load(bytes) {
        Ok((policy, mut problems)) => {
            problems.extend(reachability(&policy));
            problems
        }
        Err(problems) => problems,
    };
    problems.sort_by_key(|p| (p.line, p.column));
    problems
}

/// Problems only the instance can find: `route` and `downgrade` rules that name a model
/// `known` does not serve (the gateway would refuse those requests with 503).
pub fn unknown_models(bytes: &[u8], known: &[String]) -> Vec<Problem> {
    let Ok((policy, _)) = compile::load(bytes) else {
        return Vec::new();
    };
    policy
        .rules
        .iter()
        .filter_map(|rule| match &rule.action {
            compile::Action::Route(model) | compile::Action::Downgrade(model)
                if !known.iter().any(|k| **k == **model) =>
            {
                let names: Vec<&str> = known.iter().map(String::as_str).collect();
                let hint = match compile::closest(model, &names) {
                    Some(c) => format!("did you mean `{c}`?"),
                    None => format!("configured models: {}", names.join(", ")),
                };
                Some(
                    Problem::new(
                        rule.line,
                        rule.column,
                        Severity::Error,
                        format!(
                            "rule `{}` sends requests to model `{model}`, which this instance does not serve",
                            rule.id
                        ),
                    )
                    .hint(hint),
                )
            }
            _ => None,
        })
        .collect()
}

/// Whether any problem is an error.
pub fn has_errors(problems: &[Problem]) -> bool {
    problems.iter().any(|p| p.severity == Severity::Error)
}

/// Rules that never take effect: under `first_match`, those an earlier deciding rule
/// (without `when:`) always matches first; under `deny_overrides`, allow and
/// require_approval rules that an unconditional deny always beats.
pub fn reachability(policy: &Policy) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (j, later) in policy.rules.iter().enumerate() {
        let blocker = policy.rules[..j].iter().find(|earlier| {
            let deciding = match policy.resolution {
                Resolution::FirstMatch => earlier.action.decides(),
                Resolution::DenyOverrides => {
                    matches!(earlier.action, compile::Action::Deny(_))
                        && matches!(
                            later.action,
                            compile::Action::Allow | compile::Action::RequireApproval(_)
                        )
                }
            };
            deciding
                && earlier.when.is_none()
                && phases_cover(earlier, later)
                && earlier.conditions.cover(&later.conditions)
        });
        if let Some(earlier) = blocker {
            let problem = if earlier.conditions.is_empty() {
                Problem::new(
                    later.line,
                    later.column,
                    Severity::Error,
                    format!(
                        "rule `{}` is unreachable: rule `{}` (line {}) matches every request before it",
                        later.id, earlier.id, earlier.line
                    ),
                )
                .hint(format!(
                    "move `{}` above `{}`, give it a higher `priority`, or narrow `{}`",
                    later.id, earlier.id, earlier.id
                ))
            } else {
                Problem::new(
                    later.line,
                    later.column,
                    Severity::Error,
                    format!(
                        "rule `{}` is shadowed by rule `{}` (line {}): every request it matches, `{}` matches first",
                        later.id, earlier.id, earlier.line, earlier.id
                    ),
                )
                .hint(format!(
                    "put the narrower rule `{}` first (or give it a higher `priority`)",
                    later.id
                ))
            };
            problems.push(problem);
        }
    }
    problems
}

fn phases_cover(earlier: &Rule, later: &Rule) -> bool {
    (!later.request || earlier.request) && (!later.response || earlier.response)
}
