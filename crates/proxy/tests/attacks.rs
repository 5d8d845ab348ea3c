//! Attack suite: every case runs against real loopback servers and a test
//! resolver, and must end with the expected refusal (or, for the controls,
//! the expected success).

mod support;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use airlock_config::{Credential, HostPattern, Network, NetworkMode, Secret};
use airlock_proxy::{
    start_tcp, Decision, Limits, ProxyCredential, ProxyHandle, ProxyOptions, StaticResolver,
};
use base64::Engine;
use support::{
    exchange, proxy_authorization, read_all, read_until, read_until_head, status, Conn, Seen,
    Upstream,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SECRET: &str = "tok-3f9a1c2e7b5d4a60";

/// A loopback upstream that records every byte it receives per connection.
async fn upstream() -> Upstream {
    Upstream::plain(record_everything).await
}

async fn record_everything(mut s: Conn, seen: Seen) {
    let record = |buf: &[u8]| {
        seen.lock()
            .unwrap()
            .push(String::from_utf8_lossy(buf).into())
    };
    let mut buf = Vec::new();
    if !read_until_head(&mut s, &mut buf).await {
        // A dial refused before any request leaves no trace.
        if !buf.is_empty() {
            record(&buf);
        }
        return;
    }
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    if head.contains("upgrade: websocket") {
        let _ = s.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n").await;
        record(&buf);
        let _ = s.write_all(&buf[head_end..]).await;
        let (mut r, mut w) = tokio::io::split(s);
        let _ = tokio::io::copy(&mut r, &mut w).await;
        return;
    }
    let cl: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let chunked = head.contains("transfer-encoding: chunked");
    let mut chunk = [0u8; 4096];
    loop {
        let body = &buf[head_end..];
        let done = if chunked {
            body.windows(5).any(|w| w == b"0\r\n\r\n")
        } else {
            body.len() >= cl
        };
        if done {
            break;
        }
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let _ = s
        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        .await;
    // Keep reading briefly: anything smuggled after the body shows up here.
    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(100), s.read(&mut chunk)).await
    {
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    record(&buf);
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn pats(v: &[String]) -> Vec<HostPattern> {
    v.iter().map(|s| s.parse().unwrap()).collect()
}

struct Env {
    proxy: ProxyHandle,
    up: Upstream,
    resolver: Arc<StaticResolver>,
}

/// One name per class of address the proxy refuses (`{name}.test`), and
/// the address it resolves to. Each is allowed by a host rule: the refusal
/// comes from the address alone.
const CLASSES: [(&str, &str); 20] = [
    ("loopback", "127.0.0.2"),
    ("ten", "10.0.0.1"),
    ("oneseventwo", "172.16.0.1"),
    ("oneninetwo", "192.168.0.1"),
    ("metadata", "169.254.169.254"),
    ("linklocal", "169.254.1.1"),
    ("awsv6", "fd00:ec2::254"),
    ("cgnat", "100.64.0.1"),
    ("multicast", "224.0.0.1"),
    ("unspecified", "0.0.0.0"),
    ("broadcast", "255.255.255.255"),
    ("v6loop", "::1"),
    ("v6link", "fe80::1"),
    ("mapped", "::ffff:127.0.0.1"),
    ("nat64", "64:ff9b::7f00:1"),
    ("sixtofour", "2002:7f00:1::1"),
    ("teredo", "2001:0:4136:e378:8000:63bf:3fff:fdd2"),
    ("compat", "::127.0.0.1"),
    ("ula", "fc00::1"),
    ("doc", "192.0.2.1"),
];

fn resolver() -> StaticResolver {
    let r = StaticResolver::new()
        .with("good.test", &[ip("127.0.0.1")])
        .with("xn--bcher-kva.test", &[ip("127.0.0.1")])
        .with("cred.test", &[ip("127.0.0.1")])
        .with("tls-cred.test", &[ip("127.0.0.1")])
        .with("other.test", &[ip("127.0.0.1")])
        .with("mixed.test", &[ip("93.184.215.14"), ip("127.0.0.2")])
        .with_sequence(
            "rebind.test",
            vec![
                vec![ip("127.0.0.1")],
                vec![ip("10.0.0.1")],
                vec![ip("169.254.169.254")],
            ],
        );
    CLASSES
        .iter()
        .fold(r, |r, (n, a)| r.with(&format!("{n}.test"), &[ip(a)]))
}

async fn env_with(mode: NetworkMode, tweak: impl FnOnce(&mut ProxyOptions, u16)) -> Env {
    let up = upstream().await;
    let p = up.port;
    let mut allow: Vec<String> = [
        "good.test",
        "rebind.test",
        "mixed.test",
        "xn--bcher-kva.test",
        "cred.test",
        "tls-cred.test",
        "127.0.0.1",
        "169.254.169.254",
    ]
    .iter()
    .map(|h| format!("{h}:{p}"))
    .collect();
    for (c, _) in CLASSES {
        allow.push(format!("{c}.test:{p}"));
    }
    allow.push("portless.test".into());
    allow.push(format!("[::1]:{p}"));
    allow.push("10.0.0.1".into());
    let network = Network {
        allow: pats(&allow),
        deny: pats(&[format!("other.test:{p}")]),
        allow_private: vec!["127.0.0.1/32".parse().unwrap()],
        mode,
    };
    let creds = vec![
        Credential {
            name: "cred".into(),
            host: format!("cred.test:{p}").parse().unwrap(),
            header: "Authorization".into(),
            value: Secret::parse(&format!("Bearer {SECRET}")).unwrap(),
            plain_http: true,
        },
        Credential {
            name: "tls".into(),
            host: format!("tls-cred.test:{p}").parse().unwrap(),
            header: "Authorization".into(),
            value: Secret::parse("Bearer abcdefghijkl").unwrap(),
            plain_http: false,
        },
    ];
    let resolver = Arc::new(resolver());
    let mut opts = ProxyOptions::new(
        network,
        creds,
        ProxyCredential {
            user: "airlock".into(),
            password: "run-pass-1".into(),
        },
    );
    opts.resolver = resolver.clone();
    opts.session = "test".into();
    opts.connect_timeout = Duration::from_secs(2);
    tweak(&mut opts, p);
    let proxy = start_tcp("127.0.0.1:0".parse().unwrap(), opts)
        .await
        .unwrap();
    Env {
        proxy,
        up,
        resolver,
    }
}

async fn env() -> Env {
    env_with(NetworkMode::Enforce, |_, _| {}).await
}

fn auth() -> String {
    proxy_authorization("airlock", "run-pass-1")
}

impl Env {
    fn addr(&self) -> SocketAddr {
        self.proxy.tcp_addr().unwrap()
    }

    /// Send raw bytes, read the whole answer.
    async fn raw(&self, req: &[u8]) -> String {
        exchange(self.addr(), req).await
    }

    /// CONNECT to `target`, then (if 200) one GET through the tunnel. Returns the proxy's status.
    async fn connect(&self, target: &str) -> u16 {
        let (head, mut s) = support::connect(self.addr(), target, &auth()).await;
        let st = status(&head);
        if st == 200 {
            s.write_all(b"GET /via-tunnel HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .unwrap();
            assert!(
                read_all(&mut s).await.ends_with("ok"),
                "tunnel did not reach upstream"
            );
        }
        st
    }

    /// A POST of `body` to http://{host}/, framed by its length.
    async fn post(&self, host: &str, body: &str) -> String {
        let (a, n) = (auth(), body.len());
        let req = format!(
            "POST http://{host}/ HTTP/1.1\r\nHost: {host}\r\n{a}Content-Length: {n}\r\n\r\n{body}"
        );
        self.raw(req.as_bytes()).await
    }

    /// A chunked POST to http://{host}/ with the encoded body `chunks`.
    async fn post_chunked(&self, host: &str, chunks: &str) -> String {
        let a = auth();
        let req = format!(
            "POST http://{host}/ HTTP/1.1\r\nHost: {host}\r\n{a}Transfer-Encoding: chunked\r\n\r\n{chunks}"
        );
        self.raw(req.as_bytes()).await
    }

    async fn get(&self, host: &str, extra: &str) -> String {
        self.raw(
            format!(
                "GET http://{host}/p HTTP/1.1\r\nHost: {host}\r\n{}{extra}\r\n",
                auth()
            )
            .as_bytes(),
        )
        .await
    }
}

#[tokio::test]
async fn every_address_class_is_refused() {
    let e = env().await;
    let p = e.up.port;
    for (c, _) in CLASSES {
        assert_eq!(e.connect(&format!("{c}.test:{p}")).await, 403, "{c}");
        assert_eq!(
            status(&e.get(&format!("{c}.test:{p}"), "").await),
            403,
            "{c} (forward)"
        );
    }
    // A name answering one public and one internal address is refused whole.
    assert_eq!(e.connect(&format!("mixed.test:{p}")).await, 403);
    assert!(
        e.up.seen().is_empty(),
        "no refused request may reach a server"
    );
    let d = e.proxy.denials();
    assert!(d.iter().any(
        |r| r.host == "metadata.test" && r.reason.as_deref().unwrap_or("").contains("metadata")
    ));
}

#[tokio::test]
async fn ip_spellings_canonicalised() {
    let e = env().await;
    let p = e.up.port;
    // Spellings of 127.0.0.1 reach the allowed, named IP.
    for s in [
        "127.0.0.1",
        "2130706433",
        "0x7f.1",
        "0177.0.0.1",
        "127.1",
        "0x7f000001",
        "127.0.1",
    ] {
        assert_eq!(e.connect(&format!("{s}:{p}")).await, 200, "{s}");
    }
    // Spellings of 169.254.169.254 are still the metadata address.
    for s in [
        "169.254.169.254",
        "2852039166",
        "0251.0376.0251.0376",
        "0xa9fea9fe",
        "169.254.43518",
        "0xa9.0xfe.0xa9fe",
        "[::ffff:169.254.169.254]",
    ] {
        assert_eq!(e.connect(&format!("{s}:{p}")).await, 403, "{s}");
    }
    // Numeric-looking garbage is refused, never resolved.
    for s in ["256.1.1.1", "1.2.3.4.5", "4294967296", "0x7g.0.0.1"] {
        assert_eq!(e.connect(&format!("{s}:{p}")).await, 400, "{s}");
    }
    // An IP literal needs a rule naming it: 127.0.0.1 is allowed, 127.0.0.2 is not named.
    assert_eq!(e.connect(&format!("127.0.0.2:{p}")).await, 403);
    assert_eq!(
        e.connect(&format!("[::1]:{p}")).await,
        403,
        "named but loopback"
    );
}

#[tokio::test]
async fn dns_rebinding_dials_the_checked_address() {
    let e = env().await;
    let p = e.up.port;
    assert_eq!(e.connect(&format!("rebind.test:{p}")).await, 200);
    assert_eq!(
        e.resolver.lookups("rebind.test"),
        1,
        "exactly one lookup per connection"
    );
    // The next connection gets the internal answer and is refused.
    assert_eq!(e.connect(&format!("rebind.test:{p}")).await, 403);
}

#[tokio::test]
async fn names_trailing_dots_case_idna_homographs() {
    let e = env().await;
    let p = e.up.port;
    for (host, want, why) in [
        ("good.test.", 200, "one trailing dot"),
        ("GoOd.TeSt", 200, "mixed case"),
        ("good.test..", 400, "two trailing dots"),
        ("xn--BCHER-kva.test", 200, "punycode, mixed case"),
        ("bücher.test", 400, "raw UTF-8 in a request line"),
        ("g\u{43e}\u{43e}d.test", 400, "Cyrillic homograph, raw"),
        ("[good.test]", 400, "brackets around a name"),
        ("user@good.test", 400, "userinfo"),
        ("nxdomain.test", 403, "no rule"),
        ("other.test", 403, "deny wins"),
    ] {
        assert_eq!(e.connect(&format!("{host}:{p}")).await, want, "{why}");
    }
    assert_eq!(e.connect("good.test").await, 400, "CONNECT without port");
    assert_eq!(
        status(&e.get(&format!("user:pw@good.test:{p}"), "").await),
        400,
        "userinfo in URI"
    );
    assert_eq!(
        socks_reply(&e, 3, "BÜCHER.test".as_bytes(), p).await,
        0,
        "IDNA to punycode (SOCKS domain)"
    );
    assert_eq!(
        socks_reply(&e, 3, "g\u{43e}\u{43e}d.test".as_bytes(), p).await,
        2,
        "Cyrillic homograph becomes xn--…, matching no rule"
    );
}

#[tokio::test]
async fn connect_host_header_without_port_means_connect_port() {
    let e = env().await;
    let p = e.up.port;
    let r = e
        .raw(
            format!(
                "CONNECT good.test:{p} HTTP/1.1\r\nHost: good.test\r\n{}\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
                auth()
            )
            .as_bytes(),
        )
        .await;
    assert_eq!(status(&r), 200, "{r}");
    let r = e
        .raw(
            format!(
                "CONNECT good.test:{p} HTTP/1.1\r\nHost: good.test:1\r\n{}\r\n",
                auth()
            )
            .as_bytes(),
        )
        .await;
    assert_eq!(status(&r), 400, "{r}");
}

#[tokio::test]
async fn upload_budget() {
    let e = env_with(NetworkMode::Enforce, |o, _| {
        o.limits = Limits {
            bytes_up: Some(200),
            bytes_down: None,
            requests_per_second: None,
        };
    })
    .await;
    let h = format!("good.test:{}", e.up.port);
    let body = "x".repeat(500);
    let r = e.post(&h, &body).await;
    assert_eq!(status(&r), 413, "{r}");
    assert!(e.up.seen().iter().all(|s| !s.contains("xxxx")));
}

#[tokio::test]
async fn ports() {
    let e = env().await;
    let p = e.up.port;
    assert_eq!(
        e.connect(&format!("good.test:{}", p.wrapping_add(1))).await,
        403,
        "port not named"
    );
    assert_eq!(
        e.connect(&format!("portless.test:{p}")).await,
        403,
        "rule without port covers only 80/443"
    );
    assert_eq!(e.connect("portless.test:22").await, 403);
    assert_eq!(e.connect(&format!("good.test:{p}")).await, 200, "control");
}

#[tokio::test]
async fn proxy_credential_required() {
    let e = env().await;
    let p = e.up.port;
    let r = e
        .raw(format!("CONNECT good.test:{p} HTTP/1.1\r\n\r\n").as_bytes())
        .await;
    assert_eq!(status(&r), 407);
    assert!(r.contains("Proxy-Authenticate: Basic"));
    let bad = base64::engine::general_purpose::STANDARD.encode("airlock:wrong");
    let r = e
        .raw(
            format!("CONNECT good.test:{p} HTTP/1.1\r\nProxy-Authorization: Basic {bad}\r\n\r\n")
                .as_bytes(),
        )
        .await;
    assert_eq!(status(&r), 407);
    let r = e
        .raw(
            format!("GET http://good.test:{p}/ HTTP/1.1\r\nHost: good.test:{p}\r\n\r\n").as_bytes(),
        )
        .await;
    assert_eq!(status(&r), 407);
    let r = e
        .raw(
            format!(
                "GET http://good.test:{p}/ HTTP/1.1\r\nHost: good.test:{p}\r\n{}{}\r\n",
                auth(),
                auth()
            )
            .as_bytes(),
        )
        .await;
    assert_eq!(status(&r), 407, "repeated Proxy-Authorization");
    assert!(e.up.seen().is_empty());
}

#[tokio::test]
async fn smuggling_framings_refused() {
    let e = env().await;
    let p = e.up.port;
    let h = format!("good.test:{p}");
    let a = auth();
    let cases = [
        format!("POST http://{h}/ HTTP/1.1\r\nHost: {h}\r\n{a}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        format!("POST http://{h}/ HTTP/1.1\r\nHost: {h}\r\n{a}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        format!("POST http://{h}/ HTTP/1.1\r\nHost: {h}\r\n{a}Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"),
        format!("POST http://{h}/ HTTP/1.1\r\nHost: {h}\r\n{a}Transfer-Encoding: identity\r\n\r\n"),
        format!("POST http://{h}/ HTTP/1.1\r\nHost: {h}\r\n{a}Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"),
        format!("POST http://{h}/ HTTP/1.1\r\nHost: {h}\r\n{a}Content-Length: -1\r\n\r\n"),
        format!("POST http://{h}/ HTTP/1.1\r\nHost: {h}\r\n{a}Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n"),
        format!("GET http://{h}/ HTTP/1.1\r\nHost: {h}\r\n{a}X-A: b\r\n Transfer-Encoding: chunked\r\n\r\n"),
        format!("GET http://{h}/ HTTP/1.1\nHost: {h}\n{a}\n"),
        format!("GET http://{h}/ HTTP/1.1\r\nHost: {h}\r\n{a}X-A: a\x00b\r\n\r\n"),
        format!("GET http://{h}/ HTTP/1.1\r\nHost: evil.test\r\n{a}\r\n"),
        format!("GET http://{h}/ HTTP/1.1\r\nHost: {h}\r\nHost: {h}\r\n{a}\r\n"),
        format!("GET http://{h}/ HTTP/1.1\r\n{a}\r\n"),
        format!("GET http://{h}/ HTTP/1.1\r\nHost: {h}\r\n{a}Upgrade: h2c\r\nConnection: Upgrade\r\n\r\n"),
        format!("GET https://{h}/ HTTP/1.1\r\nHost: {h}\r\n{a}\r\n"),
        format!("GET / HTTP/1.1\r\nHost: {h}\r\n{a}\r\n"),
        format!("CONNECT {h} HTTP/1.1\r\nHost: other.test:{p}\r\n{a}\r\n"),
        format!("POST http://{h}/ HTTP/1.1\r\nHost: {h}\r\n{a}Transfer-Encoding: chunked\r\n\r\n5;x=1\r\nhello\r\n0\r\n\r\n"),
    ];
    for (i, c) in cases.iter().enumerate() {
        let r = e.raw(c.as_bytes()).await;
        assert!(
            r.starts_with("HTTP/1.1 400") || r.is_empty(),
            "case {i}: {r}"
        );
    }
    // Only the last case (bad chunk, found mid-body) opened an upstream, and the
    // body never completed there.
    let seen = e.up.seen();
    assert!(seen.len() <= 1, "{seen:?}");
    assert!(seen.iter().all(|s| !s.contains("hello")), "{seen:?}");
}

#[tokio::test]
async fn pipelined_request_after_body_is_not_forwarded() {
    let e = env().await;
    let p = e.up.port;
    let h = format!("cred.test:{p}");
    let req = format!(
        "POST http://{h}/ HTTP/1.1\r\nHost: {h}\r\n{}Content-Length: 4\r\n\r\nabcdGET /smuggled HTTP/1.1\r\nHost: {h}\r\nAuthorization: Bearer forged\r\n\r\n",
        auth()
    );
    let r = e.raw(req.as_bytes()).await;
    assert_eq!(status(&r), 200);
    let seen = e.up.seen_some().await.join("\n");
    assert!(!seen.contains("smuggled"), "{seen}");
    assert!(!seen.contains("forged"), "{seen}");
}

#[tokio::test]
async fn oversized_headers_refused() {
    let e = env().await;
    let p = e.up.port;
    let big = "a".repeat(40 * 1024);
    let r = e
        .get(&format!("good.test:{p}"), &format!("X-Big: {big}\r\n"))
        .await;
    assert_eq!(status(&r), 431);
    let many: String = (0..150).map(|i| format!("X-{i}: v\r\n")).collect();
    let r = e.get(&format!("good.test:{p}"), &many).await;
    assert_eq!(status(&r), 431);
    assert!(e.up.seen().is_empty());
}

#[tokio::test]
async fn forged_credential_header_is_replaced() {
    let e = env().await;
    let p = e.up.port;
    let r = e
        .get(
            &format!("cred.test:{p}"),
            "authorization: Bearer forged-by-jail\r\nX-Keep: 1\r\n",
        )
        .await;
    assert_eq!(status(&r), 200, "{r}");
    let seen = e.up.seen_some().await.join("\n");
    assert!(
        seen.contains(&format!("Authorization: Bearer {SECRET}")),
        "{seen}"
    );
    assert!(!seen.contains("forged-by-jail"), "{seen}");
    assert!(
        !seen.to_ascii_lowercase().contains("proxy-authorization"),
        "proxy credential leaked upstream"
    );
    assert!(seen.contains("X-Keep: 1"));
    assert!(!r.contains(SECRET), "secret echoed to the jail");
    let recs = e.proxy.records();
    assert!(recs
        .iter()
        .any(|r| r.credential.as_deref() == Some("cred") && r.status == Some(200)));
    // Without a credential rule the header passes through untouched.
    let _ = e
        .get(&format!("good.test:{p}"), "Authorization: Bearer mine\r\n")
        .await;
    assert!(e.up.seen().join("\n").contains("Bearer mine"));
}

#[tokio::test]
async fn credential_hosts_fail_closed() {
    let e = env().await;
    let p = e.up.port;
    // CONNECT to a host with a credential cannot be injected without interception: refused.
    assert_eq!(e.connect(&format!("tls-cred.test:{p}")).await, 403);
    // An unresolvable secret refuses the request with a reason.
    let e2 = env_with(NetworkMode::Enforce, |o, p| {
        o.credentials.push(Credential {
            name: "missing".into(),
            host: format!("good.test:{p}").parse().unwrap(),
            header: "X-Key".into(),
            value: Secret::parse("${env:AIRLOCK_TEST_SURELY_UNSET_VAR}").unwrap(),
            plain_http: true,
        });
    })
    .await;
    let r = e2.get(&format!("good.test:{}", e2.up.port), "").await;
    assert_eq!(status(&r), 502, "{r}");
    assert!(r.contains("missing"));
    assert!(e2.up.seen().is_empty());
}

#[tokio::test]
async fn leak_check() {
    let e = env().await;
    let p = e.up.port;
    let h = format!("good.test:{p}");
    let r = e
        .raw(
            format!(
                "GET http://{h}/?k={SECRET} HTTP/1.1\r\nHost: {h}\r\n{}\r\n",
                auth()
            )
            .as_bytes(),
        )
        .await;
    assert_eq!(status(&r), 403, "secret in URL");
    let r = e.get(&h, &format!("X-Exfil: {SECRET}\r\n")).await;
    assert_eq!(status(&r), 403, "secret in a header");
    let body = format!("data={SECRET}");
    let r = e.post(&h, &body).await;
    assert_eq!(status(&r), 403, "secret in body");
    let chunks = format!("5\r\ndata=\r\n{:x}\r\n{SECRET}\r\n0\r\n\r\n", SECRET.len());
    let r = e.post_chunked(&h, &chunks).await;
    assert_eq!(status(&r), 403, "secret in chunked body");
    assert!(e.up.seen().is_empty());
    let r = e.post_chunked(&h, "5\r\nhello\r\n0\r\n\r\n").await;
    assert_eq!(status(&r), 200, "clean chunked body");
    assert!(e.up.seen().join("").contains("hello"));
}

#[tokio::test]
async fn websocket_only_to_allowed_hosts() {
    let e = env().await;
    let p = e.up.port;
    let ws = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";
    let mut s = TcpStream::connect(e.addr()).await.unwrap();
    s.write_all(
        format!(
            "GET http://good.test:{p}/ws HTTP/1.1\r\nHost: good.test:{p}\r\n{}{ws}\r\nping",
            auth()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let got = read_until(&mut s, "ping").await;
    assert!(got.starts_with("HTTP/1.1 101"), "{got}");
    let r = e.get(&format!("nope.test:{p}"), ws).await;
    assert_eq!(status(&r), 403);
}

async fn socks(
    e: &Env,
    methods: &[u8],
    user: &str,
    pass: &str,
    atyp: u8,
    addr: &[u8],
    port: u16,
) -> (Vec<u8>, Option<TcpStream>) {
    let mut s = TcpStream::connect(e.addr()).await.unwrap();
    let mut g = vec![5, methods.len() as u8];
    g.extend_from_slice(methods);
    s.write_all(&g).await.unwrap();
    let mut r = [0u8; 2];
    s.read_exact(&mut r).await.unwrap();
    if r[1] != 2 {
        return (r.to_vec(), None);
    }
    let mut a = vec![1, user.len() as u8];
    a.extend_from_slice(user.as_bytes());
    a.push(pass.len() as u8);
    a.extend_from_slice(pass.as_bytes());
    s.write_all(&a).await.unwrap();
    s.read_exact(&mut r).await.unwrap();
    if r[1] != 0 {
        return (r.to_vec(), None);
    }
    let mut q = vec![5, 1, 0, atyp];
    if atyp == 3 {
        q.push(addr.len() as u8);
    }
    q.extend_from_slice(addr);
    q.extend_from_slice(&port.to_be_bytes());
    s.write_all(&q).await.unwrap();
    let mut rep = [0u8; 10];
    let _ = tokio::time::timeout(support::PATIENCE, s.read_exact(&mut rep)).await;
    (rep.to_vec(), Some(s))
}

/// SOCKS5 with the proxy credential to `addr` (`atyp` 1 IPv4, 3 domain,
/// 4 IPv6): the reply's code (0 granted, 2 not allowed).
async fn socks_reply(e: &Env, atyp: u8, addr: &[u8], port: u16) -> u8 {
    socks(e, &[2], "airlock", "run-pass-1", atyp, addr, port)
        .await
        .0[1]
}

#[tokio::test]
async fn socks5() {
    let e = env().await;
    let p = e.up.port;
    // No username/password method offered.
    let (r, _) = socks(&e, &[0], "", "", 1, &[127, 0, 0, 1], p).await;
    assert_eq!(r, vec![5, 0xff]);
    // Wrong password.
    let (r, _) = socks(&e, &[0, 2], "airlock", "nope", 1, &[127, 0, 0, 1], p).await;
    assert_eq!(r, vec![1, 1]);
    // IPv4 target named by a rule: allowed, and the tunnel works.
    let (r, s) = socks(&e, &[2], "airlock", "run-pass-1", 1, &[127, 0, 0, 1], p).await;
    assert_eq!(r[1], 0);
    let mut s = s.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(read_all(&mut s).await.ends_with("ok"));
    let v6_loopback = "::1".parse::<std::net::Ipv6Addr>().unwrap().octets();
    for (atyp, addr, port, want, why) in [
        (
            1,
            &[10, 0, 0, 1][..],
            80,
            2,
            "IPv4 internal (named by a rule, refused by address)",
        ),
        (4, &v6_loopback[..], p, 2, "IPv6 loopback"),
        (
            1,
            &[93, 184, 215, 14][..],
            443,
            2,
            "IP literal not named by any rule",
        ),
        (
            3,
            b"2852039166",
            p,
            2,
            "domain that is a decimal IP spelling",
        ),
        (3, b"metadata.test", p, 2, "domain resolving to metadata"),
        (3, b"GOOD.test.", p, 0, "domain allowed"),
        (
            3,
            b"cred.test",
            p,
            2,
            "credential host over SOCKS fails closed",
        ),
    ] {
        assert_eq!(socks_reply(&e, atyp, addr, port).await, want, "{why}");
    }
    let denials = e.proxy.denials();
    assert!(denials.len() >= 7, "{denials:?}");
}

#[tokio::test]
async fn report_mode_relaxes_host_rules_not_addresses() {
    let e = env_with(NetworkMode::Report, |_, _| {}).await;
    let p = e.up.port;
    // Not allowed by rules, but report mode lets it through and records it.
    let r = e.get(&format!("127.0.0.1:{}", p), "").await;
    assert_eq!(status(&r), 200);
    assert_eq!(e.connect(&format!("good.test:{}", p)).await, 200);
    assert_eq!(
        e.connect(&format!("other.test:{p}")).await,
        200,
        "deny rule only reported"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(e
        .proxy
        .denials()
        .iter()
        .any(|r| r.decision == Decision::ReportDeny && r.host == "other.test"));
    // Addresses are still enforced.
    assert_eq!(e.connect(&format!("metadata.test:{p}")).await, 403);
}

#[tokio::test]
async fn budgets_and_rate_limit() {
    let e = env_with(NetworkMode::Enforce, |o, _| {
        o.limits = Limits {
            bytes_up: None,
            bytes_down: Some(30),
            requests_per_second: Some(3),
        };
    })
    .await;
    let p = e.up.port;
    let r = e.get(&format!("good.test:{p}"), "").await;
    assert!(
        !r.ends_with("ok"),
        "download budget of 30 bytes must cut a longer response: {r:?}"
    );
    let mut codes = Vec::new();
    for _ in 0..6 {
        codes.push(status(&e.get(&format!("good.test:{p}"), "").await));
    }
    assert!(codes.contains(&429), "{codes:?}");
}

#[tokio::test]
async fn unix_socket_and_shutdown() {
    let dir = std::env::temp_dir().join(format!("airlock-proxy-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("proxy.sock");
    let up = upstream().await;
    let network = Network {
        allow: pats(&[format!("127.0.0.1:{}", up.port)]),
        allow_private: vec!["127.0.0.1/32".parse().unwrap()],
        ..Default::default()
    };
    let cred = ProxyCredential::generate().unwrap();
    let h = airlock_proxy::start_unix(&path, ProxyOptions::new(network, vec![], cred.clone()))
        .await
        .unwrap();
    let mut s = tokio::net::UnixStream::connect(&path).await.unwrap();
    let b = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", cred.user, cred.password));
    s.write_all(format!("GET http://127.0.0.1:{p}/ HTTP/1.1\r\nHost: 127.0.0.1:{p}\r\nProxy-Authorization: Basic {b}\r\n\r\n", p = up.port).as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert_eq!(status(&out), 200, "{out}");
    // CONNECT over the Unix socket: the spliced relay carries a request and its answer.
    let mut s = tokio::net::UnixStream::connect(&path).await.unwrap();
    s.write_all(format!("CONNECT 127.0.0.1:{p} HTTP/1.1\r\nProxy-Authorization: Basic {b}\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", p = up.port).as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(
        out.starts_with("HTTP/1.1 200 Connection established") && out.ends_with("ok"),
        "{out}"
    );
    drop(s);
    for _ in 0..40 {
        if h.records().len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let recs = h.shutdown().await;
    assert_eq!(recs.len(), 2, "{recs:?}");
    assert!(recs[1].bytes_up > 0 && recs[1].bytes_down > 0, "{recs:?}");
    assert_eq!(
        recs[0].resolved,
        Some(format!("127.0.0.1:{}", up.port).parse().unwrap())
    );
    assert!(recs[0].bytes_down > 0 && recs[0].bytes_up > 0);
    assert!(!path.exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn blocking_api_for_the_jail() {
    use std::io::{Read, Write};
    let dir = std::env::temp_dir().join(format!("airlock-proxy-blocking-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("p.sock");
    let network = Network {
        allow: pats(&["example.test".into()]),
        ..Default::default()
    };
    let mut opts = ProxyOptions::new(network, vec![], ProxyCredential::generate().unwrap());
    opts.resolver = Arc::new(StaticResolver::new().with("example.test", &[ip("10.9.9.9")]));
    let p = airlock_proxy::start_unix_blocking(&path, opts).unwrap();
    assert_eq!(p.socket_path(), Some(path.as_path()));
    let c = p.credential().clone();
    let b = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", c.user, c.password));
    let mut s = std::os::unix::net::UnixStream::connect(&path).unwrap();
    write!(
        s,
        "CONNECT example.test:443 HTTP/1.1\r\nProxy-Authorization: Basic {b}\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert_eq!(status(&out), 403, "{out}");
    // The record is written as the connection ends, which may be just after
    // the client has read the refusal.
    let t = std::time::Instant::now();
    while p.denials().is_empty() && t.elapsed() < std::time::Duration::from_secs(5) {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(p.denials().len(), 1);
    assert_eq!(p.denials()[0].rule, "address");
    let recs = p.shutdown();
    assert_eq!(recs.len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A lazy proxy's options: CONNECT to example.test is denied (a private
/// address), so a client gets a 403 and a record without any network.
fn lazy_setup(tag: &str) -> (std::path::PathBuf, airlock_proxy::LazyProxy, String) {
    let dir = std::env::temp_dir().join(format!("airlock-proxy-lazy-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("p.sock");
    let network = Network {
        allow: pats(&["example.test".into()]),
        ..Default::default()
    };
    let cred = ProxyCredential::generate().unwrap();
    let mut opts = ProxyOptions::new(network, vec![], cred.clone());
    opts.resolver = Arc::new(StaticResolver::new().with("example.test", &[ip("10.9.9.9")]));
    let l = airlock_proxy::bind_unix(&path).unwrap();
    let p = airlock_proxy::serve_unix_lazy(l, &path, opts).unwrap();
    let b = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", cred.user, cred.password));
    (dir, p, b)
}

fn lazy_connect(path: &std::path::Path, basic: &str) -> u16 {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(path).unwrap();
    write!(
        s,
        "CONNECT example.test:443 HTTP/1.1\r\nProxy-Authorization: Basic {basic}\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    status(&out)
}

#[test]
fn lazy_proxy_serves_the_connections_that_start_it() {
    let (dir, p, basic) = lazy_setup("first");
    let path = dir.join("p.sock");
    // Nothing runs until a client comes.
    std::thread::sleep(Duration::from_millis(50));
    assert!(!p.started());
    // Several first connections at once: each one waits in the backlog
    // while the runtime starts, and each one is served by the rules.
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (path, basic) = (path.clone(), basic.clone());
            std::thread::spawn(move || lazy_connect(&path, &basic))
        })
        .collect();
    for c in clients {
        assert_eq!(c.join().unwrap(), 403);
    }
    assert!(p.started());
    assert_eq!(lazy_connect(&path, &basic), 403);
    let t = std::time::Instant::now();
    while p.records().len() < 5 && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let recs = p.shutdown();
    assert_eq!(recs.len(), 5, "{recs:?}");
    assert!(recs.iter().all(|r| r.rule == "address"), "{recs:?}");
    assert!(!path.exists(), "the socket is removed");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn lazy_proxy_never_used_stops_without_a_runtime() {
    let (dir, p, _) = lazy_setup("unused");
    let path = dir.join("p.sock");
    assert!(!p.started());
    assert!(p.shutdown_background().is_empty());
    assert!(!path.exists(), "the socket is removed");
    // After the shutdown nothing serves: a connection is refused.
    assert!(std::os::unix::net::UnixStream::connect(&path).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}
