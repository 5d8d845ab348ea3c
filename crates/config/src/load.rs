//! The strict loader: YAML text to a validated [`Config`], or every problem
//! in the file with its line, column and fix.
//!
//! Relative paths in the file (tool repositories, TLS files, the audit
//! directory, …) are resolved against the directory of the config file;
//! `sandbox.filesystem` paths are the exception, they are relative to the
//! session's workdir.

mod agents;
mod body;
mod decode;
mod diag;
mod read;
mod tools;
mod tunnel;
mod yaml;

use std::path::Path;

pub use diag::{Diagnostic, Diagnostics, Pos};

use crate::model::Config;

/// What to check beyond the file itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadOptions {
    /// Resolve every `${env:…}` / `${file:…}` reference now and report the
    /// ones that cannot be resolved (values are read and dropped, never shown).
    pub check_secrets: bool,
}

/// Reads and validates `path`. Secret references are parsed, not resolved.
pub fn load_file(path: &Path) -> Result<Config, Diagnostics> {
    load_file_with(path, LoadOptions::default())
}

pub fn load_file_with(path: &Path, opts: LoadOptions) -> Result<Config, Diagnostics> {
    let name = path.display().to_string();
    match std::fs::read(path) {
        Ok(bytes) => load_bytes(&bytes, &name, opts),
        Err(e) => {
            let mut d = Diagnostics::default();
            d.push(
                &name,
                Pos::default(),
                format!("cannot read the file: {e}"),
                "check the path and its permissions".to_string(),
            );
            Err(d)
        }
    }
}

/// Validates file contents; non-UTF-8 input is an error at its position.
pub fn load_bytes(bytes: &[u8], file_name: &str, opts: LoadOptions) -> Result<Config, Diagnostics> {
    match std::str::from_utf8(bytes) {
        Ok(src) => load_str_with(src, file_name, opts),
        Err(e) => {
            let before = &bytes[..e.valid_up_to()];
            let line = before.iter().filter(|b| **b == b'\n').count() + 1;
            let line_start = before
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |i| i + 1);
            let column = String::from_utf8_lossy(&before[line_start..])
                .chars()
                .count()
                + 1;
            let mut d = Diagnostics::default();
            d.push(
                file_name,
                Pos { line, column },
                "the file is not valid UTF-8".to_string(),
                "save the file as UTF-8".to_string(),
            );
            Err(d)
        }
    }
}

/// Validates `src`; `file_name` is used in messages and its directory is the
/// base of relative paths.
pub fn load_str(src: &str, file_name: &str) -> Result<Config, Diagnostics> {
    load_str_with(src, file_name, LoadOptions::default())
}

pub fn load_str_with(src: &str, file_name: &str, opts: LoadOptions) -> Result<Config, Diagnostics> {
    let src = src.strip_prefix('\u{feff}').unwrap_or(src);
    let mut cx = read::Cx {
        file: file_name,
        base: Path::new(file_name)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default(),
        check_secrets: opts.check_secrets,
        diags: Diagnostics::default(),
        unread: Default::default(),
    };
    let root = match yaml::parse(src) {
        Ok((Some(root), soft)) => {
            for e in soft {
                cx.err(e.pos, e.message, e.help);
            }
            root
        }
        Ok((None, _)) => {
            cx.err(
                Pos { line: 1, column: 1 },
                "the file is empty",
                "start with `version: 1`; `airlock config example` prints a complete, commented file",
            );
            return Err(cx.diags);
        }
        Err(errors) => {
            for e in errors {
                let pos = if e.pos.line == 0 { end_of(src) } else { e.pos };
                cx.err(pos, e.message, e.help);
            }
            cx.diags.sort();
            return Err(cx.diags);
        }
    };
    let config = decode::config(&mut cx, &root);
    if cx.diags.is_empty() {
        // Decoders stop early on errors; on a clean file every key must have
        // been read, or the file says something airlock would ignore.
        let unread = std::mem::take(&mut *cx.unread.borrow_mut());
        for (pos, key) in unread {
            cx.err(
                pos,
                format!("`{key}` was accepted but not applied"),
                "this is a bug in airlock's config loader; please report it with the file",
            );
        }
    }
    cx.diags.sort();
    match config {
        Some(c) if cx.diags.is_empty() => Ok(c),
        _ => {
            if cx.diags.is_empty() {
                // A decoder that fails must have said why; never pass silently.
                cx.err(
                    Pos { line: 1, column: 1 },
                    "the file could not be read as a config",
                    "run `airlock config example` for a valid file",
                );
            }
            Err(cx.diags)
        }
    }
}

fn end_of(src: &str) -> Pos {
    let line = src.lines().count().max(1);
    let column = src.lines().last().map_or(0, |l| l.chars().count()) + 1;
    Pos { line, column }
}

pub(crate) fn diag_list<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    diag::list(items)
}
