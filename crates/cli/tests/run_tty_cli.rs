//! A terminal passes through `airlock run`, and terminal injection through
//! it (TIOCSTI on a real pty) is refused; with a root and with an
//! unprivileged caller (see `support`).

use std::process::Command;

#[macro_use]
mod support;
use support::{chown_jail, workdir, Jail, AIRLOCK};

both_modes!(terminal_passes_through_and_tiocsti_is_refused);

const PROBE: &str = r#"
import fcntl, os, termios
print("tty-in" if os.isatty(0) else "no-tty-in")
print("tty-out" if os.isatty(1) else "no-tty-out")
try:
    fcntl.ioctl(0, termios.TIOCSTI, b"x")
    print("INJECTED")
except PermissionError:
    print("tiocsti-blocked")
except OSError as e:
    print("tiocsti-other", e)
"#;

fn terminal_passes_through_and_tiocsti_is_refused(j: &Jail) {
    let Ok(st) = Command::new("script").arg("--version").output() else {
        eprintln!("SKIPPED: util-linux `script` (for a real pty) is not installed");
        return;
    };
    assert!(st.status.success());
    let d = workdir();
    let probe = d.path().join("probe.py");
    std::fs::write(&probe, PROBE).unwrap();
    chown_jail(&probe);
    let cmd = format!(
        "{AIRLOCK} run --workdir {} -- /usr/bin/python3 probe.py",
        d.path().display()
    );
    // `script` gives the command a real pseudo-terminal on stdin and stdout;
    // it runs as the caller, so the pty is the caller's.
    let o = j
        .caller("script")
        .args(["-qec", &cmd, "/dev/null"])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    assert!(
        lines.contains(&"tty-in") && lines.contains(&"tty-out"),
        "{out}"
    );
    assert!(lines.contains(&"tiocsti-blocked"), "{out}");
    assert!(!out.contains("INJECTED"), "{out}");
}
