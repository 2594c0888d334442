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
    let extra = Extra {
        top: "audit:\n  search:\n    commit_interval_secs: 1\nauth_failures:\n  record_interval_secs: 1\n".into(),
        ..Extra::default()
    };
    let gw = Gateway::start_full("", &[], &extra).await;
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
    let extra = Extra {
        top: "audit:\n  search:\n    commit_interval_secs: 1\n".into(),
        ..Extra::default()
    };
    let gw = Gateway::start_full("", &[], &extra).await;
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
    let until = |query: &'static str, total: u64| {
        let (gw, auditor) = (&gw, &auditor);
        async move {
            let mut found = Value::Null;
            for _ in 0..100 {
                found = search(gw, auditor, query).await.json();
                if found["total"] == total {
                    return found;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            panic!("{query}: never {total}: {found}");
        }
    };
    let before = until("q=hypertension", 3).await;
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
    let after = until("q=hypertension", 1).await;
    assert_eq!(after["records"][0]["user_id"], "bob");
    let alices = until("user=alice", 3).await;
    let kinds: Vec<&str> = alices["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["audit.erase", "llm.request", "llm.request"]);

    // Alice's later requests are sealed with a new key, and searchable.
    let reply = common::send(
        "POST",
        &url,
        &[("authorization", &auth), ("x-user-id", "alice")],
        serde_json::to_vec(&ask("chat-model", "a fresh start")).unwrap(),
    )
    .await;
    assert_eq!(reply.status, 200);
    until("q=fresh", 1).await;

    let loaded = gw.loaded.clone();
    gw.stop_keeping_files().await;
    let (ok, out, _) = cli(&loaded.path, &["verify"]);
    assert!(ok, "the chain still verifies after erasure: {out}");

    // The log: alice's old payloads gone, her old key destroyed; bob's intact.
    let audit = rusqlite::Connection::open(loaded.audit_db_path()).unwrap();
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
    for day in std::fs::read_dir(loaded.audit_index_dir()).unwrap() {
        let day = day.unwrap().path();
        if !day.is_dir() {
            continue;
        }
        let index = tantivy::Index::open_in_dir(&day).unwrap();
        let text = index.schema().get_field("text").unwrap();
        let searcher = index.reader().unwrap().searcher();
        for segment in searcher.segment_readers() {
            lingering += segment.num_deleted_docs();
            let postings = segment.inverted_index(text).unwrap();
            if let Some(info) = postings
                .get_term_info(&tantivy::Term::from_field_text(text, "hypertension"))
                .unwrap()
            {
                holders += info.doc_freq;
            }
        }
    }
    assert_eq!((holders, lingering), (1, 0));
    let _ = std::fs::remove_dir_all(&loaded.data_dir);
}
