//! Routes with several targets, against real mock-upstreams made to fail on purpose:
//! failover, circuit breakers opening and closing, Retry-After, weights, and what is
//! never retried.

mod common;

use common::{Extra, Gateway, post, send, start_mock};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

fn chat(model: &str, stream: bool) -> Value {
    json!({
        "model": model,
        "messages": [{"role": "user", "content": "Say something short."}],
        "max_tokens": 8,
        "stream": stream,
    })
}

fn upstreams(named: &[(&str, SocketAddr)]) -> String {
    named
        .iter()
        .map(|(name, addr)| format!("  {name}:\n    base_url: http://{addr}/v1\n"))
        .collect()
}

/// `name` from `targets` (YAML flow list), with fast retries and a breaker that opens
/// after three consecutive failures for one second.
fn route(name: &str, targets: &str, retry: &str) -> String {
    format!(
        "  {name}:\n    targets: {targets}\n    retry: {retry}\n    breaker: {{failure_threshold: 3, open_secs: 1}}\n"
    )
}

const FAST_RETRY: &str = "{attempts: 3, backoff_ms: 1, max_backoff_ms: 5}";

/// The value of one sample line of `/metrics`, matched by its name and label fragments.
async fn metric(gw: &Gateway, name: &str, labels: &[&str]) -> Option<f64> {
    let text = send("GET", &gw.url("/metrics"), &[], bytes::Bytes::new())
        .await
        .text();
    text.lines()
        .filter(|l| l.starts_with(name) && labels.iter().all(|f| l.contains(f)))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

/// A gateway whose model `ha` goes to `primary` (a mock with `primary_flags`), then to a
/// healthy `secondary`; returns the mocks' stop switches with it.
async fn primary_and_secondary(
    primary_flags: &[&str],
) -> (Gateway, [tokio::sync::watch::Sender<bool>; 2]) {
    let (primary, p) = start_mock(primary_flags).await;
    let (secondary, s) = start_mock(&[]).await;
    let extra = Extra {
        upstreams: upstreams(&[("primary", primary), ("secondary", secondary)]),
        models: route(
            "ha",
            "[{upstream: primary, model: mock-llama}, {upstream: secondary, model: mock-llama, priority: 1}]",
            FAST_RETRY,
        ),
        ..Extra::default()
    };
    (Gateway::start_full("", &[], &extra).await, [p, s])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fails_over_without_the_client_noticing_and_the_breaker_takes_over() {
    let (gw, _mocks) = primary_and_secondary(&["--fault", "500"]).await;
    for i in 0..6 {
        let stream = i % 2 == 1;
        let reply = post(
            &gw.url("/v1/chat/completions"),
            &gw.key,
            &chat("ha", stream),
        )
        .await;
        assert_eq!(reply.status, 200, "request {i}: {}", reply.text());
        if stream {
            assert_eq!(reply.sse_data().last().map(String::as_str), Some("[DONE]"));
        } else {
            assert!(reply.json()["choices"][0]["message"]["content"].is_string());
        }
    }
    assert_eq!(
        metric(&gw, "airlock_breaker_state", &["upstream=\"primary\""]).await,
        Some(2.0),
        "three failures in a row open the primary's breaker"
    );
    assert_eq!(
        metric(
            &gw,
            "airlock_upstream_attempts_total",
            &["upstream=\"primary\"", "outcome=\"error\""]
        )
        .await,
        Some(3.0)
    );
    let mut rows = gw.stop().await;
    rows.reverse();
    let tries: Vec<(u32, &str)> = rows
        .iter()
        .map(|r| (r.attempts, r.upstream.as_deref().unwrap_or("")))
        .collect();
    // Three requests failed over (primary, then secondary); then the open breaker sends
    // the rest straight to the secondary.
    assert_eq!(
        tries,
        [
            (2, "secondary"),
            (2, "secondary"),
            (2, "secondary"),
            (1, "secondary"),
            (1, "secondary"),
            (1, "secondary")
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_breaker_lets_one_probe_through_and_closes_when_the_target_recovered() {
    let (gw, _mocks) = primary_and_secondary(&["--fault", "503", "--fault-count", "3"]).await;
    for _ in 0..4 {
        let reply = post(&gw.url("/v1/chat/completions"), &gw.key, &chat("ha", false)).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    assert_eq!(
        metric(&gw, "airlock_breaker_state", &["upstream=\"primary\""]).await,
        Some(2.0)
    );
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(
        metric(&gw, "airlock_breaker_state", &["upstream=\"primary\""]).await,
        Some(1.0),
        "half-open once open_secs passed"
    );
    let reply = post(&gw.url("/v1/chat/completions"), &gw.key, &chat("ha", false)).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        metric(&gw, "airlock_breaker_state", &["upstream=\"primary\""]).await,
        Some(0.0),
        "the probe succeeded"
    );
    let rows = gw.stop().await;
    assert_eq!(rows[0].upstream.as_deref(), Some("primary"));
    assert_eq!(rows[0].attempts, 1);
    assert_eq!(rows[1].upstream.as_deref(), Some("secondary"));
    assert_eq!(rows[1].attempts, 1, "skipped while open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_retry_after_is_waited_for_and_a_long_one_rests_the_target() {
    // The mock's 429 says `Retry-After: 1`.
    let (limited, _l) = start_mock(&["--fault", "429", "--fault-count", "1"]).await;
    let (always, _a) = start_mock(&["--fault", "429"]).await;
    let extra = Extra {
        upstreams: upstreams(&[("limited", limited), ("always", always)]),
        models: route(
            "patient",
            "[{upstream: limited, model: mock-llama}]",
            "{attempts: 2, backoff_ms: 1, max_backoff_ms: 1, max_retry_after_ms: 5000}",
        ) + &route(
            "impatient",
            "[{upstream: always, model: mock-llama}]",
            "{attempts: 3, backoff_ms: 1, max_backoff_ms: 1, max_retry_after_ms: 500}",
        ),
        ..Extra::default()
    };
    let gw = Gateway::start_full("", &[], &extra).await;

    let started = Instant::now();
    let reply = post(
        &gw.url("/v1/chat/completions"),
        &gw.key,
        &chat("patient", false),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited for Retry-After"
    );

    let reply = post(
        &gw.url("/v1/chat/completions"),
        &gw.key,
        &chat("impatient", false),
    )
    .await;
    reply.assert_error(429, "rate_limit_exceeded");
    assert_eq!(reply.headers["retry-after"], "1");
    // It did not wait to retry: one attempt of three (the request log's rows, below).
    let reply = post(
        &gw.url("/v1/chat/completions"),
        &gw.key,
        &chat("impatient", false),
    )
    .await;
    reply.assert_error(503, "no_available_target");

    let rows = gw.stop().await;
    let attempts: Vec<u32> = rows.iter().rev().map(|r| r.attempts).collect();
    assert_eq!(attempts, [2, 1, 0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_errors_are_not_retried_and_weights_share_the_traffic() {
    let (a, _a) = start_mock(&[]).await;
    let (b, _b) = start_mock(&[]).await;
    let extra = Extra {
        upstreams: upstreams(&[("a", a), ("b", b)]),
        models: route(
            "split",
            "[{upstream: a, model: mock-llama, weight: 3}, {upstream: b, model: mock-llama}]",
            FAST_RETRY,
        ),
        ..Extra::default()
    };
    let gw = Gateway::start_full("", &[], &extra).await;
    let bad =
        json!({"model": "split", "messages": [{"role": "user", "content": "x"}], "max_tokens": -1});
    let reply = post(&gw.url("/v1/chat/completions"), &gw.key, &bad).await;
    reply.assert_error(400, "upstream_rejected");
    for _ in 0..400 {
        let reply = post(
            &gw.url("/v1/chat/completions"),
            &gw.key,
            &chat("split", false),
        )
        .await;
        assert_eq!(reply.status, 200);
    }
    let rows = gw.stop().await;
    let rejected = rows.last().unwrap();
    assert_eq!((rejected.status, rejected.attempts), (400, 1));
    let to_a = rows[..400]
        .iter()
        .filter(|r| r.upstream.as_deref() == Some("a"))
        .count();
    // 3:1 over 400 requests: 300 expected, sd ≈ 8.7; five sd either way.
    assert!((256..=344).contains(&to_a), "{to_a} of 400 went to a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_only_go_to_targets_that_can_serve_them() {
    let (plain, _p) = start_mock(&[]).await;
    let (capable, _c) = start_mock(&[]).await;
    let extra = Extra {
        upstreams: upstreams(&[("plain", plain), ("capable", capable)]),
        models: route(
            "mixed",
            "[{upstream: plain, model: mock-llama, capabilities: {tools: false, vision: false, max_context_tokens: 100}}, \
              {upstream: capable, model: mock-llama, priority: 1, capabilities: {vision: false}}]",
            FAST_RETRY,
        ),
        ..Extra::default()
    };
    let gw = Gateway::start_full("", &[], &extra).await;
    let url = gw.url("/v1/chat/completions");
    let mut with_tools = chat("mixed", false);
    with_tools["tools"] = json!([{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]);
    for _ in 0..5 {
        assert_eq!(post(&url, &gw.key, &with_tools).await.status, 200);
    }
    assert_eq!(post(&url, &gw.key, &chat("mixed", false)).await.status, 200);
    let mut long = chat("mixed", false);
    long["messages"][0]["content"] = json!("x".repeat(1_000));
    assert_eq!(post(&url, &gw.key, &long).await.status, 200);

    let mut with_image = chat("mixed", false);
    with_image["messages"][0]["content"] = json!([
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    ]);
    let reply = post(&url, &gw.key, &with_image).await;
    reply.assert_error(400, "unsupported_capability");
    assert_eq!(reply.json()["error"]["param"], "messages");

    let mut rows = gw.stop().await;
    rows.reverse();
    let served: Vec<&str> = rows
        .iter()
        .map(|r| r.upstream.as_deref().unwrap_or("-"))
        .collect();
    assert_eq!(
        served,
        [
            "capable", "capable", "capable", "capable", "capable", "plain", "capable", "-"
        ],
        "tools and the long prompt skip `plain`; an image fits nowhere"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_are_retried_only_before_their_first_byte_and_breaks_count_against_the_target() {
    let (cut_early, _e) = start_mock(&["--fault", "reset:0"]).await;
    let (cut_late, _l) = start_mock(&["--fault", "reset"]).await;
    let (healthy, _h) = start_mock(&[]).await;
    let fallback = "{upstream: healthy, model: mock-llama, priority: 1}";
    let extra = Extra {
        upstreams: upstreams(&[
            ("cut_early", cut_early),
            ("cut_late", cut_late),
            ("healthy", healthy),
        ]),
        models: route(
            "early",
            &format!("[{{upstream: cut_early, model: mock-llama}}, {fallback}]"),
            FAST_RETRY,
        ) + &route(
            "late",
            &format!("[{{upstream: cut_late, model: mock-llama}}, {fallback}]"),
            FAST_RETRY,
        ),
        ..Extra::default()
    };
    let gw = Gateway::start_full("", &[], &extra).await;
    let url = gw.url("/v1/chat/completions");

    // Cut before the first event: nothing reached the client, so the next target serves.
    let reply = post(&url, &gw.key, &chat("early", true)).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.sse_data().last().map(String::as_str), Some("[DONE]"));

    // Cut after three events: the client already has bytes; it gets an explicit error
    // event, and each break counts against the target until its breaker opens.
    for _ in 0..3 {
        let events = post(&url, &gw.key, &chat("late", true)).await.sse_data();
        let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
        assert_eq!(
            last["error"]["code"], "upstream_stream_broken",
            "{events:?}"
        );
    }
    let reply = post(&url, &gw.key, &chat("late", true)).await;
    assert_eq!(reply.sse_data().last().map(String::as_str), Some("[DONE]"));

    let mut rows = gw.stop().await;
    rows.reverse();
    let summary: Vec<(u32, &str, Option<&str>)> = rows
        .iter()
        .map(|r| {
            (
                r.attempts,
                r.upstream.as_deref().unwrap_or("-"),
                r.error_type.as_deref(),
            )
        })
        .collect();
    let broken = Some("upstream_stream_broken");
    assert_eq!(
        summary,
        [
            (2, "healthy", None),
            (1, "cut_late", broken),
            (1, "cut_late", broken),
            (1, "cut_late", broken),
            (1, "healthy", None),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_latency_strategy_settles_on_the_fastest_target() {
    let (slow, _s) = start_mock(&["--latency-ms", "150"]).await;
    let (fast, _f) = start_mock(&[]).await;
    let extra = Extra {
        upstreams: upstreams(&[("slow", slow), ("fast", fast)]),
        models: route(
            "quick",
            "[{upstream: slow, model: mock-llama}, {upstream: fast, model: mock-llama}]",
            FAST_RETRY,
        ) + "    strategy: latency\n",
        ..Extra::default()
    };
    let gw = Gateway::start_full("", &[], &extra).await;
    for _ in 0..10 {
        let reply = post(
            &gw.url("/v1/chat/completions"),
            &gw.key,
            &chat("quick", false),
        )
        .await;
        assert_eq!(reply.status, 200);
    }
    let rows = gw.stop().await;
    let to_slow = rows
        .iter()
        .filter(|r| r.upstream.as_deref() == Some("slow"))
        .count();
    // Each target is measured once (unmeasured targets go first); then the fast one wins.
    assert_eq!(
        to_slow,
        1,
        "{:?}",
        rows.iter().map(|r| r.upstream.clone()).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn experiment_arms_are_sticky_per_user_recorded_and_summed() {
    let (stable, _s) = start_mock(&[]).await;
    let (canary, _c) = start_mock(&[]).await;
    let extra = Extra {
        upstreams: upstreams(&[("stable", stable), ("canary", canary)]),
        models: route(
            "rollout",
            "[{upstream: stable, model: mock-llama, arm: stable}, {upstream: canary, model: mock-llama, arm: canary}]",
            FAST_RETRY,
        ) + "    experiment: {name: canary-1, arms: {stable: 70, canary: 30}}\n",
        ..Extra::default()
    };
    let gw = Gateway::start_full("", &[], &extra).await;
    for round in 0..2 {
        for user in 0..40 {
            let mut body = chat("rollout", round == 1);
            body["user"] = json!(format!("user-{user}"));
            assert_eq!(
                post(&gw.url("/v1/chat/completions"), &gw.key, &body)
                    .await
                    .status,
                200
            );
        }
    }
    let log = gw.loaded.request_log_db_path();
    let dir = gw.dir.clone();
    let rows = gw.stop_keeping_files().await;
    let summary = airlock::store::request_log::arm_summary(&log).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();

    let mut arm_of_user = std::collections::HashMap::new();
    for (i, r) in rows.iter().rev().enumerate() {
        let arm = r.arm.as_deref().unwrap();
        assert_eq!(r.experiment.as_deref(), Some("canary-1"));
        assert_eq!(
            r.upstream.as_deref(),
            Some(arm),
            "an arm's own target serves it"
        );
        let user = i % 40;
        assert_eq!(
            *arm_of_user.entry(user).or_insert(arm.to_string()),
            arm,
            "user {user} kept its arm"
        );
    }
    let canary_users = arm_of_user.values().filter(|a| *a == "canary").count();
    assert!(
        (1..=25).contains(&canary_users),
        "{canary_users} of 40 in the 30% arm"
    );
    assert_eq!(summary.len(), 2);
    assert_eq!(summary.iter().map(|a| a.requests).sum::<u64>(), 80);
    let canary_row = summary.iter().find(|a| a.arm == "canary").unwrap();
    assert_eq!(canary_row.requests, 2 * canary_users as u64);
    assert_eq!(
        (canary_row.model.as_str(), canary_row.errors),
        ("rollout", 0)
    );
    assert!(canary_row.completion_tokens > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_health_check_takes_an_upstream_out_of_rotation() {
    let (primary, stop_primary) = start_mock(&[]).await;
    let (secondary, _s) = start_mock(&[]).await;
    let extra = Extra {
        upstreams: format!(
            "  primary:\n    base_url: http://{primary}/v1\n    health_check: {{interval_ms: 100, timeout_ms: 200, unhealthy_after: 2}}\n  secondary:\n    base_url: http://{secondary}/v1\n"
        ),
        models: route(
            "ha",
            "[{upstream: primary, model: mock-llama}, {upstream: secondary, model: mock-llama, priority: 1}]",
            FAST_RETRY,
        ),
        ..Extra::default()
    };
    let gw = Gateway::start_full("", &[], &extra).await;
    let url = gw.url("/v1/chat/completions");
    assert_eq!(post(&url, &gw.key, &chat("ha", false)).await.status, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        metric(&gw, "airlock_upstream_healthy", &["upstream=\"primary\""]).await,
        Some(1.0)
    );

    stop_primary.send(true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while metric(&gw, "airlock_upstream_healthy", &["upstream=\"primary\""]).await != Some(0.0) {
        assert!(Instant::now() < deadline, "primary never marked unhealthy");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(post(&url, &gw.key, &chat("ha", false)).await.status, 200);

    let rows = gw.stop().await;
    assert_eq!(
        (rows[0].upstream.as_deref(), rows[0].attempts),
        (Some("secondary"), 1),
        "skipped without an attempt"
    );
    assert_eq!(rows[1].upstream.as_deref(), Some("primary"));
}

/// A gateway whose model `cached` (one target, on the mock `mock`) caches answers for
/// `ttl_secs`.
async fn cached_gateway(mock: SocketAddr, ttl_secs: u64) -> Gateway {
    let extra = Extra {
        upstreams: upstreams(&[("solo", mock)]),
        models: route(
            "cached",
            "[{upstream: solo, model: mock-llama}]",
            FAST_RETRY,
        ) + &format!("    cache: {{ttl_secs: {ttl_secs}, max_entries: 100}}\n"),
        ..Extra::default()
    };
    Gateway::start_full("", &[], &extra).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_response_cache_answers_repeats_per_tenant_and_never_streams() {
    let (mock, _m) = start_mock(&[]).await;
    let gw = cached_gateway(mock, 60).await;
    let url = gw.url("/v1/chat/completions");
    let other_tenant = gw.create_key("other", None, None);

    let first = post(&url, &gw.key, &chat("cached", false)).await;
    let again = post(&url, &gw.key, &chat("cached", false)).await;
    assert_eq!(first.headers["x-airlock-cache"], "miss");
    assert_eq!(again.headers["x-airlock-cache"], "hit");
    assert_eq!(first.body, again.body, "the same answer, id included");

    let elsewhere = post(&url, &other_tenant, &chat("cached", false)).await;
    assert_eq!(
        elsewhere.headers["x-airlock-cache"], "miss",
        "tenants never share"
    );
    let mut longer = chat("cached", false);
    longer["max_tokens"] = json!(9);
    assert_eq!(
        post(&url, &gw.key, &longer).await.headers["x-airlock-cache"],
        "miss"
    );
    let streamed = post(&url, &gw.key, &chat("cached", true)).await;
    assert!(streamed.headers.get("x-airlock-cache").is_none());

    let mut rows = gw.stop().await;
    rows.reverse();
    let hits: Vec<(bool, u32)> = rows.iter().map(|r| (r.cache_hit, r.attempts)).collect();
    assert_eq!(
        hits,
        [(false, 1), (true, 0), (false, 1), (false, 1), (false, 1)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_answer_is_served_within_its_ttl_and_fetched_again_after() {
    let (mock, _m) = start_mock(&[]).await;
    const TTL: Duration = Duration::from_secs(2);
    let gw = cached_gateway(mock, TTL.as_secs()).await;
    let url = gw.url("/v1/chat/completions");
    let body = chat("cached", false);
    let ask = || post(&url, &gw.key, &body);
    let cache = |reply: &common::Reply| reply.headers["x-airlock-cache"].clone();

    // Within the TTL (the second request follows at once; two seconds is generous for
    // one local request), the stored answer.
    let stored = ask().await;
    assert_eq!(cache(&stored), "miss");
    let within = ask().await;
    assert_eq!(cache(&within), "hit");
    assert_eq!(within.body, stored.body);
    // Past it, the upstream is asked again, and the fresh answer is stored anew.
    tokio::time::sleep(TTL + Duration::from_millis(200)).await;
    let after = ask().await;
    assert_eq!(cache(&after), "miss");
    assert_ne!(
        after.body, stored.body,
        "a new answer (a new completion id)"
    );
    assert_eq!(cache(&ask().await), "hit");

    let mut rows = gw.stop().await;
    rows.reverse();
    let hits: Vec<(bool, u32)> = rows.iter().map(|r| (r.cache_hit, r.attempts)).collect();
    assert_eq!(hits, [(false, 1), (true, 0), (false, 1), (true, 0)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hedging_races_a_second_target_when_the_first_is_slow() {
    let (slow, _s) = start_mock(&["--latency-ms", "1500"]).await;
    let (fast, _f) = start_mock(&[]).await;
    let extra = Extra {
        upstreams: upstreams(&[("slow", slow), ("fast", fast)]),
        models: route(
            "hedged",
            "[{upstream: slow, model: mock-llama}, {upstream: fast, model: mock-llama, priority: 1}]",
            FAST_RETRY,
        ) + "    hedge: {after_ms: 100}\n",
        ..Extra::default()
    };
    let gw = Gateway::start_full("", &[], &extra).await;
    let reply = post(
        &gw.url("/v1/chat/completions"),
        &gw.key,
        &chat("hedged", false),
    )
    .await;
    assert_eq!(reply.status, 200);
    // The race was run and lost by the slow target: its request was abandoned.
    common::wait_for_upstream_cancellation(slow).await;
    let rows = gw.stop().await;
    assert_eq!(
        (rows[0].upstream.as_deref(), rows[0].attempts),
        (Some("fast"), 2)
    );
}
