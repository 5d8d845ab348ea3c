//! `airlock.yaml`: the model every part of airlock reads, and its strict loader.

pub mod model;
pub mod secret;
pub mod values;

pub use model::*;
pub use secret::{Secret, SecretError, SecretRef, SecretValue};
pub use values::{parse_duration, ByteSize, HostPattern, IpNet};
