//! Paths named by a run's configuration that a previous run could have
//! redirected. Everything under a writable path is the agent's to change
//! between runs, including replacing a folder by a symlink. When a later
//! run's `allow_write` entry lies inside a writable path and resolves
//! through such a symlink, following it would make the symlink's target
//! writable: whatever folder the jail's user may write anywhere on the
//! host. So such an entry is refused, and the error names the target for
//! an operator who does mean it.

use std::path::{Component, Path, PathBuf};

/// Checks `entry` (absolute, as written, not resolved) against the
/// canonical `writable` roots: no component of it that lies inside one of
/// them may be a symlink. Symlinks outside every writable path (e.g. a
/// home directory that is a link) were not made by a jailed command and
/// are followed as before.
pub fn refuse_planted(entry: &Path, writable: &[PathBuf]) -> Result<(), String> {
    let mut lexical = PathBuf::new();
    for c in entry.components() {
        match c {
            Component::RootDir | Component::Prefix(_) => lexical.push(c.as_os_str()),
            Component::CurDir => continue,
            // `..` would make the lexical prefix lie about where it is:
            // resolve what is behind it and go on from the real folder.
            Component::ParentDir => {
                lexical.push("..");
                lexical = std::fs::canonicalize(&lexical)
                    .map_err(|e| format!("{}: {e}", lexical.display()))?;
                continue;
            }
            Component::Normal(n) => lexical.push(n),
        }
        let Ok(meta) = std::fs::symlink_metadata(&lexical) else {
            // Missing: the caller reports that it does not exist.
            return Ok(());
        };
        if !meta.file_type().is_symlink() {
            continue;
        }
        let folder = lexical.parent().and_then(|p| std::fs::canonicalize(p).ok());
        let inside = folder
            .as_deref()
            .and_then(|f| writable.iter().find(|w| f.starts_with(w)));
        if let Some(root) = inside {
            let target = std::fs::canonicalize(&lexical)
                .or_else(|_| std::fs::read_link(&lexical))
                .map(|t| t.display().to_string())
                .unwrap_or_else(|_| "an unreadable target".into());
            return Err(format!(
                "allow-write path {} goes through the symlink {} inside the writable {} \
                 (a jailed command may have planted it), which points to {target}: name \
                 the target instead if it is what you mean",
                entry.display(),
                lexical.display(),
                root.display()
            ));
        }
        // A link outside every writable path: continue from its target.
        lexical =
            std::fs::canonicalize(&lexical).map_err(|e| format!("{}: {e}", lexical.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(t.path()).unwrap();
        let work = base.join("work");
        let outside = base.join("outside");
        std::fs::create_dir_all(work.join("real/deeper")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        (t, work, outside)
    }

    #[test]
    fn a_symlink_inside_a_writable_path_is_refused_at_any_depth() {
        let (_t, work, outside) = setup();
        symlink(&outside, work.join("build")).unwrap();
        symlink(&outside, work.join("real/link")).unwrap();
        let w = [work.clone()];
        for entry in [
            work.join("build"),
            work.join("build/sub"),
            work.join("real/link"),
        ] {
            let e = refuse_planted(&entry, &w).unwrap_err();
            assert!(
                e.contains("symlink") && e.contains(&outside.display().to_string()),
                "{e}"
            );
        }
        // `..` cannot hide the link either.
        let e = refuse_planted(&work.join("real/../build"), &w).unwrap_err();
        assert!(e.contains("symlink"), "{e}");
    }

    #[test]
    fn plain_folders_missing_paths_and_links_outside_are_accepted() {
        let (_t, work, outside) = setup();
        let w = [work.clone()];
        refuse_planted(&work.join("real/deeper"), &w).unwrap();
        refuse_planted(&work.join("real/../real/deeper"), &w).unwrap();
        refuse_planted(&work.join("not-yet"), &w).unwrap();
        // A link the operator made outside every writable path.
        let alias = outside.join("alias");
        symlink(&work, &alias).unwrap();
        refuse_planted(&alias.join("real"), &w).unwrap();
        // ... but a link inside the workdir reached through it is refused.
        symlink(&outside, work.join("out")).unwrap();
        assert!(refuse_planted(&alias.join("out"), &w).is_err());
    }
}
