//! airlock-proxy (being built; see the crate's issue).
