//! The analyzer crate's public error type, with private kinds so callers match on meaning.

use thiserror::Error as ThisError;

/// An error from learning, tuning or importing.
#[derive(Debug, ThisError)]
#[error(transparent)]
pub struct Error {
    kind: Kind,
}

#[derive(Debug, ThisError)]
enum Kind {
    #[error(transparent)]
    Store(#[from] pushwise_store::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Invalid(String),
    /// Another process holds the fleet-wide analyzer lock: this pass did not run.
    #[error("another pushwise process is running an analyzer pass on this store")]
    Busy,
}

impl Error {
    pub(crate) fn invalid(msg: impl Into<String>) -> Self {
        Error {
            kind: Kind::Invalid(msg.into()),
        }
    }

    pub(crate) fn busy() -> Self {
        Error { kind: Kind::Busy }
    }

    /// True when the pass did not run because another process of the fleet was running one.
    pub fn is_busy(&self) -> bool {
        matches!(self.kind, Kind::Busy)
    }

    /// True when the error came from the database (locked, read-only, full, corrupt).
    pub fn is_database(&self) -> bool {
        matches!(&self.kind, Kind::Store(e) if e.is_database())
    }

    /// True when the caller gave a value the analyzer refuses (a share or window out of range).
    pub fn is_invalid_input(&self) -> bool {
        matches!(self.kind, Kind::Invalid(_))
    }
}

impl From<pushwise_store::Error> for Error {
    fn from(e: pushwise_store::Error) -> Self {
        Error { kind: e.into() }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error { kind: e.into() }
    }
}
