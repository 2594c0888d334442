//! From a policy file to the in-memory policy the gateway evaluates: parse, check every
//! name, pattern and expression, and say where each problem is.

use super::cel::Condition;
use super::content_index::{self, ContentIndex, ContentIndexBuilder};
use super::guardrails;
use super::matchers::{Conditions, Content, Family, Mcp, Names, Range};
use super::source::{
    ActionKind, ContentSource, DefaultDecision, Detectors, LogLevel, MatchSource, McpSource,
    PhaseSource, PolicySource, RateLimitScope, Resolution, RuleSource,
};
use super::time::TimeWindow;
use serde_saphyr::{Location, Spanned};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

/// Largest policy file accepted.
pub const MAX_FILE_BYTES: usize = 8 << 20;
/// Most rules in one policy.
pub const MAX_RULES: usize = 10_000;

/// How bad a problem is: errors stop a policy from loading, warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Error,
    Warning,
}

/// A problem at a place in the policy file.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Problem {
    pub line: u64,
    pub column: u64,
    pub severity: Severity,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Problem {
    pub fn new(line: u64, column: u64, severity: Severity, message: impl Into<String>) -> Self {
        Self {
            line,
            column,
            severity,
            message: message.into(),
            hint: None,
        }
    }

    pub fn error(at: &Location, message: impl Into<String>) -> Self {
        Self::new(at.line(), at.column(), Severity::Error, message)
    }

    pub fn warning(at: &Location, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::error(at, message)
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// `FILE:LINE:COLUMN: error: MESSAGE (hint: …)`.
    pub fn render(&self, file: &str) -> String {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let hint = self
            .hint
            .as_ref()
            .map(|h| format!("\n  hint: {h}"))
            .unwrap_or_default();
        format!(
            "{file}:{}:{}: {severity}: {}{hint}",
            self.line, self.column, self.message
        )
    }
}

/// The compiled policy.
#[derive(Debug)]
pub struct Policy {
    pub name: String,
    pub resolution: Resolution,
    pub default: DefaultDecision,
    pub default_message: Arc<str>,
    /// In evaluation order: priority (higher first), then file order.
    pub rules: Vec<Rule>,
    /// Every keyword, topic term and pattern of the rules, scanned once per text.
    pub content: ContentIndex,
    /// Some rule looks at request headers (a header condition, or CEL, which may): the
    /// gateway copies them only then.
    pub reads_headers: bool,
    /// Some rule judges answers (the response phase runs only then).
    pub judges_responses: bool,
}

/// One compiled rule.
#[derive(Debug)]
pub struct Rule {
    pub id: Arc<str>,
    pub line: u64,
    pub column: u64,
    pub request: bool,
    pub response: bool,
    pub conditions: Conditions,
    pub when: Option<Condition>,
    pub action: Action,
}

/// What a rule does, with what it needs.
#[derive(Debug, Clone)]
pub enum Action {
    Allow,
    Deny(Arc<str>),
    RequireApproval(Arc<str>),
    Redact(Vec<String>),
    Tokenise(Vec<String>),
    Route(Arc<str>),
    Downgrade(Arc<str>),
    RateLimit(RateLimit),
    Tag(Vec<Arc<str>>),
    Log(LogLevel),
}

impl Action {
    pub fn decides(&self) -> bool {
        matches!(self, Self::Allow | Self::Deny(_) | Self::RequireApproval(_))
    }
}

/// `rate_limit`: at most `requests` per `window_ms`, counted per `by`.
#[derive(Debug, Clone, Copy)]
pub struct RateLimit {
    pub requests: u32,
    pub window_ms: u64,
    pub by: RateLimitScope,
}

/// The message shown when a rule denies without saying why.
pub const DEFAULT_DENY_MESSAGE: &str = "the request was refused by policy";

/// Parses and compiles policy text; on errors, every problem found (warnings included).
pub fn load(bytes: &[u8]) -> Result<(Policy, Vec<Problem>), Vec<Problem>> {
    let source = parse(bytes).map_err(|p| vec![p])?;
    let (policy, problems) = compile(&source);
    match policy {
        Some(policy) => Ok((policy, problems)),
        None => Err(problems),
    }
}

/// Parses policy text into its source form.
pub fn parse(bytes: &[u8]) -> Result<PolicySource, Problem> {
    let at_start = Location::UNKNOWN;
    if bytes.len() > MAX_FILE_BYTES {
        return Err(Problem::error(
            &at_start,
            format!(
                "the file is {} bytes; a policy may be at most {MAX_FILE_BYTES}",
                bytes.len()
            ),
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count() as u64
            + 1;
        let column = bytes[..e.valid_up_to()]
            .iter()
            .rev()
            .take_while(|b| **b != b'\n')
            .count() as u64
            + 1;
        Problem::new(line, column, Severity::Error, "the file is not valid UTF-8")
            .hint("save the policy as UTF-8 text")
    })?;
    from_yaml(text)
}

/// Deepest YAML nesting accepted: a policy is at most about seven levels deep, plus a few
/// nested `not`s; deeper input is hostile and would only cost stack.
const MAX_YAML_DEPTH: usize = 24;

/// Deserializes YAML text into `T`, with the problem's place and a typo hint on error.
pub fn from_yaml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, Problem> {
    let mut options = serde_saphyr::Options::default();
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = MAX_YAML_DEPTH;
    options.budget = Some(budget);
    serde_saphyr::from_str_with_options::<T>(text, options).map_err(|e| {
        let (line, column, message) = crate::config::yaml_error(&e);
        let hint = unknown_field_hint(&message);
        Problem {
            hint,
            ..Problem::new(line, column, Severity::Error, message)
        }
    })
}

/// For "unknown field `x`, expected one of a, b" (or `a`, `b`): the closest expected name.
fn unknown_field_hint(message: &str) -> Option<String> {
    let rest = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("unknown variant `"))?;
    let (given, expected) = rest.split_once('`')?;
    let expected = expected
        .split_once("expected one of ")
        .or_else(|| expected.split_once("expected "))?
        .1;
    let candidates: Vec<&str> = expected
        .split(',')
        .map(|c| c.trim().trim_matches('`').trim_start_matches("or "))
        .map(|c| c.trim_matches('`'))
        .collect();
    closest(given, &candidates).map(|c| format!("did you mean `{c}`?"))
}

/// The candidate nearest to `given`: a near spelling (by edit distance), else one that
/// starts with it (`EMAIL` → `EMAIL_ADDRESS`).
pub fn closest<'a>(given: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let given = given.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| (edit_distance(&given, &c.to_ascii_lowercase()), *c))
        .filter(|(d, c)| *d <= (c.len() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
        .or_else(|| {
            candidates
                .iter()
                .find(|c| !given.is_empty() && c.to_ascii_lowercase().starts_with(&given))
                .copied()
        })
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (row[j + 1] + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// Compiles a parsed policy; the policy is `None` when there are errors.
pub fn compile(source: &PolicySource) -> (Option<Policy>, Vec<Problem>) {
    let mut c = Compiler {
        lists: &source.lists,
        problems: Vec::new(),
        content: ContentIndexBuilder::default(),
    };
    if source.rules.len() > MAX_RULES {
        c.problems.push(Problem::error(
            &Location::UNKNOWN,
            format!(
                "{} rules; a policy may hold at most {MAX_RULES}",
                source.rules.len()
            ),
        ));
        return (None, c.problems);
    }
    let mut seen = HashSet::new();
    let mut rules = Vec::with_capacity(source.rules.len());
    for spanned in &source.rules {
        let rule = &spanned.value;
        if !seen.insert(rule.id.value.as_str()) {
            c.problems.push(
                Problem::error(
                    &rule.id.referenced,
                    format!("rule id `{}` is used twice", rule.id.value),
                )
                .hint("ids name rules in decisions and audit records: make each unique"),
            );
        }
        if let Some(compiled) = c.rule(rule, &spanned.referenced) {
            rules.push((rule.priority, compiled));
        }
    }
    // Stable: equal priorities keep file order.
    rules.sort_by_key(|(priority, _)| std::cmp::Reverse(*priority));
    let content = match std::mem::take(&mut c.content).build() {
        Ok(index) => index,
        Err(e) => {
            c.problems.push(Problem::error(&Location::UNKNOWN, e));
            return (None, c.problems);
        }
    };
    if c.problems.iter().any(|p| p.severity == Severity::Error) {
        return (None, c.problems);
    }
    let reads_headers = rules
        .iter()
        .any(|(_, r)| r.when.is_some() || r.conditions.reads_headers());
    let judges_responses = rules.iter().any(|(_, r)| r.response);
    let policy = Policy {
        content,
        reads_headers,
        judges_responses,
        name: source.policy.clone(),
        resolution: source.resolution,
        default: source.default,
        default_message: source
            .default_message
            .as_deref()
            .unwrap_or(DEFAULT_DENY_MESSAGE)
            .into(),
        rules: rules.into_iter().map(|(_, r)| r).collect(),
    };
    (Some(policy), c.problems)
}

struct Compiler<'s> {
    lists: &'s BTreeMap<String, Spanned<Vec<String>>>,
    problems: Vec<Problem>,
    content: ContentIndexBuilder,
}

impl Compiler<'_> {
    fn rule(&mut self, rule: &RuleSource, at: &Location) -> Option<Rule> {
        if rule.id.value.trim().is_empty() {
            self.problems.push(Problem::error(
                &rule.id.referenced,
                "a rule id may not be empty",
            ));
        }
        let conditions = match &rule.matches {
            Some(m) => self.conditions(&m.value, &m.referenced)?,
            None => Conditions::default(),
        };
        let when = match &rule.when {
            None => None,
            Some(source) => match Condition::compile(&source.value) {
                Ok(c) => Some(c),
                Err(e) => {
                    self.problems.push(
                        Problem::error(&source.referenced, format!("invalid CEL: {e}"))
                            .hint("variables: request.{tenant,user,model,tokens.prompt,content,headers,…} and mcp.{server,tool,arguments}"),
                    );
                    None
                }
            },
        };
        let action = self.action(rule)?;
        let (request, response) = match rule.phase {
            PhaseSource::Request => (true, false),
            PhaseSource::Response => (false, true),
            PhaseSource::Both => (true, true),
        };
        if response && matches!(action, Action::Route(_) | Action::Downgrade(_)) {
            self.problems.push(Problem::error(
                &rule.action.referenced,
                "route and downgrade choose the model before the request is sent: use them in the request phase",
            ));
        }
        Some(Rule {
            id: rule.id.value.as_str().into(),
            line: at.line(),
            column: at.column(),
            request,
            response,
            conditions,
            when,
            action,
        })
    }

    fn action(&mut self, rule: &RuleSource) -> Option<Action> {
        let kind = rule.action.value;
        let at = &rule.action.referenced;
        let mut ignored = Vec::new();
        let message = || -> Arc<str> {
            rule.message
                .as_deref()
                .unwrap_or(DEFAULT_DENY_MESSAGE)
                .into()
        };
        if rule.message.is_some() && !matches!(kind, ActionKind::Deny | ActionKind::RequireApproval)
        {
            ignored.push("message");
        }
        if rule.model.is_some() && !matches!(kind, ActionKind::Route | ActionKind::Downgrade) {
            ignored.push("model");
        }
        if !rule.data_classes.is_empty()
            && !matches!(kind, ActionKind::Redact | ActionKind::Tokenise)
        {
            ignored.push("data_classes");
        }
        if rule.rate_limit.is_some() && kind != ActionKind::RateLimit {
            ignored.push("rate_limit");
        }
        if !rule.tags.is_empty() && kind != ActionKind::Tag {
            ignored.push("tags");
        }
        if rule.log.is_some() && kind != ActionKind::Log {
            ignored.push("log");
        }
        for field in ignored {
            self.problems.push(Problem::warning(
                at,
                format!("`{field}` has no effect on a `{}` rule", kind.name()),
            ));
        }
        let action = match kind {
            ActionKind::Allow => Action::Allow,
            ActionKind::Deny => Action::Deny(message()),
            ActionKind::RequireApproval => Action::RequireApproval(message()),
            ActionKind::Redact | ActionKind::Tokenise => {
                let classes = self.data_classes(&rule.data_classes);
                if kind == ActionKind::Redact {
                    Action::Redact(classes)
                } else {
                    Action::Tokenise(classes)
                }
            }
            ActionKind::Route | ActionKind::Downgrade => {
                let Some(model) = &rule.model else {
                    self.problems.push(
                        Problem::error(at, format!("a `{}` rule needs `model`", kind.name()))
                            .hint("name the model to serve instead, e.g. `model: llama-small`"),
                    );
                    return None;
                };
                let model: Arc<str> = model.value.as_str().into();
                if kind == ActionKind::Route {
                    Action::Route(model)
                } else {
                    Action::Downgrade(model)
                }
            }
            ActionKind::RateLimit => {
                let Some(limit) = &rule.rate_limit else {
                    self.problems.push(
                        Problem::error(at, "a `rate_limit` rule needs `rate_limit`")
                            .hint("e.g. `rate_limit: {requests: 60, per: 1m, by: user}`"),
                    );
                    return None;
                };
                let window_ms = match humantime::parse_duration(&limit.value.per) {
                    Ok(d) if d.as_millis() >= 1 && d.as_secs() <= 31 * 86_400 => {
                        d.as_millis() as u64
                    }
                    _ => {
                        self.problems.push(Problem::error(
                            &limit.referenced,
                            format!(
                                "`per: {}` is not a window between 1ms and 31 days (e.g. 30s, 1m, 1h)",
                                limit.value.per
                            ),
                        ));
                        return None;
                    }
                };
                if limit.value.requests == 0 {
                    self.problems.push(
                        Problem::error(&limit.referenced, "`requests: 0` would refuse everything")
                            .hint("use `action: deny` to refuse"),
                    );
                }
                Action::RateLimit(RateLimit {
                    requests: limit.value.requests,
                    window_ms,
                    by: limit.value.by,
                })
            }
            ActionKind::Tag => {
                if rule.tags.is_empty() {
                    self.problems
                        .push(Problem::error(at, "a `tag` rule needs `tags: [...]`"));
                }
                Action::Tag(rule.tags.iter().map(|t| t.as_str().into()).collect())
            }
            ActionKind::Log => match rule.log {
                Some(level) => Action::Log(level),
                None => {
                    self.problems.push(Problem::error(
                        at,
                        "a `log` rule needs `log: full` or `log: metadata`",
                    ));
                    return None;
                }
            },
        };
        Some(action)
    }

    fn data_classes(&mut self, classes: &[Spanned<String>]) -> Vec<String> {
        classes
            .iter()
            .filter(|c| {
                let known = crate::pii::classes::is_known(&c.value);
                if !known {
                    self.unknown(
                        &c.referenced,
                        "data class",
                        &c.value,
                        crate::pii::classes::DATA_CLASSES,
                    );
                }
                known
            })
            .map(|c| c.value.clone())
            .collect()
    }

    fn unknown(&mut self, at: &Location, what: &str, given: &str, known: &[&str]) {
        let hint = match closest(given, known) {
            Some(c) => format!("did you mean `{c}`?"),
            None => format!("known: {}", known.join(", ")),
        };
        self.problems
            .push(Problem::error(at, format!("unknown {what} `{given}`")).hint(hint));
    }

    fn names(&mut self, list: &[Spanned<String>]) -> Option<Names> {
        if list.is_empty() {
            return None;
        }
        match Names::compile(list.iter().map(|s| s.value.as_str())) {
            Ok(names) => Some(names),
            Err(e) => {
                self.problems.push(Problem::error(
                    &list[0].referenced,
                    format!("invalid name pattern: {e}"),
                ));
                None
            }
        }
    }

    fn range(&mut self, source: &Option<Spanned<super::source::RangeSource>>) -> Option<Range> {
        let source = source.as_ref()?;
        match Range::compile(&source.value) {
            Ok(r) => Some(r),
            Err(e) => {
                self.problems.push(Problem::error(&source.referenced, e));
                None
            }
        }
    }

    fn conditions(&mut self, m: &MatchSource, at: &Location) -> Option<Conditions> {
        let problems_before = self.problems.len();
        let data_classes = self.data_classes(&m.data_classes);
        let mut data_class_counts = Vec::new();
        for (class, range) in &m.data_class_counts {
            if !crate::pii::classes::is_known(class) {
                self.unknown(
                    &range.referenced,
                    "data class",
                    class,
                    crate::pii::classes::DATA_CLASSES,
                );
                continue;
            }
            if let Some(r) = self.range(&Some(range.clone())) {
                data_class_counts.push((class.clone(), r));
            }
        }
        let time = match &m.time {
            None => None,
            Some(t) => match TimeWindow::compile(&t.value) {
                Ok(w) => Some(w),
                Err(e) => {
                    self.problems.push(Problem::error(&t.referenced, e));
                    None
                }
            },
        };
        let mut headers = Vec::new();
        for (name, values) in &m.headers {
            match Names::compile(values.value.iter().map(String::as_str)) {
                Ok(n) if !values.value.is_empty() => headers.push((name.to_ascii_lowercase(), n)),
                Ok(_) => self.problems.push(
                    Problem::error(
                        &values.referenced,
                        format!("header `{name}` lists no values"),
                    )
                    .hint("use [\"*\"] to require the header with any value"),
                ),
                Err(e) => self.problems.push(Problem::error(&values.referenced, e)),
            }
        }
        let content = match &m.content {
            None => None,
            Some(c) => self.content(&c.value, &c.referenced),
        };
        let mcp = m.mcp.as_ref().map(|s| self.mcp(&s.value));
        let not = match &m.not {
            None => None,
            Some(inner) => Some(Box::new(self.conditions(&inner.value, &inner.referenced)?)),
        };
        let conditions = Conditions {
            tenants: self.names(&m.tenants),
            teams: self.names(&m.teams),
            users: self.names(&m.users),
            keys: self.names(&m.keys),
            endpoint: m.endpoint,
            models: self.names(&m.models),
            providers: self.names(&m.providers),
            data_classes,
            data_class_counts,
            prompt_tokens: self.range(&m.prompt_tokens),
            completion_tokens: self.range(&m.completion_tokens),
            cost_usd: self.range(&m.cost_usd),
            time,
            time_written: m.time.as_ref().map(|t| format!("{:?}", t.value)),
            headers,
            content,
            mcp,
            not,
        };
        if conditions.is_empty() && self.problems.len() == problems_before {
            self.problems.push(
                Problem::warning(at, "`match` sets no condition, so it matches everything")
                    .hint("leave `match` out to say that on purpose"),
            );
        }
        Some(conditions)
    }

    fn content(&mut self, c: &ContentSource, at: &Location) -> Option<Content> {
        let problems_before = self.problems.len();
        let mut terms: Vec<&str> = c.keywords.iter().map(String::as_str).collect();
        for name in &c.keyword_lists {
            match self.lists.get(&name.value) {
                Some(list) => terms.extend(list.value.iter().map(String::as_str)),
                None => {
                    let known: Vec<&str> = self.lists.keys().map(String::as_str).collect();
                    self.unknown(&name.referenced, "list", &name.value, &known);
                }
            }
        }
        let keywords = if terms.is_empty() {
            None
        } else {
            match self.content.group(terms, c.whole_words) {
                Ok(group) => Some(group),
                Err(e) => {
                    self.problems
                        .push(Problem::error(at, format!("keywords: {e}")));
                    None
                }
            }
        };
        let mut patterns = Vec::new();
        for pattern in &c.regex {
            match content_index::check_pattern(&pattern.value) {
                Ok(()) => patterns.push(pattern.value.clone()),
                Err(e) => self.problems.push(
                    Problem::error(
                        &pattern.referenced,
                        format!("invalid regex: {}", first_line(&e)),
                    )
                    .hint("Rust regex syntax; no look-around or backreferences"),
                ),
            }
        }
        let regex = (!patterns.is_empty()).then(|| self.content.patterns(&patterns));
        let secrets = self.family(&c.secrets, "secret detector", guardrails::known("secrets"));
        let injection = self.family(
            &c.injection,
            "injection heuristic",
            guardrails::known("injection"),
        );
        let mut topics = Vec::new();
        for topic in &c.topics {
            match guardrails::topic_terms(&topic.value) {
                Some(terms) => match self.content.group(terms.iter().copied(), true) {
                    Ok(group) => topics.push(group),
                    Err(e) => self.problems.push(Problem::error(&topic.referenced, e)),
                },
                None => self.unknown(
                    &topic.referenced,
                    "topic",
                    &topic.value,
                    guardrails::known("topics"),
                ),
            }
        }
        let content = Content {
            keywords,
            regex,
            secrets,
            injection,
            topics,
            written: format!("{c:?}"),
        };
        if content.keywords.is_none()
            && content.regex.is_none()
            && content.secrets.is_none()
            && content.injection.is_none()
            && content.topics.is_empty()
            && self.problems.len() == problems_before
        {
            self.problems.push(Problem::warning(
                at,
                "`content` sets no detector, so it never matches",
            ));
        }
        Some(content)
    }

    fn family(
        &mut self,
        source: &Option<Spanned<Detectors>>,
        what: &str,
        known: &'static [&'static str],
    ) -> Option<Family> {
        let source = source.as_ref()?;
        match &source.value {
            Detectors::All(true) => Some(Family::All),
            Detectors::All(false) => None,
            Detectors::Named(names) => {
                let mut found = Vec::new();
                for name in names {
                    match known.iter().find(|k| **k == name) {
                        Some(k) => found.push(*k),
                        None => self.unknown(&source.referenced, what, name, known),
                    }
                }
                Some(Family::Named(found))
            }
        }
    }

    fn mcp(&mut self, m: &McpSource) -> Mcp {
        let mut arguments = Vec::new();
        for (path, values) in &m.arguments {
            if !super::facts::valid_json_path(path) {
                self.problems.push(
                    Problem::error(&values.referenced, format!("`{path}` is not a JSON path"))
                        .hint("e.g. `$.path`, `$.options.recursive`, `$.files[0]`"),
                );
                continue;
            }
            match Names::compile(values.value.iter().map(String::as_str)) {
                Ok(n) => arguments.push((path.clone(), n)),
                Err(e) => self.problems.push(Problem::error(&values.referenced, e)),
            }
        }
        Mcp {
            servers: self.names(&m.servers),
            tools: self.names(&m.tools),
            arguments,
        }
    }
}

fn first_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}
