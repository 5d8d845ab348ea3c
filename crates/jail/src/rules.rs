//! The built-in filesystem rules and how config entries become concrete
//! host paths: what is hidden (deny-read), what stays read-only inside
//! writable paths (protected), found at any depth by a bounded walk.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::spec::FileId;

/// S_ISUID | S_ISGID.
pub const SETID_BITS: u32 = 0o6000;

/// Hidden under the home directory.
pub const HOME_DENY: &[&str] = &[
    ".ssh",
    ".aws",
    ".config/gcloud",
    ".azure",
    ".kube",
    ".docker",
    ".gnupg",
    ".netrc",
    ".git-credentials",
    ".npmrc",
    ".pypirc",
    ".cargo/credentials",
    ".cargo/credentials.toml",
    ".config/gh",
    ".terraform.d/credentials.tfrc.json",
    ".vault-token",
    ".pgpass",
];

/// Hidden wherever they appear inside the workdir (file-name patterns).
pub const NAME_DENY: &[&str] = &[
    ".env",
    ".env.*",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "id_rsa",
    "id_ed25519",
    "id_ecdsa",
    "*-service-account*.json",
    "service-account*.json",
    "credentials.json",
    ".npmrc",
    ".pypirc",
    ".git-credentials",
    ".netrc",
];

/// Read-only at any depth inside writable paths: files that run code or
/// change tools' behaviour the next time a human or agent uses them.
pub const PROTECTED_NAMES: &[&str] = &[
    ".bashrc",
    ".bash_profile",
    ".bash_login",
    ".bash_logout",
    ".profile",
    ".zshrc",
    ".zshenv",
    ".zprofile",
    ".zlogin",
    ".envrc",
    ".npmrc",
    ".gitmodules",
    ".mcp.json",
    ".vscode",
    ".claude",
    ".idea",
    "airlock.yaml",
];
/// Inside any `.git` directory (entries with a `/` are paths below it).
/// `commondir` names another directory whose config and hooks git uses
/// instead; `config.worktree` is read as config when the repository
/// enables it; `alternates` name other repositories whose objects git (and
/// airlock's git tools, outside the jail) read as this one's.
pub const PROTECTED_IN_GIT: &[&str] = &[
    "hooks",
    "config",
    "commondir",
    "config.worktree",
    "objects/info/alternates",
    "objects/info/http-alternates",
];

/// Most entries the walk before a run looks at per writable root, so a
/// huge tree cannot stall every run's start; past it the run is refused
/// (files to hide could lie beyond). The walk after a run has no limit:
/// whatever the command created must all be seen.
pub const WALK_LIMIT: usize = 200_000;

/// Shell-style match of one file name: `*` is any run of characters.
pub fn name_matches(pattern: &str, name: &str) -> bool {
    fn go(p: &[u8], n: &[u8]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some((b'*', rest)) => (0..=n.len()).any(|i| go(rest, &n[i..])),
            Some((c, rest)) => n.first() == Some(c) && go(rest, &n[1..]),
        }
    }
    go(pattern.as_bytes(), name.as_bytes())
}

/// Now, in nanoseconds since the epoch, by the clock the kernel stamps
/// inode change times with (the coarse one, a tick behind the wall clock at
/// most): a change made after this call is never stamped earlier. A change
/// made up to a tick before it may be stamped the same, so a setuid file
/// made a few milliseconds before a run counts as the run's.
pub fn change_clock() -> i128 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut t) };
    t.tv_sec as i128 * 1_000_000_000 + t.tv_nsec as i128
}

/// A deny-name pattern in the shape it has, so that the walk tests the
/// usual ones (`.env`, `*.pem`, `.env.*`, `a*b`) without the general
/// matcher, which was a tenth of a walk's CPU.
#[derive(Debug)]
enum NamePattern<'a> {
    Exact(&'a str),
    Prefix(&'a str),
    Suffix(&'a str),
    Around(&'a str, &'a str),
    /// The pattern, and its text before the first `*` and after the last,
    /// which a name must start and end with (tested first).
    Glob(&'a str, &'a str, &'a str),
}

impl<'a> NamePattern<'a> {
    fn new(pattern: &'a str) -> Self {
        match pattern.split_once('*') {
            None => Self::Exact(pattern),
            Some((a, b)) if b.contains('*') => {
                Self::Glob(pattern, a, b.rsplit('*').next().unwrap_or(""))
            }
            Some(("", b)) => Self::Suffix(b),
            Some((a, "")) => Self::Prefix(a),
            Some((a, b)) => Self::Around(a, b),
        }
    }

    fn matches(&self, name: &str) -> bool {
        match *self {
            Self::Exact(p) => name == p,
            Self::Prefix(a) => name.starts_with(a),
            Self::Suffix(b) => name.ends_with(b),
            Self::Around(a, b) => {
                name.len() >= a.len() + b.len() && name.starts_with(a) && name.ends_with(b)
            }
            Self::Glob(p, a, b) => {
                name.starts_with(a) && name.ends_with(b) && name_matches(p, name)
            }
        }
    }
}

pub fn is_protected(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    if PROTECTED_NAMES.contains(&name) {
        return true;
    }
    // Each entry below ends in its own last name: any other name needs no
    // look at the path (most of a walk's entries).
    if !PROTECTED_IN_GIT
        .iter()
        .any(|entry| entry.rsplit('/').next() == Some(name))
    {
        return false;
    }
    PROTECTED_IN_GIT.iter().any(|entry| {
        // Strip the entry's components from the end; what is left must be
        // a git dir.
        let mut git_dir = path;
        for want in entry.rsplit('/') {
            match (git_dir.file_name(), git_dir.parent()) {
                (Some(n), Some(p)) if n == want => git_dir = p,
                _ => return false,
            }
        }
        is_git_dir(git_dir)
    })
}

fn is_git_dir(dir: &Path) -> bool {
    if dir.file_name().is_some_and(|n| n == ".git") {
        return true;
    }
    // A submodule's git dir (`.git/modules/NAME/`, NAME may hold slashes
    // and nest further modules) and a linked worktree's
    // (`.git/worktrees/NAME/`): git runs their config and hooks too.
    if !dir.join("HEAD").is_file() {
        return false;
    }
    let parts: Vec<_> = dir.components().map(|c| c.as_os_str()).collect();
    if parts
        .windows(2)
        .any(|w| w[0] == ".git" && (w[1] == "modules" || w[1] == "worktrees"))
    {
        return true;
    }
    // A bare repository (`proj.git/`): git takes any directory with HEAD,
    // objects/ and refs/ for a git dir, and runs its hooks when the user
    // pushes to it; airlock's git tools read it with its alternates.
    dir.join("objects").is_dir() && dir.join("refs").is_dir()
}

/// What a walk of the writable roots found.
#[derive(Debug, Default, Clone)]
pub struct Found {
    pub masked: BTreeSet<PathBuf>,
    pub protected: BTreeSet<PathBuf>,
    /// The entries of `protected` that are symlinks (the jail pins the
    /// link itself; any other symlink at a protected path refuses the run).
    pub protected_links: BTreeSet<PathBuf>,
    /// The identity of each protected and masked entry (the jail's init
    /// mounts onto that file only).
    pub ids: BTreeMap<PathBuf, FileId>,
    /// Regular files with a setuid or setgid bit whose status changed at
    /// or after the walk's `setid_since` (none without it).
    pub setid: BTreeSet<PathBuf>,
    /// True when a root had more entries than the walk's limit, or a
    /// folder too deep to open by path.
    pub truncated: bool,
}

/// Walks `roots` (no symlinks followed) and collects the paths matching the
/// deny-name patterns and the protected names, and, with `setid_since`
/// (see [`change_clock`]), setuid/setgid files whose inode changed since
/// then: made, moved, linked or chmodded since, which a jailed process
/// cannot backdate (the kernel sets the change time; nothing may set it).
/// Without it regular files are not looked at (no `lstat` each: half of a
/// walk's system calls). At most `limit` entries per root (`None`: all).
pub fn walk(
    roots: &[PathBuf],
    name_deny: &[String],
    limit: Option<usize>,
    setid_since: Option<i128>,
) -> Found {
    let limit = limit.unwrap_or(usize::MAX);
    let name_deny: Vec<NamePattern> = name_deny.iter().map(|p| NamePattern::new(p)).collect();
    let mut f = Found::default();
    for root in roots {
        let mut seen = 0usize;
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            let rd = match std::fs::read_dir(&dir) {
                Ok(rd) => rd,
                // A folder deeper than a path can name (PATH_MAX) cannot be
                // opened by path, yet the jail can reach it step by step:
                // what lies there is unchecked, so the walk is incomplete.
                Err(e) if e.raw_os_error() == Some(libc::ENAMETOOLONG) => {
                    f.truncated = true;
                    break;
                }
                // Gone meanwhile, or unreadable to the caller (then to the
                // jail too: it runs as the caller or as 65534).
                Err(_) => continue,
            };
            for e in rd.flatten() {
                seen += 1;
                if seen > limit {
                    f.truncated = true;
                    stack.clear();
                    break;
                }
                let p = e.path();
                let name = e.file_name();
                let name = name.to_string_lossy();
                let Ok(ft) = e.file_type() else { continue };
                // A `.git` that is not a directory (a `gitdir:` file, a
                // symlink) points git at config and hooks elsewhere.
                let protected = is_protected(&p) || (name == ".git" && !ft.is_dir());
                let masked = name_deny.iter().any(|pat| pat.matches(&name)) && !ft.is_symlink();
                // One lstat, only for what needs it.
                let meta = (protected || masked || (setid_since.is_some() && ft.is_file()))
                    .then(|| e.metadata().ok())
                    .flatten();
                if let (true, Some(m)) = (protected || masked, &meta) {
                    f.ids.insert(p.clone(), FileId::of(m));
                }
                if protected {
                    f.protected.insert(p.clone());
                    if ft.is_symlink() {
                        f.protected_links.insert(p.clone());
                    }
                }
                if masked {
                    f.masked.insert(p.clone());
                    continue;
                }
                if ft.is_file()
                    && meta.as_ref().is_some_and(|m| {
                        let changed = m.ctime() as i128 * 1_000_000_000 + m.ctime_nsec() as i128;
                        m.mode() & SETID_BITS != 0 && setid_since.is_some_and(|t| changed >= t)
                    })
                {
                    f.setid.insert(p.clone());
                }
                // Git's object store is most of a large repository's
                // entries and holds nothing to hide; of what to protect only
                // `info/` (alternates), looked at directly. `info` must be a
                // real directory: the scan removes what it finds, never
                // through a link.
                let git_objects = name == "objects" && dir.file_name().is_some_and(|d| d == ".git");
                if git_objects && ft.is_dir() {
                    let info = p.join("info");
                    if std::fs::symlink_metadata(&info).is_ok_and(|m| m.is_dir()) {
                        for entry in PROTECTED_IN_GIT {
                            let Some(rest) = entry.strip_prefix("objects/info/") else {
                                continue;
                            };
                            let a = info.join(rest);
                            if let Ok(m) = std::fs::symlink_metadata(&a) {
                                if m.file_type().is_symlink() {
                                    f.protected_links.insert(a.clone());
                                }
                                f.ids.insert(a.clone(), FileId::of(&m));
                                f.protected.insert(a);
                            }
                        }
                    }
                }
                if ft.is_dir() && !f.protected.contains(&p) && !git_objects {
                    stack.push(p);
                }
            }
        }
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(name_matches("*.pem", "server.pem"));
        assert!(name_matches(".env.*", ".env.production"));
        assert!(!name_matches(".env.*", ".env"));
        assert!(name_matches(
            "*-service-account*.json",
            "prod-service-account-1.json"
        ));
        assert!(!name_matches("*.key", "keyboard.rs"));
        assert!(is_protected(Path::new("/w/a/b/.git/hooks")));
        assert!(is_protected(Path::new("/w/.bashrc")));
        assert!(!is_protected(Path::new("/w/hooks")));
        assert!(is_protected(Path::new("/w/.git/commondir")));
        assert!(is_protected(Path::new("/w/.git/objects/info/alternates")));
        assert!(is_protected(Path::new(
            "/w/a/.git/objects/info/http-alternates"
        )));
        assert!(!is_protected(Path::new("/w/objects/info/alternates")));
        assert!(!is_protected(Path::new("/w/.git/info/alternates")));
        assert!(!is_protected(Path::new("/w/.git/x/info/alternates")));
        assert!(!is_protected(Path::new("alternates")));
    }

    /// Setuid/setgid files count as the run's when their inode changed after
    /// the mark: made, chmodded or moved since; one left alone does not.
    #[test]
    fn setid_files_changed_since_the_mark() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let w = t.path();
        let setid = |p: &Path| {
            std::fs::write(p, "x").unwrap();
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o4755)).unwrap();
        };
        for n in ["old", "moved", "chmodded"] {
            setid(&w.join(n));
        }
        std::fs::write(w.join("plain"), "x").unwrap();
        // A tick or more of the coarse clock between the old files and the mark.
        std::thread::sleep(std::time::Duration::from_millis(50));
        let mark = change_clock();
        setid(&w.join("new"));
        std::fs::rename(w.join("moved"), w.join("moved-here")).unwrap();
        std::fs::set_permissions(w.join("chmodded"), std::fs::Permissions::from_mode(0o6755))
            .unwrap();
        let names = |f: &Found| {
            f.setid
                .iter()
                .map(|p| p.strip_prefix(w).unwrap().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
        };
        let f = walk(&[w.to_path_buf()], &[], None, Some(mark));
        assert_eq!(names(&f), ["chmodded", "moved-here", "new"]);
        // Without a mark regular files are not looked at.
        assert!(walk(&[w.to_path_buf()], &[], None, None).setid.is_empty());
    }

    /// A folder whose path is longer than PATH_MAX: the walk says it is
    /// incomplete instead of skipping it.
    #[test]
    fn a_folder_too_deep_to_name_makes_the_walk_incomplete() {
        use std::ffi::CString;
        use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
        let t = tempfile::tempdir().unwrap();
        let name = CString::new("d".repeat(200)).unwrap();
        let open = |at: libc::c_int, n: &std::ffi::CStr| {
            let fd = unsafe { libc::openat(at, n.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY) };
            assert!(fd >= 0);
            unsafe { OwnedFd::from_raw_fd(fd) }
        };
        let top = CString::new(t.path().as_os_str().as_encoded_bytes()).unwrap();
        let mut fd = open(libc::AT_FDCWD, &top);
        for _ in 0..25 {
            assert_eq!(
                unsafe { libc::mkdirat(fd.as_raw_fd(), name.as_ptr(), 0o755) },
                0
            );
            fd = open(fd.as_raw_fd(), &name);
        }
        let env = CString::new(".env").unwrap();
        let f = unsafe {
            libc::openat(
                fd.as_raw_fd(),
                env.as_ptr(),
                libc::O_CREAT | libc::O_WRONLY,
                0o644,
            )
        };
        assert!(f >= 0);
        unsafe { libc::close(f) };
        let found = walk(&[t.path().to_path_buf()], &[".env".into()], None, None);
        assert!(found.truncated);
        // Cleaned up step by step too (the tempdir's removal would fail on
        // the long path's share).
        drop(fd);
        let _ = std::process::Command::new("rm")
            .arg("-rf")
            .arg(t.path())
            .status();
    }

    /// The shapes the walk tests directly agree with the general matcher.
    #[test]
    fn name_patterns_agree_with_the_glob() {
        let patterns = [
            ".env",
            ".env.*",
            "*.pem",
            "*-service-account*.json",
            "id_rsa",
            "a*b",
            "*",
            "**",
            "*a*",
            "x*y*z",
            "",
            "ab*ab",
        ];
        let names = [
            ".env",
            ".env.",
            ".env.prod",
            ".envrc",
            "a.pem",
            ".pem",
            "pem",
            "ab",
            "a",
            "b",
            "",
            "aab",
            "abab",
            "ab.ab",
            "x-service-account-1.json",
            "xyz",
            "x1y2z",
            "id_rsa",
            "id_rsa.pub",
            "axb",
            "ba",
        ];
        for p in patterns {
            let compiled = NamePattern::new(p);
            for n in names {
                assert_eq!(
                    compiled.matches(n),
                    name_matches(p, n),
                    "{p:?} {n:?} {compiled:?}"
                );
            }
        }
    }

    /// A bare repository's config, hooks and alternates are protected; a
    /// folder that merely has a `config` and a `HEAD` is not a git dir.
    #[test]
    fn bare_repositories_are_git_dirs() {
        let t = tempfile::tempdir().unwrap();
        let w = t.path();
        let b = w.join("srv/proj.git");
        std::fs::create_dir_all(b.join("objects/info")).unwrap();
        std::fs::create_dir_all(b.join("refs/heads")).unwrap();
        std::fs::create_dir_all(b.join("hooks")).unwrap();
        std::fs::write(b.join("HEAD"), "ref: refs/heads/main\n").unwrap();
        std::fs::write(b.join("config"), "[core]\n\tbare = true\n").unwrap();
        std::fs::write(b.join("objects/info/alternates"), "/x\n").unwrap();
        let n = w.join("notes");
        std::fs::create_dir_all(n.join("refs")).unwrap();
        std::fs::write(n.join("HEAD"), "").unwrap();
        std::fs::write(n.join("config"), "").unwrap();
        let f = walk(&[w.to_path_buf()], &[], None, None);
        let got: Vec<_> = f
            .protected
            .iter()
            .map(|p| p.strip_prefix(w).unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            got,
            [
                "srv/proj.git/config",
                "srv/proj.git/hooks",
                "srv/proj.git/objects/info/alternates",
            ]
        );
    }

    /// Alternates are found below `.git/objects` (otherwise not walked) and
    /// below a submodule's git dir; never through a linked `info`.
    #[test]
    fn alternates_are_protected() {
        let t = tempfile::tempdir().unwrap();
        let w = t.path();
        std::fs::create_dir_all(w.join(".git/objects/info")).unwrap();
        std::fs::create_dir_all(w.join(".git/objects/ab")).unwrap();
        std::fs::write(w.join(".git/objects/info/alternates"), "/x\n").unwrap();
        std::fs::write(w.join(".git/objects/info/http-alternates"), "").unwrap();
        let m = w.join(".git/modules/sub");
        std::fs::create_dir_all(m.join("objects/info")).unwrap();
        std::fs::write(m.join("HEAD"), "ref: refs/heads/main\n").unwrap();
        std::fs::write(m.join("objects/info/alternates"), "/x\n").unwrap();
        let elsewhere = w.join("elsewhere/info");
        std::fs::create_dir_all(&elsewhere).unwrap();
        std::fs::write(elsewhere.join("alternates"), "/x\n").unwrap();
        std::fs::create_dir_all(w.join("b/.git/objects")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, w.join("b/.git/objects/info")).unwrap();
        let f = walk(&[w.to_path_buf()], &[], None, None);
        let got: Vec<_> = f
            .protected
            .iter()
            .map(|p| p.strip_prefix(w).unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            got,
            [
                ".git/modules/sub/objects/info/alternates",
                ".git/objects/info/alternates",
                ".git/objects/info/http-alternates",
            ]
        );
    }

    #[test]
    fn git_redirects_and_submodule_git_dirs() {
        let t = tempfile::tempdir().unwrap();
        let w = t.path();
        let m = w.join(".git/modules/libs/sub");
        std::fs::create_dir_all(m.join("refs/heads")).unwrap();
        std::fs::write(m.join("HEAD"), "ref: refs/heads/main\n").unwrap();
        std::fs::write(m.join("config"), "").unwrap();
        std::fs::write(m.join("refs/heads/config"), "").unwrap();
        std::fs::create_dir_all(w.join("a")).unwrap();
        std::fs::write(w.join("a/.git"), "gitdir: ../x\n").unwrap();
        std::os::unix::fs::symlink("../x", w.join("b.git")).unwrap();
        std::fs::create_dir_all(w.join("b")).unwrap();
        std::os::unix::fs::symlink("../x", w.join("b/.git")).unwrap();
        let f = walk(&[w.to_path_buf()], &[], None, None);
        let got: Vec<_> = f
            .protected
            .iter()
            .map(|p| p.strip_prefix(w).unwrap().to_string_lossy().into_owned())
            .collect();
        // A branch named `config` is not a git dir's config.
        assert_eq!(
            got,
            ["a/.git", "b/.git", ".git/modules/libs/sub/config"]
                .iter()
                .map(|s| s.to_string())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
        );
    }

    /// The walk notes what each protected and masked entry is (the init
    /// mounts onto the same files only) and which are symlinks.
    #[test]
    fn identities_and_links_of_covered_entries() {
        use std::os::unix::fs::symlink;
        let t = tempfile::tempdir().unwrap();
        let w = t.path();
        std::fs::create_dir_all(w.join("a/.git/hooks")).unwrap();
        std::fs::create_dir_all(w.join("dotfiles")).unwrap();
        std::fs::write(w.join("a/.env"), "x").unwrap();
        std::fs::write(w.join("dotfiles/bashrc"), "x").unwrap();
        symlink("dotfiles/bashrc", w.join(".bashrc")).unwrap();
        let f = walk(&[w.to_path_buf()], &[".env".into()], None, None);
        let id = |p: &str| FileId::of(&std::fs::symlink_metadata(w.join(p)).unwrap());
        for p in ["a/.git/hooks", "a/.env", ".bashrc"] {
            assert_eq!(f.ids.get(&w.join(p)), Some(&id(p)), "{p}");
        }
        assert_eq!(f.ids.len(), 3);
        assert_eq!(
            f.protected_links.iter().collect::<Vec<_>>(),
            vec![&w.join(".bashrc")]
        );
    }
}
