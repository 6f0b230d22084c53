//! Progress reporting without a terminal dependency: the binary draws it.

/// Receives progress of a long operation, in bytes.
pub trait Progress: Send + Sync {
    /// Adds to the amount of work expected.
    fn add_total(&self, _bytes: u64) {}
    /// Reports work done.
    fn advance(&self, _bytes: u64) {}
    /// Names the current phase.
    fn phase(&self, _name: &str) {}
}

/// Reports nothing.
pub struct NoProgress;

impl Progress for NoProgress {}
