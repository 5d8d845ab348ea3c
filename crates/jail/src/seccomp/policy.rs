//! What the jail's filter decides, as data: the generator (`bpf.rs`) turns
//! it into a program and the tests derive the expected verdicts from it.

/// What the filter answers for one call.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Verdict {
    Allow,
    /// Fail the call with this errno; the call never reaches the kernel.
    Errno(u16),
    /// Kill the whole process (only for a foreign architecture).
    KillProcess,
}

/// A test on the low 32 bits of one argument.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ArgTest {
    /// Any of these bits is set.
    AnyBit(u32),
    /// The value is one of these.
    OneOf(&'static [u32]),
}

#[cfg(test)]
impl ArgTest {
    pub fn matches(&self, low32: u32) -> bool {
        match self {
            ArgTest::AnyBit(mask) => low32 & mask != 0,
            ArgTest::OneOf(values) => values.contains(&low32),
        }
    }
}

/// The rule for one syscall number.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Rule {
    /// Every call gets this verdict.
    Always(Verdict),
    /// `then` when `test` matches argument `arg`, otherwise allowed.
    When {
        arg: u8,
        test: ArgTest,
        then: Verdict,
    },
}

/// A whole filter: the one architecture it accepts, the calls with rules
/// (everything else is allowed), and optionally a verdict for every number
/// from `above` up (x86_64's x32 numbers).
#[derive(Clone, Debug)]
pub struct Policy {
    pub arch: u32,
    pub calls: Vec<(u32, Rule)>,
    pub above: Option<(u32, Verdict)>,
}

#[cfg(test)]
impl Policy {
    /// The verdict straight from the data (what the program must compute).
    pub fn verdict(&self, arch: u32, nr: u32, args: &[u64; 6]) -> Verdict {
        if arch != self.arch {
            return Verdict::KillProcess;
        }
        if let Some((from, v)) = self.above {
            if nr >= from {
                return v;
            }
        }
        match self.calls.iter().find(|(n, _)| *n == nr) {
            None => Verdict::Allow,
            Some((_, Rule::Always(v))) => *v,
            Some((_, Rule::When { arg, test, then })) => {
                if test.matches(args[usize::from(*arg)] as u32) {
                    *then
                } else {
                    Verdict::Allow
                }
            }
        }
    }
}

const EPERM: Verdict = Verdict::Errno(libc::EPERM as u16);

/// Denied outright: kernel attack surface, other namespaces, other
/// processes' memory, keyrings, and anything that changes the mount tree.
pub const DENIED: &[(&str, libc::c_long)] = &[
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
];

/// Extended attributes: a filter cannot read the attribute name, and the
/// one that matters (`security.capability`, a planted file capability)
/// must never be written, so none is. The missing capabilities refuse it
/// too; this holds even if a kernel bug let a namespaced root through.
/// Refused with EOPNOTSUPP, as on a file system without xattrs, rather
/// than EPERM: coreutils then falls back to chmod for the mode (its ACL
/// step writes `system.posix_acl_access`), where EPERM made `install -m
/// 755`, `cp -p` and `cp -a` fail in the jail.
pub const XATTR_WRITES: &[(&str, libc::c_long)] = &[
    ("setxattr", libc::SYS_setxattr),
    ("lsetxattr", libc::SYS_lsetxattr),
    ("fsetxattr", libc::SYS_fsetxattr),
    ("setxattrat", SYS_SETXATTRAT),
];

/// setxattrat (Linux 6.13); the same number on x86_64 and aarch64.
const SYS_SETXATTRAT: libc::c_long = 463;

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

/// The calls that create a file with a mode, and which argument holds it.
/// A mode is used only with O_CREAT/O_TMPFILE, but the filter refuses any
/// of these calls passing the bits: libc passes 0 when it is unused, and a
/// caller asking for setuid bits without creating has no use for them.
#[cfg(target_arch = "x86_64")]
pub const CREATES: &[(libc::c_long, u8)] = &[
    (libc::SYS_open, 2),
    (libc::SYS_openat, 3),
    (libc::SYS_creat, 1),
    (libc::SYS_mknod, 1),
    (libc::SYS_mknodat, 2),
];
#[cfg(not(target_arch = "x86_64"))]
pub const CREATES: &[(libc::c_long, u8)] = &[(libc::SYS_openat, 3), (libc::SYS_mknodat, 2)];

/// openat2 (Linux 5.6); the same number on x86_64 and aarch64.
pub const SYS_OPENAT2: libc::c_long = 437;

/// Every namespace flag clone(2) takes. CLONE_NEWTIME (0x80) sits in
/// clone's exit-signal byte, where the kernel ignores it as a flag (only
/// clone3 and unshare take it) and refuses it as a signal (above 64), so
/// denying it costs nothing; it is kept as the filter always had it.
pub const CLONE_NS_FLAGS: u32 = (libc::CLONE_NEWUSER
    | libc::CLONE_NEWNS
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWCGROUP
    | 0x80) as u32;

/// Terminal injection: pushing input into a terminal, and the console's
/// selection paste.
pub const TTY_INJECT: &[u32] = &[libc::TIOCSTI as u32, libc::TIOCLINUX as u32];

/// No Unix sockets to host services, no netlink, no raw packets, no vsock
/// (WSL2 interop).
pub const SOCKET_FAMILIES: &[u32] = &[
    libc::AF_UNIX as u32,
    libc::AF_NETLINK as u32,
    libc::AF_PACKET as u32,
    libc::AF_VSOCK as u32,
];

/// The setuid and setgid mode bits.
pub const SET_ID_BITS: u32 = libc::S_ISUID | libc::S_ISGID;

/// x86_64's x32 ABI: the same architecture token, syscall numbers with
/// this bit set.
pub const X32_SYSCALL_BIT: u32 = 0x4000_0000;

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xc000_003e; // AUDIT_ARCH_X86_64
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xc000_00b7; // AUDIT_ARCH_AARCH64

/// The jail's policy for the architecture this is built for.
///
/// Every argument test reads only the low 32 bits, and that is what the
/// kernel reads too: ioctl's `cmd` is an `unsigned int`, socket's `family`
/// an `int`, the chmod, open and mknod calls' `mode` a `umode_t` (16
/// bits: the setuid and setgid bits are in the half read), and the legacy
/// clone's flags go through `lower_32_bits()` (the namespace flags all live
/// there). A value with high bits set therefore reaches the kernel as its
/// low half, and is judged by that half here, so setting high bits cannot
/// slip a denied value past the filter.
pub fn jail() -> Policy {
    let mut calls: Vec<(u32, Rule)> = DENIED
        .iter()
        .map(|(_, nr)| (*nr as u32, Rule::Always(EPERM)))
        .chain(XATTR_WRITES.iter().map(|(_, nr)| {
            (
                *nr as u32,
                Rule::Always(Verdict::Errno(libc::EOPNOTSUPP as u16)),
            )
        }))
        .collect();
    calls.push((
        libc::SYS_clone as u32,
        Rule::When {
            arg: 0,
            test: ArgTest::AnyBit(CLONE_NS_FLAGS),
            then: EPERM,
        },
    ));
    // clone3 passes its flags in memory the filter cannot read: ENOSYS
    // makes libc fall back to clone, whose flags it can.
    calls.push((
        libc::SYS_clone3 as u32,
        Rule::Always(Verdict::Errno(libc::ENOSYS as u16)),
    ));
    calls.push((
        libc::SYS_ioctl as u32,
        Rule::When {
            arg: 1,
            test: ArgTest::OneOf(TTY_INJECT),
            then: EPERM,
        },
    ));
    calls.push((
        libc::SYS_socket as u32,
        Rule::When {
            arg: 0,
            test: ArgTest::OneOf(SOCKET_FAMILIES),
            then: EPERM,
        },
    ));
    // No setuid/setgid bits through chmod, nor at creation (open, openat,
    // creat, mknod, mknodat), including in `.git/objects`, which the
    // post-run scan does not walk. The calls whose mode sits in the same
    // argument share one block. An allowed openat (the hottest call, which
    // the kernel's per-number cache no longer skips) walks the arch check
    // (2), the number load (1), the search (6 comparisons on x86_64), its
    // block's load and JSET (2) and the return (1): 12 instructions (the
    // tests hold it to 13).
    for &(nr, arg) in CHMODS.iter().chain(CREATES) {
        calls.push((
            nr as u32,
            Rule::When {
                arg,
                test: ArgTest::AnyBit(SET_ID_BITS),
                then: EPERM,
            },
        ));
    }
    // openat2 passes its mode in `struct open_how`, memory the filter
    // cannot read: ENOSYS (the answer of a kernel before 5.6) makes a
    // program that tries it fall back to openat, whose mode it can. glibc
    // (2.36 here) never uses openat2 for open/openat/fopen; only programs
    // that call it directly do, and they must handle ENOSYS anyway.
    calls.push((
        SYS_OPENAT2 as u32,
        Rule::Always(Verdict::Errno(libc::ENOSYS as u16)),
    ));
    // x32 calls are x86_64 calls with another number: unfiltered, `mount`
    // or `bpf` would pass through theirs. Nothing in the jail needs x32
    // (most kernels, this one included, have it disabled), so every number
    // with the bit set, and any number above it, is refused. aarch64's
    // 32-bit calls carry another architecture token and are killed.
    #[cfg(target_arch = "x86_64")]
    let above = Some((X32_SYSCALL_BIT, EPERM));
    #[cfg(not(target_arch = "x86_64"))]
    let above = None;
    Policy {
        arch: AUDIT_ARCH,
        calls,
        above,
    }
}
