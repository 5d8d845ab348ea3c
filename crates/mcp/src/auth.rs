//! Bearer keys → agent names.
//!
//! Keys come from the config as secret references (resolved when the table
//! is built) or as SHA-256 hashes. Only digests are kept; a presented key is
//! hashed and compared against every entry in constant time, so neither the
//! timing nor the position of a match leaks which agent a key belongs to.

use airlock_config::{AgentKey, Config};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("agents.{agent}.keys[{index}]: {source}")]
    Secret {
        agent: String,
        index: usize,
        #[source]
        source: airlock_config::SecretError,
    },
    #[error("agents.{agent}.keys[{index}]: the key resolves to an empty string")]
    Empty { agent: String, index: usize },
    #[error("the same key is configured for agents `{0}` and `{1}`; each key must name one agent")]
    Shared(String, String),
}

/// The resolved key table.
#[derive(Default)]
pub struct KeyTable {
    entries: Vec<([u8; 32], String)>,
}

impl std::fmt::Debug for KeyTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyTable({} keys)", self.entries.len())
    }
}

pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let mut diff = 0u8;
    for i in 0..32 {
        diff |= a[i] ^ b[i];
    }
    // black_box keeps the optimiser from turning the fold into an early exit.
    std::hint::black_box(diff) == 0
}

impl KeyTable {
    /// Resolves every agent's keys (reading `${env:…}` / `${file:…}` now).
    pub fn from_config(config: &Config) -> Result<KeyTable, KeyError> {
        let mut entries: Vec<([u8; 32], String)> = Vec::new();
        for (agent, a) in &config.agents {
            for (index, key) in a.keys.iter().enumerate() {
                let digest = match key {
                    AgentKey::Sha256(h) => *h,
                    AgentKey::Secret(s) => {
                        let v = s.resolve().map_err(|source| KeyError::Secret {
                            agent: agent.clone(),
                            index,
                            source,
                        })?;
                        let k = v.expose().trim();
                        if k.is_empty() {
                            return Err(KeyError::Empty {
                                agent: agent.clone(),
                                index,
                            });
                        }
                        sha256(k.as_bytes())
                    }
                };
                if let Some((_, other)) = entries.iter().find(|(d, _)| ct_eq(d, &digest)) {
                    if other != agent {
                        return Err(KeyError::Shared(other.clone(), agent.clone()));
                    }
                }
                entries.push((digest, agent.clone()));
            }
        }
        Ok(KeyTable { entries })
    }

    /// The agent a presented key belongs to.
    pub fn agent_for(&self, presented: &str) -> Option<&str> {
        let digest = sha256(presented.as_bytes());
        let mut found = None;
        for (d, agent) in &self.entries {
            if ct_eq(d, &digest) && found.is_none() {
                found = Some(agent.as_str());
            }
        }
        found
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The key from an `Authorization: Bearer …` header value.
pub(crate) fn bearer(value: &[u8]) -> Option<&str> {
    let s = std::str::from_utf8(value).ok()?;
    let (scheme, rest) = s.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let key = rest.trim();
    (!key.is_empty()).then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_their_agent_only() {
        std::env::set_var("AIRLOCK_TEST_AUTH_KEY_B", "key-of-b");
        let cfg = airlock_config::load_str(
            "version: 1\nagents:\n  a: { keys: [\"sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"] }\n  b: { keys: [\"${env:AIRLOCK_TEST_AUTH_KEY_B}\"] }\n",
            "t.yaml",
        )
        .unwrap();
        let t = KeyTable::from_config(&cfg).unwrap();
        assert_eq!(t.agent_for("test"), Some("a")); // sha256("test")
        assert_eq!(t.agent_for("key-of-b"), Some("b"));
        assert_eq!(t.agent_for("key-of-c"), None);
        assert_eq!(t.agent_for(""), None);
        assert_eq!(t.agent_for("tes"), None);
    }

    #[test]
    fn bearer_header_parsing_is_strict() {
        assert_eq!(bearer(b"Bearer abc"), Some("abc"));
        assert_eq!(bearer(b"bearer abc "), Some("abc"));
        assert_eq!(bearer(b"Basic abc"), None);
        assert_eq!(bearer(b"Bearer "), None);
        assert_eq!(bearer(b"Bearerabc"), None);
        assert_eq!(bearer(b"Bearer \xff"), None);
    }
}
