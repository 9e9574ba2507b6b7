//! Where a store lives, parsed from `--db` / `PUSHWISE_DB`: an SQLite file (a bare path or
//! `sqlite://PATH`) or a PostgreSQL database (`postgres://…` / `postgresql://…`).
//!
//! Why pushwise parses PostgreSQL URLs itself before handing them to sqlx: two of the settings a
//! fleet operator needs (the pool size and a statement timeout) are pushwise's, not libpq's, and
//! ride in the same URL as query parameters so that `--db` stays the one place a store is named.
//! Everything else (host, port, user, password, database, `sslmode`, `sslrootcert`, …) is
//! libpq's syntax, passed through unchanged.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::Error;

/// A store's location.
#[derive(Clone, PartialEq, Eq)]
pub enum Location {
    Sqlite(PathBuf),
    Postgres(PgLocation),
}

/// A PostgreSQL store: libpq's URL (pushwise's own parameters removed) and pushwise's settings.
#[derive(Clone, PartialEq, Eq)]
pub struct PgLocation {
    /// The URL sqlx connects with: everything but `pool_max` and `statement_timeout`.
    pub(crate) url: String,
    /// Connections per process (`pool_max`, default 8).
    pub pool_max: u32,
    /// Longest a statement may run before PostgreSQL cancels it (`statement_timeout`, default
    /// 30 s; `0` for none). Keeps a stuck query from holding the recorder's batch forever.
    pub statement_timeout: Duration,
}

/// Default connections per pushwise process: the recorder's writer, the analyzer, the generation
/// poller and a few inspecting reads; PostgreSQL's default `max_connections` (100) then serves a
/// fleet of about ten.
pub const DEFAULT_POOL_MAX: u32 = 8;
/// Default statement timeout.
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

impl Location {
    /// Parses `--db`. Anything that is not an `sqlite:`, `postgres:` or `postgresql:` URL is a path.
    pub fn parse(arg: &str) -> Result<Location, Error> {
        if let Some(rest) = arg
            .strip_prefix("sqlite://")
            .or_else(|| arg.strip_prefix("sqlite:"))
        {
            if rest.is_empty() {
                return Err(Error::invalid(
                    "sqlite:// needs a path (sqlite:///var/lib/pushwise.db)",
                ));
            }
            return Ok(Location::Sqlite(PathBuf::from(rest)));
        }
        if arg.starts_with("postgres://") || arg.starts_with("postgresql://") {
            return PgLocation::parse(arg).map(Location::Postgres);
        }
        Ok(Location::Sqlite(PathBuf::from(arg)))
    }

    /// The location a command-line path names (see [`Location::parse`]); a path that is not UTF-8
    /// is always a file.
    pub fn from_path(p: &Path) -> Result<Location, Error> {
        match p.to_str() {
            Some(s) => Location::parse(s),
            None => Ok(Location::Sqlite(p.to_path_buf())),
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Location::Postgres(_))
    }

    /// The SQLite file, if this is one.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match self {
            Location::Sqlite(p) => Some(p),
            Location::Postgres(_) => None,
        }
    }
}

impl PgLocation {
    fn parse(url: &str) -> Result<PgLocation, Error> {
        let (base, query) = match url.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (url, None),
        };
        let mut kept = Vec::new();
        let mut loc = PgLocation {
            url: String::new(),
            pool_max: DEFAULT_POOL_MAX,
            statement_timeout: DEFAULT_STATEMENT_TIMEOUT,
        };
        for pair in query.into_iter().flat_map(|q| q.split('&')) {
            if pair.is_empty() {
                continue;
            }
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "pool_max" => {
                    loc.pool_max = v
                        .parse()
                        .ok()
                        .filter(|n| (1..=1000).contains(n))
                        .ok_or_else(|| {
                            Error::invalid(format!("pool_max={v}: expected 1 to 1000 connections"))
                        })?;
                }
                "statement_timeout" => loc.statement_timeout = parse_timeout(v)?,
                _ => kept.push(pair),
            }
        }
        loc.url = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        // Let sqlx's parser refuse a malformed URL now, with the redacted URL in the message.
        loc.url
            .parse::<sqlx::postgres::PgConnectOptions>()
            .map_err(|e| {
                Error::invalid(format!("{loc}: not a PostgreSQL URL pushwise can use: {e}"))
            })?;
        Ok(loc)
    }
}

/// `30s`, `500ms`, `2m` or plain seconds; `0` for no timeout.
fn parse_timeout(v: &str) -> Result<Duration, Error> {
    let bad = || {
        Error::invalid(format!(
            "statement_timeout={v}: expected a duration such as 30s, 500ms or 2m (0 for none)"
        ))
    };
    let (num, unit) = match v.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => v.split_at(i),
        None => (v, "s"),
    };
    let n: u64 = num.parse().map_err(|_| bad())?;
    let ms = match unit {
        "ms" => n,
        "s" => n.checked_mul(1_000).ok_or_else(bad)?,
        "m" | "min" => n.checked_mul(60_000).ok_or_else(bad)?,
        _ => return Err(bad()),
    };
    Ok(Duration::from_millis(ms))
}

/// Shows the URL without its password (it goes into logs and error messages).
impl fmt::Display for PgLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact(&self.url))
    }
}

impl fmt::Debug for PgLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PgLocation({self})")
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Sqlite(p) => write!(f, "{}", p.display()),
            Location::Postgres(pg) => pg.fmt(f),
        }
    }
}

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Sqlite(p) => write!(f, "Sqlite({})", p.display()),
            Location::Postgres(pg) => pg.fmt(f),
        }
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`; also a `password=` parameter.
pub(crate) fn redact(url: &str) -> String {
    let mut out = url.to_string();
    if let Some(scheme_end) = out.find("://") {
        let auth_start = scheme_end + 3;
        let auth_end = out[auth_start..]
            .find(['/', '?'])
            .map_or(out.len(), |i| auth_start + i);
        if let Some(at) = out[auth_start..auth_end].rfind('@') {
            let userinfo = &out[auth_start..auth_start + at];
            if let Some(colon) = userinfo.find(':') {
                out.replace_range(auth_start + colon + 1..auth_start + at, "***");
            }
        }
    }
    if let Some(q) = out.find('?') {
        let (base, query) = out.split_at(q + 1);
        let query: Vec<String> = query
            .split('&')
            .map(|p| match p.split_once('=') {
                Some(("password", _)) => "password=***".to_string(),
                _ => p.to_string(),
            })
            .collect();
        out = format!("{base}{}", query.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_paths_and_sqlite_urls_are_files() {
        assert_eq!(
            Location::parse("pushwise.db").unwrap(),
            Location::Sqlite("pushwise.db".into())
        );
        assert_eq!(
            Location::parse("sqlite:///var/lib/p.db").unwrap(),
            Location::Sqlite("/var/lib/p.db".into())
        );
        assert_eq!(
            Location::parse("sqlite:rel.db").unwrap(),
            Location::Sqlite("rel.db".into())
        );
        assert!(Location::parse("sqlite://").is_err());
    }

    #[test]
    fn postgres_urls_keep_libpq_parameters_and_take_pushwise_ones() {
        let Location::Postgres(pg) = Location::parse(
            "postgresql://pw:s3cret@db.internal:5433/pushwise?sslmode=require&pool_max=3&statement_timeout=500ms",
        )
        .unwrap() else {
            panic!("not postgres")
        };
        assert_eq!(pg.pool_max, 3);
        assert_eq!(pg.statement_timeout, Duration::from_millis(500));
        assert_eq!(
            pg.url,
            "postgresql://pw:s3cret@db.internal:5433/pushwise?sslmode=require"
        );
        assert_eq!(
            pg.to_string(),
            "postgresql://pw:***@db.internal:5433/pushwise?sslmode=require"
        );
        let Location::Postgres(d) = Location::parse("postgres://h/db").unwrap() else {
            panic!("not postgres")
        };
        assert_eq!(
            (d.pool_max, d.statement_timeout),
            (8, Duration::from_secs(30))
        );
    }

    #[test]
    fn bad_pushwise_parameters_are_refused_with_their_value() {
        for (url, says) in [
            ("postgres://h/db?pool_max=0", "pool_max=0"),
            ("postgres://h/db?pool_max=x", "pool_max=x"),
            (
                "postgres://h/db?statement_timeout=soon",
                "statement_timeout=soon",
            ),
            ("postgres://h/db?sslmode=sometimes", "sslmode"),
        ] {
            let e = Location::parse(url).unwrap_err().to_string();
            assert!(e.contains(says), "{url}: {e}");
        }
    }

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact("postgres://u:p@w@d@h/db?password=x&sslmode=disable"),
            "postgres://u:***@h/db?password=***&sslmode=disable"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        let e = Location::parse("postgres://u:hunter2@h:notaport/db")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("hunter2"), "{e}");
    }
}
