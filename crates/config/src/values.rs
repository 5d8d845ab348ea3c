//! Small value types with their own syntax: sizes, host patterns, networks.

use std::fmt;
use std::str::FromStr;

pub use ipnet::IpNet;

/// A size in bytes, written `256KiB`, `2GiB` or a plain byte count. Decimal
/// units (`KB`, `MB`) are refused: people write them meaning both 1000 and
/// 1024, and a limit must not be off by 2–10 %.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub const fn kib(n: u64) -> Self {
        ByteSize(n * 1024)
    }
    pub const fn mib(n: u64) -> Self {
        ByteSize(n * 1024 * 1024)
    }
    pub const fn gib(n: u64) -> Self {
        ByteSize(n * 1024 * 1024 * 1024)
    }
    pub const fn bytes(self) -> u64 {
        self.0
    }
}

const SIZE_UNITS: &[(&str, u64)] = &[
    ("B", 1),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
];

impl FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let digits = s.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!(
                "`{s}` is not a size; write a whole number with a unit, like `256KiB`, `64MiB` or `2GiB`"
            ));
        }
        let n: u64 = s[..digits]
            .parse()
            .map_err(|_| format!("`{s}` is too large a size"))?;
        let unit = s[digits..].trim();
        let mult = if unit.is_empty() {
            1
        } else if let Some(binary) = ["K", "M", "G", "T"]
            .iter()
            .find(|p| unit.eq_ignore_ascii_case(&format!("{p}B")))
        {
            return Err(format!(
                "`{s}` is ambiguous (1000 or 1024?); write `{}{binary}iB` for binary units or the exact number of bytes",
                &s[..digits]
            ));
        } else {
            SIZE_UNITS
                .iter()
                .find(|(u, _)| *u == unit)
                .map(|(_, m)| *m)
                .ok_or_else(|| {
                    format!(
                        "`{unit}` in `{s}` is not a size unit; use one of B, KiB, MiB, GiB or TiB"
                    )
                })?
        };
        n.checked_mul(mult)
            .map(ByteSize)
            .ok_or_else(|| format!("`{s}` is too large a size"))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (unit, mult) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
            if self.0 >= mult && self.0 % mult == 0 {
                return write!(f, "{}{unit}", self.0 / mult);
            }
        }
        write!(f, "{}B", self.0)
    }
}

/// Parses `500ms`, `120s`, `5m`, `2h`, `1d`, or a combination such as `1m30s`.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let hint = "write a number with a unit, like `500ms`, `120s`, `5m` or `1h`";
    let t = s.trim();
    if t.is_empty() {
        return Err(format!("an empty string is not a duration; {hint}"));
    }
    if t.contains(char::is_whitespace) {
        return Err(format!(
            "`{s}` is not a duration; write a number and a unit without spaces, like `2m` or `1m30s`"
        ));
    }
    let mut total: u128 = 0;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!("`{s}` is not a duration; {hint}"));
        }
        let n: u128 = rest[..digits]
            .parse()
            .map_err(|_| format!("`{s}` is too long a duration"))?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let ms_per = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" => return Err(format!("`{s}` has no unit; {hint}")),
            u => {
                return Err(format!(
                    "`{u}` in `{s}` is not a duration unit; use ms, s, m, h or d"
                ))
            }
        };
        rest = &rest[unit_len..];
        total = total
            .checked_add(n.saturating_mul(ms_per))
            .ok_or_else(|| format!("`{s}` is too long a duration"))?;
    }
    u64::try_from(total)
        .map(std::time::Duration::from_millis)
        .map_err(|_| format!("`{s}` is too long a duration"))
}

/// A host rule: `example.com`, `*.example.com` (any subdomain, not the apex),
/// or an IP literal, each with an optional `:port`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPattern {
    /// `*.` prefix present.
    pub wildcard: bool,
    /// Lower-case name (without the `*.`), or a canonical IP literal.
    pub host: String,
    pub port: Option<u16>,
}

impl HostPattern {
    /// Does this rule cover `host` (already canonical: lower-case, no trailing dot)?
    /// Without a port in the rule, only ports 80 and 443 match.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        let port_ok = match self.port {
            Some(p) => p == port,
            None => port == 80 || port == 443,
        };
        if !port_ok {
            return false;
        }
        if self.wildcard {
            host.len() > self.host.len() + 1
                && host.ends_with(self.host.as_str())
                && host.as_bytes()[host.len() - self.host.len() - 1] == b'.'
        } else {
            host == self.host
        }
    }
}

impl FromStr for HostPattern {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let raw = s.trim();
        if raw.is_empty() {
            return Err("an empty host pattern matches nothing; write a host like `api.github.com` or `*.pypi.org`".into());
        }
        if raw.contains("://") || raw.contains('/') {
            return Err(format!(
                "`{raw}` looks like a URL; write only the host, like `api.github.com` or `api.github.com:443`"
            ));
        }
        // `[v6]:port` or bare v6.
        if let Some(inner) = raw.strip_prefix('[') {
            let (addr, after) = inner
                .split_once(']')
                .ok_or_else(|| format!("`{raw}` has an unclosed `[`"))?;
            let ip: std::net::Ipv6Addr = addr
                .parse()
                .map_err(|_| format!("`{addr}` in `{raw}` is not an IPv6 address"))?;
            let port = match after {
                "" => None,
                p => Some(parse_port(p.strip_prefix(':').unwrap_or(p), raw)?),
            };
            return Ok(HostPattern {
                wildcard: false,
                host: ip.to_string(),
                port,
            });
        }
        if let Ok(ip) = raw.parse::<std::net::Ipv6Addr>() {
            return Ok(HostPattern {
                wildcard: false,
                host: ip.to_string(),
                port: None,
            });
        }
        let (name, port) = match raw.rsplit_once(':') {
            Some((n, p)) => (n, Some(parse_port(p, raw)?)),
            None => (raw, None),
        };
        let (wildcard, name) = match name.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, name),
        };
        if name.contains('*') {
            return Err(format!(
                "`{raw}` uses `*` in the middle of a name; only a leading `*.` is allowed, like `*.example.com`"
            ));
        }
        let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
        if let Ok(ip) = name.parse::<std::net::Ipv4Addr>() {
            if wildcard {
                return Err(format!("`{raw}`: a wildcard cannot apply to an IP address"));
            }
            return Ok(HostPattern {
                wildcard,
                host: ip.to_string(),
                port,
            });
        }
        if name.is_empty()
            || name.len() > 253
            || !name.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
        {
            return Err(format!(
                "`{raw}` is not a valid host name; use letters, digits, `-` and `.` (write international names in punycode, `xn--…`)"
            ));
        }
        if wildcard && !name.contains('.') {
            return Err(format!(
                "`{raw}` would match every name under a top-level domain; name at least two labels, like `*.example.com`"
            ));
        }
        Ok(HostPattern {
            wildcard,
            host: name,
            port,
        })
    }
}

fn parse_port(p: &str, raw: &str) -> Result<u16, String> {
    match p.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!(
            "`{p}` in `{raw}` is not a port; use a number from 1 to 65535"
        )),
        Ok(n) => Ok(n),
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.wildcard {
            f.write_str("*.")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]", self.host)?;
        } else {
            f.write_str(&self.host)?;
        }
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!("256KiB".parse::<ByteSize>().unwrap(), ByteSize::kib(256));
        assert_eq!("2GiB".parse::<ByteSize>().unwrap(), ByteSize::gib(2));
        assert_eq!("100".parse::<ByteSize>().unwrap(), ByteSize(100));
        assert!("1KB".parse::<ByteSize>().unwrap_err().contains("ambiguous"));
        assert!("256kb"
            .parse::<ByteSize>()
            .unwrap_err()
            .contains("`256KiB`"));
        assert!("256kib"
            .parse::<ByteSize>()
            .unwrap_err()
            .contains("not a size unit"));
        assert!("lots".parse::<ByteSize>().is_err());
        assert!("99999999999999TiB".parse::<ByteSize>().is_err());
        assert_eq!(ByteSize::kib(256).to_string(), "256KiB");
    }

    #[test]
    fn durations() {
        use std::time::Duration;
        assert_eq!(parse_duration("120s").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("120").unwrap_err().contains("no unit"));
        assert!(parse_duration("2 weeks").is_err());
        assert!(parse_duration("5x")
            .unwrap_err()
            .contains("not a duration unit"));
    }

    #[test]
    fn host_patterns() {
        let p: HostPattern = "*.PyPI.org".parse().unwrap();
        assert!(p.matches("files.pypi.org", 443));
        assert!(!p.matches("pypi.org", 443), "wildcard excludes the apex");
        assert!(!p.matches("evilpypi.org", 443));
        assert!(
            !p.matches("files.pypi.org", 8443),
            "default ports are 80 and 443"
        );
        let p: HostPattern = "registry.npmjs.org:8443".parse().unwrap();
        assert!(p.matches("registry.npmjs.org", 8443));
        assert!(!p.matches("registry.npmjs.org", 443));
        assert!("a.*.com".parse::<HostPattern>().is_err());
        assert!("*com".parse::<HostPattern>().is_err());
        assert!("*.com".parse::<HostPattern>().is_err());
        assert!("https://x.com".parse::<HostPattern>().is_err());
        assert!("x.com:0".parse::<HostPattern>().is_err());
        assert!("x.com:http".parse::<HostPattern>().is_err());
        assert_eq!(
            "[::1]:8080".parse::<HostPattern>().unwrap().to_string(),
            "[::1]:8080"
        );
        assert_eq!(
            "example.com.".parse::<HostPattern>().unwrap().host,
            "example.com"
        );
    }
}
