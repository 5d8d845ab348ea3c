//! The jail's only network path: listening sockets on the jail's own
//! loopback (HTTP/CONNECT and SOCKS5), created inside its network namespace
//! by the init and handed out; the launcher accepts on them and splices
//! each connection to the egress proxy's Unix socket. No process inside can
//! see the relay.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

/// Receives the `n` listening sockets the init sent with SCM_RIGHTS.
pub fn receive_listeners(sock: &UnixStream, n: usize) -> std::io::Result<Vec<TcpListener>> {
    let bytes = (n * std::mem::size_of::<i32>()) as u32;
    unsafe {
        let mut byte = [0u8; 1];
        let mut iov = libc::iovec {
            iov_base: byte.as_mut_ptr().cast(),
            iov_len: 1,
        };
        let space = libc::CMSG_SPACE(bytes) as usize;
        let mut cbuf = vec![0u8; space];
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = space;
        let r = libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC);
        if r <= 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "no relay sockets",
            ));
        }
        let c = libc::CMSG_FIRSTHDR(&msg);
        if c.is_null() || (*c).cmsg_type != libc::SCM_RIGHTS {
            return Err(std::io::Error::other("no descriptors in the relay message"));
        }
        let got = ((*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize) / 4;
        let mut fds = vec![0i32; got];
        std::ptr::copy_nonoverlapping(libc::CMSG_DATA(c), fds.as_mut_ptr() as *mut u8, got * 4);
        let listeners: Vec<TcpListener> = fds
            .into_iter()
            .map(|fd| TcpListener::from_raw_fd(fd))
            .collect();
        if listeners.len() != n || msg.msg_flags & libc::MSG_CTRUNC != 0 {
            return Err(std::io::Error::other(format!(
                "expected {n} relay sockets, got {}",
                listeners.len()
            )));
        }
        Ok(listeners)
    }
}

pub struct Relay {
    listeners: Vec<TcpListener>,
}

impl Relay {
    /// Starts one thread that waits on every listener and hands each
    /// connection to a thread of its own. Fails (instead of panicking)
    /// when the process is out of descriptors or threads.
    pub fn start(listeners: Vec<TcpListener>, proxy: PathBuf) -> std::io::Result<Relay> {
        let mut ls = Vec::new();
        for l in &listeners {
            let l = l.try_clone()?;
            // poll says when to accept; a connection reset in between
            // must not block the loop in accept.
            l.set_nonblocking(true)?;
            ls.push(l);
        }
        std::thread::Builder::new()
            .name("airlock-jail-relay".into())
            .stack_size(128 << 10)
            .spawn(move || accept_loop(&ls, &proxy))?;
        Ok(Relay { listeners })
    }

    /// Stops accepting (wakes the accept loop); open connections finish.
    pub fn stop(self) {
        for l in &self.listeners {
            unsafe { libc::shutdown(l.as_raw_fd(), libc::SHUT_RDWR) };
        }
    }
}

/// Accepts on every listener until one is shut down ([`Relay::stop`]).
fn accept_loop(listeners: &[TcpListener], proxy: &Path) {
    let mut pfds: Vec<libc::pollfd> = listeners
        .iter()
        .map(|l| libc::pollfd {
            fd: l.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    loop {
        let r = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, -1) };
        if r < 0 {
            if crate::sys::errno() == libc::EINTR {
                continue;
            }
            return;
        }
        for (l, p) in listeners.iter().zip(&pfds) {
            if p.revents == 0 {
                continue;
            }
            match l.accept() {
                Ok((tcp, _)) => {
                    let proxy = proxy.to_path_buf();
                    // Out of threads: this one connection is dropped.
                    let _ = std::thread::Builder::new()
                        .name("airlock-jail-relay-conn".into())
                        .spawn(move || pipe_through(tcp, &proxy));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::Interrupted | std::io::ErrorKind::ConnectionAborted
                    ) => {}
                // Shut down (EINVAL), or the listener is unusable.
                Err(_) => return,
            }
        }
    }
}

fn pipe_through(tcp: TcpStream, proxy: &Path) {
    let Ok(unix) = UnixStream::connect(proxy) else {
        let _ = tcp.shutdown(Shutdown::Both);
        return;
    };
    let (Ok(mut t2), Ok(mut u2)) = (tcp.try_clone(), unix.try_clone()) else {
        return;
    };
    let up = std::thread::spawn(move || {
        copy(&mut t2, &mut u2);
        let _ = u2.shutdown(Shutdown::Write);
    });
    let (mut t, mut u) = (tcp, unix);
    copy(&mut u, &mut t);
    let _ = t.shutdown(Shutdown::Write);
    let _ = up.join();
}

fn copy(from: &mut impl Read, to: &mut impl Write) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}
