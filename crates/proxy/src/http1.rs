//! A strict HTTP/1.1 request-head parser. Anything two parsers could read
//! differently (the root of request smuggling) is refused, not repaired.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest request head accepted (request line plus headers).
pub const MAX_HEAD: usize = 32 * 1024;
pub const MAX_HEADERS: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub method: String,
    pub target: String,
    /// `HTTP/1.0` or `HTTP/1.1`.
    pub version: String,
    /// In order, names as sent.
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    None,
    Length(u64),
    Chunked,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HttpError {
    #[error("request head larger than {MAX_HEAD} bytes")]
    HeadTooLarge,
    #[error("more than {MAX_HEADERS} header fields")]
    TooManyHeaders,
    #[error("connection closed before the request head ended")]
    Truncated,
    #[error("malformed request line")]
    BadRequestLine,
    #[error("unsupported HTTP version")]
    BadVersion,
    #[error("line not terminated by CRLF")]
    BareLineEnding,
    #[error("obsolete line folding")]
    ObsFold,
    #[error("invalid header name `{0}`")]
    BadHeaderName(String),
    #[error("invalid value in header `{0}`")]
    BadHeaderValue(String),
    #[error("both Content-Length and Transfer-Encoding")]
    LengthAndChunked,
    #[error("Transfer-Encoding other than a single `chunked`")]
    BadTransferEncoding,
    #[error("invalid or repeated Content-Length")]
    BadContentLength,
    #[error("malformed chunked body")]
    BadChunk,
    #[error("io: {0}")]
    Io(String),
}

impl From<std::io::Error> for HttpError {
    fn from(e: std::io::Error) -> Self {
        HttpError::Io(e.to_string())
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Read one head from `r`. `buf` keeps bytes read past the head (body or
/// pipelined data) for the caller.
pub async fn read_head<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
) -> Result<RequestHead, HttpError> {
    let mut scanned = 0;
    loop {
        if let Some(pos) = find_end(buf, scanned) {
            let head: Vec<u8> = buf.drain(..pos + 4).collect();
            return parse_head(&head[..pos + 2]);
        }
        // A bare LF would never end the head; refuse it now, not at the cap.
        let from = scanned.saturating_sub(1);
        if buf[from..]
            .iter()
            .enumerate()
            .any(|(i, b)| *b == b'\n' && (from + i == 0 || buf[from + i - 1] != b'\r'))
        {
            return Err(HttpError::BareLineEnding);
        }
        scanned = buf.len().saturating_sub(3);
        if buf.len() > MAX_HEAD {
            return Err(HttpError::HeadTooLarge);
        }
        let mut chunk = [0u8; 8192];
        let n = r.read(&mut chunk).await?;
        if n == 0 {
            return Err(HttpError::Truncated);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn find_end(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + from)
        .filter(|&p| p + 4 <= MAX_HEAD)
}

/// Parse a head that ends in CRLF (the final empty line removed).
pub fn parse_head(head: &[u8]) -> Result<RequestHead, HttpError> {
    if head.len() > MAX_HEAD {
        return Err(HttpError::HeadTooLarge);
    }
    let mut lines = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < head.len() {
        match head[i] {
            b'\r' => {
                if head.get(i + 1) != Some(&b'\n') {
                    return Err(HttpError::BareLineEnding);
                }
                lines.push(&head[start..i]);
                i += 2;
                start = i;
            }
            b'\n' => return Err(HttpError::BareLineEnding),
            _ => i += 1,
        }
    }
    if start != head.len() {
        return Err(HttpError::BareLineEnding);
    }
    let (first, rest) = lines.split_first().ok_or(HttpError::BadRequestLine)?;
    let first = std::str::from_utf8(first).map_err(|_| HttpError::BadRequestLine)?;
    let mut parts = first.split(' ');
    let (method, target, version) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(t), Some(v), None) => (m, t, v),
        _ => return Err(HttpError::BadRequestLine),
    };
    if method.is_empty() || !method.bytes().all(is_tchar) {
        return Err(HttpError::BadRequestLine);
    }
    if target.is_empty() || !target.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(HttpError::BadRequestLine);
    }
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(HttpError::BadVersion);
    }
    if rest.len() > MAX_HEADERS {
        return Err(HttpError::TooManyHeaders);
    }
    let mut headers = Vec::with_capacity(rest.len());
    for line in rest {
        if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            return Err(HttpError::ObsFold);
        }
        let colon = line
            .iter()
            .position(|b| *b == b':')
            .ok_or_else(|| HttpError::BadHeaderName(String::from_utf8_lossy(line).into()))?;
        let name = &line[..colon];
        if name.is_empty() || !name.iter().all(|b| is_tchar(*b)) {
            return Err(HttpError::BadHeaderName(
                String::from_utf8_lossy(name).into(),
            ));
        }
        let name = String::from_utf8_lossy(name).into_owned();
        let value = &line[colon + 1..];
        // Field values: visible ASCII, SP and HTAB. No controls, no obs-text
        // (bytes >= 0x80 are read differently by different parsers).
        if !value
            .iter()
            .all(|b| (0x20..0x7f).contains(b) || *b == b'\t')
        {
            return Err(HttpError::BadHeaderValue(name));
        }
        let value = String::from_utf8_lossy(value)
            .trim_matches(|c| c == ' ' || c == '\t')
            .to_string();
        headers.push((name, value));
    }
    Ok(RequestHead {
        method: method.to_string(),
        target: target.to_string(),
        version: version.to_string(),
        headers,
    })
}

impl RequestHead {
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn get<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        self.get_all(name).next()
    }

    /// The body framing, refusing every ambiguous combination.
    pub fn framing(&self) -> Result<BodyFraming, HttpError> {
        let te: Vec<&str> = self.get_all("transfer-encoding").collect();
        let cl: Vec<&str> = self.get_all("content-length").collect();
        if !te.is_empty() && !cl.is_empty() {
            return Err(HttpError::LengthAndChunked);
        }
        if !te.is_empty() {
            if te.len() != 1 || !te[0].eq_ignore_ascii_case("chunked") || self.version == "HTTP/1.0"
            {
                return Err(HttpError::BadTransferEncoding);
            }
            return Ok(BodyFraming::Chunked);
        }
        match cl.as_slice() {
            [] => Ok(BodyFraming::None),
            [v] if !v.is_empty() && v.len() <= 18 && v.bytes().all(|b| b.is_ascii_digit()) => v
                .parse()
                .map(BodyFraming::Length)
                .map_err(|_| HttpError::BadContentLength),
            _ => Err(HttpError::BadContentLength),
        }
    }
}

/// Copy a body from `r` (after the bytes already in `buf`) to `w`, exactly as
/// framed. Chunked bodies are validated chunk by chunk and re-emitted in
/// canonical form (no extensions, no trailers). Returns bytes read.
/// When `collect` is set, the decoded body is also appended to it.
pub async fn relay_body<R, W>(
    r: &mut R,
    buf: &mut Vec<u8>,
    w: &mut W,
    framing: BodyFraming,
    mut collect: Option<&mut Vec<u8>>,
    max_collect: usize,
) -> Result<u64, HttpError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    match framing {
        BodyFraming::None => Ok(0),
        BodyFraming::Length(n) => {
            let mut left = n;
            while left > 0 {
                if buf.is_empty() && fill(r, buf).await? == 0 {
                    return Err(HttpError::Truncated);
                }
                let take = (buf.len() as u64).min(left) as usize;
                if let Some(c) = collect.as_deref_mut() {
                    if c.len() + take > max_collect {
                        return Err(HttpError::Io("body larger than the leak-check cap".into()));
                    }
                    c.extend_from_slice(&buf[..take]);
                } else {
                    w.write_all(&buf[..take]).await?;
                }
                buf.drain(..take);
                left -= take as u64;
            }
            Ok(n)
        }
        BodyFraming::Chunked => {
            let mut total = 0u64;
            loop {
                let line = read_line(r, buf).await?;
                let size_str = std::str::from_utf8(&line).map_err(|_| HttpError::BadChunk)?;
                if size_str.is_empty()
                    || size_str.len() > 15
                    || !size_str.bytes().all(|b| b.is_ascii_hexdigit())
                {
                    return Err(HttpError::BadChunk);
                }
                let size = u64::from_str_radix(size_str, 16).map_err(|_| HttpError::BadChunk)?;
                if size == 0 {
                    // No trailers: the next line must be empty.
                    if !read_line(r, buf).await?.is_empty() {
                        return Err(HttpError::BadChunk);
                    }
                    if collect.is_none() {
                        w.write_all(b"0\r\n\r\n").await?;
                    }
                    return Ok(total);
                }
                if collect.is_none() {
                    w.write_all(format!("{size:x}\r\n").as_bytes()).await?;
                }
                let mut left = size;
                while left > 0 {
                    if buf.is_empty() && fill(r, buf).await? == 0 {
                        return Err(HttpError::Truncated);
                    }
                    let take = (buf.len() as u64).min(left) as usize;
                    if let Some(c) = collect.as_deref_mut() {
                        if c.len() + take > max_collect {
                            return Err(HttpError::Io(
                                "body larger than the leak-check cap".into(),
                            ));
                        }
                        c.extend_from_slice(&buf[..take]);
                    } else {
                        w.write_all(&buf[..take]).await?;
                    }
                    buf.drain(..take);
                    left -= take as u64;
                }
                total += size;
                if !read_line(r, buf).await?.is_empty() {
                    return Err(HttpError::BadChunk);
                }
                if collect.is_none() {
                    w.write_all(b"\r\n").await?;
                }
            }
        }
    }
}

pub(crate) async fn fill<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
) -> Result<usize, HttpError> {
    let mut chunk = [0u8; 16384];
    let n = r.read(&mut chunk).await?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}

/// One CRLF-terminated line (without the CRLF); bare LF or CR is refused.
pub(crate) async fn read_line<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
) -> Result<Vec<u8>, HttpError> {
    loop {
        if let Some(p) = buf.iter().position(|b| *b == b'\n') {
            if p == 0 || buf[p - 1] != b'\r' || buf[..p - 1].contains(&b'\r') {
                return Err(HttpError::BadChunk);
            }
            let line = buf[..p - 1].to_vec();
            buf.drain(..=p);
            return Ok(line);
        }
        if buf.len() > 1024 {
            return Err(HttpError::BadChunk);
        }
        if fill(r, buf).await? == 0 {
            return Err(HttpError::Truncated);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<RequestHead, HttpError> {
        parse_head(s.as_bytes())
    }

    #[test]
    fn good_request() {
        let h = p("GET http://a.com/ HTTP/1.1\r\nHost: a.com\r\nX-A:  b \r\n").unwrap();
        assert_eq!(h.method, "GET");
        assert_eq!(h.get("host"), Some("a.com"));
        assert_eq!(h.get("x-a"), Some("b"));
        assert_eq!(h.framing().unwrap(), BodyFraming::None);
    }

    #[test]
    fn smuggling_framings_refused() {
        let cases = [
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n",
            "POST / HTTP/1.1\r\nContent-Length: +5\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n",
        ];
        for c in cases {
            assert!(p(c).unwrap().framing().is_err(), "{c:?}");
        }
    }

    #[test]
    fn bad_heads_refused() {
        assert_eq!(
            p("GET / HTTP/1.1\r\nTransfer-Encoding : chunked\r\n"),
            Err(HttpError::BadHeaderName("Transfer-Encoding ".into()))
        );
        assert_eq!(
            p("GET / HTTP/1.1\r\nA: b\r\n c\r\n"),
            Err(HttpError::ObsFold)
        );
        assert_eq!(
            p("GET / HTTP/1.1\nA: b\r\n"),
            Err(HttpError::BareLineEnding)
        );
        assert!(matches!(
            p("GET / HTTP/1.1\r\nA: b\x00c\r\n"),
            Err(HttpError::BadHeaderValue(_))
        ));
        assert!(matches!(
            p("GET / HTTP/1.1\r\nA: b\rc\r\n"),
            Err(HttpError::BareLineEnding)
        ));
        assert!(matches!(
            parse_head(b"GET / HTTP/1.1\r\nA: \xff\r\n"),
            Err(HttpError::BadHeaderValue(_))
        ));
        assert_eq!(p("GET  / HTTP/1.1\r\n"), Err(HttpError::BadRequestLine));
        assert_eq!(p("GET / HTTP/2.0\r\n"), Err(HttpError::BadVersion));
        assert!(matches!(
            p("GET / HTTP/1.1\r\n: x\r\n"),
            Err(HttpError::BadHeaderName(_))
        ));
        let many: String = (0..=MAX_HEADERS).map(|i| format!("h{i}: v\r\n")).collect();
        assert_eq!(
            p(&format!("GET / HTTP/1.1\r\n{many}")),
            Err(HttpError::TooManyHeaders)
        );
    }

    #[tokio::test]
    async fn head_cap() {
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD));
        let mut r = big.as_bytes();
        let mut buf = Vec::new();
        assert_eq!(
            read_head(&mut r, &mut buf).await,
            Err(HttpError::HeadTooLarge)
        );
    }

    #[tokio::test]
    async fn chunked_relay() {
        let mut r: &[u8] = b"5\r\nhello\r\n0\r\n\r\nNEXT";
        let mut buf = Vec::new();
        let mut out = Vec::new();
        let n = relay_body(&mut r, &mut buf, &mut out, BodyFraming::Chunked, None, 0)
            .await
            .unwrap();
        assert_eq!(n, 5);
        assert_eq!(out, b"5\r\nhello\r\n0\r\n\r\n");
        assert_eq!(buf, b"NEXT");
        for bad in [
            &b"5;ext=1\r\nhello\r\n0\r\n\r\n"[..],
            b"5\nhello\r\n0\r\n\r\n",
            b"5\r\nhelloX\r\n0\r\n\r\n",
            b"0\r\nTrailer: x\r\n\r\n",
            b"-1\r\n",
            b"5\r\nhel",
        ] {
            let mut r = bad;
            let mut buf = Vec::new();
            let mut out = Vec::new();
            assert!(
                relay_body(&mut r, &mut buf, &mut out, BodyFraming::Chunked, None, 0)
                    .await
                    .is_err(),
                "{bad:?}"
            );
        }
    }
}
