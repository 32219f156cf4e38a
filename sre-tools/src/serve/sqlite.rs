//! (being written)

/// (being written)
#[derive(Debug)]
pub struct SqliteStore;
