//! The connector's HTTP/1.1 client for `http://` routes.
//!
//! Why not hyper's client: a hyper HTTP/1.1 connection holds ~24 KiB for as
//! long as a response is open (an 8 KiB request-channel block, an 8 KiB
//! header write buffer and an 8 KiB read buffer) and runs as a task of its
//! own, so each request crosses two more task hand-offs. An idle SSE stream
//! is one open upstream connection, and the tunnel's budget is 8 kB per idle
//! stream. This client writes the request (head and body) in one write from
//! the stream's own task, then reads with a buffer only while bytes are
//! arriving: an idle response holds the socket and a few words of decoder
//! state, no buffer. Bodies: `Content-Length`, chunked, or read to close.
//! Connections whose response ended cleanly go back to a small pool.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode, Version};
use http_body::{Frame, SizeHint};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::BoxError;

/// Largest response head accepted from an upstream.
const MAX_HEAD: usize = 64 << 10;
const MAX_HEADERS: usize = 128;
/// Longest chunk-size or trailer line.
const MAX_LINE: usize = 4096;
/// First read of a body; doubled while reads fill the buffer (bulk).
const READ_MIN: usize = 8 << 10;
const READ_MAX: usize = 256 << 10;
/// Idle connections kept per upstream address, and for how long.
const POOL_MAX: usize = 64;
const POOL_IDLE: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub(crate) enum UpstreamError {
    /// No connection (refused, unreachable): nothing was sent.
    #[error("connect: {0}")]
    Connect(std::io::Error),
    /// The request may have reached the upstream; never retried.
    #[error("{0}")]
    Failed(String),
}

fn failed(msg: impl Into<String>) -> UpstreamError {
    UpstreamError::Failed(msg.into())
}

/// Idle keep-alive connections per upstream address.
#[derive(Default)]
pub(crate) struct Pool {
    idle: Mutex<HashMap<SocketAddr, Vec<(TcpStream, Instant)>>>,
}

impl Pool {
    /// A pooled connection that is still open, if any.
    fn take(&self, addr: SocketAddr) -> Option<TcpStream> {
        let mut idle = self.idle.lock().ok()?;
        let v = idle.get_mut(&addr)?;
        while let Some((s, at)) = v.pop() {
            if at.elapsed() > POOL_IDLE {
                continue;
            }
            // An idle HTTP/1.1 connection has nothing to read: EOF means the
            // upstream closed it, bytes mean it is out of step. Either way
            // it is dropped before a request is written to it.
            let mut probe = [0u8; 1];
            match s.try_read(&mut probe) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Some(s),
                _ => continue,
            }
        }
        None
    }

    fn put(&self, addr: SocketAddr, s: TcpStream) {
        if let Ok(mut idle) = self.idle.lock() {
            let v = idle.entry(addr).or_default();
            v.retain(|(_, at)| at.elapsed() <= POOL_IDLE);
            if v.len() < POOL_MAX {
                v.push((s, Instant::now()));
            }
        }
    }
}

/// What the connector forwards: everything already checked and rewritten.
pub(crate) struct Outgoing<'a> {
    pub method: &'a Method,
    /// Path and query.
    pub target: &'a str,
    /// Sent as `Host`.
    pub authority: &'a str,
    /// End-to-end headers only (the caller drops hop-by-hop ones).
    pub headers: &'a HeaderMap,
    pub body: Bytes,
}

fn encode(req: &Outgoing<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + req.body.len());
    out.extend_from_slice(req.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(req.target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(req.authority.as_bytes());
    out.extend_from_slice(b"\r\n");
    for (n, v) in req.headers {
        // Framing is this client's; the body is sent at once, so there is
        // nothing to wait for an interim 100 for.
        if n == http::header::CONTENT_LENGTH || n == http::header::EXPECT {
            continue;
        }
        out.extend_from_slice(n.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let bodiless = matches!(
        *req.method,
        Method::GET | Method::HEAD | Method::DELETE | Method::OPTIONS | Method::TRACE
    );
    if !req.body.is_empty() || !bodiless {
        out.extend_from_slice(format!("content-length: {}\r\n", req.body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&req.body);
    out
}

/// Sends one request and returns the response with its body still streaming
/// from the socket.
pub(crate) async fn send(
    pool: &std::sync::Arc<Pool>,
    addrs: &[SocketAddr],
    req: Outgoing<'_>,
) -> Result<Response<UpstreamBody>, UpstreamError> {
    let addr = *addrs
        .first()
        .ok_or_else(|| failed("route has no address"))?;
    let wire = encode(&req);
    let mut io = match pool.take(addr) {
        Some(mut s) => match s.write_all(&wire).await {
            Ok(()) => s,
            // A pooled connection the upstream closed after the liveness
            // probe: a failed write delivered no complete request, so a
            // fresh connection may carry it.
            Err(_) => fresh(addrs, &wire).await?,
        },
        None => fresh(addrs, &wire).await?,
    };
    let head_only = *req.method == Method::HEAD;
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        let n = tokio::io::AsyncReadExt::read_buf(&mut io, &mut buf)
            .await
            .map_err(|e| failed(format!("reading the response: {e}")))?;
        if n == 0 {
            return Err(failed("upstream closed the connection before responding"));
        }
        // Interim (1xx) responses are skipped; more may follow.
        while let Some((parts, used)) = parse_head(&buf)? {
            buf.advance(used);
            if parts.status.is_informational() {
                if parts.status == StatusCode::SWITCHING_PROTOCOLS {
                    return Err(failed("upstream switched protocols (not supported)"));
                }
                continue;
            }
            return Ok(respond(parts, head_only, buf, io, addr, pool.clone()));
        }
        if buf.len() > MAX_HEAD {
            return Err(failed("upstream response head too large"));
        }
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(buf.len());
        }
    }
}

async fn fresh(addrs: &[SocketAddr], wire: &[u8]) -> Result<TcpStream, UpstreamError> {
    let mut s = TcpStream::connect(addrs)
        .await
        .map_err(UpstreamError::Connect)?;
    let _ = s.set_nodelay(true);
    s.write_all(wire)
        .await
        .map_err(|e| failed(format!("sending the request: {e}")))?;
    Ok(s)
}

struct Head {
    status: StatusCode,
    version: Version,
    headers: HeaderMap,
}

/// `Ok(None)` while the head is incomplete.
fn parse_head(buf: &[u8]) -> Result<Option<(Head, usize)>, UpstreamError> {
    let mut hs = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut r = httparse::Response::new(&mut hs);
    let used = match r.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(failed(format!("malformed upstream response: {e}"))),
    };
    let status = r
        .code
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or_else(|| failed("malformed upstream status"))?;
    let version = if r.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    let mut headers = HeaderMap::with_capacity(r.headers.len());
    for h in r.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| failed("malformed upstream header name"))?;
        let value = HeaderValue::from_bytes(h.value)
            .map_err(|_| failed("malformed upstream header value"))?;
        headers.append(name, value);
    }
    Ok(Some((
        Head {
            status,
            version,
            headers,
        },
        used,
    )))
}

fn has_token(h: &HeaderMap, name: HeaderName, token: &str) -> bool {
    h.get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// How the body is delimited (RFC 9112 §6.3).
fn framing(head: &Head, head_only: bool) -> Result<State, UpstreamError> {
    let s = head.status;
    if head_only || s == StatusCode::NO_CONTENT || s == StatusCode::NOT_MODIFIED {
        return Ok(State::Done);
    }
    let te: Vec<&HeaderValue> = head
        .headers
        .get_all(http::header::TRANSFER_ENCODING)
        .iter()
        .collect();
    if !te.is_empty() {
        let last = te
            .last()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .map(|v| v.trim().to_ascii_lowercase());
        return Ok(if last.as_deref() == Some("chunked") {
            State::ChunkSize
        } else {
            State::Close
        });
    }
    let mut len: Option<u64> = None;
    for v in head.headers.get_all(http::header::CONTENT_LENGTH) {
        for part in v
            .to_str()
            .map_err(|_| failed("bad Content-Length"))?
            .split(',')
        {
            let part = part.trim();
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(failed("bad Content-Length from upstream"));
            }
            let n: u64 = part
                .parse()
                .map_err(|_| failed("bad Content-Length from upstream"))?;
            if len.is_some_and(|l| l != n) {
                return Err(failed("conflicting Content-Length from upstream"));
            }
            len = Some(n);
        }
    }
    Ok(match len {
        Some(0) => State::Done,
        Some(n) => State::Length(n),
        None => State::Close,
    })
}

fn respond(
    head: Head,
    head_only: bool,
    buf: BytesMut,
    io: TcpStream,
    addr: SocketAddr,
    pool: std::sync::Arc<Pool>,
) -> Response<UpstreamBody> {
    let (state, reusable) = match framing(&head, head_only) {
        Ok(st) => {
            let keep = head.version == Version::HTTP_11
                && !has_token(&head.headers, http::header::CONNECTION, "close")
                && !matches!(st, State::Close);
            (st, keep)
        }
        Err(e) => (State::Failed(e.to_string()), false),
    };
    let mut body = UpstreamBody {
        io: Some(io),
        buf,
        state,
        reusable,
        addr,
        pool,
        next_read: READ_MIN,
    };
    if matches!(body.state, State::Done) {
        body.finish();
    }
    let mut r = Response::new(body);
    *r.status_mut() = head.status;
    *r.headers_mut() = head.headers;
    r
}

#[derive(Debug)]
enum State {
    /// Bytes left of a `Content-Length` body.
    Length(u64),
    /// Until the upstream closes (not reusable).
    Close,
    ChunkSize,
    /// Bytes left of the current chunk.
    ChunkData(u64),
    /// The CRLF after a chunk's data.
    ChunkEnd,
    /// Trailer lines after the last chunk, up to an empty line (dropped).
    Trailers,
    Done,
    /// A framing error found after the head; reported as a body error.
    Failed(String),
}

enum Step {
    Data(Bytes),
    NeedMore,
    Done,
}

/// A response body read straight from the upstream socket.
pub(crate) struct UpstreamBody {
    io: Option<TcpStream>,
    /// Bytes read and not yet decoded; emptied (and freed) while idle.
    buf: BytesMut,
    state: State,
    reusable: bool,
    addr: SocketAddr,
    pool: std::sync::Arc<Pool>,
    next_read: usize,
}

/// Position of the end of the first line (`\n`), if any.
fn line_end(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'\n')
}

impl UpstreamBody {
    /// Decodes what is buffered.
    fn decode(&mut self) -> Result<Step, BoxError> {
        loop {
            match &mut self.state {
                State::Done => return Ok(Step::Done),
                State::Failed(e) => return Err(e.clone().into()),
                State::Length(rem) | State::ChunkData(rem) => {
                    if self.buf.is_empty() {
                        return Ok(Step::NeedMore);
                    }
                    let n = (*rem).min(self.buf.len() as u64) as usize;
                    *rem -= n as u64;
                    if *rem == 0 {
                        self.state = match self.state {
                            State::ChunkData(_) => State::ChunkEnd,
                            _ => State::Done,
                        };
                    }
                    return Ok(Step::Data(self.buf.split_to(n).freeze()));
                }
                State::Close => {
                    if self.buf.is_empty() {
                        return Ok(Step::NeedMore);
                    }
                    return Ok(Step::Data(self.buf.split().freeze()));
                }
                State::ChunkSize => {
                    let Some(end) = line_end(&self.buf) else {
                        if self.buf.len() > MAX_LINE {
                            return Err("upstream chunk-size line too long".into());
                        }
                        return Ok(Step::NeedMore);
                    };
                    let line = &self.buf[..end];
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    // Chunk extensions (`;name=value`) are ignored.
                    let hex = line.split(|&c| c == b';').next().unwrap_or(b"");
                    let hex = std::str::from_utf8(hex)
                        .map_err(|_| "bad chunk size from upstream")?
                        .trim_matches([' ', '\t']);
                    if hex.is_empty()
                        || hex.len() > 15
                        || !hex.bytes().all(|b| b.is_ascii_hexdigit())
                    {
                        return Err("bad chunk size from upstream".into());
                    }
                    let size =
                        u64::from_str_radix(hex, 16).map_err(|_| "bad chunk size from upstream")?;
                    self.buf.advance(end + 1);
                    self.state = if size == 0 {
                        State::Trailers
                    } else {
                        State::ChunkData(size)
                    };
                }
                State::ChunkEnd => {
                    if self.buf.starts_with(b"\r\n") {
                        self.buf.advance(2);
                    } else if self.buf.starts_with(b"\n") {
                        self.buf.advance(1);
                    } else if self.buf.is_empty() || &self.buf[..] == b"\r" {
                        return Ok(Step::NeedMore);
                    } else {
                        return Err("chunk not followed by CRLF".into());
                    }
                    self.state = State::ChunkSize;
                }
                State::Trailers => {
                    let Some(end) = line_end(&self.buf) else {
                        if self.buf.len() > MAX_LINE {
                            return Err("upstream trailer line too long".into());
                        }
                        return Ok(Step::NeedMore);
                    };
                    let empty = end == 0 || (end == 1 && self.buf[0] == b'\r');
                    self.buf.advance(end + 1);
                    if empty {
                        self.state = State::Done;
                    }
                }
            }
        }
    }

    /// The body is complete: a clean keep-alive connection goes back to
    /// the pool.
    fn finish(&mut self) {
        self.state = State::Done;
        if let Some(io) = self.io.take() {
            if self.reusable && self.buf.is_empty() {
                self.pool.put(self.addr, io);
            }
        }
        self.buf = BytesMut::new();
    }
}

impl http_body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            match this.decode() {
                Ok(Step::Data(d)) => {
                    if matches!(this.state, State::Done) {
                        this.finish();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(d))));
                }
                Ok(Step::Done) => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Ok(Step::NeedMore) => {}
                Err(e) => {
                    this.io = None;
                    this.state = State::Failed(e.to_string());
                    return Poll::Ready(Some(Err(e)));
                }
            }
            let Some(io) = this.io.as_ref() else {
                return Poll::Ready(None);
            };
            match io.poll_read_ready(cx) {
                Poll::Pending => {
                    // Idle (an SSE stream between events): hold no buffer.
                    if this.buf.is_empty() {
                        this.buf = BytesMut::new();
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Err(e)) => {
                    this.io = None;
                    this.state = State::Failed(e.to_string());
                    return Poll::Ready(Some(Err(e.into())));
                }
                Poll::Ready(Ok(())) => {}
            }
            let spare = this.buf.capacity() - this.buf.len();
            if spare < 1024 {
                this.buf.reserve(this.next_read);
            }
            let want = this.buf.capacity() - this.buf.len();
            match io.try_read_buf(&mut this.buf) {
                Ok(0) => {
                    if matches!(this.state, State::Close) {
                        // Read to close: the end of the body.
                        this.reusable = false;
                        this.finish();
                        return Poll::Ready(None);
                    }
                    this.io = None;
                    let e = "upstream closed the connection mid-body";
                    this.state = State::Failed(e.into());
                    return Poll::Ready(Some(Err(e.into())));
                }
                Ok(n) => {
                    // Bulk: reads that fill the buffer ask for bigger ones.
                    this.next_read = if n >= want {
                        (this.next_read * 2).min(READ_MAX)
                    } else {
                        READ_MIN
                    };
                }
                // Readiness was stale; poll_read_ready waits again.
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => {
                    this.io = None;
                    this.state = State::Failed(e.to_string());
                    return Poll::Ready(Some(Err(e.into())));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Done)
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            State::Length(n) => SizeHint::with_exact(n),
            State::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    /// A raw upstream that answers each request with `reply` (as many
    /// requests as arrive on one connection), recording the requests.
    async fn raw_upstream(
        reply: &'static [u8],
    ) -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = l.accept().await else {
                    return;
                };
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut b = [0u8; 4096];
                    loop {
                        let Ok(n) = s.read(&mut b).await else { return };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&b[..n]);
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                            let len: usize = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length: "))
                                .and_then(|v| v.trim().parse().ok())
                                .unwrap_or(0);
                            if buf.len() < end + 4 + len {
                                break;
                            }
                            let req: Vec<u8> = buf.drain(..end + 4 + len).collect();
                            let _ = tx.send(req);
                            if s.write_all(reply).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (addr, rx)
    }

    async fn get(pool: &std::sync::Arc<Pool>, addr: SocketAddr, m: Method) -> (u16, Vec<u8>) {
        let h = HeaderMap::new();
        let r = send(
            pool,
            &[addr],
            Outgoing {
                method: &m,
                target: "/mcp?x=1",
                authority: "up:1",
                headers: &h,
                body: if m == Method::POST {
                    Bytes::from_static(b"{}")
                } else {
                    Bytes::new()
                },
            },
        )
        .await
        .unwrap();
        let st = r.status().as_u16();
        let b = r.into_body().collect().await.unwrap().to_bytes();
        (st, b.to_vec())
    }

    #[tokio::test]
    async fn chunked_body_with_extensions_and_trailers_then_reuse() {
        let (addr, mut rx) = raw_upstream(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nx-trailer: 1\r\n\r\n",
        )
        .await;
        let pool = std::sync::Arc::new(Pool::default());
        assert_eq!(
            get(&pool, addr, Method::POST).await,
            (200, b"hello world".to_vec())
        );
        let req = String::from_utf8(rx.recv().await.unwrap()).unwrap();
        assert!(
            req.starts_with("POST /mcp?x=1 HTTP/1.1\r\nhost: up:1\r\n"),
            "{req}"
        );
        assert!(req.ends_with("content-length: 2\r\n\r\n{}"), "{req}");
        // The clean keep-alive connection was pooled and is used again.
        assert_eq!(pool.idle.lock().unwrap().get(&addr).map(Vec::len), Some(1));
        assert_eq!(
            get(&pool, addr, Method::GET).await,
            (200, b"hello world".to_vec())
        );
        let req = String::from_utf8(rx.recv().await.unwrap()).unwrap();
        assert!(!req.contains("content-length"), "{req}");
        assert_eq!(pool.idle.lock().unwrap().get(&addr).map(Vec::len), Some(1));
    }

    #[tokio::test]
    async fn length_close_and_bodiless_responses() {
        let pool = std::sync::Arc::new(Pool::default());
        let (a, _rx) = raw_upstream(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nabc").await;
        assert_eq!(get(&pool, a, Method::GET).await, (200, b"abc".to_vec()));
        assert_eq!(get(&pool, a, Method::HEAD).await.1, b"".to_vec());
        let (a, _rx) = raw_upstream(b"HTTP/1.1 204 No Content\r\n\r\n").await;
        assert_eq!(get(&pool, a, Method::GET).await, (204, vec![]));
        // Read to close: not pooled.
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut b = [0u8; 1024];
            let _ = s.read(&mut b).await;
            s.write_all(b"HTTP/1.0 200 OK\r\n\r\nuntil close")
                .await
                .unwrap();
        });
        assert_eq!(
            get(&pool, a, Method::GET).await,
            (200, b"until close".to_vec())
        );
        assert!(pool.idle.lock().unwrap().get(&a).is_none());
    }

    #[tokio::test]
    async fn framing_errors_fail_the_body_not_the_process() {
        let pool = std::sync::Arc::new(Pool::default());
        for reply in [
            &b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nab"[..],
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nabX",
            b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
        ] {
            let (a, _rx) = raw_upstream(reply).await;
            let h = HeaderMap::new();
            let r = send(
                &pool,
                &[a],
                Outgoing {
                    method: &Method::GET,
                    target: "/",
                    authority: "up",
                    headers: &h,
                    body: Bytes::new(),
                },
            )
            .await
            .unwrap();
            assert!(r.into_body().collect().await.is_err());
        }
        let (a, _rx) = raw_upstream(b"NOT HTTP\r\n\r\n").await;
        let h = HeaderMap::new();
        let r = send(
            &pool,
            &[a],
            Outgoing {
                method: &Method::GET,
                target: "/",
                authority: "up",
                headers: &h,
                body: Bytes::new(),
            },
        )
        .await;
        assert!(matches!(r, Err(UpstreamError::Failed(_))));
    }
}
