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

pub fn is_protected(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    if PROTECTED_NAMES.contains(&name) {
        return true;
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
    /// Regular files with a setuid or setgid bit.
    pub setid: BTreeSet<PathBuf>,
    /// True when a root had more entries than the walk's limit.
    pub truncated: bool,
}

/// Walks `roots` (no symlinks followed) and collects the paths matching the
/// deny-name patterns and the protected names, and setuid/setgid files.
/// At most `limit` entries per root (`None`: all of them).
pub fn walk(roots: &[PathBuf], name_deny: &[String], limit: Option<usize>) -> Found {
    let limit = limit.unwrap_or(usize::MAX);
    let mut f = Found::default();
    for root in roots {
        let mut seen = 0usize;
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
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
                let masked =
                    name_deny.iter().any(|pat| name_matches(pat, &name)) && !ft.is_symlink();
                // One lstat, only for what needs it.
                let meta = (protected || masked || ft.is_file())
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
                if ft.is_file() && meta.is_some_and(|m| m.mode() & SETID_BITS != 0) {
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
        let f = walk(&[w.to_path_buf()], &[], None);
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
        let f = walk(&[w.to_path_buf()], &[], None);
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
        let f = walk(&[w.to_path_buf()], &[], None);
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
        let f = walk(&[w.to_path_buf()], &[".env".into()], None);
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
