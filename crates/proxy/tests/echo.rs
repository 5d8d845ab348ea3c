//! Echo redaction: a real upstream that reflects the credential the proxy
//! injected (in headers, in a body, in a chunked body, split across reads
//! and chunks, in an interim response), reached through the proxy over
//! plain HTTP and over intercepted TLS. The client never sees the secret.

mod support;

use std::time::Duration;

use airlock_proxy::ProxyHandle;
use support::{
    get_request, header, masked, path, plain_get, proxy, read_head, read_until, tls_exchange, Conn,
    Seen, TestCa, Upstream, PATIENCE,
};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

const TOKEN: &str = "tok-5f2a9c81e7d3b604";
const VALUE: &str = "Bearer tok-5f2a9c81e7d3b604";

/// Writes `parts` one by one with a pause between them, so the proxy reads
/// them separately (the upstream socket has Nagle off).
async fn dribble<S: AsyncWrite + Unpin>(s: &mut S, parts: &[Vec<u8>]) {
    for p in parts {
        if s.write_all(p).await.is_err() {
            return;
        }
        let _ = s.flush().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// One request: records its head, answers according to its path by echoing
/// the `Authorization` it received.
async fn serve(mut s: Conn, seen: Seen) {
    let Some(head) = read_head(&mut s).await else {
        return;
    };
    seen.lock().unwrap().push(head.clone());
    let auth = header(&head, "Authorization").unwrap_or_else(|| "none".into());
    let tok = auth.trim_start_matches("Bearer ").to_string();
    let path = path(&head);
    if path == "/ws" {
        // Switch protocols with the first frame bytes in the same write,
        // then echo whatever comes.
        let _ = s
            .write_all(
                format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Echo: {tok}\r\n\r\nfirst-frame;").as_bytes(),
            )
            .await;
        let mut b = [0u8; 1024];
        while let Ok(n) = s.read(&mut b).await {
            if n == 0 || s.write_all(&b[..n]).await.is_err() {
                break;
            }
        }
        return;
    }
    let b = |s: String| s.into_bytes();
    let body = format!("{{\"authorization\":\"{auth}\",\"token\":\"{tok}\"}}");
    let parts: Vec<Vec<u8>> = match path.split('/').nth(1).unwrap_or("") {
        "header" => vec![b(format!(
            "HTTP/1.1 302 Found\r\nX-Echo: {auth}\r\nLocation: https://cb.example/?t={tok}&v={auth}\r\nContent-Length: 2\r\n\r\nok"
        ))],
        "body" => vec![b(format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ))],
        // The body split at byte k, in two reads.
        "split" => {
            let k: usize = path.rsplit('/').next().unwrap().parse().unwrap();
            let text = format!("token={tok}!");
            vec![
                b(format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", text.len())),
                b(text[..k].to_string()),
                b(text[k..].to_string()),
            ]
        }
        // Chunked, the token split across two chunks at byte k.
        "chunked" => {
            let k: usize = path.rsplit('/').next().unwrap().parse().unwrap();
            let text = format!("token={tok}!{tok}");
            let (a, c) = text.split_at(k);
            vec![
                b("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".into()),
                b(format!("{:x}\r\n{a}\r\n", a.len())),
                b(format!("{:x}\r\n{c}\r\n", c.len())),
                b("0\r\n\r\n".into()),
            ]
        }
        // No length: the body ends when the connection does.
        "close" => vec![
            b("HTTP/1.1 200 OK\r\n\r\nstart ".into()),
            b(tok[..5].to_string()),
            b(format!("{} end", &tok[5..])),
        ],
        "interim" => vec![
            b(format!("HTTP/1.1 100 Continue\r\nX-Echo: {tok}\r\n\r\n")),
            b(format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )),
        ],
        "gzip" => vec![b(format!(
            "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ))],
        "te" => vec![b(format!(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
            body.len()
        ))],
        _ => vec![b("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".into())],
    };
    dribble(&mut s, &parts).await;
    let _ = s.shutdown().await;
}

/// api.test with the credential, over plain HTTP too, TLS intercepted.
async fn proxy_for(up: &Upstream, upstream_ca: Option<&TestCa>) -> ProxyHandle {
    let api = up.at("api.test");
    let p = proxy()
        .allow(&api)
        .plain_http_credential("api", &api, VALUE)
        .intercept();
    match upstream_ca {
        Some(ca) => p.trust_upstream(ca.pem()),
        None => p,
    }
    .start()
    .await
}

/// How the client reaches api.test.
#[derive(Clone, Copy)]
enum Via {
    PlainHttp,
    InterceptedTls,
}

/// One GET of `path` through the proxy, asking for compression; the whole
/// response.
async fn get(h: &ProxyHandle, up: &Upstream, via: Via, path: String) -> String {
    let api = up.at("api.test");
    match via {
        Via::PlainHttp => plain_get(h, &api, &path, "Accept-Encoding: gzip, br\r\n").await,
        Via::InterceptedTls => {
            let req =
                format!("GET {path} HTTP/1.1\r\nHost: {api}\r\nAccept-Encoding: gzip\r\n\r\n");
            tls_exchange(h, &api, "api.test", &req).await.unwrap()
        }
    }
}

/// The response's body after the (last) head, de-chunked if chunked.
fn body_of(resp: &[u8]) -> Vec<u8> {
    let text = resp;
    let mut start = 0;
    let mut head_end = 0;
    // The last head (after interim responses).
    while let Some(p) = text[start..].windows(4).position(|w| w == b"\r\n\r\n") {
        let h = &text[start..start + p];
        head_end = start + p + 4;
        if !(h.starts_with(b"HTTP/1.1 1")) {
            break;
        }
        start = head_end;
    }
    let head = String::from_utf8_lossy(&text[..head_end]).to_ascii_lowercase();
    let mut body = text[head_end..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let nl = rest
                .windows(2)
                .position(|w| w == b"\r\n")
                .expect("chunk size line");
            let size =
                usize::from_str_radix(std::str::from_utf8(&rest[..nl]).unwrap(), 16).unwrap();
            rest = &rest[nl + 2..];
            if size == 0 {
                assert_eq!(rest, b"\r\n", "chunked body ends properly");
                break;
            }
            out.extend_from_slice(&rest[..size]);
            assert_eq!(&rest[size..size + 2], b"\r\n");
            rest = &rest[size + 2..];
        }
        body = out;
    }
    body
}

/// Checks one response: the secret is nowhere in it, and `want_body` is
/// exactly what the client got as a body.
fn check(text: &str, want_body: &str) {
    // Not the token, nor any 8 bytes of it.
    for w in TOKEN.as_bytes().windows(8) {
        let w = std::str::from_utf8(w).unwrap();
        assert!(
            !text.contains(w),
            "part of the token reached the client:\n{text}"
        );
    }
    assert_eq!(
        String::from_utf8_lossy(&body_of(text.as_bytes())),
        want_body,
        "{text}"
    );
}

/// Every echo case through `via`: the secret never reaches the client.
async fn all_cases(h: &ProxyHandle, up: &Upstream, via: Via) {
    let get = |path: String| get(h, up, via, path);
    let tl = TOKEN.len();
    let vl = VALUE.len();
    // Headers (and a redirect's Location) echoing value and token.
    let text = get("/header".into()).await;
    assert!(text.starts_with("HTTP/1.1 302"), "{text}");
    assert!(
        text.contains(&format!("X-Echo: {}\r\n", masked(vl))),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "Location: https://cb.example/?t={}&v={}\r\n",
            masked(tl),
            masked(vl)
        )),
        "{text}"
    );
    check(&text, "ok");
    // A JSON body: the same JSON with the values masked, same length.
    let r = get("/body".into()).await;
    let want = format!(
        "{{\"authorization\":\"{}\",\"token\":\"{}\"}}",
        masked(vl),
        masked(tl)
    );
    check(&r, &want);
    // Split across reads at every byte of the token.
    for k in 0..=("token=".len() + tl + 1) {
        let r = get(format!("/split/{k}")).await;
        check(&r, &format!("token={}!", masked(tl)));
    }
    // Chunked, split across chunks at every byte of the first token.
    for k in 1..("token=".len() + tl + 1) {
        let r = get(format!("/chunked/{k}")).await;
        check(&r, &format!("token={}!{}", masked(tl), masked(tl)));
    }
    let r = get("/close".into()).await;
    check(&r, &format!("start {} end", masked(tl)));
    let text = get("/interim".into()).await;
    assert!(
        text.starts_with(&format!(
            "HTTP/1.1 100 Continue\r\nX-Echo: {}\r\n",
            masked(tl)
        )),
        "{text}"
    );
    check(
        &text,
        &format!(
            "{{\"authorization\":\"{}\",\"token\":\"{}\"}}",
            masked(vl),
            masked(tl)
        ),
    );
    // What cannot be scanned is refused.
    for p in ["/gzip", "/te"] {
        let text = get(p.into()).await;
        assert!(text.starts_with("HTTP/1.1 502"), "{p}: {text}");
        assert!(!text.contains(TOKEN), "{text}");
    }
    // The upstream did get the credential, and was asked for no compression.
    let seen = up.seen();
    assert!(seen.len() > 40);
    for h in &seen {
        assert!(h.contains(&format!("Authorization: {VALUE}\r\n")), "{h}");
        assert!(h.contains("Accept-Encoding: identity\r\n"), "{h}");
        assert_eq!(h.matches("Accept-Encoding").count(), 1, "{h}");
    }
}

#[tokio::test]
async fn plain_http_echoes_are_masked() {
    let up = Upstream::plain(serve).await;
    let h = proxy_for(&up, None).await;
    all_cases(&h, &up, Via::PlainHttp).await;
    let recs = h.records();
    assert!(
        recs.iter()
            .any(|r| r.rule == "echo" && r.status == Some(502)),
        "{recs:?}"
    );
}

#[tokio::test]
async fn intercepted_tls_echoes_are_masked() {
    let ca = TestCa::new();
    let up = Upstream::tls(&ca, &["api.test"], serve).await;
    let h = proxy_for(&up, Some(&ca)).await;
    all_cases(&h, &up, Via::InterceptedTls).await;
}

#[tokio::test]
async fn websocket_upgrade_head_is_masked_and_first_frames_kept() {
    let up = Upstream::plain(serve).await;
    let h = proxy_for(&up, None).await;
    let mut s = TcpStream::connect(h.tcp_addr().unwrap()).await.unwrap();
    let upgrade = "Upgrade: websocket\r\nConnection: Upgrade\r\n";
    s.write_all(get_request(&up.at("api.test"), "/ws", upgrade).as_bytes())
        .await
        .unwrap();
    let text = read_until(&mut s, "first-frame;").await;
    assert!(text.starts_with("HTTP/1.1 101"), "{text}");
    assert!(
        text.contains(&format!("X-Echo: {}\r\n", masked(TOKEN.len()))),
        "{text}"
    );
    assert!(!text.contains(TOKEN), "{text}");
    // The upgraded stream then flows both ways.
    s.write_all(b"ping").await.unwrap();
    let mut b = [0u8; 1024];
    let n = tokio::time::timeout(PATIENCE, s.read(&mut b))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&b[..n], b"ping");
}
