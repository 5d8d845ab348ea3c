//! Request-target checks shared by gateway and connector (each checks on
//! its own: the connector does not trust the gateway to have done it).
//!
//! Names (tunnel, route) are `[A-Za-z0-9_-]{1,63}`. PATH is forwarded as
//! sent, so it is refused — never normalised — when it could mean something
//! else to the upstream than it appears to: dot segments (also percent-
//! encoded), empty segments (`//`), encoded `/` or `\`, backslashes,
//! control characters and NUL, malformed percent escapes.

/// A valid tunnel or route name.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A safe PATH remainder (without leading `/`; empty is fine).
pub fn valid_path(p: &str) -> bool {
    if p.is_empty() {
        return true;
    }
    if p.len() > 4096 {
        return false;
    }
    let bytes = p.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b < 0x21 || b == 0x7f || b == b'\\' || b == b'?' || b == b'#' {
            return false;
        }
        if b == b'%' {
            let (Some(&h), Some(&l)) = (bytes.get(i + 1), bytes.get(i + 2)) else {
                return false;
            };
            let (Some(h), Some(l)) = ((h as char).to_digit(16), (l as char).to_digit(16)) else {
                return false;
            };
            let c = (h * 16 + l) as u8;
            // Encoded separators, dots, NUL/controls and `%` itself (double
            // encoding) change meaning after one decode.
            if c == b'/' || c == b'\\' || c == b'.' || c < 0x20 || c == 0x7f || c == b'%' {
                return false;
            }
        }
    }
    // A trailing slash is allowed (`mcp/`); other empty segments are not.
    let trimmed = p.strip_suffix('/').unwrap_or(p);
    trimmed
        .split('/')
        .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
}

/// Splits `/a/b/rest` after `n` leading names: returns the names and the
/// remainder without its leading slash. `None` if a name is missing/invalid.
pub fn split_names(path: &str, n: usize) -> Option<(Vec<&str>, &str)> {
    let mut rest = path.strip_prefix('/')?;
    let mut names = Vec::with_capacity(n);
    for _ in 0..n {
        let (name, tail) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        if !valid_name(name) {
            return None;
        }
        names.push(name);
        rest = tail;
    }
    Some((names, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("corp-1_a"));
        for bad in ["", "a.b", "..", "%2e", "a/b", "é", &"x".repeat(64)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn paths() {
        for ok in [
            "",
            "mcp",
            "mcp/",
            "a/b/c",
            "a%20b",
            "v1/items;x=1",
            "a..b",
            ".well-known/x",
        ] {
            assert!(valid_path(ok), "{ok}");
        }
        for bad in [
            "..", "../x", "a/../b", "a/./b", ".", "%2e%2e/x", "%2E%2E", "a/%2e/b", ".%2e", "a//b",
            "/a", "a%2fb", "a%2Fb", "a%5cb", "a\\b", "a%00", "a%", "a%zz", "a%252e", "a b", "a\nb",
            "//",
        ] {
            assert!(!valid_path(bad), "{bad}");
        }
    }

    #[test]
    fn split() {
        assert_eq!(
            split_names("/t1/r1/a/b", 2),
            Some((vec!["t1", "r1"], "a/b"))
        );
        assert_eq!(split_names("/t1/r1", 2), Some((vec!["t1", "r1"], "")));
        assert_eq!(split_names("/t1/r1/", 2), Some((vec!["t1", "r1"], "")));
        assert_eq!(split_names("/t1//x", 2), None);
        assert_eq!(split_names("/t1/%2e%2e/x", 2), None);
        assert_eq!(split_names("t1/r1", 2), None);
    }
}
