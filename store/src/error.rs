//! The store's public error type, with private kinds so callers match on meaning, not on sqlx.

use thiserror::Error as ThisError;

/// An error from the store: the database refused, the migrations failed, or a value was refused.
#[derive(Debug, ThisError)]
#[error(transparent)]
pub struct Error {
    kind: Kind,
}

#[derive(Debug, ThisError)]
enum Kind {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// From the recorder's own SQLite connection (see `db::writer`).
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("applying migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Stored data that cannot be what pushwise wrote (a corrupt salt, an unknown string id).
    #[error("{0}")]
    Corrupt(String),
    /// The operating system refused something the store needs (randomness for the salt).
    #[error("{0}")]
    System(String),
    /// A request the store refuses as given (a backup over an existing file).
    #[error("{0}")]
    Invalid(String),
    /// A file that is not pushwise's database (not SQLite, or another application's).
    #[error("{0}")]
    Foreign(String),
    /// The database server could not be reached (down, refusing, wrong address or credentials).
    #[error("{0}")]
    Unreachable(String),
}

impl Error {
    pub(crate) fn corrupt(msg: impl Into<String>) -> Self {
        Error {
            kind: Kind::Corrupt(msg.into()),
        }
    }

    pub(crate) fn system(msg: impl Into<String>) -> Self {
        Error {
            kind: Kind::System(msg.into()),
        }
    }

    pub(crate) fn invalid(msg: impl Into<String>) -> Self {
        Error {
            kind: Kind::Invalid(msg.into()),
        }
    }

    pub(crate) fn unreachable(msg: impl Into<String>) -> Self {
        Error {
            kind: Kind::Unreachable(msg.into()),
        }
    }

    pub(crate) fn foreign(msg: impl Into<String>) -> Self {
        Error {
            kind: Kind::Foreign(msg.into()),
        }
    }

    /// True when the file at the database path is not pushwise's (not SQLite, or another
    /// application's): nothing was written to it.
    pub fn is_foreign(&self) -> bool {
        matches!(self.kind, Kind::Foreign(_))
    }

    /// True when SQLite could not write the database or create its `-wal` file beside it (a
    /// read-only file, directory or mount).
    pub fn is_unwritable(&self) -> bool {
        match &self.kind {
            Kind::Database(sqlx::Error::Database(d)) => {
                matches!(d.code().as_deref(), Some("8" | "14"))
            }
            Kind::Migrate(sqlx::migrate::MigrateError::Execute(sqlx::Error::Database(d))) => {
                matches!(d.code().as_deref(), Some("8" | "14"))
            }
            Kind::Sqlite(rusqlite::Error::SqliteFailure(f, _)) => matches!(
                f.code,
                rusqlite::ErrorCode::ReadOnly | rusqlite::ErrorCode::CannotOpen
            ),
            _ => false,
        }
    }

    /// True when the error came from the database (locked, read-only, full, corrupt, migrations).
    pub fn is_database(&self) -> bool {
        !matches!(
            self.kind,
            Kind::System(_) | Kind::Invalid(_) | Kind::Foreign(_)
        )
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error { kind: e.into() }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error { kind: e.into() }
    }
}

impl From<sqlx::migrate::MigrateError> for Error {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        Error { kind: e.into() }
    }
}
