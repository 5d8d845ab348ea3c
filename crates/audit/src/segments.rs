//! Segment files: `NNNNNNNN.jsonl` in the log directory, appended in order.

use std::path::{Path, PathBuf};

use crate::AuditError;

pub fn name(index: u64) -> String {
    format!("{index:08}.jsonl")
}

/// The segments in order, with their indexes.
pub fn list(dir: &Path) -> Result<Vec<(u64, PathBuf)>, AuditError> {
    let rd =
        std::fs::read_dir(dir).map_err(|e| AuditError::Io(format!("{}: {e}", dir.display())))?;
    let mut v: Vec<(u64, PathBuf)> = rd
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().into_string().ok()?;
            let idx = n.strip_suffix(".jsonl")?.parse().ok()?;
            Some((idx, e.path()))
        })
        .collect();
    v.sort();
    Ok(v)
}

/// Splits a segment's bytes into complete lines (without the newline) and
/// a torn tail (bytes after the last newline), with each line's offset.
/// A line (or torn tail) and its byte offset in the segment.
pub type Line<'a> = (usize, &'a [u8]);

pub fn split(bytes: &[u8]) -> (Vec<Line<'_>>, Option<Line<'_>>) {
    let mut lines = Vec::new();
    let mut start = 0;
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'\n' {
            lines.push((start, &bytes[start..i]));
            start = i + 1;
        }
    }
    let torn = (start < bytes.len()).then(|| (start, &bytes[start..]));
    (lines, torn)
}
