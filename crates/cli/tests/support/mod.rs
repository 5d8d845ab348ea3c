//! The two callers every `airlock run` attack test runs under: airlock
//! started by root, and airlock started by an unprivileged host user
//! (uid/gid 65534, no supplementary groups). The jail is built differently
//! in the two cases (root maps the workload to 65534 and has cgroups; an
//! unprivileged caller starts from its own user namespace and has only
//! rlimits), so each attack is tried in both. When the tests themselves run
//! unprivileged, the root mode is skipped and the unprivileged one runs as
//! the current user.
//!
//! Each test crate uses a different part of this module.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

pub const AIRLOCK: &str = env!("CARGO_BIN_EXE_airlock");
/// The unprivileged host user: the caller in user mode, and the uid the jail
/// maps its workload to when airlock runs as root.
pub const NOBODY: u32 = 65534;

pub fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    /// airlock started by root.
    Root,
    /// airlock started by an unprivileged host user.
    User,
}

/// The caller of one mode, with its own `$HOME`.
pub struct Jail {
    pub mode: Mode,
    pub home: tempfile::TempDir,
}

/// Runs one test body in one mode; the root mode needs a root test process.
pub fn in_mode(mode: Mode, body: fn(&Jail)) {
    if mode == Mode::Root && !is_root() {
        eprintln!(
            "SKIPPED as root: the tests are not running as root (the unprivileged run still runs)"
        );
        return;
    }
    let home = tempfile::Builder::new()
        .prefix("airlock-caller-home")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    if mode == Mode::User {
        chown_jail(home.path());
    }
    body(&Jail { mode, home })
}

/// Generates `as_root::NAME` and `as_user::NAME` tests for each body
/// `fn NAME(&Jail)` in the crate root (`#[macro_use] mod support;`).
macro_rules! both_modes {
    ($($name:ident),* $(,)?) => {
        mod as_root {
            $(#[test] fn $name() { crate::support::in_mode(crate::support::Mode::Root, super::$name) })*
        }
        mod as_user {
            $(#[test] fn $name() { crate::support::in_mode(crate::support::Mode::User, super::$name) })*
        }
    };
}

impl Jail {
    /// `program` started as this mode's caller: for the unprivileged caller
    /// a root test process drops to 65534 between fork and exec, as
    /// `setpriv --reuid --regid --clear-groups` would.
    pub fn caller(&self, program: &str) -> Command {
        self.caller_after(program, || Ok(()))
    }

    /// [`Jail::caller`], with `setup` run first in the child, still with the
    /// test process's own privileges (e.g. to give it a mount namespace).
    pub fn caller_after(
        &self,
        program: &str,
        setup: impl FnMut() -> std::io::Result<()> + Send + Sync + 'static,
    ) -> Command {
        let mut c = Command::new(program);
        unsafe { c.pre_exec(setup) };
        c.env("HOME", self.home.path());
        if self.mode == Mode::User && is_root() {
            unsafe {
                c.pre_exec(|| {
                    // Groups first: afterwards there is no privilege left to
                    // change them.
                    if libc::setgroups(0, std::ptr::null()) != 0
                        || libc::setresgid(NOBODY, NOBODY, NOBODY) != 0
                        || libc::setresuid(NOBODY, NOBODY, NOBODY) != 0
                    {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        c
    }

    /// `airlock` as this mode's caller.
    pub fn cmd(&self) -> Command {
        self.caller(AIRLOCK)
    }
}

/// A workdir the jail's uid may write: owned by 65534 (the jail's host uid
/// as root, and the caller in user mode).
pub fn workdir() -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("airlock-run-test")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    chown_jail(d.path());
    d
}

/// Hands a path to 65534 (nothing to do when the tests are not root: the
/// caller and the jail's host uid are then the test's own uid).
pub fn chown_jail(p: &Path) {
    if is_root() {
        std::os::unix::fs::chown(p, Some(NOBODY), Some(NOBODY)).unwrap();
    }
}

pub fn write(p: &Path, s: &str) {
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(p, s).unwrap();
}

/// The cgroups (root only) of the run whose launcher is `pid`, under every
/// mounted hierarchy, that exist now.
pub fn run_cgroups(pid: u32) -> Vec<std::path::PathBuf> {
    let name = format!("run-{pid}-0");
    let cg = Path::new("/sys/fs/cgroup");
    let mut v = vec![cg.join("airlock").join(&name)];
    if let Ok(rd) = std::fs::read_dir(cg) {
        for e in rd.flatten() {
            v.push(e.path().join("airlock").join(&name));
        }
    }
    v.retain(|p| p.exists());
    v
}

/// A directory the jail's uid may use: created 0755 and handed to 65534.
pub fn jail_dir(p: &Path) {
    std::fs::create_dir_all(p).unwrap();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    chown_jail(p);
}

/// A running `airlock mcp`, killed when dropped.
pub struct Mcp {
    pub child: std::process::Child,
    /// `host:port` it listens on.
    pub addr: String,
}

/// `airlock mcp --config cfg --workdir wd` on a free loopback port, its
/// stdout piped (for the listening line) and its stderr dropped.
pub fn mcp_command(cfg: &Path, wd: &Path) -> Command {
    let mut c = Command::new(AIRLOCK);
    c.args(["mcp", "--config"])
        .arg(cfg)
        .arg("--workdir")
        .arg(wd)
        .args(["--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    c
}

impl Mcp {
    /// Starts `cmd` (from [`mcp_command`]) and waits for its listening line.
    pub fn spawn(mut cmd: Command) -> Mcp {
        use std::io::BufRead;
        let mut child = cmd.spawn().unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("no address: {line:?}"))
            .trim_end_matches("/mcp")
            .to_string();
        Mcp { child, addr }
    }

    /// Calls the `bash` tool with `command` as the agent of `key`; the
    /// whole HTTP response.
    pub fn bash(&self, key: &str, command: &str) -> String {
        let body =
            serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
            "name": "bash", "arguments": {"command": command},
            "_meta": {"io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
                      "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                      "io.modelcontextprotocol/clientCapabilities": {}}}})
            .to_string();
        post_tools_call(&self.addr, "/mcp", key, &body)
    }
}

/// One 2026-07-28 `tools/call` of `bash` (`body`) POSTed to `path` at
/// `addr` with the agent key `key`; the whole HTTP response.
pub fn post_tools_call(addr: &str, path: &str, key: &str, body: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\n\
Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2026-07-28\r\nMcp-Method: tools/call\r\nMcp-Name: bash\r\n\
Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

impl Drop for Mcp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
