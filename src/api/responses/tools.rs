//! The Responses API's tools as chat functions, and the model's calls back: function
//! tools as they are, `namespace` groups flattened to `NAMESPACE__NAME` functions,
//! free-form `custom` tools as a function of one string (`input`), and OpenAI's built-in
//! tools dropped or refused (`tools.hosted`).

use crate::api::hosted::{DroppedTools, HostedTools};
use crate::api::{Invalid, invalid};
use serde_json::{Value, json};
use std::collections::HashMap;

/// Longest function name OpenAI accepts (`^[a-zA-Z0-9_-]{1,64}$`).
const MAX_NAME: usize = 64;

/// OpenAI's built-in tools: run on OpenAI's side (web search, files, code, images,
/// hosted MCP), or by the client for actions only OpenAI's models are trained to ask for
/// (computer use, shell, patches).
const BUILT_IN: &[&str] = &[
    "web_search",
    "web_search_2025_08_26",
    "web_search_preview",
    "web_search_preview_2025_03_11",
    "file_search",
    "code_interpreter",
    "image_generation",
    "computer",
    "computer_use",
    "computer_use_preview",
    "mcp",
    "local_shell",
    "shell",
    "apply_patch",
    "tool_search",
    "programmatic_tool_calling",
];

/// The parameter a custom tool's free-form input travels in.
const CUSTOM_INPUT: &str = "input";

/// What a chat function stands for on the client's side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTool {
    pub namespace: Option<String>,
    pub name: String,
    /// A free-form `custom` tool (else a function).
    pub custom: bool,
}

/// The chat functions' names for the client's tools, both ways. Functions outside any
/// namespace keep their names and are not listed.
#[derive(Debug, Clone, Default)]
pub struct ToolMap {
    by_chat: HashMap<String, ClientTool>,
    to_chat: HashMap<(Option<String>, String), String>,
}

impl ToolMap {
    /// The client's tool behind a chat function name.
    pub fn client_tool(&self, chat_name: &str) -> ClientTool {
        self.by_chat.get(chat_name).cloned().unwrap_or(ClientTool {
            namespace: None,
            name: chat_name.to_string(),
            custom: false,
        })
    }

    /// The chat function name of a client's tool (a namespaced one not declared in this
    /// request gets the name it would have had).
    pub fn chat_name(&self, namespace: Option<&str>, name: &str) -> String {
        let key = (namespace.map(str::to_string), name.to_string());
        match self.to_chat.get(&key) {
            Some(chat) => chat.clone(),
            None => match namespace {
                Some(namespace) => flat_name(namespace, name),
                None => name.to_string(),
            },
        }
    }

    /// Assigns a tool its chat name: its own, `NAMESPACE__NAME`, or either shortened
    /// with a hash when too long or already taken.
    fn assign(&mut self, tool: ClientTool, at: &str) -> Result<String, Invalid> {
        let key = (tool.namespace.clone(), tool.name.clone());
        if self.to_chat.contains_key(&key) {
            return Err(invalid(format!(
                "{at}: the tool `{}` is declared twice",
                qualified(&tool)
            )));
        }
        let base = match &tool.namespace {
            Some(namespace) => flat_name(namespace, &tool.name),
            None => tool.name.clone(),
        };
        let mut chat = base.clone();
        let mut salt = 0u32;
        while self.by_chat.contains_key(&chat)
            || (tool.namespace.is_some() && chat.len() > MAX_NAME)
        {
            chat = hashed_name(&base, &qualified(&tool), salt);
            salt += 1;
        }
        self.to_chat.insert(key, chat.clone());
        self.by_chat.insert(chat.clone(), tool);
        Ok(chat)
    }
}

/// `namespace.name`, for messages.
fn qualified(tool: &ClientTool) -> String {
    match &tool.namespace {
        Some(namespace) => format!("{namespace}.{}", tool.name),
        None => tool.name.clone(),
    }
}

/// A name OpenAI accepts, characters outside `[a-zA-Z0-9_-]` made `_`.
fn legal(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A namespaced tool's flat name.
fn flat_name(namespace: &str, name: &str) -> String {
    format!("{}__{}", legal(namespace), legal(name))
}

/// `base` cut to fit with a hash of the tool's qualified name (and `salt`) after it.
fn hashed_name(base: &str, qualified: &str, salt: u32) -> String {
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        format!("{qualified}\u{0}{salt}").as_bytes(),
    );
    let hash: String = digest.as_ref()[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let keep = MAX_NAME - hash.len() - 1;
    let cut: String = base.chars().take(keep).collect();
    format!("{cut}_{hash}")
}

/// The request's tools as chat tools, the names both ways, and the built-in tools left
/// out.
#[derive(Debug, Default)]
pub struct Tools {
    pub chat: Vec<Value>,
    pub map: ToolMap,
    pub dropped: DroppedTools,
}

/// A tool's `name`, which must be a non-empty string.
fn name_of<'a>(tool: &'a Value, at: &str, what: &str) -> Result<&'a str, Invalid> {
    tool.get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            invalid(format!(
                "{at}: a {what} needs a `name` (a non-empty string)"
            ))
        })
}

/// The text a string field holds, if any.
fn text_field<'a>(tool: &'a Value, field: &str) -> Option<&'a str> {
    tool.get(field)
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
}

impl Tools {
    /// Translates `tools` (the request's, then those of `additional_tools` items, each
    /// with where it was declared).
    pub fn translate<'a>(
        tools: impl IntoIterator<Item = (String, &'a Value)>,
        hosted: HostedTools,
    ) -> Result<Self, Invalid> {
        let mut out = Tools::default();
        let mut namespaces = Vec::new();
        // Top-level names first, so that flattened names step aside for them.
        for (at, tool) in tools {
            match tool.get("type").and_then(Value::as_str) {
                Some("function") => out.function(tool, None, None, &at)?,
                Some("custom") => out.custom(tool, None, &at)?,
                Some("namespace") => namespaces.push((at, tool)),
                Some(kind) => match BUILT_IN.iter().find(|b| **b == kind) {
                    Some(built_in) => out.dropped.hosted(hosted, &at, built_in, "OpenAI")?,
                    None => {
                        return Err(invalid(format!(
                            "{at}: tools of type `{kind}` are not supported; use `function`, `custom` or `namespace` tools"
                        )));
                    }
                },
                None => return Err(invalid(format!("{at}: a tool needs a `type` (a string)"))),
            }
        }
        for (at, tool) in namespaces {
            out.namespace(tool, &at)?;
        }
        Ok(out)
    }

    fn namespace(&mut self, tool: &Value, at: &str) -> Result<(), Invalid> {
        let namespace = name_of(tool, at, "namespace")?;
        let Some(members) = tool.get("tools").and_then(Value::as_array) else {
            return Err(invalid(format!(
                "{at}: the namespace `{namespace}` needs `tools` (a list of function or custom tools)"
            )));
        };
        let about = text_field(tool, "description");
        for (i, member) in members.iter().enumerate() {
            let at = format!("{at}.tools[{i}]");
            match member.get("type").and_then(Value::as_str) {
                Some("function") => self.function(member, Some(namespace), about, &at)?,
                Some("custom") => self.custom(member, Some(namespace), &at)?,
                Some(kind) => {
                    return Err(invalid(format!(
                        "{at}: a namespace holds function and custom tools, not `{kind}`"
                    )));
                }
                None => return Err(invalid(format!("{at}: a tool needs a `type` (a string)"))),
            }
        }
        Ok(())
    }

    /// A function tool, `about` its namespace's description.
    fn function(
        &mut self,
        tool: &Value,
        namespace: Option<&str>,
        about: Option<&str>,
        at: &str,
    ) -> Result<(), Invalid> {
        let name = name_of(tool, at, "function tool")?;
        let chat = self.map.assign(
            ClientTool {
                namespace: namespace.map(str::to_string),
                name: name.to_string(),
                custom: false,
            },
            at,
        )?;
        let mut function = json!({"name": chat});
        let description = match (namespace, about) {
            (Some(namespace), Some(about)) => Some(format!(
                "(`{namespace}`: {about})\n\n{}",
                text_field(tool, "description").unwrap_or("")
            )),
            _ => text_field(tool, "description").map(str::to_string),
        };
        if let Some(description) = description {
            function["description"] = description.trim_end().into();
        }
        for field in ["parameters", "strict"] {
            if let Some(value) = tool.get(field).filter(|v| !v.is_null()) {
                function[field] = value.clone();
            }
        }
        self.chat
            .push(json!({"type": "function", "function": function}));
        Ok(())
    }

    /// A free-form tool: a function of one string, its description saying the format.
    fn custom(&mut self, tool: &Value, namespace: Option<&str>, at: &str) -> Result<(), Invalid> {
        let name = name_of(tool, at, "custom tool")?;
        let format = custom_format(tool.get("format"), at)?;
        let chat = self.map.assign(
            ClientTool {
                namespace: namespace.map(str::to_string),
                name: name.to_string(),
                custom: true,
            },
            at,
        )?;
        let mut description = text_field(tool, "description").unwrap_or("").to_string();
        if !description.is_empty() {
            description.push_str("\n\n");
        }
        description.push_str(&format);
        let parameters = json!({"type": "object", "properties": {CUSTOM_INPUT: {"type": "string",
            "description": "The tool's whole input, as free-form text (not JSON)"}},
            "required": [CUSTOM_INPUT], "additionalProperties": false});
        self.chat.push(json!({"type": "function", "function": {
            "name": chat, "description": description, "parameters": parameters}}));
        Ok(())
    }
}

/// What a custom tool's `format` asks of its input, in words for the model.
fn custom_format(format: Option<&Value>, at: &str) -> Result<String, Invalid> {
    let plain = format!("Put the whole input, as free-form text, in `{CUSTOM_INPUT}`.");
    let Some(format) = format.filter(|f| !f.is_null()) else {
        return Ok(plain);
    };
    match format.get("type").and_then(Value::as_str) {
        Some("text") => Ok(plain),
        Some("grammar") => {
            let (Some(syntax), Some(definition)) = (
                format.get("syntax").and_then(Value::as_str),
                format.get("definition").and_then(Value::as_str),
            ) else {
                return Err(invalid(format!(
                    "{at}.format: a grammar needs `syntax` and `definition` (strings)"
                )));
            };
            Ok(format!(
                "{plain} The input must follow this {syntax} grammar:\n{definition}"
            ))
        }
        _ => Err(invalid(format!(
            "{at}.format: the format of a custom tool is `{{\"type\": \"text\"}}` or a `grammar`"
        ))),
    }
}

/// A chat tool call's arguments as a custom tool's input: the `input` string, or the
/// arguments as they are when the model did not answer with that object.
pub fn custom_input(arguments: &str) -> String {
    match serde_json::from_str::<Value>(arguments) {
        Ok(Value::Object(mut fields)) => match fields.remove(CUSTOM_INPUT) {
            Some(Value::String(input)) => input,
            _ => arguments.to_string(),
        },
        _ => arguments.to_string(),
    }
}

/// A custom tool's input as chat tool-call arguments.
pub fn custom_arguments(input: &str) -> String {
    json!({CUSTOM_INPUT: input}).to_string()
}

/// The item id of the tool call `call_id`: `fc_…` for functions, `ctc_…` for custom tools.
pub fn call_item_id(call_id: &str, custom: bool) -> String {
    let suffix = call_id.trim_start_matches("call_");
    if custom {
        format!("ctc_{suffix}")
    } else {
        format!("fc_{suffix}")
    }
}

/// The output item of a model's tool call, as the client declared the tool: a
/// `function_call` (with its `namespace`, if any) or a `custom_tool_call`.
pub fn call_item(tool: &ClientTool, call_id: &str, arguments: &str, status: &str) -> Value {
    let mut item = if tool.custom {
        // The API's custom tool call has no `status`.
        json!({"type": "custom_tool_call", "id": call_item_id(call_id, true), "call_id": call_id,
               "name": tool.name, "input": custom_input(arguments)})
    } else {
        json!({"type": "function_call", "id": call_item_id(call_id, false), "call_id": call_id,
               "name": tool.name, "arguments": arguments, "status": status})
    };
    if let Some(namespace) = &tool.namespace {
        item["namespace"] = namespace.as_str().into();
    }
    item
}

/// `tool_choice` as a chat `tool_choice`.
pub fn tool_choice(choice: &Value, map: &ToolMap) -> Result<Value, Invalid> {
    if let Some(mode) = choice.as_str() {
        return match mode {
            "auto" | "none" | "required" => Ok(choice.clone()),
            other => Err(invalid(format!(
                "`tool_choice` `{other}` is not supported: use `auto`, `none`, `required` or name one tool"
            ))),
        };
    }
    let kind = choice.get("type").and_then(Value::as_str).unwrap_or("");
    let name = choice.get("name").and_then(Value::as_str);
    match (kind, name) {
        ("function" | "custom", Some(name)) => {
            let namespace = choice.get("namespace").and_then(Value::as_str);
            let chat = map.chat_name(namespace, name);
            Ok(json!({"type": "function", "function": {"name": chat}}))
        }
        ("function" | "custom", None) => Err(invalid(format!(
            "`tool_choice` of type `{kind}` needs a `name` (a string)"
        ))),
        (kind, _) if BUILT_IN.contains(&kind) => Err(invalid(format!(
            "`tool_choice` asks for `{kind}`, one of OpenAI's built-in tools, which the models behind Airlock cannot run"
        ))),
        _ => Err(invalid(
            "`tool_choice` must be `auto`, `none`, `required`, or name one function or custom tool",
        )),
    }
}
