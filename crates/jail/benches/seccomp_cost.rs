//! What the jail's seccomp filter costs: the attach (CPU time of the
//! `prctl` + `seccomp` calls in a fresh process, as in the command's
//! process before its exec) and the cost per call of the workload, for
//! no filter, the filters seccompiler built before (the recorded copy in
//! tests/data) and the generated one. On demand only:
//!
//!   cargo bench -p airlock-jail --bench seccomp_cost [-- ROUNDS [CALLS]]
//!
//! Every sample runs in a fresh child process (a filter cannot be
//! removed); the variants are interleaved. Prints medians (p10, p90).

use std::process::Command;

use airlock_jail::seccomp::{self, BpfProgram};

fn old_filters() -> Vec<BpfProgram> {
    let text = include_str!("../tests/data/seccompiler-0.5-x86_64.txt");
    let mut fs: Vec<BpfProgram> = Vec::new();
    for line in text.lines() {
        if line.starts_with("# filter") {
            fs.push(Vec::new());
        } else if !line.starts_with('#') && !line.is_empty() {
            let f: Vec<&str> = line.split_whitespace().collect();
            let hex = |s: &str| u32::from_str_radix(s.trim_start_matches("0x"), 16).unwrap();
            fs.last_mut().unwrap().push(libc::sock_filter {
                code: hex(f[0]) as u16,
                jt: f[1].parse().unwrap(),
                jf: f[2].parse().unwrap(),
                k: hex(f[3]),
            });
        }
    }
    fs
}

fn cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// In the child: install `which`, then either report the attach's CPU
/// time or run `calls` of `call` and report CPU ns per call.
fn child(which: &str, what: &str, call: &str, calls: u64) {
    let progs = match which {
        "old" => old_filters(),
        "new" => seccomp::compile().unwrap(),
        _ => Vec::new(),
    };
    let t = cpu_ns();
    if !progs.is_empty() {
        seccomp::apply(&progs).unwrap();
    }
    if what == "attach" {
        println!("{}", cpu_ns() - t);
        return;
    }
    let dir = std::env::temp_dir().join(format!("seccomp-cost-{}", std::process::id()));
    let path = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).unwrap();
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_CREAT | libc::O_WRONLY, 0o644) };
    let mut p = [0; 2];
    unsafe { libc::pipe(p.as_mut_ptr()) };
    let mut n: libc::c_int = 0;
    let x32_getppid = 0x4000_0000 | libc::SYS_getppid;
    let t = cpu_ns();
    for _ in 0..calls {
        unsafe {
            match call {
                "getppid" => libc::syscall(libc::SYS_getppid),
                "ioctl" => libc::syscall(libc::SYS_ioctl, p[0], libc::FIONREAD, &mut n),
                "fchmod" => libc::syscall(libc::SYS_fchmod, fd, 0o644),
                "fchmodat2" => libc::syscall(452, libc::AT_FDCWD, path.as_ptr(), 0o644, 0),
                "x32" => libc::syscall(x32_getppid),
                // The hottest call with a rule (setuid/setgid bits in the
                // mode); seccompiler's filter, like the generated one before
                // that rule, let the kernel's cache skip it. With a close,
                // which no filter rules.
                "openat" => {
                    let r = libc::syscall(
                        libc::SYS_openat,
                        libc::AT_FDCWD,
                        c"/dev/null".as_ptr(),
                        libc::O_RDONLY,
                        0,
                    );
                    libc::close(r as libc::c_int);
                    r
                }
                c => panic!("unknown call {c}"),
            };
        }
    }
    println!("{}", (cpu_ns() - t) as f64 / calls as f64);
    let _ = std::fs::remove_file(&dir);
}

fn sample(which: &str, what: &str, call: &str, calls: u64) -> f64 {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--child", which, what, call, &calls.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{which} {what} {call}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn summary(mut v: Vec<f64>) -> String {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    format!("{:8.1} ({:.1}, {:.1})", at(0.5), at(0.1), at(0.9))
}

fn main() {
    if cfg!(not(target_arch = "x86_64")) {
        println!("x86_64 only: the recorded old filter is x86_64's");
        return;
    }
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.first().map(String::as_str) == Some("--child") {
        child(&args[1], &args[2], &args[3], args[4].parse().unwrap());
        return;
    }
    let rounds: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(200);
    let calls: u64 = args
        .get(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let variants = ["none", "old", "new"];
    println!(
        "filter sizes: old {:?}, new {:?} instructions",
        old_filters().iter().map(Vec::len).collect::<Vec<_>>(),
        seccomp::compile()
            .unwrap()
            .iter()
            .map(Vec::len)
            .collect::<Vec<_>>()
    );
    let mut attach = vec![Vec::new(), Vec::new()];
    for r in 0..rounds {
        for i in if r % 2 == 0 { [0, 1] } else { [1, 0] } {
            attach[i].push(sample(variants[i + 1], "attach", "-", 0) / 1000.0);
        }
    }
    for (i, v) in attach.into_iter().enumerate() {
        println!("attach {:4} {} us", variants[i + 1], summary(v));
    }
    let loop_rounds = 5;
    for call in ["getppid", "ioctl", "fchmod", "fchmodat2", "x32", "openat"] {
        let mut per = vec![Vec::new(), Vec::new(), Vec::new()];
        for r in 0..loop_rounds {
            let order: Vec<usize> = if r % 2 == 0 {
                vec![0, 1, 2]
            } else {
                vec![2, 1, 0]
            };
            for i in order {
                per[i].push(sample(variants[i], "loop", call, calls));
            }
        }
        for (i, v) in per.into_iter().enumerate() {
            println!("{call:9} {:4} {} ns/call", variants[i], summary(v));
        }
    }
}
