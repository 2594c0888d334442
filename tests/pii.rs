//! Personal data on the wire: the model sees placeholders or masks instead of values, the
//! caller gets the values back in the answer, placeholders stay stable within a session,
//! policy rules see the classes found and choose the action, and the audit record keeps
//! classes and counts, never values.

mod common;

use airlock::policy::versions;
use airlock::tenancy::STATE_MIGRATIONS;
use airlock::tenancy::rbac::Role;
use common::formats::{FORMATS, ask_in_format, assert_error_in};
use common::{
    Extra, Gateway, admin, admin_token, audit_records, last_upstream_request, post, scoped_token,
    send,
};
use serde_json::{Value, json};

const PROMPT: &str = "Please write to Sarah Thompson at sarah.thompson@example.com, card 4111 1111 1111 1111, key AKIAIOSFODNN7EXAMPLE.";

async fn tokenising_gateway() -> Gateway {
    let extra = Extra {
        top: "pii:\n  actions: {default: tokenise, by_class: {SECRET: mask}}\n".into(),
        ..Extra::default()
    };
    Gateway::start_full("", &["--echo"], &extra).await
}

fn chat(text: &str) -> Value {
    json!({"model": "chat-model", "messages": [{"role": "user", "content": text}]})
}

/// The last message the model received.
async fn model_saw(gw: &Gateway) -> String {
    let request = last_upstream_request(gw.mock).await;
    let messages = request["body"]["messages"].as_array().unwrap();
    messages.last().unwrap()["content"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn the_model_sees_placeholders_and_the_caller_gets_values_back() {
    let gw = tokenising_gateway().await;
    let reply = post(&gw.url("/v1/chat/completions"), &gw.key, &chat(PROMPT)).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let seen = model_saw(&gw).await;
    for value in [
        "Sarah Thompson",
        "sarah.thompson@example.com",
        "4111 1111 1111 1111",
        "AKIA",
    ] {
        assert!(!seen.contains(value), "the model saw {value:?}: {seen}");
    }
    for placeholder in [
        "<PERSON_1>",
        "<EMAIL_ADDRESS_1>",
        "<CREDIT_CARD_1>",
        "[SECRET]",
    ] {
        assert!(seen.contains(placeholder), "{placeholder} missing: {seen}");
    }
    // The echoed answer has the values restored; the masked secret stays masked.
    let answer = reply.json()["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(answer, PROMPT.replace("AKIAIOSFODNN7EXAMPLE", "[SECRET]"));

    // Anthropic's Messages API gets the same treatment.
    let body = json!({"model": "chat-model", "max_tokens": 100, "messages": [{"role": "user", "content": PROMPT}]});
    let reply = post(&gw.url("/v1/messages"), &gw.key, &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(!model_saw(&gw).await.contains("Sarah Thompson"));
    let text = reply.json()["content"][0]["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(text.contains("sarah.thompson@example.com"), "{text}");

    // The audit record keeps classes and counts, never the values.
    let records = audit_records(&gw);
    let record = &records[0];
    assert_eq!(record["data_classes"]["PERSON"], 1, "{record}");
    assert_eq!(record["data_classes"]["EMAIL_ADDRESS"], 1);
    assert_eq!(record["data_classes"]["CREDIT_CARD"], 1);
    assert_eq!(record["data_classes"]["SECRET"], 1);
    let text = record.to_string();
    assert!(!text.contains("sarah.thompson@example.com") && !text.contains("Thompson"));
    // So does the request log row.
    let rows = gw.stop().await;
    let classes = rows
        .last()
        .unwrap()
        .data_classes
        .as_deref()
        .unwrap()
        .to_string();
    assert_eq!(classes, "CREDIT_CARD:1,EMAIL_ADDRESS:1,PERSON:1,SECRET:1");
}

/// Asks `text` in `session`; the answer's text.
async fn ask_in(gw: &Gateway, session: &str, text: &str) -> String {
    let key = format!("Bearer {}", gw.key);
    let headers = [
        ("authorization", key.as_str()),
        ("content-type", "application/json"),
        ("x-session-id", session),
    ];
    let body = serde_json::to_vec(&chat(text)).unwrap();
    let reply = send("POST", &gw.url("/v1/chat/completions"), &headers, body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn placeholders_are_stable_within_a_session_and_not_across() {
    let gw = tokenising_gateway().await;
    let ask = |session: &'static str, text: &'static str| ask_in(&gw, session, text);
    ask("conv-1", "I am Sarah Thompson, mail sarah@example.com").await;
    ask("conv-1", "Also cc bob@example.org and sarah@example.com").await;
    let seen = model_saw(&gw).await;
    assert!(
        seen.contains("<EMAIL_ADDRESS_2>") && seen.contains("<EMAIL_ADDRESS_1>"),
        "{seen}"
    );
    assert!(
        seen.find("<EMAIL_ADDRESS_2>") < seen.find("<EMAIL_ADDRESS_1>"),
        "{seen}"
    );
    // Another session numbers from 1 again.
    ask("conv-2", "cc bob@example.org").await;
    assert_eq!(model_saw(&gw).await, "cc <EMAIL_ADDRESS_1>");
}

#[tokio::test]
async fn policy_rules_see_the_classes_found_and_choose_the_action() {
    let gw = Gateway::start_full("", &["--echo"], &Extra::default()).await;
    let conn = airlock::store::open(&gw.loaded.state_db_path(), STATE_MIGRATIONS).unwrap();
    let policy = "policy: pii\nrules:\n  - id: no-cards\n    match: {data_classes: [CREDIT_CARD]}\n    action: deny\n    message: no card numbers here\n  - id: hide-emails\n    match: {data_classes: [EMAIL_ADDRESS]}\n    action: redact\n    data_classes: [EMAIL_ADDRESS]\n  - id: names-stay-home\n    match: {data_classes: [PERSON]}\n    action: tokenise\n";
    versions::apply(&conn, policy.as_bytes(), "test", "test").unwrap();
    let reply = post(
        &gw.url("/v1/chat/completions"),
        &gw.key,
        &chat("card 4111 1111 1111 1111"),
    )
    .await;
    reply.assert_error(403, "policy_denied");
    let reply = post(
        &gw.url("/v1/chat/completions"),
        &gw.key,
        &chat("mail ann@example.com please"),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(model_saw(&gw).await, "mail [EMAIL_ADDRESS] please");
    let reply = post(
        &gw.url("/v1/chat/completions"),
        &gw.key,
        &chat("hello Sarah Thompson"),
    )
    .await;
    assert_eq!(model_saw(&gw).await, "hello <PERSON_1>");
    assert_eq!(
        reply.json()["choices"][0]["message"]["content"],
        "hello Sarah Thompson"
    );
    // With no rule matching, the configured default (detect only) lets values through.
    let reply = post(
        &gw.url("/v1/chat/completions"),
        &gw.key,
        &chat("call +44 20 7946 0958"),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(model_saw(&gw).await, "call +44 20 7946 0958");
}

/// The content deltas of an OpenAI stream, joined.
fn streamed_text(reply: &common::Reply) -> String {
    reply
        .sse_data()
        .iter()
        .filter(|data| *data != "[DONE]")
        .filter_map(|data| {
            let chunk: Value = serde_json::from_str(data).unwrap();
            chunk["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect()
}

#[tokio::test]
async fn streamed_answers_get_values_back_even_with_placeholders_split_across_chunks() {
    let gw = tokenising_gateway().await;
    // Many values, so the mock's fragment boundaries fall inside placeholders.
    let people = [
        "Sarah Thompson",
        "James Miller",
        "Olivia Brown",
        "Henry Wilson",
    ];
    let prompt: String = people
        .iter()
        .enumerate()
        .map(|(i, name)| {
            format!(
                "{name} <{}.user{i}@example.com> ",
                name.split(' ').next().unwrap()
            )
        })
        .collect();
    let mut body = chat(&prompt);
    body["stream"] = json!(true);
    let reply = post(&gw.url("/v1/chat/completions"), &gw.key, &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(!model_saw(&gw).await.contains("Sarah Thompson"));
    assert_eq!(streamed_text(&reply), prompt);
    assert!(
        !reply.text().contains("<PERSON_"),
        "a placeholder reached the caller"
    );

    // Anthropic's stream, translated from the same chunks.
    let body = json!({"model": "chat-model", "max_tokens": 100, "stream": true,
        "messages": [{"role": "user", "content": prompt}]});
    let reply = post(&gw.url("/v1/messages"), &gw.key, &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(anthropic_streamed_text(&reply), prompt);
}

/// The text deltas of an Anthropic stream, joined.
fn anthropic_streamed_text(reply: &common::Reply) -> String {
    reply
        .named_events()
        .iter()
        .filter(|(name, _)| name == "content_block_delta")
        .filter_map(|(_, event)| event["delta"]["text"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn the_models_own_personal_data_is_masked_in_whole_and_streamed_answers() {
    // Emails and phone numbers pass to the model as they are, so in the echoed answer
    // they are the model's own; the tokenised name is the user's and comes back.
    let extra = Extra {
        top: "pii:\n  mask_model_output: true\n  actions: {default: tokenise, by_class: {EMAIL_ADDRESS: allow, PHONE_NUMBER: allow}}\n".into(),
        ..Extra::default()
    };
    let gw = Gateway::start_full("", &["--echo"], &extra).await;
    let prompt = "Sarah Thompson asked us to write to sarah.thompson@example.com or to call +44 20 7946 0958 before Friday, and to keep the reply short.";
    let expected = "Sarah Thompson asked us to write to [EMAIL_ADDRESS] or to call [PHONE_NUMBER] before Friday, and to keep the reply short.";

    let reply = post(&gw.url("/v1/chat/completions"), &gw.key, &chat(prompt)).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(model_saw(&gw).await.contains("sarah.thompson@example.com"));
    assert_eq!(reply.json()["choices"][0]["message"]["content"], expected);

    let mut body = chat(prompt);
    body["stream"] = json!(true);
    let reply = post(&gw.url("/v1/chat/completions"), &gw.key, &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(streamed_text(&reply), expected);
    assert!(!reply.text().contains("7946"), "a masked value went out");

    let body = json!({"model": "chat-model", "max_tokens": 100, "stream": true,
        "messages": [{"role": "user", "content": prompt}]});
    let reply = post(&gw.url("/v1/messages"), &gw.key, &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(anthropic_streamed_text(&reply), expected);

    // The Responses API's stream, likewise (Gemini's upstream messages are parts, which
    // the mock does not echo).
    let body = json!({"model": "chat-model", "stream": true, "input": prompt});
    let reply = post(&gw.url("/v1/responses"), &gw.key, &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let deltas: String = reply
        .named_events()
        .iter()
        .filter(|(name, _)| name == "response.output_text.delta")
        .filter_map(|(_, event)| event["delta"].as_str().map(str::to_string))
        .collect();
    assert_eq!(deltas, expected);
}

#[tokio::test]
async fn admins_erase_a_sessions_values_and_only_their_tenants() {
    let gw = tokenising_gateway().await;
    ask_in(&gw, "conv-x", "I am Sarah Thompson").await;
    // The session knows the value: a placeholder the model writes comes back as it.
    assert_eq!(ask_in(&gw, "conv-x", "<PERSON_1>").await, "Sarah Thompson");

    let path = "/admin/pii/vault/acme/conv-x";
    gw.create_key("globex", None, None);
    let other = scoped_token(&gw, Role::TenantAdmin, Some("globex"));
    admin(&gw, "DELETE", path, Some(&other), Value::Null)
        .await
        .assert_admin_error(403, "permission_denied");
    let viewer = admin_token(&gw, Role::Viewer);
    admin(&gw, "DELETE", path, Some(&viewer), Value::Null)
        .await
        .assert_admin_error(403, "permission_denied");
    let own = scoped_token(&gw, Role::TenantAdmin, Some("acme"));
    let reply = admin(&gw, "DELETE", path, Some(&own), Value::Null).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["erased"], 1);

    // Erased: the placeholder no longer opens.
    assert_eq!(ask_in(&gw, "conv-x", "<PERSON_1>").await, "<PERSON_1>");
    // The whole tenant, by a super-admin.
    ask_in(&gw, "conv-y", "I am James Miller").await;
    let root = admin_token(&gw, Role::SuperAdmin);
    let reply = admin(
        &gw,
        "DELETE",
        "/admin/pii/vault/acme",
        Some(&root),
        Value::Null,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(ask_in(&gw, "conv-y", "<PERSON_1>").await, "<PERSON_1>");
}

/// Asks `text` in `session` with `key` (and `extra` headers), streamed or whole; the
/// answer's text as the caller got it.
async fn ask_as(
    gw: &Gateway,
    key: &str,
    session: &str,
    extra: &[(&str, &str)],
    text: &str,
    stream: bool,
) -> String {
    let auth = format!("Bearer {key}");
    let mut headers = vec![
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
        ("x-session-id", session),
    ];
    headers.extend_from_slice(extra);
    let mut body = chat(text);
    body["stream"] = json!(stream);
    let body = serde_json::to_vec(&body).unwrap();
    let reply = send("POST", &gw.url("/v1/chat/completions"), &headers, body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    if stream {
        streamed_text(&reply)
    } else {
        reply.json()["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

#[tokio::test]
async fn another_caller_of_the_tenant_sending_the_same_session_id_gets_placeholders_only() {
    let gw = tokenising_gateway().await;
    {
        let db = gw.state_db();
        let people = airlock::tenancy::Directory::new(&db);
        let acme = people.ensure_tenant("acme", "test").unwrap();
        people
            .create_user(&acme, "mallory@acme.example", None, "test")
            .unwrap();
    }
    let second_key = gw.create_key("acme", None, None);
    let users_key = gw.issue_key(airlock::tenancy::NewKey {
        tenant: "acme".into(),
        name: "mallory".into(),
        user: Some("mallory@acme.example".into()),
        ..Default::default()
    });
    let first = gw.key.clone();
    let as_alice = [("x-user-id", "alice")];
    let told = ask_as(
        &gw,
        &first,
        "conv-9",
        &as_alice,
        "I am Sarah Thompson",
        false,
    )
    .await;
    assert_eq!(told, "I am Sarah Thompson");
    assert_eq!(model_saw(&gw).await, "I am <PERSON_1>");
    for stream in [false, true] {
        // Another key of the tenant, a user's key, and the first key acting for someone
        // else: the model echoes the placeholder, and it stays one.
        for (key, extra) in [
            (&second_key, &as_alice[..]),
            (&users_key, &[][..]),
            (&first, &[("x-user-id", "bob")][..]),
            (&first, &[][..]),
        ] {
            let answer = ask_as(&gw, key, "conv-9", extra, "<PERSON_1>?", stream).await;
            assert_eq!(answer, "<PERSON_1>?", "stream {stream}, {extra:?}");
        }
        // The one who named the session still gets the value back.
        let answer = ask_as(&gw, &first, "conv-9", &as_alice, "<PERSON_1>?", stream).await;
        assert_eq!(answer, "Sarah Thompson?", "stream {stream}");
    }
}

#[tokio::test]
async fn a_resent_conversation_is_scanned_only_for_its_new_message() {
    let gw = tokenising_gateway().await;
    let first = json!({"role": "user", "content": "I am Sarah Thompson"});
    let answer = json!({"role": "assistant", "content": "Hello Sarah Thompson"});
    let turn = |messages: Vec<Value>| json!({"model": "chat-model", "messages": messages});
    let hits = |metrics: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("airlock_pii_scan_cache_hits_total "))
            .map_or(0, |v| v.trim().parse().unwrap())
    };
    let url = gw.url("/metrics");
    let metrics = || send("GET", &url, &[], "");
    let before = hits(&metrics().await.text());
    let reply = post(
        &gw.url("/v1/chat/completions"),
        &gw.key,
        &turn(vec![first.clone()]),
    )
    .await;
    assert_eq!(reply.status, 200);
    let second = json!({"role": "user", "content": "and James Miller"});
    let reply = post(
        &gw.url("/v1/chat/completions"),
        &gw.key,
        &turn(vec![first, answer, second]),
    )
    .await;
    assert_eq!(reply.status, 200);
    // The first message came from the cache; the answer and the new message were scanned.
    assert_eq!(hits(&metrics().await.text()) - before, 1);
    assert_eq!(model_saw(&gw).await, "and <PERSON_2>");
}

/// A long prompt (some 20 KB of prose, far more than the model reads in a millisecond)
/// with a name in its first sentence and an e-mail address at its end.
fn long_prompt() -> String {
    format!(
        "Sarah Thompson wrote in. {}Reply to sarah.thompson@example.com.",
        "The quarterly report covers revenue, costs and the outlook for next year. ".repeat(270)
    )
}

/// A gateway whose `pii:` section is `pii`, recording every request mock-upstream gets.
async fn gateway_with(pii: &str) -> Gateway {
    let extra = Extra {
        top: format!("pii:\n{pii}"),
        ..Extra::default()
    };
    Gateway::start_full("", &["--echo", "--record-requests"], &extra).await
}

#[tokio::test]
async fn a_prompt_the_model_cannot_read_within_the_budget_is_refused_in_every_format() {
    let gw = gateway_with("  actions: {default: tokenise}\n  ner: {request_budget_ms: 1}\n").await;
    let prompt = long_prompt();
    for format in FORMATS {
        let reply = ask_in_format(&gw, format, &gw.key, "chat-model", &prompt, &[]).await;
        assert_error_in(&reply, format, 503, "pii_unavailable");
    }
    assert_eq!(
        common::upstream_bodies(gw.mock).await,
        Vec::<Value>::new(),
        "nothing unread went out"
    );
    let rows = gw.stop().await;
    let refused = rows.iter().filter(|r| r.status == 503).count();
    assert_eq!(refused, FORMATS.len());
    assert!(
        rows.iter().all(|r| r.pii_unscanned.is_none()),
        "refused, not let through"
    );
}

#[tokio::test]
async fn with_continue_what_the_model_did_not_read_is_said_in_the_header_and_the_records() {
    let gw = gateway_with(
        "  on_ner_unavailable: continue\n  actions: {default: tokenise}\n  ner: {request_budget_ms: 1}\n",
    )
    .await;
    let prompt = long_prompt();
    let expected = format!(
        "ner_timeout; bytes={}; classes=PERSON,LOCATION,ORGANIZATION",
        prompt.len()
    );
    for stream in [false, true] {
        let mut body = chat(&prompt);
        body["stream"] = json!(stream);
        let reply = post(&gw.url("/v1/chat/completions"), &gw.key, &body).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        let header = reply.headers.get("x-airlock-pii-unscanned").unwrap();
        assert_eq!(header.to_str().unwrap(), expected, "stream {stream}");
        // The recognizers read it all: the address is tokenised, the name went as it was.
        let seen = model_saw(&gw).await;
        assert!(seen.ends_with("Reply to <EMAIL_ADDRESS_1>."), "{seen}");
        assert!(seen.starts_with("Sarah Thompson"), "{seen}");
    }
    let records = audit_records(&gw);
    assert_eq!(records.len(), 2);
    for record in &records {
        assert_eq!(record["pii_unscanned"], expected.as_str(), "{record}");
    }
    let rows = gw.stop().await;
    assert_eq!(rows.len(), 2);
    for row in rows {
        assert_eq!(row.pii_unscanned.as_deref(), Some(expected.as_str()));
    }
}

#[tokio::test]
async fn a_policy_protecting_what_the_model_did_not_read_refuses_the_prompt() {
    // The configuration only detects; the policy tokenises every class found when an
    // e-mail address is in the prompt.
    let gw = gateway_with("  ner: {request_budget_ms: 1}\n").await;
    let conn = airlock::store::open(&gw.loaded.state_db_path(), STATE_MIGRATIONS).unwrap();
    let policy = "policy: pii\nrules:\n  - id: protect-mail\n    match: {data_classes: [EMAIL_ADDRESS]}\n    action: tokenise\n";
    versions::apply(&conn, policy.as_bytes(), "test", "test").unwrap();
    let reply = post(
        &gw.url("/v1/chat/completions"),
        &gw.key,
        &chat(&long_prompt()),
    )
    .await;
    reply.assert_error(503, "pii_unavailable");
    // Without an address the policy protects nothing, so the prompt goes on, marked.
    let plain = long_prompt().replace("sarah.thompson@example.com", "us");
    let reply = post(&gw.url("/v1/chat/completions"), &gw.key, &chat(&plain)).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(reply.headers.contains_key("x-airlock-pii-unscanned"));
    assert_eq!(common::upstream_bodies(gw.mock).await.len(), 1);
}

#[tokio::test]
async fn a_prompt_over_the_byte_limit_is_refused_in_every_format_or_read_in_part() {
    let gw =
        gateway_with("  actions: {default: tokenise}\n  ner: {max_request_bytes: 200}\n").await;
    let within = "Please ask Sarah Thompson to call back.";
    let over = format!(
        "{within} {}",
        "Then James Miller will join the call. ".repeat(10)
    );
    for format in FORMATS {
        let reply = ask_in_format(&gw, format, &gw.key, "chat-model", &over, &[]).await;
        assert_error_in(&reply, format, 413, "pii_text_too_large");
    }
    assert!(common::upstream_bodies(gw.mock).await.is_empty());
    let reply = ask_in_format(&gw, "openai", &gw.key, "chat-model", within, &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(model_saw(&gw).await, "Please ask <PERSON_1> to call back.");
    gw.stop().await;

    // Detecting only, the model reads up to the limit (here, the first three of the ten
    // sentences after the first) and the rest is said unread.
    let limit = within.len() + 1 + 3 * "Then James Miller will join the call. ".len();
    let gw = gateway_with(&format!("  ner: {{max_request_bytes: {limit}}}\n")).await;
    let reply = post(&gw.url("/v1/chat/completions"), &gw.key, &chat(&over)).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let header = reply.headers.get("x-airlock-pii-unscanned").unwrap();
    assert_eq!(
        header.to_str().unwrap(),
        format!(
            "over_scan_limit; bytes={}; classes=PERSON,LOCATION,ORGANIZATION",
            over.len() - limit
        )
    );
    let record = &audit_records(&gw)[0];
    let people = record["data_classes"]["PERSON"].as_u64().unwrap();
    // At most the four names read (Sarah Thompson, three James Millers), of eleven.
    assert!((1..=4).contains(&people), "{record}");
}
