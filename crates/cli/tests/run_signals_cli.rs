//! Signals sent to `airlock run` reach the command inside the jail, and the
//! command's own exit status comes back; with a root and with an
//! unprivileged caller (see `support`).

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

#[macro_use]
mod support;
use support::{workdir, Jail};

both_modes!(sigterm_and_sigusr1_reach_the_command);

fn sigterm_and_sigusr1_reach_the_command(j: &Jail) {
    let d = workdir();
    let script = "trap 'echo got-usr1' USR1; trap 'echo got-term; exit 7' TERM; echo ready; \
                  while :; do sleep 0.1; done";
    let mut c = j
        .cmd()
        .arg("run")
        .arg("--workdir")
        .arg(d.path())
        .args(["--", "/bin/bash", "-c", script])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(c.stdout.take().unwrap()).lines();
    assert_eq!(out.next().unwrap().unwrap(), "ready");
    unsafe { libc::kill(c.id() as i32, libc::SIGUSR1) };
    assert_eq!(out.next().unwrap().unwrap(), "got-usr1");
    unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
    assert_eq!(out.next().unwrap().unwrap(), "got-term");
    let t = Instant::now();
    loop {
        if let Some(st) = c.try_wait().unwrap() {
            assert_eq!(st.code(), Some(7));
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "airlock run did not end"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
