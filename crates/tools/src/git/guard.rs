//! The git tools run outside the jail with the server's rights, on
//! repositories an agent may write through its jailed tools. Whatever git
//! follows from inside `.git` to another place — a `gitdir:` file, a
//! `commondir`, `objects/info/alternates`, a symbolic link to another
//! repository's packs — would make the tool read and return data the agent
//! may not see. Two layers keep every read inside the repository:
//!
//! 1. [`locate`] and [`check`], on each call: the git directory is a real
//!    directory (not a symlink or `gitdir:` file) at exactly the configured
//!    place (no folder above it turned into a link), and holds no
//!    `commondir`, no non-empty `objects/info/alternates` or
//!    `http-alternates`, and no symbolic link for `objects/`, its `info/`
//!    and `pack/` or among the packs. A repository that fails is refused
//!    with the file and the reason.
//! 2. [`confine`], on the worker thread (see `worker`): Landlock lets it
//!    read only beneath the git directory located (bound to the directory
//!    opened without following links), so a redirect planted after the
//!    checks, or one they do not look for (a loose object that is a link),
//!    fails to open instead of being read. Without Landlock the whole git
//!    directory is walked for symbolic links on each call instead.
//!
//! The repository is opened isolated (see `ops::open`): no system, global or
//! user config, no environment, no config includes.

use std::fs::File;
use std::io::ErrorKind;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use landlock::{
    Access, AccessFs, CompatLevel, Compatible, PathBeneath, Ruleset, RulesetAttr,
    RulesetCreatedAttr, RulesetStatus, ABI,
};

use crate::ToolError;

/// A checked git directory: its path and the directory itself, opened
/// without following a link, which Landlock's rule is bound to.
pub struct GitDir {
    pub path: PathBuf,
    dir: File,
}

impl GitDir {
    /// Device and inode: which directory the checks and the rule are about.
    pub fn id(&self) -> (u64, u64) {
        use std::os::unix::fs::MetadataExt;
        // fstat of an O_PATH descriptor does not fail short of EBADF.
        self.dir.metadata().map_or((0, 0), |m| (m.dev(), m.ino()))
    }
}

/// Files inside a git directory that make git read another directory.
const REDIRECTS: &[(&str, &str)] = &[
    (
        "commondir",
        "it makes git read config, refs and objects from another directory",
    ),
    (
        "objects/info/alternates",
        "it makes git read objects from other repositories",
    ),
    (
        "objects/info/http-alternates",
        "it makes git read objects from other repositories",
    ),
];

fn refuse(repo: &str, what: &str, why: &str) -> ToolError {
    tracing::warn!(repo, what, why, "git repository refused");
    ToolError::denied(format!(
        "repository `{repo}` is refused: {what}; {why}. The git tools read only the repository's own git directory; tell the operator"
    ))
}

fn unavailable(repo: &str, path: &Path, e: impl std::fmt::Display) -> ToolError {
    tracing::warn!(repo, path = %path.display(), error = %e, "cannot open repository");
    ToolError::failed(format!(
        "repository `{repo}` is not available right now; tell the operator"
    ))
}

/// Opens `path` as a directory without following a final symbolic link.
fn open_dir_nofollow(path: &Path) -> std::io::Result<File> {
    File::options()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_NOFOLLOW | libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(path)
}

/// The git directory of the repository configured at `repo_path`: `.git`
/// if there is one (it must be a directory), the configured path itself
/// otherwise (bare); opened without following a link.
pub fn locate(repo: &str, repo_path: &Path) -> Result<GitDir, ToolError> {
    let dot_git = repo_path.join(".git");
    let path = match std::fs::symlink_metadata(&dot_git) {
        Ok(m) if m.is_dir() => dot_git,
        Ok(m) => {
            let kind = if m.file_type().is_symlink() {
                "a symbolic link"
            } else {
                "a file (a `gitdir:` redirect)"
            };
            return Err(refuse(
                repo,
                &format!("`.git` is {kind}"),
                "it points git at another directory",
            ));
        }
        Err(e) if e.kind() == ErrorKind::NotFound => repo_path.to_path_buf(),
        Err(e) => return Err(unavailable(repo, &dot_git, e)),
    };
    let dir = match open_dir_nofollow(&path) {
        Ok(d) => d,
        // With O_PATH, O_NOFOLLOW on a link gives ENOTDIR (O_DIRECTORY).
        Err(e)
            if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR))
                && std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) =>
        {
            return Err(refuse(
                repo,
                "the git directory is a symbolic link",
                "configure the directory it points to instead",
            ))
        }
        Err(e) => return Err(unavailable(repo, &path, e)),
    };
    // O_NOFOLLOW guards the last name only. A folder above it that is now
    // a symbolic link (the agent replaced `project/` or its parent with a
    // link to another repository) would make this repository another one:
    // what was opened must be exactly the configured place.
    let expected = lexically_absolute(&path);
    match std::fs::read_link(format!("/proc/self/fd/{}", dir.as_raw_fd())) {
        Ok(real) if real == expected => {}
        Ok(real) => {
            tracing::warn!(
                repo,
                configured = %expected.display(),
                opened = %real.display(),
                "a folder on the repository's path is a symbolic link"
            );
            return Err(refuse(
                repo,
                "a folder on the repository's path is a symbolic link",
                "configure the repository by its real path (`realpath`)",
            ));
        }
        Err(e) => return Err(unavailable(repo, &path, e)),
    }
    Ok(GitDir { path, dir })
}

/// `path` made absolute and rid of `.` and `..` by its text alone, which is
/// where it leads when no folder on it is a symbolic link.
fn lexically_absolute(path: &Path) -> PathBuf {
    use std::path::Component;
    let joined;
    let path = if path.is_absolute() {
        path
    } else {
        joined = std::env::current_dir().unwrap_or_default().join(path);
        &joined
    };
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// No redirect inside the git directory (see the module's comment).
pub fn check(repo: &str, git: &GitDir) -> Result<(), ToolError> {
    let path = &git.path;
    for (name, why) in REDIRECTS {
        match std::fs::symlink_metadata(path.join(name)) {
            Ok(m) if m.is_file() && m.len() == 0 && *name != "commondir" => {}
            Ok(_) => {
                return Err(refuse(
                    repo,
                    &format!("the git directory has `{name}`"),
                    why,
                ))
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(unavailable(repo, &path.join(name), e)),
        }
    }
    // The object directories, and the packs git lists: a link there reads
    // another repository's objects as this one's. Links among the fan-out
    // directories and loose objects are left to Landlock (or to the walk
    // without it): listing up to 256 directories per call would cost more
    // than the rest of a small call.
    for sub in ["objects", "objects/info", "objects/pack"] {
        let d = path.join(sub);
        match std::fs::symlink_metadata(&d) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(refuse(
                    repo,
                    &format!("`{sub}` is not a directory"),
                    "git would read objects elsewhere",
                ))
            }
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(unavailable(repo, &d, e)),
        }
        if sub != "objects/pack" {
            continue;
        }
        let rd = std::fs::read_dir(&d).map_err(|e| unavailable(repo, &d, e))?;
        for e in rd {
            let e = e.map_err(|e| unavailable(repo, &d, e))?;
            if e.file_type()
                .map_err(|err| unavailable(repo, &d, err))?
                .is_symlink()
            {
                return Err(refuse(
                    repo,
                    &format!(
                        "`{sub}/{}` is a symbolic link",
                        e.file_name().to_string_lossy()
                    ),
                    "git would read objects elsewhere",
                ));
            }
        }
    }
    Ok(())
}

/// Restricts the calling thread (and only it: Landlock domains are per
/// thread) to reading beneath `git`, for good: call it on a thread that
/// serves only this git directory (see `worker`).
/// `Ok(false)`: the kernel has no Landlock; the caller must compensate.
pub fn confine(repo: &str, git: &GitDir) -> Result<bool, ToolError> {
    // ABI 1 covers reading and writing files and directories, all that
    // matters here; every kernel with Landlock enforces it fully.
    let abi = ABI::V1;
    let fail = |e: landlock::RulesetError| {
        tracing::error!(repo, error = %e, "cannot confine the git worker");
        ToolError::failed(format!(
            "repository `{repo}` cannot be read safely right now; tell the operator"
        ))
    };
    let status = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(abi))
        .map_err(fail)?
        .create()
        .map_err(fail)?
        .add_rule(PathBeneath::new(git.dir.as_fd(), AccessFs::from_read(abi)))
        .map_err(fail)?
        .restrict_self()
        .map_err(fail)?;
    match status.ruleset {
        RulesetStatus::FullyEnforced => Ok(true),
        RulesetStatus::NotEnforced => Ok(false),
        // Some of ABI 1 missing cannot happen; treat it as not enforced.
        RulesetStatus::PartiallyEnforced => Ok(false),
    }
}

/// Without Landlock: no symbolic link anywhere in the git directory (a
/// loose object or ref that is a link would be read through). Checked
/// before the call, so a link planted during it is not seen; Landlock
/// closes that.
pub fn no_links_anywhere(repo: &str, git: &GitDir) -> Result<(), ToolError> {
    let mut stack = vec![git.path.clone()];
    while let Some(dir) = stack.pop() {
        let rd = std::fs::read_dir(&dir).map_err(|e| unavailable(repo, &dir, e))?;
        for e in rd {
            let e = e.map_err(|e| unavailable(repo, &dir, e))?;
            let ft = e.file_type().map_err(|err| unavailable(repo, &dir, err))?;
            if ft.is_symlink() {
                let p = e.path();
                let rel = p.strip_prefix(&git.path).unwrap_or(&p);
                return Err(refuse(
                    repo,
                    &format!("`{}` is a symbolic link", rel.display()),
                    "git would read through it",
                ));
            }
            if ft.is_dir() {
                stack.push(e.path());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn prepare(repo: &str, repo_path: &Path) -> Result<GitDir, ToolError> {
        let git = locate(repo, repo_path)?;
        check(repo, &git)?;
        Ok(git)
    }

    fn git(dir: &Path, args: &[&str]) -> String {
        let out = Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@t"])
            .args(args)
            .current_dir(dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// A private repository with a secret blob (loose) and the agent's.
    fn repos() -> (tempfile::TempDir, PathBuf, String, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let private = t.path().join("private");
        let work = t.path().join("work");
        for d in [&private, &work] {
            std::fs::create_dir(d).unwrap();
            git(d, &["init", "-q"]);
        }
        std::fs::write(private.join("s"), "TOP SECRET\n").unwrap();
        let blob = git(&private, &["hash-object", "-w", "s"]);
        (t, private, blob, work)
    }

    /// Redirects planted after the checks passed (as a racing command
    /// would): on the confined thread neither the alternates nor a loose
    /// object linked from elsewhere is read.
    #[test]
    fn confined_thread_reads_nothing_planted_after_the_checks() {
        let (_t, private, blob, work) = repos();
        let g = prepare("work", &work).unwrap();
        let objects = work.join(".git/objects");
        std::fs::write(
            objects.join("info/alternates"),
            format!("{}\n", private.join(".git/objects").display()),
        )
        .unwrap();
        let id = gix::ObjectId::from_hex(blob.as_bytes()).unwrap();
        // Opening already fails (gix lists the alternates' packs), or the
        // object is not found: either way, nothing from elsewhere.
        let read_confined = |g: GitDir| {
            std::thread::spawn(move || {
                let on = confine("work", &g).unwrap();
                let opts = gix::open::Options::isolated().open_path_as_is(true);
                let found =
                    gix::open_opts(&g.path, opts).is_ok_and(|repo| repo.find_object(id).is_ok());
                (on, found)
            })
            .join()
            .unwrap()
        };
        let confined = read_confined(g);
        assert_eq!(confined, (true, false), "(landlock on, secret read)");
        // The control: unconfined, the same open reads it.
        let repo = gix::open_opts(work.join(".git"), gix::open::Options::isolated()).unwrap();
        assert!(repo.find_object(id).is_ok());

        // A loose object linked from the private store, no alternates.
        std::fs::remove_file(objects.join("info/alternates")).unwrap();
        let (fan, rest) = blob.split_at(2);
        std::fs::create_dir_all(objects.join(fan)).unwrap();
        std::os::unix::fs::symlink(
            private.join(".git/objects").join(fan).join(rest),
            objects.join(fan).join(rest),
        )
        .unwrap();
        let read = read_confined(prepare("work", &work).unwrap());
        assert_eq!(read, (true, false), "a linked loose object was read");
        // Without Landlock the walk finds the link.
        let e = no_links_anywhere("work", &prepare("work", &work).unwrap()).unwrap_err();
        assert!(
            e.to_string()
                .contains(&format!("`objects/{fan}/{rest}` is a symbolic link")),
            "{e}"
        );
    }
}
