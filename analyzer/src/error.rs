//! The analyzer crate's public error type, with private kinds so callers match on meaning, not on sqlx.

use std::fmt;

/// An error from the store, the importer or the learner.
#[derive(Debug)]
pub struct Error {
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Database(sqlx::Error),
    /// From the recorder's own SQLite connection (see `store::writer`).
    Sqlite(rusqlite::Error),
    Migrate(sqlx::migrate::MigrateError),
    Io(std::io::Error),
    Invalid(String),
}

impl Error {
    pub(crate) fn invalid(msg: impl Into<String>) -> Self {
        Error {
            kind: Kind::Invalid(msg.into()),
        }
    }

    /// True when the error came from the database (locked, read-only, full, corrupt).
    pub fn is_database(&self) -> bool {
        matches!(
            self.kind,
            Kind::Database(_) | Kind::Sqlite(_) | Kind::Migrate(_)
        )
    }

    /// True when the caller gave a value the store refuses (unknown page, bad threshold).
    pub fn is_invalid_input(&self) -> bool {
        matches!(self.kind, Kind::Invalid(_))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Database(e) => write!(f, "database error: {e}"),
            Kind::Sqlite(e) => write!(f, "database error: {e}"),
            Kind::Migrate(e) => write!(f, "applying migrations failed: {e}"),
            Kind::Io(e) => write!(f, "{e}"),
            Kind::Invalid(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            Kind::Database(e) => Some(e),
            Kind::Sqlite(e) => Some(e),
            Kind::Migrate(e) => Some(e),
            Kind::Io(e) => Some(e),
            Kind::Invalid(_) => None,
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error {
            kind: Kind::Database(e),
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error {
            kind: Kind::Sqlite(e),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for Error {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        Error {
            kind: Kind::Migrate(e),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error { kind: Kind::Io(e) }
    }
}
