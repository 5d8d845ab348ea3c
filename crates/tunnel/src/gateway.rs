//! The public side: accepts links from connectors and agent requests, and
//! relays each agent request as one HTTP/2 stream down a live link.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::events::TunnelEvent;
use crate::link::{self, Hello, Welcome};
use crate::metrics::Metrics;
use crate::paths::{split_names, valid_name, valid_path};
use crate::state::{self, KeyGrant, LinkEvent, State};
use crate::{empty, full, is_hop_header, Body, BoxError, Error};

// A child module so the admin API reaches `Shared` without widening it.
#[path = "admin.rs"]
pub mod admin;

/// The agent connection's remote address, in each request's extensions.
#[derive(Clone, Copy)]
struct Peer(SocketAddr);

/// Everything the gateway needs; the CLI builds it from `gateway:`.
#[derive(Clone)]
pub struct GatewayOptions {
    /// Agent-facing address (`127.0.0.1:0` in tests).
    pub agent_listen: String,
    /// Connector-facing address.
    pub tunnel_listen: String,
    pub state_path: PathBuf,
    /// Gateway certificate chain and key (PEM) for links and, when
    /// `agent_tls`, the agent listener.
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
    pub agent_tls: bool,
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    pub assertion_ttl: Duration,
    /// Largest agent request body accepted (MCP requests are small).
    pub max_body: usize,
    /// Bearer key required for `/metrics` when set, and for the admin API.
    pub admin_key: Option<admin::AdminKey>,
    /// Admin API address (see admin.rs); `None`: no admin API.
    pub admin_listen: Option<String>,
    /// How long cached agent-key and tunnel lookups stay valid.
    pub cache_ttl: Duration,
    /// A quiet SSE response gets a `: keep-alive` comment this often.
    pub sse_keepalive: Duration,
    /// Receives link, auth-failure and routed-request events (audit).
    pub events: Option<Arc<dyn crate::events::EventSink>>,
    /// Identity-assertion nonces prepared ahead of need (0: sign each
    /// request from scratch); see docs/tunnel.md, Performance.
    pub presign: usize,
}

impl GatewayOptions {
    pub fn new(state_path: PathBuf, cert_pem: Vec<u8>, key_pem: Vec<u8>) -> GatewayOptions {
        GatewayOptions {
            agent_listen: "127.0.0.1:0".into(),
            tunnel_listen: "127.0.0.1:0".into(),
            state_path,
            cert_pem,
            key_pem,
            agent_tls: true,
            ping_interval: Duration::from_secs(4),
            ping_timeout: Duration::from_secs(10),
            assertion_ttl: Duration::from_secs(60),
            max_body: 4 << 20,
            admin_key: None,
            admin_listen: None,
            cache_ttl: Duration::from_secs(1),
            sse_keepalive: Duration::from_secs(15),
            events: None,
            presign: 32,
        }
    }
}

struct LinkSlot {
    id: u64,
    connector: String,
    index: u32,
    /// The link's HTTP/2 client handle, driven with `h2` directly from each
    /// agent request's own task: hyper's client would add a task per request
    /// and a channel hop each way (see docs/tunnel.md, Performance).
    sender: h2::client::SendRequest<Bytes>,
    /// Set once the link refused a new stream (GOAWAY, closed) or ended.
    closed: AtomicBool,
    inflight: AtomicUsize,
}

impl LinkSlot {
    fn is_closed(&self) -> bool {
        self.closed.load(Relaxed)
    }
}

struct Shared {
    opts: GatewayOptions,
    state: Mutex<State>,
    signer: airlock_identity::Signer,
    links: Mutex<HashMap<String, Vec<Arc<LinkSlot>>>>,
    next_link: AtomicU64,
    next_req: AtomicU64,
    /// Identity nonces used by routed requests and not yet replaced.
    nonces_owed: AtomicUsize,
    /// The idle-priority thread that refills the nonce pool (see
    /// `NonceMaker`); unset when the pool is off or the thread could not
    /// be started.
    nonce_maker: std::sync::OnceLock<NonceMaker>,
    /// Random per run; the suffix of every request id.
    boot_id: String,
    metrics: Metrics,
    key_cache: Mutex<HashMap<String, (Instant, Option<KeyGrant>)>>,
    tunnel_cache: Mutex<HashMap<String, (Instant, bool)>>,
    nobody_ca: Vec<u8>,
    /// The agent listener is on loopback: same-origin requests must name loopback.
    agent_loopback: bool,
}

/// A running gateway.
pub struct Gateway {
    pub agent_addr: SocketAddr,
    pub tunnel_addr: SocketAddr,
    /// The admin API's address, when it is enabled.
    pub admin_addr: Option<SocketAddr>,
    /// The Ed25519 key `airlock mcp` trusts for identity assertions.
    pub public_key: airlock_identity::PublicKey,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Gateway {
    pub async fn start(opts: GatewayOptions) -> Result<Gateway, Error> {
        let mut st = State::open(&opts.state_path)?;
        let signer = st.signing_key()?.with_presign(opts.presign);
        // The initial fill, ~18 µs per nonce; later the pool is refilled in
        // idle time (`NonceMaker`) or, when there is none, per request
        // (`Refill`).
        signer.presign(opts.presign);
        // Fail at start, not on first link, if the certificate is unusable.
        crate::tls::agent_server_config(&opts.cert_pem, &opts.key_pem)?;
        let agent_l = listen(&opts.agent_listen, "agents").await?;
        let tunnel_l = listen(&opts.tunnel_listen, "connectors' links").await?;
        let admin_l = match &opts.admin_listen {
            // Fail closed: an admin API nobody could authenticate to is a
            // configuration mistake, not an open door.
            Some(_) if opts.admin_key.is_none() => {
                return Err(Error::Config("the admin API needs an admin key".into()))
            }
            Some(a) => Some(listen(a, "the admin API").await?),
            None => None,
        };
        let agent_loopback = agent_l.local_addr()?.ip().is_loopback();
        let shared = Arc::new(Shared {
            agent_loopback,
            state: Mutex::new(st),
            signer,
            links: Mutex::new(HashMap::new()),
            next_link: AtomicU64::new(1),
            next_req: AtomicU64::new(1),
            nonces_owed: AtomicUsize::new(0),
            nonce_maker: std::sync::OnceLock::new(),
            boot_id: {
                let mut r = [0u8; 8];
                ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut r)
                    .map_err(|_| Error::State("no randomness for the boot id".into()))?;
                hex(&r)
            },
            metrics: Metrics::default(),
            key_cache: Mutex::new(HashMap::new()),
            tunnel_cache: Mutex::new(HashMap::new()),
            nobody_ca: crate::certs::Ca::generate("airlock: no tunnel registered")?
                .pem()
                .cert
                .into_bytes(),
            opts,
        });
        if shared.signer.presign_capacity() > 0 {
            if let Some(m) = NonceMaker::start(&shared) {
                let _ = shared.nonce_maker.set(m);
            }
        }
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let agent_addr = agent_l.local_addr()?;
        let tunnel_addr = tunnel_l.local_addr()?;
        tasks.spawn(accept_links(shared.clone(), tunnel_l, stop_rx.clone()));
        tasks.spawn(accept_agents(shared.clone(), agent_l, stop_rx.clone()));
        let admin_addr = match admin_l {
            Some(l) => {
                let a = l.local_addr()?;
                tasks.spawn(admin::serve(shared.clone(), l, stop_rx.clone()));
                Some(a)
            }
            None => None,
        };
        tasks.spawn(sweep(shared.clone(), stop_rx));
        Ok(Gateway {
            agent_addr,
            tunnel_addr,
            admin_addr,
            public_key: shared.signer.public_key(),
            shared,
            stop,
            tasks,
        })
    }

    /// Live links per tunnel.
    pub fn links_up(&self) -> BTreeMap<String, usize> {
        links_up(&self.shared)
    }

    /// Identity nonces prepared and not yet used (diagnostics, tests).
    pub fn nonces_ready(&self) -> usize {
        self.shared.signer.presigned()
    }

    /// Stops accepting and closes every link and agent connection.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Ok(mut l) = self.shared.links.lock() {
            l.clear();
        }
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }
}

fn links_up(shared: &Shared) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    if let Ok(l) = shared.links.lock() {
        for (t, v) in l.iter() {
            out.insert(t.clone(), v.iter().filter(|s| !s.is_closed()).count());
        }
    }
    out
}

fn emit(shared: &Shared, e: TunnelEvent) {
    if let Some(sink) = &shared.opts.events {
        sink.record(e);
    }
}

fn auth_failed(
    shared: &Shared,
    reason: &'static str,
    grant: Option<&KeyGrant>,
    tunnel: Option<&str>,
    route: Option<&str>,
) {
    shared.metrics.agent_auth_failures.fetch_add(1, Relaxed);
    emit(
        shared,
        TunnelEvent::AgentAuthFailed {
            reason,
            key_id: grant.map(|g| g.id.clone()),
            agent: grant.map(|g| g.agent.clone()),
            tunnel: tunnel.map(String::from),
            route: route.map(String::from),
        },
    );
}

fn record(
    shared: &Shared,
    tunnel: &str,
    connector: &str,
    link: u32,
    event: &str,
    peer: SocketAddr,
    detail: &str,
) {
    let e = LinkEvent {
        at: state::now(),
        tunnel: tunnel.into(),
        connector: connector.into(),
        link,
        event: event.into(),
        peer: peer.to_string(),
        detail: detail.into(),
    };
    emit(
        shared,
        TunnelEvent::Link {
            tunnel: e.tunnel.clone(),
            connector: e.connector.clone(),
            link,
            event: e.event.clone(),
            peer: e.peer.clone(),
            detail: e.detail.clone(),
        },
    );
    match shared.state.lock() {
        Ok(st) => {
            if let Err(err) = st.record_link_event(&e) {
                tracing::warn!(%err, "cannot record link event");
            }
        }
        Err(_) => tracing::warn!("state lock poisoned; link event not recorded"),
    }
    tracing::info!(target: "airlock::tunnel", tunnel, connector, link, event, %peer, detail, "link event");
}

async fn until_stopped(mut stop: watch::Receiver<bool>) {
    while !*stop.borrow() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

// ---------------------------------------------------------------- links

async fn accept_links(shared: Arc<Shared>, l: TcpListener, stop: watch::Receiver<bool>) {
    loop {
        let (tcp, peer) = tokio::select! {
            r = l.accept() => match r {
                Ok(x) => x,
                Err(e) => { tracing::warn!(%e, "link accept failed"); tokio::time::sleep(Duration::from_millis(50)).await; continue; }
            },
            _ = until_stopped(stop.clone()) => return,
        };
        let shared = shared.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                r = serve_link(shared.clone(), tcp, peer) => if let Err(e) = r {
                    tracing::debug!(%peer, %e, "link ended");
                },
                _ = until_stopped(stop) => {}
            }
        });
    }
}

async fn serve_link(shared: Arc<Shared>, tcp: TcpStream, peer: SocketAddr) -> Result<(), Error> {
    let _ = tcp.set_nodelay(true);
    let cfg = {
        let st = shared
            .state
            .lock()
            .map_err(|_| Error::State("lock poisoned".into()))?;
        let mut cas = st.all_active_cas()?;
        if cas.is_empty() {
            // Nothing may connect; a CA nobody holds makes the handshake fail
            // with a certificate alert, which connectors treat as fatal.
            cas.push(shared.nobody_ca.clone());
        }
        crate::tls::link_server_config(&shared.opts.cert_pem, &shared.opts.key_pem, &cas)?
    };
    let mut tls = match tokio::time::timeout(
        Duration::from_secs(10),
        TlsAcceptor::from(cfg).accept(link::ReadAhead::new(tcp)),
    )
    .await
    {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => {
            shared.metrics.link_auth_failures.fetch_add(1, Relaxed);
            record(&shared, "-", "-", 0, "tls_failed", peer, &e.to_string());
            return Err(e.into());
        }
        Err(_) => return Err(Error::Protocol("TLS handshake timed out".into())),
    };
    let hello: Hello = tokio::time::timeout(Duration::from_secs(10), link::read_frame(&mut tls))
        .await
        .map_err(|_| Error::Protocol("no hello within 10s".into()))??;
    let peer_certs: Vec<CertificateDer<'static>> = tls
        .get_ref()
        .1
        .peer_certificates()
        .map(|c| c.to_vec())
        .unwrap_or_default();
    if let Err(why) = authenticate_link(&shared, &hello, &peer_certs) {
        shared.metrics.link_auth_failures.fetch_add(1, Relaxed);
        record(
            &shared,
            &hello.tunnel,
            &hello.connector,
            hello.link,
            "auth_failed",
            peer,
            &why,
        );
        let w = Welcome {
            ok: false,
            fatal: true,
            error: why.clone(),
            link_id: 0,
        };
        let _ = link::write_frame(&mut tls, &w).await;
        let _ = tokio::io::AsyncWriteExt::shutdown(&mut tls).await;
        return Err(Error::Auth(why));
    }
    let id = shared.next_link.fetch_add(1, Relaxed);
    link::write_frame(
        &mut tls,
        &Welcome {
            ok: true,
            fatal: false,
            error: String::new(),
            link_id: id,
        },
    )
    .await?;

    // The same settings hyper's client used here (its defaults for what is
    // not set): 1 MiB per stream, 8 MiB per link, 64 KiB frames, no push.
    let (sender, mut conn) = h2::client::Builder::new()
        .initial_window_size(1 << 20)
        .initial_connection_window_size(8 << 20)
        .max_frame_size(64 << 10)
        .max_header_list_size(16 << 10)
        .max_send_buffer_size(1 << 20)
        .initial_max_send_streams(100)
        .enable_push(false)
        .handshake::<_, Bytes>(tls)
        .await
        .map_err(h2_error)?;
    let pings = conn
        .ping_pong()
        .ok_or_else(|| Error::Protocol("HTTP/2 keep-alive unavailable".into()))?;
    let slot = Arc::new(LinkSlot {
        id,
        connector: hello.connector.clone(),
        index: hello.link,
        sender,
        closed: AtomicBool::new(false),
        inflight: AtomicUsize::new(0),
    });
    let replaced = {
        let mut links = shared
            .links
            .lock()
            .map_err(|_| Error::State("lock poisoned".into()))?;
        let v = links.entry(hello.tunnel.clone()).or_default();
        // A reconnect of the same connector link replaces the old one at once.
        let before = v.len();
        v.retain(|s| !(s.connector == slot.connector && s.index == slot.index));
        let replaced = before != v.len();
        // The map holds this link's only handle: removing it (archive,
        // replacement) closes the link once its in-flight streams end.
        v.push(slot);
        replaced
    };
    record(
        &shared,
        &hello.tunnel,
        &hello.connector,
        hello.link,
        if replaced { "replaced" } else { "up" },
        peer,
        &format!("link {id}"),
    );
    let conn = Refill {
        conn,
        shared: &shared,
    };
    let res = tokio::select! {
        r = conn => r.map_err(h2_error),
        r = keep_alive(pings, shared.opts.ping_interval, shared.opts.ping_timeout) => r,
    };
    slot_closed(&shared, &hello.tunnel, id);
    if let Ok(mut links) = shared.links.lock() {
        if let Some(v) = links.get_mut(&hello.tunnel) {
            v.retain(|s| s.id != id);
        }
    }
    let detail = match &res {
        Ok(()) => "closed".to_string(),
        Err(e) => e.to_string(),
    };
    record(
        &shared,
        &hello.tunnel,
        &hello.connector,
        hello.link,
        "down",
        peer,
        &detail,
    );
    Ok(())
}

/// A link's HTTP/2 connection future that, each time it has done its work
/// and waits (typically right after writing a request out), replaces one
/// identity nonce a routed request used: ~18 µs that then run while the
/// request crosses the link and the private side works on it, not before
/// the request is written. Making the nonce in the request's own task
/// needed a `yield` first so that this task could write, and each yield
/// woke the runtime's other worker (a futex wake and a park per request:
/// ~30 µs of CPU; see docs/tunnel.md, Performance).
struct Refill<'a, C> {
    conn: C,
    shared: &'a Shared,
}

impl<C: Future + Unpin> Future for Refill<'_, C> {
    type Output = C::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<C::Output> {
        let r = Pin::new(&mut self.conn).poll(cx);
        if r.is_pending() {
            let sh = self.shared;
            // One nonce per request sent, never a burst: a request arriving
            // meanwhile waits at most one nonce's time for this worker.
            // With the idle thread running, only once the pool runs low
            // (the machine has had no idle time for it).
            let cap = sh.signer.presign_capacity();
            let low = if sh.nonce_maker.get().is_some() {
                cap / 4
            } else {
                cap
            };
            if sh.nonces_owed.load(Relaxed) > 0
                && sh
                    .nonces_owed
                    .fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1))
                    .is_ok()
                && sh.signer.presigned() < low
            {
                sh.signer.presign(1);
            }
        }
        r
    }
}

/// A thread that refills the identity nonce pool at `SCHED_IDLE` priority:
/// it runs only when a CPU would otherwise idle and gives way at once to
/// any other thread that wakes, so the ~18 µs per nonce leave the request
/// path whenever the machine has any idle time. Woken when a request
/// leaves the pool half empty (a futex wake per half a pool, not per
/// request); when it gets no CPU, `Refill` keeps the pool from running
/// dry, and an empty pool still signs (ring's ordinary Ed25519).
struct NonceMaker {
    thread: std::thread::Thread,
    stop: Arc<AtomicBool>,
    /// Set while the thread is parked (or about to park) with a full pool.
    asleep: Arc<AtomicBool>,
}

impl NonceMaker {
    fn start(shared: &Arc<Shared>) -> Option<NonceMaker> {
        let stop = Arc::new(AtomicBool::new(false));
        let asleep = Arc::new(AtomicBool::new(false));
        let (weak, stop2, asleep2) = (Arc::downgrade(shared), stop.clone(), asleep.clone());
        let h = std::thread::Builder::new()
            .name("airlock-nonces".into())
            .spawn(move || {
                // Per thread on Linux; if refused, a normal-priority thread
                // still only works when woken, which is no worse.
                let p = libc::sched_param { sched_priority: 0 };
                // SAFETY: plain system call on this thread, valid argument.
                unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &p) };
                while !stop2.load(Relaxed) {
                    // The gateway is not kept alive by this thread beyond
                    // one nonce.
                    let low = loop {
                        if stop2.load(Relaxed) {
                            return;
                        }
                        match weak.upgrade() {
                            Some(sh) if sh.signer.presign(1) == 1 => {}
                            Some(sh) => break sh.signer.presign_capacity() / 2,
                            None => return,
                        }
                    };
                    asleep2.store(true, SeqCst);
                    // A request that took nonces between the fill and the
                    // flag saw no sleeper to wake: look again first.
                    let half_empty = weak
                        .upgrade()
                        .is_some_and(|sh| sh.signer.presigned() <= low);
                    if !half_empty {
                        std::thread::park();
                    }
                    asleep2.store(false, SeqCst);
                }
            })
            .ok()?;
        Some(NonceMaker {
            thread: h.thread().clone(),
            stop,
            asleep,
        })
    }

    /// Called after each signature: wakes the sleeping thread once the pool
    /// is half empty.
    fn used(&self, signer: &airlock_identity::Signer) {
        if signer.presigned() <= signer.presign_capacity() / 2 && self.asleep.swap(false, SeqCst) {
            self.thread.unpark();
        }
    }
}

impl Drop for NonceMaker {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        self.thread.unpark();
    }
}

fn h2_error(e: h2::Error) -> Error {
    Error::Protocol(format!("HTTP/2: {e}"))
}

fn slot_closed(shared: &Shared, tunnel: &str, id: u64) {
    if let Ok(links) = shared.links.lock() {
        for s in links.get(tunnel).into_iter().flatten() {
            if s.id == id {
                s.closed.store(true, Relaxed);
            }
        }
    }
}

/// PINGs the connector every `every`, busy or idle; a PONG not back within
/// `timeout` ends the link (a silent cut is noticed within both).
async fn keep_alive(
    mut pings: h2::PingPong,
    every: Duration,
    timeout: Duration,
) -> Result<(), Error> {
    loop {
        tokio::time::sleep(every).await;
        match tokio::time::timeout(timeout, pings.ping(h2::Ping::opaque())).await {
            Ok(Ok(_pong)) => {}
            Ok(Err(e)) => return Err(h2_error(e)),
            Err(_) => return Err(Error::Protocol("keep-alive ping timed out".into())),
        }
    }
}

fn authenticate_link(
    shared: &Shared,
    h: &Hello,
    certs: &[CertificateDer<'static>],
) -> Result<(), String> {
    if h.v != link::VERSION {
        return Err(format!(
            "link protocol version {} is not supported (this gateway speaks {})",
            h.v,
            link::VERSION
        ));
    }
    if !valid_name(&h.tunnel) || h.connector.is_empty() || h.connector.len() > 253 {
        return Err("malformed tunnel or connector name".into());
    }
    let st = shared
        .state
        .lock()
        .map_err(|_| "gateway state unavailable".to_string())?;
    if !st.is_active(&h.tunnel).map_err(|e| e.to_string())? {
        return Err(format!(
            "tunnel `{}` does not exist or is archived",
            h.tunnel
        ));
    }
    let cas = st.tunnel_cas(&h.tunnel).map_err(|e| e.to_string())?;
    crate::tls::verify_client_for_tunnel(certs, &cas).map_err(|e| e.to_string())?;
    if !st
        .check_token(&h.tunnel, &h.token)
        .map_err(|e| e.to_string())?
    {
        return Err(format!(
            "tunnel token rejected for `{}` (rotated, expired or wrong)",
            h.tunnel
        ));
    }
    Ok(())
}

/// Drops links of tunnels archived while connected.
async fn sweep(shared: Arc<Shared>, stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = until_stopped(stop.clone()) => return,
        }
        let tunnels: Vec<String> = match shared.links.lock() {
            Ok(l) => l.keys().cloned().collect(),
            Err(_) => return,
        };
        for t in tunnels {
            let active = shared
                .state
                .lock()
                .ok()
                .and_then(|st| st.is_active(&t).ok())
                .unwrap_or(false);
            if !active {
                if let Ok(mut l) = shared.links.lock() {
                    l.remove(&t);
                }
                tracing::info!(tunnel = %t, "tunnel archived: links dropped");
            }
        }
    }
}

// ---------------------------------------------------------------- agents

async fn accept_agents(shared: Arc<Shared>, l: TcpListener, stop: watch::Receiver<bool>) {
    let tls = if shared.opts.agent_tls {
        match crate::tls::agent_server_config(&shared.opts.cert_pem, &shared.opts.key_pem) {
            Ok(c) => Some(TlsAcceptor::from(c)),
            Err(e) => {
                tracing::error!(%e, "agent listener TLS config");
                return;
            }
        }
    } else {
        None
    };
    accept_loop(l, tls, stop, "agent", AgentConns(shared)).await;
}

/// Serves one accepted connection (agent or admin); see `accept_loop`.
trait ServeConn: Clone + Send + 'static {
    fn serve<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
        self,
        io: S,
        peer: SocketAddr,
    ) -> impl Future<Output = ()> + Send;
}

#[derive(Clone)]
struct AgentConns(Arc<Shared>);

impl ServeConn for AgentConns {
    fn serve<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
        self,
        io: S,
        peer: SocketAddr,
    ) -> impl Future<Output = ()> + Send {
        serve_agent_conn(self.0, io, peer)
    }
}

/// Accepts connections on `l` until the gateway stops, each in a task of
/// its own: behind TLS when `tls` is set (handshake within 10 s, or the
/// connection is dropped), then handed to `conns`. `what` names the
/// listener in logs.
async fn accept_loop<C: ServeConn>(
    l: TcpListener,
    tls: Option<TlsAcceptor>,
    stop: watch::Receiver<bool>,
    what: &'static str,
    conns: C,
) {
    loop {
        let (tcp, peer) = tokio::select! {
            r = l.accept() => match r {
                Ok(x) => x,
                Err(e) => { tracing::warn!(%e, "{what} accept failed"); tokio::time::sleep(Duration::from_millis(50)).await; continue; }
            },
            _ = until_stopped(stop.clone()) => return,
        };
        let _ = tcp.set_nodelay(true);
        let conns = conns.clone();
        let tls = tls.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let fut = async {
                match tls {
                    Some(acc) => {
                        if let Ok(Ok(s)) =
                            tokio::time::timeout(Duration::from_secs(10), acc.accept(tcp)).await
                        {
                            conns.serve(s, peer).await
                        }
                    }
                    None => conns.serve(tcp, peer).await,
                }
            };
            tokio::select! { _ = fut => {}, _ = until_stopped(stop) => {} }
        });
    }
}

async fn serve_agent_conn<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    shared: Arc<Shared>,
    io: S,
    peer: SocketAddr,
) {
    let svc = service_fn(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(Peer(peer));
        let shared = shared.clone();
        // Boxed: hyper sizes each stream's task for its service future;
        // boxing frees the routing state once the response head is out, so
        // an open (SSE) stream holds only its relay.
        Box::pin(async move { Ok::<_, Infallible>(handle(shared, req).await) })
    });
    let mut b = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    // Long-lived SSE streams count against this; hyper's default is 200.
    b.http2().max_concurrent_streams(1024);
    // Slow clients cannot hold a connection open forever sending headers.
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30));
    // hyper's HTTP/1 server wakes its own task for every request body the
    // service reads (`Absorbing` in `route`); re-polled at once instead of
    // a runtime round trip (see wake.rs).
    let conn = b.serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    let _ = crate::wake::RepollOnSelfWake::new(conn.as_mut()).await;
}

fn status(code: StatusCode) -> Response<Body> {
    let mut r = Response::new(empty());
    *r.status_mut() = code;
    r
}

fn text(code: StatusCode, body: &'static str) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = code;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn unauthorized() -> Response<Body> {
    let mut r = status(StatusCode::UNAUTHORIZED);
    r.headers_mut().insert(
        http::header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer"),
    );
    r
}

/// A JSON-RPC error answer carrying the request's id, for MCP clients.
fn rpc_error(code: StatusCode, id: &serde_json::Value, message: &str) -> Response<Body> {
    let body = serde_json::json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32000, "message": message}});
    let mut r = Response::new(full(body.to_string()));
    *r.status_mut() = code;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn bearer(req: &Request<Incoming>) -> Option<(String, bool)> {
    if let Some(v) = req
        .headers()
        .get("airlock-key")
        .and_then(|v| v.to_str().ok())
    {
        return Some((v.trim().to_string(), false));
    }
    let v = req
        .headers()
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, key) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| (key.trim().to_string(), true))
}

fn lookup_key(shared: &Shared, key: &str) -> Option<KeyGrant> {
    let ttl = shared.opts.cache_ttl;
    if let Ok(c) = shared.key_cache.lock() {
        if let Some((at, g)) = c.get(key) {
            if at.elapsed() < ttl {
                return g.clone();
            }
        }
    }
    // Any state error counts as "no key" (fail closed).
    let g = shared
        .state
        .lock()
        .ok()
        .and_then(|st| st.check_key(key).ok().flatten());
    if let Ok(mut c) = shared.key_cache.lock() {
        if c.len() > 10_000 {
            c.clear();
        }
        c.insert(key.to_string(), (Instant::now(), g.clone()));
    }
    g
}

fn tunnel_active(shared: &Shared, tunnel: &str) -> bool {
    if let Ok(c) = shared.tunnel_cache.lock() {
        if let Some((at, a)) = c.get(tunnel) {
            if at.elapsed() < shared.opts.cache_ttl {
                return *a;
            }
        }
    }
    let a = shared
        .state
        .lock()
        .ok()
        .and_then(|st| st.is_active(tunnel).ok())
        .unwrap_or(false);
    if let Ok(mut c) = shared.tunnel_cache.lock() {
        c.insert(tunnel.to_string(), (Instant::now(), a));
    }
    a
}

fn pick_link(shared: &Shared, tunnel: &str, exclude: &[u64]) -> Option<Arc<LinkSlot>> {
    let mut links = shared.links.lock().ok()?;
    let v = links.get_mut(tunnel)?;
    v.retain(|s| !s.is_closed());
    v.iter()
        .filter(|s| !exclude.contains(&s.id))
        .min_by_key(|s| s.inflight.load(Relaxed))
        .cloned()
}

/// Unique per gateway run (counter) and across runs (random boot id drawn
/// at start), without a system call per request. Replay checks need ids
/// never reused; an id cannot be forged either way, it is signed.
fn request_id(shared: &Shared) -> String {
    format!(
        "{:x}-{}",
        shared.next_req.fetch_add(1, Relaxed),
        shared.boot_id
    )
}

/// What an identity assertion binds besides its request id: agent,
/// tunnel, route, MCP session.
type Bound = (String, String, String, Option<String>);

fn sign_assertion(shared: &Shared, b: &Bound) -> Result<(String, String), ()> {
    let rid = request_id(shared);
    let claims = airlock_identity::Claims {
        agent: b.0.clone(),
        tunnel: b.1.clone(),
        route: b.2.clone(),
        request_id: rid.clone(),
        session: b.3.clone(),
    };
    let a = shared
        .signer
        .sign(&claims, shared.opts.assertion_ttl, SystemTime::now())
        .map_err(|_| ())?;
    Ok((rid, a))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let start = Instant::now();
    let resp = route(&shared, req, start).await;
    shared
        .metrics
        .request(resp.status().as_u16(), start.elapsed());
    resp
}

async fn route(shared: &Arc<Shared>, req: Request<Incoming>, start: Instant) -> Response<Body> {
    let path = req.uri().path().to_string();
    match path.as_str() {
        "/healthz" => return text(StatusCode::OK, "ok\n"),
        "/metrics" => {
            if let Some(admin) = &shared.opts.admin_key {
                let ok = bearer(&req).is_some_and(|(k, _)| admin.verify(&k));
                if !ok {
                    return unauthorized();
                }
            }
            let mut r = Response::new(full(shared.metrics.render(&links_up(shared))));
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            return r;
        }
        _ => {}
    }
    // DNS rebinding: the upstream cannot check Host/Origin once the
    // connector has rewritten Host, so the gateway does (see origin.rs).
    let drop_origin = match crate::origin::judge(&req, shared.agent_loopback) {
        crate::origin::Origin::Rebound => {
            tracing::info!(target: "airlock::tunnel", "same-origin request naming a non-loopback Host on the loopback listener refused (DNS rebinding)");
            let remote = req.extensions().get::<Peer>().map(|p| p.0);
            emit(shared, crate::origin::rebound_event(&req, remote));
            return status(StatusCode::FORBIDDEN);
        }
        crate::origin::Origin::Drop => true,
        crate::origin::Origin::Forward => false,
    };
    // Layer 1 before anything that could reveal which tunnels exist.
    let Some((key, key_in_authorization)) = bearer(&req) else {
        auth_failed(shared, "no_key", None, None, None);
        return unauthorized();
    };
    let Some(grant) = lookup_key(shared, &key) else {
        auth_failed(shared, "bad_key", None, None, None);
        return unauthorized();
    };
    let Some(rest) = path.strip_prefix("/t") else {
        return status(StatusCode::NOT_FOUND);
    };
    let Some((names, sub)) = split_names(rest, 2) else {
        return status(StatusCode::NOT_FOUND);
    };
    let (tunnel, route_name) = (names[0].to_string(), names[1].to_string());
    if !grant.allows(&tunnel, &route_name) {
        auth_failed(
            shared,
            "out_of_scope",
            Some(&grant),
            Some(&tunnel),
            Some(&route_name),
        );
        tracing::info!(target: "airlock::tunnel", agent = %grant.agent, key = %grant.id, %tunnel, route = %route_name, "agent key not scoped to this tunnel/route");
        return status(StatusCode::FORBIDDEN);
    }
    if !valid_path(sub) {
        return status(StatusCode::BAD_REQUEST);
    }
    if !tunnel_active(shared, &tunnel) {
        return status(StatusCode::NOT_FOUND);
    }
    let sub = sub.to_string();
    let (parts, body) = req.into_parts();
    // MCP requests are small: buffer them so a failed link can be answered
    // with the JSON-RPC id, and so nothing is half-sent when a link dies.
    // Absorbing: hyper's body channel wakes the connection's own task as
    // the body is taken (see wake.rs).
    let collect = crate::wake::Absorbing(Limited::new(body, shared.opts.max_body).collect());
    let Ok(collected) = tokio::time::timeout(Duration::from_secs(30), collect).await else {
        return status(StatusCode::REQUEST_TIMEOUT);
    };
    let body = match collected {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                return status(StatusCode::PAYLOAD_TOO_LARGE);
            }
            return status(StatusCode::BAD_REQUEST);
        }
    };
    let (rpc_id, body_method) = jsonrpc_fields(&parts.headers, &body);
    let session = parts
        .headers
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let bound: Bound = (
        grant.agent.clone(),
        tunnel.clone(),
        route_name.clone(),
        session.clone(),
    );
    // Layer 3: every request gets its own signed assertion (own request
    // id), in this task: ~1.5 µs from a prepared nonce, ~25 µs when the
    // pool is empty. (Signing whole assertions ahead on another thread was
    // tried and measured slower: the hand-off cost more than it saved.)
    let (rid, assertion) = match sign_assertion(shared, &bound) {
        Ok(x) => x,
        Err(_) => return status(StatusCode::INTERNAL_SERVER_ERROR),
    };
    // The nonce it used is replaced by a link's connection task once that
    // has written the request out (see `Refill`).
    if shared.signer.presign_capacity() > 0 {
        shared.nonces_owed.fetch_add(1, Relaxed);
    }
    if let Some(m) = shared.nonce_maker.get() {
        m.used(&shared.signer);
    }
    let mcp_method = parts
        .headers
        .get("mcp-method")
        .and_then(|v| v.to_str().ok())
        .map(String::from)
        .or(body_method);
    let routed_event = |status: StatusCode| TunnelEvent::Routed {
        agent: grant.agent.clone(),
        key_id: grant.id.clone(),
        tunnel: tunnel.clone(),
        route: route_name.clone(),
        request_id: rid.clone(),
        http_method: parts.method.to_string(),
        mcp_method: mcp_method.clone(),
        mcp_session: session.clone(),
        status: status.as_u16(),
        duration: start.elapsed(),
    };
    // Built only when a sink is listening.
    let routed = |status: StatusCode| {
        if let Some(sink) = &shared.opts.events {
            sink.record(routed_event(status));
        }
    };
    let query = parts
        .uri
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let target = if sub.is_empty() {
        format!("/{route_name}{query}")
    } else {
        format!("/{route_name}/{sub}{query}")
    };
    let uri = match http::Uri::builder()
        .scheme("http")
        .authority("connector.airlock")
        .path_and_query(target)
        .build()
    {
        Ok(u) => u,
        Err(_) => return status(StatusCode::BAD_REQUEST),
    };
    // Built for each attempt (almost always one), not copied per attempt.
    let build_headers = || {
        let mut headers = http::HeaderMap::with_capacity(parts.headers.len() + 2);
        for (name, value) in parts.headers.iter() {
            if is_hop_header(name)
                || name == "airlock-key"
                || name == airlock_identity::HEADER
                || name == "airlock-request-id"
                || (key_in_authorization && name == http::header::AUTHORIZATION)
                || (drop_origin && name == http::header::ORIGIN)
            {
                continue;
            }
            headers.append(name.clone(), value.clone());
        }
        // Both differ on every request: HPACK "never indexed", so they
        // neither churn the link's header table (evicting the headers that
        // repeat) nor get compressed against other requests' (the assertion
        // is a credential).
        if let Ok(mut v) = HeaderValue::from_str(&assertion) {
            v.set_sensitive(true);
            headers.insert(airlock_identity::HEADER, v);
        }
        if let Ok(mut v) = HeaderValue::from_str(&rid) {
            v.set_sensitive(true);
            headers.insert("airlock-request-id", v);
        }
        headers
    };
    let head = |headers: http::HeaderMap| {
        let mut r = Request::new(());
        *r.method_mut() = parts.method.clone();
        *r.uri_mut() = uri.clone();
        *r.headers_mut() = headers;
        r
    };
    shared
        .metrics
        .bytes_up
        .fetch_add(body.len() as u64, Relaxed);

    // A request the link never accepted (closed, or GOAWAY: draining) may
    // go to another link; once on the wire it is never retried, because the
    // upstream may already have acted on it.
    let mut tried: Vec<u64> = Vec::new();
    let link_failed = |e: &dyn std::fmt::Display, link: u64| {
        shared.metrics.link_failures_midstream.fetch_add(1, Relaxed);
        routed(StatusCode::BAD_GATEWAY);
        tracing::warn!(target: "airlock::tunnel", %tunnel, route = %route_name, request = %rid, link, %e, "link failed before the response");
        match &rpc_id {
            Some(id) => rpc_error(StatusCode::BAD_GATEWAY, id, "airlock: the tunnel link failed before the response; the request's outcome is unknown"),
            None => text(StatusCode::BAD_GATEWAY, "tunnel link failed before the response\n"),
        }
    };
    let (guard, resp) = loop {
        let Some(slot) = pick_link(shared, &tunnel, &tried) else {
            let mut r = match &rpc_id {
                Some(id) => rpc_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    id,
                    "airlock: no live link to this tunnel; retry shortly",
                ),
                None => status(StatusCode::SERVICE_UNAVAILABLE),
            };
            r.headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
            routed(StatusCode::SERVICE_UNAVAILABLE);
            return r;
        };
        slot.inflight.fetch_add(1, Relaxed);
        let guard = Inflight(slot.clone());
        let mut sender = slot.sender.clone();
        // A fresh handle has no stream pending, so this only reports a
        // link that is closed or going away.
        if std::future::poll_fn(|cx| sender.poll_ready(cx))
            .await
            .is_err()
        {
            slot.closed.store(true, Relaxed);
            tried.push(slot.id);
            continue;
        }
        // A refused request may go to another link, with headers built anew.
        let (fut, mut send) = match sender.send_request(head(build_headers()), body.is_empty()) {
            Ok(x) => x,
            Err(e) if e.is_go_away() || e.is_io() || e.reason().is_some() => {
                // Refused before a stream existed: nothing was sent.
                slot.closed.store(true, Relaxed);
                tried.push(slot.id);
                continue;
            }
            Err(e) => return link_failed(&e, slot.id),
        };
        // The body is already in memory (at most max_body): h2 queues what
        // the stream window does not take yet and sends it as credit comes.
        if !body.is_empty() {
            if let Err(e) = send.send_data(body.clone(), true) {
                return link_failed(&e, slot.id);
            }
        }
        match fut.await {
            Ok(r) => break (guard, r),
            Err(e) => return link_failed(&e, slot.id),
        }
    };
    tracing::debug!(target: "airlock::tunnel", agent = %grant.agent, %tunnel, route = %route_name, request = %rid, status = resp.status().as_u16(), "routed");
    routed(resp.status());
    let (mut rparts, rbody) = resp.into_parts();
    let sse = rparts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    rparts.headers.retain_hop();
    if sse {
        rparts
            .headers
            .insert("x-accel-buffering", HeaderValue::from_static("no"));
    }
    let len = rparts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let body = Relay {
        inner: LinkBody {
            recv: rbody,
            data_done: false,
            done: false,
            len,
        },
        sse,
        rpc_id,
        failed: false,
        shared: shared.clone(),
        _guard: guard,
        tail: [0, 0],
        quiet: sse.then(|| Box::pin(tokio::time::sleep(shared.opts.sse_keepalive))),
    };
    Response::from_parts(rparts, body.boxed())
}

trait RetainHop {
    fn retain_hop(&mut self);
}

impl RetainHop for http::HeaderMap {
    fn retain_hop(&mut self) {
        let drop: Vec<_> = self.keys().filter(|k| is_hop_header(k)).cloned().collect();
        for k in drop {
            self.remove(k);
        }
    }
}

/// The JSON-RPC id and method of a single JSON-RPC message body.
fn jsonrpc_fields(
    h: &http::HeaderMap,
    body: &Bytes,
) -> (Option<serde_json::Value>, Option<String>) {
    let json = h
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    if !json || body.is_empty() {
        return (None, None);
    }
    // Only these fields: `params` is skipped, not built into a tree.
    #[derive(serde::Deserialize)]
    struct Message<'a> {
        jsonrpc: Option<serde::de::IgnoredAny>,
        // Present-but-null stays `Some(Null)`: the error answer echoes it.
        #[serde(default, deserialize_with = "present")]
        id: Option<serde_json::Value>,
        #[serde(default, borrow)]
        method: Option<std::borrow::Cow<'a, str>>,
    }
    fn present<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<serde_json::Value>, D::Error> {
        serde::Deserialize::deserialize(d).map(Some)
    }
    match serde_json::from_slice::<Message>(body) {
        Ok(m) if m.jsonrpc.is_some() => (m.id, m.method.map(|m| m.into_owned())),
        _ => (None, None),
    }
}

struct Inflight(Arc<LinkSlot>);
impl Drop for Inflight {
    fn drop(&mut self) {
        self.0.inflight.fetch_sub(1, Relaxed);
    }
}

/// A response body read straight off its link stream, in the agent
/// request's own task. Each chunk's flow-control credit goes back as it is
/// handed on, so at most a stream window is ever buffered.
struct LinkBody {
    recv: h2::RecvStream,
    data_done: bool,
    done: bool,
    /// What `Content-Length` says is left, for the agent side's framing.
    len: Option<u64>,
}

impl http_body::Body for LinkBody {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        if self.done {
            return Poll::Ready(None);
        }
        if !self.data_done {
            match std::task::ready!(self.recv.poll_data(cx)) {
                Some(Ok(d)) => {
                    let _ = self.recv.flow_control().release_capacity(d.len());
                    self.len = self.len.map(|n| n.saturating_sub(d.len() as u64));
                    return Poll::Ready(Some(Ok(Frame::data(d))));
                }
                // A reset that only says "stop" ends the body cleanly (as
                // hyper's client did); any other is a failure.
                Some(Err(e))
                    if matches!(e.reason(), Some(h2::Reason::NO_ERROR | h2::Reason::CANCEL)) =>
                {
                    self.done = true;
                    return Poll::Ready(None);
                }
                Some(Err(e)) => {
                    self.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                None => self.data_done = true,
            }
        }
        let r = std::task::ready!(self.recv.poll_trailers(cx));
        self.done = true;
        match r {
            Ok(Some(t)) => Poll::Ready(Some(Ok(Frame::trailers(t)))),
            Ok(None) => Poll::Ready(None),
            Err(e) if matches!(e.reason(), Some(h2::Reason::NO_ERROR | h2::Reason::CANCEL)) => {
                Poll::Ready(None)
            }
            Err(e) => Poll::Ready(Some(Err(e))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.recv.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self.len {
            Some(n) if !self.data_done => http_body::SizeHint::with_exact(n),
            _ => http_body::SizeHint::default(),
        }
    }
}

/// Streams the connector's response frame by frame (never buffered). If the
/// link dies mid-stream an SSE response ends with a JSON-RPC error event.
struct Relay {
    inner: LinkBody,
    sse: bool,
    rpc_id: Option<serde_json::Value>,
    failed: bool,
    shared: Arc<Shared>,
    _guard: Inflight,
    /// Last two bytes relayed, to insert text only at SSE line/event boundaries.
    tail: [u8; 2],
    /// Fires when an SSE stream has been quiet for `sse_keepalive`.
    quiet: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Relay {
    fn at_line_start(&self) -> bool {
        self.tail[1] == b'\n' || self.tail == [0, 0]
    }

    fn at_event_start(&self) -> bool {
        self.tail == [b'\n', b'\n'] || self.tail == [0, 0]
    }

    fn note(&mut self, d: &[u8]) {
        match d {
            [] => {}
            [b] => self.tail = [self.tail[1], *b],
            [.., a, b] => self.tail = [*a, *b],
        }
    }
}

impl http_body::Body for Relay {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.failed {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(f))) => {
                if let Some(d) = f.data_ref() {
                    self.shared
                        .metrics
                        .bytes_down
                        .fetch_add(d.len() as u64, Relaxed);
                    let d = d.clone();
                    self.note(&d);
                    let every = self.shared.opts.sse_keepalive;
                    if let Some(q) = self.quiet.as_mut() {
                        q.as_mut().reset(tokio::time::Instant::now() + every);
                    }
                }
                Poll::Ready(Some(Ok(f)))
            }
            Poll::Pending => {
                let every = self.shared.opts.sse_keepalive;
                let fired = match self.quiet.as_mut() {
                    Some(q) => q.as_mut().poll(cx).is_ready(),
                    None => false,
                };
                if !fired {
                    return Poll::Pending;
                }
                if let Some(q) = self.quiet.as_mut() {
                    q.as_mut().reset(tokio::time::Instant::now() + every);
                    // Register the new deadline with this task.
                    let _ = q.as_mut().poll(cx);
                }
                // A comment line never ends an event, so it is safe between
                // lines even in the middle of one.
                if self.at_line_start() {
                    self.note(b": keep-alive\n");
                    return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(
                        b": keep-alive\n",
                    )))));
                }
                Poll::Pending
            }
            Poll::Ready(Some(Err(e))) => {
                self.shared
                    .metrics
                    .link_failures_midstream
                    .fetch_add(1, Relaxed);
                self.failed = true;
                if self.sse {
                    let id = self.rpc_id.clone().unwrap_or(serde_json::Value::Null);
                    let msg = serde_json::json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32000,
                        "message": "airlock: the tunnel link failed mid-stream; the request's outcome is unknown"}});
                    // Close any half-sent line and event first.
                    let mut pre = String::new();
                    if !self.at_line_start() {
                        pre.push('\n');
                    }
                    if !self.at_event_start() {
                        pre.push('\n');
                    }
                    Poll::Ready(Some(Ok(Frame::data(Bytes::from(format!(
                        "{pre}event: message\ndata: {msg}\n\n"
                    ))))))
                } else {
                    Poll::Ready(Some(Err(Box::new(e))))
                }
            }
            other => other.map_err(|e| Box::new(e) as BoxError),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.failed || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Binds one of the gateway's listeners; the error names the address and
/// what it is for (a taken port is the usual cause).
async fn listen(addr: &str, what: &str) -> Result<TcpListener, Error> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Config(format!("cannot listen on {addr} for {what}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nonce_threads() -> usize {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| {
                std::fs::read_to_string(e.path().join("comm"))
                    .is_ok_and(|c| c.trim() == "airlock-nonces")
            })
            .count()
    }

    /// The idle-priority nonce thread runs at that priority and ends with
    /// its gateway (no thread left behind per gateway started).
    #[tokio::test]
    async fn the_nonce_thread_is_idle_priority_and_ends_with_the_gateway() {
        let dir = tempfile::tempdir().unwrap();
        let pem = crate::certs::Ca::generate("gw")
            .unwrap()
            .issue_server(&["localhost"])
            .unwrap();
        let opts = GatewayOptions::new(
            dir.path().join("state.db"),
            pem.cert.into_bytes(),
            pem.key.into_bytes(),
        );
        // Liveness bounds only (thread start and exit), not speed targets.
        let wait = |want: usize| async move {
            for _ in 0..1000 {
                if nonce_threads() == want {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            false
        };
        assert!(wait(0).await, "no other test here starts a gateway");
        let gw = Gateway::start(opts).await.unwrap();
        assert!(wait(1).await);
        let task = std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|e| e.ok())
            .find(|e| {
                std::fs::read_to_string(e.path().join("comm"))
                    .is_ok_and(|c| c.trim() == "airlock-nonces")
            })
            .unwrap();
        let tid: libc::pid_t = task.file_name().to_str().unwrap().parse().unwrap();
        // The thread sets its policy first thing once it runs.
        let mut policy = -1;
        for _ in 0..1000 {
            // SAFETY: a plain query of another thread's policy.
            policy = unsafe { libc::sched_getscheduler(tid) };
            if policy == libc::SCHED_IDLE {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(policy, libc::SCHED_IDLE);
        gw.shutdown().await;
        assert!(wait(0).await, "the nonce thread outlived its gateway");
    }

    #[test]
    fn jsonrpc_fields_of_requests_notifications_and_other_bodies() {
        let mut h = http::HeaderMap::new();
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let f = |b: &'static str| jsonrpc_fields(&h, &Bytes::from_static(b.as_bytes()));
        assert_eq!(
            f(
                r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"x","arguments":{"a":[1,{"b":null}]}}}"#
            ),
            (Some(serde_json::json!(7)), Some("tools/call".into()))
        );
        assert_eq!(
            f(r#"{"method":"a\"b","id":"s","jsonrpc":"2.0"}"#),
            (Some(serde_json::json!("s")), Some("a\"b".into()))
        );
        assert_eq!(
            f(r#"{"jsonrpc":"2.0","id":null,"result":{}}"#),
            (Some(serde_json::Value::Null), None)
        );
        assert_eq!(
            f(r#"{"jsonrpc":"2.0","method":"notifications/x"}"#),
            (None, Some("notifications/x".into()))
        );
        // Not JSON-RPC, not an object, not JSON.
        assert_eq!(f(r#"{"id":1,"method":"m"}"#), (None, None));
        assert_eq!(f(r#"[{"jsonrpc":"2.0","id":1}]"#), (None, None));
        assert_eq!(f("nope"), (None, None));
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain"),
        );
        assert_eq!(
            jsonrpc_fields(&h, &Bytes::from_static(br#"{"jsonrpc":"2.0","id":1}"#)),
            (None, None)
        );
    }
}
