//! The generated program run through a small classic-BPF interpreter and
//! compared with the policy's own verdicts, with hand-written expectations,
//! and (x86_64) with the filter seccompiler built for the same policy
//! before this generator replaced it.

use super::bpf::{self, Insn};
use super::policy::{self, ArgTest, Policy, Rule, Verdict};

const EPERM: Verdict = Verdict::Errno(libc::EPERM as u16);
const ENOSYS: Verdict = Verdict::Errno(libc::ENOSYS as u16);
const EOPNOTSUPP: Verdict = Verdict::Errno(libc::EOPNOTSUPP as u16);
const AUDIT_ARCH_I386: u32 = 0x4000_0003;

/// The input a filter sees (struct seccomp_data).
#[derive(Clone, Copy)]
struct Data {
    nr: u32,
    arch: u32,
    args: [u64; 6],
}

impl Data {
    fn bytes(&self) -> [u8; 64] {
        let mut b = [0u8; 64];
        b[0..4].copy_from_slice(&self.nr.to_ne_bytes());
        b[4..8].copy_from_slice(&self.arch.to_ne_bytes());
        b[8..16].copy_from_slice(&0x7f00_dead_beefu64.to_ne_bytes());
        for (i, a) in self.args.iter().enumerate() {
            b[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_ne_bytes());
        }
        b
    }
}

/// Runs `prog` on `d` the way the kernel's classic-BPF interpreter does,
/// for the instructions seccomp filters use here (ours and seccompiler's).
/// Returns the return value and how many instructions ran. Panics on
/// anything the kernel's checker would refuse (unknown opcode, a load
/// outside seccomp_data, running off the end).
fn run(prog: &[Insn], d: &Data) -> (u32, usize) {
    let mem = d.bytes();
    let mut a: u32 = 0;
    let mut pc = 0usize;
    let mut steps = 0;
    loop {
        let ins = prog
            .get(pc)
            .unwrap_or_else(|| panic!("ran off the end at {pc}"));
        steps += 1;
        pc += 1;
        let k = ins.k;
        let cond = |c: bool| if c { ins.jt as usize } else { ins.jf as usize };
        match ins.code {
            0x20 => {
                // LD W ABS
                let k = k as usize;
                assert!(k % 4 == 0 && k + 4 <= 64, "load at {k}");
                a = u32::from_ne_bytes(mem[k..k + 4].try_into().unwrap());
            }
            0x05 => pc += k as usize, // JA
            0x15 => pc += cond(a == k),
            0x25 => pc += cond(a > k),
            0x35 => pc += cond(a >= k),
            0x45 => pc += cond(a & k != 0),
            0x54 => a &= k, // ALU AND K
            0x06 => return (k, steps),
            c => panic!("opcode {c:#x} at {}", pc - 1),
        }
    }
}

fn verdict_of(ret: u32) -> Verdict {
    match ret {
        0x7fff_0000 => Verdict::Allow,
        0x8000_0000 => Verdict::KillProcess,
        r if r & 0xffff_0000 == 0x0005_0000 => Verdict::Errno(r as u16),
        r => panic!("unexpected return {r:#x}"),
    }
}

fn verdict(prog: &[Insn], d: &Data) -> Verdict {
    verdict_of(run(prog, d).0)
}

fn jail_prog() -> Vec<Insn> {
    bpf::generate(&policy::jail()).expect("the jail's policy compiles")
}

fn data(nr: u32, args: [u64; 6]) -> Data {
    Data {
        nr,
        arch: policy::jail().arch,
        args,
    }
}

/// The syscall numbers every equivalence test covers: all native numbers
/// up to 600 (well past the highest), the same as x32 numbers, and the
/// edges of the 32-bit range.
fn numbers() -> Vec<u32> {
    let mut v: Vec<u32> = (0..=600).collect();
    v.extend((0..=600).map(|n| policy::X32_SYSCALL_BIT | n));
    v.extend([
        0x3fff_ffff,
        0x4000_0000 + 512, // x32's own numbers start here
        0x4000_0000 + 547,
        0x7fff_ffff,
        0x8000_0000,
        0xbfff_ffff,
        0xc000_0000,
        0xffff_fffe,
        0xffff_ffff, // -1
    ]);
    v
}

/// Argument values: zero, all ones, every single bit, the values and masks
/// the rules name (alone, neighbours, with high bits set), the usual real
/// ones, combinations, and a fixed pseudo-random spread.
fn patterns() -> Vec<u64> {
    let mut v = vec![0, u64::MAX, 0xffff_ffff, 0xffff_ffff_0000_0000];
    v.extend((0..64).map(|b| 1u64 << b));
    let named: Vec<u32> = [
        policy::TTY_INJECT,
        policy::SOCKET_FAMILIES,
        &[policy::CLONE_NS_FLAGS, policy::SET_ID_BITS],
    ]
    .concat();
    for &x in &named {
        let x = u64::from(x);
        for y in [x, x.wrapping_sub(1), x + 1, !x & 0xffff_ffff, !x] {
            v.extend([y, y | 1 << 32, y | 0xffff_ffff_0000_0000]);
        }
    }
    let sigchld = libc::SIGCHLD as u64;
    let thread = (libc::CLONE_VM
        | libc::CLONE_FS
        | libc::CLONE_FILES
        | libc::CLONE_SIGHAND
        | libc::CLONE_THREAD
        | libc::CLONE_SYSVSEM
        | libc::CLONE_SETTLS
        | libc::CLONE_PARENT_SETTID
        | libc::CLONE_CHILD_CLEARTID) as u64;
    v.extend([
        sigchld,
        thread,
        (libc::CLONE_VM | libc::CLONE_VFORK) as u64 | sigchld,
        (libc::CLONE_NEWUSER | libc::CLONE_NEWNS) as u64 | sigchld,
        libc::CLONE_NEWNET as u64 | thread,
        0o644,
        0o755,
        0o1777,
        0o4755,
        0o2755,
        0o6755,
        0o7777,
        (1 << 32) | 0o755,
        (1 << 32) | 0o4755,
        libc::AF_INET as u64,
        libc::AF_INET6 as u64,
        libc::TCGETS,
        libc::FIONREAD,
        libc::TIOCSCTTY,
    ]);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..32 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.push(x);
    }
    v.sort_unstable();
    v.dedup();
    v
}

/// Argument vectors: each pattern in every slot, alone and with all ones
/// around it, and in all slots at once.
fn arg_sets() -> Vec<[u64; 6]> {
    let mut out = Vec::new();
    for p in patterns() {
        out.push([p; 6]);
        for i in 0..6 {
            let mut a = [0; 6];
            a[i] = p;
            out.push(a);
            let mut b = [u64::MAX; 6];
            b[i] = p;
            out.push(b);
        }
    }
    out
}

#[test]
fn the_program_computes_the_policy_everywhere() {
    let pol = policy::jail();
    let prog = jail_prog();
    let sets = arg_sets();
    // Every vector for the numbers with a rule (and their x32 twins); a
    // spread of 1 in 16 for the rest, whose path reads no argument.
    let spread: Vec<[u64; 6]> = sets.iter().step_by(16).copied().collect();
    let ruled: Vec<u32> = pol.calls.iter().map(|(n, _)| *n).collect();
    eprintln!(
        "{} argument vectors, {} numbers",
        sets.len(),
        numbers().len()
    );
    for nr in numbers() {
        let sets = if ruled.contains(&(nr & !policy::X32_SYSCALL_BIT)) {
            &sets
        } else {
            &spread
        };
        for args in sets {
            let d = data(nr, *args);
            assert_eq!(
                verdict(&prog, &d),
                pol.verdict(pol.arch, nr, args),
                "nr {nr:#x} args {args:x?}"
            );
        }
    }
}

/// Expectations written out by hand, from the filter's documented purpose
/// rather than from the policy tables.
#[test]
fn hand_written_expectations() {
    let prog = jail_prog();
    let v = |nr: libc::c_long, args: [u64; 6]| verdict(&prog, &data(nr as u32, args));
    let z = [0u64; 6];
    let hi = 0xffff_ffff_0000_0000u64;
    for nr in [
        libc::SYS_bpf,
        libc::SYS_mount,
        libc::SYS_ptrace,
        libc::SYS_unshare,
        libc::SYS_setns,
        libc::SYS_io_uring_setup,
        libc::SYS_keyctl,
        libc::SYS_perf_event_open,
        libc::SYS_open_by_handle_at,
    ] {
        assert_eq!(v(nr, z), EPERM, "{nr}");
        assert_eq!(v(nr, [u64::MAX; 6]), EPERM, "{nr}");
    }
    // Every xattr write, whatever the name: as on a file system without
    // xattrs.
    for nr in [
        libc::SYS_setxattr,
        libc::SYS_lsetxattr,
        libc::SYS_fsetxattr,
        463, // setxattrat
    ] {
        assert_eq!(v(nr, z), EOPNOTSUPP, "{nr}");
        assert_eq!(v(nr, [u64::MAX; 6]), EOPNOTSUPP, "{nr}");
    }
    assert_eq!(v(libc::SYS_clone3, z), ENOSYS);
    assert_eq!(v(437, z), ENOSYS); // openat2
    assert_eq!(v(437, [u64::MAX; 6]), ENOSYS);
    for nr in [
        libc::SYS_read,
        libc::SYS_write,
        libc::SYS_execve,
        libc::SYS_getppid,
        libc::SYS_pidfd_open,
        libc::SYS_execveat,
        libc::SYS_getxattr,
        libc::SYS_fchown,
    ] {
        assert_eq!(v(nr, [u64::MAX; 6]), Verdict::Allow, "{nr}");
    }
    // clone: namespace flags refused, with or without high bits; thread
    // and fork flags pass.
    let ns = libc::CLONE_NEWUSER as u64;
    assert_eq!(v(libc::SYS_clone, [ns, 0, 0, 0, 0, 0]), EPERM);
    assert_eq!(v(libc::SYS_clone, [ns | hi, 0, 0, 0, 0, 0]), EPERM);
    assert_eq!(
        v(
            libc::SYS_clone,
            [libc::CLONE_NEWPID as u64 | 17, 0, 0, 0, 0, 0]
        ),
        EPERM
    );
    assert_eq!(v(libc::SYS_clone, [17, ns, ns, ns, ns, ns]), Verdict::Allow);
    assert_eq!(v(libc::SYS_clone, [hi | 17, 0, 0, 0, 0, 0]), Verdict::Allow);
    // ioctl: the command is argument 1, only its low half counts.
    let sti = libc::TIOCSTI;
    assert_eq!(v(libc::SYS_ioctl, [0, sti, 0, 0, 0, 0]), EPERM);
    assert_eq!(v(libc::SYS_ioctl, [0, sti | hi, 0, 0, 0, 0]), EPERM);
    assert_eq!(v(libc::SYS_ioctl, [0, libc::TIOCLINUX, 0, 0, 0, 0]), EPERM);
    assert_eq!(
        v(libc::SYS_ioctl, [sti, 0, sti, sti, sti, sti]),
        Verdict::Allow
    );
    assert_eq!(
        v(libc::SYS_ioctl, [0, libc::TCGETS, 0, 0, 0, 0]),
        Verdict::Allow
    );
    // socket: the family is argument 0.
    assert_eq!(v(libc::SYS_socket, [1, 1, 0, 0, 0, 0]), EPERM);
    assert_eq!(v(libc::SYS_socket, [1 | hi, 1, 0, 0, 0, 0]), EPERM);
    assert_eq!(v(libc::SYS_socket, [16, 3, 0, 0, 0, 0]), EPERM);
    assert_eq!(v(libc::SYS_socket, [17, 3, 0, 0, 0, 0]), EPERM);
    assert_eq!(v(libc::SYS_socket, [40, 1, 0, 0, 0, 0]), EPERM);
    assert_eq!(v(libc::SYS_socket, [2, 1, 1, 1, 1, 1]), Verdict::Allow);
    assert_eq!(v(libc::SYS_socket, [10, 2, 0, 0, 0, 0]), Verdict::Allow);
    // the chmod family: mode is argument 1 (chmod, fchmod) or 2.
    #[cfg(target_arch = "x86_64")]
    {
        assert_eq!(v(libc::SYS_chmod, [0, 0o4755, 0, 0, 0, 0]), EPERM);
        assert_eq!(
            v(libc::SYS_chmod, [0o4755, 0o755, 0o4755, 0, 0, 0]),
            Verdict::Allow
        );
    }
    assert_eq!(v(libc::SYS_fchmod, [3, 0o2755, 0, 0, 0, 0]), EPERM);
    assert_eq!(
        v(libc::SYS_fchmod, [3, 0o1777 | hi, 0, 0, 0, 0]),
        Verdict::Allow
    );
    assert_eq!(v(libc::SYS_fchmodat, [0, 0, 0o6755, 0, 0, 0]), EPERM);
    assert_eq!(
        v(libc::SYS_fchmodat, [0, 0o4755, 0o755, 0, 0, 0]),
        Verdict::Allow
    );
    assert_eq!(v(452, [0, 0, 0o4000, 0, 0, 0]), EPERM); // fchmodat2
    assert_eq!(v(452, [0, 0, 0o644, 0o4000, 0, 0]), Verdict::Allow);
    #[cfg(target_arch = "x86_64")]
    {
        // x32: every number with the x32 bit, denied call or not.
        let x32 = |nr: libc::c_long| (nr as u32) | 0x4000_0000;
        for nr in [
            libc::SYS_mount,
            libc::SYS_bpf,
            libc::SYS_getpid,
            libc::SYS_read,
        ] {
            assert_eq!(verdict(&prog, &data(x32(nr), z)), EPERM, "x32 {nr}");
        }
        assert_eq!(verdict(&prog, &data(0x4000_0000 + 515, z)), EPERM);
        assert_eq!(verdict(&prog, &data(u32::MAX, z)), EPERM);
    }
}

/// The calls that create a file with a mode, and the mode's argument,
/// written out independently of the policy table (x86_64 numbers).
#[cfg(target_arch = "x86_64")]
const CREATE_CALLS: &[(&str, u32, usize)] = &[
    ("open", 2, 2),
    ("openat", 257, 3),
    ("creat", 85, 1),
    ("mknod", 133, 1),
    ("mknodat", 259, 2),
];
#[cfg(target_arch = "aarch64")]
const CREATE_CALLS: &[(&str, u32, usize)] = &[("openat", 56, 3), ("mknodat", 33, 2)];

/// Setuid/setgid bits in a creation mode are refused with EPERM, each bit
/// alone and both, with or without O_CREAT/O_TMPFILE in the flags, with
/// any high bits (the kernel reads a 16-bit `umode_t`); any other mode,
/// and the bits in another argument, pass.
#[test]
fn setid_bits_in_a_creation_mode_are_refused() {
    let prog = jail_prog();
    let creat = libc::O_CREAT as u64 | libc::O_WRONLY as u64;
    let tmpfile = libc::O_TMPFILE as u64 | libc::O_RDWR as u64;
    let ifreg = u64::from(libc::S_IFREG);
    for &(name, nr, arg) in CREATE_CALLS {
        // The flags argument, for the open calls.
        let flags_at = match name {
            "open" => Some(1),
            "openat" => Some(2),
            _ => None,
        };
        for flags in [0, creat, tmpfile, u64::MAX] {
            let call = |mode: u64| {
                let mut a = [0u64; 6];
                a[0] = libc::AT_FDCWD as u64;
                if let Some(f) = flags_at {
                    a[f] = flags;
                }
                a[arg] = mode;
                verdict(&prog, &data(nr, a))
            };
            for mode in [
                0o4000,
                0o2000,
                0o6000,
                0o4755,
                0o2755,
                0o6755,
                0o7777,
                0o4000 | 1 << 32,
                0o2755 | 0xffff_ffff_0000_0000,
                0o4755 | 1 << 16,
                ifreg | 0o4755,
                ifreg | 0o2700,
                u64::MAX,
            ] {
                assert_eq!(call(mode), EPERM, "{name} flags {flags:#x} mode {mode:#o}");
            }
            for mode in [
                0,
                0o644,
                0o755,
                0o777,
                0o1777,
                0o755 | 1 << 32,
                0o644 | 0xffff_ffff_0000_0000,
                ifreg | 0o755,
                !0o6000, // every bit but the two
            ] {
                assert_eq!(
                    call(mode),
                    Verdict::Allow,
                    "{name} flags {flags:#x} mode {mode:#o}"
                );
            }
        }
        // The bits in any other argument do not count.
        for other in (0..6).filter(|i| *i != arg) {
            let mut a = [0u64; 6];
            a[other] = 0o6755;
            assert_eq!(
                verdict(&prog, &data(nr, a)),
                Verdict::Allow,
                "{name} arg {other}"
            );
        }
    }
}

#[test]
fn a_foreign_architecture_is_killed() {
    let prog = jail_prog();
    let own = policy::jail().arch;
    for arch in [
        AUDIT_ARCH_I386,
        0,
        own ^ 1,
        0xc000_00b7,
        0xc000_003e,
        0x4000_0028,
    ] {
        if arch == own {
            continue;
        }
        for nr in [0, 1, 39, 56, 101, 165, 321, 435, 0x4000_0000, u32::MAX] {
            let d = Data {
                nr,
                arch,
                args: [0; 6],
            };
            assert_eq!(
                verdict(&prog, &d),
                Verdict::KillProcess,
                "arch {arch:#x} nr {nr}"
            );
        }
    }
}

/// The size and the work per call, and that only the instructions the
/// interpreter knows are emitted.
#[test]
fn the_program_is_small_and_short_to_walk() {
    let prog = jail_prog();
    let pol = policy::jail();
    eprintln!("jail filter: {} instructions", prog.len());
    assert!(prog.len() <= 128, "{} instructions", prog.len());
    for ins in &prog {
        assert!(
            [
                bpf::LD_W_ABS,
                bpf::JMP_JEQ_K,
                bpf::JMP_JGE_K,
                bpf::JMP_JSET_K,
                bpf::RET_K
            ]
            .contains(&ins.code),
            "opcode {:#x}",
            ins.code
        );
    }
    let ruled: Vec<u32> = pol.calls.iter().map(|(n, _)| *n).collect();
    let (mut max_allowed, mut max_ruled) = (0, 0);
    for nr in 0..=600u32 {
        let (_, steps) = run(&prog, &data(nr, [u64::MAX; 6]));
        if ruled.contains(&nr) {
            max_ruled = steps.max(max_ruled);
        } else {
            max_allowed = steps.max(max_allowed);
        }
    }
    eprintln!("longest walk: {max_allowed} (no rule), {max_ruled} (a rule)");
    // Arch check (2), load nr (1), at most 7 comparisons for up to 128
    // intervals, return (1).
    assert!(max_allowed <= 11, "{max_allowed}");
    assert!(max_ruled <= 16, "{max_ruled}");
    // openat, the hottest call with a rule: the number search, one load,
    // one JSET, the return.
    let openat = [libc::AT_FDCWD as u64, 0, libc::O_RDONLY as u64, 0, 0, 0];
    let (ret, steps) = run(&prog, &data(libc::SYS_openat as u32, openat));
    assert_eq!(verdict_of(ret), Verdict::Allow);
    eprintln!("an allowed openat: {steps} instructions");
    assert!(steps <= 13, "{steps}");
}

fn deny_all(nrs: impl IntoIterator<Item = u32>) -> Policy {
    Policy {
        arch: 0xc000_003e,
        calls: nrs.into_iter().map(|n| (n, Rule::Always(EPERM))).collect(),
        above: None,
    }
}

fn check_policy(pol: &Policy, prog: &[Insn]) {
    for nr in (0..1200).chain([u32::MAX - 1, u32::MAX]) {
        for args in [[0; 6], [u64::MAX; 6], [7; 6]] {
            let d = Data {
                nr,
                arch: pol.arch,
                args,
            };
            assert_eq!(
                verdict(prog, &d),
                pol.verdict(pol.arch, nr, &args),
                "nr {nr}"
            );
        }
    }
}

#[test]
fn jumps_that_do_not_fit_are_refused() {
    // A 300-value block: its first comparison would jump 299 instructions.
    static MANY: [u32; 300] = {
        let mut a = [0u32; 300];
        let mut i = 0;
        while i < 300 {
            a[i] = i as u32 * 3;
            i += 1;
        }
        a
    };
    let big_block = |n: usize| Policy {
        arch: 0xc000_003e,
        calls: vec![(
            16,
            Rule::When {
                arg: 1,
                test: ArgTest::OneOf(&MANY[..n]),
                then: EPERM,
            },
        )],
        above: None,
    };
    let e = bpf::generate(&big_block(300)).unwrap_err();
    assert!(e.contains("does not fit in 8 bits"), "{e}");
    // Just below the limit it compiles, and computes the policy.
    let pol = big_block(250);
    let prog = bpf::generate(&pol).unwrap();
    for v in [0u64, 3, 747, 748, 1 << 40 | 3] {
        let d = Data {
            nr: 16,
            arch: pol.arch,
            args: [0, v, 0, 0, 0, 0],
        };
        assert_eq!(
            verdict(&prog, &d),
            pol.verdict(pol.arch, 16, &d.args),
            "{v}"
        );
    }
    // A search so large that its leaves are too far from the returns.
    let e = bpf::generate(&deny_all((0..1000).map(|n| n * 2))).unwrap_err();
    assert!(e.contains("does not fit in 8 bits"), "{e}");
    let pol = deny_all((0..100).map(|n| n * 2));
    check_policy(&pol, &bpf::generate(&pol).unwrap());
}

#[test]
fn malformed_policies_are_refused() {
    let mut p = deny_all([1, 2, 1]);
    assert!(bpf::generate(&p).unwrap_err().contains("two rules"));
    p = deny_all([0x4000_0001]);
    p.above = Some((0x4000_0000, EPERM));
    assert!(bpf::generate(&p).is_err());
    let when = |arg, test| Policy {
        arch: 1,
        calls: vec![(
            5,
            Rule::When {
                arg,
                test,
                then: EPERM,
            },
        )],
        above: None,
    };
    assert!(bpf::generate(&when(6, ArgTest::AnyBit(1))).is_err());
    assert!(bpf::generate(&when(0, ArgTest::AnyBit(0))).is_err());
    assert!(bpf::generate(&when(0, ArgTest::OneOf(&[]))).is_err());
}

#[test]
fn edge_policies() {
    // Nothing ruled: one interval, the search is a single jump.
    for pol in [
        deny_all([]),
        deny_all([0]),
        deny_all([u32::MAX]),
        deny_all([0, 1, 2, u32::MAX]),
        Policy {
            above: Some((0x4000_0000, ENOSYS)),
            ..deny_all([0, 0x3fff_ffff])
        },
        Policy {
            above: Some((0, EPERM)),
            ..deny_all([])
        },
    ] {
        check_policy(&pol, &bpf::generate(&pol).unwrap());
    }
}

/// seccompiler 0.5's two filters for this policy (the commit before the
/// generator), combined as the kernel combines stacked filters: the
/// return with the highest-precedence action wins (lowest as a signed
/// action), the newer filter on a tie.
#[cfg(target_arch = "x86_64")]
fn seccompiler_verdict(filters: &[Vec<Insn>], d: &Data) -> Verdict {
    let mut best: Option<u32> = None;
    for f in filters.iter().rev() {
        let r = run(f, d).0;
        let action = |r: u32| (r & 0xffff_0000) as i32;
        if best.is_none_or(|b| action(r) < action(b)) {
            best = Some(r);
        }
    }
    verdict_of(best.unwrap())
}

#[cfg(target_arch = "x86_64")]
fn seccompiler_filters() -> Vec<Vec<Insn>> {
    let text = include_str!("../../tests/data/seccompiler-0.5-x86_64.txt");
    let mut filters: Vec<Vec<Insn>> = Vec::new();
    for line in text.lines() {
        if line.starts_with("# filter") {
            filters.push(Vec::new());
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        let hex = |s: &str| u32::from_str_radix(s.trim_start_matches("0x"), 16).unwrap();
        filters.last_mut().unwrap().push(Insn {
            code: hex(f[0]) as u16,
            jt: f[1].parse().unwrap(),
            jf: f[2].parse().unwrap(),
            k: hex(f[3]),
        });
    }
    assert_eq!(filters.iter().map(Vec::len).collect::<Vec<_>>(), [444, 10]);
    filters
}

/// Identical verdicts to the filter it replaces, for every native number
/// and argument pattern; on x32 numbers the old filter allowed what the
/// new one refuses.
#[cfg(target_arch = "x86_64")]
#[test]
fn same_verdicts_as_the_seccompiler_filter() {
    let old = seccompiler_filters();
    let prog = jail_prog();
    let pol = policy::jail();
    let ruled: Vec<u32> = pol.calls.iter().map(|(n, _)| *n).collect();
    // The calls whose rules changed since: setuid/setgid bits in a
    // creation mode (open, openat, creat, mknod, mknodat) and openat2
    // (ENOSYS). For them the new filter may refuse what the old one let
    // through, never the reverse. The xattr writes, refused with EPERM
    // before, are refused with EOPNOTSUPP now. Every other number must be
    // identical.
    let xattr_writes = [188, 189, 190, 463]; // setxattr, lsetxattr, fsetxattr, setxattrat
    let changed: Vec<u32> = CREATE_CALLS
        .iter()
        .map(|(_, nr, _)| *nr)
        .chain([437])
        .collect();
    let mut tightened = std::collections::BTreeSet::new();
    let sets = arg_sets();
    let few = [
        [0; 6],
        [u64::MAX; 6],
        [libc::TIOCSTI | 1 << 40; 6],
        [0x1234_5678_9abc_def0; 6],
    ];
    let mut x32_closed = 0;
    for nr in numbers() {
        // Arguments only matter for ruled numbers; the rest get a few.
        let args: &[[u64; 6]] = if ruled.contains(&(nr & !policy::X32_SYSCALL_BIT)) {
            &sets
        } else {
            &few
        };
        for a in args {
            let d = data(nr, *a);
            let (new, was) = (verdict(&prog, &d), seccompiler_verdict(&old, &d));
            if nr >= policy::X32_SYSCALL_BIT {
                assert_eq!(new, EPERM, "nr {nr:#x}");
                if was == Verdict::Allow {
                    x32_closed += 1;
                }
            } else if xattr_writes.contains(&nr) {
                assert_eq!((was, new), (EPERM, EOPNOTSUPP), "nr {nr}");
            } else if changed.contains(&nr) && was == Verdict::Allow {
                assert_eq!(new, pol.verdict(pol.arch, nr, a), "nr {nr} args {a:x?}");
                if new != Verdict::Allow {
                    tightened.insert(nr);
                }
            } else {
                assert_eq!(new, was, "nr {nr} args {a:x?}");
            }
        }
        for arch in [AUDIT_ARCH_I386, 0] {
            let d = Data {
                nr,
                arch,
                args: [0; 6],
            };
            assert_eq!(verdict(&prog, &d), seccompiler_verdict(&old, &d));
        }
    }
    // x32 mount, bpf, ptrace: allowed through by the old filter.
    for nr in [libc::SYS_mount, libc::SYS_bpf, libc::SYS_ptrace] {
        let d = data(nr as u32 | policy::X32_SYSCALL_BIT, [0; 6]);
        assert_eq!(seccompiler_verdict(&old, &d), Verdict::Allow);
        assert_eq!(verdict(&prog, &d), EPERM);
    }
    assert!(x32_closed > 600);
    assert_eq!(
        tightened.into_iter().collect::<Vec<_>>(),
        {
            let mut c = changed.clone();
            c.sort();
            c
        },
        "every changed call refuses something the old filter allowed"
    );
}
