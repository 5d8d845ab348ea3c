//! The egress proxy for jails started by this process (`airlock run`, the
//! agent toolset of `airlock mcp`): started outside every jail when the
//! config allows any host, with the interception CA when credentials are
//! injected, recording to the audit log when there is one.

use std::path::{Path, PathBuf};

use airlock_config::Config;
use airlock_jail::NetworkAccess;
use airlock_proxy::{BlockingProxy, ConnectionRecord, ProxyCredential, ProxyOptions};
use anyhow::Context;

/// A running proxy and what a jail needs to reach it.
pub struct Egress {
    proxy: BlockingProxy,
    /// Records go to an audit sink as connections end.
    audited: bool,
    pub access: NetworkAccess,
    /// The run's own directories and socket, removed at the end.
    dirs: Vec<PathBuf>,
}

/// Where the interception CA lives unless `--ca-dir` says otherwise.
pub fn default_ca_dir() -> PathBuf {
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("/var/lib"));
    base.join("airlock/ca")
}

/// The `sandbox:` section every jail this process builds from `config`
/// gets: the config's own rules plus, masked, every file a secret is read
/// from and the interception CA's directory (`ca_dir`, and the default one,
/// which an earlier run may have filled), whether or not this run injects
/// credentials: the jailed command runs as the user who owns them.
pub fn jail_sandbox(config: &Config, ca_dir: Option<&Path>) -> airlock_config::Sandbox {
    let mut ca = vec![default_ca_dir()];
    ca.extend(ca_dir.map(Path::to_path_buf));
    config.jail_sandbox(ca)
}

/// Starts the proxy, or returns `None` when the config allows no host (the
/// jail then has no network at all).
pub fn start(
    config: &Config,
    session: &str,
    audit: Option<&airlock_audit::AuditHandle>,
    ca_dir: Option<&Path>,
    upstream_ca: Option<&Path>,
) -> anyhow::Result<Option<Egress>> {
    prepare(config, session, audit, ca_dir, upstream_ca)?
        .map(Pending::start)
        .transpose()
}

/// A proxy whose socket path, credential, CA bundle and directories exist
/// but that neither listens nor serves yet: everything a jail needs to be
/// configured, so `airlock run` can start the jail first and the proxy
/// when the jail first connects out ([`Pending::start`] binds the socket).
pub struct Pending {
    opts: ProxyOptions,
    pub access: NetworkAccess,
    /// The run's own directories and socket, removed at the end.
    dirs: Vec<PathBuf>,
}

/// Everything of [`start`] but the serving; `None` when the config allows
/// no host.
pub fn prepare(
    config: &Config,
    session: &str,
    audit: Option<&airlock_audit::AuditHandle>,
    ca_dir: Option<&Path>,
    upstream_ca: Option<&Path>,
) -> anyhow::Result<Option<Pending>> {
    if config.sandbox.network.allow.is_empty() {
        return Ok(None);
    }
    // The socket goes into a directory of our own that every run reuses: a
    // mkdir and rmdir per run are slow in a busy ext4 /tmp. When that
    // directory is not plainly ours, the run gets a fresh one.
    let (sock, mut dirs) = match shared_socket_dir() {
        Some(d) => {
            let sock = d.join(format!("{}-{:x}.sock", std::process::id(), rand_u32()?));
            (sock, Vec::new())
        }
        None => {
            let d = tempdir_in(&std::env::temp_dir(), "airlock-egress", 0o700)?;
            (d.join("proxy.sock"), vec![d])
        }
    };
    match prepare_in(config, session, audit, ca_dir, upstream_ca, sock, &mut dirs) {
        Ok(p) => Ok(Some(p)),
        Err(e) => {
            remove_paths(&dirs);
            Err(e)
        }
    }
}

fn prepare_in(
    config: &Config,
    session: &str,
    audit: Option<&airlock_audit::AuditHandle>,
    ca_dir: Option<&Path>,
    upstream_ca: Option<&Path>,
    sock: PathBuf,
    dirs: &mut Vec<PathBuf>,
) -> anyhow::Result<Pending> {
    let cred = ProxyCredential::generate().context("generate the proxy credential")?;
    let mut opts = ProxyOptions::new(
        config.sandbox.network.clone(),
        config.credentials.clone(),
        cred.clone(),
    );
    opts.session = session.to_string();
    if let Some(h) = audit {
        opts.sink = Some(std::sync::Arc::new(crate::audit_sinks::ProxySink(
            h.clone(),
        )));
    }
    let mut ca_bundle = None;
    if !config.credentials.is_empty() {
        let dir = ca_dir.map(Path::to_path_buf).unwrap_or_else(default_ca_dir);
        let ca = airlock_proxy::ca::CertAuthority::load_or_create(&dir)
            .with_context(|| format!("interception CA in {}", dir.display()))?;
        // Not under /tmp: a jail has its own. /var/tmp is visible inside
        // (read-only), and only a public certificate goes there.
        let public = tempdir_in(Path::new("/var/tmp"), "airlock-egress-ca", 0o755)?;
        dirs.push(public.clone());
        let bundle = public.join("ca-bundle.pem");
        let system = std::fs::read_to_string(&opts.system_ca_file).unwrap_or_default();
        std::fs::write(&bundle, format!("{system}\n{}", ca.cert_pem()))
            .context("write the CA bundle")?;
        set_mode(&bundle, 0o644)?;
        ca_bundle = Some(bundle);
        opts.ca = Some(std::sync::Arc::new(ca));
    }
    if let Some(f) = upstream_ca {
        opts.upstream_ca_pem = Some(
            std::fs::read_to_string(f).with_context(|| format!("--upstream-ca {}", f.display()))?,
        );
    }
    Ok(Pending {
        opts,
        access: NetworkAccess {
            proxy_socket: sock,
            user: cred.user,
            password: cred.password,
            ca_bundle,
        },
        dirs: std::mem::take(dirs),
    })
}

impl Pending {
    /// Binds the socket and serves on it (a runtime and its threads);
    /// first removes the sockets that dead runs left in the shared socket
    /// directory. `airlock run` calls it on the jail's first connection
    /// (the relay connects once it returns), so a run that never connects
    /// makes no socket, and none of this is on its start or exit path.
    pub fn start(self) -> anyhow::Result<Egress> {
        self.serve()
    }

    /// The shared socket directory, when the socket is in one.
    fn shared_dir(&self) -> Option<PathBuf> {
        self.access
            .proxy_socket
            .parent()
            .filter(|d| {
                d.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(".airlock-egress-"))
            })
            .map(Path::to_path_buf)
    }

    fn serve(self) -> anyhow::Result<Egress> {
        if let Some(dir) = self.shared_dir() {
            sweep_stale_sockets(&dir);
        }
        let Pending {
            opts,
            access,
            mut dirs,
        } = self;
        let audited = opts.sink.is_some();
        // Removed with the rest if anything fails from here.
        dirs.push(access.proxy_socket.clone());
        let listener = match airlock_proxy::bind_unix(&access.proxy_socket) {
            Ok(l) => l,
            Err(e) => {
                remove_paths(&dirs);
                return Err(anyhow::Error::new(e).context("start the egress proxy"));
            }
        };
        match airlock_proxy::serve_unix_blocking(listener, &access.proxy_socket, opts) {
            Ok(proxy) => Ok(Egress {
                proxy,
                audited,
                access,
                dirs,
            }),
            Err(e) => {
                remove_paths(&dirs);
                Err(anyhow::Error::new(e).context("start the egress proxy"))
            }
        }
    }

    /// Gives up before serving: removes the socket and directories.
    pub fn abandon(self) {
        remove_paths(&self.dirs);
    }
}

/// Removes the run's directories and its socket.
fn remove_paths(paths: &[PathBuf]) {
    for p in paths {
        match std::fs::symlink_metadata(p) {
            Ok(m) if m.is_dir() => {
                let _ = std::fs::remove_dir_all(p);
            }
            Ok(_) => {
                let _ = std::fs::remove_file(p);
            }
            Err(_) => {}
        }
    }
}

/// `$TMPDIR/.airlock-egress-UID`, created 0700 on first use; `None` when it
/// is not a directory of ours that nobody else may enter or write.
fn shared_socket_dir() -> Option<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let euid = unsafe { libc::geteuid() };
    let d = std::env::temp_dir().join(format!(".airlock-egress-{euid}"));
    let _ = std::fs::DirBuilder::new().mode(0o700).create(&d);
    let m = std::fs::symlink_metadata(&d).ok()?;
    (m.is_dir() && m.uid() == euid && m.mode() & 0o077 == 0).then_some(d)
}

/// Sockets in the shared directory left by runs whose process is gone
/// (killed before they could remove theirs).
fn sweep_stale_sockets(dir: &Path) {
    use std::os::unix::fs::FileTypeExt;
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".sock"))
            .and_then(|n| n.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<i32>().ok())
            .filter(|p| *p > 0)
        else {
            continue;
        };
        let gone = unsafe { libc::kill(pid, 0) } != 0
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if gone && e.file_type().is_ok_and(|t| t.is_socket()) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

fn rand_u32() -> anyhow::Result<u32> {
    let mut b = [0u8; 4];
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n != b.len() as isize {
        std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut b)?;
    }
    Ok(u32::from_ne_bytes(b))
}

impl Egress {
    /// Stops the proxy, removes its files, returns every connection record.
    pub fn finish(self) -> Vec<ConnectionRecord> {
        let recs = self.proxy.shutdown();
        remove_paths(&self.dirs);
        recs
    }

    /// [`Egress::finish`] for a process about to exit: without an audit
    /// sink (whose writes must not be cut off) it does not wait for the
    /// proxy's threads to stop.
    pub fn finish_exiting(self) -> Vec<ConnectionRecord> {
        if self.audited {
            return self.finish();
        }
        let recs = self.proxy.shutdown_background();
        remove_paths(&self.dirs);
        recs
    }
}

fn tempdir_in(base: &Path, prefix: &str, mode: u32) -> anyhow::Result<PathBuf> {
    let d = base.join(format!("{prefix}-{}-{:x}", std::process::id(), rand_u32()?));
    std::fs::create_dir(&d).with_context(|| format!("create {}", d.display()))?;
    set_mode(&d, mode)?;
    Ok(d)
}

fn set_mode(p: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", p.display()))
}
