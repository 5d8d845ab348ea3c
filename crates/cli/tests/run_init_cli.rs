//! What the jail's init hands the command, now that `airlock run` forks it
//! instead of executing a fresh `airlock __jail-init`: the caller's
//! environment does not live on in the init, and SIGPIPE reaches the
//! command at its default (the Rust runtime ignores it in airlock itself).
//! With a root and an unprivileged caller (see `support`).

use std::io::{BufRead, BufReader};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::Stdio;

#[macro_use]
mod support;
use support::{workdir, Jail};

both_modes!(
    sigpipe_is_at_its_default_in_the_command,
    the_callers_environment_is_wiped_from_the_init,
    closed_stdio_is_dev_null_for_the_command,
    exit_holder_shares_the_memory_and_holds_nothing,
    a_run_with_network_that_never_connects_runs_one_thread,
    a_broken_stderr_pipe_does_not_kill_the_launcher,
    run_help_and_other_commands_are_unaffected_by_the_early_init
);

fn sigpipe_is_at_its_default_in_the_command(j: &Jail) {
    let d = workdir();
    let out = j
        .cmd()
        .arg("run")
        .arg("--workdir")
        .arg(d.path())
        .args([
            "--",
            "/bin/sh",
            "-c",
            "yes | head -n 1; grep '^SigIgn' /proc/self/status",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("y"));
    // `yes` ends by SIGPIPE; ignored, it would print "Broken pipe".
    assert!(!stderr.contains("Broken pipe"), "{stderr}");
    let ignored = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|m| u64::from_str_radix(m, 16).ok())
        .expect("a SigIgn line");
    assert_eq!(
        ignored & (1 << (libc::SIGPIPE - 1)),
        0,
        "SigIgn {ignored:x}"
    );
}

fn the_callers_environment_is_wiped_from_the_init(j: &Jail) {
    let d = workdir();
    let secret = "airlock-test-secret-5d1f0c";
    let mut c = j
        .cmd()
        .env("AIRLOCK_TEST_SECRET", secret)
        .arg("run")
        .arg("--workdir")
        .arg(d.path())
        .args(["--", "/bin/sh", "-c", "echo ready; read _; exit 0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(c.stdout.take().unwrap()).lines();
    assert_eq!(out.next().unwrap().unwrap(), "ready");
    // The init (in the host's pid namespace) is airlock run's child; its
    // own children are the jail's pid 1 and, below it, the command.
    let children = |pid: u32| -> Vec<u32> {
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    };
    // Besides the init, a root launcher has a cleaner child (it removes
    // the run's cgroup after the jail's processes exit; it has no children)
    // where the exit holder does not do that (x86-64 glibc). The holder
    // shares airlock run's memory (see
    // `exit_holder_shares_the_memory_and_holds_nothing`), its environment
    // included: it counts as airlock run itself here.
    let comm = |pid: u32| std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    let (holder, kids): (Vec<u32>, Vec<u32>) = children(c.id())
        .into_iter()
        .partition(|k| comm(*k).trim() == "airlock-exit");
    assert!(holder.len() <= 1, "{holder:?}");
    let init: Vec<u32> = kids
        .iter()
        .copied()
        .filter(|k| !children(*k).is_empty())
        .collect();
    assert_eq!(init.len(), 1, "airlock run's children: {kids:?}");
    let holder_cleans = cfg!(all(target_arch = "x86_64", target_env = "gnu"));
    let expected = if j.mode == support::Mode::Root && !holder_cleans {
        2
    } else {
        1
    };
    assert_eq!(holder.len(), usize::from(holder_cleans), "{holder:?}");
    assert_eq!(kids.len(), expected, "airlock run's children: {kids:?}");
    let pid1 = children(init[0]);
    assert_eq!(pid1.len(), 1, "the init's children: {pid1:?}");
    // The cleaner holds its instruction pipe and nothing else: none of the
    // command's stdio, and not the init's spec pipe, whose end-of-file the
    // init waits for before it builds the jail.
    for cleaner in kids.iter().filter(|k| !init.contains(k)) {
        let fds: Vec<_> = std::fs::read_dir(format!("/proc/{cleaner}/fd"))
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| std::fs::read_link(e.path()).unwrap_or_default())
            .collect();
        assert_eq!(fds.len(), 1, "the cleaner's descriptors: {fds:?}");
    }
    for pid in [c.id()].into_iter().chain(kids).chain([pid1[0]]) {
        let env = std::fs::read(format!("/proc/{pid}/environ"));
        // A non-root test cannot read a non-dumpable process's environ;
        // that hides it as well, and the root run checks the bytes.
        if let Ok(env) = env {
            let has = env.windows(secret.len()).any(|w| w == secret.as_bytes());
            assert_eq!(
                has,
                pid == c.id() || holder.contains(&pid),
                "pid {pid} (airlock run is {}): secret in environ",
                c.id()
            );
        }
    }
    drop(c.stdin.take());
    assert!(c.wait().unwrap().success());
}

/// `airlock run` started with descriptors 0, 1 and 2 closed: the init is
/// forked before std's runtime start, which would have opened them on
/// `/dev/null`; done first there too, the init's own pipes cannot take
/// those numbers and end up as the command's stdio.
fn closed_stdio_is_dev_null_for_the_command(j: &Jail) {
    let d = workdir();
    let mut c = j.cmd();
    c.arg("run").arg("--workdir").arg(d.path()).args([
        "--",
        "/bin/sh",
        "-c",
        "l=$(readlink /proc/$$/fd/0 /proc/$$/fd/1 /proc/$$/fd/2); echo \"$l\" > fds; echo written > out",
    ]);
    unsafe {
        c.pre_exec(|| {
            for fd in 0..3 {
                libc::close(fd);
            }
            Ok(())
        });
    }
    let st = c.status().unwrap();
    assert!(st.success(), "{st:?}");
    let fds = std::fs::read_to_string(d.path().join("fds")).unwrap();
    assert_eq!(
        fds.lines().collect::<Vec<_>>(),
        ["/dev/null", "/dev/null", "/dev/null"],
        "{fds}"
    );
    assert_eq!(
        std::fs::read_to_string(d.path().join("out")).unwrap(),
        "written\n"
    );
}

/// SIGPIPE stays ignored in the launcher (as std's runtime leaves it, now
/// that the init is forked before that runtime starts): with its stderr a
/// pipe nobody reads, the message about a missing command fails to write
/// and airlock ends with a status of its own instead of dying of SIGPIPE.
fn a_broken_stderr_pipe_does_not_kill_the_launcher(j: &Jail) {
    let d = workdir();
    let mut c = j
        .cmd()
        .arg("run")
        .arg("--workdir")
        .arg(d.path())
        .args(["--", "/nonexistent/airlock-test-command"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(c.stderr.take());
    let st = c.wait().unwrap();
    assert_eq!(st.signal(), None, "{st:?}");
    assert!(st.code().is_some_and(|c| c != 0), "{st:?}");
}

/// The early init is only for `airlock run`: help and every other command
/// behave as before (an init forked for `run --help` ends with it: airlock
/// waits for it before it exits).
fn run_help_and_other_commands_are_unaffected_by_the_early_init(j: &Jail) {
    let out = j.cmd().args(["run", "--help"]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("Usage: airlock run"), "{help}");
    assert!(help.contains("Exit status"), "{help}");
    let out = j.cmd().args(["run", "--no-such-flag"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let out = j.cmd().arg("--version").output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("airlock "));
    let out = j
        .cmd()
        .args(["config", "check", "/nonexistent/airlock.yaml"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("/nonexistent/airlock.yaml"),
        "{out:?}"
    );
}

/// The process that takes the address space's teardown off airlock run's
/// exit (`early::holder`): it shares airlock run's memory (so its exit, not
/// airlock's, unmaps it), holds one descriptor (its pipe: none of the
/// command's stdio, nothing of the jail's), has no children, and ends
/// once airlock run has exited.
fn exit_holder_shares_the_memory_and_holds_nothing(j: &Jail) {
    let d = workdir();
    let mut c = j
        .cmd()
        .arg("run")
        .arg("--workdir")
        .arg(d.path())
        .args(["--", "/bin/sh", "-c", "echo ready; read _; exit 3"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(c.stdout.take().unwrap()).lines();
    assert_eq!(out.next().unwrap().unwrap(), "ready");
    let kids = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", c.id())).unwrap();
    let holder: Vec<u32> = kids
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm"))
                .is_ok_and(|n| n.trim() == "airlock-exit")
        })
        .collect();
    assert_eq!(holder.len(), 1, "airlock run's children: {kids}");
    let h = holder[0];
    let maps = |pid: u32| std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    // One address space: the same mappings, the same heap.
    assert_eq!(maps(h), maps(c.id()));
    let fds: Vec<_> = std::fs::read_dir(format!("/proc/{h}/fd"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| std::fs::read_link(e.path()).unwrap_or_default())
        .collect();
    // Its pipe, and a pidfd of the init, whose exit it waits for before
    // it removes the run's cgroup.
    let init: Vec<u32> = kids
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .filter(|p| *p != h)
        .collect();
    assert_eq!(init.len(), 1, "airlock run's children: {kids}");
    let mut pipes = 0;
    for e in std::fs::read_dir(format!("/proc/{h}/fd")).unwrap() {
        let e = e.unwrap();
        let target = std::fs::read_link(e.path()).unwrap_or_default();
        let target = target.to_string_lossy();
        if target.starts_with("pipe:") {
            pipes += 1;
            continue;
        }
        assert_eq!(
            target, "anon_inode:[pidfd]",
            "the holder's descriptors: {fds:?}"
        );
        let info = std::fs::read_to_string(format!(
            "/proc/{h}/fdinfo/{}",
            e.file_name().to_string_lossy()
        ))
        .unwrap();
        assert!(
            info.lines().any(|l| l == format!("Pid:\t{}", init[0])),
            "the pidfd names another process than the init {}: {info}",
            init[0]
        );
    }
    assert_eq!(pipes, 1, "the holder's descriptors: {fds:?}");
    assert!(fds.len() <= 2, "the holder's descriptors: {fds:?}");
    assert!(
        std::fs::read_to_string(format!("/proc/{h}/task/{h}/children"))
            .unwrap()
            .trim()
            .is_empty()
    );
    drop(c.stdin.take());
    assert_eq!(c.wait().unwrap().code(), Some(3));
    // It ends (reparented and reaped, or a zombie) once airlock run has
    // exited; a minute only bounds a wedged machine.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let state = std::fs::read_to_string(format!("/proc/{h}/stat"))
            .ok()
            .and_then(|s| s.rsplit(')').next().map(|r| r.trim().to_string()));
        match state {
            None => break,
            Some(s) if s.starts_with('Z') || s.starts_with('X') => break,
            Some(_) => {}
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the holder outlived airlock run"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// With the network relays on, `airlock run` waits for the command in one
/// thread: that thread forwards signals (a signalfd), polls the relay's
/// listeners and starts the relay and the egress proxy on the first
/// connection; stale sockets are swept in line and, as root, stale cgroups
/// by the cleaner after the run. Every extra thread was a wake-up competing
/// with the jail's start on two cores. Then a connection starts them.
fn a_run_with_network_that_never_connects_runs_one_thread(j: &Jail) {
    let d = workdir();
    let mut c = j
        .cmd()
        .arg("run")
        .arg("--workdir")
        .arg(d.path())
        .args(["--allow-net", "example.com", "--"])
        .args(["/bin/sh", "-c", "echo ready; read _; curl -s -o /dev/null -m 5 http://example.com/; echo connected; read _; exit 0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let tasks = |pid: u32| -> Vec<String> {
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| {
                let t = e.file_name().to_string_lossy().into_owned();
                let comm = std::fs::read_to_string(format!("/proc/{pid}/task/{t}/comm"))
                    .unwrap_or_default();
                format!("{t}:{}", comm.trim())
            })
            .collect()
    };
    let mut stdin = c.stdin.take().unwrap();
    let mut out = BufReader::new(c.stdout.take().unwrap()).lines();
    assert_eq!(out.next().unwrap().unwrap(), "ready");
    let before = tasks(c.id());
    assert_eq!(before.len(), 1, "airlock run's threads: {before:?}");
    // The first connection starts the relay (and the proxy, whose answer,
    // a refusal or a failed lookup, does not matter here).
    std::io::Write::write_all(&mut stdin, b"go\n").unwrap();
    assert_eq!(out.next().unwrap().unwrap(), "connected");
    let after = tasks(c.id());
    assert!(
        after.iter().any(|t| t.ends_with(":airlock-jail-re")),
        "no relay thread after a connection: {after:?}"
    );
    drop(stdin);
    assert_eq!(c.wait().unwrap().code(), Some(0));
}
