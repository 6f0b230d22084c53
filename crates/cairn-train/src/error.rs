/// What can go wrong while training.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The table could not be read.
    #[error(transparent)]
    Table(#[from] cairn_quality::Error),
    /// The data cannot be trained on as given (no such target, a constant target, ...).
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Error::Invalid(message.into())
    }
}

/// A result with this crate's error.
pub type Result<T> = std::result::Result<T, Error>;
