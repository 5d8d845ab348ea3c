//! airlock-jail: the OS-level sandbox every command an agent runs lives in.
//!
//! ```text
//! let mut spec = JailSpec::new("/srv/work", config.sandbox.clone());
//! let run = airlock_jail::spawn(&spec, &["bash".into(), "-c".into(), "make".into()],
//!                               [Stdio::inherit(), Stdio::inherit(), Stdio::inherit()])?;
//! let outcome = run.wait(Some(Duration::from_secs(120)))?;
//! ```
//!
//! The binary that embeds this crate must call [`init::main`] when started
//! as `airlock __jail-init` (see `crates/cli/src/main.rs`): the jail is
//! assembled by that fresh, single-threaded process (see [`init`] for the
//! process tree). A program that is still single-threaded can instead fork
//! the init ahead with [`Zygote::fork`] and start the jail with
//! [`spawn_in`], saving the second execution of the binary (`airlock run`
//! does). No helper programs are needed.

pub mod cgroup;
mod holder;
pub mod init;
mod landlock_rules;
mod launch;
mod mounts;
mod planted;
pub mod probe;
mod relay;
mod resolve;
pub mod rules;
pub mod seccomp;
pub mod spec;
mod stale;
mod symlinks;
mod sys;

pub use launch::{
    spawn, spawn_in, Finding, JailError, JailSpec, NetworkAccess, OnConnect, Outcome, Running,
    Zygote, DEFAULT_HOST_ID, RELAY_PORT, SOCKS_PORT,
};

/// The argument that makes the `airlock` binary act as the jail's init.
pub const INIT_ARG: &str = "__jail-init";
