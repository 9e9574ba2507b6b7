//! One recorded request (an [`Event`]), how an asset reached the client, and the reduced Referer.

use std::borrow::Cow;

/// How an asset reached the client on this event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(i64)]
pub enum PushMark {
    /// The client asked for it.
    #[default]
    Requested = 0,
    /// The server pushed it.
    Pushed = 1,
    /// The server pushed it and the client cancelled the push (it did not want it).
    Cancelled = 2,
    /// It was in the set but skipped because the client's cache digest said it has it.
    SkippedDigest = 3,
    /// It was sent as a 103 Early Hint / preload link, so the browser fetched it because we said so.
    Hinted = 4,
}

impl PushMark {
    pub fn from_i64(v: i64) -> PushMark {
        match v {
            1 => PushMark::Pushed,
            2 => PushMark::Cancelled,
            3 => PushMark::SkippedDigest,
            4 => PushMark::Hinted,
            _ => PushMark::Requested,
        }
    }
}

/// One response served (or one access-log line imported).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub ts_ms: i64,
    pub client: i64,
    pub conn_id: i64,
    pub stream_id: i64,
    /// Borrowed for the standard methods (see [`method`]): no allocation per request.
    pub method: Cow<'static, str>,
    /// Borrowed when the server interned it (see the server's `intern`), else owned.
    pub path: Cow<'static, str>,
    pub status: u16,
    pub bytes: u64,
    /// The media type without parameters; borrowed for the common ones (see [`content_type`]).
    pub content_type: Option<Cow<'static, str>>,
    pub referer: Referer,
    pub is_page: bool,
    pub browser: bool,
    pub cacheable: bool,
    pub push: PushMark,
    pub holdout: bool,
    pub source: Option<i64>,
    pub source_line: Option<i64>,
}

/// Interns `known` strings: the one equal to `s` is borrowed, any other is copied.
///
/// Why: an event outlives its request and is freed on the recorder's thread; a string the request
/// path would otherwise allocate per response costs a cross-thread free per event.
fn known_or_owned(known: &'static [&'static str], s: &str) -> Cow<'static, str> {
    match known.iter().find(|k| **k == s) {
        Some(k) => Cow::Borrowed(k),
        None => Cow::Owned(s.to_string()),
    }
}

/// A request method as an event keeps it: the standard ones as static strings.
pub fn method(m: &str) -> Cow<'static, str> {
    known_or_owned(
        &[
            "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE",
        ],
        m,
    )
}

/// A `Content-Type` as an event keeps it: the media type without parameters (`; charset=...`),
/// the types a website serves most as static strings.
pub fn content_type(header: &str) -> Cow<'static, str> {
    let media = header.split(';').next().unwrap_or(header).trim();
    known_or_owned(
        &[
            "text/html",
            "text/css",
            "text/javascript",
            "application/javascript",
            "application/json",
            "image/png",
            "image/jpeg",
            "image/gif",
            "image/webp",
            "image/avif",
            "image/svg+xml",
            "image/x-icon",
            "font/woff2",
            "font/woff",
            "text/plain",
            "application/octet-stream",
        ],
        media,
    )
}

/// A Referer header reduced to what the analyzer may keep.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Referer {
    /// No Referer header.
    #[default]
    None,
    /// A same-site page or asset, as a path without query or fragment.
    SameSite(String),
    /// Another site: kept only as this fact, never the URL.
    External,
}

impl Referer {
    /// Reduces a raw Referer to a same-site path or `External`.
    ///
    /// `own_hosts` are the site's host names (with or without port); a relative referer is same-site.
    pub fn reduce(raw: Option<&str>, own_hosts: &[&str], keep_query: bool) -> Referer {
        let Some(raw) = raw.map(str::trim).filter(|r| !r.is_empty() && *r != "-") else {
            return Referer::None;
        };
        if raw.starts_with('/') && !raw.starts_with("//") {
            return Referer::SameSite(normalize_path(raw, keep_query));
        }
        let rest = if let Some(r) = raw.strip_prefix("https://") {
            r
        } else if let Some(r) = raw.strip_prefix("http://") {
            r
        } else if let Some(r) = raw.strip_prefix("//") {
            r
        } else {
            return Referer::External;
        };
        let (authority, path) = match rest.find(['/', '?', '#']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let host = strip_port(authority);
        let same = own_hosts
            .iter()
            .any(|h| strip_port(h).eq_ignore_ascii_case(host));
        if !same {
            return Referer::External;
        }
        let path = if path.starts_with('/') {
            normalize_path(path, keep_query)
        } else {
            "/".to_string()
        };
        Referer::SameSite(path)
    }

    pub fn path(&self) -> Option<&str> {
        match self {
            Referer::SameSite(p) => Some(p),
            _ => None,
        }
    }

    /// A page view "enters" the site when it has no same-site referer: likely a cold cache.
    pub fn is_entry(&self) -> bool {
        !matches!(self, Referer::SameSite(_))
    }
}

fn strip_port(authority: &str) -> &str {
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    if authority.starts_with('[') {
        return authority.split(']').next().map_or(authority, |h| &h[1..]);
    }
    authority.split(':').next().unwrap_or(authority)
}

/// Drops the fragment always and the query string unless `keep_query`; never returns an empty path.
pub fn normalize_path(path: &str, keep_query: bool) -> String {
    let path = path.split('#').next().unwrap_or("");
    let path = if keep_query {
        path
    } else {
        path.split('?').next().unwrap_or("")
    };
    if path.is_empty() {
        "/".to_string()
    } else {
        path.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_methods_are_not_allocated_and_others_are_kept_verbatim() {
        assert!(matches!(method("GET"), Cow::Borrowed("GET")));
        assert!(matches!(method("OPTIONS"), Cow::Borrowed("OPTIONS")));
        assert!(matches!(method("PROPFIND"), Cow::Owned(ref m) if m == "PROPFIND"));
        assert!(matches!(method("get"), Cow::Owned(ref m) if m == "get"));
    }

    #[test]
    fn content_types_lose_their_parameters_and_common_ones_are_not_copied() {
        assert!(matches!(
            content_type("text/html; charset=utf-8"),
            Cow::Borrowed("text/html")
        ));
        assert!(matches!(
            content_type(" font/woff2 "),
            Cow::Borrowed("font/woff2")
        ));
        assert!(
            matches!(content_type("application/x-thing;a=b"), Cow::Owned(ref t) if t == "application/x-thing")
        );
        assert_eq!(content_type(""), "");
    }

    #[test]
    fn referer_on_any_own_host_becomes_a_path_without_query() {
        let hosts = ["example.com", "www.example.com:443"];
        assert_eq!(
            Referer::reduce(
                Some("https://www.example.com/blog/?utm=x#top"),
                &hosts,
                false
            ),
            Referer::SameSite("/blog/".into())
        );
        assert_eq!(
            Referer::reduce(Some("http://EXAMPLE.com:8080"), &hosts, false),
            Referer::SameSite("/".into())
        );
        assert_eq!(
            Referer::reduce(Some("/a.css?v=2"), &hosts, true),
            Referer::SameSite("/a.css?v=2".into())
        );
    }

    #[test]
    fn referer_from_other_sites_or_garbage_is_external_or_none() {
        let hosts = ["example.com"];
        assert_eq!(
            Referer::reduce(Some("https://google.com/search?q=1"), &hosts, false),
            Referer::External
        );
        assert_eq!(Referer::reduce(Some("-"), &hosts, false), Referer::None);
        assert_eq!(Referer::reduce(None, &hosts, false), Referer::None);
        assert_eq!(
            Referer::reduce(Some("android-app://x"), &hosts, false),
            Referer::External
        );
    }
}
