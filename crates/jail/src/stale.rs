//! Leftovers of launchers that died without cleaning up (SIGKILL, power
//! loss, a crash): each run owns a scratch directory `.airlock-run-PID-N`
//! in the temp dir and, as root, cgroups `airlock/run-PID-N`. A run removes
//! its own when it ends; this removes those whose launcher PID is gone, so
//! a host that runs jails for months does not accumulate thousands of them.
//!
//! Only entries named by a dead PID are touched. A live PID (even a reused
//! one) keeps its entries; a cgroup that still holds processes cannot be
//! removed (the kernel refuses `rmdir`) and is left alone.

use std::path::{Path, PathBuf};
use std::sync::Once;

use crate::probe::{cgroup_layout, CgroupLayout};

/// Runs the sweep once per process, on a background thread, so it never
/// adds to a jail's start-up time. `temp_dir`: also look for scratch
/// directories in the temp dir. Runs make those only when the shared mount
/// point is not usable, so a run that has none skips reading the temp dir,
/// which on a busy host holds thousands of entries (that read was ~4 % of
/// a one-shot `airlock run`'s CPU).
pub fn sweep_once(temp_dir: bool) {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = std::thread::Builder::new()
            .name("airlock-jail-sweep".into())
            .spawn(move || sweep(temp_dir));
    });
}

/// Removes the cgroups and (with `temp_dir`) the scratch directories of
/// dead launchers.
pub fn sweep(temp_dir: bool) -> usize {
    let mut removed = 0;
    if temp_dir {
        removed += sweep_dir(&std::env::temp_dir(), ".airlock-run-");
    }
    for parent in cgroup_parents() {
        removed += sweep_dir(&parent, "run-");
    }
    removed
}

/// [`sweep`] of the given cgroup parents alone (a run's `airlock`
/// directories), on this thread.
pub fn sweep_cgroups(parents: &[PathBuf]) -> usize {
    parents.iter().map(|p| sweep_dir(p, "run-")).sum()
}

fn cgroup_parents() -> Vec<PathBuf> {
    match cgroup_layout() {
        CgroupLayout::V2(root) => vec![root.join("airlock")],
        CgroupLayout::V1 { memory, pids, .. } => [memory, pids]
            .into_iter()
            .flatten()
            .map(|d| d.join("airlock"))
            .collect(),
        CgroupLayout::None => Vec::new(),
    }
}

/// The launcher PID in `PREFIXpid-n`, if the name has that shape.
fn launcher_pid(name: &str, prefix: &str) -> Option<i32> {
    let rest = name.strip_prefix(prefix)?;
    let (pid, n) = rest.split_once('-')?;
    n.parse::<u64>().ok()?;
    pid.parse().ok().filter(|p| *p > 0)
}

fn alive(pid: i32) -> bool {
    // EPERM means it exists but belongs to someone else: alive.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

fn sweep_dir(dir: &Path, prefix: &str) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|n| launcher_pid(n, prefix)) else {
            continue;
        };
        // remove_dir, never remove_dir_all: a scratch directory is empty
        // once its run is over, and a cgroup directory only goes with rmdir.
        if !alive(pid) && std::fs::remove_dir(e.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_parsed_strictly() {
        assert_eq!(
            launcher_pid(".airlock-run-123-4", ".airlock-run-"),
            Some(123)
        );
        assert_eq!(launcher_pid("run-77-0", "run-"), Some(77));
        assert_eq!(launcher_pid("run-77", "run-"), None);
        assert_eq!(launcher_pid("run-x-1", "run-"), None);
        assert_eq!(launcher_pid("run-0-1", "run-"), None);
        assert_eq!(launcher_pid("run--1-1", "run-"), None);
        assert_eq!(launcher_pid("other-1-1", "run-"), None);
    }

    #[test]
    fn removes_only_dead_launchers_empty_directories() {
        let tmp = tempfile::tempdir().unwrap();
        // A PID above pid_max never exists.
        let dead = tmp.path().join(".airlock-run-2147483646-1");
        let dead_full = tmp.path().join(".airlock-run-2147483646-2");
        let live = tmp
            .path()
            .join(format!(".airlock-run-{}-1", std::process::id()));
        let other = tmp.path().join("unrelated-2147483646-1");
        for d in [&dead, &dead_full, &live, &other] {
            std::fs::create_dir(d).unwrap();
        }
        std::fs::write(dead_full.join("f"), "x").unwrap();
        assert_eq!(sweep_dir(tmp.path(), ".airlock-run-"), 1);
        assert!(!dead.exists());
        assert!(dead_full.exists(), "a non-empty directory is not deleted");
        assert!(live.exists(), "a live launcher keeps its directory");
        assert!(other.exists());
    }
}
