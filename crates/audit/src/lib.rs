//! airlock-audit (being built; see the crate's issue).
