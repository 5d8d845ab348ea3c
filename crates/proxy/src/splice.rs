//! Zero-copy relay for opaque tunnels: splice(2) socket → pipe → socket, so
//! bulk CONNECT/SOCKS traffic never crosses user space.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::AtomicU64;

use tokio::io::Interest;
use tokio::net::{TcpStream, UnixStream};

/// A socket whose readiness and fd the relay can use directly.
pub(crate) enum Raw<'a> {
    Tcp(&'a TcpStream),
    Unix(&'a UnixStream),
}

pub(crate) trait AsRaw {
    fn as_raw(&self) -> Option<Raw<'_>>;
}

impl AsRaw for TcpStream {
    fn as_raw(&self) -> Option<Raw<'_>> {
        Some(Raw::Tcp(self))
    }
}

impl AsRaw for UnixStream {
    fn as_raw(&self) -> Option<Raw<'_>> {
        Some(Raw::Unix(self))
    }
}

impl Raw<'_> {
    fn fd(&self) -> RawFd {
        match self {
            Raw::Tcp(s) => s.as_raw_fd(),
            Raw::Unix(s) => s.as_raw_fd(),
        }
    }
    async fn ready(&self, i: Interest) -> io::Result<()> {
        match self {
            Raw::Tcp(s) => s.ready(i).await.map(|_| ()),
            Raw::Unix(s) => s.ready(i).await.map(|_| ()),
        }
    }
    fn try_io<R>(&self, i: Interest, f: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
        match self {
            Raw::Tcp(s) => s.try_io(i, f),
            Raw::Unix(s) => s.try_io(i, f),
        }
    }
}

struct Pipe(RawFd, RawFd);

impl Pipe {
    fn new() -> io::Result<Pipe> {
        let mut fds = [0; 2];
        // SAFETY: pipe2 writes two fds into the array.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // A bigger pipe means fewer splice calls per MiB.
        // SAFETY: fcntl on an fd we own.
        unsafe { libc::fcntl(fds[1], libc::F_SETPIPE_SZ, 1 << 20) };
        Ok(Pipe(fds[0], fds[1]))
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        // SAFETY: closing the fds this Pipe owns, once.
        unsafe {
            libc::close(self.0);
            libc::close(self.1);
        }
    }
}

fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    // SAFETY: plain syscall on fds owned by live objects; null offsets for sockets/pipes.
    let n = unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            to,
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Relay `src` → `dst` until EOF, error or budget exhaustion; then half-close
/// `dst`. Returns bytes relayed.
pub(crate) async fn relay(
    src: &Raw<'_>,
    dst: &Raw<'_>,
    counter: &AtomicU64,
    limit: Option<u64>,
) -> u64 {
    let Ok(pipe) = Pipe::new() else { return 0 };
    let mut total = 0u64;
    'outer: loop {
        if src.ready(Interest::READABLE).await.is_err() {
            break;
        }
        let n = match src.try_io(Interest::READABLE, || splice(src.fd(), pipe.1, 1 << 20)) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(_) => break,
        };
        if !crate::server::count(counter, n, limit) {
            break;
        }
        let mut left = n;
        while left > 0 {
            if dst.ready(Interest::WRITABLE).await.is_err() {
                break 'outer;
            }
            match dst.try_io(Interest::WRITABLE, || splice(pipe.0, dst.fd(), left)) {
                Ok(0) => break 'outer,
                Ok(m) => left -= m,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => break 'outer,
            }
        }
        total += n as u64;
    }
    // SAFETY: half-close of a socket we hold a reference to.
    unsafe { libc::shutdown(dst.fd(), libc::SHUT_WR) };
    total
}
