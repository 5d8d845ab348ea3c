//! SOCKS5 (RFC 1928) with username/password auth (RFC 1929), CONNECT only.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::record::Protocol;
use crate::server::{dial, raw_tunnel, socks_host, vet, Rec, Shared};

// Reply codes.
const GENERAL: u8 = 1;
const NOT_ALLOWED: u8 = 2;
const HOST_UNREACHABLE: u8 = 4;
const REFUSED: u8 = 5;
const CMD_UNSUPPORTED: u8 = 7;
const ATYP_UNSUPPORTED: u8 = 8;

/// Reads exactly `n` bytes, using what is already buffered first.
struct Reader<'a, S> {
    s: &'a mut S,
    buf: Vec<u8>,
}

impl<S: AsyncRead + Unpin> Reader<'_, S> {
    async fn take(&mut self, n: usize) -> std::io::Result<Vec<u8>> {
        while self.buf.len() < n {
            let mut chunk = [0u8; 1024];
            let got = self.s.read(&mut chunk).await?;
            if got == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..got]);
        }
        Ok(self.buf.drain(..n).collect())
    }
}

async fn reply<S: AsyncWrite + Unpin>(s: &mut S, code: u8) {
    let _ = s.write_all(&[5, code, 0, 1, 0, 0, 0, 0, 0, 0]).await;
}

pub(crate) async fn handle<S>(mut s: S, buf: Vec<u8>, shared: Arc<Shared>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + crate::splice::AsRaw,
{
    let mut rec = Rec::new(&shared, Protocol::Socks5);
    let (host, port, pending) = {
        let mut r = Reader { s: &mut s, buf };
        let Ok(greet) = r.take(2).await else { return };
        let Ok(methods) = r.take(usize::from(greet[1])).await else {
            return;
        };
        if !methods.contains(&2) {
            let _ = r.s.write_all(&[5, 0xff]).await;
            rec.deny(
                "auth",
                "client offered no username/password method".into(),
                0xff,
            );
            return rec.finish(&shared);
        }
        if r.s.write_all(&[5, 2]).await.is_err() {
            return;
        }
        let ok = async {
            let v = r.take(2).await?;
            let user = r.take(usize::from(v[1])).await?;
            let plen = r.take(1).await?;
            let pass = r.take(usize::from(plen[0])).await?;
            Ok::<bool, std::io::Error>(
                v[0] == 1 && shared.opts.client_credential.matches(&user, &pass),
            )
        }
        .await;
        if !matches!(ok, Ok(true)) {
            let _ = r.s.write_all(&[1, 1]).await;
            rec.deny("auth", "missing or wrong proxy credential".into(), 1);
            return rec.finish(&shared);
        }
        if !shared.take_token() {
            let _ = r.s.write_all(&[1, 1]).await;
            rec.deny("rate", "request-rate limit reached".into(), 1);
            return rec.finish(&shared);
        }
        if r.s.write_all(&[1, 0]).await.is_err() {
            return;
        }
        let Ok(req) = r.take(4).await else { return };
        if req[0] != 5 || req[2] != 0 {
            reply(r.s, GENERAL).await;
            rec.deny("socks", "malformed request".into(), u16::from(GENERAL));
            return rec.finish(&shared);
        }
        let raw = match req[3] {
            1 => r.take(4).await,
            4 => r.take(16).await,
            3 => match r.take(1).await {
                Ok(l) => r.take(usize::from(l[0])).await,
                Err(e) => Err(e),
            },
            _ => {
                reply(r.s, ATYP_UNSUPPORTED).await;
                rec.deny(
                    "socks",
                    "unsupported address type".into(),
                    u16::from(ATYP_UNSUPPORTED),
                );
                return rec.finish(&shared);
            }
        };
        let Ok(raw) = raw else { return };
        let Ok(p) = r.take(2).await else { return };
        let port = u16::from_be_bytes([p[0], p[1]]);
        rec.rec.host = String::from_utf8_lossy(&raw).chars().take(256).collect();
        rec.rec.port = port;
        if req[1] != 1 {
            reply(r.s, CMD_UNSUPPORTED).await;
            rec.deny(
                "socks",
                "only CONNECT is supported".into(),
                u16::from(CMD_UNSUPPORTED),
            );
            return rec.finish(&shared);
        }
        let host = match socks_host(req[3], &raw) {
            Ok(h) => h,
            Err(why) => {
                reply(r.s, NOT_ALLOWED).await;
                rec.deny("canon", why, u16::from(NOT_ALLOWED));
                return rec.finish(&shared);
            }
        };
        (host, port, std::mem::take(&mut r.buf))
    };
    rec.rec.host = host.to_string();
    if port == 0 {
        reply(&mut s, NOT_ALLOWED).await;
        rec.deny("canon", "port 0".into(), u16::from(NOT_ALLOWED));
        return rec.finish(&shared);
    }
    let v = match vet(&shared, &host, port).await {
        Ok(v) => v,
        Err(d) => {
            reply(&mut s, NOT_ALLOWED).await;
            rec.deny(&d.rule, d.reason, u16::from(NOT_ALLOWED));
            return rec.finish(&shared);
        }
    };
    rec.rec.rule = v.rule;
    rec.rec.decision = v.decision;
    rec.rec.reason = v.report_reason;
    if let Some(c) = shared.credential_for(&host, port) {
        let why = format!(
            "{host}:{port} has credential `{}`; it can only be injected through the HTTP proxy",
            c.name
        );
        reply(&mut s, NOT_ALLOWED).await;
        rec.deny("credential", why, u16::from(NOT_ALLOWED));
        return rec.finish(&shared);
    }
    let mut up = match dial(&shared, &v.addrs).await {
        Ok(u) => u,
        Err(e) => {
            let code = if e.kind() == std::io::ErrorKind::ConnectionRefused {
                REFUSED
            } else {
                HOST_UNREACHABLE
            };
            reply(&mut s, code).await;
            rec.rec.reason = Some(format!("connect failed: {e}"));
            rec.rec.status = Some(u16::from(code));
            return rec.finish(&shared);
        }
    };
    rec.rec.resolved = up.peer_addr().ok();
    reply(&mut s, 0).await;
    rec.rec.status = Some(0);
    raw_tunnel(&mut s, &mut up, pending, &shared, &mut rec).await;
    rec.finish(&shared)
}
