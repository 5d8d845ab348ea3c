//! Secret references: `${env:NAME}` and `${file:PATH}`, possibly inside a
//! template such as `Bearer ${env:TOKEN}`. The file holds references only;
//! values are read when used and live in [`SecretValue`], which never prints.

use std::fmt;
use std::path::PathBuf;

use zeroize::Zeroizing;

/// A template with secret references. `Debug` and `Display` show the
/// references (`Bearer ${env:TOKEN}`), never a value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    parts: Vec<Part>,
}

#[derive(Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Env(String),
    File(PathBuf),
}

/// One reference inside a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    Env(String),
    File(PathBuf),
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(n) => write!(f, "${{env:{n}}}"),
            SecretRef::File(p) => write!(f, "${{file:{}}}", p.display()),
        }
    }
}

/// Why a template could not be parsed or resolved. Never contains a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("{0}")]
    Syntax(String),
    #[error("environment variable `{0}` is not set; export it before starting airlock")]
    EnvMissing(String),
    #[error("environment variable `{0}` is not valid UTF-8")]
    EnvNotUnicode(String),
    #[error("cannot read secret file `{path}`: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("secret reference {0} resolved to an empty value")]
    Empty(String),
}

impl Secret {
    /// Parses a template. `$${` writes a literal `${`.
    pub fn parse(s: &str) -> Result<Secret, SecretError> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut rest = s;
        while let Some(i) = rest.find('$') {
            lit.push_str(&rest[..i]);
            rest = &rest[i..];
            if let Some(r) = rest.strip_prefix("$${") {
                lit.push_str("${");
                rest = r;
            } else if let Some(r) = rest.strip_prefix("${") {
                let end = r.find('}').ok_or_else(|| {
                    SecretError::Syntax(
                        "`${` without a closing `}`; write `${env:NAME}` or `${file:/path}`"
                            .to_string(),
                    )
                })?;
                let inner = &r[..end];
                let part = if let Some(name) = inner.strip_prefix("env:") {
                    if name.is_empty()
                        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                        || name.as_bytes()[0].is_ascii_digit()
                    {
                        return Err(SecretError::Syntax(format!(
                            "`${{env:{name}}}` does not name an environment variable; use letters, digits and `_`"
                        )));
                    }
                    Part::Env(name.to_string())
                } else if let Some(path) = inner.strip_prefix("file:") {
                    if !path.starts_with('/') {
                        return Err(SecretError::Syntax(format!(
                            "`${{file:{path}}}` must be an absolute path, like `${{file:/run/secrets/token}}`"
                        )));
                    }
                    Part::File(PathBuf::from(path))
                } else {
                    return Err(SecretError::Syntax(format!(
                        "`${{{inner}}}` is not a secret reference; write `${{env:NAME}}` or `${{file:/path}}`"
                    )));
                };
                if !lit.is_empty() {
                    parts.push(Part::Literal(std::mem::take(&mut lit)));
                }
                parts.push(part);
                rest = &r[end + 1..];
            } else {
                lit.push('$');
                rest = &rest[1..];
            }
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            parts.push(Part::Literal(lit));
        }
        Ok(Secret { parts })
    }

    /// The references in this template, in order.
    pub fn refs(&self) -> impl Iterator<Item = SecretRef> + '_ {
        self.parts.iter().filter_map(|p| match p {
            Part::Env(n) => Some(SecretRef::Env(n.clone())),
            Part::File(p) => Some(SecretRef::File(p.clone())),
            Part::Literal(_) => None,
        })
    }

    /// True when the template holds at least one reference; a template with
    /// none is a secret written in clear in the file, which the loader refuses
    /// where a secret is expected.
    pub fn has_refs(&self) -> bool {
        self.refs().next().is_some()
    }

    /// Reads every reference now. Trailing newlines of files are dropped.
    pub fn resolve(&self) -> Result<SecretValue, SecretError> {
        self.resolve_with(resolve_ref)
    }

    /// Resolves with a custom lookup (tests, or a cache of resolved values).
    pub fn resolve_with(
        &self,
        mut lookup: impl FnMut(&SecretRef) -> Result<Zeroizing<String>, SecretError>,
    ) -> Result<SecretValue, SecretError> {
        let mut out = Zeroizing::new(String::new());
        for p in &self.parts {
            match p {
                Part::Literal(l) => out.push_str(l),
                Part::Env(n) => out.push_str(&lookup(&SecretRef::Env(n.clone()))?),
                Part::File(f) => out.push_str(&lookup(&SecretRef::File(f.clone()))?),
            }
        }
        Ok(SecretValue(out))
    }
}

/// Reads one reference from the environment or the file system.
pub fn resolve_ref(r: &SecretRef) -> Result<Zeroizing<String>, SecretError> {
    let v = match r {
        SecretRef::Env(name) => match std::env::var(name) {
            Ok(v) => Zeroizing::new(v),
            Err(std::env::VarError::NotPresent) => {
                return Err(SecretError::EnvMissing(name.clone()))
            }
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(SecretError::EnvNotUnicode(name.clone()))
            }
        },
        SecretRef::File(path) => {
            let mut v = std::fs::read_to_string(path)
                .map(Zeroizing::new)
                .map_err(|e| SecretError::File {
                    path: path.clone(),
                    reason: e.kind().to_string(),
                })?;
            while v.ends_with('\n') || v.ends_with('\r') {
                v.pop();
            }
            v
        }
    };
    if v.is_empty() {
        return Err(SecretError::Empty(r.to_string()));
    }
    Ok(v)
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.parts {
            match p {
                Part::Literal(l) => f.write_str(&l.replace("${", "$${"))?,
                Part::Env(n) => write!(f, "${{env:{n}}}")?,
                Part::File(p) => write!(f, "${{file:{}}}", p.display())?,
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({self})")
    }
}

/// A resolved secret. Zeroed on drop; `Debug`/`Display` print `[secret]`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(Zeroizing<String>);

impl SecretValue {
    /// The value, for the one place that must send it (a header, a DSN).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[secret]")
    }
}

impl fmt::Display for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[secret]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_round_trip_and_never_prints_values() {
        let s = Secret::parse("Bearer ${env:AIRLOCK_TEST_SECRET_X}").unwrap();
        assert_eq!(s.to_string(), "Bearer ${env:AIRLOCK_TEST_SECRET_X}");
        let v = s
            .resolve_with(|_| Ok(Zeroizing::new("hunter2".to_string())))
            .unwrap();
        assert_eq!(v.expose(), "Bearer hunter2");
        assert!(!format!("{v:?} {v} {s:?}").contains("hunter2"));
    }

    #[test]
    fn syntax_errors() {
        assert!(Secret::parse("${env:}").is_err());
        assert!(Secret::parse("${env:1X}").is_err());
        assert!(Secret::parse("${file:relative}").is_err());
        assert!(Secret::parse("${vault:x}").is_err());
        assert!(Secret::parse("${env:X").is_err());
        assert!(!Secret::parse("plain").unwrap().has_refs());
        assert_eq!(Secret::parse("a$${b}").unwrap().to_string(), "a$${b}");
    }

    #[test]
    fn missing_env_is_a_clear_error() {
        let s = Secret::parse("${env:AIRLOCK_SURELY_UNSET_VAR}").unwrap();
        assert_eq!(
            s.resolve().unwrap_err(),
            SecretError::EnvMissing("AIRLOCK_SURELY_UNSET_VAR".into())
        );
    }
}
