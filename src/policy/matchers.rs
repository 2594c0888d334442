//! Compiled conditions: name globs, numeric ranges, content detectors, MCP argument
//! paths — built once per policy, tested per request without re-parsing.

use super::content_index::{ContentIndex, GroupId};
use super::facts::{Facts, json_path, value_text};
use super::guardrails::{self, SecretFinding};
use super::source::{Bounds, EndpointKind, RangeSource};
use super::time::TimeWindow;
use regex::{RegexSet, RegexSetBuilder};
use std::cell::OnceCell;

/// Largest compiled size of one rule's regular expressions.
const REGEX_SIZE_LIMIT: usize = 2 << 20;

/// A list of names with `*` globs: matches when any entry does.
#[derive(Debug, Clone)]
pub struct Names {
    exact: Vec<Box<str>>,
    globs: Option<RegexSet>,
    any: bool,
}

impl Names {
    pub fn compile<'a>(patterns: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut exact = Vec::new();
        let mut globs = Vec::new();
        let mut any = false;
        for pattern in patterns {
            if pattern == "*" {
                any = true;
            } else if pattern.contains('*') {
                let parts: Vec<String> = pattern.split('*').map(regex::escape).collect();
                globs.push(format!("^{}$", parts.join(".*")));
            } else {
                exact.push(pattern.into());
            }
        }
        let globs = if globs.is_empty() {
            None
        } else {
            Some(
                RegexSetBuilder::new(&globs)
                    .size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .map_err(|e| e.to_string())?,
            )
        };
        Ok(Self { exact, globs, any })
    }

    pub fn matches(&self, value: &str) -> bool {
        self.any
            || self.exact.iter().any(|e| **e == *value)
            || self.globs.as_ref().is_some_and(|g| g.is_match(value))
    }

    /// Whether every name this list can match, `other` matches too (exact names only;
    /// a glob counts as covered only when `other` matches everything).
    pub fn covered_by(&self, other: &Names) -> bool {
        other.any
            || (!self.any && self.globs.is_none() && self.exact.iter().all(|e| other.matches(e)))
    }
}

/// A numeric range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    low: Option<(f64, bool)>,
    high: Option<(f64, bool)>,
}

impl Range {
    pub fn compile(source: &RangeSource) -> Result<Self, String> {
        let b = match *source {
            RangeSource::AtLeast(n) => Bounds {
                gte: Some(n),
                ..Bounds::default()
            },
            RangeSource::Bounds(b) => b,
        };
        if b.gt.is_some() && b.gte.is_some() || b.lt.is_some() && b.lte.is_some() {
            return Err("give at most one lower bound (gt/gte) and one upper (lt/lte)".into());
        }
        let low = b.gt.map(|v| (v, false)).or(b.gte.map(|v| (v, true)));
        let high = b.lt.map(|v| (v, false)).or(b.lte.map(|v| (v, true)));
        if low.is_none() && high.is_none() {
            return Err("give a bound: gt, gte, lt or lte".into());
        }
        if [low, high].iter().flatten().any(|(v, _)| !v.is_finite()) {
            return Err("bounds must be finite numbers".into());
        }
        if let (Some((l, _)), Some((h, _))) = (low, high)
            && l > h
        {
            return Err(format!("the range is empty: lower bound {l} > upper {h}"));
        }
        Ok(Self { low, high })
    }

    pub fn contains(&self, x: f64) -> bool {
        self.low
            .is_none_or(|(l, inclusive)| x > l || inclusive && x == l)
            && self
                .high
                .is_none_or(|(h, inclusive)| x < h || inclusive && x == h)
    }

    /// Whether every value in `self` is in `other`.
    pub fn within(&self, other: &Range) -> bool {
        let low_ok = match (other.low, self.low) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some((o, oi)), Some((s, si))) => s > o || s == o && (oi || !si),
        };
        let high_ok = match (other.high, self.high) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some((o, oi)), Some((s, si))) => s < o || s == o && (oi || !si),
        };
        low_ok && high_ok
    }
}

/// Which detectors of a family a rule asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Family {
    All,
    Named(Vec<&'static str>),
}

impl Family {
    fn accepts(&self, name: &str) -> bool {
        match self {
            Self::All => true,
            Self::Named(names) => names.contains(&name),
        }
    }
}

/// Content conditions: any hit matches.
#[derive(Debug)]
pub struct Content {
    /// The rule's terms and lists, as a group of the policy's keyword index.
    pub keywords: Option<GroupId>,
    /// The rule's regular expressions, as a group of the content index.
    pub regex: Option<GroupId>,
    pub secrets: Option<Family>,
    pub injection: Option<Family>,
    /// Built-in topics, as groups of the keyword index.
    pub topics: Vec<GroupId>,
    /// As written, for lint's comparisons.
    pub written: String,
}

impl Content {
    fn hits(&self, text: &str, scan: &Scan) -> bool {
        if self.keywords.is_some_and(|g| scan.keyword_group(text, g)) {
            return true;
        }
        if self.regex.is_some_and(|g| scan.pattern_group(text, g)) {
            return true;
        }
        if let Some(family) = &self.secrets
            && scan.secrets(text).iter().any(|f| family.accepts(f.kind))
        {
            return true;
        }
        if let Some(family) = &self.injection
            && scan.injection(text).is_some_and(|h| family.accepts(h))
        {
            return true;
        }
        self.topics.iter().any(|g| scan.keyword_group(text, *g))
    }
}

/// Scans of one text, each run at most once per evaluation whatever the number of rules
/// that ask: the policy's keywords, secrets, injection heuristics.
pub struct Scan<'p> {
    index: &'p ContentIndex,
    keywords: OnceCell<Vec<bool>>,
    patterns: OnceCell<Vec<bool>>,
    secrets: OnceCell<Vec<SecretFinding>>,
    injection: OnceCell<Option<&'static str>>,
}

impl<'p> Scan<'p> {
    pub fn new(index: &'p ContentIndex) -> Self {
        Self {
            index,
            keywords: OnceCell::new(),
            patterns: OnceCell::new(),
            secrets: OnceCell::new(),
            injection: OnceCell::new(),
        }
    }

    fn keyword_group(&self, text: &str, group: GroupId) -> bool {
        self.keywords
            .get_or_init(|| self.index.scan_terms(text))
            .get(group)
            .copied()
            .unwrap_or(false)
    }

    fn pattern_group(&self, text: &str, group: GroupId) -> bool {
        self.patterns
            .get_or_init(|| self.index.scan_patterns(text))
            .get(group)
            .copied()
            .unwrap_or(false)
    }

    fn secrets(&self, text: &str) -> &[SecretFinding] {
        self.secrets.get_or_init(|| guardrails::find_secrets(text))
    }

    fn injection(&self, text: &str) -> Option<&'static str> {
        *self
            .injection
            .get_or_init(|| guardrails::detect_injection(text).map(|s| s.heuristic))
    }
}

/// MCP conditions.
#[derive(Debug)]
pub struct Mcp {
    pub servers: Option<Names>,
    pub tools: Option<Names>,
    pub arguments: Vec<(String, Names)>,
}

/// Every declarative condition of a rule; absent ones hold.
#[derive(Debug, Default)]
pub struct Conditions {
    pub tenants: Option<Names>,
    pub teams: Option<Names>,
    pub users: Option<Names>,
    pub keys: Option<Names>,
    pub endpoint: Option<EndpointKind>,
    pub models: Option<Names>,
    pub providers: Option<Names>,
    pub data_classes: Vec<String>,
    pub data_class_counts: Vec<(String, Range)>,
    pub prompt_tokens: Option<Range>,
    pub completion_tokens: Option<Range>,
    pub cost_usd: Option<Range>,
    pub time: Option<TimeWindow>,
    /// As written, for lint's comparisons.
    pub time_written: Option<String>,
    pub headers: Vec<(String, Names)>,
    pub content: Option<Content>,
    pub mcp: Option<Mcp>,
    pub not: Option<Box<Conditions>>,
}

fn names_hold(names: &Option<Names>, value: Option<&str>) -> bool {
    names
        .as_ref()
        .is_none_or(|n| value.is_some_and(|v| n.matches(v)))
}

impl Conditions {
    /// Whether every condition holds; cheap ones are tested first.
    pub fn hold(&self, facts: &Facts, scan: &Scan) -> bool {
        self.endpoint.is_none_or(|e| e == facts.endpoint)
            && names_hold(&self.tenants, Some(&facts.tenant))
            && names_hold(&self.models, Some(&facts.model))
            && names_hold(&self.keys, Some(&facts.key))
            && names_hold(&self.users, facts.user.as_deref())
            && names_hold(&self.teams, facts.team.as_deref())
            && names_hold(&self.providers, facts.provider.as_deref())
            && self
                .prompt_tokens
                .is_none_or(|r| r.contains(facts.prompt_tokens as f64))
            && self
                .completion_tokens
                .is_none_or(|r| r.contains(facts.completion_tokens as f64))
            && self
                .cost_usd
                .is_none_or(|r| facts.cost_usd.is_some_and(|c| r.contains(c)))
            && (self.data_classes.is_empty()
                || self
                    .data_classes
                    .iter()
                    .any(|c| facts.data_classes.get(c).is_some_and(|n| *n > 0)))
            && self.data_class_counts.iter().all(|(class, range)| {
                range.contains(facts.data_classes.get(class).copied().unwrap_or(0) as f64)
            })
            && self.time.as_ref().is_none_or(|w| w.contains(facts.time_ms))
            && self
                .headers
                .iter()
                .all(|(name, values)| facts.headers.get(name).is_some_and(|v| values.matches(v)))
            && self.mcp.as_ref().is_none_or(|m| mcp_holds(m, facts))
            && self
                .content
                .as_ref()
                .is_none_or(|c| c.hits(&facts.content, scan))
            && self
                .not
                .as_ref()
                .is_none_or(|inner| !inner.hold(facts, scan))
    }

    /// Whether a header condition is set (here or inside `not`).
    pub fn reads_headers(&self) -> bool {
        !self.headers.is_empty() || self.not.as_ref().is_some_and(|n| n.reads_headers())
    }

    /// Whether no condition is set (the rule matches everything).
    pub fn is_empty(&self) -> bool {
        self.tenants.is_none()
            && self.teams.is_none()
            && self.users.is_none()
            && self.keys.is_none()
            && self.endpoint.is_none()
            && self.models.is_none()
            && self.providers.is_none()
            && self.data_classes.is_empty()
            && self.data_class_counts.is_empty()
            && self.prompt_tokens.is_none()
            && self.completion_tokens.is_none()
            && self.cost_usd.is_none()
            && self.time.is_none()
            && self.headers.is_empty()
            && self.content.is_none()
            && self.mcp.is_none()
            && self.not.is_none()
    }

    /// Whether these conditions hold whenever `narrower`'s do (so a rule with these,
    /// placed first, leaves nothing for a rule with `narrower`). Conservative: false
    /// when unsure.
    pub fn cover(&self, narrower: &Conditions) -> bool {
        fn names(wide: &Option<Names>, narrow: &Option<Names>) -> bool {
            match (wide, narrow) {
                (None, _) => true,
                (Some(_), None) => false,
                (Some(w), Some(n)) => n.covered_by(w),
            }
        }
        fn range(wide: &Option<Range>, narrow: &Option<Range>) -> bool {
            match (wide, narrow) {
                (None, _) => true,
                (Some(_), None) => false,
                (Some(w), Some(n)) => n.within(w),
            }
        }
        names(&self.tenants, &narrower.tenants)
            && names(&self.teams, &narrower.teams)
            && names(&self.users, &narrower.users)
            && names(&self.keys, &narrower.keys)
            && names(&self.models, &narrower.models)
            && names(&self.providers, &narrower.providers)
            && (self.endpoint.is_none() || self.endpoint == narrower.endpoint)
            && (self.data_classes.is_empty()
                || !narrower.data_classes.is_empty()
                    && narrower
                        .data_classes
                        .iter()
                        .all(|c| self.data_classes.contains(c)))
            && self.data_class_counts.iter().all(|(class, wide)| {
                narrower
                    .data_class_counts
                    .iter()
                    .any(|(c, narrow)| c == class && narrow.within(wide))
            })
            && range(&self.prompt_tokens, &narrower.prompt_tokens)
            && range(&self.completion_tokens, &narrower.completion_tokens)
            && range(&self.cost_usd, &narrower.cost_usd)
            && (self.time_written.is_none() || self.time_written == narrower.time_written)
            && self.headers.iter().all(|(name, wide)| {
                narrower
                    .headers
                    .iter()
                    .any(|(n, narrow)| n == name && narrow.covered_by(wide))
            })
            && match (&self.content, &narrower.content) {
                (None, _) => true,
                (Some(w), Some(n)) => w.written == n.written,
                _ => false,
            }
            && self.mcp.is_none()
            && self.not.is_none()
    }
}

fn mcp_holds(m: &Mcp, facts: &Facts) -> bool {
    let Some(call) = &facts.mcp else {
        return false;
    };
    names_hold(&m.servers, Some(&call.server))
        && names_hold(&m.tools, Some(&call.tool))
        && m.arguments.iter().all(|(path, values)| {
            json_path(&call.arguments, path).is_some_and(|v| values.matches(&value_text(v)))
        })
}
