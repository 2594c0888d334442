//! Tests for configuration parsing and validation.

use super::*;

fn load(text: &str) -> Result<LoadedConfig, ConfigError> {
    LoadedConfig::from_text(Path::new("/etc/airlock/airlock.yaml"), text)
}

const GOOD: &str = "\
server:
  listen: 127.0.0.1:9000
upstreams:
  vllm:
    base_url: http://10.0.0.5:8000/v1
    api_key_env: VLLM_KEY
models:
  llama:
    upstream: vllm
    model: meta-llama/Llama-3.1-8B-Instruct
";

#[test]
fn parses_a_good_file_with_defaults() {
    let loaded = load(GOOD).unwrap();
    let c = &loaded.config;
    assert_eq!(c.server.listen.port(), 9000);
    assert_eq!(c.server.max_body_bytes, 4 * 1024 * 1024);
    assert_eq!(c.models["llama"].value.upstream.as_deref(), Some("vllm"));
    assert_eq!(c.upstreams["vllm"].value.read_timeout_ms, 300_000);
    assert_eq!(loaded.data_dir, PathBuf::from("/etc/airlock"));
}

#[test]
fn unknown_field_names_file_line_and_field() {
    let text = GOOD.replace("    api_key_env: VLLM_KEY", "    api_kee_env: VLLM_KEY");
    let err = load(&text).unwrap_err().to_string();
    assert!(err.starts_with("/etc/airlock/airlock.yaml:6:"), "{err}");
    assert!(err.contains("api_kee_env"), "{err}");
}

#[test]
fn wrong_type_is_reported_with_line() {
    let text = GOOD.replace("listen: 127.0.0.1:9000", "listen: [1, 2]");
    let err = load(&text).unwrap_err().to_string();
    assert!(err.starts_with("/etc/airlock/airlock.yaml:2:"), "{err}");
}

#[test]
fn unknown_upstream_reference_names_the_field() {
    let text = GOOD.replace("upstream: vllm", "upstream: vlm");
    let err = load(&text).unwrap_err().to_string();
    assert!(err.contains("airlock.yaml:9:"), "{err}");
    assert!(err.contains("models.llama.upstream"), "{err}");
    assert!(err.contains("unknown upstream `vlm`"), "{err}");
}

#[test]
fn bad_base_url_is_rejected() {
    let text = GOOD.replace("http://10.0.0.5:8000/v1", "10.0.0.5:8000");
    let err = load(&text).unwrap_err().to_string();
    assert!(err.contains("upstreams.vllm.base_url"), "{err}");
}

#[test]
fn relative_data_dir_is_relative_to_the_file() {
    let loaded = load("data_dir: state\n").unwrap();
    assert_eq!(loaded.data_dir, PathBuf::from("/etc/airlock/state"));
}

#[test]
fn empty_file_is_a_valid_config() {
    let loaded = load("{}\n").unwrap();
    assert!(loaded.config.models.is_empty());
}

#[test]
fn type_errors_name_the_field_path() {
    let err = load("server:\n  listen: 127.0.0.1:9000\n  worker_threads: abc\n")
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "/etc/airlock/airlock.yaml:3:19: server.worker_threads: invalid u64"
    );
    let err = load("upstreams:\n  a:\n    base_url: http://x/v1\n    kind: nope\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(":4:") && err.contains("upstreams.a.kind: unknown variant"),
        "{err}"
    );
}

const TARGETS: &str = "\
upstreams:
  a: {base_url: 'http://10.0.0.5:8000/v1'}
  b: {base_url: 'http://10.0.0.6:8000/v1'}
models:
  chat:
    targets:
      - {upstream: a, model: llama, weight: 3}
      - {upstream: b, priority: 1}
    retry: {attempts: 4}
";

#[test]
fn routes_with_targets_parse_with_defaults() {
    let loaded = load(TARGETS).unwrap();
    let route = &loaded.config.models["chat"].value;
    let targets = route.target_list();
    assert_eq!(targets.len(), 2);
    assert_eq!((targets[0].weight, targets[0].priority), (3, 0));
    assert_eq!((targets[1].weight, targets[1].priority), (1, 1));
    assert_eq!(route.retry.attempts, 4);
    assert_eq!(route.retry.max_backoff_ms, 2_000);
    assert!(route.breaker.enabled);
    assert_eq!(route.breaker.failure_threshold, 5);
}

#[test]
fn bad_routes_name_the_field() {
    let cases = [
        (
            "      - {upstream: b, priority: 1}",
            "      - {upstream: c}",
            "models.chat.targets[1]: unknown upstream `c`",
        ),
        ("weight: 3", "weight: 0", "models.chat.targets[0].weight"),
        (
            "retry: {attempts: 4}",
            "retry: {attempts: 0}",
            "models.chat.retry.attempts",
        ),
        (
            "retry: {attempts: 4}",
            "retry: {backoff_ms: 5000}",
            "models.chat.retry.backoff_ms",
        ),
        (
            "retry: {attempts: 4}",
            "breaker: {error_rate: 1.5}",
            "models.chat.breaker.error_rate",
        ),
        (
            "retry: {attempts: 4}",
            "breaker: {open_secs: 0}",
            "models.chat.breaker",
        ),
        (
            "retry: {attempts: 4}",
            "upstream: a",
            "set either `upstream`",
        ),
        (
            "retry: {attempts: 4}",
            "model: x",
            "models.chat.model: with `targets`",
        ),
        ("retry: {attempts: 4}", "retry: {attempt: 2}", "attempt"),
    ];
    for (from, to, expected) in cases {
        let err = load(&TARGETS.replace(from, to)).unwrap_err().to_string();
        assert!(err.contains(expected), "{to}: {err}");
    }
    let err = load("upstreams: {a: {base_url: 'http://h/v1'}}\nmodels: {m: {}}\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("models.m: set `upstream`"), "{err}");
}

#[test]
fn experiments_need_known_arms_served_by_some_target() {
    let text = TARGETS.replace(
        "    retry: {attempts: 4}\n",
        "    experiment: {name: e1, arms: {x: 90, y: 10}}\n",
    );
    let with_arms = text
        .replace("weight: 3}", "weight: 3, arm: x}")
        .replace("priority: 1}", "priority: 1, arm: y}");
    let loaded = load(&with_arms).unwrap();
    let experiment = loaded.config.models["chat"]
        .value
        .experiment
        .clone()
        .unwrap();
    assert_eq!(experiment.sticky, Sticky::User);
    let only_x = text
        .replace("weight: 3}", "weight: 3, arm: x}")
        .replace("priority: 1}", "priority: 1, arm: x}");
    let cases = [
        (
            with_arms.replace("arm: y}", "arm: z}"),
            "targets[1].arm: `z` is not an arm",
        ),
        (only_x, "no target serves arm `y`"),
        (
            TARGETS.replace("weight: 3}", "weight: 3, arm: x}"),
            "set `experiment` on the model",
        ),
        (
            with_arms.replace("{x: 90, y: 10}", "{x: 0, y: 0}"),
            "share above 0",
        ),
    ];
    for (text, expected) in cases {
        let err = load(&text).unwrap_err().to_string();
        assert!(err.contains(expected), "{expected}: {err}");
    }
}

#[test]
fn health_checks_parse_with_defaults_and_reject_bad_values() {
    let text = GOOD.replace(
        "    api_key_env: VLLM_KEY",
        "    api_key_env: VLLM_KEY\n    health_check: {interval_ms: 1000}",
    );
    let loaded = load(&text).unwrap();
    let check = loaded.config.upstreams["vllm"]
        .value
        .health_check
        .clone()
        .unwrap();
    assert_eq!(
        (
            check.path.as_str(),
            check.interval_ms,
            check.unhealthy_after
        ),
        ("/health", 1000, 2)
    );
    for (bad, field) in [
        ("{path: health}", "upstreams.vllm.health_check.path"),
        ("{interval_ms: 10}", "upstreams.vllm.health_check"),
        ("{healthy_after: 0}", "upstreams.vllm.health_check"),
    ] {
        let text = GOOD.replace(
            "    api_key_env: VLLM_KEY",
            &format!("    api_key_env: VLLM_KEY\n    health_check: {bad}"),
        );
        let err = load(&text).unwrap_err().to_string();
        assert!(err.contains(field), "{bad}: {err}");
    }
}

#[test]
fn credentials_on_targets_parse_and_bad_settings_name_the_field() {
    let byok = GOOD.replace(
        "    model: meta-llama/Llama-3.1-8B-Instruct\n",
        "    model: meta-llama/Llama-3.1-8B-Instruct\n    credential: tenant\n    credential_strategy: least_used\n",
    );
    let loaded = load(&byok).unwrap();
    let target = &loaded.config.models["llama"].value.target_list()[0];
    assert_eq!(target.credential.as_deref(), Some("tenant"));
    assert_eq!(target.credential_strategy, CredentialStrategy::LeastUsed);
    assert_eq!(target.credential_fallback, CredentialFallback::Refuse);
    let cases = [
        (
            "    credential: tenant\n",
            "    credential: two words\n",
            "models.llama.credential: must be `tenant`",
        ),
        (
            "    credential: tenant\n",
            "",
            "`credential_strategy` and `credential_fallback` need `credential`",
        ),
        (
            "    api_key_env: VLLM_KEY\n",
            "",
            "`upstream_key` needs a key on upstream `vllm`",
        ),
    ];
    let with_fallback = byok.replace(
        "credential_strategy: least_used\n",
        "credential_strategy: least_used\n    credential_fallback: upstream_key\n",
    );
    assert!(load(&with_fallback).is_ok());
    for (from, to, expected) in cases {
        let err = load(&with_fallback.replace(from, to))
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "{err}");
    }
    let err = load(&TARGETS.replace("    retry:", "    credential: tenant\n    retry:"))
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(err.contains("set `credential`"), "{err}");
}

#[test]
fn personal_data_under_load_defaults_protect_and_keys_parse() {
    let pii = &load(GOOD).unwrap().config.pii;
    assert_eq!(pii.on_ner_unavailable, OnNerUnavailable::Protect);
    assert_eq!(pii.ner.request_budget_ms, 10_000);
    assert_eq!(pii.ner.max_request_bytes, 1024 * 1024);
    assert_eq!(pii.ner.max_batch, 32);
    let text = format!(
        "{GOOD}pii:\n  on_ner_unavailable: continue\n  ner: {{request_budget_ms: 2500, max_request_bytes: 4096}}\n"
    );
    let pii = &load(&text).unwrap().config.pii;
    assert_eq!(pii.on_ner_unavailable, OnNerUnavailable::Continue);
    assert_eq!(pii.ner.request_budget_ms, 2500);
    assert_eq!(pii.ner.max_request_bytes, 4096);
    let err = load(&format!("{GOOD}pii:\n  on_ner_unavailable: ignore\n"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("on_ner_unavailable"), "{err}");
}

#[test]
fn personal_data_roles_default_to_detecting_the_applications_prompts_and_bad_ones_are_named() {
    use crate::pii::{MessageRole, RoleHandling};
    let roles = &load(GOOD).unwrap().config.pii.roles;
    assert_eq!(roles.handling(MessageRole::System), RoleHandling::Detect);
    assert_eq!(roles.handling(MessageRole::Developer), RoleHandling::Detect);
    assert_eq!(roles.handling(MessageRole::Tool), RoleHandling::Apply);
    let roles = &load(&format!(
        "{GOOD}pii:\n  roles:\n    system: apply\n    tool: skip\n"
    ))
    .unwrap()
    .config
    .pii
    .roles;
    assert_eq!(roles.handling(MessageRole::System), RoleHandling::Apply);
    assert_eq!(roles.handling(MessageRole::Developer), RoleHandling::Detect);
    assert_eq!(roles.handling(MessageRole::Tool), RoleHandling::Skip);
    for (roles, expected) in [
        (
            "{sytem: detect}",
            "unknown message role `sytem` in pii.roles; known roles: system, developer, user, \
             assistant, tool",
        ),
        (
            "{system: allow}",
            "unknown handling `allow` for role `system` in pii.roles; expected apply, detect \
             or skip",
        ),
        ("[system]", "pii.roles"),
    ] {
        let err = load(&format!("{GOOD}pii:\n  roles: {roles}\n"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("/etc/airlock/airlock.yaml:12:"), "{err}");
        assert!(err.contains(expected), "{err}");
    }
}

#[test]
fn connection_limits_default_to_secure_values_and_timeouts_cannot_be_zero() {
    let server = &load(GOOD).unwrap().config.server;
    assert_eq!(server.header_timeout_secs.get(), 10);
    assert_eq!(server.idle_timeout_secs.get(), 60);
    assert_eq!(
        (server.max_connections, server.max_connections_per_client),
        (0, 0)
    );
    assert!(server.metrics_token_file.is_none());
    for key in ["header_timeout_secs", "idle_timeout_secs"] {
        let text = GOOD.replace(
            "  listen: 127.0.0.1:9000\n",
            &format!("  listen: 127.0.0.1:9000\n  {key}: 0\n"),
        );
        let err = load(&text).unwrap_err().to_string();
        assert!(
            err.starts_with("/etc/airlock/airlock.yaml:3:") && err.contains(key),
            "{err}"
        );
    }
}

#[test]
fn an_upstream_ca_file_needs_https() {
    let err = load(&GOOD.replace(
        "    api_key_env: VLLM_KEY\n",
        "    api_key_env: VLLM_KEY\n    ca_file: ca.pem\n",
    ))
    .unwrap_err()
    .to_string();
    assert!(err.contains("upstreams.vllm.ca_file"), "{err}");
    let https = GOOD.replace("http://10.0.0.5", "https://10.0.0.5").replace(
        "    api_key_env: VLLM_KEY\n",
        "    api_key_env: VLLM_KEY\n    ca_file: ca.pem\n",
    );
    let loaded = load(&https).unwrap();
    assert_eq!(
        loaded.config.upstreams["vllm"].value.ca_file.as_deref(),
        Some(Path::new("ca.pem"))
    );
}

#[test]
fn hosted_tools_default_to_drop_and_developer_role_to_off() {
    let loaded = load(GOOD).unwrap();
    assert_eq!(loaded.config.tools.hosted, HostedTools::Drop);
    assert!(!loaded.config.upstreams["vllm"].value.developer_role);
    let text = format!(
        "{}tools:\n  hosted: refuse\n",
        GOOD.replace("    api_key_env: VLLM_KEY", "    developer_role: true")
    );
    let loaded = load(&text).unwrap();
    assert_eq!(loaded.config.tools.hosted, HostedTools::Refuse);
    assert!(loaded.config.upstreams["vllm"].value.developer_role);
    let err = load(&format!("{GOOD}tools:\n  hosted: maybe\n"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("tools.hosted"), "{err}");
}
