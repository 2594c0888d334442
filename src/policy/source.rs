//! The policy file as written: the YAML shapes, with the places lint needs to point at.

use serde::Deserialize;
use serde_saphyr::Spanned;
use std::collections::BTreeMap;

/// A policy set: ordered rules, how conflicts between them resolve, and what holds when
/// no rule decides.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySource {
    /// The policy's name (shown in `policy history` and decisions).
    pub policy: String,
    #[serde(default)]
    pub description: Option<String>,
    /// `first_match` (default) or `deny_overrides`.
    #[serde(default)]
    pub resolution: Resolution,
    /// The decision when no rule decides: `allow` (default) or `deny`.
    #[serde(default)]
    pub default: DefaultDecision,
    /// The message a caller sees when `default: deny` refuses it.
    #[serde(default)]
    pub default_message: Option<String>,
    /// Named term lists that `content.keyword_lists` refers to.
    #[serde(default)]
    pub lists: BTreeMap<String, Spanned<Vec<String>>>,
    pub rules: Vec<Spanned<RuleSource>>,
}

/// How the decisions of several matching rules combine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// Rules run in order (priority, then file order); the first matching rule with a
    /// deciding action (allow, deny, require_approval) decides, and effects of matching
    /// rules before it apply.
    #[default]
    FirstMatch,
    /// Every rule runs; deny beats require_approval beats allow, and the effects of every
    /// matching rule apply.
    DenyOverrides,
}

/// What holds when no rule decides.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DefaultDecision {
    #[default]
    Allow,
    Deny,
}

/// One rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSource {
    pub id: Spanned<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// `request` (default), `response` or `both`.
    #[serde(default)]
    pub phase: PhaseSource,
    /// Higher runs first; equal priorities keep file order. Default 0.
    #[serde(default)]
    pub priority: i32,
    /// Declarative conditions, all of which must hold. Absent: always.
    #[serde(default, rename = "match")]
    pub matches: Option<Spanned<MatchSource>>,
    /// A CEL expression that must also be true.
    #[serde(default)]
    pub when: Option<Spanned<String>>,
    pub action: Spanned<ActionKind>,
    /// Shown to the caller on `deny` and `require_approval`.
    #[serde(default)]
    pub message: Option<String>,
    /// `route` / `downgrade`: the model to serve instead.
    #[serde(default)]
    pub model: Option<Spanned<String>>,
    /// `redact` / `tokenise`: the data classes to act on (default: every class found).
    #[serde(default)]
    pub data_classes: Vec<Spanned<String>>,
    /// `rate_limit`: how many requests per window, counted per what.
    #[serde(default)]
    pub rate_limit: Option<Spanned<RateLimitSource>>,
    /// `tag`: labels added to the decision and the audit record.
    #[serde(default)]
    pub tags: Vec<String>,
    /// `log`: how much of the payload the audit record keeps.
    #[serde(default)]
    pub log: Option<LogLevel>,
}

/// Which side of the exchange a rule looks at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PhaseSource {
    #[default]
    Request,
    Response,
    Both,
}

/// What a rule does when it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    Allow,
    Deny,
    RequireApproval,
    Redact,
    #[serde(alias = "tokenize")]
    Tokenise,
    Route,
    Downgrade,
    RateLimit,
    Tag,
    Log,
}

impl ActionKind {
    /// Allow, deny and require_approval decide; the others add effects.
    pub fn decides(self) -> bool {
        matches!(self, Self::Allow | Self::Deny | Self::RequireApproval)
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
            Self::RequireApproval => "require_approval",
            Self::Redact => "redact",
            Self::Tokenise => "tokenise",
            Self::Route => "route",
            Self::Downgrade => "downgrade",
            Self::RateLimit => "rate_limit",
            Self::Tag => "tag",
            Self::Log => "log",
        }
    }
}

/// How much of the payloads the audit record keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    /// Request and response payloads (after redaction).
    Full,
    /// The record without payloads.
    Metadata,
}

/// `rate_limit: {requests: 10, per: 1m, by: user}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSource {
    pub requests: u32,
    /// A duration: `30s`, `1m`, `1h`, `1d`.
    pub per: String,
    /// `key` (default), `user`, `tenant`.
    #[serde(default)]
    pub by: RateLimitScope,
}

/// What a rate limit counts separately.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RateLimitScope {
    #[default]
    Key,
    User,
    Tenant,
}

/// Declarative conditions of a rule; every one present must hold.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchSource {
    /// Tenant ids (`*` globs allowed), any of them.
    #[serde(default)]
    pub tenants: Vec<Spanned<String>>,
    #[serde(default)]
    pub teams: Vec<Spanned<String>>,
    #[serde(default)]
    pub users: Vec<Spanned<String>>,
    /// Virtual key ids.
    #[serde(default)]
    pub keys: Vec<Spanned<String>>,
    /// `llm` or `mcp`.
    #[serde(default)]
    pub endpoint: Option<EndpointKind>,
    /// Logical models the caller asked for.
    #[serde(default)]
    pub models: Vec<Spanned<String>>,
    /// Upstream providers (names under `upstreams:` in the configuration).
    #[serde(default)]
    pub providers: Vec<Spanned<String>>,
    /// Any of these data classes found.
    #[serde(default)]
    pub data_classes: Vec<Spanned<String>>,
    /// Every one of these data-class counts in range (`{email: {gte: 5}}`).
    #[serde(default)]
    pub data_class_counts: BTreeMap<String, Spanned<RangeSource>>,
    #[serde(default)]
    pub prompt_tokens: Option<Spanned<RangeSource>>,
    #[serde(default)]
    pub completion_tokens: Option<Spanned<RangeSource>>,
    #[serde(default)]
    pub cost_usd: Option<Spanned<RangeSource>>,
    /// When, in the given time zone.
    #[serde(default)]
    pub time: Option<Spanned<TimeSource>>,
    /// Request headers (names in any case): each must be present with a value matching
    /// one of the globs (`*`: present at all).
    #[serde(default)]
    pub headers: BTreeMap<String, Spanned<Vec<String>>>,
    /// The text of the prompt (request phase) or of the answer (response phase).
    #[serde(default)]
    pub content: Option<Spanned<ContentSource>>,
    /// MCP calls: server, tool and arguments.
    #[serde(default)]
    pub mcp: Option<Spanned<McpSource>>,
    /// Holds when the conditions inside do not all hold.
    #[serde(default)]
    pub not: Option<Box<Spanned<MatchSource>>>,
}

/// Which kind of traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointKind {
    Llm,
    Mcp,
}

/// A numeric range; a bare number means "at least".
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(untagged)]
pub enum RangeSource {
    AtLeast(f64),
    Bounds(Bounds),
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bounds {
    #[serde(default)]
    pub gt: Option<f64>,
    #[serde(default)]
    pub gte: Option<f64>,
    #[serde(default)]
    pub lt: Option<f64>,
    #[serde(default)]
    pub lte: Option<f64>,
}

/// `time: {days: [mon, tue], hours: "09:00-17:00", timezone: "+01:00"}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeSource {
    /// `mon` … `sun`; absent: every day.
    #[serde(default)]
    pub days: Vec<String>,
    /// `HH:MM-HH:MM`, end exclusive, may wrap past midnight; absent: all day.
    #[serde(default)]
    pub hours: Option<String>,
    /// `UTC` (default) or a fixed offset like `+02:00`.
    #[serde(default)]
    pub timezone: Option<String>,
}

/// Content conditions: the rule matches when any of them finds something.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContentSource {
    /// Terms, matched case-insensitively.
    #[serde(default)]
    pub keywords: Vec<String>,
    /// Names of lists under `lists:`.
    #[serde(default)]
    pub keyword_lists: Vec<Spanned<String>>,
    /// Terms must stand as whole words (default true).
    #[serde(default = "yes")]
    pub whole_words: bool,
    /// Regular expressions (Rust syntax, linear time).
    #[serde(default)]
    pub regex: Vec<Spanned<String>>,
    /// Built-in secret detectors: `true` for all, or a list of kinds.
    #[serde(default)]
    pub secrets: Option<Spanned<Detectors>>,
    /// Prompt-injection heuristics: `true` for all, or a list.
    #[serde(default)]
    pub injection: Option<Spanned<Detectors>>,
    /// Built-in topic lists.
    #[serde(default)]
    pub topics: Vec<Spanned<String>>,
}

fn yes() -> bool {
    true
}

/// `true` (every detector of the family), `false` (none) or a list of names.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Detectors {
    All(bool),
    Named(Vec<String>),
}

/// MCP conditions.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpSource {
    #[serde(default)]
    pub servers: Vec<Spanned<String>>,
    #[serde(default)]
    pub tools: Vec<Spanned<String>>,
    /// JSON paths (`$.a.b`, `$.items[0]`) into the call's arguments, each with globs its
    /// value (as text) must match one of.
    #[serde(default)]
    pub arguments: BTreeMap<String, Spanned<Vec<String>>>,
}
