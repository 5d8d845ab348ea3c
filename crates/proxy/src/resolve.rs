//! Name resolution, pluggable so tests can answer differently on each lookup.
//! The proxy resolves once per connection and dials exactly the addresses it
//! vetted, so a second, different answer can never be used (no rebinding).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Mutex;

pub type ResolveFuture<'a> = Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send + 'a>>;

pub trait Resolver: Send + Sync + 'static {
    fn resolve<'a>(&'a self, host: &'a str) -> ResolveFuture<'a>;
}

/// The system resolver (getaddrinfo through tokio).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemResolver;

impl Resolver for SystemResolver {
    fn resolve<'a>(&'a self, host: &'a str) -> ResolveFuture<'a> {
        Box::pin(async move {
            let addrs = tokio::net::lookup_host((host, 0)).await?;
            Ok(addrs.map(|a| a.ip()).collect())
        })
    }
}

/// A fixed table for tests: each name has a sequence of answers; lookup `n`
/// gets answer `min(n, len-1)`. Unknown names fail like NXDOMAIN.
/// Per name: lookups so far, and the answers in order.
type Table = HashMap<String, (usize, Vec<Vec<IpAddr>>)>;

#[derive(Debug, Default)]
pub struct StaticResolver {
    table: Mutex<Table>,
}

impl StaticResolver {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a name answering `addrs` on every lookup.
    pub fn with(self, name: &str, addrs: &[IpAddr]) -> Self {
        self.with_sequence(name, vec![addrs.to_vec()])
    }

    /// Add a name whose answers change from lookup to lookup.
    pub fn with_sequence(self, name: &str, answers: Vec<Vec<IpAddr>>) -> Self {
        if let Ok(mut t) = self.table.lock() {
            t.insert(name.to_string(), (0, answers));
        }
        self
    }

    /// How many times `name` was looked up.
    pub fn lookups(&self, name: &str) -> usize {
        self.table
            .lock()
            .ok()
            .and_then(|t| t.get(name).map(|e| e.0))
            .unwrap_or(0)
    }
}

impl Resolver for StaticResolver {
    fn resolve<'a>(&'a self, host: &'a str) -> ResolveFuture<'a> {
        let answer = match self.table.lock() {
            Ok(mut t) => match t.get_mut(host) {
                Some((n, answers)) if !answers.is_empty() => {
                    let i = (*n).min(answers.len() - 1);
                    *n += 1;
                    Ok(answers[i].clone())
                }
                _ => Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{host}: no such name"),
                )),
            },
            Err(_) => Err(io::Error::other("resolver table poisoned")),
        };
        Box::pin(async move { answer })
    }
}
