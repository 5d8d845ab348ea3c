//! airlock-jail (being built; see the crate's issue).

pub mod probe;
