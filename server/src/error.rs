//! The server crate's public error type, with private kinds.

use thiserror::Error as ThisError;

/// An error starting or configuring the server.
#[derive(Debug, ThisError)]
#[error(transparent)]
pub struct Error {
    kind: Kind,
}

#[derive(Debug, ThisError)]
enum Kind {
    /// A setting the server cannot work with (a certificate that does not load, a bad upstream).
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] pushwise_store::Error),
}

impl Error {
    pub(crate) fn config(msg: impl Into<String>) -> Error {
        Error {
            kind: Kind::Config(msg.into()),
        }
    }

    /// True when the configuration was refused (as opposed to the system or the database).
    pub fn is_config(&self) -> bool {
        matches!(self.kind, Kind::Config(_))
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error { kind: e.into() }
    }
}

impl From<pushwise_store::Error> for Error {
    fn from(e: pushwise_store::Error) -> Self {
        Error { kind: e.into() }
    }
}
