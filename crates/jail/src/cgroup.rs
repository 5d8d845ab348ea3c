//! A cgroup per run for memory and process limits (v2, or v1's memory and
//! pids controllers), read for the report and removed afterwards. Without a
//! writable hierarchy (unprivileged, no delegation) runs fall back to
//! rlimits and the report says so.

use std::path::{Path, PathBuf};

use crate::probe::{cgroup_layout, CgroupLayout};

#[derive(Debug)]
pub struct Cgroup {
    v2: bool,
    memory: Option<PathBuf>,
    pids: Option<PathBuf>,
}

/// Peak memory and whether limits were hit, read after the run.
#[derive(Debug, Default, Clone, Copy)]
pub struct Usage {
    pub peak_memory: Option<u64>,
    pub oom_killed: bool,
    pub pids_limited: bool,
}

/// A small cgroup file in one read (these are a line or a few; the
/// general reader's size probe and growing reads took 4-5 calls each, on
/// the path between the command's exit and airlock's).
fn read_small(p: &Path) -> Option<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(p).ok()?;
    let mut buf = [0u8; 1024];
    let n = f.read(&mut buf).ok()?;
    if n == buf.len() {
        let mut rest = String::from_utf8(buf.to_vec()).ok()?;
        f.read_to_string(&mut rest).ok()?;
        return Some(rest);
    }
    String::from_utf8(buf[..n].to_vec()).ok()
}

fn read_u64(p: &Path) -> Option<u64> {
    read_small(p)?.trim().parse().ok()
}

fn field(p: &Path, key: &str) -> Option<u64> {
    let s = read_small(p)?;
    s.lines().find_map(|l| {
        let mut it = l.split_whitespace();
        (it.next() == Some(key)).then(|| it.next()?.parse().ok())?
    })
}

impl Cgroup {
    /// Creates the run's groups with their limits; `None` when no
    /// hierarchy is writable or a limit cannot be set.
    pub fn create(name: &str, memory: u64, pids: u32) -> Option<Cgroup> {
        Cgroup::make(name)?.limit(memory, pids)
    }

    /// Creates the run's groups, without limits yet (nothing is in them
    /// until [`Cgroup::limit`] has set them and the init joins): the
    /// directories, the costly part, can be made before the limits are
    /// known. `None` when no hierarchy is writable.
    pub fn make(name: &str) -> Option<Cgroup> {
        match cgroup_layout() {
            CgroupLayout::V2(root) => {
                let parent = root.join("airlock");
                std::fs::create_dir_all(&parent).ok()?;
                let _ = std::fs::write(root.join("cgroup.subtree_control"), "+memory +pids");
                let _ = std::fs::write(parent.join("cgroup.subtree_control"), "+memory +pids");
                let dir = parent.join(name);
                std::fs::create_dir(&dir).ok()?;
                Some(Cgroup {
                    v2: true,
                    memory: Some(dir.clone()),
                    pids: Some(dir),
                })
            }
            CgroupLayout::V1 {
                memory: m, pids: p, ..
            } => {
                let mk = |root: PathBuf| -> Option<PathBuf> {
                    let dir = root.join("airlock").join(name);
                    std::fs::create_dir_all(&dir).ok()?;
                    Some(dir)
                };
                let memory = m.and_then(mk);
                let pids = p.and_then(mk);
                if memory.is_none() && pids.is_none() {
                    return None;
                }
                Some(Cgroup {
                    v2: false,
                    memory,
                    pids,
                })
            }
            CgroupLayout::None => None,
        }
    }

    /// Sets the memory and process limits; when one cannot be set the
    /// groups are removed and `None` says the run has no cgroup (it then
    /// gets the rlimit fallbacks).
    pub fn limit(self, memory: u64, pids: u32) -> Option<Cgroup> {
        let set = |dir: &Option<PathBuf>, file: &str, v: String| match dir {
            Some(d) => std::fs::write(d.join(file), v).is_ok(),
            None => true,
        };
        let ok = if self.v2 {
            let ok = set(&self.memory, "memory.max", memory.to_string());
            let _ = set(&self.memory, "memory.swap.max", "0".into());
            ok && set(&self.pids, "pids.max", pids.to_string())
        } else {
            let ok = set(&self.memory, "memory.limit_in_bytes", memory.to_string());
            // Swap may not be accounted; when it is, allow none.
            let _ = set(
                &self.memory,
                "memory.memsw.limit_in_bytes",
                memory.to_string(),
            );
            ok && set(&self.pids, "pids.max", pids.to_string())
        };
        if ok {
            Some(self)
        } else {
            self.remove();
            None
        }
    }

    /// The files the init process writes "0" (itself) into. On v1 that is
    /// `tasks`: moving one thread (the init is single-threaded, and all the
    /// jail's processes are forked from it later) skips the global
    /// threadgroup lock whose RCU synchronisation makes a `cgroup.procs`
    /// write cost 7-15 ms here; `tasks` costs ~0.3 ms.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        let file = if self.v2 { "cgroup.procs" } else { "tasks" };
        let mut v: Vec<PathBuf> = Vec::new();
        for d in [&self.memory, &self.pids].into_iter().flatten() {
            let f = d.join(file);
            if !v.contains(&f) {
                v.push(f);
            }
        }
        v
    }

    pub fn enforces_memory(&self) -> bool {
        self.memory.is_some()
    }
    pub fn enforces_pids(&self) -> bool {
        self.pids.is_some()
    }

    pub fn usage(&self) -> Usage {
        let mut u = Usage::default();
        if let Some(m) = &self.memory {
            if self.v2 {
                u.peak_memory = read_u64(&m.join("memory.peak"));
                u.oom_killed = field(&m.join("memory.events"), "oom_kill").unwrap_or(0) > 0;
            } else {
                u.peak_memory = read_u64(&m.join("memory.max_usage_in_bytes"));
                // `memory.failcnt` only stands in on kernels whose
                // `oom_control` has no `oom_kill` count (one file fewer to
                // read between the command's exit and airlock's).
                u.oom_killed = match field(&m.join("memory.oom_control"), "oom_kill") {
                    Some(n) => n > 0,
                    None => read_u64(&m.join("memory.failcnt")).unwrap_or(0) > 0,
                };
            }
        }
        if let Some(p) = &self.pids {
            u.pids_limited = field(&p.join("pids.events"), "max").unwrap_or(0) > 0;
        }
        u
    }

    /// The run's group directories.
    pub(crate) fn dirs(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = Vec::new();
        for d in [&self.memory, &self.pids].into_iter().flatten() {
            if !v.contains(d) {
                v.push(d.clone());
            }
        }
        v
    }

    /// The directories the run's groups were made in (`…/airlock`).
    pub(crate) fn parents(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = Vec::new();
        for d in self.dirs() {
            if let Some(p) = d.parent() {
                if !v.iter().any(|x| x == p) {
                    v.push(p.to_path_buf());
                }
            }
        }
        v
    }

    pub(crate) fn v2_kill_file(&self) -> Option<PathBuf> {
        self.v2
            .then(|| self.memory.as_ref().map(|m| m.join("cgroup.kill")))
            .flatten()
    }

    /// Kills whatever is left (v2) and removes the groups.
    pub fn remove(self) {
        let dirs = self.dirs();
        Cgroup::remove_dirs(self.v2, &dirs);
    }

    /// [`Cgroup::remove`] from the directories alone.
    pub(crate) fn remove_dirs(v2: bool, dirs: &[PathBuf]) {
        if v2 {
            if let Some(m) = dirs.first() {
                let _ = std::fs::write(m.join("cgroup.kill"), "1");
            }
        }
        for d in dirs {
            for _ in 0..500 {
                if std::fs::remove_dir(d).is_ok() || !d.exists() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
    }
}
