use std::path::Path;

/// What can go wrong while checking data.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a named file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The input cannot be used as given (a bad suite, a file that is not a table, ...).
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// A result with this crate's error.
pub type Result<T> = std::result::Result<T, Error>;
