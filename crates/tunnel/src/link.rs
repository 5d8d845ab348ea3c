//! The link handshake that runs inside TLS before HTTP/2 starts.
//!
//! The connector sends one length-prefixed JSON [`Hello`] (tunnel, token,
//! connector name, link index); the gateway answers one [`Welcome`]. After
//! that the byte stream is HTTP/2 with the gateway as client. A frame is a
//! 4-byte big-endian length then that many bytes, at most [`MAX_FRAME`].

use bytes::BytesMut;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::Error;

/// ALPN id of the link protocol, so a link can never be mistaken for HTTPS.
pub const ALPN: &[u8] = b"airlock-link/1";
pub const MAX_FRAME: usize = 16 * 1024;
pub const VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hello {
    pub v: u32,
    pub tunnel: String,
    pub token: String,
    /// Stable connector name (hostname by default): with `link`, the key a
    /// reconnect replaces.
    pub connector: String,
    pub link: u32,
    /// Route names this connector serves (informational, for `tunnel show`).
    #[serde(default)]
    pub routes: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Welcome {
    pub ok: bool,
    /// When false: true means retrying cannot help (bad credentials).
    #[serde(default)]
    pub fatal: bool,
    #[serde(default)]
    pub error: String,
    #[serde(default)]
    pub link_id: u64,
}

pub async fn write_frame<W: AsyncWrite + Unpin, T: Serialize>(
    w: &mut W,
    msg: &T,
) -> Result<(), Error> {
    let body = serde_json::to_vec(msg).map_err(|e| Error::Protocol(e.to_string()))?;
    if body.len() > MAX_FRAME {
        return Err(Error::Protocol("handshake frame too large".into()));
    }
    let len = u32::try_from(body.len()).map_err(|_| Error::Protocol("frame too large".into()))?;
    w.write_all(&len.to_be_bytes()).await?;
    w.write_all(&body).await?;
    w.flush().await?;
    Ok(())
}

pub async fn read_frame<R: AsyncRead + Unpin, T: for<'de> Deserialize<'de>>(
    r: &mut R,
) -> Result<T, Error> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(Error::Protocol(format!(
            "handshake frame of {len} bytes exceeds {MAX_FRAME}"
        )));
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf).await?;
    serde_json::from_slice(&buf).map_err(|e| Error::Protocol(format!("bad handshake frame: {e}")))
}

/// Read-ahead under a link's TLS layer. rustls reads the socket 4 KiB at a
/// time, so a bulk response cost one `recv` per 4 KiB; this reads up to
/// [`READ_AHEAD`] per system call and serves rustls from that. The buffer
/// exists only while bytes are waiting: an idle link holds none.
pub struct ReadAhead<T> {
    inner: T,
    /// Up to `READ_AHEAD` bytes while reading, no allocation while idle.
    /// `BytesMut` so a read lands in uninitialised capacity: zeroing 64 KiB
    /// for every burst cost more than the read (memset in the profile).
    buf: BytesMut,
    pos: usize,
}

/// Largest single read from a link socket.
pub const READ_AHEAD: usize = 64 << 10;

impl<T> ReadAhead<T> {
    pub fn new(inner: T) -> ReadAhead<T> {
        ReadAhead {
            inner,
            buf: BytesMut::new(),
            pos: 0,
        }
    }

    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    fn release(&mut self) {
        self.buf = BytesMut::new();
        self.pos = 0;
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ReadAhead<T> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        dst: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::task::Poll;
        let this = &mut *self;
        if this.pos == this.buf.len() {
            // A caller that asks for a lot reads straight into its buffer.
            if dst.remaining() >= READ_AHEAD {
                this.release();
                return std::pin::Pin::new(&mut this.inner).poll_read(cx, dst);
            }
            if this.buf.capacity() < READ_AHEAD {
                this.buf = BytesMut::with_capacity(READ_AHEAD);
            }
            this.buf.clear();
            this.pos = 0;
            match tokio_util::io::poll_read_buf(
                std::pin::Pin::new(&mut this.inner),
                cx,
                &mut this.buf,
            ) {
                Poll::Ready(Ok(n)) => {
                    if n == 0 {
                        this.release();
                        return Poll::Ready(Ok(())); // EOF
                    }
                }
                other => {
                    // Nothing waiting (or an error): hold no buffer.
                    this.release();
                    return other.map_ok(|_| ());
                }
            }
        }
        let n = dst.remaining().min(this.buf.len() - this.pos);
        dst.put_slice(&this.buf[this.pos..this.pos + n]);
        this.pos += n;
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ReadAhead<T> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        b: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, b)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        b: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, b)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn read_ahead_passes_every_byte_in_order_and_eof() {
        let (mut a, b) = tokio::io::duplex(256 << 10);
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let d2 = data.clone();
        let w = tokio::spawn(async move {
            a.write_all(&d2).await.unwrap();
            a.shutdown().await.unwrap();
        });
        let mut r = ReadAhead::new(b);
        let mut got = Vec::new();
        let mut small = [0u8; 4096];
        // Small reads (as rustls does) and one large one.
        loop {
            let n = r.read(&mut small).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&small[..n]);
            if got.len() > 100_000 {
                let mut big = vec![0u8; READ_AHEAD * 2];
                let n = r.read(&mut big).await.unwrap();
                got.extend_from_slice(&big[..n]);
            }
        }
        w.await.unwrap();
        assert_eq!(got, data);
        assert!(r.buf.capacity() == 0, "no buffer held at EOF");
    }
}
