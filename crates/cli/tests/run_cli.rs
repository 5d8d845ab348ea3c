//! `airlock run` end to end: the real binary, the real kernel, and the
//! escape attempts a hostile command would make. Each attack asserts the
//! error it must get (an errno, an exit status or a message), not merely
//! that it failed.
//!
//! Every test runs twice (`as_root::NAME`, `as_user::NAME`): once with
//! airlock started by root, once by an unprivileged host user (uid/gid
//! 65534, no supplementary groups), because the jail is built differently
//! in the two cases (root maps the workload to 65534 and has cgroups; an
//! unprivileged caller starts from its own user namespace and has only
//! rlimits). When the tests themselves run unprivileged, the root mode is
//! skipped and the unprivileged one runs as the current user.
//!
//! The errno probes are tables (`*_PROBES`); `escape_suite_is_documented`
//! checks that docs/sandbox.md lists every one with the same expected result.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};

#[macro_use]
mod support;
use support::{chown_jail, is_root, workdir, write, Jail, Mode, NOBODY};

const PY: &str = "/usr/bin/python3";

both_modes!(
    exit_codes_follow_the_shell,
    stdin_and_stdout_pass_through,
    runs_unprivileged_with_no_capabilities_and_filters_on,
    secrets_in_the_environment_do_not_enter,
    credential_files_are_hidden_at_any_depth_and_in_home,
    writes_outside_writable_paths_fail,
    protected_files_stay_read_only_and_planted_ones_are_removed,
    kernel_attack_surface_is_filtered,
    proc_dev_and_host_processes_are_out_of_reach,
    no_network_without_rules,
    socks5_relay_follows_the_same_rules,
    first_connections_start_the_proxy_and_get_through,
    network_goes_through_the_proxy_and_follows_its_rules,
    planted_setuid_and_capability_binaries_gain_nothing,
    limits_contain_fork_bombs_memory_hogs_and_runaways,
);

struct Run {
    code: i32,
    out: String,
    err: String,
}

impl Jail {
    fn run(&self, dir: &Path, extra: &[&str], script: &str) -> Run {
        self.run_env(dir, extra, script, &[])
    }

    fn run_env(&self, dir: &Path, extra: &[&str], script: &str, env: &[(&str, &str)]) -> Run {
        let mut c = self.cmd();
        c.arg("run")
            .arg("--workdir")
            .arg(dir)
            .args(extra)
            .args(["--", "/bin/sh", "-c", script]);
        for (k, v) in env {
            c.env(k, v);
        }
        let o: Output = c.stdin(Stdio::null()).output().unwrap();
        Run {
            code: o.status.code().unwrap_or(-1),
            out: String::from_utf8_lossy(&o.stdout).into_owned(),
            err: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    /// Runs the probe prelude plus `code` in the jail and returns each
    /// `probe NAME RESULT` line as NAME → RESULT.
    fn probes(
        &self,
        dir: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
        code: &str,
    ) -> BTreeMap<String, String> {
        let script_path = dir.join("probe.py");
        write(&script_path, &format!("{PRELUDE}{code}"));
        chown_jail(&script_path);
        let r = self.run_env(dir, extra, &format!("{PY} probe.py"), env);
        assert_eq!(r.code, 0, "{} {}", r.out, r.err);
        r.out
            .lines()
            .filter_map(|l| l.strip_prefix("probe "))
            .map(|l| {
                let (k, v) = l.split_once(' ').unwrap_or((l, ""));
                (k.to_string(), v.to_string())
            })
            .collect()
    }
}

/// Python helpers for the probe tables: `t(name, fn)` reports the errno
/// name an OSError carried (or OK), `sc(name, nr, *args)` does the same for
/// a raw system call.
const PRELUDE: &str = r#"
import ctypes, errno, os, socket, sys
libc = ctypes.CDLL(None, use_errno=True)
def rep(name, res):
    print("probe", name, res, flush=True)
def t(name, f):
    try:
        f()
        rep(name, "OK")
    except OSError as e:
        rep(name, errno.errorcode.get(e.errno, e.errno))
def sc(name, nr, *args):
    ctypes.set_errno(0)
    r = libc.syscall(nr, *args)
    if r == 0 and nr == 56:
        os._exit(0)  # a clone that was let through: the child leaves at once
    rep(name, "OK" if r != -1 else errno.errorcode.get(ctypes.get_errno()))
def rd(p):
    with open(p, "rb") as f:
        f.read()
def wr(p):
    with open(p, "a") as f:
        f.write("x")
"#;

/// Asserts that every probe in `want` ran and got exactly its result.
fn assert_probes(got: &BTreeMap<String, String>, want: &[(&str, &str)]) {
    let bad: Vec<String> = want
        .iter()
        .filter(|(k, v)| got.get(*k).map(String::as_str) != Some(*v))
        .map(|(k, v)| format!("{k}: want {v}, got {:?}", got.get(*k)))
        .collect();
    assert!(bad.is_empty(), "{bad:#?}\nall: {got:#?}");
}

/// Every probe table, for the docs check.
const ALL_PROBES: &[&[(&str, &str)]] = &[
    CREDENTIAL_PROBES,
    WRITE_PROBES,
    PROTECTED_PROBES,
    KERNEL_PROBES,
    PROC_PROBES,
    NETWORK_PROBES,
];

fn read_json(p: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

fn exit_codes_follow_the_shell(j: &Jail) {
    let d = workdir();
    assert_eq!(j.run(d.path(), &[], "exit 3").code, 3);
    assert_eq!(j.run(d.path(), &[], "kill -TERM $$").code, 143);
    let run = |args: &[&str]| {
        let o = j.cmd().arg("run").args(args).output().unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let dir = d.path().to_str().unwrap();
    let (code, err) = run(&["--workdir", dir, "--", "no-such-command-xyz"]);
    assert_eq!(code, Some(127), "{err}");
    write(&d.path().join("notexec"), "#!/bin/sh\n");
    chown_jail(&d.path().join("notexec"));
    assert_eq!(run(&["--workdir", dir, "--", "./notexec"]).0, Some(126));
    // airlock's own failure: 125 with one line.
    let (code, err) = run(&["--workdir", "/nonexistent/dir", "--", "true"]);
    assert_eq!(code, Some(125));
    assert!(err.contains("workdir"), "{err}");
}

fn stdin_and_stdout_pass_through(j: &Jail) {
    let d = workdir();
    let mut c = j
        .cmd()
        .arg("run")
        .arg("--workdir")
        .arg(d.path())
        .args(["--", "/usr/bin/tr", "a-z", "A-Z"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(b"hello jail\n").unwrap();
    let mut out = String::new();
    c.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    assert!(c.wait().unwrap().success());
    assert_eq!(out, "HELLO JAIL\n");
}

fn runs_unprivileged_with_no_capabilities_and_filters_on(j: &Jail) {
    let d = workdir();
    let r = j.run(
        d.path(),
        &[],
        "id -u; id -g; grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status; \
         unshare -U true 2>/dev/null || echo nouserns; echo x > made",
    );
    assert_eq!(r.code, 0, "{}", r.err);
    let lines: Vec<&str> = r.out.lines().collect();
    assert_eq!(lines[0], "1000");
    assert_eq!(lines[1], "1000");
    assert!(r.out.contains("CapEff:\t0000000000000000"), "{}", r.out);
    assert!(r.out.contains("CapBnd:\t0000000000000000"), "{}", r.out);
    assert!(r.out.contains("NoNewPrivs:\t1"), "{}", r.out);
    assert!(r.out.contains("Seccomp:\t2"), "{}", r.out);
    assert!(r.out.contains("nouserns"), "{}", r.out);
    // Files it creates belong to an unprivileged host uid, never root.
    if is_root() {
        assert_eq!(
            std::fs::metadata(d.path().join("made")).unwrap().uid(),
            NOBODY
        );
    }
}

fn secrets_in_the_environment_do_not_enter(j: &Jail) {
    let d = workdir();
    let r = j.run_env(
        d.path(),
        &[],
        "env",
        &[
            ("AWS_SECRET_ACCESS_KEY", "sentinel-aws-123"),
            ("GITHUB_TOKEN", "sentinel-gh-456"),
            ("LANG", "C.UTF-8"),
        ],
    );
    assert_eq!(r.code, 0);
    assert!(!r.out.contains("sentinel"), "{}", r.out);
    assert!(r.out.contains("LANG=C.UTF-8"));
}

const CREDENTIAL_PROBES: &[(&str, &str)] = &[
    ("read-home-ssh-key", "EACCES"),
    ("list-home-ssh-dir", "EACCES"),
    ("read-home-aws-credentials", "EACCES"),
    ("read-home-netrc", "EACCES"),
    ("read-dotenv-depth-5", "EACCES"),
    ("read-dotenv-production-depth-5", "EACCES"),
    ("read-pem-in-workdir", "EACCES"),
    ("read-key-in-workdir", "EACCES"),
    ("read-service-account-json", "EACCES"),
    ("read-custom-deny-read", "EACCES"),
    ("hardlink-to-dotenv", "EXDEV"),
    ("symlink-to-home-ssh-key", "EACCES"),
    ("read-etc-shadow", "EACCES"),
];

fn credential_files_are_hidden_at_any_depth_and_in_home(j: &Jail) {
    let d = workdir();
    // Outside /tmp: the jail has its own /tmp, where a host home would not
    // even be visible.
    let home = tempfile::Builder::new()
        .prefix("airlock-home")
        .tempdir_in("/var/tmp")
        .unwrap();
    std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    write(&home.path().join(".ssh/id_rsa"), "PRIVATE-SSH-KEY");
    write(&home.path().join(".aws/credentials"), "AWS-CREDS");
    write(&home.path().join(".netrc"), "NETRC-PASSWORD");
    for f in [".ssh", ".aws"] {
        std::fs::set_permissions(home.path().join(f), std::fs::Permissions::from_mode(0o755))
            .unwrap();
    }
    for f in [".ssh/id_rsa", ".aws/credentials", ".netrc"] {
        std::fs::set_permissions(home.path().join(f), std::fs::Permissions::from_mode(0o644))
            .unwrap();
    }
    write(&d.path().join("a/b/c/d/e/.env"), "DEEP-DOTENV");
    write(
        &d.path().join("a/b/c/d/e/.env.production"),
        "DEEP-DOTENV-PROD",
    );
    write(&d.path().join("a/b/server.pem"), "PEM-KEY");
    write(&d.path().join("x/prod.key"), "KEY-FILE");
    write(&d.path().join("gcp-service-account-prod.json"), "SA-JSON");
    write(&d.path().join("custom/secret.txt"), "CUSTOM-DENY");
    write(&d.path().join("ok.txt"), "VISIBLE");
    let h = home.path().to_str().unwrap();
    let extra = ["--deny-read", "custom/secret.txt"];
    let env = [("HOME", h)];
    let got = j.probes(
        d.path(),
        &extra,
        &env,
        r#"
H = os.environ["HOME"]
t("read-home-ssh-key", lambda: rd(H + "/.ssh/id_rsa"))
t("list-home-ssh-dir", lambda: os.listdir(H + "/.ssh"))
t("read-home-aws-credentials", lambda: rd(H + "/.aws/credentials"))
t("read-home-netrc", lambda: rd(H + "/.netrc"))
t("read-dotenv-depth-5", lambda: rd("a/b/c/d/e/.env"))
t("read-dotenv-production-depth-5", lambda: rd("a/b/c/d/e/.env.production"))
t("read-pem-in-workdir", lambda: rd("a/b/server.pem"))
t("read-key-in-workdir", lambda: rd("x/prod.key"))
t("read-service-account-json", lambda: rd("gcp-service-account-prod.json"))
t("read-custom-deny-read", lambda: rd("custom/secret.txt"))
t("hardlink-to-dotenv", lambda: os.link("a/b/c/d/e/.env", "hard"))
def via_symlink():
    os.symlink(H + "/.ssh/id_rsa", "soft")
    rd("soft")
t("symlink-to-home-ssh-key", via_symlink)
t("read-etc-shadow", lambda: rd("/etc/shadow"))
"#,
    );
    assert_probes(&got, CREDENTIAL_PROBES);
    // And through the shell's tools: nothing secret comes out, the rest does.
    let script = format!(
        "cat {h}/.ssh/id_rsa {h}/.aws/credentials {h}/.netrc a/b/c/d/e/.env a/b/c/d/e/.env.production \
         a/b/server.pem x/prod.key gcp-service-account-prod.json custom/secret.txt; \
         cp a/b/server.pem copy.pem 2>/dev/null; cat copy.pem; cat ok.txt"
    );
    let r = j.run_env(d.path(), &extra, &script, &env);
    for secret in [
        "PRIVATE-SSH-KEY",
        "AWS-CREDS",
        "NETRC-PASSWORD",
        "DEEP-DOTENV",
        "PEM-KEY",
        "KEY-FILE",
        "SA-JSON",
        "CUSTOM-DENY",
    ] {
        assert!(!r.out.contains(secret), "{secret} leaked: {}", r.out);
    }
    assert!(r.out.contains("VISIBLE"), "{} {}", r.out, r.err);
}

const WRITE_PROBES: &[(&str, &str)] = &[
    ("write-etc", "EROFS"),
    ("write-usr", "EROFS"),
    ("write-outside-workdir", "EROFS"),
];

fn writes_outside_writable_paths_fail(j: &Jail) {
    let d = workdir();
    let extra = workdir();
    // Under /var/tmp: /tmp inside is the jail's own, so a host /tmp path
    // would simply not be there.
    let outside = tempfile::Builder::new()
        .prefix("airlock-outside")
        .tempdir_in("/var/tmp")
        .unwrap();
    std::fs::set_permissions(outside.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let o = outside.path().to_str().unwrap();
    let e = extra.path().to_str().unwrap();
    let got = j.probes(
        d.path(),
        &["--allow-write", e],
        &[],
        &format!(
            r#"
t("write-etc", lambda: wr("/etc/airlock-evil"))
t("write-usr", lambda: wr("/usr/airlock-evil"))
t("write-outside-workdir", lambda: wr("{o}/evil"))
t("write-private-tmp", lambda: wr("/tmp/fine"))
t("write-allow-write", lambda: wr("{e}/fine"))
t("write-workdir", lambda: wr("here"))
"#
        ),
    );
    assert_probes(&got, WRITE_PROBES);
    assert_probes(
        &got,
        &[
            ("write-private-tmp", "OK"),
            ("write-allow-write", "OK"),
            ("write-workdir", "OK"),
        ],
    );
    assert!(!Path::new("/etc/airlock-evil").exists());
    assert!(!Path::new("/usr/airlock-evil").exists());
    // Even though the directory is world-writable on the host.
    assert!(!outside.path().join("evil").exists());
    assert!(extra.path().join("fine").exists());
    assert!(d.path().join("here").exists());
    // The jail's /tmp is its own.
    assert!(
        !Path::new("/tmp/fine").exists()
            || std::fs::read_to_string("/tmp/fine").unwrap_or_default() != "x"
    );
}

const PROTECTED_PROBES: &[(&str, &str)] = &[
    ("append-git-hook", "EROFS"),
    ("append-git-config", "EROFS"),
    ("append-envrc-depth-2", "EROFS"),
    ("delete-git-hook", "EROFS"),
    ("rename-git-config", "EBUSY"),
];

fn protected_files_stay_read_only_and_planted_ones_are_removed(j: &Jail) {
    let d = workdir();
    write(
        &d.path().join(".git/hooks/pre-commit"),
        "#!/bin/sh\nexit 0\n",
    );
    write(&d.path().join(".git/config"), "[core]\n");
    write(&d.path().join("sub/deeper/.envrc"), "export A=1\n");
    for p in [
        ".git",
        ".git/hooks",
        ".git/hooks/pre-commit",
        ".git/config",
        "sub",
        "sub/deeper",
        "sub/deeper/.envrc",
    ] {
        chown_jail(&d.path().join(p));
    }
    let rep_dir = workdir();
    let report = rep_dir.path().join("report.json");
    let got = j.probes(
        d.path(),
        &["--report", report.to_str().unwrap()],
        &[],
        r#"
t("append-git-hook", lambda: wr(".git/hooks/pre-commit"))
t("append-git-config", lambda: wr(".git/config"))
t("append-envrc-depth-2", lambda: wr("sub/deeper/.envrc"))
t("delete-git-hook", lambda: os.unlink(".git/hooks/pre-commit"))
t("rename-git-config", lambda: os.rename(".git/config", ".git/config.old"))
def plant(p):
    os.makedirs(os.path.dirname(p) or ".", exist_ok=True)
    wr(p)
t("plant-bashrc", lambda: plant(".bashrc"))
t("plant-vscode-depth-2", lambda: plant("a/b/.vscode/tasks.json"))
t("plant-mcp-json-depth-1", lambda: plant("a/.mcp.json"))
"#,
    );
    assert_probes(&got, PROTECTED_PROBES);
    assert_eq!(
        std::fs::read_to_string(d.path().join(".git/hooks/pre-commit")).unwrap(),
        "#!/bin/sh\nexit 0\n"
    );
    assert_eq!(
        std::fs::read_to_string(d.path().join(".git/config")).unwrap(),
        "[core]\n"
    );
    assert_eq!(
        std::fs::read_to_string(d.path().join("sub/deeper/.envrc")).unwrap(),
        "export A=1\n"
    );
    // Planting succeeds inside (the files cannot be bound read-only before
    // they exist); the post-run scan removes each one and reports it.
    for planted in [
        "plant-bashrc",
        "plant-vscode-depth-2",
        "plant-mcp-json-depth-1",
    ] {
        assert_eq!(got[planted], "OK", "{got:?}");
    }
    for planted in [".bashrc", "a/b/.vscode", "a/.mcp.json"] {
        assert!(!d.path().join(planted).exists(), "{planted} survived");
    }
    let rep = read_json(&report);
    let mut found: Vec<(String, String)> = rep["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let p = f["path"].as_str().unwrap();
            let p = p.strip_prefix(d.path().to_str().unwrap()).unwrap_or(p);
            (p.to_string(), f["action"].as_str().unwrap().to_string())
        })
        .collect();
    found.sort();
    let want: Vec<(String, String)> = ["/.bashrc", "/a/.mcp.json", "/a/b/.vscode"]
        .iter()
        .map(|p| (p.to_string(), "removed".to_string()))
        .collect();
    assert_eq!(found, want);
}

/// Raw system calls (x86_64 numbers) and socket/ioctl calls the filter or
/// the missing privileges refuse.
const KERNEL_PROBES: &[(&str, &str)] = &[
    ("bpf", "EPERM"),
    ("perf_event_open", "EPERM"),
    ("keyctl", "EPERM"),
    ("add_key", "EPERM"),
    ("request_key", "EPERM"),
    ("ptrace-attach-pid-1", "EPERM"),
    ("process_vm_readv", "EPERM"),
    ("kcmp", "EPERM"),
    ("pidfd_getfd", "EPERM"),
    ("io_uring_setup", "EPERM"),
    ("userfaultfd", "EPERM"),
    ("unshare-user-namespace", "EPERM"),
    ("unshare-mount-namespace", "EPERM"),
    ("clone-new-user-namespace", "EPERM"),
    ("clone3", "ENOSYS"),
    ("setns", "EPERM"),
    ("mount", "EPERM"),
    ("umount2-proc", "EPERM"),
    ("pivot_root", "EPERM"),
    ("chroot", "EPERM"),
    ("open_tree", "EPERM"),
    ("fsopen-tmpfs", "EPERM"),
    ("open_by_handle_at", "EPERM"),
    ("kexec_load", "EPERM"),
    ("init_module", "EPERM"),
    ("finit_module", "EPERM"),
    ("reboot", "EPERM"),
    ("syslog-read-all", "EPERM"),
    ("settimeofday", "EPERM"),
    ("iopl", "EPERM"),
    ("personality-read-implies-exec", "EPERM"),
    ("socket-af-unix", "EPERM"),
    ("socket-af-netlink", "EPERM"),
    ("socket-af-packet", "EPERM"),
    ("socket-af-vsock", "EPERM"),
    ("socket-raw-icmp", "EPERM"),
    ("ioctl-tiocsti", "EPERM"),
    ("ioctl-tioclinux", "EPERM"),
    ("setuid-0", "EINVAL"),
    // Every xattr write, as on a file system without xattrs (95, which
    // Python names ENOTSUP).
    ("setxattr-security-capability", "ENOTSUP"),
    ("fsetxattr-security-capability", "ENOTSUP"),
    ("setxattr-user", "ENOTSUP"),
    ("mknod-char-device", "EPERM"),
];

fn kernel_attack_surface_is_filtered(j: &Jail) {
    let d = workdir();
    let got = j.probes(
        d.path(),
        &[],
        &[],
        r#"
import fcntl, termios
S = ctypes.c_char_p
sc("bpf", 321, 0, 0, 0)
sc("perf_event_open", 298, 0, 0, -1, -1, 0)
sc("keyctl", 250, 0, 0, 0)
sc("add_key", 248, 0, 0, 0, 0, 0)
sc("request_key", 249, 0, 0, 0, 0)
sc("ptrace-attach-pid-1", 101, 16, 1, 0, 0)
sc("process_vm_readv", 310, 1, 0, 0, 0, 0, 0)
sc("kcmp", 312, 1, 1, 0, 0, 0)
sc("pidfd_getfd", 438, 0, 0, 0)
sc("io_uring_setup", 425, 1, 0)
sc("userfaultfd", 323, 0)
sc("unshare-user-namespace", 272, 0x10000000)
sc("unshare-mount-namespace", 272, 0x00020000)
sc("clone-new-user-namespace", 56, 0x10000000 | 17, 0, 0, 0, 0)
sc("clone3", 435, 0, 0)
sc("setns", 308, 0, 0)
sc("mount", 165, S(b"none"), S(b"/tmp"), S(b"tmpfs"), 0, 0)
sc("umount2-proc", 166, S(b"/proc"), 2)
sc("pivot_root", 155, S(b"/tmp"), S(b"/tmp"))
sc("chroot", 161, S(b"/tmp"))
sc("open_tree", 428, -100, S(b"/"), 1)
sc("fsopen-tmpfs", 430, S(b"tmpfs"), 0)
sc("open_by_handle_at", 304, -100, 0, 0)
sc("kexec_load", 246, 0, 0, 0, 0)
sc("init_module", 175, 0, 0, 0)
sc("finit_module", 313, -1, 0, 0)
sc("reboot", 169, 0, 0, 0, 0)
sc("syslog-read-all", 103, 3, 0, 0)
sc("settimeofday", 164, 0, 0)
sc("iopl", 172, 3)
sc("personality-read-implies-exec", 135, 0x0400000)
for fam, kind, name in [(socket.AF_UNIX, socket.SOCK_STREAM, "socket-af-unix"),
                        (socket.AF_NETLINK, socket.SOCK_DGRAM, "socket-af-netlink"),
                        (17, socket.SOCK_DGRAM, "socket-af-packet"),
                        (40, socket.SOCK_STREAM, "socket-af-vsock")]:
    t(name, lambda: socket.socket(fam, kind))
t("socket-raw-icmp", lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, 1))
r, w = os.pipe()
t("ioctl-tiocsti", lambda: fcntl.ioctl(r, termios.TIOCSTI, b"x"))
t("ioctl-tioclinux", lambda: fcntl.ioctl(r, 0x541C, b"\x00"))
t("setuid-0", lambda: os.setuid(0))
def setcap():
    open("capfile", "w").close()
    os.setxattr("capfile", "security.capability", b"\x01\x00\x00\x02" + b"\x00" * 16)
t("setxattr-security-capability", setcap)
def fsetcap():
    with open("capfile2", "w") as f:
        os.setxattr(f.fileno(), "security.capability", b"\x01\x00\x00\x02" + b"\x00" * 16)
t("fsetxattr-security-capability", fsetcap)
t("setxattr-user", lambda: os.setxattr("capfile", "user.note", b"x"))
t("mknod-char-device", lambda: os.mknod("devmem", 0o20666, os.makedev(1, 1)))
pid = os.fork()
if pid == 0:
    os._exit(0)
os.waitpid(pid, 0)
rep("fork", "OK")
"#,
    );
    assert_probes(&got, KERNEL_PROBES);
    // Ordinary process creation still works.
    assert_eq!(got.get("fork").map(String::as_str), Some("OK"));
}

const PROC_PROBES: &[(&str, &str)] = &[
    ("write-proc-sys-kernel-sysrq", "ENOENT"),
    ("write-proc-sysrq-trigger", "ENOENT"),
    ("read-proc-kcore", "ENOENT"),
    ("read-proc-kallsyms", "EACCES"),
    ("list-proc-1-root", "ENOENT"),
    ("read-proc-1-mem", "ENOENT"),
    ("read-proc-1-environ", "ENOENT"),
    ("signal-host-process", "ESRCH"),
    ("open-dev-mem", "ENOENT"),
    ("open-dev-kvm", "ENOENT"),
];

fn proc_dev_and_host_processes_are_out_of_reach(j: &Jail) {
    let d = workdir();
    // A host process the jail must not be able to signal: this test.
    let host_pid = std::process::id();
    let got = j.probes(
        d.path(),
        &[],
        &[],
        &format!(
            r#"
t("write-proc-sys-kernel-sysrq", lambda: wr("/proc/sys/kernel/sysrq"))
t("write-proc-sysrq-trigger", lambda: wr("/proc/sysrq-trigger"))
t("read-proc-kcore", lambda: rd("/proc/kcore"))
t("read-proc-kallsyms", lambda: rd("/proc/kallsyms"))
t("list-proc-1-root", lambda: os.listdir("/proc/1/root"))
t("read-proc-1-mem", lambda: rd("/proc/1/mem"))
t("read-proc-1-environ", lambda: rd("/proc/1/environ"))
t("signal-host-process", lambda: os.kill({host_pid}, 0))
t("open-dev-mem", lambda: rd("/dev/mem"))
t("open-dev-kvm", lambda: rd("/dev/kvm"))
rep("visible-pids", len([p for p in os.listdir("/proc") if p.isdigit()]))
"#
        ),
    );
    assert_probes(&got, PROC_PROBES);
    let visible: u32 = got["visible-pids"].parse().unwrap();
    assert!(visible < 10, "host processes visible: {visible}");
}

const NETWORK_PROBES: &[(&str, &str)] = &[
    ("tcp-host-loopback", "ECONNREFUSED"),
    ("tcp6-host-loopback", "ECONNREFUSED"),
    ("tcp-internet", "ENETUNREACH"),
    ("udp-dns-internet", "ENETUNREACH"),
];

fn no_network_without_rules(j: &Jail) {
    let d = workdir();
    // Something really listens on the host's loopback: the jail's loopback
    // is its own, so the connection is refused there.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let l6 = std::net::TcpListener::bind(("::1", port)).ok();
    let got = j.probes(
        d.path(),
        &[],
        &[],
        &format!(
            r#"
t("tcp-host-loopback", lambda: socket.create_connection(("127.0.0.1", {port}), 2))
t("tcp6-host-loopback", lambda: socket.create_connection(("::1", {port}), 2))
t("tcp-internet", lambda: socket.create_connection(("1.1.1.1", 443), 2))
t("udp-dns-internet", lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("8.8.8.8", 53)))
"#
        ),
    );
    drop(l6);
    assert_probes(&got, NETWORK_PROBES);
}

/// A tiny HTTP server on the host's loopback that answers every request
/// with 200 and the request head it received, and keeps the heads it saw
/// (the proxy may redact an injected credential in what it echoes back).
fn http_echo() -> (u16, Arc<Mutex<Vec<String>>>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let keep = seen.clone();
    std::thread::spawn(move || {
        for s in l.incoming().take(4) {
            let Ok(mut s) = s else { continue };
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]).to_string();
            keep.lock().unwrap().push(head.clone());
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{head}",
                head.len()
            );
        }
    });
    (port, seen)
}

fn socks5_relay_follows_the_same_rules(j: &Jail) {
    let d = workdir();
    let (port, _seen) = http_echo();
    // The credential is the one in the proxy variables; SOCKS5 gets it as
    // username/password on the jail's 127.0.0.1:1080.
    let cfg = d.path().join("socks.yaml");
    write(
        &cfg,
        &format!("version: 1\nsandbox:\n  network:\n    allow: [\"127.0.0.1:{port}\"]\n    allow_private: [\"127.0.0.1/32\"]\n"),
    );
    let r = j.run(
        d.path(),
        &["--config", cfg.to_str().unwrap()],
        &format!(
            "P=${{HTTP_PROXY#http://}}; S=\"socks5h://${{P%:3128}}:1080\"; \
             curl -sS -x \"$S\" http://127.0.0.1:{port}/via-socks; echo; \
             curl -sS -m 5 -x \"$S\" http://example.com/ >/dev/null 2>&1; echo socks-denied=$?; \
             curl -sS -m 5 -x socks5h://127.0.0.1:1080 http://127.0.0.1:{port}/ >/dev/null 2>&1; echo no-credential=$?"
        ),
    );
    assert!(r.out.contains("GET /via-socks"), "{} {}", r.out, r.err);
    // curl 97: the SOCKS5 server refused the connection / the login.
    assert!(r.out.contains("socks-denied=97"), "{}", r.out);
    assert!(r.out.contains("no-credential=97"), "{}", r.out);
}

/// The egress proxy starts on the first connection (its socket is bound
/// before the jail starts): the connections that start it, made at once
/// through both relays as the command's very first act, wait in the
/// backlog and get through; none is refused or lost.
fn first_connections_start_the_proxy_and_get_through(j: &Jail) {
    let d = workdir();
    let (port, seen) = http_echo();
    let cfg = d.path().join("lazy.yaml");
    write(
        &cfg,
        &format!("version: 1\nsandbox:\n  network:\n    allow: [\"127.0.0.1:{port}\"]\n    allow_private: [\"127.0.0.1/32\"]\n"),
    );
    let rep_dir = workdir();
    let report = rep_dir.path().join("report.json");
    let r = j.run(
        d.path(),
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ],
        &format!(
            "P=${{HTTP_PROXY#http://}}; S=\"socks5h://${{P%:3128}}:1080\"; \
             curl -sS -m 10 http://127.0.0.1:{port}/first-http > a.out 2>&1 & \
             curl -sS -m 10 -x \"$S\" http://127.0.0.1:{port}/first-socks > b.out 2>&1 & \
             curl -sS -m 10 http://127.0.0.1:{port}/first-again > c.out 2>&1 & \
             wait; cat a.out b.out c.out"
        ),
    );
    assert_eq!(r.code, 0, "{} {}", r.out, r.err);
    for path in ["/first-http", "/first-socks", "/first-again"] {
        assert!(
            r.out.contains(&format!("GET {path}")),
            "{path}: {} {}",
            r.out,
            r.err
        );
    }
    assert_eq!(seen.lock().unwrap().len(), 3);
    // The proxy that started on demand recorded all three.
    let rep = read_json(&report);
    assert_eq!(rep["connections"], 3, "{rep}");
}

fn network_goes_through_the_proxy_and_follows_its_rules(j: &Jail) {
    let d = workdir();
    let (port, seen) = http_echo();
    let cfg = d.path().join("net.yaml");
    write(
        &cfg,
        &format!("version: 1\nsandbox:\n  network:\n    allow: [\"127.0.0.1:{port}\"]\n    allow_private: [\"127.0.0.1/32\"]\ncredentials:\n  - host: \"127.0.0.1:{port}\"\n    header: X-Api-Key\n    value: \"${{env:AIRLOCK_TEST_API_KEY}}\"\n    plain_http: true\n"),
    );
    let rep_dir = workdir();
    let report = rep_dir.path().join("report.json");
    let r = j.run_env(
        d.path(),
        &["--config", cfg.to_str().unwrap(), "--report", report.to_str().unwrap()],
        &format!(
            "curl -sS http://127.0.0.1:{port}/hello; echo; curl -sS -o /dev/null -w 'denied=%{{http_code}}\\n' http://example.com/; \
             curl -sS --noproxy '*' -m 2 http://127.0.0.1:{port}/direct >/dev/null 2>&1; echo direct=$?; env | grep -c sentinel-api-key"
        ),
        &[("AIRLOCK_TEST_API_KEY", "sentinel-api-key-789")],
    );
    assert!(r.out.contains("GET /hello"), "{} {}", r.out, r.err);
    // The upstream saw the injected credential; the jail never did.
    let heads = seen.lock().unwrap().join("\n").to_ascii_lowercase();
    assert!(heads.contains("x-api-key: sentinel-api-key-789"), "{heads}");
    assert!(r.out.contains("denied=403"), "{}", r.out);
    // curl 7: could not connect (the jail's own loopback has no listener).
    assert!(r.out.contains("direct=7"), "{}", r.out);
    assert!(
        r.out.trim_end().ends_with('0'),
        "secret in the jail's env: {}",
        r.out
    );
    let rep = read_json(&report);
    assert_eq!(rep["network_denials"][0]["host"], "example.com");
}

fn planted_setuid_and_capability_binaries_gain_nothing(j: &Jail) {
    if !is_root() {
        eprintln!("SKIPPED: needs root to prepare setuid/file-capability binaries");
        return;
    }
    let d = workdir();
    // Prepared by root (as "an earlier run that got root" would) in both
    // modes: a setuid-root copy of id and a python with cap_setuid in the
    // workdir. In user mode the jail then runs as the unprivileged caller.
    let suid = d.path().join("suid-id");
    std::fs::copy("/usr/bin/id", &suid).unwrap();
    std::os::unix::fs::chown(&suid, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(&suid, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let capy = d.path().join("cap-python");
    std::fs::copy(std::fs::canonicalize(PY).unwrap(), &capy).unwrap();
    let setcap = Command::new("setcap")
        .arg("cap_setuid,cap_dac_override+ep")
        .arg(&capy)
        .status();
    let rep_dir = workdir();
    let report = rep_dir.path().join("report.json");
    // The post-run scan takes setuid files changed since the run began
    // (by the kernel's coarse change clock, a tick behind) for the run's.
    std::thread::sleep(std::time::Duration::from_millis(50));
    let r = j.run(
        d.path(),
        &["--report", report.to_str().unwrap()],
        "./suid-id -u; ./cap-python -c 'import os; os.setuid(0); print(\"ROOT\")' 2>&1 | tail -1; \
         cp /bin/sh ./mysh && chmod u+s ./mysh 2>&1; echo chmod-u=$?; chmod 2755 ./mysh 2>&1; echo chmod-g=$?; \
         /usr/bin/python3 -c 'import os; os.close(os.open(\"made-suid\", os.O_CREAT | os.O_WRONLY, 0o6755))' 2>&1 | tail -1; echo planted",
    );
    // nosuid mounts and no_new_privs: the setuid-root id runs as the jail's uid.
    assert_eq!(r.out.lines().next(), Some("1000"), "{} {}", r.out, r.err);
    // seccomp refuses setuid/setgid bits through chmod and in a creation
    // mode, so the post-run scan has nothing to clear.
    assert!(r.out.contains("Operation not permitted"), "{}", r.out);
    assert!(r.out.contains("chmod-u=1"), "{} {}", r.out, r.err);
    assert!(r.out.contains("chmod-g=1"), "{} {}", r.out, r.err);
    assert!(
        r.out
            .contains("PermissionError: [Errno 1] Operation not permitted: 'made-suid'"),
        "{}",
        r.out
    );
    assert!(r.out.contains("planted"), "{}", r.out);
    let mode = |p: &str| std::fs::metadata(d.path().join(p)).unwrap().mode();
    assert_eq!(mode("mysh") & 0o6000, 0);
    assert!(!d.path().join("made-suid").exists());
    // The setuid file root prepared before the run is left alone.
    assert_ne!(mode("suid-id") & 0o4000, 0);
    let rep = read_json(&report);
    let findings = rep["findings"].as_array().unwrap();
    assert!(findings.is_empty(), "{findings:?}");
    assert!(!r.out.contains("ROOT"), "{}", r.out);
    if setcap.is_ok_and(|s| s.success()) {
        // The file capability is not honoured (nosuid, no_new_privs), and
        // uid 0 does not exist in the jail: EINVAL.
        assert!(r.out.contains("[Errno 22]"), "{}", r.out);
    }
    // What the jail planted is owned by nobody, not root.
    assert_eq!(
        std::fs::metadata(d.path().join("mysh")).unwrap().uid(),
        NOBODY
    );
}

fn limits_contain_fork_bombs_memory_hogs_and_runaways(j: &Jail) {
    let d = workdir();
    let cfg = d.path().join("limits.yaml");
    write(
        &cfg,
        "version: 1\nsandbox:\n  limits:\n    pids: 64\n    memory: 128MiB\n",
    );
    let c = cfg.to_str().unwrap();
    // With root, cgroups (pids.max, memory.max) contain these; an
    // unprivileged caller has none and falls back to RLIMIT_NPROC and
    // RLIMIT_DATA.
    let cgroup = j.mode == Mode::Root;
    // Fork bomb: contained, the run ends, nothing is left behind.
    let rep_dir = workdir();
    let report = rep_dir.path().join("bomb.json");
    let r = j.run(
        d.path(),
        &[
            "--config",
            c,
            "--timeout",
            "10s",
            "--report",
            report.to_str().unwrap(),
        ],
        "for i in $(seq 1 200); do sleep 5 & done; echo spawned-all",
    );
    assert!(!r.out.contains("spawned-all"), "{} {}", r.out, r.err);
    assert!(r.err.contains("Cannot fork"), "{}", r.err);
    let rep = read_json(&report);
    assert_eq!(rep["cgroup"], cgroup, "{rep}");
    assert_eq!(rep["pids_limited"], cgroup, "{rep}");
    // Memory hog: killed by the cgroup (and the report says so), or refused
    // its allocation by RLIMIT_DATA.
    let report = rep_dir.path().join("mem.json");
    let r = j.run(
        d.path(),
        &["--config", c, "--report", report.to_str().unwrap()],
        &format!("{PY} -c 'x = bytearray(512 * 1024 * 1024); print(len(x))'"),
    );
    assert!(!r.out.contains("536870912"), "{}", r.out);
    let rep = read_json(&report);
    if cgroup {
        assert_eq!(r.code, 137, "{}", r.err);
        assert_eq!(rep["oom_killed"], true, "{rep}");
        // Read after the run (from files opened while it ran): the peak
        // is the hog's, near the 128 MiB limit.
        let peak = rep["peak_memory"].as_u64().unwrap_or(0);
        assert!(peak > 64 << 20, "{rep}");
    } else {
        assert_eq!(r.code, 1, "{}", r.err);
        assert!(r.err.contains("MemoryError"), "{}", r.err);
    }
    // Timeout: the whole tree dies, including a daemonised grandchild.
    let marker = d.path().join("survivor");
    let t0 = std::time::Instant::now();
    let r = j.run(
        d.path(),
        &["--timeout", "1s"],
        "(setsid sh -c 'sleep 3; echo alive > survivor' &); sleep 60",
    );
    assert!(t0.elapsed() < std::time::Duration::from_secs(8));
    assert!(r.code == 143 || r.code == 137, "code {}", r.code);
    assert!(r.err.contains("timed out"), "{}", r.err);
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert!(!marker.exists(), "a grandchild outlived the jail");
}

/// docs/sandbox.md lists every probe of the tables above with the same
/// expected result, so the documented suite is the one that runs.
#[test]
fn escape_suite_is_documented() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/sandbox.md"
    ))
    .unwrap();
    let section = doc
        .split("\n## Escape suite")
        .nth(1)
        .expect("docs/sandbox.md has an \"## Escape suite\" section");
    let section = section.split("\n## ").next().unwrap();
    let rows: BTreeMap<String, String> = section
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            // | `probe` | what it tries | `EXPECTED` |
            if cells.len() < 4 {
                return None;
            }
            let name = cells[1].strip_prefix('`')?.strip_suffix('`')?;
            let want = cells[3].trim_matches('`');
            Some((name.to_string(), want.to_string()))
        })
        .collect();
    let mut missing = Vec::new();
    let mut names = std::collections::BTreeSet::new();
    for (name, want) in ALL_PROBES.iter().flat_map(|t| t.iter()) {
        assert!(names.insert(*name), "probe {name} is in two tables");
        if rows.get(*name).map(String::as_str) != Some(*want) {
            missing.push(format!("| `{name}` | … | `{want}` |"));
        }
    }
    assert!(
        missing.is_empty(),
        "docs/sandbox.md Escape suite lacks or disagrees on:\n{}",
        missing.join("\n")
    );
    // The issue asks for at least 40 attacks; the errno probes alone are
    // more than that.
    assert!(names.len() >= 40, "{}", names.len());
}
