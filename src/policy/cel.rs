//! `when:` conditions in CEL (the `cel` crate): compiled once with limits that keep a
//! hostile expression cheap, evaluated against a request's facts.

use super::facts::Facts;
use cel::{Context, Env, Program, Value};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

/// Longest expression accepted.
pub const MAX_SOURCE: usize = 4096;
/// Deepest nesting of brackets accepted (checked before the parser, which recurses).
pub const MAX_NESTING: usize = 32;
/// Most comprehension macros (`all`, `exists`, `exists_one`, `map`, `filter`) in one
/// expression: each may iterate over the other's output.
pub const MAX_COMPREHENSIONS: usize = 3;
/// The variables an expression may use.
pub const VARIABLES: [&str; 2] = ["request", "mcp"];

/// The standard CEL environment, built once.
static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| Arc::new(Env::stdlib()));

/// A compiled `when:` condition.
pub struct Condition {
    program: Program,
}

impl std::fmt::Debug for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Condition")
    }
}

impl Condition {
    /// Compiles `source`, refusing what is too long, too deep, too loopy, or names a
    /// variable other than `request` and `mcp`.
    pub fn compile(source: &str) -> Result<Self, String> {
        if source.len() > MAX_SOURCE {
            return Err(format!(
                "the expression is {} bytes; at most {MAX_SOURCE} are allowed",
                source.len()
            ));
        }
        let depth = nesting(source);
        if depth > MAX_NESTING {
            return Err(format!(
                "brackets nest {depth} deep; at most {MAX_NESTING} are allowed"
            ));
        }
        let comprehensions = ["all(", "exists(", "exists_one(", "map(", "filter("]
            .iter()
            .map(|m| source.matches(&format!(".{m}")).count())
            .sum::<usize>();
        if comprehensions > MAX_COMPREHENSIONS {
            return Err(format!(
                "{comprehensions} comprehensions (all/exists/map/filter); at most {MAX_COMPREHENSIONS} are allowed"
            ));
        }
        let program = ENV.compile(source).map_err(|e| {
            let text = e.to_string();
            text.lines().next().unwrap_or("invalid CEL").to_string()
        })?;
        let references = program.references();
        if let Some(unknown) = references
            .variables()
            .into_iter()
            .find(|v| !VARIABLES.contains(v))
        {
            return Err(format!(
                "unknown variable `{unknown}`: use `request` (e.g. request.model, request.tokens.prompt) or `mcp` (mcp.tool, mcp.arguments)"
            ));
        }
        Ok(Self { program })
    }

    /// Whether the condition holds in `bindings` (made once per evaluation by
    /// [`bindings`]); an error (a missing field, a type mismatch, a result that is not a
    /// boolean) is returned for the caller to count.
    pub fn holds(&self, bindings: &Context<'_, '_>) -> Result<bool, String> {
        match self.program.execute(bindings) {
            Ok(Value::Bool(b)) => Ok(b),
            Ok(other) => Err(format!(
                "the expression gave {:?}, not true or false",
                other.type_of()
            )),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// The variables `request` and `mcp` for `facts`, built once per evaluation and shared by
/// every `when:` of the policy.
pub fn bindings(facts: &Facts) -> Result<Context<'static, 'static>, String> {
    let mut context = Context::with_env(ENV.clone());
    let request = cel::to_value(RequestView::of(facts)).map_err(|e| e.to_string())?;
    context.add_variable_from_value("request", request);
    let mcp = match &facts.mcp {
        Some(call) => cel::to_value(McpView {
            server: &call.server,
            tool: &call.tool,
            arguments: &call.arguments,
        })
        .map_err(|e| e.to_string())?,
        None => Value::Null,
    };
    context.add_variable_from_value("mcp", mcp);
    Ok(context)
}

/// How deep brackets nest in `source` (outside string literals).
fn nesting(source: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in source.chars() {
        if let Some(q) = quote {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                _ if c == q => quote = None,
                _ => {}
            }
            continue;
        }
        match c {
            '"' | '\'' => quote = Some(c),
            '(' | '[' | '{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// `request` as CEL sees it.
#[derive(Serialize)]
struct RequestView<'a> {
    phase: &'static str,
    tenant: &'a str,
    team: &'a str,
    user: &'a str,
    key: &'a str,
    endpoint: &'static str,
    model: &'a str,
    provider: &'a str,
    data_classes: &'a BTreeMap<String, u64>,
    tokens: Tokens,
    cost_usd: f64,
    headers: &'a BTreeMap<String, String>,
    content: &'a str,
    /// Hour of day and weekday (0 = Sunday), UTC.
    hour: u32,
    weekday: u32,
}

#[derive(Serialize)]
struct Tokens {
    prompt: u64,
    completion: u64,
}

#[derive(Serialize)]
struct McpView<'a> {
    server: &'a str,
    tool: &'a str,
    arguments: &'a serde_json::Value,
}

impl<'a> RequestView<'a> {
    fn of(facts: &'a Facts) -> Self {
        let (weekday, minute) = super::time::weekday_minute(facts.time_ms, 0);
        Self {
            phase: match facts.phase {
                super::facts::Phase::Request => "request",
                super::facts::Phase::Response => "response",
            },
            tenant: &facts.tenant,
            team: facts.team.as_deref().unwrap_or(""),
            user: facts.user.as_deref().unwrap_or(""),
            key: &facts.key,
            endpoint: match facts.endpoint {
                super::source::EndpointKind::Llm => "llm",
                super::source::EndpointKind::Mcp => "mcp",
            },
            model: &facts.model,
            provider: facts.provider.as_deref().unwrap_or(""),
            data_classes: &facts.data_classes,
            tokens: Tokens {
                prompt: facts.prompt_tokens,
                completion: facts.completion_tokens,
            },
            cost_usd: facts.cost_usd.unwrap_or(0.0),
            headers: &facts.headers,
            content: &facts.content,
            hour: minute / 60,
            weekday,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        Facts {
            model: "gpt-4o".into(),
            prompt_tokens: 1200,
            tenant: "acme".into(),
            ..Facts::default()
        }
    }

    #[test]
    fn evaluates_against_the_request() {
        let c = Condition::compile(
            r#"request.model.startsWith("gpt") && request.tokens.prompt > 1000"#,
        )
        .unwrap();
        assert!(c.holds(&bindings(&facts()).unwrap()).unwrap());
        let c = Condition::compile(r#"request.tenant == "other""#).unwrap();
        assert!(!c.holds(&bindings(&facts()).unwrap()).unwrap());
    }

    #[test]
    fn refuses_hostile_expressions() {
        let deep = format!("{}1{}", "(".repeat(500), ")".repeat(500));
        assert!(Condition::compile(&deep).unwrap_err().contains("nest"));
        let long = "1 + ".repeat(2000) + "1";
        assert!(Condition::compile(&long).unwrap_err().contains("bytes"));
        let loopy = "[1,2].map(a, [1,2].map(b, [1,2].map(c, [1,2].map(d, d))))";
        assert!(
            Condition::compile(loopy)
                .unwrap_err()
                .contains("comprehensions")
        );
        assert!(
            Condition::compile("secret.value == 1")
                .unwrap_err()
                .contains("unknown variable")
        );
        assert!(Condition::compile("request.model ==").is_err());
    }

    #[test]
    fn errors_and_non_booleans_are_reported_not_panicked() {
        let c = Condition::compile("request.nope.deeper == 1").unwrap();
        assert!(c.holds(&bindings(&facts()).unwrap()).is_err());
        let c = Condition::compile(r#"request.model + "x""#).unwrap();
        assert!(
            c.holds(&bindings(&facts()).unwrap())
                .unwrap_err()
                .contains("not true or false")
        );
        let c = Condition::compile("1 / 0 == 1").unwrap();
        assert!(c.holds(&bindings(&facts()).unwrap()).is_err());
    }
}
