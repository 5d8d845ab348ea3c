//! Echo redaction: when the proxy injected a credential, an upstream that
//! reflects it (a debug endpoint echoing request headers, an error page
//! quoting the `Authorization` it refused, a redirect carrying the token)
//! would hand the secret to the jail that was never meant to hold it. The
//! response to such a request is therefore parsed as HTTP/1 and every
//! occurrence of the injected value is masked, in the head and in the body.
//!
//! Masking keeps lengths (each byte of the secret becomes `*`), so the
//! upstream's framing stays valid and the body streams without buffering.
//! A secret split across reads or chunks is still found: the last
//! `len(secret) - 1` bytes are held back until the next read shows whether
//! they start an occurrence. What cannot be scanned is refused, not passed:
//! a compressed body (the request asks for `identity`, so an upstream that
//! compresses anyway gets a 502), a transfer coding other than `chunked`, a
//! malformed head.

use std::sync::atomic::AtomicU64;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::http1::{read_line, HttpError, MAX_HEAD};
use crate::server::count;

const MASK: u8 = b'*';

/// Masks secrets in a byte stream fed in pieces.
pub(crate) struct Redactor {
    /// One substring searcher per secret (SIMD where the CPU has it).
    finders: Vec<memchr::memmem::Finder<'static>>,
    /// Bytes held back: a partial occurrence can start no earlier.
    keep: usize,
    pending: Vec<u8>,
    /// Occurrences masked so far.
    pub masked: usize,
}

impl Redactor {
    /// Empty secrets are ignored (they would match everywhere).
    pub fn new(secrets: &[String]) -> Redactor {
        let secrets: Vec<Vec<u8>> = secrets
            .iter()
            .filter(|s| !s.is_empty())
            .map(|s| s.as_bytes().to_vec())
            .collect();
        let keep = secrets.iter().map(|s| s.len() - 1).max().unwrap_or(0);
        Redactor {
            finders: secrets
                .iter()
                .map(|s| memchr::memmem::Finder::new(s).into_owned())
                .collect(),
            keep,
            pending: Vec::new(),
            masked: 0,
        }
    }

    /// Masks every complete occurrence in `data` in place.
    pub fn mask(&mut self, data: &mut [u8]) {
        for f in &self.finders {
            let n = f.needle().len();
            let mut i = 0;
            while let Some(p) = f.find(&data[i..]) {
                data[i + p..i + p + n].fill(MASK);
                self.masked += 1;
                i += p + n;
            }
        }
    }

    /// Feeds `data`; returns what can be released now. Every released byte
    /// has been checked against every secret with all the bytes around it
    /// that could complete an occurrence.
    pub fn push(&mut self, data: &[u8]) -> Vec<u8> {
        self.pending.extend_from_slice(data);
        let mut p = std::mem::take(&mut self.pending);
        self.mask(&mut p);
        // An occurrence that is not complete yet starts within the last
        // `keep` bytes (it is shorter than its secret), so everything
        // before them is final.
        let release = p.len().saturating_sub(self.keep);
        self.pending = p.split_off(release);
        p
    }

    /// The held-back tail, at the end of the stream.
    pub fn finish(&mut self) -> Vec<u8> {
        let mut p = std::mem::take(&mut self.pending);
        self.mask(&mut p);
        p
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

/// What the relay ended with.
pub(crate) enum Relayed {
    /// The response was relayed (or cut off by an error after its head).
    Done { status: Option<u16>, bytes: u64 },
    /// A `101 Switching Protocols` head was relayed; the caller tunnels the
    /// rest (WebSocket frames are not scanned, see docs/egress.md).
    Upgraded {
        bytes: u64,
        /// Upstream bytes read past the `101` head (the first frames),
        /// not yet sent to the client.
        rest: Vec<u8>,
    },
}

/// Why a response could not be relayed; before any byte of its head was
/// sent the caller can still answer with an error.
#[derive(Debug)]
pub(crate) struct Refused {
    pub reason: String,
    /// Whether anything was already written to the client.
    pub started: bool,
    pub status: Option<u16>,
}

/// One chunk of a chunked body; nothing for no data (a zero-size chunk
/// would end the body).
fn chunk(data: &[u8]) -> Vec<u8> {
    if data.is_empty() {
        return Vec::new();
    }
    let mut c = format!("{:x}\r\n", data.len()).into_bytes();
    c.extend_from_slice(data);
    c.extend_from_slice(b"\r\n");
    c
}

/// Reads the response to `method` from `up` and writes it to `client` with
/// every occurrence of `secrets` masked. `buf` holds response bytes already
/// read.
#[allow(unused_assignments)] // `started` is set by every write, read by later ones
pub(crate) async fn relay<U, W>(
    up: &mut U,
    client: &mut W,
    mut buf: Vec<u8>,
    method: &str,
    secrets: &[String],
    counter: &AtomicU64,
    limit: Option<u64>,
) -> Result<Relayed, Refused>
where
    U: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut red = Redactor::new(secrets);
    let mut written = 0u64;
    let mut started = false;
    let refuse = |reason: String, started: bool, status: Option<u16>| Refused {
        reason,
        started,
        status,
    };
    macro_rules! send {
        ($bytes:expr, $status:expr) => {{
            let b: &[u8] = $bytes;
            if !b.is_empty() {
                if !count(counter, b.len(), limit) {
                    return Err(refuse(
                        "the run's download budget is exhausted".into(),
                        started,
                        $status,
                    ));
                }
                if client.write_all(b).await.is_err() {
                    return Err(refuse("the client went away".into(), started, $status));
                }
                started = true;
                written += b.len() as u64;
            }
        }};
    }
    // Interim (1xx) responses come before the final one.
    let (status, framing) = loop {
        let mut head = match read_response_head(up, &mut buf).await {
            Ok(h) => h,
            Err(e) => {
                return Err(refuse(
                    format!("upstream response head: {e}"),
                    started,
                    None,
                ))
            }
        };
        red.mask(&mut head);
        let (status, headers) = match parse_response_head(&head) {
            Ok(v) => v,
            Err(e) => {
                return Err(refuse(
                    format!("upstream response head: {e}"),
                    started,
                    None,
                ))
            }
        };
        let framing = match framing(method, status, &headers) {
            Ok(f) => f,
            Err(e) => return Err(refuse(e, started, Some(status))),
        };
        send!(&head, Some(status));
        if status == 101 {
            return Ok(Relayed::Upgraded {
                bytes: written,
                rest: buf,
            });
        }
        if (100..200).contains(&status) {
            continue;
        }
        break (status, framing);
    };
    let st = Some(status);
    let cut = |e: HttpError| refuse(format!("upstream response body: {e}"), true, st);
    match framing {
        Framing::None => {}
        Framing::Length(n) => {
            let mut left = n;
            while left > 0 {
                if buf.is_empty() && fill(up, &mut buf).await.map_err(cut)? == 0 {
                    return Err(cut(HttpError::Truncated));
                }
                let take = (buf.len() as u64).min(left) as usize;
                let out = red.push(&buf[..take]);
                buf.drain(..take);
                left -= take as u64;
                send!(&out, st);
            }
            let out = red.finish();
            send!(&out, st);
        }
        Framing::UntilClose => {
            loop {
                if buf.is_empty() && fill(up, &mut buf).await.unwrap_or(0) == 0 {
                    break;
                }
                let out = red.push(&buf);
                buf.clear();
                send!(&out, st);
            }
            let out = red.finish();
            send!(&out, st);
        }
        Framing::Chunked => {
            // Decoded, scanned across chunk boundaries, re-chunked from what
            // the redactor releases (trailers are dropped).
            loop {
                let line = read_line(up, &mut buf).await.map_err(cut)?;
                let size = std::str::from_utf8(&line)
                    .ok()
                    .map(|l| l.split(';').next().unwrap_or("").trim())
                    .filter(|s| !s.is_empty() && s.len() <= 15)
                    .and_then(|s| u64::from_str_radix(s, 16).ok())
                    .ok_or_else(|| cut(HttpError::BadChunk))?;
                if size == 0 {
                    while !read_line(up, &mut buf).await.map_err(cut)?.is_empty() {}
                    let out = red.finish();
                    send!(&chunk(&out), st);
                    send!(b"0\r\n\r\n", st);
                    break;
                }
                let mut left = size;
                while left > 0 {
                    if buf.is_empty() && fill(up, &mut buf).await.map_err(cut)? == 0 {
                        return Err(cut(HttpError::Truncated));
                    }
                    let take = (buf.len() as u64).min(left) as usize;
                    let out = red.push(&buf[..take]);
                    buf.drain(..take);
                    left -= take as u64;
                    send!(&chunk(&out), st);
                }
                if !read_line(up, &mut buf).await.map_err(cut)?.is_empty() {
                    return Err(cut(HttpError::BadChunk));
                }
            }
        }
    }
    if red.masked > 0 {
        tracing::warn!(
            occurrences = red.masked,
            "upstream echoed an injected credential; masked"
        );
    }
    Ok(Relayed::Done {
        status: st,
        bytes: written,
    })
}

/// Appends what one read gives (up to 64 KiB: bodies here can be large).
async fn fill<R: AsyncRead + Unpin>(r: &mut R, buf: &mut Vec<u8>) -> Result<usize, HttpError> {
    let start = buf.len();
    buf.resize(start + 64 * 1024, 0);
    let n = r.read(&mut buf[start..]).await;
    buf.truncate(start + *n.as_ref().unwrap_or(&0));
    Ok(n?)
}

/// The bytes of one response head, through its final CRLF CRLF.
async fn read_response_head<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
) -> Result<Vec<u8>, HttpError> {
    let mut scanned = 0;
    loop {
        if let Some(p) = buf[scanned..].windows(4).position(|w| w == b"\r\n\r\n") {
            let end = scanned + p + 4;
            return Ok(buf.drain(..end).collect());
        }
        scanned = buf.len().saturating_sub(3);
        if buf.len() > MAX_HEAD {
            return Err(HttpError::HeadTooLarge);
        }
        if fill(r, buf).await? == 0 {
            return Err(HttpError::Truncated);
        }
    }
}

/// Status and header fields of a (masked) response head. Strict where the
/// framing depends on it: CRLF line ends, no folding, valid names.
/// Header fields, names lower-cased, values as sent (trimmed).
type Fields = Vec<(String, Vec<u8>)>;

fn parse_response_head(head: &[u8]) -> Result<(u16, Fields), String> {
    // Every line, the empty last one included, ends in CRLF.
    let mut lines = Vec::new();
    let mut rest = head;
    while !rest.is_empty() {
        let p = rest
            .iter()
            .position(|b| *b == b'\n')
            .ok_or("head does not end in CRLF")?;
        if p == 0 || rest[p - 1] != b'\r' {
            return Err("bare LF in the head".into());
        }
        let line = &rest[..p - 1];
        if line.contains(&b'\r') {
            return Err("bare CR in the head".into());
        }
        lines.push(line);
        rest = &rest[p + 1..];
    }
    if lines.pop() != Some(&b""[..]) {
        return Err("head does not end in an empty line".into());
    }
    let mut lines = lines.into_iter();
    let status_line = lines.next().ok_or("empty head")?;
    let status = match status_line {
        [b'H', b'T', b'T', b'P', b'/', b'1', b'.', b'0' | b'1', b' ', a, b, c, rest @ ..]
            if a.is_ascii_digit()
                && b.is_ascii_digit()
                && c.is_ascii_digit()
                && (rest.is_empty() || rest[0] == b' ') =>
        {
            u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0')
        }
        _ => return Err("malformed status line".into()),
    };
    let mut headers = Vec::new();
    for line in lines {
        if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            return Err("obsolete line folding".into());
        }
        let colon = line
            .iter()
            .position(|b| *b == b':')
            .ok_or("header line without a colon")?;
        let name = &line[..colon];
        if name.is_empty()
            || !name
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b))
        {
            return Err("invalid header name".into());
        }
        let value = line[colon + 1..]
            .iter()
            .copied()
            .skip_while(|b| *b == b' ' || *b == b'\t')
            .collect::<Vec<u8>>();
        let trimmed = value.trim_ascii_end().to_vec();
        headers.push((String::from_utf8_lossy(name).to_ascii_lowercase(), trimmed));
    }
    Ok((status, headers))
}

/// How the response body is delimited (RFC 9112 §6.3), refusing what
/// cannot be scanned.
fn framing(method: &str, status: u16, headers: &[(String, Vec<u8>)]) -> Result<Framing, String> {
    fn all<'a>(h: &'a [(String, Vec<u8>)], n: &'a str) -> impl Iterator<Item = &'a Vec<u8>> {
        h.iter().filter(move |(k, _)| k == n).map(|(_, v)| v)
    }
    let get = |n: &'static str| all(headers, n);
    if method.eq_ignore_ascii_case("HEAD")
        || (100..200).contains(&status)
        || status == 204
        || status == 304
    {
        return Ok(Framing::None);
    }
    // Ranges were not forwarded; a partial body could hold a slice of
    // the credential that the scan cannot recognise.
    if status == 206 || get("content-range").next().is_some() {
        return Err(
            "the upstream sent a partial response (206 / Content-Range) to a request that carried an injected credential; a slice cannot be scanned for the credential, so it is refused".into(),
        );
    }
    for v in get("content-encoding") {
        for coding in v.split(|b| *b == b',') {
            let c = coding.trim_ascii();
            if !c.is_empty() && !c.eq_ignore_ascii_case(b"identity") {
                return Err(format!(
                    "the upstream sent a `{}`-encoded body to a request that carried an injected credential; it cannot be scanned for the credential, so it is refused (the request asked for `identity`)",
                    String::from_utf8_lossy(c)
                ));
            }
        }
    }
    let te: Vec<&Vec<u8>> = get("transfer-encoding").collect();
    let cl: Vec<&Vec<u8>> = get("content-length").collect();
    if !te.is_empty() {
        if te.len() != 1 || !te[0].eq_ignore_ascii_case(b"chunked") || !cl.is_empty() {
            return Err(
                "the upstream response uses a transfer coding other than a single `chunked`".into(),
            );
        }
        return Ok(Framing::Chunked);
    }
    match cl.as_slice() {
        [] => Ok(Framing::UntilClose),
        [v] if !v.is_empty() && v.len() <= 18 && v.iter().all(u8::is_ascii_digit) => {
            Ok(Framing::Length(
                std::str::from_utf8(v)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0),
            ))
        }
        _ => Err("the upstream response has an invalid or repeated Content-Length".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(secrets: &[&str], pieces: &[&[u8]]) -> Vec<u8> {
        let s: Vec<String> = secrets.iter().map(|s| s.to_string()).collect();
        let mut r = Redactor::new(&s);
        let mut out = Vec::new();
        for p in pieces {
            out.extend(r.push(p));
        }
        out.extend(r.finish());
        out
    }

    #[test]
    fn masks_across_every_split() {
        let text = b"before SECRET-123 middle SECRET-123SECRET-123 after";
        let want = b"before ********** middle ******************** after";
        for i in 0..text.len() {
            for j in i..text.len() {
                let got = run(&["SECRET-123"], &[&text[..i], &text[i..j], &text[j..]]);
                assert_eq!(got, want, "split at {i},{j}");
            }
        }
        // Byte by byte.
        let pieces: Vec<&[u8]> = text.chunks(1).collect();
        assert_eq!(run(&["SECRET-123"], &pieces), want);
    }

    #[test]
    fn masks_the_value_and_its_token_and_keeps_lengths() {
        let got = run(
            &["Bearer tok-abcdefgh", "tok-abcdefgh"],
            &[b"a Bearer tok-abcdefgh b tok-abcdefgh"],
        );
        assert_eq!(got, b"a ******************* b ************");
        assert_eq!(run(&["x"], &[b""]), b"");
        assert_eq!(run(&[""], &[b"abc"]), b"abc");
    }

    #[test]
    fn response_framing() {
        let h = |s: &str| parse_response_head(s.as_bytes()).unwrap();
        let (st, hs) = h("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n");
        assert_eq!((st, framing("GET", st, &hs)), (200, Ok(Framing::Length(5))));
        let (st, hs) = h("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(framing("GET", st, &hs), Ok(Framing::Chunked));
        assert_eq!(framing("HEAD", st, &hs), Ok(Framing::None));
        let (st, hs) = h("HTTP/1.0 200\r\n\r\n");
        assert_eq!(framing("GET", st, &hs), Ok(Framing::UntilClose));
        let (st, hs) = h("HTTP/1.1 204 No Content\r\n\r\n");
        assert_eq!(framing("GET", st, &hs), Ok(Framing::None));
        for bad in [
            "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 5\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Encoding: identity, br\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "HTTP/1.1 206 Partial Content\r\nContent-Length: 5\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Range: bytes 0-4/10\r\nContent-Length: 5\r\n\r\n",
        ] {
            let (st, hs) = h(bad);
            assert!(framing("GET", st, &hs).is_err(), "{bad}");
        }
        for bad in [
            "HTTP/1.1 20 OK\r\n\r\n",
            "HTTP/2 200 OK\r\n\r\n",
            "HTTP/1.1 200 OK\r\nA: b\nC: d\r\n\r\n",
            "HTTP/1.1 200 OK\r\n folded\r\n\r\n",
            "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
        ] {
            assert!(parse_response_head(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
