//! Tool calls: which tool the mock "model" calls, and arguments generated from its schema.

use serde_json::{Map, Value};

/// How deep nested object schemas are filled before giving up with `{}`.
const MAX_SCHEMA_DEPTH: usize = 8;

/// The tool call every choice of a response will carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedCall {
    pub name: String,
    /// The arguments as the JSON text sent in `function.arguments`.
    pub arguments: String,
    /// vLLM answers `content: null` for auto tool choice and `""` for named or
    /// `required` tool choice.
    pub content_empty_string: bool,
}

/// Decides, like vLLM's request validation, whether the response is a tool call.
/// `Err` carries the message of a 400 `BadRequestError`.
pub fn plan(
    tools: Option<&[Value]>,
    tool_choice: Option<&Value>,
) -> Result<Option<PlannedCall>, String> {
    const USAGE: &str =
        r#"Correct usage: `{"type": "function", "function": {"name": "my_function"}}`"#;

    let Some(tools) = tools else {
        return match tool_choice {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(choice)) if choice == "none" => Ok(None),
            Some(_) => Err("When using `tool_choice`, `tools` must be set.".to_owned()),
        };
    };
    let names = tools
        .iter()
        .enumerate()
        .map(|(i, tool)| {
            tool.pointer("/function/name")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("tools.{i}.function.name: Field required"))
        })
        .collect::<Result<Vec<&str>, String>>()?;

    let (index, content_empty_string) = match tool_choice {
        // vLLM defaults a missing tool_choice to "auto" when tools are given.
        None | Some(Value::Null) => (0, false),
        Some(Value::String(choice)) => match choice.as_str() {
            "none" => return Ok(None),
            "auto" => (0, false),
            "required" => (0, true),
            other => {
                return Err(format!(
                    "Invalid value for `tool_choice`: {other}! Only named tools, \"none\", \
                     \"auto\" or \"required\" are supported."
                ));
            }
        },
        Some(Value::Object(choice)) => {
            let Some(function) = choice.get("function").and_then(Value::as_object) else {
                return Err(format!(
                    "Invalid value for `function` in `tool_choice`! {USAGE}"
                ));
            };
            let Some(name) = function.get("name").and_then(Value::as_str) else {
                return Err(format!(
                    "Expected field `name` in `function` in `tool_choice`! {USAGE}"
                ));
            };
            let Some(index) = names.iter().position(|candidate| *candidate == name) else {
                return Err(
                    "The tool specified in `tool_choice` does not match any of the specified \
                     `tools`"
                        .to_owned(),
                );
            };
            (index, true)
        }
        Some(other) => {
            return Err(format!(
                "Invalid value for `tool_choice`: {other}! Only named tools, \"none\", \"auto\" \
                 or \"required\" are supported."
            ));
        }
    };

    let (Some(tool), Some(name)) = (tools.get(index), names.get(index)) else {
        // An empty `tools` list leaves the model nothing to call.
        return Ok(None);
    };
    let arguments = arguments_for(tool.pointer("/function/parameters"));
    Ok(Some(PlannedCall {
        name: (*name).to_owned(),
        arguments: arguments.to_string(),
        content_empty_string,
    }))
}

/// An arguments object with every `required` property of `parameters` filled with a
/// deterministic value of the declared type.
pub fn arguments_for(parameters: Option<&Value>) -> Value {
    match parameters {
        Some(schema) => match value_for(schema, 0) {
            object @ Value::Object(_) => object,
            _ => Value::Object(Map::new()),
        },
        None => Value::Object(Map::new()),
    }
}

fn value_for(schema: &Value, depth: usize) -> Value {
    let Some(schema) = schema.as_object() else {
        return Value::String("mock".to_owned());
    };
    if let Some(first) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|options| options.first())
    {
        return first.clone();
    }
    if let Some(constant) = schema.get("const") {
        return constant.clone();
    }
    let declared = match schema.get("type") {
        Some(Value::String(kind)) => Some(kind.as_str()),
        // ["string", "null"]: the first concrete type.
        Some(Value::Array(kinds)) => kinds
            .iter()
            .filter_map(Value::as_str)
            .find(|kind| *kind != "null")
            .or_else(|| kinds.first().and_then(Value::as_str)),
        _ => None,
    };
    let kind = declared.or_else(|| {
        if schema.contains_key("properties") {
            Some("object")
        } else if schema.contains_key("items") {
            Some("array")
        } else {
            None
        }
    });
    match kind {
        Some("string") => Value::String("mock".to_owned()),
        Some("number" | "integer") => Value::from(1),
        Some("boolean") => Value::Bool(true),
        Some("array") => Value::Array(Vec::new()),
        Some("null") => Value::Null,
        Some("object") => object_for(schema, depth),
        _ => {
            let alternative = ["anyOf", "oneOf", "allOf"].iter().find_map(|key| {
                schema
                    .get(*key)
                    .and_then(Value::as_array)
                    .and_then(|options| options.first())
            });
            match alternative {
                Some(option) => value_for(option, depth),
                None => Value::String("mock".to_owned()),
            }
        }
    }
}

fn object_for(schema: &Map<String, Value>, depth: usize) -> Value {
    let mut object = Map::new();
    if depth >= MAX_SCHEMA_DEPTH {
        return Value::Object(object);
    }
    let properties = schema.get("properties").and_then(Value::as_object);
    let required = schema
        .get("required")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for name in required.iter().filter_map(Value::as_str) {
        let value = match properties.and_then(|props| props.get(name)) {
            Some(property) => value_for(property, depth + 1),
            None => Value::String("mock".to_owned()),
        };
        object.insert(name.to_owned(), value);
    }
    Value::Object(object)
}

/// Splits `text` into `parts` pieces of similar length on character boundaries,
/// dropping empty pieces: the argument deltas of a streamed tool call.
pub fn split_fragments(text: &str, parts: usize) -> Vec<&str> {
    let parts = parts.max(1);
    let mut fragments = Vec::with_capacity(parts);
    let mut start = 0;
    for k in 1..=parts {
        let mut end = if k == parts {
            text.len()
        } else {
            text.len() * k / parts
        };
        while end < text.len() && !text.is_char_boundary(end) {
            end += 1;
        }
        if end > start {
            fragments.push(&text[start..end]);
            start = end;
        }
    }
    fragments
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn fills_every_required_property_by_type() {
        let schema = json!({
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "days": {"type": "integer"},
                "ratio": {"type": "number"},
                "metric": {"type": "boolean"},
                "tags": {"type": "array", "items": {"type": "string"}},
                "extra": {"type": "object"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "maybe": {"type": ["null", "string"]},
                "optional": {"type": "string"}
            },
            "required": ["city", "days", "ratio", "metric", "tags", "extra", "unit", "maybe"]
        });
        assert_eq!(
            arguments_for(Some(&schema)),
            json!({
                "city": "mock",
                "days": 1,
                "ratio": 1,
                "metric": true,
                "tags": [],
                "extra": {},
                "unit": "celsius",
                "maybe": "mock"
            })
        );
    }

    #[test]
    fn nested_objects_get_their_required_properties() {
        let schema = json!({
            "type": "object",
            "properties": {
                "location": {
                    "type": "object",
                    "properties": {"lat": {"type": "number"}, "name": {"type": "string"}},
                    "required": ["lat"]
                },
                "choice": {"anyOf": [{"type": "boolean"}, {"type": "string"}]}
            },
            "required": ["location", "choice", "undeclared"]
        });
        assert_eq!(
            arguments_for(Some(&schema)),
            json!({"location": {"lat": 1}, "choice": true, "undeclared": "mock"})
        );
    }

    #[test]
    fn missing_or_odd_schemas_give_an_empty_object() {
        assert_eq!(arguments_for(None), json!({}));
        assert_eq!(arguments_for(Some(&json!({"type": "object"}))), json!({}));
        assert_eq!(arguments_for(Some(&json!("nonsense"))), json!({}));
        let cyclic_depth = json!({"type": "object", "properties": {}, "required": []});
        assert_eq!(arguments_for(Some(&cyclic_depth)), json!({}));
    }

    #[test]
    fn fragments_reassemble_to_the_original() {
        for text in ["", "{}", r#"{"city":"mock","days":1}"#, "ünïcödé→✓"] {
            for parts in [1, 2, 3, 5] {
                let fragments = split_fragments(text, parts);
                assert_eq!(fragments.concat(), text);
                assert!(fragments.len() <= parts);
                assert!(fragments.iter().all(|f| !f.is_empty()));
            }
        }
        assert_eq!(split_fragments(r#"{"a":"mock"}"#, 3).len(), 3);
    }

    fn tool(name: &str) -> Value {
        json!({"type": "function", "function": {"name": name, "parameters": {
            "type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]
        }}})
    }

    #[test]
    fn plans_follow_vllm_tool_choice_rules() {
        let tools = [tool("first"), tool("second")];
        let auto = plan(Some(&tools), None).unwrap().unwrap();
        assert_eq!(auto.name, "first");
        assert_eq!(auto.arguments, r#"{"q":"mock"}"#);
        assert!(!auto.content_empty_string);

        let named = json!({"type": "function", "function": {"name": "second"}});
        let named = plan(Some(&tools), Some(&named)).unwrap().unwrap();
        assert_eq!(named.name, "second");
        assert!(named.content_empty_string);

        assert!(
            plan(Some(&tools), Some(&json!("required")))
                .unwrap()
                .unwrap()
                .content_empty_string
        );
        assert_eq!(plan(Some(&tools), Some(&json!("none"))), Ok(None));
        assert_eq!(plan(None, None), Ok(None));
        assert_eq!(plan(Some(&[]), Some(&json!("auto"))), Ok(None));
        assert!(plan(None, Some(&json!("auto"))).is_err());
        assert!(plan(Some(&tools), Some(&json!("sometimes"))).is_err());
        let unknown = json!({"type": "function", "function": {"name": "third"}});
        assert!(plan(Some(&tools), Some(&unknown)).is_err());
        assert!(plan(Some(&[json!({"type": "function"})]), None).is_err());
    }
}
