//! `airlock.yaml`: the model every part of airlock reads, and its strict loader.

pub mod body;
pub mod docs;
pub mod load;
pub mod model;
pub mod schema;
pub mod secret;
pub mod spec;
pub mod values;

pub use body::{BodyError, BodySchema, JsonType};
pub use load::{
    load_bytes, load_file, load_file_with, load_str, load_str_with, Diagnostic, Diagnostics,
    LoadOptions,
};
pub use model::*;
pub use secret::{Secret, SecretError, SecretRef, SecretValue};
pub use values::{parse_duration, ByteSize, HostPattern, IpNet};

/// A commented example that uses every section and passes `airlock config check`.
pub const EXAMPLE: &str = include_str!("example.yaml");
