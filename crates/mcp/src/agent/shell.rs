//! One long-lived bash inside one jail: the session's shell. Commands are
//! written to its stdin as base64 (so no quoting or heredoc in them can
//! break the framing) and `eval`ed in the shell itself, so `cd` and
//! variables persist between calls. Each command's output ends with a line
//! carrying a per-shell random marker and the exit status.
//!
//! A command that outlives its timeout, or whose call is cancelled, takes
//! the whole jail down (SIGKILL to its init); the next call starts a fresh
//! shell and says so.

use std::io::{Read, Write};
use std::process::{ChildStdin, ChildStdout, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use airlock_jail::{JailSpec, Running};

/// How one command ended.
#[derive(Debug)]
pub struct Ran {
    pub output: Vec<u8>,
    /// More output than the cap was produced (and dropped).
    pub truncated: bool,
    pub status: i32,
    /// What the scan after the command removed or repaired (see
    /// [`Shell::scan`]).
    pub findings: Vec<airlock_jail::Finding>,
}

#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    #[error("the command ran longer than {0:?} and was killed; the shell was restarted, so its state (cwd, variables) is gone")]
    Timeout(Duration),
    #[error("the call was cancelled; the shell was stopped")]
    Cancelled,
    #[error("the shell exited (state is gone; the next call starts a new one)")]
    Exited,
    #[error("could not start the jail: {0}")]
    Start(String),
    #[error("shell i/o: {0}")]
    Io(String),
}

pub struct Shell {
    running: Option<Running>,
    stdin: Option<ChildStdin>,
    stdout: ChildStdout,
    pid: i32,
    marker: String,
    /// Set once any [`Killer`] of this shell fired: the shell is dead or
    /// dying and must not be reused.
    fired: Arc<AtomicBool>,
}

/// Kills a shell from another thread (timeouts, cancellation).
#[derive(Clone)]
pub struct Killer {
    pid: i32,
    fired: Arc<AtomicBool>,
}

impl Killer {
    pub fn kill(&self) {
        self.fired.store(true, Ordering::SeqCst);
        // SIGTERM to the launcher-side init is forwarded to the jail's pid 1
        // and the workload; when pid 1 exits the kernel kills everything
        // left in the jail. SIGKILL on the init alone would not reach them
        // (it cannot be forwarded), so it is only the fallback.
        let pid = self.pid;
        unsafe { libc::kill(pid, libc::SIGTERM) };
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(2));
            unsafe { libc::kill(pid, libc::SIGKILL) };
        });
    }
    pub fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }
}

fn random_hex() -> String {
    let mut b = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b)
        .expect("the system RNG is available");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn b64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub fn unb64(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let s: Vec<u8> = s.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    if s.len() % 4 != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    for c in s.chunks(4) {
        let pad = c.iter().rev().take_while(|&&b| b == b'=').count();
        let mut n = 0u32;
        for &b in &c[..4 - pad] {
            n = (n << 6) | val(b)?;
        }
        n <<= 6 * pad as u32;
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Some(out)
}

/// Single-quotes `s` for bash.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

impl Shell {
    pub fn start(spec: &JailSpec) -> Result<Shell, ShellError> {
        let argv = ["bash".to_string(), "--noprofile".into(), "--norc".into()];
        let mut running =
            airlock_jail::spawn(spec, &argv, [Stdio::piped(), Stdio::piped(), Stdio::null()])
                .map_err(|e| ShellError::Start(e.to_string()))?;
        let stdin = running
            .stdin
            .take()
            .ok_or(ShellError::Io("no stdin".into()))?;
        let stdout = running
            .stdout
            .take()
            .ok_or(ShellError::Io("no stdout".into()))?;
        let pid = running.pid() as i32;
        Ok(Shell {
            running: Some(running),
            stdin: Some(stdin),
            stdout,
            pid,
            marker: format!("__AIRLOCK_{}_", random_hex()),
            fired: Arc::new(AtomicBool::new(false)),
        })
    }

    pub fn killer(&self) -> Killer {
        Killer {
            pid: self.pid,
            fired: self.fired.clone(),
        }
    }

    /// Whether a killer fired on this shell (it cannot run commands any more).
    pub fn killed(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }

    /// Runs `script` in the shell (stdin from /dev/null, stderr into
    /// stdout), keeping at most `cap` bytes of output. `killer` (from
    /// [`Shell::killer`]) is what a timeout or cancellation fires.
    /// `on_output` sees each chunk as it is read, with the bytes read so far
    /// (for progress; the end marker's bytes are never shown to it).
    pub fn run(
        &mut self,
        script: &str,
        cap: usize,
        killer: &Killer,
        on_output: &mut dyn FnMut(usize, &[u8]),
    ) -> Result<Ran, ShellError> {
        let line = format!(
            "{{ eval \"$(builtin printf %s {} | base64 -d)\"; }} </dev/null 2>&1; builtin printf '\\n{}%d\\n' \"$?\"\n",
            b64(script.as_bytes()),
            self.marker
        );
        let Some(stdin) = self.stdin.as_mut() else {
            return Err(ShellError::Exited);
        };
        if stdin
            .write_all(line.as_bytes())
            .and_then(|_| stdin.flush())
            .is_err()
        {
            return Err(if killer.fired() {
                ShellError::Cancelled
            } else {
                ShellError::Exited
            });
        }
        let needle = format!("\n{}", self.marker);
        let mut kept: Vec<u8> = Vec::new();
        let mut truncated = false;
        // Bytes after `cap` are dropped, except a tail long enough to find the marker in.
        let mut tail: Vec<u8> = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut seen = 0usize;
        loop {
            let n = match self.stdout.read(&mut buf) {
                Ok(0) | Err(_) => {
                    return Err(if killer.fired() {
                        ShellError::Cancelled
                    } else {
                        ShellError::Exited
                    })
                }
                Ok(n) => n,
            };
            tail.extend_from_slice(&buf[..n]);
            if let Some(pos) = find(&tail, needle.as_bytes()) {
                let rest = &tail[pos + needle.len()..];
                if let Some(nl) = rest.iter().position(|&b| b == b'\n') {
                    let status = std::str::from_utf8(&rest[..nl])
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(-1);
                    let body = &tail[..pos];
                    keep(&mut kept, body, cap, &mut truncated);
                    return Ok(Ran {
                        output: kept,
                        truncated,
                        status,
                        findings: Vec::new(),
                    });
                }
                continue;
            }
            // No marker yet, so this chunk is the command's output, except
            // for an end that may be the start of the marker.
            seen += n;
            on_output(
                seen - marker_prefix_at_end(&tail, needle.as_bytes()),
                &buf[..n],
            );
            // Move everything but a marker-sized tail into the kept output.
            let hold = needle.len() + 24;
            if tail.len() > hold {
                let cut = tail.len() - hold;
                let moved: Vec<u8> = tail.drain(..cut).collect();
                keep(&mut kept, &moved, cap, &mut truncated);
            }
        }
    }

    /// The jail's post-run scan now: protected files planted so far are
    /// removed, setuid/setgid bits cleared, each one returned.
    pub fn scan(&self) -> Vec<airlock_jail::Finding> {
        self.running.as_ref().map(|r| r.scan()).unwrap_or_default()
    }

    /// Ends the shell: EOF on stdin, then the jail's own wait (which also
    /// removes protected files the session planted).
    pub fn close(mut self) {
        let running = self.running.take();
        self.stdin.take();
        if let Some(r) = running {
            match r.wait(Some(Duration::from_secs(5))) {
                Ok(o) if !o.findings.is_empty() => {
                    tracing::warn!(target: "airlock::mcp", findings = ?o.findings, "session jail planted protected files; removed")
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(target: "airlock::mcp", error = %e, "session jail cleanup")
                }
            }
        }
    }
}

impl Drop for Shell {
    /// A shell dropped without [`Shell::close`] (timeout, error) is killed
    /// and reaped so neither the process nor its scratch files linger.
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            self.stdin.take();
            // The jail's own wait: SIGTERM, then SIGKILL after a grace period.
            let _ = r.wait(Some(Duration::from_millis(1)));
        }
    }
}

fn keep(kept: &mut Vec<u8>, more: &[u8], cap: usize, truncated: &mut bool) {
    let room = cap.saturating_sub(kept.len());
    if more.len() > room {
        *truncated = true;
    }
    kept.extend_from_slice(&more[..more.len().min(room)]);
}

/// The length of the longest end of `hay` that begins `needle` (shorter
/// than the whole needle).
fn marker_prefix_at_end(hay: &[u8], needle: &[u8]) -> usize {
    (1..needle.len().min(hay.len() + 1))
        .rev()
        .find(|&k| hay.ends_with(&needle[..k]))
        .unwrap_or(0)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        for s in ["", "a", "ab", "abc", "abcd", "héllo\0\u{1}'\"$(x)"] {
            assert_eq!(unb64(&b64(s.as_bytes())).unwrap(), s.as_bytes());
        }
        assert_eq!(b64(b"hello"), "aGVsbG8=");
        assert!(unb64("a").is_none());
        assert!(unb64("a$==").is_none());
    }

    #[test]
    fn a_marker_start_at_the_end_is_not_output() {
        assert_eq!(marker_prefix_at_end(b"abc\n__AI", b"\n__AIRLOCK_"), 5);
        assert_eq!(marker_prefix_at_end(b"abc\n", b"\n__AIRLOCK_"), 1);
        assert_eq!(marker_prefix_at_end(b"abc", b"\n__AIRLOCK_"), 0);
        assert_eq!(marker_prefix_at_end(b"", b"\n__AIRLOCK_"), 0);
    }

    #[test]
    fn quoting_survives_single_quotes() {
        assert_eq!(quote("a'b"), "'a'\\''b'");
    }
}
