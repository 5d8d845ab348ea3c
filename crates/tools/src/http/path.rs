//! HTTP path canonicalisation and route matching, done on the string the
//! agent sent, before any request exists. One canonical form per path:
//! segments percent-decoded once, checked, then re-encoded the same way
//! every time, so an encoded trick cannot look like a different route.

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::args::clip;
use crate::ToolError;

/// Longest path accepted.
pub const MAX_PATH: usize = 2048;

/// Everything but the RFC 3986 unreserved characters is encoded.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The canonical form of an agent-supplied path, or why it is refused.
pub fn canonical_path(raw: &str) -> Result<String, ToolError> {
    let shown = clip(raw, 120);
    let refuse = |why: &str| {
        Err(ToolError::denied(format!(
            "path `{shown}` {why}; give a path like `/v1/items/42` and put parameters in `query`"
        )))
    };
    if raw.len() > MAX_PATH {
        return Err(ToolError::invalid(format!(
            "`path` is {} bytes long; the most accepted is {MAX_PATH}",
            raw.len()
        )));
    }
    if !raw.starts_with('/') {
        return refuse("must start with `/` (absolute URLs and other hosts are not accepted)");
    }
    if raw.contains("//") {
        return refuse("contains `//`");
    }
    if let Some(c) = raw
        .chars()
        .find(|c| matches!(c, '\\' | '?' | '#' | ';') || c.is_whitespace() || c.is_control())
    {
        return refuse(&format!("contains `{}`", c.escape_default()));
    }
    let mut out = String::with_capacity(raw.len());
    for seg in raw[1..].split('/') {
        let decoded = match percent_decode_str(seg).decode_utf8() {
            Ok(d) => d,
            Err(_) => return refuse("has a percent-encoding that is not UTF-8"),
        };
        if let Some(c) = decoded
            .chars()
            .find(|c| matches!(c, '/' | '\\' | '%' | ';' | '?' | '#') || c.is_control())
        {
            return refuse(&format!(
                "encodes `{}` inside a segment (encoded separators and double encoding are not accepted)",
                c.escape_default()
            ));
        }
        if decoded == "." || decoded == ".." {
            return refuse("contains a `.` or `..` segment (also when percent-encoded)");
        }
        out.push('/');
        out.extend(utf8_percent_encode(&decoded, SEGMENT));
    }
    Ok(out)
}

pub use airlock_config::route_path_matches as route_matches;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms() {
        assert_eq!(canonical_path("/a/b").unwrap(), "/a/b");
        assert_eq!(canonical_path("/a/%62").unwrap(), "/a/b");
        assert_eq!(
            canonical_path("/a/b c".replace(' ', "%20").as_str()).unwrap(),
            "/a/b%20c"
        );
        assert_eq!(canonical_path("/caf%C3%A9").unwrap(), "/caf%C3%A9");
        assert_eq!(canonical_path("/café").unwrap(), "/caf%C3%A9");
        assert_eq!(canonical_path("/a/").unwrap(), "/a/");
    }

    #[test]
    fn tricks_refused() {
        for bad in [
            "/a/../admin",
            "/a/%2e%2e/admin",
            "/a/%2E%2E/admin",
            "/a/.%2e/x",
            "/a/%2fadmin",
            "/a%2F..%2Fadmin",
            "/a/%5c..",
            "/a/%252e%252e",
            "//evil.example/x",
            "/a//b",
            "/a\\..\\b",
            "/a;jsessionid=1",
            "/a/%3bx",
            "/a?x=1",
            "/a#f",
            "http://evil/x",
            "a/b",
            "",
            "/a/%00",
            "/a/%zz",
            "/a/%C3",
            "/a b",
            "/a\r\nHost: evil",
        ] {
            assert!(canonical_path(bad).is_err(), "{bad:?} accepted");
        }
    }

    /// Random compositions of tricky pieces: whatever is accepted is
    /// canonical (a fixed point) and holds no way out of its segment.
    #[test]
    fn random_paths_accepted_only_in_safe_canonical_form() {
        const PIECES: &[&str] = &[
            "/", "/", "a", "b", ".", "..", "%2e", "%2E", "%2f", "%2F", "%5c", "%25", "%", "%00",
            "\\", ";", "?", "#", "é", "%C3%A9", "%C3", "~", " ", "{x}", "%7e", "-", "_", "%20",
            "//",
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut accepted = 0;
        for _ in 0..100_000 {
            let n = 1 + (next() % 8) as usize;
            let mut raw = String::new();
            for _ in 0..n {
                raw.push_str(PIECES[(next() % PIECES.len() as u64) as usize]);
            }
            let Ok(c) = canonical_path(&raw) else {
                continue;
            };
            accepted += 1;
            assert_eq!(canonical_path(&c).as_deref(), Ok(c.as_str()), "{raw:?}");
            assert!(c.starts_with('/') && !c.contains("//"), "{raw:?} -> {c:?}");
            for seg in c[1..].split('/') {
                assert!(seg != "." && seg != "..", "{raw:?} -> {c:?}");
                let d = percent_decode_str(seg).decode_utf8().unwrap();
                assert!(
                    !d.contains(['/', '\\', '%', ';', '?', '#', '\0']) && d != "." && d != "..",
                    "{raw:?} -> {c:?}"
                );
            }
        }
        assert!(
            accepted > 1000,
            "the generator should also produce valid paths ({accepted})"
        );
    }

    #[test]
    fn matching() {
        assert!(route_matches("/items/{id}", "/items/42"));
        assert!(!route_matches("/items/{id}", "/items/"));
        assert!(!route_matches("/items/{id}", "/items/42/delete"));
        assert!(!route_matches("/items", "/items/"));
        assert!(route_matches("/a/b", "/a/b"));
    }
}
