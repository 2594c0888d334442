//! Parser, compiler, evaluator and lint tests, hostile input included.

use super::lint::lint;
use super::*;
use proptest::prelude::*;

fn policy(yaml: &str) -> Policy {
    match load(yaml.as_bytes()) {
        Ok((policy, _)) => policy,
        Err(problems) => panic!("{problems:?}"),
    }
}

fn facts(model: &str, content: &str) -> Facts {
    Facts {
        tenant: "acme".into(),
        key: "k1".into(),
        user: Some("alice".into()),
        model: model.into(),
        content: content.into(),
        ..Facts::default()
    }
}

const EXAMPLE: &str = r#"
policy: example
rules:
  - id: deny-secrets
    match:
      content: {secrets: true}
    action: deny
    message: secrets may not be sent to a model
  - id: tag-finance
    match:
      tenants: [acme]
      headers: {x-team: [finance*]}
    action: tag
    tags: [finance]
  - id: small-for-long
    match:
      prompt_tokens: {gt: 1000}
    action: downgrade
    model: llama-small
  - id: no-gpt-for-bob
    match:
      users: [bob]
      models: ["gpt-*"]
    action: deny
  - id: cel-night
    when: 'request.hour < 6 && request.tenant == "acme"'
    action: tag
    tags: [night]
"#;

#[test]
fn evaluates_rules_in_order_with_effects() {
    let p = policy(EXAMPLE);
    let d = evaluate(&p, &facts("gpt-4o", "hello"));
    assert_eq!(d.verdict, Verdict::Allow);
    assert!(d.decided_by.is_none());

    let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onLRnrq0\n-----END RSA PRIVATE KEY-----";
    let d = evaluate(&p, &facts("gpt-4o", pem));
    assert_eq!(d.verdict, Verdict::Deny);
    assert_eq!(d.decided_by.as_deref(), Some("deny-secrets"));
    assert_eq!(
        d.message.as_deref(),
        Some("secrets may not be sent to a model")
    );

    let mut f = facts("gpt-4o", "hi");
    f.headers.insert("x-team".into(), "finance-emea".into());
    f.prompt_tokens = 5000;
    f.user = Some("bob".into());
    let d = evaluate(&p, &f);
    assert_eq!(d.verdict, Verdict::Deny);
    assert_eq!(
        d.rule_ids(),
        ["tag-finance", "small-for-long", "no-gpt-for-bob"]
    );
    assert_eq!(d.tags.len(), 1);
    let reroute = d.reroute.unwrap();
    assert_eq!(&*reroute.model, "llama-small");
    assert!(reroute.downgrade);
}

#[test]
fn response_rules_only_see_responses() {
    let p = policy(
        r#"
policy: p
rules:
  - id: out
    phase: response
    match: {content: {keywords: [forbidden]}}
    action: deny
"#,
    );
    let mut f = facts("m", "this is forbidden");
    assert_eq!(evaluate(&p, &f).verdict, Verdict::Allow);
    f.phase = Phase::Response;
    assert_eq!(evaluate(&p, &f).verdict, Verdict::Deny);
}

#[test]
fn deny_overrides_and_default_deny() {
    let p = policy(
        r#"
policy: p
resolution: deny_overrides
default: deny
default_message: only listed models
rules:
  - id: allow-llama
    match: {models: [llama]}
    action: allow
  - id: deny-bob
    match: {users: [bob]}
    action: deny
"#,
    );
    assert_eq!(evaluate(&p, &facts("llama", "")).verdict, Verdict::Allow);
    let d = evaluate(&p, &facts("gpt", ""));
    assert_eq!(d.verdict, Verdict::Deny);
    assert_eq!(d.message.as_deref(), Some("only listed models"));
    let mut f = facts("llama", "");
    f.user = Some("bob".into());
    let d = evaluate(&p, &f);
    assert_eq!(d.verdict, Verdict::Deny);
    assert_eq!(d.decided_by.as_deref(), Some("deny-bob"));
}

#[test]
fn priority_reorders_rules() {
    let p = policy(
        r#"
policy: p
rules:
  - id: allow-all
    action: allow
  - id: deny-bob
    priority: 10
    match: {users: [bob]}
    action: deny
"#,
    );
    let mut f = facts("m", "");
    f.user = Some("bob".into());
    assert_eq!(evaluate(&p, &f).decided_by.as_deref(), Some("deny-bob"));
}

#[test]
fn mcp_arguments_by_json_path() {
    let p = policy(
        r#"
policy: p
rules:
  - id: no-etc
    match:
      endpoint: mcp
      mcp:
        tools: [read_file, "fs_*"]
        arguments: {"$.path": ["/etc/*"]}
    action: require_approval
    message: reading system files needs approval
"#,
    );
    let mut f = facts("m", "");
    f.endpoint = source::EndpointKind::Mcp;
    f.mcp = Some(facts::McpFacts {
        server: "fs".into(),
        tool: "read_file".into(),
        arguments: serde_json::json!({"path": "/etc/shadow"}),
    });
    assert_eq!(evaluate(&p, &f).verdict, Verdict::RequireApproval);
    f.mcp.as_mut().unwrap().arguments = serde_json::json!({"path": "/home/a"});
    assert_eq!(evaluate(&p, &f).verdict, Verdict::Allow);
}

#[test]
fn cel_errors_count_as_not_matching_and_are_reported() {
    let p = policy(
        r#"
policy: p
rules:
  - id: broken
    when: 'request.headers["x-missing"] == "1"'
    action: deny
"#,
    );
    let d = evaluate(&p, &facts("m", ""));
    assert_eq!(d.verdict, Verdict::Allow);
    assert_eq!(d.errors.len(), 1);
    assert_eq!(&*d.errors[0].0, "broken");
}

fn problems(yaml: &str) -> Vec<Problem> {
    lint(yaml.as_bytes())
}

#[test]
fn lint_points_at_the_problem() {
    let p = problems("policy: p\nrules:\n  - id: a\n    action: deny\n    modl: x\n");
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!((p[0].line, p[0].column), (5, 5));
    assert!(
        p[0].message.contains("unknown field `modl`"),
        "{}",
        p[0].message
    );
    assert_eq!(p[0].hint.as_deref(), Some("did you mean `model`?"));

    let p = problems(
        "policy: p\nrules:\n  - id: a\n    match:\n      data_classes: [EMAIL]\n    action: deny\n",
    );
    assert_eq!(p[0].line, 5, "{p:?}");
    assert!(p[0].message.contains("unknown data class `EMAIL`"));
    assert_eq!(p[0].hint.as_deref(), Some("did you mean `EMAIL_ADDRESS`?"));

    let p = problems(
        "policy: p\nrules:\n  - id: a\n    match:\n      content:\n        regex: [\"(unclosed\"]\n    action: deny\n",
    );
    assert_eq!(p[0].line, 6, "{p:?}");
    assert!(p[0].message.starts_with("invalid regex"));

    let p =
        problems("policy: p\nrules:\n  - id: a\n    when: 'request.model =='\n    action: deny\n");
    assert_eq!(p[0].line, 4, "{p:?}");
    assert!(p[0].message.starts_with("invalid CEL"));

    let p = problems("policy: p\nrules:\n  - id: a\n    action: route\n");
    assert_eq!(p[0].line, 4, "{p:?}");
    assert!(p[0].message.contains("needs `model`"));
}

#[test]
fn lint_finds_unreachable_and_shadowed_rules() {
    let p = problems(
        r#"policy: p
rules:
  - id: everything
    action: allow
  - id: never
    match: {users: [bob]}
    action: deny
"#,
    );
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].line, 5);
    assert!(p[0].message.contains("unreachable"), "{}", p[0].message);

    let p = problems(
        r#"policy: p
rules:
  - id: wide
    match: {models: ["gpt-*"], prompt_tokens: {gt: 100}}
    action: deny
  - id: narrow
    match: {models: [gpt-4o], prompt_tokens: {gt: 500}, users: [bob]}
    action: allow
  - id: fine
    match: {models: [llama]}
    action: allow
"#,
    );
    // `gpt-4o` matches the glob `gpt-*`, so `narrow` never decides; `fine` does.
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].line, 6);

    let p = problems(
        r#"policy: p
rules:
  - id: wide
    match: {models: [gpt-4o, gpt-4], prompt_tokens: {gt: 100}}
    action: deny
  - id: narrow
    match: {models: [gpt-4o], prompt_tokens: {gt: 500}, users: [bob]}
    action: allow
"#,
    );
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].message.contains("shadowed by rule `wide`"));
    assert_eq!(p[0].line, 6);
}

#[test]
fn hostile_input_gives_errors_not_panics() {
    // Invalid UTF-8, with its place.
    let bytes = b"policy: p\nrules:\n  - id: \xff\n";
    let p = lint(bytes);
    assert_eq!(p[0].line, 3);
    assert!(p[0].message.contains("UTF-8"));
    // Deep nesting of `not`.
    let mut deep = String::from("policy: p\nrules:\n  - id: a\n    action: deny\n    match:\n");
    for depth in 0..200 {
        deep.push_str(&format!("{}not:\n", "  ".repeat(depth + 3)));
    }
    let _ = lint(deep.as_bytes());
    // A YAML alias bomb.
    let bomb = "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n";
    assert!(!lint(bomb.as_bytes()).is_empty());
    // A huge keyword list still compiles and matches.
    let terms: Vec<String> = (0..50_000).map(|i| format!("term{i}x")).collect();
    let yaml = format!(
        "policy: p\nlists:\n  big: {}\nrules:\n  - id: a\n    match: {{content: {{keyword_lists: [big]}}}}\n    action: deny\n",
        serde_json::to_string(&terms).unwrap()
    );
    let p = policy(&yaml);
    assert_eq!(
        evaluate(&p, &facts("m", "we saw term49999x today")).verdict,
        Verdict::Deny
    );
    // Garbage.
    assert!(!lint(b"\0\0\0").is_empty());
    assert!(!lint(b"policy: [").is_empty());
    assert!(!lint(b"").is_empty());
}

proptest! {
    /// Under first_match, the deciding rule is the first matching deciding rule in
    /// (priority desc, file order), and every effect rule before it matched too.
    #[test]
    fn first_match_decides_by_order(
        rules in proptest::collection::vec((0u8..3, -2i32..3, proptest::bool::ANY), 1..12),
        user in 0u8..3,
    ) {
        let mut yaml = String::from("policy: p\nrules:\n");
        for (i, (who, priority, deny)) in rules.iter().enumerate() {
            let action = if *deny { "deny" } else { "allow" };
            yaml.push_str(&format!(
                "  - id: r{i}\n    priority: {priority}\n    match: {{users: [u{who}]}}\n    action: {action}\n"
            ));
        }
        let p = policy(&yaml);
        let mut f = facts("m", "");
        f.user = Some(format!("u{user}"));
        let d = evaluate(&p, &f);
        let mut order: Vec<usize> = (0..rules.len()).collect();
        order.sort_by_key(|i| std::cmp::Reverse(rules[*i].1));
        let first = order.iter().find(|i| rules[**i].0 == user);
        match first {
            None => {
                prop_assert_eq!(d.verdict, Verdict::Allow);
                prop_assert!(d.decided_by.is_none());
            }
            Some(i) => {
                let expected = if rules[*i].2 { Verdict::Deny } else { Verdict::Allow };
                prop_assert_eq!(d.verdict, expected);
                let id = format!("r{i}");
                prop_assert_eq!(d.decided_by.as_deref(), Some(id.as_str()));
            }
        }
    }

    /// Under deny_overrides, the verdict is deny iff any matching rule denies, and does
    /// not depend on the order of the rules.
    #[test]
    fn deny_overrides_ignores_order(
        rules in proptest::collection::vec((0u8..3, proptest::bool::ANY), 1..12),
        user in 0u8..3,
        seed in 0usize..1000,
    ) {
        let build = |rules: &[(u8, bool)]| {
            let mut yaml = String::from("policy: p\nresolution: deny_overrides\nrules:\n");
            for (i, (who, deny)) in rules.iter().enumerate() {
                let action = if *deny { "deny" } else { "allow" };
                yaml.push_str(&format!(
                    "  - id: r{i}\n    match: {{users: [u{who}]}}\n    action: {action}\n"
                ));
            }
            policy(&yaml)
        };
        let mut f = facts("m", "");
        f.user = Some(format!("u{user}"));
        let expected = if rules.iter().any(|(w, deny)| *w == user && *deny) {
            Verdict::Deny
        } else {
            Verdict::Allow
        };
        prop_assert_eq!(evaluate(&build(&rules), &f).verdict, expected);
        let mut shuffled = rules.clone();
        shuffled.rotate_left(seed % rules.len());
        prop_assert_eq!(evaluate(&build(&shuffled), &f).verdict, expected);
    }
}
