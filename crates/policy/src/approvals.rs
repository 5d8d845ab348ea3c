//! Operator approvals of exact calls, in a small SQLite file shared by the
//! server (which records requests and consumes approvals) and
//! `airlock approve` (which lists and approves them).
//!
//! An approval covers one call: the hash of the tool and its canonical
//! arguments, for the agent that asked, used at most once, before it
//! expires. Changing any argument gives a different hash that needs its own
//! approval.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension};

use crate::canonical::CallHash;

#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    #[error("approval state {path}: {source}")]
    Db {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("no call with hash {0} has asked for approval (see `airlock approve --list`)")]
    UnknownHash(String),
    #[error("call {0} was already used; the agent must ask again")]
    AlreadyUsed(String),
    #[error("agent `{0}` already has {1} calls waiting for approval; an operator must work through them first")]
    TooManyPending(String, usize),
}

/// Pending requests one agent may have at once, so an agent cannot grow
/// the state file (or bury real requests) without bound.
pub const MAX_PENDING_PER_AGENT: usize = 1000;

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApprovalStatus {
    Pending,
    Approved,
    Used,
    Expired,
}

/// A call that asked for approval.
#[derive(Debug, Clone)]
pub struct ApprovalRequest {
    pub hash: String,
    pub agent: String,
    pub tool: String,
    /// Canonical JSON of the arguments.
    pub args: String,
    pub requested_at: u64,
    pub approved_by: Option<String>,
    pub expires_at: Option<u64>,
    pub status: ApprovalStatus,
}

pub struct ApprovalStore {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for ApprovalStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApprovalStore")
            .field("path", &self.path)
            .finish()
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl ApprovalStore {
    /// Opens (creating if needed) the state file, mode 0600.
    pub fn open(path: &Path) -> Result<ApprovalStore, ApprovalError> {
        let db = |source| ApprovalError::Db {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // The CLI and the server may race to create it; either wins.
            let _ = std::fs::create_dir_all(dir);
        }
        let conn = Connection::open(path).map_err(db)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        }
        conn.busy_timeout(Duration::from_secs(5)).map_err(db)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous=NORMAL;
             CREATE TABLE IF NOT EXISTS approvals (
                 hash TEXT NOT NULL,
                 agent TEXT NOT NULL,
                 tool TEXT NOT NULL,
                 args TEXT NOT NULL,
                 requested_at INTEGER NOT NULL,
                 approved_by TEXT,
                 approved_at INTEGER,
                 expires_at INTEGER,
                 used_at INTEGER,
                 PRIMARY KEY (hash, agent)
             );",
        )
        .map_err(db)?;
        Ok(ApprovalStore {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
        })
    }

    fn db(&self, source: rusqlite::Error) -> ApprovalError {
        ApprovalError::Db {
            path: self.path.clone(),
            source,
        }
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (every
        // statement is atomic), so a poisoned lock is still usable.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records that `agent` asked to run this call (idempotent; a request
    /// that was used or expired becomes pending again).
    pub fn request(
        &self,
        hash: &CallHash,
        agent: &str,
        tool: &str,
        canonical_args: &str,
    ) -> Result<(), ApprovalError> {
        let now = now_secs();
        let conn = self.conn();
        let pending: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM approvals WHERE agent = ?1 AND approved_at IS NULL AND hash != ?2",
                params![agent, hash.to_hex()],
                |r| r.get(0),
            )
            .map_err(|e| self.db(e))?;
        if pending as usize >= MAX_PENDING_PER_AGENT {
            return Err(ApprovalError::TooManyPending(
                agent.to_string(),
                pending as usize,
            ));
        }
        conn.execute(
            "INSERT INTO approvals (hash, agent, tool, args, requested_at) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (hash, agent) DO UPDATE SET requested_at = ?5,
                 approved_by = CASE WHEN used_at IS NULL AND (expires_at IS NULL OR expires_at > ?5) THEN approved_by END,
                 approved_at = CASE WHEN used_at IS NULL AND (expires_at IS NULL OR expires_at > ?5) THEN approved_at END,
                 expires_at = CASE WHEN used_at IS NULL AND (expires_at IS NULL OR expires_at > ?5) THEN expires_at END,
                 used_at = NULL",
            params![hash.to_hex(), agent, tool, canonical_args, now as i64],
        )
        .map_err(|e| self.db(e))?;
        Ok(())
    }

    /// Approves every pending request with this hash for `ttl`; returns them.
    pub fn approve(
        &self,
        hash: &CallHash,
        by: &str,
        ttl: Duration,
    ) -> Result<Vec<ApprovalRequest>, ApprovalError> {
        let now = now_secs();
        let hex = hash.to_hex();
        let conn = self.conn();
        let changed = conn
            .execute(
                "UPDATE approvals SET approved_by = ?2, approved_at = ?3, expires_at = ?4
                 WHERE hash = ?1 AND used_at IS NULL",
                params![
                    hex,
                    by,
                    now as i64,
                    now.saturating_add(ttl.as_secs()) as i64
                ],
            )
            .map_err(|e| self.db(e))?;
        if changed == 0 {
            let exists: Option<i64> = conn
                .query_row("SELECT 1 FROM approvals WHERE hash = ?1", [&hex], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(|e| self.db(e))?;
            return Err(match exists {
                Some(_) => ApprovalError::AlreadyUsed(hex),
                None => ApprovalError::UnknownHash(hex),
            });
        }
        drop(conn);
        Ok(self
            .list()?
            .into_iter()
            .filter(|r| r.hash == hash.to_hex())
            .collect())
    }

    /// Uses the approval for this call by this agent, if there is a live
    /// one: true at most once per approval.
    pub fn consume(&self, hash: &CallHash, agent: &str) -> Result<bool, ApprovalError> {
        let now = now_secs() as i64;
        let changed = self
            .conn()
            .execute(
                "UPDATE approvals SET used_at = ?3
                 WHERE hash = ?1 AND agent = ?2 AND approved_at IS NOT NULL
                   AND used_at IS NULL AND expires_at > ?3",
                params![hash.to_hex(), agent, now],
            )
            .map_err(|e| self.db(e))?;
        Ok(changed == 1)
    }

    /// Every request, newest first.
    pub fn list(&self) -> Result<Vec<ApprovalRequest>, ApprovalError> {
        let now = now_secs();
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT hash, agent, tool, args, requested_at, approved_by, approved_at, expires_at, used_at
                 FROM approvals ORDER BY requested_at DESC, hash",
            )
            .map_err(|e| self.db(e))?;
        let rows = stmt
            .query_map([], |r| {
                let approved_at: Option<i64> = r.get(6)?;
                let expires_at: Option<i64> = r.get(7)?;
                let used_at: Option<i64> = r.get(8)?;
                let status = if used_at.is_some() {
                    ApprovalStatus::Used
                } else if approved_at.is_none() {
                    ApprovalStatus::Pending
                } else if expires_at.is_some_and(|e| e as u64 <= now) {
                    ApprovalStatus::Expired
                } else {
                    ApprovalStatus::Approved
                };
                Ok(ApprovalRequest {
                    hash: r.get(0)?,
                    agent: r.get(1)?,
                    tool: r.get(2)?,
                    args: r.get(3)?,
                    requested_at: r.get::<_, i64>(4)? as u64,
                    approved_by: r.get(5)?,
                    expires_at: expires_at.map(|e| e as u64),
                    status,
                })
            })
            .map_err(|e| self.db(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.db(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::call_hash;
    use serde_json::json;

    #[test]
    fn an_approval_is_for_one_exact_call_by_one_agent_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = ApprovalStore::open(&dir.path().join("approvals.db")).unwrap();
        let h = call_hash("deploy", &json!({"env": "prod"}));
        let other = call_hash("deploy", &json!({"env": "prod2"}));

        assert!(!store.consume(&h, "ci").unwrap(), "nothing approved yet");
        assert!(matches!(
            store.approve(&h, "op", Duration::from_secs(60)),
            Err(ApprovalError::UnknownHash(_))
        ));
        store
            .request(&h, "ci", "deploy", r#"{"env":"prod"}"#)
            .unwrap();
        assert_eq!(store.list().unwrap()[0].status, ApprovalStatus::Pending);
        assert!(!store.consume(&h, "ci").unwrap(), "pending is not approved");

        let approved = store.approve(&h, "op", Duration::from_secs(60)).unwrap();
        assert_eq!(approved.len(), 1);
        assert_eq!(approved[0].status, ApprovalStatus::Approved);
        assert!(!store.consume(&other, "ci").unwrap(), "other args");
        assert!(!store.consume(&h, "intruder").unwrap(), "other agent");
        assert!(store.consume(&h, "ci").unwrap());
        assert!(!store.consume(&h, "ci").unwrap(), "used once");
        assert!(matches!(
            store.approve(&h, "op", Duration::from_secs(60)),
            Err(ApprovalError::AlreadyUsed(_))
        ));
        // Asking again makes a fresh pending request.
        store
            .request(&h, "ci", "deploy", r#"{"env":"prod"}"#)
            .unwrap();
        assert_eq!(store.list().unwrap()[0].status, ApprovalStatus::Pending);
    }

    #[test]
    fn one_agent_cannot_flood_the_pending_list() {
        let dir = tempfile::tempdir().unwrap();
        let store = ApprovalStore::open(&dir.path().join("a.db")).unwrap();
        for i in 0..MAX_PENDING_PER_AGENT {
            store
                .request(&call_hash("t", &json!({"i": i})), "greedy", "t", "{}")
                .unwrap();
        }
        let next = call_hash("t", &json!({"i": "one more"}));
        assert!(matches!(
            store.request(&next, "greedy", "t", "{}"),
            Err(ApprovalError::TooManyPending(..))
        ));
        // Asking again for a call already pending is fine, and other agents are unaffected.
        store
            .request(&call_hash("t", &json!({"i": 0})), "greedy", "t", "{}")
            .unwrap();
        store.request(&next, "modest", "t", "{}").unwrap();
    }

    #[test]
    fn an_expired_approval_is_refused_and_a_second_handle_sees_approvals() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        let server = ApprovalStore::open(&path).unwrap();
        let cli = ApprovalStore::open(&path).unwrap();
        let h = call_hash("t", &json!({}));
        server.request(&h, "a", "t", "{}").unwrap();
        cli.approve(&h, "op", Duration::from_secs(0)).unwrap();
        assert_eq!(cli.list().unwrap()[0].status, ApprovalStatus::Expired);
        assert!(!server.consume(&h, "a").unwrap());
        cli.approve(&h, "op", Duration::from_secs(600)).unwrap();
        assert!(server.consume(&h, "a").unwrap());
    }
}
