//! airlock-proxy: the jail's only way out.
//!
//! HTTP forward proxy, CONNECT and SOCKS5 on one listener (Unix socket for
//! jails, TCP for `airlock proxy --listen`). Every destination is
//! canonicalised ([`canon`]), matched against the host rules ([`rules`]),
//! resolved once ([`resolve`]), every address vetted ([`classify`]) and the
//! vetted address dialled. One [`record::ConnectionRecord`] per connection.

pub mod ca;
pub mod canon;
pub mod classify;
mod echo;
pub mod http1;
mod intercept;
pub mod record;
pub mod resolve;
pub mod rules;
mod server;
mod socks5;
mod splice;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use airlock_config::{Credential, Network};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;

pub use record::{ConnectionRecord, Decision, Protocol, RecordSink, TracingSink};
pub use resolve::{Resolver, StaticResolver, SystemResolver};

/// The per-run credential every client must present (Basic for HTTP and
/// CONNECT, username/password for SOCKS5).
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyCredential {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for ProxyCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyCredential")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl ProxyCredential {
    /// A fresh random credential (user `airlock`, 32 hex chars of password).
    pub fn generate() -> std::io::Result<ProxyCredential> {
        let mut b = [0u8; 16];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
        Ok(ProxyCredential {
            user: "airlock".into(),
            password: b.iter().map(|x| format!("{x:02x}")).collect(),
        })
    }

    /// `http://user:pass@host:port` for HTTP_PROXY-style variables.
    pub fn proxy_url(&self, host_port: &str) -> String {
        format!("http://{}:{}@{host_port}", self.user, self.password)
    }
}

/// Per-run limits. `None` is unlimited.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    pub bytes_up: Option<u64>,
    pub bytes_down: Option<u64>,
    pub requests_per_second: Option<u32>,
}

/// Everything one proxy instance needs.
#[derive(Clone)]
pub struct ProxyOptions {
    pub network: Network,
    pub credentials: Vec<Credential>,
    pub client_credential: ProxyCredential,
    /// Session/run name written into every record.
    pub session: String,
    pub resolver: Arc<dyn Resolver>,
    pub limits: Limits,
    /// Refuse requests carrying a resolved credential value (or any of
    /// `extra_secrets`) in URL, headers or body. Plain HTTP only; TLS
    /// tunnels are opaque.
    pub leak_check: bool,
    pub extra_secrets: Vec<String>,
    /// Largest body buffered for the leak check.
    pub leak_check_max_body: usize,
    pub connect_timeout: Duration,
    pub sink: Option<Arc<dyn RecordSink>>,
    /// Signs leaves for intercepted CONNECTs. Without it, CONNECTs that need
    /// interception (credential or `inspect` hosts) are refused.
    pub ca: Option<Arc<ca::CertAuthority>>,
    /// Hosts whose HTTPS is intercepted even without a credential.
    pub inspect: Vec<airlock_config::HostPattern>,
    /// Extra PEM CA certificates trusted for upstream TLS, besides the
    /// system bundle (internal CAs, tests).
    pub upstream_ca_pem: Option<String>,
    /// System CA bundle used to verify upstream TLS.
    pub system_ca_file: PathBuf,
}

impl ProxyOptions {
    pub fn new(
        network: Network,
        credentials: Vec<Credential>,
        client_credential: ProxyCredential,
    ) -> Self {
        ProxyOptions {
            network,
            credentials,
            client_credential,
            session: String::new(),
            resolver: Arc::new(SystemResolver),
            limits: Limits::default(),
            leak_check: true,
            extra_secrets: Vec::new(),
            leak_check_max_body: 8 << 20,
            connect_timeout: Duration::from_secs(10),
            sink: None,
            ca: None,
            inspect: Vec::new(),
            upstream_ca_pem: None,
            system_ca_file: PathBuf::from("/etc/ssl/certs/ca-certificates.crt"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("cannot listen on {what}: {source}")]
    Listen {
        what: String,
        source: std::io::Error,
    },
}

/// A running proxy. Dropping it does not stop it; call [`ProxyHandle::shutdown`].
pub struct ProxyHandle {
    socket_path: Option<PathBuf>,
    tcp_addr: Option<std::net::SocketAddr>,
    credential: ProxyCredential,
    shared: Arc<server::Shared>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl ProxyHandle {
    pub fn socket_path(&self) -> Option<&Path> {
        self.socket_path.as_deref()
    }
    pub fn tcp_addr(&self) -> Option<std::net::SocketAddr> {
        self.tcp_addr
    }
    pub fn credential(&self) -> &ProxyCredential {
        &self.credential
    }
    /// PEM of the CA the jail must trust for intercepted TLS (add it to the
    /// jail's CA bundle and SSL_CERT_FILE / NODE_EXTRA_CA_CERTS / REQUESTS_CA_BUNDLE).
    pub fn ca_cert_pem(&self) -> Option<&str> {
        self.shared.opts.ca.as_deref().map(|c| c.cert_pem())
    }
    /// Every record so far.
    pub fn records(&self) -> Vec<ConnectionRecord> {
        self.shared
            .records
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }
    /// Denied (and report-mode would-be-denied) records, for the run report.
    pub fn denials(&self) -> Vec<ConnectionRecord> {
        self.records()
            .into_iter()
            .filter(|r| r.decision != Decision::Allow)
            .collect()
    }
    /// Bytes relayed so far (up, down) against the run's budgets.
    pub fn bytes(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering;
        (
            self.shared.up.load(Ordering::Relaxed),
            self.shared.down.load(Ordering::Relaxed),
        )
    }
    /// Stop accepting and wait for the accept loop to end. Connections in
    /// flight are dropped with the runtime.
    pub async fn shutdown(self) -> Vec<ConnectionRecord> {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        if let Some(p) = &self.socket_path {
            let _ = std::fs::remove_file(p);
        }
        self.shared
            .records
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }
}

/// Start on a Unix socket (mode 0600: only this user's relay connects).
/// Must be called inside a tokio runtime.
pub async fn start_unix(path: &Path, opts: ProxyOptions) -> Result<ProxyHandle, ProxyError> {
    serve_unix(bind_unix(path)?, path, opts)
}

/// Binds the proxy's Unix socket (mode 0600: only this user's relay
/// connects) without a runtime: a caller can hand the path out at once and
/// start serving later ([`serve_unix_blocking`]); connections made in
/// between wait in the listen backlog.
pub fn bind_unix(path: &Path) -> Result<std::os::unix::net::UnixListener, ProxyError> {
    let _ = std::fs::remove_file(path);
    let l = std::os::unix::net::UnixListener::bind(path).map_err(|source| ProxyError::Listen {
        what: path.display().to_string(),
        source,
    })?;
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    }
    Ok(l)
}

/// Serves on a socket from [`bind_unix`]. Must be called inside a tokio runtime.
fn serve_unix(
    l: std::os::unix::net::UnixListener,
    path: &Path,
    opts: ProxyOptions,
) -> Result<ProxyHandle, ProxyError> {
    let listen_err = |source| ProxyError::Listen {
        what: path.display().to_string(),
        source,
    };
    l.set_nonblocking(true).map_err(listen_err)?;
    let l = UnixListener::from_std(l).map_err(listen_err)?;
    let credential = opts.client_credential.clone();
    let shared = Arc::new(server::Shared::new(opts, classify::local_addresses()));
    let (stop, mut rx) = watch::channel(false);
    let sh = shared.clone();
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = rx.changed() => return,
                a = l.accept() => match a {
                    Ok((s, _)) => { tokio::spawn(server::handle(s, sh.clone())); }
                    Err(e) => { tracing::warn!("accept: {e}"); tokio::time::sleep(Duration::from_millis(50)).await; }
                },
            }
        }
    });
    Ok(ProxyHandle {
        socket_path: Some(path.to_path_buf()),
        tcp_addr: None,
        credential,
        shared,
        stop,
        task,
    })
}

/// Start on a TCP address (for `airlock proxy --listen` and tests).
pub async fn start_tcp(
    addr: std::net::SocketAddr,
    opts: ProxyOptions,
) -> Result<ProxyHandle, ProxyError> {
    let l = TcpListener::bind(addr)
        .await
        .map_err(|source| ProxyError::Listen {
            what: addr.to_string(),
            source,
        })?;
    let local = l.local_addr().ok();
    let credential = opts.client_credential.clone();
    let shared = Arc::new(server::Shared::new(opts, classify::local_addresses()));
    let (stop, mut rx) = watch::channel(false);
    let sh = shared.clone();
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = rx.changed() => return,
                a = l.accept() => match a {
                    Ok((s, _)) => { let _ = s.set_nodelay(true); tokio::spawn(server::handle(s, sh.clone())); }
                    Err(e) => { tracing::warn!("accept: {e}"); tokio::time::sleep(Duration::from_millis(50)).await; }
                },
            }
        }
    });
    Ok(ProxyHandle {
        socket_path: None,
        tcp_addr: local,
        credential,
        shared,
        stop,
        task,
    })
}

/// A proxy on its own runtime, for callers without one (the jail's
/// supervisor). Getters come from [`ProxyHandle`] through `Deref`.
pub struct BlockingProxy {
    handle: Option<ProxyHandle>,
    rt: tokio::runtime::Runtime,
}

impl std::ops::Deref for BlockingProxy {
    type Target = ProxyHandle;
    fn deref(&self) -> &ProxyHandle {
        // Present until `shutdown` consumes self.
        self.handle
            .as_ref()
            .unwrap_or_else(|| unreachable!("handle taken only by shutdown"))
    }
}

impl BlockingProxy {
    /// Stop and return every record of the run.
    pub fn shutdown(mut self) -> Vec<ConnectionRecord> {
        match self.handle.take() {
            Some(h) => self.rt.block_on(h.shutdown()),
            None => Vec::new(),
        }
    }

    /// Returns the records so far, removes the socket and leaves the
    /// runtime's threads to wind down without waiting for them (connections
    /// in flight are dropped, as with [`BlockingProxy::shutdown`]). For a
    /// process about to exit whose proxy has no record sink that could be
    /// cut off mid-write.
    pub fn shutdown_background(self) -> Vec<ConnectionRecord> {
        let BlockingProxy { handle, rt } = self;
        let recs = match &handle {
            Some(h) => {
                if let Some(p) = &h.socket_path {
                    let _ = std::fs::remove_file(p);
                }
                h.records()
            }
            None => Vec::new(),
        };
        rt.shutdown_background();
        drop(handle);
        recs
    }
}

/// [`start_unix`] on a dedicated two-thread runtime.
pub fn start_unix_blocking(path: &Path, opts: ProxyOptions) -> Result<BlockingProxy, ProxyError> {
    serve_unix_blocking(bind_unix(path)?, path, opts)
}

/// Serves on a socket from [`bind_unix`] (bound at `path`) on a dedicated
/// two-thread runtime.
pub fn serve_unix_blocking(
    l: std::os::unix::net::UnixListener,
    path: &Path,
    opts: ProxyOptions,
) -> Result<BlockingProxy, ProxyError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("airlock-proxy")
        .enable_all()
        .build()
        .map_err(|source| ProxyError::Listen {
            what: "runtime".into(),
            source,
        })?;
    let handle = {
        let _entered = rt.enter();
        serve_unix(l, path, opts)?
    };
    Ok(BlockingProxy {
        handle: Some(handle),
        rt,
    })
}

/// A proxy on a bound socket ([`bind_unix`]) whose runtime starts only
/// when the first client connects: a jail that never uses the network
/// costs one thread asleep in `poll` instead of a runtime with its workers,
/// and nothing competes with the jail's start-up for the CPU. The first
/// connection waits in the listen backlog while the runtime starts, so it
/// is neither refused nor lost. Records, audit and every rule are those of
/// [`serve_unix_blocking`], which it calls.
pub struct LazyProxy {
    state: Arc<std::sync::Mutex<Lazy>>,
    /// Writing a byte here wakes the waiting thread to leave.
    wake: std::fs::File,
    waiter: Option<std::thread::JoinHandle<()>>,
    path: PathBuf,
}

enum Lazy {
    Waiting(std::os::unix::net::UnixListener, Box<ProxyOptions>),
    Running(BlockingProxy),
    /// Shut down, or the runtime could not start (the listener is closed,
    /// so clients are refused: nothing leaves without the proxy).
    Done,
}

/// [`serve_unix_blocking`], started on the first connection (see [`LazyProxy`]).
pub fn serve_unix_lazy(
    l: std::os::unix::net::UnixListener,
    path: &Path,
    opts: ProxyOptions,
) -> Result<LazyProxy, ProxyError> {
    use std::os::fd::{AsRawFd, FromRawFd};
    let err = |source| ProxyError::Listen {
        what: path.display().to_string(),
        source,
    };
    let mut fds = [0; 2];
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(err(std::io::Error::last_os_error()));
    }
    // SAFETY: both descriptors were just created and are owned here.
    let (wake_r, wake) = unsafe {
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    };
    let listen_fd = l.as_raw_fd();
    let state = Arc::new(std::sync::Mutex::new(Lazy::Waiting(l, Box::new(opts))));
    let st = state.clone();
    let p = path.to_path_buf();
    let waiter = std::thread::Builder::new()
        .name("airlock-proxy-wait".into())
        // It only polls and starts the runtime.
        .stack_size(256 << 10)
        .spawn(move || {
            let mut pfd = [
                libc::pollfd {
                    fd: listen_fd,
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: wake_r.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            loop {
                let r = unsafe { libc::poll(pfd.as_mut_ptr(), 2, -1) };
                if r > 0 {
                    break;
                }
                if r < 0
                    && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted
                {
                    // Cannot wait: start now rather than never serve.
                    break;
                }
            }
            if pfd[1].revents != 0 {
                // Stopped: the state is taken already; nothing to start.
                return;
            }
            let mut g = st.lock().unwrap_or_else(|e| e.into_inner());
            // The listener is still open while the state holds it, so the
            // descriptor polled above was never reused.
            if let Lazy::Waiting(..) = &*g {
                let Lazy::Waiting(l, opts) = std::mem::replace(&mut *g, Lazy::Done) else {
                    return;
                };
                match serve_unix_blocking(l, &p, *opts) {
                    Ok(proxy) => *g = Lazy::Running(proxy),
                    Err(e) => tracing::error!("egress proxy: {e}; refusing connections"),
                }
            }
        })
        .map_err(err)?;
    Ok(LazyProxy {
        state,
        wake,
        waiter: Some(waiter),
        path: path.to_path_buf(),
    })
}

impl LazyProxy {
    /// Whether a client has connected, so the runtime runs.
    pub fn started(&self) -> bool {
        matches!(
            *self.state.lock().unwrap_or_else(|e| e.into_inner()),
            Lazy::Running(_)
        )
    }

    /// Every record so far.
    pub fn records(&self) -> Vec<ConnectionRecord> {
        match &*self.state.lock().unwrap_or_else(|e| e.into_inner()) {
            Lazy::Running(p) => p.records(),
            _ => Vec::new(),
        }
    }

    /// Stops waiting (or serving) and takes the state: the waiting thread
    /// can no longer start the runtime afterwards. `join`: wait for that
    /// thread to be gone.
    fn stop(&mut self, join: bool) -> Lazy {
        use std::io::Write;
        // Taken before the wake-up, so that the woken thread finds nothing
        // to start (and does not start the runtime just to stop it).
        let taken = std::mem::replace(
            &mut *self.state.lock().unwrap_or_else(|e| e.into_inner()),
            Lazy::Done,
        );
        let _ = self.wake.write_all(b"x");
        if let Some(w) = self.waiter.take() {
            // Woken above, or already gone after starting the runtime.
            if join {
                let _ = w.join();
            }
        }
        taken
    }

    /// [`BlockingProxy::shutdown`]; without a runtime, removes the socket.
    pub fn shutdown(mut self) -> Vec<ConnectionRecord> {
        match self.stop(true) {
            Lazy::Running(p) => p.shutdown(),
            _ => {
                let _ = std::fs::remove_file(&self.path);
                Vec::new()
            }
        }
    }

    /// [`BlockingProxy::shutdown_background`]; without a runtime, removes
    /// the socket. The waiting thread is woken, not waited for.
    pub fn shutdown_background(mut self) -> Vec<ConnectionRecord> {
        match self.stop(false) {
            Lazy::Running(p) => p.shutdown_background(),
            _ => {
                let _ = std::fs::remove_file(&self.path);
                Vec::new()
            }
        }
    }
}

impl Drop for LazyProxy {
    fn drop(&mut self) {
        if self.waiter.is_some() {
            drop(self.stop(true));
        }
    }
}
