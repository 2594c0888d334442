//! The listener against clients without credentials: silent sockets, HTTP/2 prefaces
//! that go nowhere and trickled admin bodies, many times the file limit, while a
//! well-behaved client keeps being served; connections closed after their header and
//! idle deadlines; failed accepts logged at a bounded rate; the file limit raised at
//! start; hyper's own parse-error answers in JSON; text logs a request cannot forge
//! lines in; and `/metrics` behind its token.

mod common;

use common::*;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Generous bound for an event a test waits for (the server's own deadlines in these
/// tests are 1–2 s; this only keeps a broken build from hanging the suite).
const PATIENCE: Duration = Duration::from_secs(30);

/// A connection to `server` from the loopback address `from` (127.0.0.x), so one
/// test can play several clients; `None` when the connect does not complete in time.
async fn connect_from(from: [u8; 4], server: SocketAddr) -> Option<TcpStream> {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((from, 0))).unwrap();
    tokio::time::timeout(Duration::from_secs(3), socket.connect(server))
        .await
        .ok()?
        .ok()
}

/// Reads until the server closes the connection; what it sent, or `None` if it was
/// still open after `PATIENCE`.
async fn read_until_closed(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut seen = Vec::new();
    tokio::time::timeout(PATIENCE, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .ok()?;
    Some(seen)
}

/// `GET /healthz` on a new connection from 127.0.0.1: whether it was answered 200.
async fn control_request(server: SocketAddr) -> bool {
    let attempt = async {
        let mut stream = connect_from([127, 0, 0, 1], server).await?;
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .ok()?;
        let answer = read_until_closed(&mut stream).await?;
        Some(answer.starts_with(b"HTTP/1.1 200"))
    };
    tokio::time::timeout(Duration::from_secs(5), attempt)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

/// Lets this test process hold the sockets it opens: soft open-file limit to the hard.
fn raise_own_file_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.maximum.is_some() {
        limit.current = limit.maximum;
        let _ = setrlimit(Resource::Nofile, limit);
    }
}

/// The HTTP/2 client preface and an empty SETTINGS frame: then nothing.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn silent_sockets_and_slow_bodies_many_times_the_file_limit_lock_nobody_out() {
    // Twice the gateway's descriptors of silent sockets, from this process.
    raise_own_file_limit();
    let gw = Served::start(
        "  header_timeout_secs: 1\n  idle_timeout_secs: 2\n",
        "-n 256",
        &[],
        "warn",
    )
    .await;
    let server = gw.addr;
    let mut silent = Vec::new();
    for _ in 0..512 {
        if let Some(stream) = connect_from([127, 0, 0, 2], server).await {
            silent.push(stream);
        }
    }
    let mut prefaces = Vec::new();
    for _ in 0..20 {
        let mut stream = connect_from([127, 0, 0, 3], server).await.unwrap();
        stream.write_all(H2_PREFACE).await.unwrap();
        prefaces.push(stream);
    }
    let slow_logins: Vec<_> = (0..10)
        .map(|_| tokio::spawn(trickled_post(server, "/admin/login")))
        .collect();
    // The control client is served throughout, on new connections and on the data path.
    for round in 0..10 {
        assert!(
            control_request(server).await,
            "control request {round} failed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let chat =
        serde_json::json!({"model": "chat-model", "messages": [{"role": "user", "content": "hi"}]});
    let answer = tokio::time::timeout(
        PATIENCE,
        post(&gw.url("/v1/chat/completions"), &gw.key, &chat),
    )
    .await
    .expect("a chat request during the attack");
    assert_eq!(answer.status, 200, "{}", answer.text());
    // Every silent socket and every lone preface is closed by the server.
    let closed = futures_join(
        silent
            .into_iter()
            .chain(prefaces)
            .map(|mut s| async move { read_until_closed(&mut s).await.is_some() }),
    )
    .await;
    let still_open = closed.iter().filter(|c| !**c).count();
    assert_eq!(still_open, 0, "{still_open} connections were never closed");
    for login in slow_logins {
        let answer = login.await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("\"code\":\"body_timeout\""), "{answer}");
    }
    assert!(control_request(server).await);
    let log = gw.stderr();
    assert!(
        log.contains("connection refused: a connection cap is full"),
        "{log}"
    );
    assert!(!log.contains("accept failed"), "{log}");
}

/// `POST path` with a body that arrives a byte at a time, for ever; the answer, read
/// until the server closes the connection.
async fn trickled_post(server: SocketAddr, path: &str) -> String {
    let mut stream = connect_from([127, 0, 0, 4], server).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 10000\r\n\r\n{{"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let trickle = tokio::spawn(async move {
        while writer.write_all(b" ").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let mut answer = Vec::new();
    let read = tokio::time::timeout(PATIENCE, async {
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf).await {
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
            if answer.ends_with(b"}}") {
                break;
            }
        }
    })
    .await;
    trickle.abort();
    assert!(
        read.is_ok(),
        "the login with a trickled body was never answered"
    );
    String::from_utf8_lossy(&answer).into_owned()
}

/// Runs the futures concurrently; their outputs in order.
async fn futures_join<F: std::future::Future + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        out.push(handle.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_accepts_are_logged_at_a_bounded_rate_and_serving_resumes() {
    raise_own_file_limit();
    // A cap above what 64 descriptors hold: accepts fail for want of descriptors.
    let gw = Served::start(
        "  header_timeout_secs: 1\n  max_connections: 1000\n  max_connections_per_client: 1000\n",
        "-n 64",
        &[],
        "warn",
    )
    .await;
    let mut silent = Vec::new();
    for _ in 0..60 {
        if let Some(stream) = connect_from([127, 0, 0, 2], gw.addr).await {
            silent.push(stream);
        }
    }
    let flood = std::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    // The silent sockets the gateway took are closed after the header timeout, and the
    // descriptors they free serve the control client again.
    let mut served = false;
    while !served && flood.elapsed() < PATIENCE {
        served = control_request(gw.addr).await;
    }
    assert!(served, "the gateway never served again:\n{}", gw.stderr());
    let log = gw.stderr();
    assert!(
        log.contains("accept failed"),
        "no descriptor ran out:\n{log}"
    );
    // One line per 5 s at most (and a first one), however many accepts failed.
    let lines = log.matches("accept failed").count() as u64;
    let allowed = flood.elapsed().as_secs() / 5 + 2;
    assert!(
        lines <= allowed,
        "{lines} lines in {:?}:\n{log}",
        flood.elapsed()
    );
    drop(silent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_soft_file_limit_is_raised_to_the_hard_one_at_start() {
    let gw = Served::start("", "-Sn 100 && ulimit -Hn 300", &[], "warn").await;
    let pid = gw.child.id();
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let open_files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let numbers: Vec<&str> = open_files.split_whitespace().skip(3).take(2).collect();
    assert_eq!(numbers, ["300", "300"], "{open_files}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_close_and_busy_ones_stay_open() {
    let gw = Gateway::start_with(
        "  header_timeout_secs: 1\n  idle_timeout_secs: 1\n",
        &["--tokens-per-sec", "20", "--default-tokens", "100"],
    )
    .await;
    // HTTP/1.1 keep-alive: answered, then closed after a second without a request.
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut stream)
        .await
        .expect("an idle keep-alive connection was never closed");
    assert!(answer.starts_with(b"HTTP/1.1 200"));
    // HTTP/2: a stream longer than the idle timeout finishes; then the idle connection
    // is closed with a GOAWAY, which ends the client's connection cleanly.
    let io = hyper_util::rt::TokioIo::new(TcpStream::connect(gw.addr).await.unwrap());
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    let body = serde_json::json!({"model": "chat-model", "stream": true, "max_tokens": 40,
        "messages": [{"role": "user", "content": "hi"}]});
    let request = json_request(&gw.url("/v1/chat/completions"), &gw.key, &body);
    let started = std::time::Instant::now();
    let response = sender.send_request(request).await.unwrap();
    use http_body_util::BodyExt;
    let text = response.into_body().collect().await.unwrap().to_bytes();
    assert!(
        started.elapsed() > Duration::from_secs(1),
        "the stream was too short to tell"
    );
    assert!(text.ends_with(b"data: [DONE]\n\n"));
    let closed = tokio::time::timeout(PATIENCE, conn).await;
    assert!(
        matches!(closed, Ok(Ok(Ok(())))),
        "the idle HTTP/2 connection did not end with a GOAWAY: {closed:?}"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_connection_without_a_handshake_is_closed_after_the_header_timeout() {
    let certs = scratch_dir("tls-silent");
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(certs.join("server.crt"), generated.cert.pem()).unwrap();
    std::fs::write(
        certs.join("server.key"),
        generated.signing_key.serialize_pem(),
    )
    .unwrap();
    let tls = format!(
        "  header_timeout_secs: 1\n  tls:\n    cert_file: {0}/server.crt\n    key_file: {0}/server.key\n",
        certs.display()
    );
    let gw = Gateway::start_with(&tls, &[]).await;
    let mut silent = TcpStream::connect(gw.addr).await.unwrap();
    // The configured second, not a fixed handshake timeout of 10 s: the bound is the
    // point here, generous for a noisy machine yet below the old fixed one.
    let closed = tokio::time::timeout(Duration::from_secs(8), read_until_closed(&mut silent));
    assert!(matches!(closed.await, Ok(Some(_))), "still open after 8 s");
    gw.stop().await;
    let _ = std::fs::remove_dir_all(&certs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_never_finishes_is_cut_on_every_route() {
    let gw = Gateway::start().await;
    // A route that reads no body answers, and the connection does not wait for the rest.
    let answer = trickled_post(gw.addr, "/healthz").await;
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
    let answer = trickled_post(gw.addr, "/admin/login").await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let (_, body) = answer.split_once("\r\n\r\n").unwrap();
    let json: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(json["error"]["code"], "body_timeout", "{json}");
    gw.stop().await;
}

/// Sends `head` raw and reads the answer until the server closes: status line, JSON.
async fn raw_answer(server: SocketAddr, head: &[u8]) -> (String, serde_json::Value) {
    let mut stream = TcpStream::connect(server).await.unwrap();
    stream.write_all(head).await.unwrap();
    let answer = read_until_closed(&mut stream).await.unwrap();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.contains("content-type: application/json"), "{head}");
    let json = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {text}"));
    (head.lines().next().unwrap().to_string(), json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_hyper_cannot_parse_get_json_errors() {
    let gw = Gateway::start().await;
    let long_uri = format!(
        "GET /v1/models?{} HTTP/1.1\r\nhost: x\r\n\r\n",
        "a".repeat(70_000)
    );
    let (status, json) = raw_answer(gw.addr, long_uri.as_bytes()).await;
    assert_eq!(status, "HTTP/1.1 414 URI Too Long");
    assert_eq!(json["error"]["code"], "uri_too_long", "{json}");
    assert_eq!(json["error"]["type"], "invalid_request_error");
    let mut many = String::from("GET /healthz HTTP/1.1\r\nhost: x\r\n");
    for i in 0..120 {
        many.push_str(&format!("x-h{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let (status, json) = raw_answer(gw.addr, many.as_bytes()).await;
    assert_eq!(status, "HTTP/1.1 431 Request Header Fields Too Large");
    assert_eq!(json["error"]["code"], "headers_too_large", "{json}");
    let (status, json) =
        raw_answer(gw.addr, b"GET /healthz HTTP/1.1\r\nno colon here\r\n\r\n").await;
    assert_eq!(status, "HTTP/1.1 400 Bad Request");
    assert_eq!(json["error"]["code"], "malformed_request", "{json}");
    // The gateway's own answers are untouched.
    let missing = send("GET", &gw.url("/nowhere"), &[], "").await;
    missing.assert_error(404, "unknown_url");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_fields_cannot_forge_text_log_lines() {
    let gw = Served::start("", "", &[], "info").await;
    let forged = "nope\nINFO airlock: admin login succeeded user=root\r\u{1b}[2J";
    let body =
        serde_json::json!({"model": forged, "messages": [{"role": "user", "content": "hi"}]});
    let answer = post(&gw.url("/v1/chat/completions"), &gw.key, &body).await;
    answer.assert_error(404, "model_not_found");
    let deadline = std::time::Instant::now() + PATIENCE;
    while !gw.stderr().contains("nope") && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = gw.stderr();
    let line = log
        .lines()
        .find(|l| l.contains("nope"))
        .expect("the refusal was logged");
    assert!(line.contains("nope\\nINFO airlock: admin login"), "{line}");
    assert!(
        !log.lines().any(|l| l.starts_with("INFO airlock: admin")),
        "{log}"
    );
    assert!(!log.contains('\u{1b}') && !log.contains('\r'), "{log:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_take_a_bearer_token_when_one_is_configured() {
    let secrets = scratch_dir("metrics-token");
    let token_file = secrets.join("metrics.token");
    std::fs::write(&token_file, "scrape-me-7\n").unwrap();
    let gw = Gateway::start_with(
        &format!("  metrics_token_file: {}\n", token_file.display()),
        &[],
    )
    .await;
    send("GET", &gw.url("/metrics"), &[], "")
        .await
        .assert_error(401, "invalid_metrics_token");
    send(
        "GET",
        &gw.url("/metrics"),
        &[("authorization", "Bearer wrong")],
        "",
    )
    .await
    .assert_error(401, "invalid_metrics_token");
    let metrics = send(
        "GET",
        &gw.url("/metrics"),
        &[("authorization", "Bearer scrape-me-7")],
        "",
    )
    .await;
    assert_eq!(metrics.status, 200);
    for name in ["airlock_connections_open", "airlock_in_flight_requests"] {
        assert!(metrics.text().contains(name), "{name} missing");
    }
    gw.stop().await;
    let _ = std::fs::remove_dir_all(&secrets);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_answers_503_while_draining_after_sigterm() {
    use http_body_util::BodyExt;
    let mut gw = Served::start("", "", &["--tokens-per-sec", "20"], "warn").await;
    let ready = send("GET", &gw.url("/readyz"), &[], "").await;
    assert_eq!(
        (ready.status, ready.json()["status"].clone()),
        (200, "ready".into())
    );
    // A 3-second stream is in flight when systemd stops the service.
    let body = serde_json::json!({"model": "chat-model", "stream": true, "max_tokens": 60,
        "messages": [{"role": "user", "content": "hi"}]});
    let request = json_request(&gw.url("/v1/chat/completions"), &gw.key, &body);
    let mut stream = client().request(request).await.unwrap().into_body();
    let mut received = stream
        .frame()
        .await
        .unwrap()
        .unwrap()
        .into_data()
        .unwrap()
        .to_vec();
    gw.terminate();
    // New connections still reach the listener, and hear that it is draining.
    let draining = tokio::time::timeout(PATIENCE, async {
        loop {
            let answer = send("GET", &gw.url("/readyz"), &[], "").await;
            if answer.status == 503 {
                return answer.json();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("/readyz never said it was draining");
    assert_eq!(draining["status"], "draining");
    // The stream in flight finishes whole, and then the process exits cleanly.
    while let Some(frame) = stream.frame().await {
        received.extend_from_slice(&frame.unwrap().into_data().unwrap());
    }
    assert!(received.ends_with(b"data: [DONE]\n\n"));
    assert!(gw.wait().await, "{}", gw.stderr());
}
