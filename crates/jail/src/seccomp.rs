//! The syscall filter every jailed process runs under. Denied calls fail
//! with EPERM (clone3 with ENOSYS, so libc falls back to clone, whose flags
//! can be inspected), never a kill: tools see a clean error.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen as Len, SeccompCmpOp as Op,
    SeccompCondition as Cond, SeccompFilter, SeccompRule, TargetArch,
};

/// Denied outright: kernel attack surface, other namespaces, other
/// processes' memory, keyrings, and anything that changes the mount tree.
const DENIED: &[(&str, libc::c_long)] = &[
    ("bpf", libc::SYS_bpf),
    ("perf_event_open", libc::SYS_perf_event_open),
    ("keyctl", libc::SYS_keyctl),
    ("add_key", libc::SYS_add_key),
    ("request_key", libc::SYS_request_key),
    ("ptrace", libc::SYS_ptrace),
    ("process_vm_readv", libc::SYS_process_vm_readv),
    ("process_vm_writev", libc::SYS_process_vm_writev),
    ("kcmp", libc::SYS_kcmp),
    ("pidfd_getfd", libc::SYS_pidfd_getfd),
    ("io_uring_setup", libc::SYS_io_uring_setup),
    ("io_uring_enter", libc::SYS_io_uring_enter),
    ("io_uring_register", libc::SYS_io_uring_register),
    ("userfaultfd", libc::SYS_userfaultfd),
    ("kexec_load", libc::SYS_kexec_load),
    ("kexec_file_load", libc::SYS_kexec_file_load),
    ("init_module", libc::SYS_init_module),
    ("finit_module", libc::SYS_finit_module),
    ("delete_module", libc::SYS_delete_module),
    ("mount", libc::SYS_mount),
    ("umount2", libc::SYS_umount2),
    ("pivot_root", libc::SYS_pivot_root),
    ("chroot", libc::SYS_chroot),
    ("unshare", libc::SYS_unshare),
    ("setns", libc::SYS_setns),
    ("open_tree", libc::SYS_open_tree),
    ("move_mount", libc::SYS_move_mount),
    ("fsopen", libc::SYS_fsopen),
    ("fsconfig", libc::SYS_fsconfig),
    ("fsmount", libc::SYS_fsmount),
    ("fspick", libc::SYS_fspick),
    ("mount_setattr", libc::SYS_mount_setattr),
    ("open_by_handle_at", libc::SYS_open_by_handle_at),
    ("name_to_handle_at", libc::SYS_name_to_handle_at),
    ("reboot", libc::SYS_reboot),
    ("swapon", libc::SYS_swapon),
    ("swapoff", libc::SYS_swapoff),
    ("acct", libc::SYS_acct),
    ("quotactl", libc::SYS_quotactl),
    ("syslog", libc::SYS_syslog),
    ("personality", libc::SYS_personality),
    ("vhangup", libc::SYS_vhangup),
    ("iopl", libc::SYS_iopl),
    ("ioperm", libc::SYS_ioperm),
    ("settimeofday", libc::SYS_settimeofday),
    ("clock_settime", libc::SYS_clock_settime),
    ("clock_adjtime", libc::SYS_clock_adjtime),
    ("adjtimex", libc::SYS_adjtimex),
    ("fanotify_init", libc::SYS_fanotify_init),
    ("lookup_dcookie", libc::SYS_lookup_dcookie),
    ("uselib", libc::SYS_uselib),
    // Extended attributes: a filter cannot read the attribute name, and the
    // one that matters (`security.capability`, a planted file capability)
    // must never be written, so none is. The missing capabilities refuse it
    // too; this holds even if a kernel bug let a namespaced root through.
    ("setxattr", libc::SYS_setxattr),
    ("lsetxattr", libc::SYS_lsetxattr),
    ("fsetxattr", libc::SYS_fsetxattr),
    ("setxattrat", SYS_SETXATTRAT),
];

/// setxattrat (Linux 6.13); the same number on x86_64 and aarch64.
const SYS_SETXATTRAT: libc::c_long = 463;

/// The names of the denied calls, for docs and the report.
pub fn denied_names() -> impl Iterator<Item = &'static str> {
    DENIED.iter().map(|(n, _)| *n)
}

/// fchmodat2 (Linux 6.6); the same number on x86_64 and aarch64.
const SYS_FCHMODAT2: libc::c_long = 452;

/// The chmod calls and which argument holds the mode.
#[cfg(target_arch = "x86_64")]
const CHMODS: &[(libc::c_long, u8)] = &[
    (libc::SYS_chmod, 1),
    (libc::SYS_fchmod, 1),
    (libc::SYS_fchmodat, 2),
    (SYS_FCHMODAT2, 2),
];
#[cfg(not(target_arch = "x86_64"))]
const CHMODS: &[(libc::c_long, u8)] = &[
    (libc::SYS_fchmod, 1),
    (libc::SYS_fchmodat, 2),
    (SYS_FCHMODAT2, 2),
];

const NS_FLAGS: &[u64] = &[
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWCGROUP as u64,
    0x80, // CLONE_NEWTIME
];

fn arch() -> TargetArch {
    #[cfg(target_arch = "x86_64")]
    return TargetArch::x86_64;
    #[cfg(target_arch = "aarch64")]
    return TargetArch::aarch64;
}

fn rule(conds: Vec<Cond>) -> SeccompRule {
    SeccompRule::new(conds).expect("non-empty rule")
}

fn cond(arg: u8, len: Len, op: Op, val: u64) -> Cond {
    Cond::new(arg, len, op, val).expect("argument index below 6")
}

/// Compiles both filters: the EPERM one and the clone3 → ENOSYS one.
pub fn compile() -> Result<Vec<BpfProgram>, String> {
    let mut deny: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for (_, nr) in DENIED {
        deny.insert(*nr, vec![]);
    }
    // clone: no namespace flags.
    deny.insert(
        libc::SYS_clone,
        NS_FLAGS
            .iter()
            .map(|f| rule(vec![cond(0, Len::Qword, Op::MaskedEq(*f), *f)]))
            .collect(),
    );
    // ioctl: no terminal injection.
    deny.insert(
        libc::SYS_ioctl,
        [libc::TIOCSTI, libc::TIOCLINUX]
            .iter()
            .map(|c| rule(vec![cond(1, Len::Dword, Op::Eq, *c)]))
            .collect(),
    );
    // socket: no Unix sockets to host services, no netlink, no raw packets.
    deny.insert(
        libc::SYS_socket,
        [
            libc::AF_UNIX,
            libc::AF_NETLINK,
            libc::AF_PACKET,
            libc::AF_VSOCK,
        ]
        .iter()
        .map(|f| rule(vec![cond(0, Len::Dword, Op::Eq, *f as u64)]))
        .collect(),
    );
    // chmod family: no setuid/setgid bits (the post-run scan catches the
    // ones creation modes carry).
    for &(nr, mode_arg) in CHMODS {
        deny.insert(
            nr,
            [libc::S_ISUID, libc::S_ISGID]
                .iter()
                .map(|b| {
                    let b = u64::from(*b);
                    rule(vec![cond(mode_arg, Len::Dword, Op::MaskedEq(b), b)])
                })
                .collect(),
        );
    }
    let eperm = SeccompFilter::new(
        deny,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch(),
    )
    .map_err(|e| format!("seccomp filter: {e}"))?;
    let mut c3 = BTreeMap::new();
    c3.insert(libc::SYS_clone3, vec![]);
    let enosys = SeccompFilter::new(
        c3,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch(),
    )
    .map_err(|e| format!("seccomp filter: {e}"))?;
    Ok(vec![
        eperm
            .try_into()
            .map_err(|e| format!("seccomp compile: {e}"))?,
        enosys
            .try_into()
            .map_err(|e| format!("seccomp compile: {e}"))?,
    ])
}

/// Installs the filters on the calling thread (no_new_privs must be set).
pub fn apply(progs: &[BpfProgram]) -> Result<(), String> {
    for p in progs {
        seccompiler::apply_filter(p).map_err(|e| format!("seccomp apply: {e}"))?;
    }
    Ok(())
}
