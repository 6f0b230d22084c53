use thiserror::Error;

/// What can go wrong in the feature store.
#[derive(Debug, Error)]
pub enum Error {
    /// Bad definitions, requests or data: the message names the problem.
    #[error("{0}")]
    Invalid(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// The metadata or online store failed.
    #[error(transparent)]
    Store(#[from] cairn_core::Error),
}

impl Error {
    pub(crate) fn invalid(message: impl Into<String>) -> Error {
        Error::Invalid(message.into())
    }
}

pub type Result<T> = std::result::Result<T, Error>;
