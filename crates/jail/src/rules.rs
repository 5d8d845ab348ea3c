//! The built-in filesystem rules and how config entries become concrete
//! host paths: what is hidden (deny-read), what stays read-only inside
//! writable paths (protected), found at any depth by a bounded walk.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

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
/// Inside any `.git` directory. `commondir` names another directory whose
/// config and hooks git uses instead; `config.worktree` is read as config
/// when the repository enables it.
pub const PROTECTED_IN_GIT: &[&str] = &["hooks", "config", "commondir", "config.worktree"];

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
    if !PROTECTED_IN_GIT.contains(&name) {
        return false;
    }
    if path
        .parent()
        .and_then(|p| p.file_name())
        .is_some_and(|p| p == ".git")
    {
        return true;
    }
    // A submodule's git dir (`.git/modules/NAME/`, NAME may hold slashes
    // and nest further modules) and a linked worktree's
    // (`.git/worktrees/NAME/`): git runs their config and hooks too.
    let parts: Vec<_> = path.components().map(|c| c.as_os_str()).collect();
    parts
        .windows(2)
        .any(|w| w[0] == ".git" && (w[1] == "modules" || w[1] == "worktrees"))
        && path.with_file_name("HEAD").is_file()
}

/// What a walk of the writable roots found.
#[derive(Debug, Default, Clone)]
pub struct Found {
    pub masked: BTreeSet<PathBuf>,
    pub protected: BTreeSet<PathBuf>,
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
                if is_protected(&p) || (name == ".git" && !ft.is_dir()) {
                    f.protected.insert(p.clone());
                }
                if name_deny.iter().any(|pat| name_matches(pat, &name)) && !ft.is_symlink() {
                    f.masked.insert(p.clone());
                    continue;
                }
                if ft.is_file() && e.metadata().is_ok_and(|m| m.mode() & SETID_BITS != 0) {
                    f.setid.insert(p.clone());
                }
                // Git's object store holds nothing to hide or protect and is
                // most of a large repository's entries.
                let git_objects = name == "objects" && dir.file_name().is_some_and(|d| d == ".git");
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
}
