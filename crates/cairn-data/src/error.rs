use crate::digest::Digest;
use std::path::{Path, PathBuf};

/// What can go wrong with versioned data.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a named file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// An object's bytes no longer hash to its name.
    #[error("object {digest} is corrupt: its bytes hash to {actual} ({})", path.display())]
    Corrupt {
        /// The object's name.
        digest: Digest,
        /// What its bytes hash to now.
        actual: Digest,
        /// Where it is.
        path: PathBuf,
    },
    /// An object is not in the local store.
    #[error("object {0} is not in the local store (run `cairn data pull`)")]
    Missing(Digest),
    /// The user asked for something that cannot be done as asked.
    #[error("{0}")]
    Invalid(String),
    /// The user named something that does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A remote failed.
    #[error("remote {remote}: {message}")]
    Remote {
        /// The remote's name or URL.
        remote: String,
        /// What went wrong.
        message: String,
    },
    /// The metadata store failed.
    #[error(transparent)]
    Meta(#[from] cairn_core::Error),
}

/// Result with the data [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Shorthand for [`Error::Invalid`].
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::Invalid(msg.into())
    }
}

/// Attaches the path to an I/O error.
pub(crate) trait IoContext<T> {
    fn at(self, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: &Path) -> Result<T> {
        self.map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}
