//! Evaluating a compiled policy against one request's (or response's) facts: which rules
//! match, which decides, and the effects the gateway applies.

use super::compile::{Action, Policy, RateLimit};
use super::facts::{Facts, Phase};
use super::matchers::Scan;
use super::source::{DefaultDecision, LogLevel, Resolution};
use std::sync::Arc;

/// The outcome for the caller.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Allow,
    RequireApproval,
    Deny,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::RequireApproval => "require_approval",
            Self::Deny => "deny",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Allow, Self::RequireApproval, Self::Deny]
            .into_iter()
            .find(|v| v.name() == name)
    }
}

/// Which data classes an effect applies to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Classes {
    #[default]
    None,
    /// Every class found.
    All,
    Some(Vec<String>),
}

impl Classes {
    fn add(&mut self, named: &[String]) {
        *self = match (std::mem::take(self), named.is_empty()) {
            (Self::All, _) | (_, true) => Self::All,
            (Self::None, false) => Self::Some(named.to_vec()),
            (Self::Some(mut have), false) => {
                for class in named {
                    if !have.contains(class) {
                        have.push(class.clone());
                    }
                }
                Self::Some(have)
            }
        };
    }
}

/// A model substitution chosen by a `route` or `downgrade` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reroute {
    pub model: Arc<str>,
    pub downgrade: bool,
    pub rule: Arc<str>,
}

/// A rate limit a matching rule imposes.
#[derive(Debug, Clone)]
pub struct Limit {
    pub rule: Arc<str>,
    pub limit: RateLimit,
}

/// What a policy decided, and why.
#[derive(Debug, Clone)]
pub struct Decision {
    pub verdict: Verdict,
    /// The rule that decided (none: the policy's default).
    pub decided_by: Option<Arc<str>>,
    /// Shown to the caller when the verdict is not allow.
    pub message: Option<Arc<str>>,
    /// Every rule that matched and took effect, in evaluation order.
    pub matched: Vec<Arc<str>>,
    pub reroute: Option<Reroute>,
    pub redact: Classes,
    pub tokenise: Classes,
    pub limits: Vec<Limit>,
    pub tags: Vec<Arc<str>>,
    pub log: Option<LogLevel>,
    /// Rules whose `when:` failed to evaluate (counted as not matching), with why.
    pub errors: Vec<(Arc<str>, String)>,
}

impl Decision {
    fn new() -> Self {
        Self {
            verdict: Verdict::Allow,
            decided_by: None,
            message: None,
            matched: Vec::new(),
            reroute: None,
            redact: Classes::None,
            tokenise: Classes::None,
            limits: Vec::new(),
            tags: Vec::new(),
            log: None,
            errors: Vec::new(),
        }
    }

    /// The matched rule ids as plain strings (for records).
    pub fn rule_ids(&self) -> Vec<String> {
        self.matched.iter().map(|r| r.to_string()).collect()
    }
}

/// Evaluates `policy` for `facts` (in `facts.phase`).
pub fn evaluate(policy: &Policy, facts: &Facts) -> Decision {
    let mut decision = Decision::new();
    let scan = Scan::new(&policy.content);
    let bindings = std::cell::OnceCell::new();
    let mut decider: Option<(Verdict, Arc<str>, Option<Arc<str>>)> = None;
    for rule in &policy.rules {
        let in_phase = match facts.phase {
            Phase::Request => rule.request,
            Phase::Response => rule.response,
        };
        if !in_phase || !rule.conditions.hold(facts, &scan) {
            continue;
        }
        if let Some(when) = &rule.when {
            let held = match bindings.get_or_init(|| super::cel::bindings(facts)) {
                Ok(context) => when.holds(context),
                Err(e) => Err(e.clone()),
            };
            match held {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    decision.errors.push((rule.id.clone(), e));
                    continue;
                }
            }
        }
        let verdict = match &rule.action {
            Action::Allow => Some((Verdict::Allow, None)),
            Action::Deny(message) => Some((Verdict::Deny, Some(message.clone()))),
            Action::RequireApproval(message) => {
                Some((Verdict::RequireApproval, Some(message.clone())))
            }
            effect => {
                apply(&mut decision, effect, &rule.id);
                None
            }
        };
        decision.matched.push(rule.id.clone());
        if let Some((verdict, message)) = verdict {
            if decider.as_ref().is_none_or(|(v, _, _)| verdict > *v) {
                decider = Some((verdict, rule.id.clone(), message));
            }
            if policy.resolution == Resolution::FirstMatch || verdict == Verdict::Deny {
                break;
            }
        }
    }
    match decider {
        Some((verdict, rule, message)) => {
            decision.verdict = verdict;
            decision.decided_by = Some(rule);
            decision.message = message;
        }
        None if policy.default == DefaultDecision::Deny => {
            decision.verdict = Verdict::Deny;
            decision.message = Some(policy.default_message.clone());
        }
        None => {}
    }
    decision
}

/// Adds an effect rule's effect to the decision.
fn apply(decision: &mut Decision, action: &Action, rule: &Arc<str>) {
    match action {
        Action::Redact(classes) => decision.redact.add(classes),
        Action::Tokenise(classes) => decision.tokenise.add(classes),
        Action::Route(model) | Action::Downgrade(model) => {
            // The first substitution in evaluation order wins.
            decision.reroute.get_or_insert_with(|| Reroute {
                model: model.clone(),
                downgrade: matches!(action, Action::Downgrade(_)),
                rule: rule.clone(),
            });
        }
        Action::RateLimit(limit) => decision.limits.push(Limit {
            rule: rule.clone(),
            limit: *limit,
        }),
        Action::Tag(tags) => {
            for tag in tags {
                if !decision.tags.contains(tag) {
                    decision.tags.push(tag.clone());
                }
            }
        }
        Action::Log(level) => {
            // The most restrictive capture wins.
            if decision.log != Some(LogLevel::Metadata) {
                decision.log = Some(*level);
            }
        }
        Action::Allow | Action::Deny(_) | Action::RequireApproval(_) => {}
    }
}
