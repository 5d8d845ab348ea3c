//! The link handshake that runs inside TLS before HTTP/2 starts.
//!
//! The connector sends one length-prefixed JSON [`Hello`] (tunnel, token,
//! connector name, link index); the gateway answers one [`Welcome`]. After
//! that the byte stream is HTTP/2 with the gateway as client. A frame is a
//! 4-byte big-endian length then that many bytes, at most [`MAX_FRAME`].

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
