//! `airlock audit verify`: walks every segment and names the first record
//! or checkpoint that is wrong. Records after the last valid checkpoint are
//! reported as unproven, not as fine.

use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::keys::{hex, sha256, unhex, PublicKey};
use crate::log::GENESIS;
use crate::{canonical, segments, AuditError};

/// The fields every record is checked on.
#[derive(serde::Deserialize)]
struct Head<'a> {
    seq: Option<u64>,
    #[serde(borrow)]
    prev: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    kind: Option<std::borrow::Cow<'a, str>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every record is covered by a valid signed checkpoint.
    Ok,
    /// Nothing is wrong, but some records are not (yet) covered by a valid
    /// signed checkpoint (or checkpoints are unsigned).
    Unproven,
    /// Something was modified, removed, inserted, reordered or forged.
    Tampered,
}

#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// `00000001.jsonl:17`
    pub at: String,
    pub seq: Option<u64>,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub verdict: Verdict,
    pub records: u64,
    pub checkpoints: u64,
    /// Highest sequence number a valid checkpoint covers.
    pub proven_through: Option<u64>,
    /// Records after the last valid checkpoint.
    pub unproven: u64,
    /// The first problem (verification stops there).
    pub problem: Option<Problem>,
    pub notes: Vec<String>,
    /// The key checkpoints were checked against.
    pub key: Option<String>,
}

/// Verifies the log in `dir`. With `key`, checkpoints must be signed by it;
/// without, the key of the first checkpoint is used (and a note says so).
pub fn verify(dir: &Path, key: Option<&PublicKey>) -> Result<Report, AuditError> {
    let segs = segments::list(dir)?;
    let mut r = Report {
        verdict: Verdict::Ok,
        records: 0,
        checkpoints: 0,
        proven_through: None,
        unproven: 0,
        problem: None,
        notes: Vec::new(),
        key: key.map(|k| k.to_text()),
    };
    let mut pinned: Option<PublicKey> = key.cloned();
    if key.is_none() {
        r.notes.push("no --key given: checkpoints were checked against the key they name; pass --key to pin it".into());
    }
    let mut expect_seq = 1u64;
    let mut prev = GENESIS.to_string();
    let mut prev_cp = GENESIS.to_string();
    let mut since_cp = 0u64;
    let mut unsigned = false;
    // A torn tail the next record must account for: (segment, offset, sha256).
    let mut torn: Option<(String, usize, String)> = None;
    let fail = |r: &mut Report, at: String, seq: Option<u64>, message: String| {
        r.verdict = Verdict::Tampered;
        r.problem = Some(Problem { at, seq, message });
    };
    for (si, (idx, path)) in segs.iter().enumerate() {
        let name = segments::name(*idx);
        let bytes =
            std::fs::read(path).map_err(|e| AuditError::Io(format!("{}: {e}", path.display())))?;
        let (lines, tail) = segments::split(&bytes);
        let mut prepared = prepare(&lines);
        for (ln, (_, line)) in lines.iter().enumerate() {
            // Only formatted when something is wrong.
            let at = || format!("{name}:{}", ln + 1);
            // Most records need only three fields; parse the whole record
            // only for checkpoints and recovery records.
            let head: Head = match std::mem::replace(&mut prepared[ln].1, Err(String::new())) {
                Ok(h) => h,
                Err(e) => {
                    fail(
                        &mut r,
                        at(),
                        Some(expect_seq),
                        format!("not a valid record ({e}): modified or corrupted"),
                    );
                    return Ok(finish(r, since_cp, unsigned));
                }
            };
            let seq = head.seq;
            let kind = head.kind.as_deref().unwrap_or("");
            let v: Value = if kind == "checkpoint" || kind == "recovery" {
                serde_json::from_slice(line).unwrap_or(Value::Null)
            } else {
                Value::Null
            };
            if seq != Some(expect_seq) {
                let msg = match seq {
                    Some(s) if s > expect_seq => format!("found seq {s} where seq {expect_seq} belongs: record(s) {expect_seq}..{} were deleted, or records were reordered", s - 1),
                    Some(s) => format!("found seq {s} where seq {expect_seq} belongs: a record was inserted, duplicated or reordered"),
                    None => "record has no seq: modified".into(),
                };
                fail(&mut r, at(), Some(expect_seq), msg);
                return Ok(finish(r, since_cp, unsigned));
            }
            if head.prev.as_deref() != Some(prev.as_str()) {
                let before = expect_seq.saturating_sub(1);
                fail(&mut r, at(), Some(expect_seq), format!("does not chain to the record before it: seq {before} was modified (or this record's link was)"));
                if let Some(p) = r.problem.as_mut() {
                    p.seq = Some(before);
                }
                return Ok(finish(r, since_cp, unsigned));
            }
            if let Some((seg, off, hash)) = torn.take() {
                let d = &v["detail"];
                let names_it = kind == "recovery"
                    && d["segment"] == seg.as_str()
                    && d["offset"].as_u64() == Some(off as u64)
                    && d["torn_sha256"] == hash.as_str();
                if !names_it {
                    fail(&mut r, format!("{seg}:end"), None, "a torn line ends this segment and no recovery record accounts for it: bytes were cut or appended".into());
                    return Ok(finish(r, since_cp, unsigned));
                }
                r.notes.push(format!("{seg}: torn last line at byte {off} (a crash during an append), recorded by seq {expect_seq}"));
            }
            if kind == "checkpoint" {
                if v["prev_checkpoint"].as_str() != Some(prev_cp.as_str()) {
                    fail(&mut r, at(), seq, "checkpoint does not follow the previous checkpoint: a checkpoint was removed or replaced".into());
                    return Ok(finish(r, since_cp, unsigned));
                }
                match (v["sig"].as_str(), v["key"].as_str()) {
                    (Some(sig), Some(k)) => {
                        let named = PublicKey::parse_or_read(k).ok();
                        let Some(named) = named else {
                            fail(&mut r, at(), seq, "checkpoint names a malformed key".into());
                            return Ok(finish(r, since_cp, unsigned));
                        };
                        let trusted = pinned.get_or_insert_with(|| named.clone()).clone();
                        let mut body = v.clone();
                        body.as_object_mut().map(|o| o.remove("sig"));
                        let ok = named == trusted
                            && unhex(sig)
                                .is_some_and(|s| trusted.verify(&canonical::to_vec(&body), &s));
                        if !ok {
                            fail(&mut r, at(), seq, "checkpoint signature is not valid for the trusted key: forged or replaced".into());
                            return Ok(finish(r, since_cp, unsigned));
                        }
                        r.proven_through = seq;
                        since_cp = 0;
                    }
                    _ => {
                        unsigned = true;
                        since_cp += 1;
                    }
                }
                r.checkpoints += 1;
                prev_cp = prepared[ln].0.clone();
            } else {
                r.records += 1;
                since_cp += 1;
            }
            prev = std::mem::take(&mut prepared[ln].0);
            expect_seq += 1;
        }
        if let Some((off, t)) = tail {
            let last = si == segs.len() - 1;
            if last {
                r.notes.push(format!("{name}: the last line is cut short at byte {off} ({} bytes; a crash during an append); it will be recorded when the log is next opened", t.len()));
                since_cp += 1;
            } else {
                torn = Some((name.clone(), off, hex(&sha256(t))));
            }
        }
    }
    if let Some((seg, _, _)) = torn {
        fail(
            &mut r,
            format!("{seg}:end"),
            None,
            "a torn line ends this segment and no recovery record accounts for it".into(),
        );
    }
    Ok(finish(r, since_cp, unsigned))
}

fn finish(mut r: Report, since_cp: u64, unsigned: bool) -> Report {
    r.unproven = since_cp;
    if unsigned {
        r.notes.push("checkpoints are unsigned (no audit.signing_key): the chain shows accidental damage, not deliberate rewriting".into());
    }
    if r.verdict == Verdict::Ok
        && (since_cp > 0 || unsigned || r.proven_through.is_none() && r.records > 0)
    {
        r.verdict = Verdict::Unproven;
    }
    r
}

/// Each line's hex SHA-256 and its parsed head, computed on all cores
/// (hashing and parsing are most of the cost of verifying; the checks
/// themselves stay sequential).
fn prepare<'a>(lines: &[segments::Line<'a>]) -> Vec<(String, Result<Head<'a>, String>)> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    let chunk = lines.len().div_ceil(threads).max(1);
    let mut out = Vec::with_capacity(lines.len());
    std::thread::scope(|s| {
        let parts: Vec<_> = lines
            .chunks(chunk)
            .map(|c| {
                s.spawn(move || {
                    c.iter()
                        .map(|(_, l)| {
                            let head =
                                serde_json::from_slice::<Head<'a>>(l).map_err(|e| e.to_string());
                            (hex(&sha256(l)), head)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for p in parts {
            out.extend(p.join().expect("verify thread"));
        }
    });
    out
}
