//! The decision: host rules first, then every resolved address.

use std::net::IpAddr;

use airlock_config::{HostPattern, IpNet, Network, NetworkMode};

use crate::canon::Host;
use crate::classify::non_public_reason;

/// Why a destination was refused (also what report mode records).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// The rule that decided (`deny: x`, `no allow rule`, `address`).
    pub rule: String,
    pub reason: String,
}

/// The compiled network policy of one run.
#[derive(Debug, Clone)]
pub struct Policy {
    pub allow: Vec<HostPattern>,
    pub deny: Vec<HostPattern>,
    pub allow_private: Vec<IpNet>,
    pub mode: NetworkMode,
    /// This host's own addresses, refused like loopback.
    pub local_addrs: Vec<IpAddr>,
}

impl Policy {
    pub fn new(net: &Network, local_addrs: Vec<IpAddr>) -> Policy {
        Policy {
            allow: net.allow.clone(),
            deny: net.deny.clone(),
            allow_private: net.allow_private.clone(),
            mode: net.mode,
            local_addrs,
        }
    }

    /// Host rules. Returns the allow rule that matched.
    pub fn check_host(&self, host: &Host, port: u16) -> Result<String, Denial> {
        let name = host.to_string();
        for d in &self.deny {
            // A deny rule without a port covers every port: deny wins.
            let hit = match d.port {
                None => HostPattern {
                    port: Some(port),
                    ..d.clone()
                }
                .matches(&name, port),
                Some(_) => d.matches(&name, port),
            };
            if hit {
                return Err(Denial {
                    rule: format!("deny: {}", pattern_str(d)),
                    reason: format!("{name}:{port} is denied by `{}`", pattern_str(d)),
                });
            }
        }
        for a in &self.allow {
            // An IP literal passes only a rule naming that IP (never a wildcard).
            let hit = match host {
                Host::Ip(_) => !a.wildcard && a.matches(&name, port),
                Host::Name(_) => a.matches(&name, port),
            };
            if hit {
                return Ok(format!("allow: {}", pattern_str(a)));
            }
        }
        let hint = if port != 80 && port != 443 {
            format!(" (port {port} needs a rule naming it, like `{name}:{port}`)")
        } else {
            String::new()
        };
        Err(Denial {
            rule: "no allow rule".into(),
            reason: format!("{name}:{port} matches no `network.allow` rule{hint}"),
        })
    }

    /// Address vetting for one resolved (or literal) address.
    pub fn check_addr(&self, ip: IpAddr) -> Result<(), Denial> {
        if self.allow_private.iter().any(|n| n.contains(&ip)) {
            return Ok(());
        }
        if let Some(why) = non_public_reason(ip) {
            return Err(Denial {
                rule: "address".into(),
                reason: format!("{ip} is {why}; only `network.allow_private` can open it"),
            });
        }
        if self.local_addrs.contains(&ip) {
            return Err(Denial {
                rule: "address".into(),
                reason: format!("{ip} is an address of this host"),
            });
        }
        Ok(())
    }

    /// Vet every address; one bad answer refuses the lot (a name that
    /// resolves to both public and internal addresses is an attack).
    pub fn check_addrs(&self, addrs: &[IpAddr]) -> Result<(), Denial> {
        if addrs.is_empty() {
            return Err(Denial {
                rule: "resolve".into(),
                reason: "the name resolved to no address".into(),
            });
        }
        addrs.iter().try_for_each(|a| self.check_addr(*a))
    }

    pub fn report_only(&self) -> bool {
        self.mode == NetworkMode::Report
    }
}

fn pattern_str(p: &HostPattern) -> String {
    let mut s = String::new();
    if p.wildcard {
        s.push_str("*.");
    }
    if p.host.contains(':') {
        s.push('[');
        s.push_str(&p.host);
        s.push(']');
    } else {
        s.push_str(&p.host);
    }
    if let Some(port) = p.port {
        s.push_str(&format!(":{port}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canon::canonicalize_host;

    fn policy(allow: &[&str], deny: &[&str], private: &[&str]) -> Policy {
        Policy {
            allow: allow.iter().map(|s| s.parse().unwrap()).collect(),
            deny: deny.iter().map(|s| s.parse().unwrap()).collect(),
            allow_private: private.iter().map(|s| s.parse().unwrap()).collect(),
            mode: NetworkMode::Enforce,
            local_addrs: vec!["203.0.114.7".parse().unwrap()],
        }
    }

    fn h(s: &str) -> Host {
        canonicalize_host(s).unwrap()
    }

    #[test]
    fn host_rules() {
        let p = policy(
            &[
                "api.github.com",
                "*.pypi.org",
                "registry.npmjs.org:8443",
                "8.8.8.8",
            ],
            &["uploads.github.com", "bad.pypi.org"],
            &[],
        );
        assert!(p.check_host(&h("api.github.com"), 443).is_ok());
        assert!(p.check_host(&h("API.GITHUB.COM."), 80).is_ok());
        assert!(p.check_host(&h("api.github.com"), 22).is_err());
        assert!(p.check_host(&h("files.pypi.org"), 443).is_ok());
        assert!(p.check_host(&h("pypi.org"), 443).is_err());
        assert!(p.check_host(&h("bad.pypi.org"), 443).is_err());
        assert!(p.check_host(&h("evilpypi.org"), 443).is_err());
        assert!(p.check_host(&h("registry.npmjs.org"), 8443).is_ok());
        assert!(p.check_host(&h("registry.npmjs.org"), 443).is_err());
        assert!(p.check_host(&h("uploads.github.com"), 443).is_err());
        assert!(p.check_host(&h("8.8.8.8"), 443).is_ok());
        assert!(
            p.check_host(&h("134744072"), 443).is_ok(),
            "decimal spelling of 8.8.8.8"
        );
        assert!(p.check_host(&h("8.8.4.4"), 443).is_err());
    }

    #[test]
    fn deny_without_port_covers_all_ports() {
        let p = policy(&["x.example.com:8443"], &["x.example.com"], &[]);
        assert!(p.check_host(&h("x.example.com"), 8443).is_err());
    }

    #[test]
    fn wildcard_never_allows_ip() {
        let p = policy(&["*.example.com"], &[], &[]);
        assert!(p.check_host(&h("1.2.3.4"), 443).is_err());
    }

    #[test]
    fn addresses() {
        let p = policy(&[], &[], &["10.20.0.0/16"]);
        assert!(p.check_addr("10.20.1.2".parse().unwrap()).is_ok());
        assert!(p.check_addr("10.21.1.2".parse().unwrap()).is_err());
        assert!(p.check_addr("8.8.8.8".parse().unwrap()).is_ok());
        assert!(
            p.check_addr("203.0.114.7".parse().unwrap()).is_err(),
            "own address"
        );
        assert!(p
            .check_addrs(&["8.8.8.8".parse().unwrap(), "127.0.0.1".parse().unwrap()])
            .is_err());
        assert!(p.check_addrs(&[]).is_err());
    }
}
