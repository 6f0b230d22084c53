/// Every failure Cairn's domain and stores report. The HTTP crate maps each variant to a
/// status code and an MLflow `error_code` in one exhaustive `match`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request names a value that breaks a rule (MLflow's `INVALID_PARAMETER_VALUE`).
    #[error("{0}")]
    InvalidParameter(String),
    /// The request is malformed beyond one value (MLflow's `BAD_REQUEST`).
    #[error("{0}")]
    BadRequest(String),
    /// The named entity does not exist (MLflow's `RESOURCE_DOES_NOT_EXIST`).
    #[error("{0}")]
    NotFound(String),
    /// An entity with that unique name exists already (MLflow's `RESOURCE_ALREADY_EXISTS`).
    #[error("{0}")]
    AlreadyExists(String),
    /// A concurrent change got there first (MLflow's `RESOURCE_CONFLICT`).
    #[error("{0}")]
    Conflict(String),
    /// The metadata database failed; the message is for logs, not for users.
    #[error("storage error: {0}")]
    Storage(String),
    /// Reading or writing artifact bytes failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// Shorthand for [`Error::InvalidParameter`].
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidParameter(msg.into())
    }
    /// Shorthand for [`Error::NotFound`].
    pub fn not_found(msg: impl Into<String>) -> Self {
        Error::NotFound(msg.into())
    }
}

/// Result with Cairn's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
