//! Validation of what the agent names inside a repository: paths and refs.
//! Both are checked as strings before anything is looked up, so a trick
//! that relies on how git would interpret them never reaches gix.

use crate::args::clip;
use crate::ToolError;

/// Longest path accepted (git itself has no limit; 4 KiB is generous).
pub const MAX_PATH: usize = 4096;
/// Longest ref accepted.
pub const MAX_REF: usize = 256;

/// A repository-relative path as `a/b/c`, or `""` for the root when
/// `allow_root`. Refused: absolute paths, backslashes, NUL and control
/// characters, `.` and `..` segments, empty segments (`a//b`) and any
/// `.git` segment (repository internals). One trailing `/` is dropped.
pub fn canonical_path(raw: &str, allow_root: bool) -> Result<String, ToolError> {
    let shown = clip(raw, 120);
    if raw.len() > MAX_PATH {
        return Err(ToolError::invalid(format!(
            "`path` is {} bytes long; the most accepted is {MAX_PATH}",
            raw.len()
        )));
    }
    if raw.starts_with('/') {
        return Err(ToolError::denied(format!(
            "path `{shown}` is absolute; give a path relative to the repository root, like `src/main.rs`"
        )));
    }
    if raw.contains('\\') {
        return Err(ToolError::denied(format!(
            "path `{shown}` contains a backslash; separate directories with `/`"
        )));
    }
    if raw.chars().any(|c| c.is_control()) {
        return Err(ToolError::denied(
            "path contains a NUL or control character".to_string(),
        ));
    }
    let trimmed = raw.strip_suffix('/').unwrap_or(raw);
    if trimmed.is_empty() {
        return if allow_root {
            Ok(String::new())
        } else {
            Err(ToolError::invalid(
                "`path` is empty; name a file, like `README.md`",
            ))
        };
    }
    for seg in trimmed.split('/') {
        match seg {
            "" => {
                return Err(ToolError::denied(format!(
                    "path `{shown}` has an empty segment (`//`); write each directory once"
                )))
            }
            "." | ".." => {
                return Err(ToolError::denied(format!(
                    "path `{shown}` contains `{seg}`; paths must stay inside the repository and name entries directly"
                )))
            }
            s if s.eq_ignore_ascii_case(".git") => {
                return Err(ToolError::denied(format!(
                    "path `{shown}` names `.git`; repository internals are not readable"
                )))
            }
            _ => {}
        }
    }
    Ok(trimmed.to_string())
}

/// A branch, tag, full ref name (`refs/heads/main`), `HEAD`, or a commit id
/// (4 to 40 hex digits). Everything git's revision syntax adds — ranges
/// (`a..b`), reflog (`@{…}`), ancestry (`~`, `^`), `:path`, globs, options
/// (`-x`, `--upload-pack=`) — is refused, so one ref names one commit.
pub fn canonical_ref(raw: &str) -> Result<String, ToolError> {
    let shown = clip(raw, 80);
    let bad = |why: &str| {
        Err(ToolError::denied(format!(
            "ref `{shown}` {why}; give a branch, tag or commit id, like `main`, `v1.2.0` or `3f2a9c1`"
        )))
    };
    if raw.is_empty() {
        return bad("is empty");
    }
    if raw.len() > MAX_REF {
        return Err(ToolError::invalid(format!(
            "`ref` is {} bytes long; the most accepted is {MAX_REF}",
            raw.len()
        )));
    }
    if raw.starts_with('-') {
        return bad("starts with `-`");
    }
    if raw.starts_with('/') || raw.ends_with('/') || raw.contains("//") {
        return bad("has a misplaced `/`");
    }
    if raw.contains("..") {
        return bad("contains `..` (ranges are not accepted)");
    }
    if raw.contains("@{") || raw == "@" {
        return bad("uses reflog syntax `@{…}`");
    }
    if raw.ends_with(".lock") || raw.ends_with('.') {
        return bad("is not a valid ref name");
    }
    if let Some(c) = raw
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-')))
    {
        return bad(&format!("contains `{}`", c.escape_default()));
    }
    if raw.split('/').any(|s| s.starts_with('.')) {
        return bad("has a segment starting with `.`");
    }
    Ok(raw.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(canonical_path("src/lib.rs", false).unwrap(), "src/lib.rs");
        assert_eq!(canonical_path("src/", true).unwrap(), "src");
        assert_eq!(canonical_path("", true).unwrap(), "");
        for bad in [
            "../x",
            "a/../../x",
            "/etc/passwd",
            "a\\b",
            "a\0b",
            "./a",
            "a//b",
            ".git/config",
            "sub/.GIT/HEAD",
            "a/.",
            "",
        ] {
            assert!(canonical_path(bad, false).is_err(), "{bad:?} accepted");
        }
    }

    /// Random compositions of tricky pieces: an accepted path never has a
    /// segment that leaves or names the repository internals.
    #[test]
    fn random_paths_accepted_only_when_safe() {
        const PIECES: &[&str] = &[
            "/", "/", "a", "b", ".", "..", ".git", ".GIT", "git", "\\", "\0", "~", " ", "é", "-",
            "//",
        ];
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut accepted = 0;
        for _ in 0..100_000 {
            let n = 1 + (next() % 8) as usize;
            let mut raw = String::new();
            for _ in 0..n {
                raw.push_str(PIECES[(next() % PIECES.len() as u64) as usize]);
            }
            let Ok(c) = canonical_path(&raw, true) else {
                continue;
            };
            accepted += 1;
            assert_eq!(
                canonical_path(&c, true).as_deref(),
                Ok(c.as_str()),
                "{raw:?}"
            );
            assert!(
                !c.starts_with('/') && !c.contains('\\') && !c.contains('\0'),
                "{raw:?}"
            );
            if !c.is_empty() {
                for seg in c.split('/') {
                    assert!(
                        !seg.is_empty()
                            && seg != "."
                            && seg != ".."
                            && !seg.eq_ignore_ascii_case(".git"),
                        "{raw:?} -> {c:?}"
                    );
                }
            }
        }
        assert!(accepted > 1000, "{accepted}");
    }

    #[test]
    fn refs() {
        for ok in [
            "main",
            "HEAD",
            "v1.2.0",
            "refs/heads/feature/x",
            "3f2a9c1",
            "release-1_2",
        ] {
            assert_eq!(canonical_ref(ok).unwrap(), ok);
        }
        for bad in [
            "--upload-pack=touch /tmp/x",
            "-n",
            "HEAD@{1}",
            "@",
            "main..evil",
            "main...x",
            "HEAD~1",
            "HEAD^",
            "HEAD:secret",
            "ma*in",
            "a b",
            "refs//x",
            "/main",
            "main.lock",
            ".hidden",
            "x/.y",
            "main\n",
            ":/message",
        ] {
            assert!(canonical_ref(bad).is_err(), "{bad:?} accepted");
        }
    }
}
