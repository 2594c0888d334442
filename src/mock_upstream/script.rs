//! `--script FILE`: a scripted model for agent tests — turns of text answers or tool
//! calls, picked by a substring of the request's latest user or tool input, else in order.
//!
//! ```yaml
//! turns:
//!   - match: "list-the-directory"          # when the latest input contains this
//!     tool_calls:
//!       - name: [Bash, shell, run_shell_command]   # the first the request declares
//!         arguments: {command: "ls /tmp/x"}
//!   - match: "zebra.txt"
//!     text: "The directory holds zebra.txt."
//!   - text: "Hello from the scripted model."      # no `match`: used in order
//! fallback: {text: "Nothing more is scripted."}   # optional
//! ```
//!
//! A tool call's candidates may also carry their own arguments:
//! `{options: [{name: Bash, arguments: {command: "ls"}}, {name: exec_command, arguments:
//! {cmd: ["ls"]}}]}`.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Deserialize;
use serde_json::{Map, Value};

use super::tools::PlannedCall;

/// What answers a request once no turn is left, unless the script names a `fallback`.
const DEFAULT_FALLBACK: &str = "The scripted model has nothing more to say.";

/// The script file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScriptFile {
    turns: Vec<ReplySpec>,
    #[serde(default)]
    fallback: Option<ReplySpec>,
}

/// A turn (or the fallback, which has no `match`): a text or tool calls.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplySpec {
    #[serde(default, rename = "match")]
    matches: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<CallSpec>>,
}

/// One tool call: a name (or a list of candidate names) with arguments, or `options`,
/// candidates with arguments of their own.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CallSpec {
    #[serde(default)]
    name: Option<Names>,
    #[serde(default)]
    arguments: Option<Map<String, Value>>,
    #[serde(default)]
    options: Option<Vec<CandidateSpec>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Names {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CandidateSpec {
    name: String,
    #[serde(default)]
    arguments: Map<String, Value>,
}

/// A tool the model may call: its name and its arguments as JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Candidate {
    name: String,
    arguments: String,
}

/// A scripted answer.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reply {
    Text(String),
    /// Calls made together, each a list of candidates in order of preference.
    Calls(Vec<Vec<Candidate>>),
}

#[derive(Debug)]
struct Turn {
    matches: Option<String>,
    reply: Reply,
}

/// What a request gets from the script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scripted {
    Text(String),
    Calls(Vec<PlannedCall>),
}

/// A loaded script and how far its unmatched turns have been used.
#[derive(Debug)]
pub struct Script {
    turns: Vec<Turn>,
    /// The indexes of the turns without `match`, in order.
    ordered: Vec<usize>,
    fallback: Reply,
    /// How many of `ordered` have been used.
    cursor: AtomicUsize,
}

impl Script {
    /// Reads a script: JSON when the file name ends in `.json`, else YAML.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let shown = path.display();
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("--script {shown}: cannot read it: {e}"))?;
        let file: ScriptFile = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("--script {shown}: {e}"))?
        } else {
            serde_saphyr::from_str(&text).map_err(|e| {
                let (line, column, message) = crate::config::yaml_error(&e);
                anyhow::anyhow!("--script {shown}:{line}:{column}: {message}")
            })?
        };
        Self::from_file(file).map_err(|e| anyhow::anyhow!("--script {shown}: {e}"))
    }

    /// Parses script text (YAML, of which JSON is a subset) — for tests.
    #[cfg(test)]
    pub fn from_yaml(text: &str) -> Result<Self, String> {
        let file: ScriptFile = serde_saphyr::from_str(text).map_err(|e| e.to_string())?;
        Self::from_file(file)
    }

    fn from_file(file: ScriptFile) -> Result<Self, String> {
        let mut turns = Vec::with_capacity(file.turns.len());
        for (i, spec) in file.turns.into_iter().enumerate() {
            let at = format!("turns[{i}]");
            if spec.matches.as_deref() == Some("") {
                return Err(format!("{at}.match: must not be empty"));
            }
            let matches = spec.matches.clone();
            turns.push(Turn {
                matches,
                reply: reply(spec, &at)?,
            });
        }
        let fallback = match file.fallback {
            Some(spec) if spec.matches.is_some() => {
                return Err("fallback: a fallback has no `match`".into());
            }
            Some(spec) => reply(spec, "fallback")?,
            None => Reply::Text(DEFAULT_FALLBACK.into()),
        };
        let ordered = (0..turns.len())
            .filter(|&i| turns[i].matches.is_none())
            .collect();
        Ok(Self {
            turns,
            ordered,
            fallback,
            cursor: AtomicUsize::new(0),
        })
    }

    /// The answer to a chat request: the first turn whose `match` occurs in the latest
    /// input (user and tool messages after the last assistant message); else the next
    /// turn without `match`, then the fallback. A request for structured output is
    /// only answered by a matching text turn (`None`: answered as without a script).
    pub fn answer(
        &self,
        messages: &[Value],
        tools: Option<&[Value]>,
        tool_choice: Option<&Value>,
        structured: bool,
    ) -> Option<Scripted> {
        let input = latest_input(messages);
        let matched = self.turns.iter().find(|turn| {
            let fits = !structured || matches!(turn.reply, Reply::Text(_));
            fits && turn
                .matches
                .as_deref()
                .is_some_and(|needle| input.contains(needle))
        });
        let reply = match matched {
            Some(turn) => &turn.reply,
            None if structured => return None,
            None => {
                let next = self.cursor.fetch_add(1, Ordering::Relaxed);
                match self.ordered.get(next) {
                    Some(&index) => &self.turns[index].reply,
                    None => &self.fallback,
                }
            }
        };
        Some(resolve(reply, &declared(tools, tool_choice)))
    }
}

/// A turn's reply, checked: a text or tool calls, not both.
fn reply(spec: ReplySpec, at: &str) -> Result<Reply, String> {
    match (spec.text, spec.tool_calls) {
        (Some(text), None) => Ok(Reply::Text(text)),
        (None, Some(calls)) if calls.is_empty() => {
            Err(format!("{at}.tool_calls: must name at least one call"))
        }
        (None, Some(calls)) => calls
            .into_iter()
            .enumerate()
            .map(|(k, call)| candidates(call, &format!("{at}.tool_calls[{k}]")))
            .collect::<Result<_, _>>()
            .map(Reply::Calls),
        (Some(_), Some(_)) => Err(format!("{at}: has both `text` and `tool_calls`; give one")),
        (None, None) => Err(format!("{at}: needs `text` or `tool_calls`")),
    }
}

/// A call's candidates, in order of preference.
fn candidates(call: CallSpec, at: &str) -> Result<Vec<Candidate>, String> {
    let candidates: Vec<(String, Map<String, Value>)> = match (call.name, call.options) {
        (Some(_), Some(_)) => return Err(format!("{at}: has both `name` and `options`; give one")),
        (None, None) => return Err(format!("{at}: needs `name` or `options`")),
        (Some(names), None) => {
            let arguments = call.arguments.unwrap_or_default();
            let names = match names {
                Names::One(name) => vec![name],
                Names::Many(names) => names,
            };
            names.into_iter().map(|n| (n, arguments.clone())).collect()
        }
        (None, Some(_)) if call.arguments.is_some() => {
            return Err(format!(
                "{at}: `arguments` go inside each of `options`, not beside them"
            ));
        }
        (None, Some(options)) => options.into_iter().map(|o| (o.name, o.arguments)).collect(),
    };
    if candidates.is_empty() {
        return Err(format!("{at}: names no tool"));
    }
    if candidates.iter().any(|(name, _)| name.is_empty()) {
        return Err(format!("{at}: a tool name must not be empty"));
    }
    Ok(candidates
        .into_iter()
        .map(|(name, arguments)| Candidate {
            name,
            arguments: Value::Object(arguments).to_string(),
        })
        .collect())
}

/// The text of the request's latest input: its user and tool messages after the last
/// assistant message (string contents, or the `text` of content parts), one per line.
fn latest_input(messages: &[Value]) -> String {
    let start = messages
        .iter()
        .rposition(|m| m.get("role").and_then(Value::as_str) == Some("assistant"))
        .map_or(0, |i| i + 1);
    let mut input = String::new();
    for message in &messages[start..] {
        if !matches!(
            message.get("role").and_then(Value::as_str),
            Some("user" | "tool")
        ) {
            continue;
        }
        match message.get("content") {
            Some(Value::String(text)) => {
                input.push_str(text);
                input.push('\n');
            }
            Some(Value::Array(parts)) => {
                for text in parts.iter().filter_map(|p| p.get("text")?.as_str()) {
                    input.push_str(text);
                    input.push('\n');
                }
            }
            _ => {}
        }
    }
    input
}

/// The names of the functions a request lets the model call (none under
/// `tool_choice: "none"`).
fn declared<'a>(tools: Option<&'a [Value]>, tool_choice: Option<&Value>) -> Vec<&'a str> {
    if tool_choice.and_then(Value::as_str) == Some("none") {
        return Vec::new();
    }
    tools
        .into_iter()
        .flatten()
        .filter_map(|tool| tool.pointer("/function/name")?.as_str())
        .collect()
}

/// A reply for a request declaring `declared`: each call by its first declared
/// candidate, or — when a call has none — a text that says so.
fn resolve(reply: &Reply, declared: &[&str]) -> Scripted {
    let calls = match reply {
        Reply::Text(text) => return Scripted::Text(text.clone()),
        Reply::Calls(calls) => calls,
    };
    let mut planned = Vec::with_capacity(calls.len());
    for candidates in calls {
        let Some(chosen) = candidates
            .iter()
            .find(|c| declared.contains(&c.name.as_str()))
        else {
            let wanted: Vec<&str> = candidates.iter().map(|c| c.name.as_str()).collect();
            let offered = if declared.is_empty() {
                "it declares no tools".to_owned()
            } else {
                format!("it declares {}", declared.join(", "))
            };
            return Scripted::Text(format!(
                "The scripted tool call was not made: the request declares no tool named {}; \
                 {offered}.",
                wanted.join(" or ")
            ));
        };
        planned.push(PlannedCall {
            name: chosen.name.clone(),
            arguments: chosen.arguments.clone(),
            content_empty_string: false,
        });
    }
    Scripted::Calls(planned)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const EXAMPLE: &str = r#"
turns:
  - match: "list-the-directory"
    tool_calls:
      - name: [Bash, shell]
        arguments: {command: "ls /tmp/x"}
  - match: "zebra.txt"
    text: "The directory holds zebra.txt."
  - text: "First in order."
  - tool_calls:
      - options:
          - {name: exec_command, arguments: {cmd: ["ls"]}}
          - {name: Bash, arguments: {command: "ls"}}
      - {name: Read, arguments: {file_path: "/a"}}
  - text: "Last in order."
"#;

    fn tools(names: &[&str]) -> Vec<Value> {
        names
            .iter()
            .map(|n| json!({"type": "function", "function": {"name": n}}))
            .collect()
    }

    fn user(text: &str) -> Vec<Value> {
        vec![json!({"role": "user", "content": text})]
    }

    fn call(name: &str, arguments: Value) -> PlannedCall {
        PlannedCall {
            name: name.into(),
            arguments: arguments.to_string(),
            content_empty_string: false,
        }
    }

    #[test]
    fn matched_turns_win_and_the_rest_go_in_order() {
        let script = Script::from_yaml(EXAMPLE).unwrap();
        let tools = tools(&["Read", "Bash"]);
        let answer = |messages: &[Value]| script.answer(messages, Some(&tools), None, false);
        assert_eq!(
            answer(&user("please list-the-directory now")),
            Some(Scripted::Calls(vec![call(
                "Bash",
                json!({"command": "ls /tmp/x"})
            )]))
        );
        // The tool's result (after the assistant's call) is the latest input.
        let after_call = [
            json!({"role": "user", "content": "please list-the-directory now"}),
            json!({"role": "assistant", "content": null, "tool_calls": []}),
            json!({"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "zebra.txt\n"}]}),
            json!({"role": "user", "content": "<system-reminder>be nice</system-reminder>"}),
        ];
        assert_eq!(
            answer(&after_call),
            Some(Scripted::Text("The directory holds zebra.txt.".into()))
        );
        assert_eq!(
            answer(&user("hi")),
            Some(Scripted::Text("First in order.".into()))
        );
        assert_eq!(
            answer(&user("hi")),
            Some(Scripted::Calls(vec![
                call("Bash", json!({"command": "ls"})),
                call("Read", json!({"file_path": "/a"})),
            ]))
        );
        assert_eq!(
            answer(&user("hi")),
            Some(Scripted::Text("Last in order.".into()))
        );
        assert_eq!(
            answer(&user("hi")),
            Some(Scripted::Text(DEFAULT_FALLBACK.into()))
        );
        // A match still works once the order is used up; input before the last assistant
        // message does not count.
        assert!(matches!(
            answer(&user("list-the-directory")),
            Some(Scripted::Calls(_))
        ));
        let answered = [
            json!({"role": "user", "content": "list-the-directory"}),
            json!({"role": "assistant", "content": "done"}),
            json!({"role": "user", "content": "thanks"}),
        ];
        assert_eq!(
            answer(&answered),
            Some(Scripted::Text(DEFAULT_FALLBACK.into()))
        );
    }

    #[test]
    fn a_tool_the_request_does_not_declare_is_not_called() {
        let script = Script::from_yaml(EXAMPLE).unwrap();
        let messages = user("list-the-directory");
        let Some(Scripted::Text(text)) =
            script.answer(&messages, Some(&tools(&["Read", "Write"])), None, false)
        else {
            panic!("expected a text");
        };
        assert_eq!(
            text,
            "The scripted tool call was not made: the request declares no tool named Bash or \
             shell; it declares Read, Write."
        );
        let none = json!("none");
        let Some(Scripted::Text(text)) =
            script.answer(&messages, Some(&tools(&["Bash"])), Some(&none), false)
        else {
            panic!("expected a text");
        };
        assert!(text.ends_with("it declares no tools."), "{text}");
    }

    #[test]
    fn structured_requests_are_left_alone_unless_matched() {
        let script = Script::from_yaml(EXAMPLE).unwrap();
        assert_eq!(script.answer(&user("route me"), None, None, true), None);
        // A matching tool-call turn does not answer it either.
        assert_eq!(
            script.answer(&user("list-the-directory"), None, None, true),
            None
        );
        // The order was not used up by it.
        assert_eq!(
            script.answer(&user("hi"), None, None, false),
            Some(Scripted::Text("First in order.".into()))
        );
        assert_eq!(
            script.answer(&user("zebra.txt?"), None, None, true),
            Some(Scripted::Text("The directory holds zebra.txt.".into()))
        );
    }

    #[test]
    fn a_fallback_answers_once_the_turns_are_used() {
        let script = Script::from_yaml(
            "turns: []\nfallback:\n  tool_calls: [{name: done, arguments: {ok: true}}]\n",
        )
        .unwrap();
        assert_eq!(
            script.answer(&user("x"), Some(&tools(&["done"])), None, false),
            Some(Scripted::Calls(vec![call("done", json!({"ok": true}))]))
        );
    }

    #[test]
    fn malformed_scripts_are_refused_with_their_place() {
        let refused = |text: &str| Script::from_yaml(text).unwrap_err();
        assert_eq!(
            refused("turns: [{}]"),
            "turns[0]: needs `text` or `tool_calls`"
        );
        assert_eq!(
            refused("turns: [{text: a, tool_calls: [{name: b}]}]"),
            "turns[0]: has both `text` and `tool_calls`; give one"
        );
        assert_eq!(
            refused("turns: [{tool_calls: []}]"),
            "turns[0].tool_calls: must name at least one call"
        );
        assert_eq!(
            refused("turns: [{text: a}, {tool_calls: [{arguments: {a: 1}}]}]"),
            "turns[1].tool_calls[0]: needs `name` or `options`"
        );
        assert_eq!(
            refused("turns: [{tool_calls: [{name: [], arguments: {}}]}]"),
            "turns[0].tool_calls[0]: names no tool"
        );
        assert_eq!(
            refused("turns: [{tool_calls: [{name: ''}]}]"),
            "turns[0].tool_calls[0]: a tool name must not be empty"
        );
        assert_eq!(
            refused("turns: [{tool_calls: [{options: [{name: a}], arguments: {}}]}]"),
            "turns[0].tool_calls[0]: `arguments` go inside each of `options`, not beside them"
        );
        assert_eq!(
            refused("turns: [{match: '', text: a}]"),
            "turns[0].match: must not be empty"
        );
        assert_eq!(
            refused("turns: []\nfallback: {match: a, text: b}"),
            "fallback: a fallback has no `match`"
        );
        // Shapes serde refuses: unknown keys, arguments that are not an object.
        assert!(Script::from_yaml("turns: [{txt: a}]").is_err());
        assert!(Script::from_yaml("turns: [{tool_calls: [{name: a, arguments: [1]}]}]").is_err());
        assert!(Script::from_yaml("turns: {a: 1}").is_err());
        assert!(Script::from_yaml("").is_err());
    }

    #[test]
    fn deep_arguments_are_kept_as_json() {
        let mut nested = String::from("1");
        for _ in 0..50 {
            nested = format!("[{nested}]");
        }
        let script = Script::from_yaml(&format!(
            "turns: [{{tool_calls: [{{name: f, arguments: {{a: {nested}}}}}]}}]"
        ))
        .unwrap();
        let Some(Scripted::Calls(calls)) =
            script.answer(&user("x"), Some(&tools(&["f"])), None, false)
        else {
            panic!("expected a call");
        };
        let arguments: Value = serde_json::from_str(&calls[0].arguments).unwrap();
        assert!(arguments["a"].is_array());
    }
}
