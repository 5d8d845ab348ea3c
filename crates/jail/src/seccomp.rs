//! The syscall filter every jailed process runs under. Denied calls fail
//! with EPERM (clone3 and openat2 with ENOSYS, so libc falls back to calls
//! whose arguments can be inspected; xattr writes with EOPNOTSUPP, so
//! tools fall back as on a file system without them), never a kill: tools see a clean error. Only a call
//! made through another architecture's entry (x86_64's `int 0x80`) kills
//! the process, since its numbers mean other calls.
//!
//! `policy.rs` holds what is denied, as data; `bpf.rs` generates the
//! program (an architecture check, then a binary search over the syscall
//! number, then short argument blocks; see there). One filter, installed
//! once.

mod bpf;
mod policy;
#[cfg(test)]
mod tests;

/// A compiled filter, ready for [`apply`].
pub type BpfProgram = Vec<libc::sock_filter>;

/// The names of the calls denied outright with EPERM, for docs and the
/// report.
pub fn denied_names() -> impl Iterator<Item = &'static str> {
    policy::DENIED.iter().map(|(n, _)| *n)
}

/// The extended-attribute writes, all refused with EOPNOTSUPP.
pub fn xattr_write_names() -> impl Iterator<Item = &'static str> {
    policy::XATTR_WRITES.iter().map(|(n, _)| *n)
}

/// Compiles the jail's filter (one program).
pub fn compile() -> Result<Vec<BpfProgram>, String> {
    Ok(vec![bpf::generate(&policy::jail())?])
}

/// Installs the filters on the calling thread. Sets no_new_privs first
/// (the kernel requires it of a caller without CAP_SYS_ADMIN; the jail has
/// set it already).
pub fn apply(progs: &[BpfProgram]) -> Result<(), String> {
    if progs.is_empty() {
        return Err("seccomp apply: no filter".into());
    }
    let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    if rc != 0 {
        return Err(format!(
            "seccomp apply: PR_SET_NO_NEW_PRIVS: {}",
            std::io::Error::last_os_error()
        ));
    }
    for p in progs {
        let len = u16::try_from(p.len())
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("seccomp apply: a filter of {} instructions", p.len()))?;
        let fprog = libc::sock_fprog {
            len,
            filter: p.as_ptr() as *mut libc::sock_filter,
        };
        // The kernel copies the program; `p` only has to live for the call.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0,
                &fprog as *const libc::sock_fprog,
            )
        };
        if rc != 0 {
            return Err(format!(
                "seccomp apply: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}
