//! What a Gemini client says in Gemini's own terms beyond the chat request — JSON Schema
//! fields (`parametersJsonSchema`, a function's `response`/`responseJsonSchema`,
//! `generationConfig.responseJsonSchema`) and `thinkingConfig` — checked on the way in and
//! kept, so that a Gemini upstream receives them as they were sent (other upstreams get
//! the chat translation only).

use super::ingress::{camel_keys, unknown_field};
use crate::api::{Invalid, invalid};
use serde_json::Value;

/// The Gemini-only parts of a request a Gemini client sent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Native {
    /// Functions whose parameters came as JSON Schema (`parametersJsonSchema`): the chat
    /// request's `parameters` hold it unchanged.
    pub json_schema_parameters: Vec<String>,
    /// Functions' declared results (no chat counterpart): function name, field
    /// (`response` or `responseJsonSchema`) and the schema as sent.
    pub function_responses: Vec<(String, &'static str, Value)>,
    /// The response format's schema came as `responseJsonSchema` (JSON Schema), not as
    /// `responseSchema`.
    pub response_json_schema: bool,
    /// `generationConfig.thinkingConfig` as sent (field names in lowerCamelCase).
    pub thinking_config: Option<Value>,
}

impl Native {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Whether function `name` declared its parameters as JSON Schema.
    pub fn parameters_as_json_schema(&self, name: &str) -> bool {
        self.json_schema_parameters.iter().any(|n| n == name)
    }

    /// The declared result of function `name`: its field and schema.
    pub fn function_response(&self, name: &str) -> Option<(&'static str, &Value)> {
        self.function_responses
            .iter()
            .find(|(function, _, _)| function == name)
            .map(|(_, field, schema)| (*field, schema))
    }
}

/// A JSON Schema given in a `…JsonSchema` field: any JSON object, taken as it is but
/// for its type names, which Google also reads in Gemini's upper case (`"OBJECT"`, as
/// Gemini CLI writes some) and which are lower-cased, the standard spelling.
pub fn json_schema(value: &Value, at: &str) -> Result<Value, Invalid> {
    if !value.is_object() {
        return Err(invalid(format!(
            "Invalid value at '{at}': a JSON Schema must be an object"
        )));
    }
    let mut schema = value.clone();
    standard_types(&mut schema);
    Ok(schema)
}

/// Gemini's `Type` names, which a JSON Schema's `type` may use in Google's reading.
const GEMINI_TYPES: &[&str] = &[
    "STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL",
];

/// Lower-cases Gemini's type names in every `type` of a schema (values — `enum`,
/// `const`, defaults, examples — left alone). Depth is bounded by the JSON parser.
fn standard_types(schema: &mut Value) {
    match schema {
        Value::Object(object) => {
            for (key, value) in object.iter_mut() {
                match key.as_str() {
                    "type" => lower_type_names(value),
                    // Maps of names (which may be anything, `type` too) to schemas.
                    "properties" | "patternProperties" | "$defs" | "definitions"
                    | "dependentSchemas" => value
                        .as_object_mut()
                        .into_iter()
                        .flat_map(|named| named.values_mut())
                        .for_each(standard_types),
                    "enum" | "const" | "default" | "example" | "examples" => {}
                    _ => standard_types(value),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(standard_types),
        _ => {}
    }
}

/// A `type` (a name or a list of names) with Gemini's names lower-cased.
fn lower_type_names(names: &mut Value) {
    let lower = |name: &mut Value| {
        if let Some(upper) = name.as_str().filter(|n| GEMINI_TYPES.contains(n)) {
            *name = Value::String(upper.to_ascii_lowercase());
        }
    };
    match names {
        Value::Array(list) => list.iter_mut().for_each(lower),
        one => lower(one),
    }
}

/// `a` and `b` of the object at `at` are both set, where Gemini takes one.
pub fn exclusive(at: &str, a: &str, b: &str) -> Invalid {
    invalid(format!(
        "* GenerateContentRequest.{at}: `{a}` and `{b}` are mutually exclusive; set one"
    ))
}

/// Gemini's thinking levels and the chat `reasoning_effort` each becomes.
const THINKING_LEVELS: &[(&str, Option<&str>)] = &[
    ("THINKING_LEVEL_UNSPECIFIED", None),
    ("MINIMAL", Some("minimal")),
    ("LOW", Some("low")),
    ("MEDIUM", Some("medium")),
    ("HIGH", Some("high")),
];

/// `thinkingConfig`, checked as Google checks it; returned with its field names in
/// lowerCamelCase, and the chat `reasoning_effort` its `thinkingLevel` asks for.
/// `includeThoughts` and `thinkingBudget` have no chat counterpart: only a Gemini
/// upstream receives them.
pub fn thinking_config(value: &Value) -> Result<(Value, Option<&'static str>), Invalid> {
    const AT: &str = "generation_config.thinking_config";
    const FIELDS: &[&str] = &["includeThoughts", "thinkingBudget", "thinkingLevel"];
    let Some(config) = value.as_object().map(camel_keys) else {
        return Err(invalid(format!(
            "Invalid value at '{AT}': thinkingConfig must be an object"
        )));
    };
    let mut effort = None;
    for (key, field) in &config {
        match key.as_str() {
            // `null` is a field left at its default, as Google reads JSON.
            _ if field.is_null() && FIELDS.contains(&key.as_str()) => {}
            "includeThoughts" if field.is_boolean() => {}
            "includeThoughts" => {
                return Err(invalid(format!(
                    "Invalid value at '{AT}.include_thoughts' (TYPE_BOOL), {field}"
                )));
            }
            "thinkingBudget" if field.as_i64().is_some_and(|b| i32::try_from(b).is_ok()) => {}
            "thinkingBudget" => {
                return Err(invalid(format!(
                    "Invalid value at '{AT}.thinking_budget' (TYPE_INT32), {field}"
                )));
            }
            "thinkingLevel" => {
                let level = field
                    .as_str()
                    .and_then(|level| THINKING_LEVELS.iter().find(|(name, _)| *name == level));
                let Some((_, level_effort)) = level else {
                    return Err(invalid(format!(
                        "Invalid value at '{AT}.thinking_level', {field}: a thinking level is \
                         one of MINIMAL, LOW, MEDIUM, HIGH"
                    )));
                };
                effort = *level_effort;
            }
            _ => return Err(unknown_field(key, AT)),
        }
    }
    let set = |key: &str| config.get(key).is_some_and(|v| !v.is_null());
    if set("thinkingBudget") && set("thinkingLevel") {
        return Err(exclusive(AT, "thinkingBudget", "thinkingLevel"));
    }
    Ok((Value::Object(config), effort))
}

/// `responseModalities`: text is what every upstream answers; other modalities are
/// refused.
pub fn response_modalities(value: &Value) -> Result<(), Invalid> {
    let text_only = value
        .as_array()
        .is_some_and(|m| m.iter().all(|m| m.as_str() == Some("TEXT")));
    if text_only {
        Ok(())
    } else {
        Err(invalid(format!(
            "* GenerateContentRequest.generation_config.response_modalities: only `[\"TEXT\"]` \
             can be answered through Airlock, got {value}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{generate_content_request, ingress};
    use serde_json::{Value, json};

    fn to_chat(body: &Value) -> Result<crate::api::openai::ChatCompletionRequest, String> {
        ingress::to_chat(body.to_string().as_bytes(), "m", false).map_err(|e| e.0)
    }

    fn refused(body: Value) -> String {
        to_chat(&body).unwrap_err()
    }

    fn with_config(config: Value) -> Value {
        json!({"contents": [{"parts": [{"text": "x"}]}], "generationConfig": config})
    }

    fn with_declaration(declaration: Value) -> Value {
        json!({"contents": [{"parts": [{"text": "x"}]}],
               "tools": [{"functionDeclarations": [declaration]}]})
    }

    /// A JSON Schema Gemini's `Schema` cannot express (`oneOf`, `additionalProperties`).
    fn rich_schema() -> Value {
        json!({"type": "object", "properties": {"path": {"type": "string"},
               "mode": {"oneOf": [{"type": "string"}, {"type": "integer"}]}},
               "required": ["path"], "additionalProperties": {"type": "string"}})
    }

    #[test]
    fn json_schema_fields_reach_chat_as_json_schema_and_gemini_as_sent() {
        let router = json!({"type": "object", "properties": {"reasoning": {"type": "string"},
            "model_choice": {"type": "string", "enum": ["flash", "pro"]}},
            "required": ["reasoning", "model_choice"]});
        let body = json!({
            "contents": [{"role": "user", "parts": [{"text": "ls"}]}],
            "tools": [{"functionDeclarations": [
                {"name": "read_file", "description": "Reads", "parametersJsonSchema": rich_schema(),
                 "responseJsonSchema": {"type": "object"}},
                {"name": "w", "parameters": {"type": "OBJECT", "properties": {"c": {"type": "STRING"}}},
                 "response": {"type": "OBJECT", "properties": {"t": {"type": "NUMBER"}}}}]}],
            "generationConfig": {"temperature": 1, "responseMimeType": "application/json",
                "responseJsonSchema": router,
                "thinkingConfig": {"includeThoughts": true, "thinking_level": "LOW"}}
        });
        let chat = to_chat(&body).unwrap();
        let value = serde_json::to_value(&chat).unwrap();
        assert_eq!(value["tools"][0]["function"]["parameters"], rich_schema());
        assert_eq!(
            value["tools"][1]["function"]["parameters"],
            json!({"type": "object", "properties": {"c": {"type": "string"}}})
        );
        assert_eq!(
            value["response_format"],
            json!({"type": "json_schema", "json_schema": {"name": "response", "schema": router}})
        );
        assert_eq!(value["reasoning_effort"], "low");
        // Nothing Gemini-only is in what other upstreams receive.
        let text = value.to_string();
        assert!(!text.contains("thinking") && !text.contains("responseJsonSchema"));
        assert!(!chat.gemini_native.as_ref().unwrap().is_empty());

        let gemini = generate_content_request(&chat).unwrap();
        let declarations = &gemini["tools"][0]["functionDeclarations"];
        assert_eq!(declarations[0]["parametersJsonSchema"], rich_schema());
        assert_eq!(
            declarations[0]["responseJsonSchema"],
            json!({"type": "object"})
        );
        assert!(declarations[0].get("parameters").is_none());
        assert_eq!(declarations[1]["parameters"]["type"], "OBJECT");
        assert_eq!(
            declarations[1]["response"]["properties"]["t"]["type"],
            "NUMBER"
        );
        let config = &gemini["generationConfig"];
        assert_eq!(config["responseMimeType"], "application/json");
        assert_eq!(config["responseJsonSchema"], router);
        assert!(config.get("responseSchema").is_none());
        assert_eq!(
            config["thinkingConfig"],
            json!({"includeThoughts": true, "thinkingLevel": "LOW"})
        );
    }

    #[test]
    fn gemini_type_names_in_json_schema_are_lower_cased() {
        // As Gemini CLI's model router sends it.
        let schema = json!({"type": "OBJECT", "properties": {
            "score": {"type": "INTEGER", "description": "1-100", "default": {"type": "STRING"}},
            "type": {"type": ["STRING", "NULL"], "enum": ["OBJECT"], "const": "ARRAY"},
            "items": {"type": "ARRAY", "items": {"anyOf": [{"type": "NUMBER"}, {"type": "Object"}]}}},
            "required": ["score"]});
        let chat = to_chat(&with_config(
            json!({"responseMimeType": "application/json", "responseJsonSchema": schema}),
        ))
        .unwrap();
        let sent =
            &serde_json::to_value(&chat).unwrap()["response_format"]["json_schema"]["schema"];
        assert_eq!(
            *sent,
            json!({"type": "object", "properties": {
                "score": {"type": "integer", "description": "1-100", "default": {"type": "STRING"}},
                "type": {"type": ["string", "null"], "enum": ["OBJECT"], "const": "ARRAY"},
                "items": {"type": "array", "items": {"anyOf": [{"type": "number"}, {"type": "Object"}]}}},
                "required": ["score"]})
        );
    }

    #[test]
    fn both_schema_spellings_at_once_are_refused() {
        assert_eq!(
            refused(with_config(json!({"responseMimeType": "application/json",
                "responseSchema": {"type": "STRING"}, "responseJsonSchema": {"type": "string"}}))),
            "* GenerateContentRequest.generation_config: `responseSchema` and \
             `responseJsonSchema` are mutually exclusive; set one"
        );
        assert_eq!(
            refused(with_declaration(json!({"name": "f",
                "parameters": {"type": "OBJECT", "properties": {"a": {"type": "STRING"}}},
                "parametersJsonSchema": {"type": "object"}}))),
            "* GenerateContentRequest.tools[0].function_declarations[0]: `parameters` and \
             `parametersJsonSchema` are mutually exclusive; set one"
        );
        assert!(
            refused(with_declaration(
                json!({"name": "f", "response": {"type": "STRING"},
                "responseJsonSchema": {"type": "string"}})
            ))
            .contains("`response` and `responseJsonSchema` are mutually exclusive")
        );
    }

    #[test]
    fn malformed_json_schema_fields_are_refused() {
        assert_eq!(
            refused(with_declaration(
                json!({"name": "f", "parametersJsonSchema": "object"})
            )),
            "Invalid value at 'tools[0].function_declarations[0].parameters_json_schema': a \
             JSON Schema must be an object"
        );
        assert!(
            refused(with_declaration(
                json!({"name": "f", "responseJsonSchema": [1]})
            ))
            .contains("response_json_schema': a JSON Schema must be an object")
        );
        assert!(
            refused(with_declaration(
                json!({"parametersJsonSchema": {"type": "object"}})
            ))
            .contains("missing field `name`")
        );
        assert_eq!(
            refused(with_config(
                json!({"responseJsonSchema": {"type": "object"}})
            )),
            "* GenerateContentRequest.generation_config.response_mime_type: must be \
             application/json when response_json_schema is set"
        );
        assert!(
            refused(with_config(json!({"responseMimeType": "application/json",
                "responseJsonSchema": null})))
            .contains("a JSON Schema must be an object")
        );
        // Deeply nested schemas pass through unchanged (serde_json bounds the depth).
        let mut deep = json!({"type": "string"});
        for _ in 0..60 {
            deep = json!({"type": "object", "properties": {"a": deep}});
        }
        let chat = to_chat(&with_declaration(
            json!({"name": "f", "parametersJsonSchema": deep.clone()}),
        ))
        .unwrap();
        assert_eq!(
            serde_json::to_value(&chat).unwrap()["tools"][0]["function"]["parameters"],
            deep
        );
    }

    #[test]
    fn thinking_config_is_checked_and_only_its_level_reaches_chat() {
        let chat = to_chat(&with_config(
            json!({"thinkingConfig": {"includeThoughts": true, "thinkingBudget": -1}}),
        ))
        .unwrap();
        assert!(chat.extra.get("reasoning_effort").is_none());
        assert_eq!(
            chat.gemini_native.as_ref().unwrap().thinking_config,
            Some(json!({"includeThoughts": true, "thinkingBudget": -1}))
        );
        let config = |thinking: Value| refused(with_config(json!({"thinkingConfig": thinking})));
        assert_eq!(
            config(json!({"includeThoughts": "yes"})),
            "Invalid value at 'generation_config.thinking_config.include_thoughts' (TYPE_BOOL), \
             \"yes\""
        );
        assert!(config(json!({"thinkingBudget": 1e12})).contains("(TYPE_INT32)"));
        assert!(config(json!({"thinkingBudget": 99_999_999_999_i64})).contains("(TYPE_INT32)"));
        assert_eq!(
            config(json!({"thinkingLevel": "EXTREME"})),
            "Invalid value at 'generation_config.thinking_config.thinking_level', \"EXTREME\": a \
             thinking level is one of MINIMAL, LOW, MEDIUM, HIGH"
        );
        assert!(
            config(json!({"thinkingBudget": 10, "thinkingLevel": "HIGH"}))
                .contains("`thinkingBudget` and `thinkingLevel` are mutually exclusive")
        );
        assert_eq!(
            config(json!({"thoughts": 1})),
            "Invalid JSON payload received. Unknown name \"thoughts\" at \
             'generation_config.thinking_config': Cannot find field."
        );
        assert!(config(json!([true])).contains("thinkingConfig must be an object"));
        assert!(
            to_chat(&with_config(
                json!({"thinkingConfig": {"includeThoughts": null}})
            ))
            .is_ok()
        );
    }

    #[test]
    fn other_fields_google_knows_are_refused_by_name() {
        assert_eq!(
            refused(with_config(json!({"speechConfig": {}}))),
            "* GenerateContentRequest.generation_config: `speechConfig` is not supported \
             through Airlock"
        );
        assert!(to_chat(&with_config(json!({"responseModalities": ["TEXT"]}))).is_ok());
        assert!(
            refused(with_config(json!({"responseModalities": ["IMAGE"]})))
                .contains("only `[\"TEXT\"]` can be answered")
        );
        assert!(
            refused(with_declaration(
                json!({"name": "f", "behavior": "NON_BLOCKING"})
            ))
            .contains("behavior: non-blocking functions")
        );
    }

    #[test]
    fn tools_google_runs_are_dropped_and_named_or_refused() {
        use crate::api::hosted::HostedTools;
        let body = json!({"contents": [{"parts": [{"text": "x"}]}],
                          "tools": [{"googleSearch": {}},
                                    {"url_context": {}, "functionDeclarations": [{"name": "f"}]}]})
        .to_string();
        let (chat, dropped) =
            ingress::translate(body.as_bytes(), "m", false, HostedTools::Drop).unwrap();
        assert_eq!(dropped.header_value(), "googleSearch, urlContext");
        let tools = chat.extra["tools"].as_array().unwrap();
        assert_eq!(tools.len(), 1);
        assert_eq!(tools[0]["function"]["name"], "f");
        let refused = ingress::translate(body.as_bytes(), "m", false, HostedTools::Refuse)
            .unwrap_err()
            .0;
        assert!(
            refused.starts_with("tools[0]: `googleSearch` is a built-in tool of Google's platform"),
            "{refused}"
        );
    }
}
