//! What the launcher hands the jail's init process (`airlock __jail-init`)
//! over a pipe: everything already resolved on the host, so the init only
//! executes decisions and never makes one.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Inside the jail the workload runs as this uid/gid (never 0).
pub const JAIL_UID: u32 = 1000;
pub const JAIL_GID: u32 = 1000;

/// File descriptor numbers the init process inherits.
pub const SPEC_FD: i32 = 3;
/// Where the init sends the relay's listening sockets (SCM_RIGHTS).
pub const RELAY_FD: i32 = 4;
/// Where the init reports setup errors and the workload's wait status.
pub const REPORT_FD: i32 = 5;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InitSpec {
    pub argv: Vec<String>,
    /// The workload's whole environment (the host's is never inherited).
    pub env: Vec<(String, String)>,
    pub workdir: PathBuf,
    /// An empty host directory the new root is assembled on.
    pub scratch: PathBuf,
    /// Host paths bound writable (canonical, existing).
    pub writable: Vec<PathBuf>,
    /// Host paths made read-only again inside writable ones (canonical, existing).
    pub protected: Vec<PathBuf>,
    /// The entries of `protected` that were symlinks when the launcher
    /// looked: the init pins the link itself, never what it points to. Any
    /// other symlink where a protected, masked or writable path should be
    /// refuses the run.
    #[serde(default)]
    pub protected_links: Vec<PathBuf>,
    /// What each protected and masked path was when the launcher looked:
    /// the init mounts only onto that same file (another one moved into
    /// its place, e.g. a fresh folder of the same name, refuses the run).
    #[serde(default)]
    pub ids: BTreeMap<PathBuf, FileId>,
    /// Host paths hidden (canonical, existing): directories become an empty
    /// read-only tmpfs, files read as empty.
    pub masked: Vec<PathBuf>,
    pub tmp_size: u64,
    pub rlimits: Rlimits,
    /// Host uid/gid the jail's uid maps to when the launcher runs as root.
    pub host_uid: u32,
    pub host_gid: u32,
    /// Cgroup files the init writes "0" into before anything else.
    pub cgroup_procs: Vec<PathBuf>,
    /// Listen on 127.0.0.1:port inside the jail's network namespace and
    /// hand the socket to the launcher, which relays it to the egress proxy.
    pub relay_ports: Vec<u16>,
    pub hostname: String,
    /// Nobody waits for the jail's processes to exit once pid 1 has
    /// reported (the launcher detaches): they exit at idle priority.
    #[serde(default)]
    pub background_exit: bool,
    /// Tests only, debug builds only (`AIRLOCK_TEST_SWAP_BEFORE_MOUNT`):
    /// `[from, aside, link]`, the init moves `from` to `aside` and puts a
    /// symlink to `link` in its place (nothing if empty, a fresh folder or
    /// file for `@dir`, `@file`) after the launcher's checks and before
    /// its own mounts: the race a concurrent writer could win.
    #[cfg(debug_assertions)]
    #[serde(default)]
    pub test_swap: Option<[PathBuf; 3]>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Rlimits {
    pub cpu_seconds: u64,
    pub open_files: u64,
    pub file_size: u64,
    /// Fallback when no pids cgroup is available. For an unprivileged
    /// caller it is set inside the jail's own user namespace, where the
    /// kernel counts only this jail's processes.
    pub nproc: Option<u64>,
    /// Fallback when no memory cgroup is available: `RLIMIT_DATA`, the
    /// memory limit per process rather than for the whole jail.
    #[serde(default)]
    pub data: Option<u64>,
}

/// A file's identity: device and inode number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

impl FileId {
    pub fn of(m: &std::fs::Metadata) -> FileId {
        use std::os::unix::fs::MetadataExt;
        FileId {
            dev: m.dev(),
            ino: m.ino(),
        }
    }
}

/// One line the init writes to [`REPORT_FD`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InitReport {
    /// Setup failed before the command ran.
    Error(String),
    /// The command could not be executed (errno of execve: ENOENT → 127, else 126).
    ExecFailed { errno: i32, message: String },
    /// The command ended: raw wait status.
    Status(i32),
}
