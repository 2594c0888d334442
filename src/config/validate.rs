//! Checks that need the whole configuration: cross references, URLs, key sources.

use super::Config;
use serde_saphyr::Location;

/// A semantic problem at a known place in the file.
#[derive(Debug)]
pub struct ValidationError {
    pub line: u64,
    pub column: u64,
    pub field: String,
    pub message: String,
}

fn at(loc: &Location, field: String, message: impl Into<String>) -> ValidationError {
    ValidationError {
        line: loc.line(),
        column: loc.column(),
        field,
        message: message.into(),
    }
}

/// Validates cross-field rules that serde cannot express.
pub fn validate(config: &Config) -> Result<(), ValidationError> {
    for (name, upstream) in &config.upstreams {
        let loc = &upstream.referenced;
        let field = format!("upstreams.{name}");
        let u = &upstream.value;
        let url: Result<http::Uri, _> = u.base_url.parse();
        match url {
            Ok(uri)
                if matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some() => {}
            _ => {
                return Err(at(
                    loc,
                    format!("{field}.base_url"),
                    format!(
                        "`{}` is not an http:// or https:// URL with a host",
                        u.base_url
                    ),
                ));
            }
        }
        if u.api_key_env.is_some() && u.api_key_file.is_some() {
            return Err(at(
                loc,
                field,
                "set at most one of `api_key_env` and `api_key_file`",
            ));
        }
        if u.connect_timeout_ms == 0 || u.read_timeout_ms == 0 {
            return Err(at(loc, field, "timeouts must be greater than zero"));
        }
    }
    for (name, route) in &config.models {
        if name.is_empty() {
            return Err(at(&route.referenced, "models".into(), "empty model name"));
        }
        if !config.upstreams.contains_key(&route.value.upstream) {
            let known: Vec<&str> = config.upstreams.keys().map(String::as_str).collect();
            return Err(at(
                &route.referenced,
                format!("models.{name}.upstream"),
                format!(
                    "unknown upstream `{}` (defined upstreams: {})",
                    route.value.upstream,
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            ));
        }
    }
    Ok(())
}
