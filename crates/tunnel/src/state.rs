//! Gateway state in one SQLite file: tunnels, their CA certificates (at most
//! two active, for rotation), tunnel-token hashes, agent keys, link history
//! and the gateway's identity-signing key. The CLI and a running gateway
//! share the file (WAL, busy timeout); the gateway re-reads what it needs.
//!
//! Secrets are stored as SHA-256 hashes: tokens and keys are 256-bit random
//! values, so a fast hash is enough (no password-style stretching needed).

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};
use rusqlite::{params, Connection, OptionalExtension};

use crate::paths::valid_name;
use crate::Error;

/// Ordered migrations; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE tunnels (
    name TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    archived_at INTEGER
);
CREATE TABLE tunnel_cas (
    id INTEGER PRIMARY KEY,
    tunnel TEXT NOT NULL REFERENCES tunnels(name),
    pem BLOB NOT NULL,
    added_at INTEGER NOT NULL,
    active INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE tunnel_tokens (
    id INTEGER PRIMARY KEY,
    tunnel TEXT NOT NULL REFERENCES tunnels(name),
    hash BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER
);
CREATE INDEX tunnel_tokens_tunnel ON tunnel_tokens(tunnel);
CREATE TABLE agent_keys (
    id TEXT PRIMARY KEY,
    agent TEXT NOT NULL,
    tunnel TEXT NOT NULL,
    routes TEXT NOT NULL,
    hash BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE TABLE link_events (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    tunnel TEXT NOT NULL,
    connector TEXT NOT NULL,
    link INTEGER NOT NULL,
    event TEXT NOT NULL,
    peer TEXT NOT NULL,
    detail TEXT NOT NULL
);
"#];

pub const MAX_ACTIVE_CAS: usize = 2;

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub fn sha256(s: &str) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, s.as_bytes())
        .as_ref()
        .to_vec()
}

fn random_b64(n: usize) -> Result<String, Error> {
    let mut b = vec![0u8; n];
    SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| Error::State("random generator failed".into()))?;
    Ok(B64.encode(b))
}

use crate::ct_eq;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TunnelInfo {
    pub name: String,
    pub created_at: i64,
    pub archived_at: Option<i64>,
    pub active_cas: usize,
    pub tokens: usize,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct KeyInfo {
    pub id: String,
    pub agent: String,
    pub tunnel: String,
    pub routes: Vec<String>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// What a valid agent key grants.
#[derive(Debug, Clone)]
pub struct KeyGrant {
    pub id: String,
    pub agent: String,
    pub tunnel: String,
    /// Empty means every route of the tunnel.
    pub routes: Vec<String>,
}

impl KeyGrant {
    pub fn allows(&self, tunnel: &str, route: &str) -> bool {
        self.tunnel == tunnel && (self.routes.is_empty() || self.routes.iter().any(|r| r == route))
    }
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct LinkEvent {
    pub at: i64,
    pub tunnel: String,
    pub connector: String,
    pub link: u32,
    pub event: String,
    pub peer: String,
    pub detail: String,
}

type KeyRow = (String, String, String, Vec<u8>, Option<i64>);

pub struct State {
    db: Connection,
}

impl State {
    pub fn open(path: &Path) -> Result<State, Error> {
        let db = Connection::open(path)
            .map_err(|e| Error::State(format!("open {}: {e}", path.display())))?;
        State::init(db)
    }

    pub fn in_memory() -> Result<State, Error> {
        State::init(Connection::open_in_memory().map_err(sql)?)
    }

    fn init(db: Connection) -> Result<State, Error> {
        db.busy_timeout(Duration::from_secs(5)).map_err(sql)?;
        // journal_mode returns a row; WAL lets the CLI write while the gateway reads.
        let _: String = db
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(sql)?;
        db.execute_batch("PRAGMA foreign_keys=ON; PRAGMA synchronous=NORMAL;")
            .map_err(sql)?;
        let mut s = State { db };
        s.migrate()?;
        Ok(s)
    }

    fn migrate(&mut self) -> Result<(), Error> {
        let have: i64 = self
            .db
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(sql)?;
        let have = usize::try_from(have).map_err(|_| Error::State("bad schema version".into()))?;
        if have > MIGRATIONS.len() {
            return Err(Error::State(format!(
                "state file schema version {have} is newer than this airlock ({}); upgrade airlock",
                MIGRATIONS.len()
            )));
        }
        for (i, m) in MIGRATIONS.iter().enumerate().skip(have) {
            let tx = self.db.transaction().map_err(sql)?;
            tx.execute_batch(m).map_err(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)
                .map_err(sql)?;
            tx.commit().map_err(sql)?;
        }
        Ok(())
    }

    /// The gateway's Ed25519 signing key (PKCS#8), created on first use.
    pub fn signing_key(&mut self) -> Result<airlock_identity::Signer, Error> {
        let got: Option<Vec<u8>> = self
            .db
            .query_row("SELECT value FROM meta WHERE key='signing_key'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(sql)?;
        if let Some(der) = got {
            return airlock_identity::Signer::from_pkcs8(&der)
                .map_err(|e| Error::State(e.to_string()));
        }
        let s = airlock_identity::Signer::generate().map_err(|e| Error::State(e.to_string()))?;
        self.db
            .execute(
                "INSERT INTO meta(key, value) VALUES ('signing_key', ?1)",
                params![s.pkcs8()],
            )
            .map_err(sql)?;
        Ok(s)
    }

    /// Creates a tunnel with its CA(s); returns the token (shown once).
    pub fn create_tunnel(&mut self, name: &str, ca_pems: &[Vec<u8>]) -> Result<String, Error> {
        if !valid_name(name) {
            return Err(Error::State(format!(
                "tunnel name `{name}` must be 1-63 of [A-Za-z0-9_-]"
            )));
        }
        if ca_pems.is_empty() || ca_pems.len() > MAX_ACTIVE_CAS {
            return Err(Error::State(format!(
                "a tunnel needs 1 or {MAX_ACTIVE_CAS} CA certificates"
            )));
        }
        for pem in ca_pems {
            crate::certs::check_ca_pem(pem, std::time::SystemTime::now())?;
        }
        let token = format!("alt_{}", random_b64(32)?);
        let t = now();
        let tx = self.db.transaction().map_err(sql)?;
        let exists: Option<i64> = tx
            .query_row("SELECT 1 FROM tunnels WHERE name=?1", params![name], |r| {
                r.get(0)
            })
            .optional()
            .map_err(sql)?;
        if exists.is_some() {
            return Err(Error::State(format!(
                "tunnel `{name}` already exists (archived tunnels keep their name)"
            )));
        }
        tx.execute(
            "INSERT INTO tunnels(name, created_at) VALUES (?1, ?2)",
            params![name, t],
        )
        .map_err(sql)?;
        for pem in ca_pems {
            tx.execute(
                "INSERT INTO tunnel_cas(tunnel, pem, added_at) VALUES (?1, ?2, ?3)",
                params![name, pem, t],
            )
            .map_err(sql)?;
        }
        tx.execute(
            "INSERT INTO tunnel_tokens(tunnel, hash, created_at) VALUES (?1, ?2, ?3)",
            params![name, sha256(&token), t],
        )
        .map_err(sql)?;
        tx.commit().map_err(sql)?;
        Ok(token)
    }

    /// Adds a CA (rotation); refuses a third active one.
    pub fn add_ca(&mut self, tunnel: &str, pem: &[u8]) -> Result<(), Error> {
        crate::certs::check_ca_pem(pem, std::time::SystemTime::now())?;
        self.require_active(tunnel)?;
        let n: i64 = self
            .db
            .query_row(
                "SELECT COUNT(*) FROM tunnel_cas WHERE tunnel=?1 AND active=1",
                params![tunnel],
                |r| r.get(0),
            )
            .map_err(sql)?;
        if n as usize >= MAX_ACTIVE_CAS {
            return Err(Error::State(format!(
                "tunnel `{tunnel}` already has {MAX_ACTIVE_CAS} active CAs; retire one first"
            )));
        }
        self.db
            .execute(
                "INSERT INTO tunnel_cas(tunnel, pem, added_at) VALUES (?1, ?2, ?3)",
                params![tunnel, pem, now()],
            )
            .map_err(sql)?;
        Ok(())
    }

    /// Retires every active CA of the tunnel except the newest.
    pub fn retire_old_cas(&mut self, tunnel: &str) -> Result<usize, Error> {
        let n = self
            .db
            .execute(
                "UPDATE tunnel_cas SET active=0 WHERE tunnel=?1 AND active=1 AND id <> \
                 (SELECT MAX(id) FROM tunnel_cas WHERE tunnel=?1 AND active=1)",
                params![tunnel],
            )
            .map_err(sql)?;
        Ok(n)
    }

    /// Issues a new token; the current ones keep working for `grace`.
    pub fn rotate_token(&mut self, tunnel: &str, grace: Duration) -> Result<String, Error> {
        self.require_active(tunnel)?;
        let token = format!("alt_{}", random_b64(32)?);
        let t = now();
        let until = t.saturating_add(grace.as_secs() as i64);
        let tx = self.db.transaction().map_err(sql)?;
        tx.execute(
            "UPDATE tunnel_tokens SET expires_at = MIN(COALESCE(expires_at, ?2), ?2) WHERE tunnel=?1",
            params![tunnel, until],
        )
        .map_err(sql)?;
        tx.execute(
            "DELETE FROM tunnel_tokens WHERE tunnel=?1 AND expires_at <= ?2",
            params![tunnel, t],
        )
        .map_err(sql)?;
        tx.execute(
            "INSERT INTO tunnel_tokens(tunnel, hash, created_at) VALUES (?1, ?2, ?3)",
            params![tunnel, sha256(&token), t],
        )
        .map_err(sql)?;
        tx.commit().map_err(sql)?;
        Ok(token)
    }

    pub fn archive_tunnel(&mut self, tunnel: &str) -> Result<(), Error> {
        self.require_active(tunnel)?;
        let t = now();
        self.db
            .execute(
                "UPDATE tunnels SET archived_at=?2 WHERE name=?1",
                params![tunnel, t],
            )
            .map_err(sql)?;
        self.db
            .execute(
                "UPDATE agent_keys SET revoked_at=?2 WHERE tunnel=?1 AND revoked_at IS NULL",
                params![tunnel, t],
            )
            .map_err(sql)?;
        Ok(())
    }

    fn require_active(&self, tunnel: &str) -> Result<(), Error> {
        if self.is_active(tunnel)? {
            Ok(())
        } else {
            Err(Error::State(format!(
                "no active tunnel named `{tunnel}` (see `airlock tunnel list`)"
            )))
        }
    }

    pub fn is_active(&self, tunnel: &str) -> Result<bool, Error> {
        let r: Option<Option<i64>> = self
            .db
            .query_row(
                "SELECT archived_at FROM tunnels WHERE name=?1",
                params![tunnel],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql)?;
        Ok(matches!(r, Some(None)))
    }

    /// Active CA PEMs of one tunnel.
    pub fn tunnel_cas(&self, tunnel: &str) -> Result<Vec<Vec<u8>>, Error> {
        let mut st = self
            .db
            .prepare_cached("SELECT pem FROM tunnel_cas WHERE tunnel=?1 AND active=1 ORDER BY id")
            .map_err(sql)?;
        let rows = st.query_map(params![tunnel], |r| r.get(0)).map_err(sql)?;
        rows.collect::<Result<_, _>>().map_err(sql)
    }

    /// Active CA PEMs of every active tunnel (the handshake trust set).
    pub fn all_active_cas(&self) -> Result<Vec<Vec<u8>>, Error> {
        let mut st = self
            .db
            .prepare_cached(
                "SELECT c.pem FROM tunnel_cas c JOIN tunnels t ON t.name=c.tunnel \
                 WHERE c.active=1 AND t.archived_at IS NULL ORDER BY c.id",
            )
            .map_err(sql)?;
        let rows = st.query_map([], |r| r.get(0)).map_err(sql)?;
        rows.collect::<Result<_, _>>().map_err(sql)
    }

    /// True if `token` is a current token of an active tunnel.
    pub fn check_token(&self, tunnel: &str, token: &str) -> Result<bool, Error> {
        if !self.is_active(tunnel)? {
            return Ok(false);
        }
        let h = sha256(token);
        let mut st = self
            .db
            .prepare_cached(
                "SELECT hash FROM tunnel_tokens WHERE tunnel=?1 AND (expires_at IS NULL OR expires_at > ?2)",
            )
            .map_err(sql)?;
        let hashes: Vec<Vec<u8>> = st
            .query_map(params![tunnel, now()], |r| r.get(0))
            .map_err(sql)?
            .collect::<Result<_, _>>()
            .map_err(sql)?;
        // Compare against all, without an early exit.
        Ok(hashes.iter().fold(false, |acc, s| acc | ct_eq(s, &h)))
    }

    /// Creates an agent key for `tunnel` (all routes if `routes` is empty);
    /// returns `(id, key)`; the key is shown once.
    pub fn create_key(
        &mut self,
        agent: &str,
        tunnel: &str,
        routes: &[String],
    ) -> Result<(String, String), Error> {
        if !valid_name(agent) {
            return Err(Error::State(format!(
                "agent name `{agent}` must be 1-63 of [A-Za-z0-9_-]"
            )));
        }
        if let Some(r) = routes.iter().find(|r| !valid_name(r)) {
            return Err(Error::State(format!(
                "route name `{r}` must be 1-63 of [A-Za-z0-9_-]"
            )));
        }
        self.require_active(tunnel)?;
        let id = random_b64(9)?.replace(['-', '_'], "x");
        let secret = random_b64(32)?;
        let key = format!("alk_{id}_{secret}");
        self.db
            .execute(
                "INSERT INTO agent_keys(id, agent, tunnel, routes, hash, created_at) VALUES (?1,?2,?3,?4,?5,?6)",
                params![id, agent, tunnel, routes.join(","), sha256(&key), now()],
            )
            .map_err(sql)?;
        Ok((id, key))
    }

    pub fn revoke_key(&mut self, id: &str) -> Result<(), Error> {
        let n = self
            .db
            .execute(
                "UPDATE agent_keys SET revoked_at=?2 WHERE id=?1 AND revoked_at IS NULL",
                params![id, now()],
            )
            .map_err(sql)?;
        if n == 0 {
            return Err(Error::State(format!(
                "no unrevoked key with id `{id}` (see `airlock key list`)"
            )));
        }
        Ok(())
    }

    /// Resolves a presented key; `None` for anything not a live key.
    pub fn check_key(&self, key: &str) -> Result<Option<KeyGrant>, Error> {
        let Some(id) = key
            .strip_prefix("alk_")
            .and_then(|r| r.split_once('_'))
            .map(|(id, _)| id)
        else {
            return Ok(None);
        };
        let row: Option<KeyRow> = self
            .db
            .prepare_cached(
                "SELECT agent, tunnel, routes, hash, revoked_at FROM agent_keys WHERE id=?1",
            )
            .map_err(sql)?
            .query_row(params![id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .optional()
            .map_err(sql)?;
        let Some((agent, tunnel, routes, hash, revoked)) = row else {
            return Ok(None);
        };
        if !ct_eq(&hash, &sha256(key)) || revoked.is_some() {
            return Ok(None);
        }
        let routes = routes
            .split(',')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        Ok(Some(KeyGrant {
            id: id.to_string(),
            agent,
            tunnel,
            routes,
        }))
    }

    pub fn list_tunnels(&self) -> Result<Vec<TunnelInfo>, Error> {
        let mut st = self
            .db
            .prepare(
                "SELECT t.name, t.created_at, t.archived_at, \
                 (SELECT COUNT(*) FROM tunnel_cas c WHERE c.tunnel=t.name AND c.active=1), \
                 (SELECT COUNT(*) FROM tunnel_tokens k WHERE k.tunnel=t.name AND (k.expires_at IS NULL OR k.expires_at > ?1)) \
                 FROM tunnels t ORDER BY t.name",
            )
            .map_err(sql)?;
        let rows = st
            .query_map(params![now()], |r| {
                Ok(TunnelInfo {
                    name: r.get(0)?,
                    created_at: r.get(1)?,
                    archived_at: r.get(2)?,
                    active_cas: r.get::<_, i64>(3)? as usize,
                    tokens: r.get::<_, i64>(4)? as usize,
                })
            })
            .map_err(sql)?;
        rows.collect::<Result<_, _>>().map_err(sql)
    }

    pub fn list_keys(&self) -> Result<Vec<KeyInfo>, Error> {
        let mut st = self
            .db
            .prepare("SELECT id, agent, tunnel, routes, created_at, revoked_at FROM agent_keys ORDER BY created_at, id")
            .map_err(sql)?;
        let rows = st
            .query_map([], |r| {
                let routes: String = r.get(3)?;
                Ok(KeyInfo {
                    id: r.get(0)?,
                    agent: r.get(1)?,
                    tunnel: r.get(2)?,
                    routes: routes
                        .split(',')
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect(),
                    created_at: r.get(4)?,
                    revoked_at: r.get(5)?,
                })
            })
            .map_err(sql)?;
        rows.collect::<Result<_, _>>().map_err(sql)
    }

    pub fn record_link_event(&self, e: &LinkEvent) -> Result<(), Error> {
        self.db
            .prepare_cached(
                "INSERT INTO link_events(at, tunnel, connector, link, event, peer, detail) VALUES (?1,?2,?3,?4,?5,?6,?7)",
            )
            .map_err(sql)?
            .execute(params![e.at, e.tunnel, e.connector, e.link, e.event, e.peer, e.detail])
            .map_err(sql)?;
        Ok(())
    }

    pub fn link_history(&self, tunnel: &str, limit: usize) -> Result<Vec<LinkEvent>, Error> {
        let mut st = self
            .db
            .prepare(
                "SELECT at, tunnel, connector, link, event, peer, detail FROM link_events \
                 WHERE tunnel=?1 ORDER BY id DESC LIMIT ?2",
            )
            .map_err(sql)?;
        let rows = st
            .query_map(params![tunnel, limit as i64], |r| {
                Ok(LinkEvent {
                    at: r.get(0)?,
                    tunnel: r.get(1)?,
                    connector: r.get(2)?,
                    link: r.get(3)?,
                    event: r.get(4)?,
                    peer: r.get(5)?,
                    detail: r.get(6)?,
                })
            })
            .map_err(sql)?;
        rows.collect::<Result<_, _>>().map_err(sql)
    }
}

fn sql(e: rusqlite::Error) -> Error {
    Error::State(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca() -> Vec<u8> {
        crate::certs::Ca::generate("t")
            .unwrap()
            .pem()
            .cert
            .into_bytes()
    }

    #[test]
    fn tunnel_lifecycle() {
        let mut s = State::in_memory().unwrap();
        let tok = s.create_tunnel("corp", &[ca()]).unwrap();
        assert!(s.check_token("corp", &tok).unwrap());
        assert!(!s.check_token("corp", "alt_wrong").unwrap());
        assert!(!s.check_token("other", &tok).unwrap());
        assert!(s.create_tunnel("corp", &[ca()]).is_err());
        assert!(s.create_tunnel("../x", &[ca()]).is_err());

        // Rotation with grace: both work; with zero grace only the new one.
        let t2 = s.rotate_token("corp", Duration::from_secs(3600)).unwrap();
        assert!(s.check_token("corp", &tok).unwrap() && s.check_token("corp", &t2).unwrap());
        let t3 = s.rotate_token("corp", Duration::ZERO).unwrap();
        assert!(!s.check_token("corp", &tok).unwrap());
        assert!(!s.check_token("corp", &t2).unwrap());
        assert!(s.check_token("corp", &t3).unwrap());

        s.add_ca("corp", &ca()).unwrap();
        assert!(s.add_ca("corp", &ca()).is_err(), "third active CA refused");
        assert_eq!(s.retire_old_cas("corp").unwrap(), 1);
        assert_eq!(s.tunnel_cas("corp").unwrap().len(), 1);

        s.archive_tunnel("corp").unwrap();
        assert!(!s.check_token("corp", &t3).unwrap());
        assert!(s.all_active_cas().unwrap().is_empty());
    }

    #[test]
    fn keys() {
        let mut s = State::in_memory().unwrap();
        s.create_tunnel("corp", &[ca()]).unwrap();
        let (id, key) = s.create_key("ci", "corp", &["tools".into()]).unwrap();
        let g = s.check_key(&key).unwrap().unwrap();
        assert!(g.allows("corp", "tools") && !g.allows("corp", "db") && !g.allows("x", "tools"));
        assert!(s.check_key(&format!("{key}x")).unwrap().is_none());
        assert!(s.check_key(&format!("alk_{id}_nope")).unwrap().is_none());
        assert!(s.check_key("garbage").unwrap().is_none());
        s.revoke_key(&id).unwrap();
        assert!(s.check_key(&key).unwrap().is_none());
        assert!(s.create_key("ci", "nope", &[]).is_err());
    }

    #[test]
    fn reopen_keeps_data_and_signing_key() {
        let dir = std::env::temp_dir().join(format!("airlock-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("state.db");
        let _ = std::fs::remove_file(&p);
        let (tok, pk) = {
            let mut s = State::open(&p).unwrap();
            (
                s.create_tunnel("corp", &[ca()]).unwrap(),
                s.signing_key().unwrap().public_key(),
            )
        };
        let mut s = State::open(&p).unwrap();
        assert!(s.check_token("corp", &tok).unwrap());
        assert_eq!(s.signing_key().unwrap().public_key(), pk);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
