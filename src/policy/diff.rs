//! `airlock policy diff`: what changed between two policy texts, rule by rule, and the
//! line diff.

use serde::Serialize;
use serde_json::Value;

/// The differences between two policies.
#[derive(Debug, Serialize)]
pub struct PolicyDiff {
    /// Settings outside the rules that changed (`resolution`, `default`, …).
    pub settings: Vec<String>,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
    /// The rules both share are in a different order.
    pub reordered: bool,
    /// A unified diff of the texts.
    pub unified: String,
}

/// Compares `old` with `new` (labels name them in the unified diff).
pub fn diff(old_label: &str, old: &[u8], new_label: &str, new: &[u8]) -> PolicyDiff {
    let old_text = String::from_utf8_lossy(old);
    let new_text = String::from_utf8_lossy(new);
    let parse =
        |text: &str| -> Value { super::compile::from_yaml::<Value>(text).unwrap_or(Value::Null) };
    let (a, b) = (parse(&old_text), parse(&new_text));
    let rules = |v: &Value| -> Vec<(String, Value)> {
        v.get("rules")
            .and_then(Value::as_array)
            .map(|rules| {
                rules
                    .iter()
                    .map(|r| {
                        let id = r.get("id").and_then(Value::as_str).unwrap_or("?");
                        (id.to_string(), r.clone())
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let (ra, rb) = (rules(&a), rules(&b));
    let find = |list: &[(String, Value)], id: &str| {
        list.iter().find(|(i, _)| i == id).map(|(_, r)| r.clone())
    };
    let added = rb
        .iter()
        .filter(|(id, _)| find(&ra, id).is_none())
        .map(|(id, _)| id.clone())
        .collect();
    let removed = ra
        .iter()
        .filter(|(id, _)| find(&rb, id).is_none())
        .map(|(id, _)| id.clone())
        .collect();
    let changed = ra
        .iter()
        .filter(|(id, rule)| find(&rb, id).is_some_and(|other| other != *rule))
        .map(|(id, _)| id.clone())
        .collect();
    let common = |from: &[(String, Value)], other: &[(String, Value)]| -> Vec<String> {
        from.iter()
            .filter(|(id, _)| other.iter().any(|(o, _)| o == id))
            .map(|(id, _)| id.clone())
            .collect()
    };
    let reordered = common(&ra, &rb) != common(&rb, &ra);
    let mut settings = Vec::new();
    if let (Some(ma), Some(mb)) = (a.as_object(), b.as_object()) {
        let keys: std::collections::BTreeSet<&String> = ma
            .keys()
            .chain(mb.keys())
            .filter(|k| *k != "rules")
            .collect();
        for key in keys {
            if ma.get(key) != mb.get(key) {
                settings.push(key.clone());
            }
        }
    }
    let unified = similar::TextDiff::from_lines(old_text.as_ref(), new_text.as_ref())
        .unified_diff()
        .context_radius(3)
        .header(old_label, new_label)
        .to_string();
    PolicyDiff {
        settings,
        added,
        removed,
        changed,
        reordered,
        unified,
    }
}
