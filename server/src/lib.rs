//! pushwise's network side: TLS, HTTP/2 (with push and Early Hints) and HTTP/1.1, the origin,
//! recording, and the in-memory push sets.
//!
//! The entry point is [`server::run`], which serves a listener until a shutdown future resolves.

mod batch_thread;
pub mod body;
pub mod config;
pub mod digest;
mod exchange;
mod h1;
mod h2conn;
mod intern;
pub mod metrics;
pub mod origin;
pub mod push;
pub mod recorder;
pub mod server;
pub mod tls;

use std::fmt;

pub use config::{Config, PushMode};
pub use server::{Shared, run};

/// An error starting or configuring the server.
#[derive(Debug)]
pub struct Error {
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Config(String),
    Io(std::io::Error),
    Store(pushwise_analyzer::Error),
}

impl Error {
    pub(crate) fn config(msg: impl Into<String>) -> Error {
        Error {
            kind: Kind::Config(msg.into()),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Config(m) => f.write_str(m),
            Kind::Io(e) => write!(f, "{e}"),
            Kind::Store(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            Kind::Config(_) => None,
            Kind::Io(e) => Some(e),
            Kind::Store(e) => Some(e),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error { kind: Kind::Io(e) }
    }
}

impl From<pushwise_analyzer::Error> for Error {
    fn from(e: pushwise_analyzer::Error) -> Self {
        Error {
            kind: Kind::Store(e),
        }
    }
}
