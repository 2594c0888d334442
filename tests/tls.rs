//! HTTPS from PEM files: HTTP/1.1 and HTTP/2 negotiated by ALPN, with the official
//! rustls client trusting the instance's self-signed certificate.

mod common;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_https_over_http1_and_http2() {
    let certs = scratch_dir("tls");
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert_path = certs.join("server.crt");
    let key_path = certs.join("server.key");
    std::fs::write(&cert_path, generated.cert.pem()).unwrap();
    std::fs::write(&key_path, generated.signing_key.serialize_pem()).unwrap();
    let tls = format!(
        "  tls:\n    cert_file: {}\n    key_file: {}\n",
        cert_path.display(),
        key_path.display()
    );
    let gw = Gateway::start_with(&tls, &[]).await;
    let body = serde_json::to_vec(&serde_json::json!({
        "model": "chat-model", "stream": true, "max_tokens": 3,
        "messages": [{"role": "user", "content": "hi"}]
    }))
    .unwrap();
    for (h2, version) in [
        (false, http::Version::HTTP_11),
        (true, http::Version::HTTP_2),
    ] {
        let client = https_client(generated.cert.der().clone(), h2);
        let request = http::Request::post(format!(
            "https://localhost:{}/v1/chat/completions",
            gw.addr.port()
        ))
        .header("authorization", format!("Bearer {}", gw.key))
        .body(Full::new(Bytes::from(body.clone())))
        .unwrap();
        let response = client.request(request).await.unwrap();
        assert_eq!(response.version(), version);
        assert_eq!(response.status(), 200);
        let text = response.into_body().collect().await.unwrap().to_bytes();
        assert!(text.ends_with(b"data: [DONE]\n\n"));
    }
    // Plain HTTP to the TLS port gets nowhere, and the server keeps serving.
    let plain = client().request(
        http::Request::get(format!("http://127.0.0.1:{}/healthz", gw.addr.port()))
            .body(Full::new(Bytes::new()))
            .unwrap(),
    );
    let plain = tokio::time::timeout(std::time::Duration::from_secs(15), plain)
        .await
        .unwrap();
    assert!(plain.is_err() || plain.unwrap().status() != 200);
    let rows = gw.stop().await;
    assert_eq!(rows.len(), 2);
    let _ = std::fs::remove_dir_all(&certs);
}
