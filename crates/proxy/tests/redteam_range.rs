//! Red-team: reading an echoed credential in slices. The proxy masks each
//! occurrence of the credential it injected in the response, but a slice
//! of the echo is not an occurrence: with `Range: bytes=a-b` the jail asks
//! an upstream that reflects the header (and honours ranges, as any
//! server of stored or static content does) for the token's first half,
//! then its second, and gets each unmasked. On a request carrying an
//! injected credential the proxy drops `Range` / `If-Range`, and refuses a
//! `206` anyway.

mod support;

use support::{header, masked, plain_get, proxy, Upstream};

const TOKEN: &str = "tok-5f2a9c81e7d3b604";
const VALUE: &str = "Bearer tok-5f2a9c81e7d3b604";

/// Answers `token=<the Authorization token>!`, the slice a `Range:
/// bytes=a-b` asks for as a `206`, or, at `/force206`, always a `206` of
/// bytes 6-15 (a server that ignores the missing header).
async fn upstream() -> Upstream {
    Upstream::answering(|head| {
        let auth = header(head, "authorization").unwrap_or_default();
        let body = format!("token={}!", auth.trim_start_matches("Bearer "));
        let range = if head.starts_with("GET /force206 ") {
            Some((6, 15))
        } else {
            header(head, "range").and_then(|r| {
                let (a, b) = r.strip_prefix("bytes=")?.split_once('-')?;
                Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?))
            })
        };
        match range {
            Some((a, b)) if a <= b && b < body.len() => format!(
                "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {a}-{b}/{}\r\nContent-Length: {}\r\n\r\n{}",
                body.len(),
                b - a + 1,
                &body[a..=b]
            ),
            _ => format!(
                "HTTP/1.1 200 OK\r\nAccept-Ranges: bytes\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        }
    })
    .await
}

#[tokio::test]
async fn an_echoed_credential_cannot_be_read_in_ranges() {
    let up = upstream().await;
    let api = up.at("api.test");
    let h = proxy()
        .allow(&api)
        .plain_http_credential("api", &api, VALUE)
        .start()
        .await;
    let (first, second) = TOKEN.split_at(TOKEN.len() / 2);
    // "token=" is 6 bytes: the two halves of the token.
    let a = plain_get(&h, &api, "/echo", "Range: bytes=6-15\r\n").await;
    let b = plain_get(
        &h,
        &api,
        "/echo",
        "range: bytes=16-25\r\nIf-Range: \"x\"\r\n",
    )
    .await;
    for r in [&a, &b] {
        assert!(
            !r.contains(first) && !r.contains(second),
            "a slice of the token came back: {r}"
        );
        // The whole echo, masked, instead.
        assert!(r.starts_with("HTTP/1.1 200 "), "{r}");
        assert!(r.contains(&masked(TOKEN.len())), "{r}");
    }
    for head in up.seen() {
        let lower = head.to_ascii_lowercase();
        assert!(
            !lower.contains("\r\nrange:") && !lower.contains("\r\nif-range:"),
            "{head}"
        );
    }
    // An upstream that sends a 206 unasked is refused, not relayed.
    let c = plain_get(&h, &api, "/force206", "").await;
    assert!(!c.contains(first), "{c}");
    assert!(c.starts_with("HTTP/1.1 502 "), "{c}");
}

/// Requests to hosts without a credential keep their ranges.
#[tokio::test]
async fn ranges_pass_where_no_credential_is_injected() {
    let up = upstream().await;
    let plain = up.at("plain.test");
    let h = proxy().allow(&plain).start().await;
    let r = plain_get(&h, &plain, "/x", "Range: bytes=0-3\r\n").await;
    assert!(r.starts_with("HTTP/1.1 206 "), "{r}");
    assert!(r.ends_with("toke"), "{r}");
    assert!(up.seen()[0].contains("\r\nRange: bytes=0-3\r\n"));
}
