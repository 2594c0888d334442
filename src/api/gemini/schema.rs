//! JSON Schema, as OpenAI clients write it, rewritten as Gemini's `Schema` (a subset of
//! OpenAPI 3.0). Keywords with an equivalent are rewritten, annotations that constrain
//! nothing are dropped, and every other keyword is refused by name: a schema is never
//! loosened silently.

use crate::api::{Invalid, invalid};
use serde_json::{Map, Value};

/// Nesting (and `$ref` expansion) deeper than this is refused.
const MAX_DEPTH: usize = 32;

/// Keywords Gemini's `Schema` has under the same name and meaning.
const KEPT: &[&str] = &[
    "title",
    "description",
    "format",
    "default",
    "example",
    "required",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "pattern",
    "minimum",
    "maximum",
    "minProperties",
    "maxProperties",
    "nullable",
    "propertyOrdering",
];

/// Keywords that only annotate a schema; dropping them constrains the answer no less.
const ANNOTATIONS: &[&str] = &[
    "$schema",
    "$id",
    "$comment",
    "$anchor",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
];

/// `schema` as Gemini's `Schema`; `path` names it in errors (e.g.
/// `response_format.json_schema.schema`).
pub fn to_gemini(schema: &Value, path: &str) -> Result<Value, Invalid> {
    Converter {
        root: schema,
        expanding: Vec::new(),
    }
    .convert(schema, path, 0)
}

/// Whether a converted object schema declares no properties (Gemini refuses those).
pub fn is_free_form_object(schema: &Value) -> bool {
    schema["type"] == "OBJECT"
        && schema
            .get("properties")
            .and_then(Value::as_object)
            .is_none_or(Map::is_empty)
}

struct Converter<'a> {
    /// Where `#/$defs/…` references resolve.
    root: &'a Value,
    /// The references being expanded, outermost first (a cycle is refused).
    expanding: Vec<String>,
}

fn refuse(path: &str, why: impl std::fmt::Display) -> Invalid {
    invalid(format!("{path}: {why} (Gemini upstreams)"))
}

impl<'a> Converter<'a> {
    fn convert(&mut self, schema: &Value, path: &str, depth: usize) -> Result<Value, Invalid> {
        if depth > MAX_DEPTH {
            return Err(refuse(path, "the schema nests too deeply"));
        }
        let Some(object) = schema.as_object() else {
            return Err(refuse(path, "a schema must be an object"));
        };
        if let Some(reference) = object.get("$ref") {
            return self.expand(reference, object, path, depth);
        }
        let mut out = Map::new();
        for (keyword, value) in object {
            let at = || format!("{path}.{keyword}");
            match keyword.as_str() {
                "type" => apply_type(value, &mut out, &at())?,
                "enum" => apply_enum(value, &mut out, &at())?,
                "const" => match value {
                    Value::String(_) => {
                        out.insert("enum".into(), Value::Array(vec![value.clone()]));
                    }
                    _ => return Err(refuse(&at(), "only a string `const` can be expressed")),
                },
                "properties" => {
                    let Some(properties) = value.as_object() else {
                        return Err(refuse(&at(), "`properties` must be an object"));
                    };
                    let mut converted = Map::new();
                    for (name, property) in properties {
                        let sub = self.convert(property, &format!("{}.{name}", at()), depth + 1)?;
                        converted.insert(name.clone(), sub);
                    }
                    if !object.contains_key("propertyOrdering") && converted.len() > 1 {
                        // Gemini orders properties alphabetically unless told otherwise;
                        // the schema's own order is the one the client expects.
                        let order = converted.keys().cloned().map(Value::String).collect();
                        out.insert("propertyOrdering".into(), Value::Array(order));
                    }
                    out.insert("properties".into(), Value::Object(converted));
                }
                "items" => {
                    if value.is_array() {
                        return Err(refuse(&at(), "tuple `items` cannot be expressed"));
                    }
                    out.insert("items".into(), self.convert(value, &at(), depth + 1)?);
                }
                "anyOf" => self.apply_any_of(value, &mut out, &at(), depth)?,
                "allOf" => match value.as_array().map(Vec::as_slice) {
                    // One entry (as pydantic writes a described `$ref`): merged in.
                    Some([only]) => {
                        let merged = self.convert(only, &format!("{}[0]", at()), depth + 1)?;
                        for (k, v) in merged.as_object().into_iter().flatten() {
                            out.entry(k.clone()).or_insert_with(|| v.clone());
                        }
                    }
                    _ => {
                        return Err(refuse(
                            &at(),
                            "`allOf` with several schemas cannot be expressed",
                        ));
                    }
                },
                "additionalProperties" => {
                    // Gemini never answers with properties the schema does not declare,
                    // so `false` holds; anything else would be loosened.
                    if *value != Value::Bool(false) {
                        return Err(refuse(
                            &at(),
                            "only `additionalProperties: false` can be expressed",
                        ));
                    }
                }
                "$defs" | "definitions" => {} // resolved where referenced
                kept if KEPT.contains(&kept) => {
                    out.insert(keyword.clone(), value.clone());
                }
                annotation if ANNOTATIONS.contains(&annotation) => {}
                other => {
                    return Err(refuse(
                        &at(),
                        format_args!("the keyword `{other}` cannot be expressed"),
                    ));
                }
            }
        }
        // Gemini's enums are typed; a bare `enum`/`const` in JSON Schema holds strings.
        if out.contains_key("enum") && !out.contains_key("type") {
            out.insert("type".into(), Value::String("STRING".into()));
        }
        Ok(Value::Object(out))
    }

    /// A `$ref` into the schema's own `$defs`/`definitions`, expanded in place (its
    /// siblings, such as a `description`, kept).
    fn expand(
        &mut self,
        reference: &Value,
        object: &Map<String, Value>,
        path: &str,
        depth: usize,
    ) -> Result<Value, Invalid> {
        let at = format!("{path}.$ref");
        let Some(pointer) = reference.as_str().and_then(|r| r.strip_prefix('#')) else {
            return Err(refuse(
                &at,
                "only references within the schema (`#/…`) can be expanded",
            ));
        };
        if self.expanding.iter().any(|p| p == pointer) {
            return Err(refuse(
                &at,
                format_args!("the recursive reference `#{pointer}` cannot be expressed"),
            ));
        }
        let Some(target) = self.root.pointer(pointer) else {
            return Err(refuse(
                &at,
                format_args!("the reference `#{pointer}` points nowhere"),
            ));
        };
        self.expanding.push(pointer.to_string());
        let expanded = self.convert(target, &at, depth + 1);
        self.expanding.pop();
        let mut expanded = expanded?;
        let siblings: Map<String, Value> = object
            .iter()
            .filter(|(k, _)| k.as_str() != "$ref")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let siblings = self.convert(&Value::Object(siblings), path, depth)?;
        if let (Some(out), Some(extra)) = (expanded.as_object_mut(), siblings.as_object()) {
            for (k, v) in extra {
                out.insert(k.clone(), v.clone());
            }
        }
        Ok(expanded)
    }

    /// `anyOf`: a `{"type": "null"}` branch becomes `nullable`; one remaining branch is
    /// merged in, several stay an `anyOf`.
    fn apply_any_of(
        &mut self,
        value: &Value,
        out: &mut Map<String, Value>,
        path: &str,
        depth: usize,
    ) -> Result<(), Invalid> {
        let Some(branches) = value.as_array().filter(|b| !b.is_empty()) else {
            return Err(refuse(path, "`anyOf` must be a non-empty list"));
        };
        let mut converted = Vec::new();
        for (i, branch) in branches.iter().enumerate() {
            if branch.get("type") == Some(&Value::String("null".into()))
                && branch.as_object().is_some_and(|b| b.len() == 1)
            {
                out.insert("nullable".into(), Value::Bool(true));
                continue;
            }
            converted.push(self.convert(branch, &format!("{path}[{i}]"), depth + 1)?);
        }
        match converted.len() {
            0 => {
                return Err(refuse(
                    path,
                    "an `anyOf` of only `null` cannot be expressed",
                ));
            }
            1 => {
                for (k, v) in converted.remove(0).as_object().into_iter().flatten() {
                    out.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
            _ => {
                out.insert("anyOf".into(), Value::Array(converted));
            }
        }
        Ok(())
    }
}

/// `type`: a name, or a list of one name and `"null"` (which becomes `nullable`).
fn apply_type(value: &Value, out: &mut Map<String, Value>, path: &str) -> Result<(), Invalid> {
    let names: Vec<&Value> = match value {
        Value::Array(names) => names.iter().collect(),
        one => vec![one],
    };
    let mut chosen = None;
    for name in names {
        match name.as_str() {
            Some("null") => {
                out.insert("nullable".into(), Value::Bool(true));
            }
            Some(name) if chosen.is_none() => chosen = Some(name),
            Some(_) => {
                return Err(refuse(
                    path,
                    "a `type` list with several non-null types cannot be expressed; use `anyOf`",
                ));
            }
            None => return Err(refuse(path, "`type` must be a string or a list of strings")),
        }
    }
    let gemini = match chosen {
        Some("string") => "STRING",
        Some("number") => "NUMBER",
        Some("integer") => "INTEGER",
        Some("boolean") => "BOOLEAN",
        Some("array") => "ARRAY",
        Some("object") => "OBJECT",
        Some(other) => return Err(refuse(path, format_args!("the type `{other}` is unknown"))),
        None => {
            return Err(refuse(
                path,
                "a schema of type `null` alone cannot be expressed",
            ));
        }
    };
    out.insert("type".into(), Value::String(gemini.into()));
    Ok(())
}

/// `enum`: Gemini's holds strings; a `null` member becomes `nullable`.
fn apply_enum(value: &Value, out: &mut Map<String, Value>, path: &str) -> Result<(), Invalid> {
    let Some(members) = value.as_array() else {
        return Err(refuse(path, "`enum` must be a list"));
    };
    let mut strings = Vec::new();
    for member in members {
        match member {
            Value::String(_) => strings.push(member.clone()),
            Value::Null => {
                out.insert("nullable".into(), Value::Bool(true));
            }
            _ => return Err(refuse(path, "only string `enum` members can be expressed")),
        }
    }
    out.insert("enum".into(), Value::Array(strings));
    Ok(())
}
