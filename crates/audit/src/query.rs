//! Reading the log: every record in order, filtered, for `airlock audit
//! query` and `tail`.

use std::path::Path;

use serde_json::Value;

use crate::{segments, time, AuditError};

#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub since_ns: Option<u128>,
    pub until_ns: Option<u128>,
    pub agent: Option<String>,
    pub session: Option<String>,
    pub tool: Option<String>,
    pub kind: Option<String>,
    /// `allow` or `deny`.
    pub decision: Option<String>,
    pub status: Option<String>,
    /// Include checkpoint and recovery records.
    pub all: bool,
}

impl Filter {
    pub fn matches(&self, v: &Value) -> bool {
        let kind = v["kind"].as_str().unwrap_or("");
        if !self.all && (kind == "checkpoint" || kind == "recovery") {
            return false;
        }
        let ts = v["ts"].as_u64().map(u128::from).unwrap_or(0);
        if self.since_ns.is_some_and(|s| ts < s) || self.until_ns.is_some_and(|u| ts >= u) {
            return false;
        }
        let eq = |want: &Option<String>, got: &Value| {
            want.as_deref().is_none_or(|w| got.as_str() == Some(w))
        };
        if !eq(&self.agent, &v["who"]["agent"])
            || !eq(&self.session, &v["who"]["session"])
            || !eq(&self.tool, &v["tool"])
            || !eq(&self.kind, &v["kind"])
            || !eq(&self.status, &v["status"])
        {
            return false;
        }
        match self.decision.as_deref() {
            Some("allow") => v["decision"]["allowed"] == true,
            Some("deny") => v["decision"]["allowed"] == false,
            _ => true,
        }
    }
}

/// Parses `--since`/`--until`: RFC 3339, a date, or a duration ago (`15m`, `2h`, `7d`).
pub fn parse_time(s: &str) -> Option<u128> {
    if let Some(t) = time::parse_rfc3339(s) {
        return Some(t);
    }
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
    let n: u128 = num.parse().ok()?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return None,
    };
    time::now_unix_nanos().checked_sub(secs * 1_000_000_000)
}

/// Calls `f` with every record (parsed) that passes `filter`, in order.
/// Lines that do not parse are skipped here (`verify` reports them).
pub fn scan(
    dir: &Path,
    filter: &Filter,
    mut f: impl FnMut(&Value, &[u8]) -> bool,
) -> Result<u64, AuditError> {
    let mut n = 0;
    for (_, path) in segments::list(dir)? {
        let bytes =
            std::fs::read(&path).map_err(|e| AuditError::Io(format!("{}: {e}", path.display())))?;
        let (lines, _) = segments::split(&bytes);
        for (_, l) in lines {
            // Cheap pre-filters before parsing.
            if let Some(t) = &filter.tool {
                if !contains(l, t.as_bytes()) {
                    continue;
                }
            }
            if let Some(a) = &filter.agent {
                if !contains(l, a.as_bytes()) {
                    continue;
                }
            }
            let Ok(v) = serde_json::from_slice::<Value>(l) else {
                continue;
            };
            if filter.matches(&v) {
                n += 1;
                if !f(&v, l) {
                    return Ok(n);
                }
            }
        }
    }
    Ok(n)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

/// Where a follower has read up to: a segment and a byte offset in it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Position {
    pub segment: u64,
    pub offset: u64,
}

/// Reads the complete lines appended since `pos` (following rotation into
/// later segments), calls `f` with each parsed record, and returns the new
/// position. Only new bytes are read, so `tail -f` costs nothing when idle.
pub fn follow(
    dir: &Path,
    pos: Position,
    mut f: impl FnMut(&Value),
) -> Result<Position, AuditError> {
    use std::io::{Read, Seek, SeekFrom};
    let mut pos = pos;
    for (idx, path) in segments::list(dir)? {
        if idx < pos.segment {
            continue;
        }
        if idx > pos.segment {
            pos = Position {
                segment: idx,
                offset: 0,
            };
        }
        let mut file = std::fs::File::open(&path)
            .map_err(|e| AuditError::Io(format!("{}: {e}", path.display())))?;
        file.seek(SeekFrom::Start(pos.offset))
            .map_err(|e| AuditError::Io(format!("{}: {e}", path.display())))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|e| AuditError::Io(format!("{}: {e}", path.display())))?;
        // A partly written last line is left for the next call.
        let (lines, _) = segments::split(&bytes);
        for (_, l) in lines {
            if let Ok(v) = serde_json::from_slice::<Value>(l) {
                f(&v);
            }
            pos.offset += (l.len() + 1) as u64;
        }
    }
    Ok(pos)
}

/// The end of the log: where a follower starts to see only new records.
pub fn end(dir: &Path) -> Result<Position, AuditError> {
    let segs = segments::list(dir)?;
    Ok(match segs.last() {
        Some((idx, path)) => Position {
            segment: *idx,
            offset: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
        },
        None => Position::default(),
    })
}
