//! TLS interception against a real TLS upstream with its own test CA:
//! injection, forged headers, SNI and Host mismatches, upstream verification.

mod support;

use std::time::Duration;

use airlock_proxy::ProxyHandle;
use support::{auth, connect, proxy, tls_exchange, TestCa, Upstream};

const TOKEN: &str = "Bearer upstream-token-93b1c7";

/// A TLS upstream for `names` under `ca`, recording each request head.
async fn tls_upstream(ca: &TestCa, names: &[&str]) -> Upstream {
    Upstream::tls_answering(ca, names, |_| {
        "HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nsecure".into()
    })
    .await
}

/// api.test (with the credential) and other.test allowed, TLS intercepted,
/// upstream certificates trusted if `upstream_ca` signed them.
async fn intercepting(up: &Upstream, upstream_ca: &TestCa) -> ProxyHandle {
    proxy()
        .allow(&up.at("api.test"))
        .allow(&up.at("other.test"))
        .credential("api", &up.at("api.test"), TOKEN)
        .intercept()
        .trust_upstream(upstream_ca.pem())
        .start()
        .await
}

#[tokio::test]
async fn injects_over_intercepted_tls_and_replaces_forged_header() {
    let ca = TestCa::new();
    let up = tls_upstream(&ca, &["api.test", "other.test"]).await;
    let h = intercepting(&up, &ca).await;
    let api = up.at("api.test");
    let r = tls_exchange(
        &h,
        &api,
        "api.test",
        &format!("GET /v1 HTTP/1.1\r\nHost: {api}\r\nAuthorization: Bearer forged\r\n\r\n"),
    )
    .await
    .unwrap();
    assert!(
        r.starts_with("HTTP/1.1 200") && r.ends_with("secure"),
        "{r}"
    );
    let seen = up.seen().join("\n");
    assert!(seen.contains(&format!("Authorization: {TOKEN}")), "{seen}");
    assert!(!seen.contains("forged"), "{seen}");
    assert!(!r.contains("upstream-token"));
    let recs = h.records();
    assert!(
        recs.iter()
            .any(|r| r.credential.as_deref() == Some("api") && r.status == Some(200)),
        "{recs:?}"
    );
}

#[tokio::test]
async fn sni_mismatch_refused() {
    let ca = TestCa::new();
    let up = tls_upstream(&ca, &["api.test", "other.test"]).await;
    let h = intercepting(&up, &ca).await;
    let r = tls_exchange(
        &h,
        &up.at("api.test"),
        "other.test",
        "GET / HTTP/1.1\r\nHost: other.test\r\n\r\n",
    )
    .await;
    assert!(r.is_err() || r.as_ref().unwrap().is_empty(), "{r:?}");
    assert!(up.seen().is_empty());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        h.denials().iter().any(|d| d.rule == "tls"),
        "{:?}",
        h.denials()
    );
}

#[tokio::test]
async fn inner_host_mismatch_is_domain_fronting() {
    let ca = TestCa::new();
    let up = tls_upstream(&ca, &["api.test", "other.test"]).await;
    let h = intercepting(&up, &ca).await;
    let (api, other) = (up.at("api.test"), up.at("other.test"));
    // Inside a tunnel to api.test: a Host, or an absolute target, naming other.test.
    for req in [
        format!("GET / HTTP/1.1\r\nHost: {other}\r\n\r\n"),
        format!("GET https://{other}/ HTTP/1.1\r\nHost: {api}\r\n\r\n"),
    ] {
        let r = tls_exchange(&h, &api, "api.test", &req).await.unwrap();
        assert!(r.starts_with("HTTP/1.1 421"), "{r}");
    }
    assert!(up.seen().is_empty());
}

#[tokio::test]
async fn upstream_certificate_is_verified() {
    let ca = TestCa::new();
    let wrong = TestCa::new();
    let up = tls_upstream(&ca, &["api.test"]).await;
    let h = intercepting(&up, &wrong).await;
    let api = up.at("api.test");
    let r = tls_exchange(
        &h,
        &api,
        "api.test",
        &format!("GET / HTTP/1.1\r\nHost: {api}\r\n\r\n"),
    )
    .await
    .unwrap();
    assert!(r.starts_with("HTTP/1.1 502"), "{r}");
    assert!(
        up.seen().is_empty(),
        "the credential must not go to an unverified server"
    );
}

#[tokio::test]
async fn no_ca_means_credential_hosts_refused() {
    let ca = TestCa::new();
    let up = tls_upstream(&ca, &["api.test"]).await;
    let api = up.at("api.test");
    let h = proxy()
        .allow(&api)
        .credential("api", &api, TOKEN)
        .start()
        .await;
    let (head, _) = connect(h.tcp_addr().unwrap(), &api, &auth()).await;
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
}
