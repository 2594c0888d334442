//! Audit search on the wire: records become searchable within seconds (full text over
//! payloads, filters, ranges, sorting, paging), a tenant never sees another's records,
//! bad searches get clear 400s, and the command line searches and rebuilds the index.

mod common;

use airlock::tenancy::rbac::Role;
use common::{Extra, Gateway, admin, admin_token, post, scoped_token};
use serde_json::{Value, json};

fn ask(model: &str, text: &str) -> Value {
    json!({"model": model, "max_tokens": 3, "messages": [{"role": "user", "content": text}]})
}

/// `GET /admin/audit/search?…` as `token`: the reply.
async fn search(gw: &Gateway, token: &str, query: &str) -> common::Reply {
    admin(
        gw,
        "GET",
        &format!("/admin/audit/search?{query}"),
        Some(token),
        Value::Null,
    )
    .await
}

/// A gateway (its mock-upstream started with `mock_flags`) whose index commits every
/// second.
async fn indexing_gateway(mock_flags: &[&str]) -> Gateway {
    let extra = Extra {
        top: "audit:\n  search:\n    commit_interval_secs: 1\nauth_failures:\n  record_interval_secs: 1\n"
            .into(),
        ..Extra::default()
    };
    Gateway::start_full("", mock_flags, &extra).await
}

fn seqs(reply: &Value) -> Vec<u64> {
    reply["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["seq"].as_u64().unwrap())
        .collect()
}

/// Runs `airlock audit …` on the gateway's instance: success, stdout, stderr.
fn cli(gw_config: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let config = gw_config.to_str().unwrap();
    let mut all = vec!["audit"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--config", config]);
    common::run_airlock(&all)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_are_searchable_filtered_sorted_paged_and_tenant_scoped() {
    let gw = indexing_gateway(&[]).await;
    let beta = gw.create_key("beta", None, None);
    let url = gw.url("/v1/chat/completions");
    for i in 0..4 {
        let text = format!("quarterly revenue forecast number{i}");
        assert_eq!(
            post(&url, &gw.key, &ask("chat-model", &text)).await.status,
            200
        );
    }
    for _ in 0..3 {
        let reply = post(&url, &beta, &ask("chat-model", "confidential merger plans")).await;
        assert_eq!(reply.status, 200);
    }
    assert_eq!(
        post(&url, &gw.key, &ask("broken-model", "merger"))
            .await
            .status,
        502
    );
    assert_eq!(
        post(&url, "ak-wrong", &ask("chat-model", "x")).await.status,
        401
    );

    let auditor = admin_token(&gw, Role::Auditor);
    // Searchable within a few commit intervals.
    let mut all = Value::Null;
    for _ in 0..100 {
        all = search(&gw, &auditor, "kind=llm.request&limit=100")
            .await
            .json();
        if all["total"] == 8 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // (The refused key is not a request record: refusals are summed per address.)
    assert_eq!(all["total"], 8, "{all}");
    let by_seq: Vec<u64> = seqs(&all);
    assert!(
        by_seq.is_sorted_by(|a, b| a > b),
        "newest first: {by_seq:?}"
    );
    let acme = all["records"][by_seq.len() - 1]["tenant_id"]
        .as_str()
        .unwrap()
        .to_string();
    let beta_tenant = all["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["tenant_id"].as_str())
        .find(|t| *t != acme)
        .unwrap()
        .to_string();

    // Full text over the payloads, words and phrases; response text too.
    let merger = search(&gw, &auditor, "q=merger").await.json();
    assert_eq!(
        merger["total"], 4,
        "three beta requests and the failed acme one"
    );
    let phrase = search(&gw, &auditor, "q=%22merger%20plans%22").await.json();
    assert_eq!(phrase["total"], 3);
    let one = search(&gw, &auditor, "q=number2").await.json();
    assert_eq!(one["total"], 1);
    let both = search(&gw, &auditor, "q=revenue%20merger").await.json();
    assert_eq!(both["total"], 0, "all words must match");

    // Filters and ranges.
    let mut denied = Value::Null;
    for _ in 0..100 {
        denied = search(&gw, &auditor, "decision=deny").await.json();
        if denied["total"] == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(denied["total"], 1, "{denied}");
    assert_eq!(denied["records"][0]["kind"], "auth.refused");
    assert_eq!(denied["records"][0]["status"], 401);
    let failed = search(&gw, &auditor, "q=status:%5B500%20TO%20599%5D")
        .await
        .json();
    assert_eq!(failed["total"], 1);
    assert_eq!(failed["records"][0]["model"], "broken-model");
    let modelled = search(&gw, &auditor, "model=broken-model").await.json();
    assert_eq!(modelled["total"], 1);
    let status = search(&gw, &auditor, "status=200").await.json();
    assert_eq!(status["total"], 7);
    let future = search(&gw, &auditor, "since=2999-01-01").await.json();
    assert_eq!(future["total"], 0);
    let past = search(&gw, &auditor, "until=2000-01-01").await.json();
    assert_eq!(past["total"], 0);
    let recent = search(&gw, &auditor, "since=1h&kind=llm.request")
        .await
        .json();
    assert_eq!(recent["total"], 8);

    // Sorting by a fast field, and paging without overlap.
    let slow = search(
        &gw,
        &auditor,
        "kind=llm.request&sort=latency&order=asc&limit=100",
    )
    .await
    .json();
    let latencies: Vec<f64> = slow["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["latency_ms"].as_f64().unwrap_or(0.0))
        .collect();
    assert!(latencies.is_sorted(), "{latencies:?}");
    let mut paged = Vec::new();
    let mut offset = Some(0u64);
    while let Some(at) = offset {
        let page = search(
            &gw,
            &auditor,
            &format!("kind=llm.request&limit=4&offset={at}"),
        )
        .await
        .json();
        assert_eq!(page["total"], 8);
        paged.extend(seqs(&page));
        offset = page["next_offset"].as_u64();
    }
    assert_eq!(paged, by_seq, "pages cover every record once, in order");

    // Tenant scoping: a tenant admin sees its own records only, even asking for more.
    let acme_admin = scoped_token(&gw, Role::TenantAdmin, Some("acme"));
    let own = search(&gw, &acme_admin, "kind=llm.request&limit=100")
        .await
        .json();
    assert!(
        own["records"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["tenant_id"] == acme.as_str())
    );
    assert_eq!(own["total"], 5);
    let escape = search(
        &gw,
        &acme_admin,
        &format!("q=merger%20OR%20tenant:{beta_tenant}"),
    )
    .await;
    assert_eq!(escape.status, 200, "{}", escape.text());
    assert_eq!(
        escape.json()["total"],
        1,
        "a query naming another tenant does not widen the scope"
    );
    let other = search(&gw, &acme_admin, &format!("tenant={beta_tenant}")).await;
    other.assert_admin_error(403, "permission_denied");
    let beta_only = search(
        &gw,
        &auditor,
        &format!("tenant={beta_tenant}&kind=llm.request"),
    )
    .await
    .json();
    assert_eq!(beta_only["total"], 3);

    // Bad searches: 400 with a reason; roles without audit read: 403.
    let nested = format!("q={}x{}", "%28".repeat(100), "%29".repeat(100));
    let long = format!("q={}", "word%20".repeat(1000));
    for bad in [
        "q=%28%28%28",
        &nested,
        &long,
        "limit=5000",
        "offset=9990&limit=20",
        "order=sideways",
        "sort=colour",
        "since=someday",
        "status=abc",
        "colour=red",
    ] {
        search(&gw, &auditor, bad)
            .await
            .assert_admin_error(400, "invalid_request");
    }
    let viewer = admin_token(&gw, Role::Viewer);
    search(&gw, &viewer, "q=x")
        .await
        .assert_admin_error(403, "permission_denied");

    // The lag is reported.
    let metrics = common::send("GET", &gw.url("/metrics"), &[], "")
        .await
        .text();
    assert!(
        metrics.contains("airlock_audit_index_lag_records"),
        "{metrics}"
    );
    assert!(metrics.contains("airlock_audit_indexed_records_total"));

    // The index is the gateway's while it runs: a rebuild must wait.
    let config = gw.loaded.path.clone();
    let (ok, _, err) = cli(&config, &["reindex"]);
    assert!(!ok && err.contains("stop it first"), "{err}");

    let loaded = gw.loaded.clone();
    gw.stop_keeping_files().await;
    let (ok, out, err) = cli(
        &config,
        &["search", "merger plans", "--tenant", "beta", "--json"],
    );
    assert!(ok, "{err}");
    let found: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(found["total"], 3);
    let (ok, out, err) = cli(&config, &["reindex"]);
    assert!(ok, "{err}");
    assert!(out.contains("indexed"), "{out}");
    let (ok, out, _) = cli(&config, &["search", "--decision", "deny"]);
    assert!(ok && out.contains("1 of 1 matching records"), "{out}");
    let _ = std::fs::remove_dir_all(&loaded.data_dir);
}

/// `airlock audit erase` crypto-shreds one person's payloads while the gateway runs: the
/// words leave the search index (and its files), the records and the chain stay, and
/// everyone else's payloads are untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasing_a_user_removes_their_words_and_keeps_the_chain() {
    let gw = indexing_gateway(&[]).await;
    let url = gw.url("/v1/chat/completions");
    let auth = format!("Bearer {}", gw.key);
    for stream in [false, true] {
        let mut body = ask("chat-model", "my diagnosis is hypertension");
        body["stream"] = stream.into();
        let reply = common::send(
            "POST",
            &url,
            &[("authorization", &auth), ("x-user-id", "alice")],
            serde_json::to_vec(&body).unwrap(),
        )
        .await;
        assert_eq!(reply.status, 200);
    }
    let mut bobs = ask("chat-model", "an ordinary question about hypertension");
    bobs["user"] = "bob".into();
    assert_eq!(post(&url, &gw.key, &bobs).await.status, 200);

    let auditor = admin_token(&gw, Role::Auditor);
    let before = until_total(&gw, &auditor, "q=hypertension", 3).await;
    assert!(
        before["records"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["user_id"] == "bob"),
        "the body's `user` names the person"
    );

    let (ok, out, err) = cli(
        &gw.loaded.path,
        &["erase", "--tenant", "acme", "--user", "alice", "--json"],
    );
    assert!(ok, "{err}");
    let erasure: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(erasure["keys"].as_array().unwrap().len(), 1);
    assert_eq!(erasure["records"], 2);

    // The running gateway's indexer drops alice's words; bob's stay; the records stay.
    let after = until_total(&gw, &auditor, "q=hypertension", 1).await;
    assert_eq!(after["records"][0]["user_id"], "bob");
    let alices = until_total(&gw, &auditor, "user=alice", 2).await;
    let kinds: Vec<&str> = alices["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["llm.request", "llm.request"]);
    // The erasure's own record names her by a keyed hash, never by her id.
    let erased = until_total(&gw, &auditor, "kind=audit.erase", 1).await;
    let record = &erased["records"][0];
    let target = record["target"].as_str().unwrap();
    assert!(
        target.starts_with("user:") && target == erasure["target"],
        "{record}"
    );
    assert!(!record.to_string().contains("alice"), "{record}");

    // Alice's later requests are sealed with a new key, and searchable.
    let reply = common::send(
        "POST",
        &url,
        &[("authorization", &auth), ("x-user-id", "alice")],
        serde_json::to_vec(&ask("chat-model", "a fresh start")).unwrap(),
    )
    .await;
    assert_eq!(reply.status, 200);
    until_total(&gw, &auditor, "q=fresh", 1).await;

    let (loaded, audit) = stop_and_verify(gw).await;

    // The log: alice's old payloads gone, her old key destroyed; bob's intact.
    let kept: Vec<(String, bool)> = audit
        .prepare(
            "SELECT json_extract(body, '$.user_id'), request_payload IS NOT NULL FROM records
             WHERE kind = 'llm.request' ORDER BY seq",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        kept,
        [
            ("alice".to_string(), false),
            ("alice".to_string(), false),
            ("bob".to_string(), true),
            ("alice".to_string(), true)
        ]
    );
    let destroyed: i64 = audit
        .query_row(
            "SELECT COUNT(*) FROM data_keys WHERE sealed IS NULL AND destroyed_at IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(destroyed, 1);

    // The index files no longer hold the word for any of alice's documents: bob's is the
    // only document with it, and no deleted document lingers in a segment.
    let mut holders = 0;
    let mut lingering = 0;
    text_segments(&loaded.audit_index_dir(), |segment, text| {
        lingering += segment.num_deleted_docs();
        let postings = segment.inverted_index(text).unwrap();
        if let Some(info) = postings
            .get_term_info(&tantivy::Term::from_field_text(text, "hypertension"))
            .unwrap()
        {
            holders += info.doc_freq;
        }
    });
    assert_eq!((holders, lingering), (1, 0));
    let _ = std::fs::remove_dir_all(&loaded.data_dir);
}

/// Stops the gateway and checks that `airlock audit verify` still passes on its log (after
/// an erasure); its configuration and its log.
async fn stop_and_verify(gw: Gateway) -> (airlock::config::LoadedConfig, rusqlite::Connection) {
    let loaded = gw.loaded.clone();
    gw.stop_keeping_files().await;
    let (ok, out, _) = cli(&loaded.path, &["verify"]);
    assert!(ok, "the chain still verifies after erasure: {out}");
    let audit = rusqlite::Connection::open(loaded.audit_db_path()).unwrap();
    (loaded, audit)
}

/// A prompt naming a person, with a card number and an email, answered by an echo (so
/// the values are in the response too, a stream's split across chunks).
const PERSONAL: &str = "Margaret Thornbury asked us to charge card 4111 1111 1111 1111 and to send the receipt to quillfeather@example.org today";

/// Sends `text` as `user` of the gateway's first tenant, streamed or not.
async fn send_as(gw: &Gateway, key: &str, user: &str, text: &str, stream: bool) {
    let mut body = ask("chat-model", text);
    body["stream"] = stream.into();
    body["user"] = user.into();
    let reply = post(&gw.url("/v1/chat/completions"), key, &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
}

/// Alice sends [`PERSONAL`] twice (whole and streamed), bob an unrelated question.
async fn send_personal_traffic(gw: &Gateway) {
    send_as(gw, &gw.key, "alice", PERSONAL, false).await;
    send_as(gw, &gw.key, "alice", PERSONAL, true).await;
    let unrelated = "an unrelated question about the receipt";
    send_as(gw, &gw.key, "bob", unrelated, false).await;
}

/// Searches as `token` until `total` records match `query`; the last answer.
async fn until_total(gw: &Gateway, token: &str, query: &str, total: u64) -> Value {
    let mut found = Value::Null;
    for _ in 0..150 {
        found = search(gw, token, query).await.json();
        if found["total"] == total {
            return found;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{query}: never {total}: {found}");
}

/// Every file under `dir`, read whole.
fn files_under(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
    out
}

/// Calls `visit` with every segment of every partition of the index, and the `text`
/// field.
fn text_segments(
    index_dir: &std::path::Path,
    mut visit: impl FnMut(&tantivy::SegmentReader, tantivy::schema::Field),
) {
    for day in std::fs::read_dir(index_dir).unwrap() {
        let day = day.unwrap().path();
        if !day.is_dir() {
            continue;
        }
        let index = tantivy::Index::open_in_dir(&day).unwrap();
        let text = index.schema().get_field("text").unwrap();
        let searcher = index.reader().unwrap().searcher();
        for segment in searcher.segment_readers() {
            visit(segment, text);
        }
    }
}

/// The words (terms) of the `text` field across every partition of the index.
fn text_terms(index_dir: &std::path::Path) -> std::collections::BTreeSet<String> {
    let mut terms = std::collections::BTreeSet::new();
    text_segments(index_dir, |segment, text| {
        let postings = segment.inverted_index(text).unwrap();
        let mut stream = postings.terms().stream().unwrap();
        while stream.advance() {
            terms.insert(String::from_utf8_lossy(stream.key()).into_owned());
        }
    });
    terms
}

/// Whether `haystack` holds `needle`, ignoring ASCII case.
fn holds(haystack: &[u8], needle: &str) -> bool {
    let needle = needle.to_ascii_lowercase();
    haystack
        .to_ascii_lowercase()
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// The index files hold no personal value in clear (not the name, the card or the email,
/// neither as bytes nor as words of the text), yet a search for each exact value finds
/// the record — through the admin API and the command line — and nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_holds_no_personal_value_in_clear_yet_exact_values_find_the_record() {
    let gw = indexing_gateway(&["--echo"]).await;
    send_personal_traffic(&gw).await;
    let auditor = admin_token(&gw, Role::Auditor);
    until_total(&gw, &auditor, "kind=llm.request", 3).await;
    let charge = until_total(&gw, &auditor, "q=charge", 2).await;
    let mut expected: Vec<u64> = seqs(&charge);
    expected.sort_unstable();

    for query in [
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "4111111111111111",
        "quillfeather@example.org",
        "\"Margaret Thornbury\"",
        "Margaret Thornbury",
        "thornbury",
        "Thornbury receipt",
    ] {
        let url = format!("q={}", urlencode(query));
        let found = search(&gw, &auditor, &url).await.json();
        let mut got = seqs(&found);
        got.sort_unstable();
        assert_eq!(got, expected, "{query}: {found}");
    }
    for absent in [
        "4111 1111 1111 1112",
        "someone@example.org",
        "\"Margaret Thornberry\"",
    ] {
        let found = search(&gw, &auditor, &format!("q={}", urlencode(absent)))
            .await
            .json();
        assert_eq!(found["total"], 0, "{absent}: {found}");
    }
    // The text around the values is still searchable, and their classes too.
    assert_eq!(search(&gw, &auditor, "q=receipt").await.json()["total"], 3);
    assert_eq!(
        search(&gw, &auditor, "q=credit_card").await.json()["total"],
        2
    );

    let loaded = gw.loaded.clone();
    gw.stop_keeping_files().await;
    let config = loaded.path.clone();
    for query in [
        "4111 1111 1111 1111",
        "quillfeather@example.org",
        "Margaret Thornbury",
    ] {
        let (ok, out, err) = cli(&config, &["search", query, "--json"]);
        assert!(ok, "{err}");
        let found: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(found["total"], 2, "{query}: {found}");
    }

    let index_dir = loaded.audit_index_dir();
    for (path, bytes) in files_under(&index_dir) {
        for value in [
            "thornbury",
            "margaret",
            "quillfeather",
            "4111 1111",
            "4111111111111111",
        ] {
            assert!(!holds(&bytes, value), "{} holds {value}", path.display());
        }
    }
    let terms = text_terms(&index_dir);
    for word in ["thornbury", "margaret", "quillfeather", "4111", "1111"] {
        assert!(!terms.contains(word), "the index's words include {word}");
    }
    assert!(
        terms.contains("receipt") && terms.contains("charge"),
        "{terms:?}"
    );
    let _ = std::fs::remove_dir_all(&loaded.data_dir);
}

/// Percent-encodes a query parameter's value.
fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `POST /admin/audit/erase` as `token`.
async fn erase(gw: &Gateway, token: &str, body: Value) -> common::Reply {
    admin(gw, "POST", "/admin/audit/erase", Some(token), body).await
}

/// The bodies of the log's records of `kind`, as stored.
fn bodies_of(loaded: &airlock::config::LoadedConfig, kind: &str) -> Vec<Value> {
    let audit = rusqlite::Connection::open(loaded.audit_db_path()).unwrap();
    audit
        .prepare("SELECT body FROM records WHERE kind = ?1 ORDER BY seq")
        .unwrap()
        .query_map([kind], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|body| serde_json::from_str(&body.unwrap()).unwrap())
        .collect()
}

/// Erasure by value: a third person named in other people's prompts, in two tenants, is
/// erased through the admin API (a tenant admin, in its own tenant) and the command line
/// (the value on standard input): those payloads go, the index no longer finds the
/// person, the erasure records and an evidence package name only a keyed hash, and the
/// chain still verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasing_a_value_removes_it_from_payloads_and_index_and_names_only_its_hash() {
    let gw = indexing_gateway(&["--echo"]).await;
    let beta = gw.create_key("beta", None, None);
    send_personal_traffic(&gw).await;
    send_as(
        &gw,
        &beta,
        "carol",
        "Please greet Margaret Thornbury from us",
        false,
    )
    .await;
    let auditor = admin_token(&gw, Role::Auditor);
    let named = until_total(&gw, &auditor, "q=Thornbury", 3).await;
    let acme_seqs: Vec<u64> = {
        let charged = until_total(&gw, &auditor, "q=charge", 2).await;
        let mut seqs = seqs(&charged);
        seqs.sort_unstable();
        seqs
    };
    let carol = seqs(&named)
        .into_iter()
        .find(|seq| !acme_seqs.contains(seq))
        .unwrap();
    let acme_admin = scoped_token(&gw, Role::TenantAdmin, Some("acme"));

    // Refusals: a value too short to erase safely, unknown fields, another tenant, a
    // role without the erase permission.
    erase(&gw, &acme_admin, json!({"value": "ab"}))
        .await
        .assert_admin_error(400, "invalid_request");
    erase(&gw, &acme_admin, json!({"value": "Margaret", "colour": 1}))
        .await
        .assert_admin_error(400, "invalid_request");
    erase(
        &gw,
        &acme_admin,
        json!({"value": "Margaret Thornbury", "tenant": "beta"}),
    )
    .await
    .assert_admin_error(403, "permission_denied");
    erase(&gw, &auditor, json!({"value": "Margaret Thornbury"}))
        .await
        .assert_admin_error(403, "permission_denied");

    // A dry run names the records and erases nothing.
    let dry = erase(
        &gw,
        &acme_admin,
        json!({"value": "margaret thornbury", "dry_run": true}),
    )
    .await;
    assert_eq!(dry.status, 200, "{}", dry.text());
    let dry = dry.json();
    assert_eq!(dry["records"], json!(acme_seqs), "{dry}");
    assert!(dry["seq"].is_null());
    until_total(&gw, &auditor, "q=Thornbury", 3).await;

    // The tenant admin erases in its own tenant: alice's two records, not carol's.
    let done = erase(&gw, &acme_admin, json!({"value": "Margaret  THORNBURY"})).await;
    assert_eq!(done.status, 200, "{}", done.text());
    let done = done.json();
    assert_eq!(done["records"], json!(acme_seqs), "{done}");
    let target = done["target"].as_str().unwrap().to_string();
    assert!(target.starts_with("value:") && !done.to_string().to_lowercase().contains("thornbury"));
    let left = until_total(&gw, &auditor, "q=Thornbury", 1).await;
    assert_eq!(seqs(&left), [carol]);
    for gone in [
        "q=charge",
        "q=4111%201111%201111%201111",
        "q=quillfeather%40example.org",
    ] {
        until_total(&gw, &auditor, gone, 0).await;
    }
    assert_eq!(
        search(&gw, &auditor, "q=unrelated").await.json()["total"],
        1
    );

    // The command line erases it in beta, the value read from standard input.
    let config = gw.loaded.path.to_str().unwrap().to_string();
    let (ok, out, err) = common::run_airlock_with_stdin(
        &[
            "audit", "erase", "--value", "--tenant", "beta", "--json", "--config", &config,
        ],
        "Margaret Thornbury\n",
    );
    assert!(ok, "{err}");
    let by_cli: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(by_cli["records"], json!([carol]), "{by_cli}");
    assert_eq!(
        by_cli["target"],
        target.as_str(),
        "the same value, the same hash"
    );
    until_total(&gw, &auditor, "q=Thornbury", 0).await;

    let (loaded, audit) = stop_and_verify(gw).await;

    // The payloads: gone for the three records that held the value, kept for bob's.
    let kept: Vec<(u64, bool)> = audit
        .prepare(
            "SELECT seq, request_payload IS NOT NULL OR response_payload IS NOT NULL
             FROM records WHERE kind = 'llm.request' ORDER BY seq",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for (seq, has_payload) in kept {
        let erased = acme_seqs.contains(&seq) || seq == carol;
        assert_eq!(has_payload, !erased, "record {seq}");
    }

    // The erasure records list what they removed, by a keyed hash of the value.
    let records = bodies_of(&loaded, "audit.erase");
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["erased_records"], json!(acme_seqs));
    assert_eq!(records[1]["erased_records"], json!([carol]));
    for record in &records {
        assert_eq!(record["target"], target.as_str());
        assert!(
            !holds(record.to_string().as_bytes(), "thornbury"),
            "{record}"
        );
        assert!(
            !holds(record.to_string().as_bytes(), "margaret"),
            "{record}"
        );
    }

    // Neither an evidence package nor the index files hold the value.
    let package = loaded.data_dir.join("evidence.tar");
    let args = common::evidence_export_args(&config, &package);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, _, err) = common::run_airlock(&args);
    assert!(ok, "{err}");
    let exported = std::fs::read(&package).unwrap();
    assert!(
        holds(&exported, &target),
        "the package has the erasure records"
    );
    for value in ["thornbury", "quillfeather", "4111 1111"] {
        assert!(
            !holds(&exported, value),
            "the evidence package holds {value}"
        );
    }
    for (path, bytes) in files_under(&loaded.audit_index_dir()) {
        assert!(!holds(&bytes, "thornbury"), "{}", path.display());
    }
    let _ = std::fs::remove_dir_all(&loaded.data_dir);
}

/// The index is a view: deleting its directory while the gateway runs loses nothing. The
/// indexer notices, rebuilds it from the log, and searches find the records from before
/// the deletion as well as those after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_index_is_rebuilt_from_the_log_while_the_gateway_runs() {
    let gw = indexing_gateway(&[]).await;
    let auditor = admin_token(&gw, Role::Auditor);
    for _ in 0..2 {
        send_as(&gw, &gw.key, "alice", "the zeppelin schedule", false).await;
    }
    until_total(&gw, &auditor, "q=zeppelin", 2).await;

    std::fs::remove_dir_all(gw.loaded.audit_index_dir()).unwrap();
    send_as(&gw, &gw.key, "alice", "the zeppelin schedule, again", false).await;
    until_total(&gw, &auditor, "q=zeppelin", 3).await;
    until_total(&gw, &auditor, "q=again", 1).await;
    assert!(gw.loaded.audit_index_dir().join("indexed").exists());
    gw.stop().await;
}
