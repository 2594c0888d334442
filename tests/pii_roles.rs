//! Personal data by message role: an application's own system and developer prompts are
//! found and recorded but forwarded as written, in every client format, while the same
//! name from the user is tokenised and restored; `pii.roles` changes that per role.

mod common;

use airlock::policy::versions;
use airlock::tenancy::STATE_MIGRATIONS;
use common::{Extra, Gateway, audit_records, last_upstream_request, post, send};
use serde_json::{Value, json};

/// An agent's own prompt naming a person (and an organisation, as Claude Code's does).
const SYSTEM: &str =
    "You are a coding agent built by Sarah Thompson at Acme Corporation. Be brief.";
/// The user's message naming the same person.
const USER: &str = "Please write a note to Sarah Thompson about the release.";

/// A gateway tokenising every class, with `roles` (lines under `pii:`), recording
/// what mock-upstream receives and echoing the last message.
async fn gateway(more_pii: &str) -> Gateway {
    let extra = Extra {
        top: format!("pii:\n  actions: {{default: tokenise}}\n{more_pii}"),
        ..Extra::default()
    };
    Gateway::start_full("", &["--echo", "--record-requests"], &extra).await
}

/// The request, in `format`, with the system (or developer) prompt and the user message;
/// its path and body.
fn request(format: &str) -> (String, Value) {
    match format {
        "openai" => (
            "/v1/chat/completions".into(),
            json!({"model": "chat-model", "messages": [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": USER}]}),
        ),
        "anthropic" => (
            "/v1/messages".into(),
            json!({"model": "chat-model", "max_tokens": 32000,
                   "system": [{"type": "text", "text": SYSTEM}],
                   "messages": [{"role": "user", "content": USER}]}),
        ),
        "gemini" => (
            "/v1beta/models/chat-model:generateContent".into(),
            json!({"systemInstruction": {"parts": [{"text": SYSTEM}]},
                   "contents": [{"role": "user", "parts": [{"text": USER}]}]}),
        ),
        "responses-instructions" => (
            "/v1/responses".into(),
            json!({"model": "chat-model", "instructions": SYSTEM, "input": USER}),
        ),
        "responses-developer" => (
            "/v1/responses".into(),
            json!({"model": "chat-model", "input": [
                {"type": "message", "role": "developer",
                 "content": [{"type": "input_text", "text": SYSTEM}]},
                {"type": "message", "role": "user",
                 "content": [{"type": "input_text", "text": USER}]}]}),
        ),
        other => panic!("no request format {other}"),
    }
}

const FORMATS: [&str; 5] = [
    "openai",
    "anthropic",
    "gemini",
    "responses-instructions",
    "responses-developer",
];

async fn ask(gw: &Gateway, format: &str) -> common::Reply {
    let (path, body) = request(format);
    common::formats::send_in_format(gw, format, &gw.key, &path, &body, &[]).await
}

/// The text of the upstream's messages, by role, as the model received them.
async fn model_saw(gw: &Gateway) -> Vec<(String, String)> {
    let request = last_upstream_request(gw.mock).await;
    request["body"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let content = match &m["content"] {
                Value::String(text) => text.clone(),
                other => airlock::policy::facts::chat_text(std::iter::once(other)),
            };
            (m["role"].as_str().unwrap().to_string(), content)
        })
        .collect()
}

/// The answer's text in `format`.
fn answer(format: &str, reply: &common::Reply) -> String {
    let body = reply.json();
    let text = match format {
        "openai" => &body["choices"][0]["message"]["content"],
        "anthropic" => &body["content"][0]["text"],
        "gemini" => &body["candidates"][0]["content"]["parts"][0]["text"],
        _ => &body["output"][0]["content"][0]["text"],
    };
    text.as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn an_agents_own_prompt_is_recorded_but_forwarded_as_written_in_every_format() {
    let gw = gateway("").await;
    let mut restored = 0;
    for format in FORMATS {
        let reply = ask(&gw, format).await;
        assert_eq!(reply.status, 200, "{format}: {}", reply.text());
        let seen = model_saw(&gw).await;
        let (role, system) = &seen[0];
        assert!(
            role == "system" || role == "developer",
            "{format}: {seen:?}"
        );
        assert_eq!(system, SYSTEM, "{format}: the agent's prompt was rewritten");
        let (role, user) = seen.last().unwrap();
        assert_eq!(role, "user", "{format}: {seen:?}");
        assert_eq!(
            user, "Please write a note to <PERSON_1> about the release.",
            "{format}"
        );
        // The echoed answer gets the user's value back (mock-upstream echoes a message
        // whose content is a string, not a list of parts).
        let upstream = last_upstream_request(gw.mock).await;
        if upstream["body"]["messages"][seen.len() - 1]["content"].is_string() {
            assert_eq!(answer(format, &reply), USER, "{format}: {}", reply.text());
            restored += 1;
        }
    }
    assert!(restored >= 2, "the echo checked {restored} formats");
    // The metrics count findings by role and handling.
    let metrics = send("GET", &gw.url("/metrics"), &[], "").await.text();
    let count = |labels: &str| -> u64 {
        let name = format!("airlock_pii_findings_total{{{labels}}} ");
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(name.as_str()))
            .map_or(0, |n| n.trim().parse().unwrap())
    };
    assert!(
        count(r#"role="system",handling="detect""#) >= 4,
        "{metrics}"
    );
    assert!(count(r#"role="developer",handling="detect""#) >= 1);
    assert!(count(r#"role="user",handling="apply""#) >= 5);
    // Both mentions of the name are recorded, never the values.
    let records = audit_records(&gw);
    assert_eq!(records.len(), FORMATS.len());
    for record in &records {
        assert_eq!(record["data_classes"]["PERSON"], 2, "{record}");
        assert!(!record.to_string().contains("Thompson"), "{record}");
    }
}

#[tokio::test]
async fn policy_deny_rules_see_the_system_prompt_unless_its_role_is_skipped() {
    let policy = "policy: cards\nrules:\n  - id: no-cards\n    match: {data_classes: [CREDIT_CARD]}\n    action: deny\n    message: no card numbers here\n  - id: names-stay-home\n    match: {data_classes: [PERSON]}\n    action: tokenise\n";
    let card = "Charge card 4111 1111 1111 1111 for Sarah Thompson.";
    let body = json!({"model": "chat-model", "messages": [
        {"role": "system", "content": card},
        {"role": "user", "content": "hello"}]});
    for (roles, denied) in [("", true), ("  roles: {system: skip}\n", false)] {
        let gw = gateway(roles).await;
        let conn = airlock::store::open(&gw.loaded.state_db_path(), STATE_MIGRATIONS).unwrap();
        versions::apply(&conn, policy.as_bytes(), "test", "test").unwrap();
        let reply = post(&gw.url("/v1/chat/completions"), &gw.key, &body).await;
        if denied {
            reply.assert_error(403, "policy_denied");
            continue;
        }
        assert_eq!(reply.status, 200, "{}", reply.text());
        // Not scanned: not counted, not rewritten (not even by the policy's tokenise).
        assert_eq!(model_saw(&gw).await[0].1, card);
        assert!(audit_records(&gw)[0].get("data_classes").is_none());
    }
}

#[tokio::test]
async fn a_policy_tokenise_rule_leaves_a_detected_system_prompt_as_written() {
    let gw = gateway("").await;
    let conn = airlock::store::open(&gw.loaded.state_db_path(), STATE_MIGRATIONS).unwrap();
    let policy = "policy: names\nrules:\n  - id: names-stay-home\n    match: {data_classes: [PERSON]}\n    action: tokenise\n";
    versions::apply(&conn, policy.as_bytes(), "test", "test").unwrap();
    let (path, body) = request("openai");
    let reply = post(&gw.url(&path), &gw.key, &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let seen = model_saw(&gw).await;
    assert_eq!(seen[0].1, SYSTEM);
    assert!(seen[1].1.contains("<PERSON_1>"), "{seen:?}");
}

#[tokio::test]
async fn roles_set_to_apply_rewrite_and_roles_set_to_detect_leave_as_written() {
    let gw = gateway("  roles: {system: apply, user: detect}\n").await;
    let (path, body) = request("openai");
    let reply = post(&gw.url(&path), &gw.key, &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let seen = model_saw(&gw).await;
    assert!(
        seen[0].1.contains("<PERSON_1>") && !seen[0].1.contains("Thompson"),
        "{seen:?}"
    );
    assert_eq!(seen[1].1, USER);
    // Tool results keep the default: the plan applies to them.
    let body = json!({"model": "chat-model", "messages": [
        {"role": "user", "content": "who maintains it?"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
            "function": {"name": "git_log", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "Author: Sarah Thompson"}]});
    let reply = post(&gw.url("/v1/chat/completions"), &gw.key, &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let seen = model_saw(&gw).await;
    assert_eq!(seen[2].1, "Author: <PERSON_1>", "{seen:?}");
}

#[tokio::test]
async fn a_detected_prompt_the_model_could_not_read_is_let_through_marked_not_refused() {
    // Far more text than the model reads in a millisecond, in the system prompt only.
    let long = format!(
        "You are an agent for Sarah Thompson. {}",
        "Read the files, run the tests and report what failed. ".repeat(300)
    );
    let body = json!({"model": "chat-model", "messages": [
        {"role": "system", "content": long},
        {"role": "user", "content": ""}]});
    for (roles, refused) in [("", false), ("  roles: {system: apply}\n", true)] {
        let gw = gateway(&format!("  ner: {{request_budget_ms: 1}}\n{roles}")).await;
        let reply = post(&gw.url("/v1/chat/completions"), &gw.key, &body).await;
        if refused {
            reply.assert_error(503, "pii_unavailable");
            continue;
        }
        assert_eq!(reply.status, 200, "{}", reply.text());
        let header = reply.headers.get("x-airlock-pii-unscanned").unwrap();
        assert!(header.to_str().unwrap().starts_with("ner_timeout; bytes="));
        assert_eq!(model_saw(&gw).await[0].1, long);
    }
}
