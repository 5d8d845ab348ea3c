//! Host canonicalisation: one spelling per destination before any rule sees it.
//!
//! Every IPv4 spelling `inet_aton` accepts (decimal `2130706433`, octal
//! `0177.0.0.1`, hex `0x7f.1`, short forms `127.1`) becomes dotted-quad, names
//! become lower-case punycode without the trailing dot, and anything odd
//! (userinfo, brackets around names, a numeric-looking name that is not a valid
//! address) is refused rather than guessed at.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A canonical destination host.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// Lower-case ASCII (punycode) name, no trailing dot.
    Name(String),
    Ip(IpAddr),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CanonError {
    #[error("empty host")]
    Empty,
    #[error("userinfo (`user@`) is not allowed in a proxy target")]
    Userinfo,
    #[error("brackets are only allowed around an IPv6 address")]
    Brackets,
    #[error("`{0}` looks like an IP address but is not a valid one")]
    BadNumeric(String),
    #[error("`{0}` is not a valid host name")]
    BadName(String),
    #[error("bad port in `{0}`")]
    BadPort(String),
    #[error("a port is required in `{0}`")]
    MissingPort(String),
}

/// Canonicalise a bare host (no port). `[v6]` is accepted; brackets around
/// anything else are not.
pub fn canonicalize_host(raw: &str) -> Result<Host, CanonError> {
    if raw.is_empty() {
        return Err(CanonError::Empty);
    }
    if raw.contains('@') {
        return Err(CanonError::Userinfo);
    }
    if let Some(inner) = raw.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or(CanonError::Brackets)?;
        return inner
            .parse::<Ipv6Addr>()
            .map(|ip| Host::Ip(IpAddr::V6(ip)))
            .map_err(|_| CanonError::Brackets);
    }
    if raw.contains('[') || raw.contains(']') {
        return Err(CanonError::Brackets);
    }
    if let Ok(v6) = raw.parse::<Ipv6Addr>() {
        return Ok(Host::Ip(IpAddr::V6(v6)));
    }
    // One trailing dot is the absolute form of the same name; two is garbage.
    let name = raw.strip_suffix('.').unwrap_or(raw);
    if name.is_empty() || name.ends_with('.') {
        return Err(CanonError::BadName(raw.to_string()));
    }
    if let Some(v4) = parse_ipv4_any(name)? {
        return Ok(Host::Ip(IpAddr::V4(v4)));
    }
    let ascii =
        idna::domain_to_ascii_strict(name).map_err(|_| CanonError::BadName(raw.to_string()))?;
    let ascii = ascii.to_ascii_lowercase();
    let valid = !ascii.is_empty()
        && ascii.len() <= 253
        && ascii.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if !valid {
        return Err(CanonError::BadName(raw.to_string()));
    }
    // After IDNA mapping (e.g. fullwidth digits) a name can turn numeric.
    if let Some(v4) = parse_ipv4_any(&ascii)? {
        return Ok(Host::Ip(IpAddr::V4(v4)));
    }
    Ok(Host::Name(ascii))
}

/// Split and canonicalise `host:port` / `[v6]:port`. `default_port` is used
/// when the port is absent; `None` makes the port mandatory.
pub fn canonicalize_authority(
    raw: &str,
    default_port: Option<u16>,
) -> Result<(Host, u16), CanonError> {
    if raw.contains('@') {
        return Err(CanonError::Userinfo);
    }
    let (host, port) = if raw.starts_with('[') {
        let end = raw.find(']').ok_or(CanonError::Brackets)?;
        let (h, rest) = raw.split_at(end + 1);
        match rest {
            "" => (h, None),
            r => (
                h,
                Some(
                    r.strip_prefix(':')
                        .ok_or_else(|| CanonError::BadPort(raw.to_string()))?,
                ),
            ),
        }
    } else {
        match raw.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (raw, None),
        }
    };
    let port = match port {
        Some(p) => parse_port(p).ok_or_else(|| CanonError::BadPort(raw.to_string()))?,
        None => default_port.ok_or_else(|| CanonError::MissingPort(raw.to_string()))?,
    };
    Ok((canonicalize_host(host)?, port))
}

fn parse_port(p: &str) -> Option<u16> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match p.parse::<u16>() {
        Ok(0) | Err(_) => None,
        Ok(n) => Some(n),
    }
}

/// `inet_aton`-style IPv4 parsing. `Ok(None)`: not numeric, treat as a name.
/// `Err`: numeric-looking but invalid (refused, never sent to DNS).
fn parse_ipv4_any(s: &str) -> Result<Option<Ipv4Addr>, CanonError> {
    let parts: Vec<&str> = s.split('.').collect();
    // As in the WHATWG URL parser: if the last label is a number the whole
    // host must be an IPv4 address.
    let last = parts.last().copied().unwrap_or("");
    if !looks_numeric(last) {
        return Ok(None);
    }
    let bad = || CanonError::BadNumeric(s.to_string());
    if parts.len() > 4 {
        return Err(bad());
    }
    let mut nums = Vec::with_capacity(parts.len());
    for p in &parts {
        nums.push(parse_ipv4_number(p).ok_or_else(bad)?);
    }
    let (head, tail) = nums.split_at(nums.len() - 1);
    if head.iter().any(|&n| n > 255) {
        return Err(bad());
    }
    let tail = tail[0];
    let tail_bits = 8 * (5 - nums.len() as u32);
    if tail_bits < 64 && tail >= (1u64 << tail_bits) {
        return Err(bad());
    }
    let mut v: u64 = 0;
    for (i, &n) in head.iter().enumerate() {
        v |= n << (24 - 8 * i as u32);
    }
    v |= tail;
    u32::try_from(v)
        .map(|v| Some(Ipv4Addr::from(v)))
        .map_err(|_| bad())
}

fn looks_numeric(label: &str) -> bool {
    if label.is_empty() {
        return false;
    }
    if let Some(h) = label
        .strip_prefix("0x")
        .or_else(|| label.strip_prefix("0X"))
    {
        return h.bytes().all(|b| b.is_ascii_hexdigit());
    }
    label.bytes().all(|b| b.is_ascii_digit())
}

fn parse_ipv4_number(p: &str) -> Option<u64> {
    if p.is_empty() || p.len() > 34 {
        return None;
    }
    let (digits, radix) = if let Some(h) = p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
        (h, 16)
    } else if p.len() > 1 && p.starts_with('0') {
        (&p[1..], 8)
    } else {
        (p, 10)
    };
    if digits.is_empty() {
        return if radix == 16 { Some(0) } else { None };
    }
    u64::from_str_radix(digits, radix).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> Host {
        Host::Ip(IpAddr::V4(s.parse().unwrap()))
    }

    #[test]
    fn ipv4_spellings() {
        for s in [
            "127.0.0.1",
            "2130706433",
            "0177.0.0.1",
            "0x7f.1",
            "127.1",
            "0x7f000001",
            "017700000001",
            "127.0.1",
            "0x7F.0.0.1",
            "127.0.0.1.",
        ] {
            assert_eq!(canonicalize_host(s).unwrap(), v4("127.0.0.1"), "{s}");
        }
        assert_eq!(canonicalize_host("0").unwrap(), v4("0.0.0.0"));
        assert_eq!(
            canonicalize_host("169.254.43518").unwrap(),
            v4("169.254.169.254")
        );
    }

    #[test]
    fn bad_numeric_refused() {
        for s in [
            "256.0.0.1",
            "1.2.3.4.5",
            "4294967296",
            "0x1g.0.0.1",
            "1.2.3.09",
            "1.2.65536",
            "999999999999999999999999",
        ] {
            assert!(canonicalize_host(s).is_err(), "{s}");
        }
    }

    #[test]
    fn names() {
        assert_eq!(
            canonicalize_host("API.GitHub.COM.").unwrap(),
            Host::Name("api.github.com".into())
        );
        assert!(canonicalize_host("a..b").is_err());
        assert!(canonicalize_host("example.com..").is_err());
        assert_eq!(
            canonicalize_host("bücher.de").unwrap(),
            Host::Name("xn--bcher-kva.de".into())
        );
        // Cyrillic 'а' in "аpple.com" must not become apple.com.
        let h = canonicalize_host("\u{430}pple.com").unwrap();
        assert_ne!(h, Host::Name("apple.com".into()));
        assert!(matches!(h, Host::Name(ref n) if n.starts_with("xn--")));
        assert!(canonicalize_host("exa mple.com").is_err());
        assert!(canonicalize_host("exa%2ample.com").is_err());
        assert!(canonicalize_host("").is_err());
    }

    #[test]
    fn brackets_and_userinfo() {
        assert_eq!(
            canonicalize_host("[::1]").unwrap(),
            Host::Ip("::1".parse().unwrap())
        );
        assert!(canonicalize_host("[example.com]").is_err());
        assert!(canonicalize_host("[127.0.0.1]").is_err());
        assert!(canonicalize_host("user@example.com").is_err());
        assert!(canonicalize_authority("user:pw@example.com:443", None).is_err());
    }

    #[test]
    fn authority() {
        assert_eq!(
            canonicalize_authority("Example.COM:443", None).unwrap(),
            (Host::Name("example.com".into()), 443)
        );
        assert_eq!(
            canonicalize_authority("[::1]:8080", None).unwrap(),
            (Host::Ip("::1".parse().unwrap()), 8080)
        );
        assert_eq!(
            canonicalize_authority("example.com", Some(80)).unwrap().1,
            80
        );
        assert!(canonicalize_authority("example.com", None).is_err());
        assert!(canonicalize_authority("example.com:0", None).is_err());
        assert!(canonicalize_authority("example.com:65536", None).is_err());
        assert!(canonicalize_authority("example.com:+80", None).is_err());
        assert!(canonicalize_authority("[::1]x", None).is_err());
    }
}
