//! The configuration snapshot with secrets removed: the YAML file read as a tree, every
//! field whose name marks a secret (keys, tokens, passwords, credentials) replaced by a
//! placeholder, and credentials or query strings cut out of URLs; the redacted paths listed.

use super::EvidenceError;
use serde::Serialize;
use serde_json::{Map, Value};

/// What stands in for a removed value.
pub const REDACTED: &str = "[redacted]";

/// Words in a field name that mark its value as secret (or as where a secret lives).
const SECRET_WORDS: &[&str] = &[
    "key",
    "keys",
    "apikey",
    "secret",
    "secrets",
    "password",
    "passwd",
    "passphrase",
    "token",
    "credential",
    "credentials",
    "authorization",
    "cookie",
    "private",
    "pkcs8",
];

/// `config/airlock.json`.
#[derive(Debug, Serialize)]
pub struct Snapshot {
    pub source: String,
    pub note: &'static str,
    /// Dotted paths of the values replaced by `[redacted]`.
    pub redacted: Vec<String>,
    pub config: Value,
}

/// Reads the configuration file at `path` and redacts it.
pub fn snapshot(path: &std::path::Path) -> Result<Snapshot, EvidenceError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| EvidenceError::Invalid(format!("{}: {e}", path.display())))?;
    let mut config: Value = serde_saphyr::from_str(&text)
        .map_err(|e| EvidenceError::Invalid(format!("{}: {e}", path.display())))?;
    let mut redacted = Vec::new();
    redact(&mut config, "", &mut redacted);
    Ok(Snapshot {
        source: path.display().to_string(),
        note: "The configuration file as parsed (comments dropped), with every field whose \
               name marks a secret or where one is kept (key, token, password, credential, \
               …) replaced by \"[redacted]\", and user names, passwords and query strings \
               removed from URLs.",
        redacted,
        config,
    })
}

fn is_secret_field(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower
        .split(|c: char| !c.is_ascii_alphanumeric())
        .any(|word| SECRET_WORDS.contains(&word))
}

/// Redacts `value` in place; `at` is its dotted path.
fn redact(value: &mut Value, at: &str, redacted: &mut Vec<String>) {
    match value {
        Value::Object(map) => redact_map(map, at, redacted),
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                redact(item, &format!("{at}[{i}]"), redacted);
            }
        }
        Value::String(text) => {
            if let Some(clean) = clean_url(text) {
                *text = clean;
                redacted.push(format!("{at} (URL credentials or query)"));
            }
        }
        _ => {}
    }
}

fn redact_map(map: &mut Map<String, Value>, at: &str, redacted: &mut Vec<String>) {
    for (name, value) in map.iter_mut() {
        let path = if at.is_empty() {
            name.clone()
        } else {
            format!("{at}.{name}")
        };
        if is_secret_field(name) && !value.is_null() {
            *value = Value::String(REDACTED.into());
            redacted.push(path);
        } else {
            redact(value, &path, redacted);
        }
    }
}

/// A URL without its user information and query; `None` when there was neither.
pub(super) fn clean_url(text: &str) -> Option<String> {
    let (scheme, rest) = text.split_once("://")?;
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let host = authority.rsplit_once('@').map(|(_, host)| host);
    let (path, query) = match tail.split_once('?') {
        Some((path, _)) => (path, true),
        None => (tail, false),
    };
    if host.is_none() && !query {
        return None;
    }
    let mut out = format!("{scheme}://");
    if host.is_some() {
        out.push_str(REDACTED);
        out.push('@');
    }
    out.push_str(host.unwrap_or(authority));
    out.push_str(path);
    if query {
        out.push('?');
        out.push_str(REDACTED);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_fields_and_url_credentials_are_removed() {
        let dir = crate::store::scratch_dir("evidence-redact");
        let path = dir.join("airlock.yaml");
        std::fs::write(
            &path,
            "server:\n  listen: 127.0.0.1:8080\n  tls: {cert_file: c.pem, key_file: hunter-key.pem}\n\
             upstreams:\n  a:\n    base_url: https://bob:hunter2@10.0.0.5:8000/v1?sig=hunter3\n\
             \x20   api_key_env: HUNTER_ENV\n    api_key_file: hunter.key\n\
             models:\n  m:\n    upstream: a\n    capabilities: {max_context_tokens: 8192}\n",
        )
        .unwrap();
        let snap = snapshot(&path).unwrap();
        let text = serde_json::to_string(&snap).unwrap();
        assert!(!text.contains("hunter"), "{text}");
        assert_eq!(
            snap.config["upstreams"]["a"]["base_url"],
            "https://[redacted]@10.0.0.5:8000/v1?[redacted]"
        );
        assert_eq!(snap.config["upstreams"]["a"]["api_key_env"], REDACTED);
        assert_eq!(
            snap.config["models"]["m"]["capabilities"]["max_context_tokens"],
            8192
        );
        assert_eq!(snap.config["server"]["listen"], "127.0.0.1:8080");
        assert!(snap.redacted.contains(&"server.tls.key_file".to_string()));
        assert_eq!(clean_url("http://127.0.0.1:9/v1"), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
