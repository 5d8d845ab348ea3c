//! DNS-rebinding protection for the agent listener.
//!
//! The connector sets `Host` to the upstream's authority, so an upstream's own
//! Host/Origin validation cannot see what the agent sent: a same-origin
//! browser request would reach it with the gateway's `Origin`, foreign to the
//! upstream (refused), and a rebound one (`Host: evil.example`, `Origin:
//! http://evil.example`) with its own name as `Host` (accepted). The gateway
//! judges requests that carry an `Origin` itself (browsers send one on every
//! POST and cross-origin request; other agents usually send none):
//!
//! * same-origin (the `Origin` names the request's own authority): on a
//!   loopback listener, the name must be loopback (`localhost`, `127.0.0.1`,
//!   `[::1]`, any port), else `403` (a rebound request); then the `Origin` is
//!   not forwarded, so the upstream sees a non-browser request;
//! * any other `Origin` is forwarded untouched, and the upstream refuses it
//!   exactly as it would without the tunnel.
//!
//! Requests without `Origin` are unchanged (the agent key is what guards the
//! gateway; a browser cannot attach it by itself).

use http::header::{HOST, ORIGIN};
use http::Request;

/// The request's authority: HTTP/2 `:authority`, else the `Host` header.
fn authority<B>(req: &Request<B>) -> Option<String> {
    if let Some(a) = req.uri().authority() {
        return Some(a.as_str().to_ascii_lowercase());
    }
    let h = req.headers().get(HOST)?.to_str().ok()?;
    Some(h.trim().to_ascii_lowercase())
}

/// Host name of an authority (`name[:port]`, `[v6][:port]`, brackets kept);
/// `None` when what follows the name is not an optional numeric port.
fn host_name(authority: &str) -> Option<&str> {
    let end = if authority.starts_with('[') {
        authority.find(']')? + 1
    } else {
        authority.find(':').unwrap_or(authority.len())
    };
    let (name, port) = authority.split_at(end);
    let port_ok = port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    port_ok.then_some(name)
}

/// What to do with a request's `Origin`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// None, or naming another origin: forward as is.
    Forward,
    /// The gateway's own origin: do not forward it.
    Drop,
    /// Same-origin to a non-loopback name on a loopback listener: refuse.
    Rebound,
}

pub(crate) fn judge<B>(req: &Request<B>, loopback_listener: bool) -> Origin {
    if !same_origin(req) {
        return Origin::Forward;
    }
    let loopback_name = authority(req)
        .is_some_and(|a| matches!(host_name(&a), Some("localhost" | "127.0.0.1" | "[::1]")));
    if loopback_listener && !loopback_name {
        Origin::Rebound
    } else {
        Origin::Drop
    }
}

/// The audit record of a refused rebound request: what it named (tunnel
/// and route from its path when they are well-formed names; Host and
/// Origin as sent, cut to a sane length) and where it came from.
pub(crate) fn rebound_event<B>(
    req: &Request<B>,
    remote: Option<std::net::SocketAddr>,
) -> crate::events::TunnelEvent {
    let clip = |s: &str| s.chars().take(256).collect::<String>();
    let mut names = req
        .uri()
        .path()
        .strip_prefix("/t/")
        .unwrap_or("")
        .split('/')
        .map(|n| crate::paths::valid_name(n).then(|| n.to_string()));
    let tunnel = names.next().flatten();
    let route = names.next().flatten();
    let origin = req
        .headers()
        .get(ORIGIN)
        .map(|v| clip(&String::from_utf8_lossy(v.as_bytes())));
    crate::events::TunnelEvent::Rebound {
        tunnel,
        route,
        host: authority(req).map(|a| clip(&a)),
        origin,
        remote: remote.map_or_else(|| "-".to_string(), |a| a.to_string()),
    }
}

/// Whether the request carries an `Origin` naming the request's own
/// authority (same-origin to the gateway), which is then not forwarded.
fn same_origin<B>(req: &Request<B>) -> bool {
    let (Some(origin), Some(a)) = (req.headers().get(ORIGIN), authority(req)) else {
        return false;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let origin = origin.trim().to_ascii_lowercase();
    let Some((scheme, rest)) = origin.split_once("://") else {
        return false;
    };
    if !matches!(scheme, "http" | "https") || rest.contains(['/', '?', '#', '@']) {
        return false;
    }
    // Either side may spell out or omit the scheme's default port.
    let default = if scheme == "https" { ":443" } else { ":80" };
    let bare = |s: &str| s.strip_suffix(default).unwrap_or(s).to_string();
    bare(rest) == bare(&a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(host: Option<&str>, origin: Option<&str>) -> Request<()> {
        let mut b = Request::builder().uri("/t/corp/tools");
        if let Some(h) = host {
            b = b.header(HOST, h);
        }
        if let Some(o) = origin {
            b = b.header(ORIGIN, o);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn same_origin_requests_on_loopback_must_name_loopback() {
        for h in [
            "localhost:8080",
            "127.0.0.1:1",
            "[::1]:9",
            "LOCALHOST",
            "127.0.0.1",
        ] {
            let r = req(Some(h), Some(&format!("http://{h}")));
            assert_eq!(judge(&r, true), Origin::Drop, "{h}");
        }
        for h in [
            "evil.example.com",
            "evil.example.com:8080",
            "localhost.evil.example:80",
            "127.0.0.1.nip.io:80",
            "[::1].evil:1",
            "[::2]:1",
            "localhost:80x",
        ] {
            let r = req(Some(h), Some(&format!("http://{h}")));
            assert_eq!(judge(&r, true), Origin::Rebound, "{h:?}");
            assert_eq!(judge(&r, false), Origin::Drop, "{h:?}");
            assert_eq!(judge(&req(Some(h), None), true), Origin::Forward, "{h:?}");
        }
        let foreign = req(Some("localhost:1"), Some("http://evil.example.com"));
        assert_eq!(judge(&foreign, true), Origin::Forward);
        assert_eq!(
            judge(&req(None, Some("http://localhost")), true),
            Origin::Forward
        );
    }

    #[test]
    fn a_rebound_event_names_what_the_request_claimed() {
        let mut r = req(Some("evil.example:80"), Some("http://evil.example:80"));
        *r.uri_mut() = "/t/corp/tools/x".parse().unwrap();
        let e = rebound_event(&r, Some("10.1.2.3:4444".parse().unwrap()));
        assert_eq!(
            e,
            crate::events::TunnelEvent::Rebound {
                tunnel: Some("corp".into()),
                route: Some("tools".into()),
                host: Some("evil.example:80".into()),
                origin: Some("http://evil.example:80".into()),
                remote: "10.1.2.3:4444".into(),
            }
        );
        *r.uri_mut() = "/t/../%2e".parse().unwrap();
        let crate::events::TunnelEvent::Rebound { tunnel, route, .. } = rebound_event(&r, None)
        else {
            panic!()
        };
        assert_eq!((tunnel, route), (None, None));
    }

    #[test]
    fn only_the_requests_own_origin_is_same_origin() {
        let same = [
            ("127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("gw.example.com", "https://gw.example.com"),
            ("gw.example.com:443", "https://gw.example.com"),
            ("gw.example.com", "https://GW.example.com:443"),
        ];
        for (h, o) in same {
            assert!(same_origin(&req(Some(h), Some(o))), "{h} {o}");
        }
        let foreign = [
            ("127.0.0.1:8080", "http://127.0.0.1:9090"),
            ("127.0.0.1:8080", "http://evil.example.com"),
            ("127.0.0.1:8080", "null"),
            ("127.0.0.1:8080", "http://127.0.0.1:8080/path"),
            ("127.0.0.1:8080", "http://x@127.0.0.1:8080"),
            ("127.0.0.1:8080", "file://127.0.0.1:8080"),
            ("gw.example.com:443", "http://gw.example.com"),
        ];
        for (h, o) in foreign {
            assert!(!same_origin(&req(Some(h), Some(o))), "{h} {o}");
        }
        assert!(!same_origin(&req(Some("127.0.0.1:8080"), None)));
    }
}
