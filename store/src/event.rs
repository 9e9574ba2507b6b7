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
    /// A page view over its network prefix's learning cap ([`crate::PrefixCap`]): recorded, never
    /// learned from.
    pub over_cap: bool,
    pub source: Option<i64>,
    pub source_line: Option<i64>,
}

impl Event {
    /// What this event costs in memory while it waits to be written: the struct and every string
    /// it owns (borrowed, interned strings cost nothing more). The recorder bounds its queue by
    /// the sum of these, so long paths cannot make a count-bounded queue grow without limit.
    pub fn memory_bytes(&self) -> usize {
        #[expect(clippy::ptr_arg, reason = "borrowed or owned is the question asked")]
        fn owned(s: &Cow<'static, str>) -> usize {
            match s {
                Cow::Borrowed(_) => 0,
                Cow::Owned(o) => o.capacity(),
            }
        }
        let referer = match &self.referer {
            Referer::SameSite(p) => p.capacity(),
            Referer::None | Referer::External => 0,
        };
        std::mem::size_of::<Event>()
            + owned(&self.method)
            + owned(&self.path)
            + self.content_type.as_ref().map_or(0, owned)
            + referer
    }
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

/// A request method as an event keeps it: the standard ones as static strings, any other as
/// `OTHER` (methods are chosen by the client: each made-up one would be a dictionary row).
pub fn method(m: &str) -> Cow<'static, str> {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE",
    ];
    match KNOWN.iter().find(|k| **k == m) {
        Some(k) => Cow::Borrowed(k),
        None => Cow::Borrowed("OTHER"),
    }
}

/// Whether a method's responses may be learned from: only GET and HEAD fetch a resource (a page
/// that POSTs to `/api/submit` must never make pushwise GET it for later visitors).
pub fn is_fetch(method: &str) -> bool {
    method == "GET" || method == "HEAD"
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

/// Longest request path (with its query, when kept) that is served and recorded: longer ones are
/// answered 414 and recorded under [`ERROR_PATH`].
pub const MAX_PATH_LEN: usize = 2048;

/// The path every response with status 400 or above, and every path that is not canonical-able,
/// is recorded under. Why: those paths are chosen by whoever sends the request (404 probes, path
/// variants, 4 KB junk), and each distinct one would otherwise become a dictionary row forever.
/// It does not start with `/`, so it is never a page, an asset, a hint or a push.
pub const ERROR_PATH: &str = "!error";

/// The path an event is recorded under: the request's canonical path for answered requests,
/// [`ERROR_PATH`] for errors (status 0 marks skips and hints, which carry a learned path).
pub fn recorded_path(path: String, status: u16) -> Cow<'static, str> {
    if status >= 400 || !path.starts_with('/') {
        Cow::Borrowed(ERROR_PATH)
    } else {
        Cow::Owned(path)
    }
}

/// The one form of a request path that serving, recording, learning and hints all use
/// (RFC 3986 §6.2.2): fragment dropped, query dropped unless `keep_query`, percent-escapes of
/// unreserved characters decoded and the others upper-cased, dot segments removed, runs of `/`
/// collapsed. So `/%69ndex.html`, `//index.html` and `/./a/../index.html` are all `/index.html`.
///
/// `None` when `raw` is not an origin-form path (no leading `/`), has a broken escape, or is
/// longer than [`MAX_PATH_LEN`].
pub fn canonical_path(raw: &str, keep_query: bool) -> Option<String> {
    let raw = raw.split('#').next().unwrap_or("");
    let (path, query) = match raw.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (raw, None),
    };
    if !path.starts_with('/') || raw.len() > MAX_PATH_LEN {
        return None;
    }
    // Most requests' paths are canonical already: one copy instead of three allocations.
    if is_canonical(path) {
        let q = query.filter(|_| keep_query);
        let mut out = String::with_capacity(path.len() + q.map_or(0, |q| q.len() + 1));
        out.push_str(path);
        if let Some(q) = q {
            out.push('?');
            out.push_str(q);
        }
        return Some(out);
    }
    canonical_slow(path, query.filter(|_| keep_query))
}

/// Whether an origin-form path (no query or fragment) is its own canonical form: no escape,
/// no `.` or `..` segment, no empty segment but a directory's trailing slash.
fn is_canonical(path: &str) -> bool {
    if path.contains('%') {
        return false;
    }
    let mut segments = path.split('/').skip(1).peekable();
    while let Some(seg) = segments.next() {
        let last = segments.peek().is_none();
        if seg == "." || seg == ".." || (seg.is_empty() && !last) {
            return false;
        }
    }
    true
}

/// [`canonical_path`] for a path that is not canonical already (`query` only when kept).
fn canonical_slow(path: &str, query: Option<&str>) -> Option<String> {
    let decoded = decode_unreserved(path)?;
    let mut segments: Vec<&str> = Vec::new();
    let mut parts = decoded.split('/').skip(1).peekable();
    // Whether the path ends in a directory (`/`, `/.`, `/..`): its slash is kept.
    let mut trailing = false;
    while let Some(seg) = parts.next() {
        let last = parts.peek().is_none();
        match seg {
            "" | "." => trailing = last,
            ".." => {
                segments.pop();
                trailing = last;
            }
            s => {
                segments.push(s);
                trailing = false;
            }
        }
    }
    let mut out = String::with_capacity(decoded.len() + 1);
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if segments.is_empty() || trailing {
        out.push('/');
    }
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    Some(out)
}

/// Decodes `%XX` escapes of unreserved characters (letters, digits, `-._~`) and upper-cases the
/// hex of every other escape; `None` for a `%` not followed by two hex digits.
fn decode_unreserved(path: &str) -> Option<String> {
    if !path.contains('%') {
        return Some(path.to_string());
    }
    let b = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'%' {
            let next = path[i..].find('%').map_or(b.len(), |n| i + n);
            out.push_str(&path[i..next]);
            i = next;
            continue;
        }
        let hex = |c: u8| (c as char).to_digit(16);
        let (hi, lo) = (hex(*b.get(i + 1)?)?, hex(*b.get(i + 2)?)?);
        let c = (hi * 16 + lo) as u8;
        if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') {
            out.push(c as char);
        } else {
            out.push('%');
            out.push_str(&format!("{c:02X}"));
        }
        i += 3;
    }
    Some(out)
}

/// [`canonical_path`], with [`ERROR_PATH`] for what has no canonical form.
pub fn normalize_path(path: &str, keep_query: bool) -> String {
    canonical_path(path, keep_query).unwrap_or_else(|| ERROR_PATH.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_methods_are_not_allocated_and_others_share_one_name() {
        assert!(matches!(method("GET"), Cow::Borrowed("GET")));
        assert!(matches!(method("OPTIONS"), Cow::Borrowed("OPTIONS")));
        assert!(matches!(method("PROPFIND"), Cow::Borrowed("OTHER")));
        assert!(matches!(method("get"), Cow::Borrowed("OTHER")));
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

    #[test]
    fn path_variants_have_one_canonical_form() {
        let c = |p: &str| canonical_path(p, false);
        for v in [
            "/index.html",
            "//index.html",
            "/./index.html",
            "/a/../index.html",
            "/%69ndex.html",
            "/%69ndex%2Ehtml?v=3#x",
            "/d7/.././/index.html",
            "/../index.html",
        ] {
            assert_eq!(c(v).as_deref(), Some("/index.html"), "{v}");
        }
        assert_eq!(c("/").as_deref(), Some("/"));
        assert_eq!(c("/a/").as_deref(), Some("/a/"));
        assert_eq!(c("/a/.").as_deref(), Some("/a/"));
        assert_eq!(c("/a/b/..").as_deref(), Some("/a/"));
        assert_eq!(c("/..").as_deref(), Some("/"));
        assert_eq!(
            c("/a%2fb").as_deref(),
            Some("/a%2Fb"),
            "reserved escapes stay escaped"
        );
        assert_eq!(c("/a%20b").as_deref(), Some("/a%20b"));
        assert_eq!(canonical_path("/a?x=1#f", true).as_deref(), Some("/a?x=1"));
    }

    #[test]
    fn paths_without_a_canonical_form_are_refused() {
        for bad in ["", "a.css", "*", "/a%2", "/a%zz", "http://x/"] {
            assert_eq!(canonical_path(bad, false), None, "{bad:?}");
        }
        let long = format!("/{}", "x".repeat(MAX_PATH_LEN));
        assert_eq!(canonical_path(&long, false), None);
        assert_eq!(normalize_path(&long, false), ERROR_PATH);
    }

    #[test]
    fn error_responses_are_recorded_under_one_path() {
        assert_eq!(recorded_path("/a.css".into(), 200), "/a.css");
        assert_eq!(recorded_path("/a.css".into(), 304), "/a.css");
        assert_eq!(recorded_path("/a.css".into(), 0), "/a.css");
        assert_eq!(recorded_path("/nope-123".into(), 404), ERROR_PATH);
        assert_eq!(recorded_path("/boom".into(), 502), ERROR_PATH);
    }

    proptest::proptest! {
        /// Any input: no panic; a canonical path starts with one `/`, has no empty, `.` or `..`
        /// segment, and is its own canonical form.
        #[test]
        fn canonical_paths_are_canonical(raw in "(/|%2[eE]|%[0-9a-fA-F]{2}|\\.|\\.\\.|[a-z]|%|\\?|#){0,24}") {
            if let Some(c) = canonical_path(&raw, false) {
                proptest::prop_assert!(c.starts_with('/') && !c.starts_with("//"), "{c}");
                let inner = c.trim_end_matches('/');
                proptest::prop_assert!(inner.is_empty() || inner[1..].split('/').all(|s| !s.is_empty() && s != "." && s != ".."), "{c}");
                proptest::prop_assert_eq!(canonical_path(&c, false), Some(c.clone()));
            }
        }

        /// The shortcut for paths already canonical answers what the full algorithm answers.
        #[test]
        fn the_canonical_shortcut_agrees_with_the_full_algorithm(raw in "/(/|%2[eE]|%[0-9a-fA-F]{2}|\\.|\\.\\.|[a-z]|%){0,24}", q in proptest::option::of("[a-z=&]{0,6}"), keep in proptest::bool::ANY) {
            let full = match &q {
                Some(q) => format!("{raw}?{q}"),
                None => raw.clone(),
            };
            let kept = q.as_deref().filter(|_| keep);
            proptest::prop_assert_eq!(canonical_path(&full, keep), canonical_slow(&raw, kept));
        }
    }
}
