//! A credential crosses the network in clear text only where the operator
//! opted in: a plain-HTTP request to a credential host is refused before
//! any connection is made (the upstream sees nothing), unless the
//! credential says `plain_http: true`. Hosts without a credential are
//! forwarded over plain HTTP as before.

mod support;

use support::{header, plain_get, proxy, Upstream};

const VALUE: &str = "Bearer tok-8c1d07e2b95a4f36";

/// Answers each request with the `Authorization` it got.
async fn upstream() -> Upstream {
    Upstream::answering(|head| {
        let auth = header(head, "Authorization").unwrap_or_else(|| "none".into());
        format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{auth}",
            auth.len()
        )
    })
    .await
}

/// api.test has the credential (over plain HTTP only with `plain_http`),
/// open.test none.
async fn proxy_for(up: &Upstream, plain_http: bool) -> airlock_proxy::ProxyHandle {
    let p = proxy().allow(&up.at("api.test")).allow(&up.at("open.test"));
    if plain_http {
        p.plain_http_credential("api", &up.at("api.test"), VALUE)
    } else {
        p.credential("api", &up.at("api.test"), VALUE)
    }
    .start()
    .await
}

#[tokio::test]
async fn plain_http_to_a_credential_host_is_refused_before_any_connection() {
    let up = upstream().await;
    let h = proxy_for(&up, false).await;
    let r = plain_get(&h, &up.at("api.test"), "/v1", "").await;
    assert!(r.starts_with("HTTP/1.1 403"), "{r}");
    assert!(r.contains("https://api.test"), "the fix is named: {r}");
    assert!(!r.contains("tok-"), "{r}");
    assert_eq!(up.accepted(), 0, "the upstream saw a connection");
    let recs = h.shutdown().await;
    let rec = recs.iter().find(|r| r.host == "api.test").unwrap();
    assert_eq!(rec.rule, "credential");
    assert_eq!(rec.status, Some(403));
    assert_eq!(rec.credential, None);
}

#[tokio::test]
async fn plain_http_without_a_credential_is_forwarded_as_before() {
    let up = upstream().await;
    let h = proxy_for(&up, false).await;
    let r = plain_get(&h, &up.at("open.test"), "/v1", "").await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(r.ends_with("none"), "no credential for this host: {r}");
    assert_eq!(up.accepted(), 1);
    h.shutdown().await;
}

#[tokio::test]
async fn plain_http_opt_in_injects_the_credential() {
    let up = upstream().await;
    let h = proxy_for(&up, true).await;
    let r = plain_get(&h, &up.at("api.test"), "/v1", "").await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    // The upstream got the injected value; the echo reaches the client masked.
    assert_eq!(up.accepted(), 1);
    assert!(!r.contains("tok-8c1d07e2b95a4f36"), "echo not masked: {r}");
    assert!(r.ends_with(&"*".repeat(VALUE.len())), "{r}");
    let recs = h.shutdown().await;
    let rec = recs.iter().find(|r| r.host == "api.test").unwrap();
    assert_eq!(rec.credential.as_deref(), Some("api"));
}
