//! The `airlock` command line as a user runs it: help, init, config errors, keys.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;

fn airlock(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn every_subcommand_has_help() {
    for sub in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["init", "--help"],
        vec!["mock-upstream", "--help"],
        vec!["demo", "--help"],
        vec!["keys", "--help"],
        vec!["keys", "create", "--help"],
        vec!["keys", "list", "--help"],
        vec!["keys", "revoke", "--help"],
        vec!["admin", "--help"],
        vec!["admin", "token", "create", "--help"],
        vec!["admin", "token", "list", "--help"],
        vec!["admin", "token", "revoke", "--help"],
        vec!["admin", "user", "create", "--help"],
        vec!["admin", "user", "passwd", "--help"],
        vec!["admin", "user", "disable", "--help"],
        vec!["admin", "user", "list", "--help"],
        vec!["requests", "--help"],
        vec!["experiments", "--help"],
        vec!["evidence", "export", "--help"],
        vec!["evidence", "verify", "--help"],
        vec!["version", "--help"],
    ] {
        let out = airlock(&sub);
        assert!(out.status.success(), "{sub:?}: {}", stderr(&out));
        assert!(stdout(&out).contains("Usage:"), "{sub:?}");
    }
    assert!(stdout(&airlock(&["version"])).starts_with("airlock "));
}

#[test]
fn init_then_keys_lifecycle() {
    let dir = common::scratch_dir("cli");
    let d = dir.join("inst");
    let d = d.to_str().unwrap();
    let out = airlock(&["init", "--dir", d]);
    assert!(out.status.success(), "{}", stderr(&out));
    let key_file = Path::new(d).join("instance.key");
    assert_eq!(
        std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let config = Path::new(d).join("airlock.yaml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(
        text.contains("# Airlock configuration"),
        "the config should be commented"
    );
    // A second init refuses to clobber the instance.
    assert!(!airlock(&["init", "--dir", d]).status.success());

    let cfg = config.to_str().unwrap();
    let out = airlock(&[
        "keys",
        "create",
        "--config",
        cfg,
        "--tenant",
        "acme",
        "--models",
        "default",
        "--expires-in",
        "30d",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let created: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let secret = created["key"].as_str().unwrap();
    let id = created["id"].as_str().unwrap();
    assert!(secret.starts_with("ak-"));
    assert!(created["expires_at"].as_i64().unwrap() > airlock::store::now_unix());

    let listed = stdout(&airlock(&["keys", "list", "--config", cfg]));
    assert!(listed.contains(id) && listed.contains("acme"), "{listed}");
    assert!(
        !listed.contains(secret),
        "a key list must never show secrets"
    );
    // The secret is not stored anywhere in the instance directory.
    for entry in std::fs::read_dir(d).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()));
    }

    let out = airlock(&["keys", "revoke", "--config", cfg, id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = airlock(&["keys", "revoke", "--config", cfg, id]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no active key"));
    let json: serde_json::Value = serde_json::from_str(&stdout(&airlock(&[
        "keys", "list", "--config", cfg, "--json",
    ])))
    .unwrap();
    assert!(json[0]["revoked_at"].is_i64());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Names the command line prints in its tables come from the state database: a control
/// character in one (an ESC starting a terminal escape sequence, a carriage return) is
/// printed escaped, never raw.
#[test]
fn control_characters_in_names_are_escaped_in_tables() {
    let dir = common::scratch_dir("cli-escapes");
    let d = dir.join("inst");
    let d = d.to_str().unwrap();
    assert!(airlock(&["init", "--dir", d]).status.success());
    let config = Path::new(d).join("airlock.yaml");
    let cfg = config.to_str().unwrap();
    // A key name as the command line takes it, and a tenant name written into the
    // database behind its back (the command line itself refuses control characters).
    let evil_key = "ci\u{1b}]0;owned\u{7}\u{1b}[2J";
    let out = airlock(&[
        "keys", "create", "--config", cfg, "--tenant", "acme", "--name", evil_key,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    rusqlite::Connection::open(Path::new(d).join("airlock.db"))
        .unwrap()
        .execute(
            "UPDATE tenants SET name = ?1",
            ["acme\r\u{1b}[1;31mFAKE\u{202e}"],
        )
        .unwrap();
    for args in [
        vec!["keys", "list", "--config", cfg],
        vec!["tenants", "list", "--config", cfg],
    ] {
        let out = airlock(&args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        let printed = stdout(&out);
        assert!(
            !printed.contains(['\u{1b}', '\r', '\u{7}', '\u{202e}']),
            "{args:?} printed a raw control character: {printed:?}"
        );
        assert!(printed.contains("\\u{1b}"), "{args:?}: {printed:?}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn admin_tokens_lifecycle() {
    let dir = common::scratch_dir("cli-admin");
    let d = dir.join("inst");
    let d = d.to_str().unwrap();
    assert!(airlock(&["init", "--dir", d]).status.success());
    let config = Path::new(d).join("airlock.yaml");
    let cfg = config.to_str().unwrap();
    let create = |role: &str, extra: &[&str]| {
        let mut args = vec![
            "admin", "token", "create", "--config", cfg, "--name", "ops", "--role", role, "--json",
        ];
        args.extend_from_slice(extra);
        airlock(&args)
    };
    let out = create("operator", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let created: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let token = created["token"].as_str().unwrap();
    assert!(token.starts_with("adm-") && created["role"] == "operator");
    let bad_role = create("root", &[]);
    assert!(!bad_role.status.success());
    assert!(
        stderr(&bad_role).contains("super-admin"),
        "{}",
        stderr(&bad_role)
    );
    let unscoped = create("tenant-admin", &[]);
    assert!(
        stderr(&unscoped).contains("--tenant"),
        "{}",
        stderr(&unscoped)
    );

    let listed = stdout(&airlock(&["admin", "token", "list", "--config", cfg]));
    assert!(
        listed.contains("operator") && !listed.contains(token),
        "{listed}"
    );
    let id = created["id"].as_str().unwrap();
    assert!(
        airlock(&["admin", "token", "revoke", "--config", cfg, id])
            .status
            .success()
    );
    assert!(
        !airlock(&["admin", "token", "revoke", "--config", cfg, id])
            .status
            .success()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn admin_users_lifecycle() {
    const PASSWORD: &str = "a long enough passphrase";
    let dir = common::scratch_dir("cli-admin-users");
    let d = dir.join("inst");
    let d = d.to_str().unwrap();
    assert!(airlock(&["init", "--dir", d]).status.success());
    let config = Path::new(d).join("airlock.yaml");
    let cfg = config.to_str().unwrap();
    let create = |name: &str, password: &str, extra: &[&str]| {
        let mut args = vec![
            "admin",
            "user",
            "create",
            "--config",
            cfg,
            "--name",
            name,
            "--password-stdin",
        ];
        args.extend_from_slice(extra);
        common::run_airlock_with_stdin(&args, password)
    };
    let (ok, out, err) = create(
        "ana",
        &format!("{PASSWORD}\n"),
        &["--role", "auditor", "--json"],
    );
    assert!(ok, "{err}");
    let created: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(created["id"].as_str().unwrap().starts_with("adu_"));
    assert_eq!(created["role"], "auditor");
    for (name, password, extra, complaint) in [
        ("bo", "short\n", &["--role", "viewer"][..], "at least 12"),
        ("bo", "", &["--role", "viewer"][..], "must not be empty"),
        ("ana", PASSWORD, &["--role", "viewer"][..], "exists already"),
        ("bo", PASSWORD, &["--role", "tenant-admin"][..], "--tenant"),
        ("b o", PASSWORD, &["--role", "viewer"][..], "user name"),
    ] {
        let (ok, _, err) = create(name, password, extra);
        assert!(!ok && err.contains(complaint), "{name}: {err}");
    }
    // Without --password-stdin, the password is prompted for on a terminal only.
    let prompt = airlock(&[
        "admin", "user", "create", "--config", cfg, "--name", "cy", "--role", "viewer",
    ]);
    assert!(!prompt.status.success());
    assert!(
        stderr(&prompt).contains("--password-stdin"),
        "{}",
        stderr(&prompt)
    );

    let passwd = |name: &str, password: &str| {
        common::run_airlock_with_stdin(
            &[
                "admin",
                "user",
                "passwd",
                "--config",
                cfg,
                name,
                "--password-stdin",
            ],
            password,
        )
    };
    let (ok, _, err) = passwd("ana", "another long passphrase\n");
    assert!(ok, "{err}");
    assert!(!passwd("ana", "tiny").0);
    assert!(!passwd("nobody", PASSWORD).0);
    let disable = || airlock(&["admin", "user", "disable", "--config", cfg, "ana"]);
    assert!(disable().status.success());
    let again = disable();
    assert!(!again.status.success() && stderr(&again).contains("no enabled admin user"));

    let listed = stdout(&airlock(&["admin", "user", "list", "--config", cfg]));
    assert!(
        listed.contains("ana") && listed.contains("auditor"),
        "{listed}"
    );
    let json: serde_json::Value = serde_json::from_str(&stdout(&airlock(&[
        "admin", "user", "list", "--config", cfg, "--json",
    ])))
    .unwrap();
    assert!(json[0]["disabled_at"].is_i64(), "{json}");
    assert!(!json.to_string().contains("argon2"), "never a hash: {json}");
    // Neither password is stored anywhere in the instance directory.
    for entry in std::fs::read_dir(d).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        for password in [PASSWORD, "another long passphrase"] {
            assert!(
                !bytes
                    .windows(password.len())
                    .any(|w| w == password.as_bytes())
            );
        }
    }
    // Each change is in the audit trail (the command line copies it in at once).
    let audit = rusqlite::Connection::open(Path::new(d).join("audit.db")).unwrap();
    let actions: Vec<String> = audit
        .prepare(
            "SELECT json_extract(body, '$.action') FROM records
             WHERE json_extract(body, '$.action') LIKE 'admin_user.%' ORDER BY seq",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        actions,
        [
            "admin_user.create",
            "admin_user.password",
            "admin_user.disable"
        ]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn config_errors_name_file_line_and_field() {
    let dir = common::scratch_dir("cli-cfg");
    let config = dir.join("airlock.yaml");
    std::fs::write(&config, "server:\n  listen: 127.0.0.1:0\n  max_body: 10\n").unwrap();
    let out = airlock(&["serve", "--config", config.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains(&format!("{}:3:", config.display())), "{err}");
    assert!(err.contains("max_body"), "{err}");

    std::fs::write(&config, "models:\n  m:\n    upstream: nowhere\n").unwrap();
    let err = stderr(&airlock(&["serve", "--config", config.to_str().unwrap()]));
    assert!(
        err.contains("airlock.yaml:3:") && err.contains("models.m.upstream"),
        "{err}"
    );

    let err = stderr(&airlock(&[
        "serve",
        "--config",
        dir.join("missing.yaml").to_str().unwrap(),
    ]));
    assert!(
        err.contains("missing.yaml") && err.contains("cannot read"),
        "{err}"
    );

    // A valid config without key material says how to create it.
    std::fs::write(&config, "server:\n  listen: 127.0.0.1:0\n").unwrap();
    let err = stderr(&airlock(&["serve", "--config", config.to_str().unwrap()]));
    assert!(err.contains("airlock init"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_command_shows_the_log() {
    let gw = common::Gateway::start().await;
    let body =
        serde_json::json!({"model": "chat-model", "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(
        common::post(&gw.url("/v1/chat/completions"), &gw.key, &body)
            .await
            .status,
        200
    );
    let config = gw.loaded.path.clone();
    let rows = gw.stop_keeping_files().await;
    assert_eq!(rows.len(), 1);
    let out = airlock(&["requests", "--config", config.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(json[0]["status"], 200);
    assert_eq!(json[0]["model"], "chat-model");
    let table = stdout(&airlock(&[
        "requests",
        "--config",
        config.to_str().unwrap(),
    ]));
    assert!(
        table.contains("chat_completions") && table.contains("chat-model"),
        "{table}"
    );
    let none = stdout(&airlock(&[
        "experiments",
        "--config",
        config.to_str().unwrap(),
    ]));
    assert!(none.contains("no request has been assigned"), "{none}");
    std::fs::remove_dir_all(config.parent().unwrap()).unwrap();
}

/// A fresh instance (`airlock init`) listening on any port, with `edit` applied to its
/// config text; its scratch directory and config path.
fn instance_on_any_port(tag: &str, edit: impl Fn(String) -> String) -> (PathBuf, PathBuf) {
    let dir = common::scratch_dir(tag);
    let d = dir.join("inst");
    assert!(
        airlock(&["init", "--dir", d.to_str().unwrap()])
            .status
            .success()
    );
    let config = d.join("airlock.yaml");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("listen: 127.0.0.1:8080", "listen: 127.0.0.1:0");
    std::fs::write(&config, edit(text)).unwrap();
    (dir, config)
}

#[test]
fn json_logs_are_one_object_per_line() {
    use std::io::BufRead;
    let (dir, config) = instance_on_any_port("cli-json", |text| {
        text.replace("format: text", "format: json")
    });
    let mut child = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["serve", "--config", config.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Every line up to "listening" (the NER model's load comes first) is one JSON object.
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut events = Vec::new();
    loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 || events.len() > 20 {
            break;
        }
        let event: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let listening = event["message"] == "airlock listening";
        events.push(event);
        if listening {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let last = events.last().unwrap();
    assert_eq!(last["message"], "airlock listening", "{events:?}");
    assert_eq!(last["level"], "INFO");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn serve_takes_a_ner_model_directory_and_says_loudly_when_it_cannot_load() {
    use std::io::BufRead;
    let (dir, config) = instance_on_any_port("cli-ner-model", |text| text);
    let missing = dir.join("no-such-model");
    let mut child = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["serve", "--config", config.to_str().unwrap()])
        .args(["--ner-model", missing.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    while !seen.contains("airlock listening") {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            break;
        }
        seen.push_str(&line);
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(seen.contains("NER IS NOT RUNNING"), "{seen}");
    assert!(seen.contains("no-such-model"), "{seen}");
    std::fs::remove_dir_all(&dir).unwrap();
}
