//! Checks that need the whole configuration: cross references, URLs, key sources.

use super::Config;
use super::schema::{
    Capabilities, CredentialFallback, CredentialStrategy, ModelRoute, TargetConfig,
};
use serde_saphyr::{Location, Spanned};

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
        if u.ca_file.is_some() && !u.base_url.starts_with("https://") {
            return Err(at(
                loc,
                format!("{field}.ca_file"),
                "applies to https:// upstreams only",
            ));
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
        if let Some(check) = &u.health_check {
            let field = format!("{field}.health_check");
            if !check.path.starts_with('/') || check.path.contains(['\r', '\n', ' ']) {
                return Err(at(
                    loc,
                    format!("{field}.path"),
                    "must be a path starting with `/`",
                ));
            }
            if check.interval_ms < 100 || check.timeout_ms == 0 {
                return Err(at(
                    loc,
                    field,
                    "`interval_ms` must be at least 100 and `timeout_ms` above 0",
                ));
            }
            if check.unhealthy_after == 0 || check.healthy_after == 0 {
                return Err(at(
                    loc,
                    field,
                    "`unhealthy_after` and `healthy_after` must be at least 1",
                ));
            }
        }
    }
    for (name, route) in &config.models {
        validate_route(config, name, route)?;
    }
    for (model, price) in &config.pricing.models {
        let field = format!("pricing.models.{model}");
        crate::metering::pricing::valid_model(model)
            .and_then(|_| crate::metering::Price::from_config(&price.value))
            .map_err(|e| at(&price.referenced, field, e))?;
    }
    // The section carries no location of its own; the message names its fields.
    config
        .disk
        .check()
        .map_err(|e| at(&Location::UNKNOWN, "disk".into(), e))?;
    Ok(())
}

/// Most attempts a route may make per request.
const MAX_ATTEMPTS: u32 = 10;

fn validate_route(
    config: &Config,
    name: &str,
    spanned: &Spanned<ModelRoute>,
) -> Result<(), ValidationError> {
    let loc = &spanned.referenced;
    let route = &spanned.value;
    let field = format!("models.{name}");
    if name.is_empty() {
        return Err(at(loc, "models".into(), "empty model name"));
    }
    match (&route.upstream, route.targets.is_empty()) {
        (Some(_), false) => {
            return Err(at(
                loc,
                field,
                "set either `upstream` (one target) or `targets`, not both",
            ));
        }
        (None, true) => {
            return Err(at(loc, field, "set `upstream` (one target) or `targets`"));
        }
        (None, false) if route.model.is_some() => {
            return Err(at(
                loc,
                format!("{field}.model"),
                "with `targets`, set `model` on each target",
            ));
        }
        (None, false) if route.capabilities != Capabilities::default() => {
            return Err(at(
                loc,
                format!("{field}.capabilities"),
                "with `targets`, set `capabilities` on each target",
            ));
        }
        (None, false)
            if route.credential.is_some()
                || route.credential_strategy != CredentialStrategy::default()
                || route.credential_fallback != CredentialFallback::default() =>
        {
            return Err(at(
                loc,
                format!("{field}.credential"),
                "with `targets`, set `credential` (and its strategy and fallback) on each target",
            ));
        }
        _ => {}
    }
    for (index, target) in route.target_list().iter().enumerate() {
        let target_field = if route.targets.is_empty() {
            format!("{field}.upstream")
        } else {
            format!("{field}.targets[{index}]")
        };
        if !config.upstreams.contains_key(&target.upstream) {
            let known: Vec<&str> = config.upstreams.keys().map(String::as_str).collect();
            return Err(at(
                loc,
                target_field,
                format!(
                    "unknown upstream `{}` (defined upstreams: {})",
                    target.upstream,
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            ));
        }
        if target.weight == 0 {
            return Err(at(
                loc,
                format!("{target_field}.weight"),
                "must be at least 1 (remove the target to send it nothing)",
            ));
        }
        match (&target.arm, &route.experiment) {
            (Some(arm), Some(experiment)) if !experiment.arms.contains_key(arm) => {
                return Err(at(
                    loc,
                    format!("{target_field}.arm"),
                    format!("`{arm}` is not an arm of the experiment"),
                ));
            }
            (Some(_), None) => {
                return Err(at(
                    loc,
                    format!("{target_field}.arm"),
                    "set `experiment` on the model to use arms",
                ));
            }
            _ => {}
        }
        // The one-target form sets them on the model itself.
        let settings = if route.targets.is_empty() {
            &field
        } else {
            &target_field
        };
        validate_credential(config, target, loc, settings)?;
        if !(target.cost.is_finite() && target.cost >= 0.0) {
            return Err(at(
                loc,
                format!("{target_field}.cost"),
                "must be a number of at least 0",
            ));
        }
    }
    if let Some(experiment) = &route.experiment {
        let field = format!("{field}.experiment");
        if experiment.name.is_empty() || experiment.arms.values().all(|w| *w == 0) {
            return Err(at(
                loc,
                field,
                "needs a name and at least one arm with a share above 0",
            ));
        }
        let targets = route.target_list();
        if let Some(empty) = experiment.arms.keys().find(|arm| {
            !targets
                .iter()
                .any(|t| t.arm.is_none() || t.arm.as_ref() == Some(*arm))
        }) {
            return Err(at(
                loc,
                format!("{field}.arms"),
                format!("no target serves arm `{empty}`"),
            ));
        }
    }
    let retry = &route.retry;
    if !(1..=MAX_ATTEMPTS).contains(&retry.attempts) {
        return Err(at(
            loc,
            format!("{field}.retry.attempts"),
            format!("must be between 1 and {MAX_ATTEMPTS}"),
        ));
    }
    if retry.backoff_ms > retry.max_backoff_ms {
        return Err(at(
            loc,
            format!("{field}.retry.backoff_ms"),
            "must not exceed `max_backoff_ms`",
        ));
    }
    let breaker = &route.breaker;
    if !(breaker.error_rate > 0.0 && breaker.error_rate <= 1.0) {
        return Err(at(
            loc,
            format!("{field}.breaker.error_rate"),
            "must be greater than 0 and at most 1",
        ));
    }
    if breaker.failure_threshold == 0 || breaker.window_secs == 0 || breaker.open_secs == 0 {
        return Err(at(
            loc,
            format!("{field}.breaker"),
            "`failure_threshold`, `window_secs` and `open_secs` must be at least 1",
        ));
    }
    Ok(())
}

/// A target's `credential` settings: a usable name, strategy and fallback only with a
/// credential, and a fallback key that exists.
fn validate_credential(
    config: &Config,
    target: &TargetConfig,
    loc: &Location,
    field: &str,
) -> Result<(), ValidationError> {
    let Some(name) = &target.credential else {
        if target.credential_strategy != CredentialStrategy::default()
            || target.credential_fallback != CredentialFallback::default()
        {
            return Err(at(
                loc,
                format!("{field}.credential"),
                "`credential_strategy` and `credential_fallback` need `credential` \
                 (`tenant`, or the name of an instance-wide credential)",
            ));
        }
        return Ok(());
    };
    if name.is_empty() || name.chars().any(char::is_whitespace) {
        return Err(at(
            loc,
            format!("{field}.credential"),
            "must be `tenant` (the caller's own credentials) or a credential name without spaces",
        ));
    }
    let upstream = config.upstreams.get(&target.upstream).map(|u| &u.value);
    let has_key = upstream.is_some_and(|u| u.api_key_env.is_some() || u.api_key_file.is_some());
    if target.credential_fallback == CredentialFallback::UpstreamKey && !has_key {
        return Err(at(
            loc,
            format!("{field}.credential_fallback"),
            format!(
                "`upstream_key` needs a key on upstream `{}` (`api_key_env` or `api_key_file`)",
                target.upstream
            ),
        ));
    }
    Ok(())
}
