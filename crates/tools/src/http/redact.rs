//! Removes credential values from what a service sent back, so a service
//! that echoes request headers (or a token in a redirect URL) cannot hand
//! the agent the secret airlock injected.

use zeroize::Zeroizing;

/// Shown in place of a credential.
pub const MARK: &[u8] = b"[redacted]";
/// Shorter values are not searched for (they would match ordinary text).
const MIN_LEN: usize = 4;

/// Replaces every occurrence of each secret in `data`; when `cut` (the data
/// was truncated), also drops a trailing partial secret.
pub fn body(data: &mut Vec<u8>, secrets: &[Zeroizing<String>], cut: bool) {
    // Longest first, so a header value wins over the token inside it.
    let mut order: Vec<&[u8]> = secrets
        .iter()
        .map(|s| s.as_bytes())
        .filter(|s| s.len() >= MIN_LEN)
        .collect();
    order.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for s in &order {
        if let Some(replaced) = replace_all(data, s) {
            *data = replaced;
        }
    }
    if cut {
        for s in &order {
            for keep in (MIN_LEN.min(s.len())..s.len()).rev() {
                if data.ends_with(&s[..keep]) {
                    data.truncate(data.len() - keep);
                    data.extend_from_slice(MARK);
                    return;
                }
            }
        }
    }
}

fn replace_all(data: &[u8], needle: &[u8]) -> Option<Vec<u8>> {
    let first = data.windows(needle.len()).position(|w| w == needle)?;
    let mut out = Vec::with_capacity(data.len());
    out.extend_from_slice(&data[..first]);
    out.extend_from_slice(MARK);
    let mut rest = &data[first + needle.len()..];
    while let Some(i) = rest.windows(needle.len()).position(|w| w == needle) {
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(MARK);
        rest = &rest[i + needle.len()..];
    }
    out.extend_from_slice(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn z(s: &str) -> Zeroizing<String> {
        Zeroizing::new(s.to_string())
    }

    #[test]
    fn replaces_values_and_trailing_fragments() {
        let secrets = [z("Bearer tok-123"), z("tok-123")];
        let mut b = b"{\"auth\":\"Bearer tok-123\",\"t\":\"tok-123\"}".to_vec();
        body(&mut b, &secrets, false);
        assert_eq!(b, b"{\"auth\":\"[redacted]\",\"t\":\"[redacted]\"}");
        let mut b = b"echo: tok-1".to_vec();
        body(&mut b, &secrets, true);
        assert_eq!(b, b"echo: [redacted]");
        let mut b = b"abc".to_vec();
        body(&mut b, &[z("ab")], true);
        assert_eq!(b, b"abc", "too-short values are not searched");
    }
}
