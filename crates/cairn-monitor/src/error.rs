use std::path::Path;

/// What can go wrong while monitoring.
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
    /// The input cannot be used as given (a bad rule, a file that is not a table, ...).
    #[error("{0}")]
    Invalid(String),
    /// The metadata store failed or refused.
    #[error(transparent)]
    Store(#[from] cairn_core::Error),
}

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

impl From<cairn_quality::Error> for Error {
    fn from(e: cairn_quality::Error) -> Self {
        match e {
            cairn_quality::Error::Io { path, source } => Error::Io { path, source },
            cairn_quality::Error::Invalid(m) => Error::Invalid(m),
        }
    }
}

/// A result with this crate's error.
pub type Result<T> = std::result::Result<T, Error>;
