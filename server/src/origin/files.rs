//! The static-file origin: safe path resolution, content types, validators, conditional and range requests.
//!
//! Any path that would escape the root (`..`, encoded dots, symlinks out of the root, NUL) is
//! refused before a file is opened. Small hot files are served from memory and revalidated
//! against the file system at most once a second, so a hit costs no system call.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use dashmap::DashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use percent_encoding::percent_decode_str;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use super::{OriginRequest, simple};
use crate::body::{self, Body};

/// Serves files under one directory.
#[derive(Debug)]
pub struct StaticFiles {
    root: PathBuf,
    cache_control_pages: HeaderValue,
    cache_control_assets: HeaderValue,
    /// Hot files by request path, so the request path does no file system calls on a hit.
    cache: DashMap<String, Arc<Entry>>,
    cached_bytes: AtomicU64,
    clock: std::time::Instant,
    /// The file system look-up in flight per path: concurrent misses of one path (a hot file
    /// whose entry just went stale) wait for one look-up instead of each doing their own.
    inflight: DashMap<String, Arc<tokio::sync::OnceCell<Arc<Resolved>>>>,
    /// File system look-ups done (for tests of the single flight).
    resolves: AtomicU64,
    /// Serve files and directories whose name starts with `.` (`.git/`, `.env`); off by default,
    /// except `/.well-known/`, which exists to be served.
    serve_dotfiles: bool,
}

/// Files up to this size are kept in memory; larger ones are streamed from disk in chunks.
const SMALL_FILE: u64 = 256 * 1024;

impl StaticFiles {
    /// `root` must exist; it is canonicalized once so symlink checks compare real paths.
    pub fn new(
        root: &Path,
        cache_control_pages: &str,
        cache_control_assets: &str,
    ) -> std::io::Result<Self> {
        let root = std::fs::canonicalize(root)?;
        if !root.is_dir() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotADirectory,
                format!("{} is not a directory", root.display()),
            ));
        }
        let hv = |s: &str| {
            HeaderValue::from_str(s).map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("bad Cache-Control value {s:?}"),
                )
            })
        };
        Ok(StaticFiles {
            root,
            cache_control_pages: hv(cache_control_pages)?,
            cache_control_assets: hv(cache_control_assets)?,
            cache: DashMap::new(),
            cached_bytes: AtomicU64::new(0),
            clock: std::time::Instant::now(),
            inflight: DashMap::new(),
            resolves: AtomicU64::new(0),
            serve_dotfiles: false,
        })
    }

    /// Also serve dotfiles (see the field).
    pub fn serve_dotfiles(mut self, yes: bool) -> Self {
        self.serve_dotfiles = yes;
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub async fn serve(&self, req: &OriginRequest) -> Response<Body> {
        match self.answer_now(req) {
            Step::Done(r) => r,
            Step::Resolve(rel) => {
                let key = req.uri.path();
                let resolved = self.resolve_once(key, rel).await;
                match &*resolved {
                    Resolved::File(e) => self.respond(req, e).await,
                    Resolved::Redirect => {
                        // Redirect so relative links in the index resolve against the directory.
                        let mut r = simple(StatusCode::MOVED_PERMANENTLY, "moved\n");
                        if let Ok(v) = HeaderValue::from_str(&format!("{key}/")) {
                            r.headers_mut().insert(header::LOCATION, v);
                        }
                        r
                    }
                    _ => simple(StatusCode::NOT_FOUND, "not found\n"),
                }
            }
            Step::Read(e, head) => Self::finish_read(e, head).await,
        }
    }

    /// The answer when it needs no disk: what [`serve`](Self::serve) answers, if the request is
    /// refused or its file is cached (fresh) with its bytes in memory. Most of what a static site
    /// answers, so the connection can send it in the turn the request arrived in.
    pub fn serve_now(&self, req: &OriginRequest) -> Option<Response<Body>> {
        match self.answer_now(req) {
            Step::Done(r) => Some(r),
            Step::Resolve(_) | Step::Read(..) => None,
        }
    }

    /// Everything `serve` does before it must wait for the file system.
    fn answer_now(&self, req: &OriginRequest) -> Step {
        if req.method != Method::GET && req.method != Method::HEAD {
            let mut r = simple(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return Step::Done(r);
        }
        // The cache first: its keys are paths that passed the checks below when they were
        // resolved (only `resolve_once` fills it), so a hit needs neither again.
        if let Some(e) = self.cached(req.uri.path()) {
            return match respond_head(req, &e) {
                Head::Done(r) => Step::Done(r),
                Head::Read(head) => Step::Read(e, head),
            };
        }
        let Some(rel) = safe_relative_path(req.uri.path()) else {
            return Step::Done(simple(StatusCode::BAD_REQUEST, "bad path\n"));
        };
        if !self.serve_dotfiles && is_hidden(&rel) {
            return Step::Done(simple(StatusCode::NOT_FOUND, "not found\n"));
        }
        Step::Resolve(rel)
    }

    /// Looks `key` up on the file system, once for all concurrent callers: the first runs the
    /// look-up (and caches a file it finds), the others wait for its answer.
    async fn resolve_once(&self, key: &str, rel: PathBuf) -> Arc<Resolved> {
        let cell = self
            .inflight
            .entry(key.to_string())
            .or_insert_with(|| Arc::new(tokio::sync::OnceCell::new()))
            .clone();
        let resolved = cell
            .get_or_init(|| async {
                self.resolves.fetch_add(1, Ordering::Relaxed);
                let root = self.root.clone();
                let dir_request = key.ends_with('/');
                let cc = (
                    self.cache_control_pages.clone(),
                    self.cache_control_assets.clone(),
                );
                let r = tokio::task::spawn_blocking(move || resolve(&root, &rel, dir_request, cc))
                    .await
                    .unwrap_or(Resolved::NotFound);
                if let Resolved::File(e) = &r {
                    self.remember(key, e);
                }
                Arc::new(r)
            })
            .await
            .clone();
        self.inflight.remove_if(key, |_, c| Arc::ptr_eq(c, &cell));
        resolved
    }

    /// A cache entry checked against the file system less than [`REVALIDATE_MS`] ago.
    fn cached(&self, key: &str) -> Option<Arc<Entry>> {
        let e = self.cache.get(key)?;
        let now = crate::clock::now()
            .instant
            .saturating_duration_since(self.clock)
            .as_millis() as u64;
        (now.saturating_sub(e.checked_ms) < REVALIDATE_MS).then(|| Arc::clone(e.value()))
    }

    fn remember(&self, key: &str, e: &Arc<Entry>) {
        if self.cache.len() >= MAX_ENTRIES {
            // Crude but bounded: a site with more hot paths than this just re-reads.
            self.cache.clear();
            self.cached_bytes.store(0, Ordering::Relaxed);
        }
        let mut e2 = Entry::clone(e);
        e2.checked_ms = self.clock.elapsed().as_millis() as u64;
        if let Some(n) = e2.body.as_ref().map(|b| b.len() as u64) {
            let total = self.cached_bytes.fetch_add(n, Ordering::Relaxed) + n;
            if total > MAX_CACHED_BYTES {
                e2.body = None;
                self.cached_bytes.fetch_sub(n, Ordering::Relaxed);
            }
        }
        if let Some(old) = self.cache.insert(key.to_string(), Arc::new(e2))
            && let Some(b) = &old.body
        {
            self.cached_bytes
                .fetch_sub(b.len() as u64, Ordering::Relaxed);
        }
    }

    async fn respond(&self, req: &OriginRequest, e: &Arc<Entry>) -> Response<Body> {
        match respond_head(req, e) {
            Head::Done(r) => r,
            Head::Read(head) => Self::finish_read(Arc::clone(e), head).await,
        }
    }

    /// Reads the body of a file too large to keep in memory and completes its response.
    async fn finish_read(e: Arc<Entry>, head: ReadHead) -> Response<Body> {
        match read_body(&e.real, head.start, head.count).await {
            Ok(b) => response(head.status, head.headers, b),
            Err(_) => simple(StatusCode::NOT_FOUND, "not found\n"),
        }
    }
}

/// How far [`StaticFiles::answer_now`] got without the file system.
enum Step {
    Done(Response<Body>),
    /// Not cached (or stale): look the path up.
    Resolve(PathBuf),
    /// Cached, but its bytes are read from disk for each response.
    Read(Arc<Entry>, ReadHead),
}

/// A response complete but for a body to read from disk.
struct ReadHead {
    status: StatusCode,
    headers: HeaderMap,
    start: u64,
    count: u64,
}

enum Head {
    Done(Response<Body>),
    Read(ReadHead),
}

/// The response to `req` for the file `e`: complete unless its body must be read from disk.
fn respond_head(req: &OriginRequest, e: &Entry) -> Head {
    // One map sized for every header a response here carries, filled in place: no builder,
    // no regrowth (a cache hit is most of what a static site answers).
    let mut h = HeaderMap::with_capacity(8);
    h.insert(header::ETAG, e.etag.clone());
    h.insert(header::LAST_MODIFIED, e.last_modified.clone());
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CACHE_CONTROL, e.cache_control.clone());
    h.insert(header::CONTENT_TYPE, e.content_type.clone());
    let len = e.len;
    if not_modified(&req.headers, &e.etag_str, e.mtime) {
        return Head::Done(response(StatusCode::NOT_MODIFIED, h, body::empty()));
    }
    let range = req
        .headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .filter(|_| if_range_matches(&req.headers, &e.etag_str, &e.last_modified_str));
    let (status, start, count) = match range.map(|r| parse_range(r, len)) {
        None | Some(RangeResult::Ignore) => (StatusCode::OK, 0, len),
        Some(RangeResult::Satisfiable(s, end)) => {
            if let Ok(v) = HeaderValue::from_str(&format!("bytes {s}-{end}/{len}")) {
                h.insert(header::CONTENT_RANGE, v);
            }
            (StatusCode::PARTIAL_CONTENT, s, end - s + 1)
        }
        Some(RangeResult::Unsatisfiable) => {
            let mut r = simple(StatusCode::RANGE_NOT_SATISFIABLE, "range not satisfiable\n");
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Head::Done(r);
        }
    };
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(count));
    let body = if req.method == Method::HEAD {
        body::empty()
    } else if let Some(b) = &e.body {
        body::full(b.slice(start as usize..(start + count) as usize))
    } else {
        return Head::Read(ReadHead {
            status,
            headers: h,
            start,
            count,
        });
    };
    Head::Done(response(status, h, body))
}

/// A response of `status` with `headers` and `body`.
fn response(status: StatusCode, headers: HeaderMap, body: Body) -> Response<Body> {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    *r.headers_mut() = headers;
    r
}

/// How long a cached file is trusted before the file system is asked again.
const REVALIDATE_MS: u64 = 1000;
const MAX_ENTRIES: usize = 10_000;
const MAX_CACHED_BYTES: u64 = 64 * 1024 * 1024;

/// A resolved file: its validators, prebuilt headers and, when small, its bytes.
#[derive(Debug, Clone)]
struct Entry {
    real: PathBuf,
    len: u64,
    mtime: SystemTime,
    etag: HeaderValue,
    etag_str: String,
    last_modified: HeaderValue,
    last_modified_str: String,
    content_type: HeaderValue,
    cache_control: HeaderValue,
    body: Option<Bytes>,
    checked_ms: u64,
}

#[derive(Debug)]
enum Resolved {
    File(Arc<Entry>),
    Redirect,
    NotFound,
}

/// Resolves a safe relative path under `root` (blocking file system calls: run off the workers).
fn resolve(root: &Path, rel: &Path, dir_request: bool, cc: (HeaderValue, HeaderValue)) -> Resolved {
    let mut path = root.join(rel);
    let Ok(mut meta) = std::fs::metadata(&path) else {
        return Resolved::NotFound;
    };
    if meta.is_dir() {
        if !dir_request {
            return Resolved::Redirect;
        }
        path.push("index.html");
        meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(_) => return Resolved::NotFound,
        };
    }
    if !meta.is_file() {
        return Resolved::NotFound;
    }
    // Symlinks may point anywhere: the real path must still be under the root.
    let real = match std::fs::canonicalize(&path) {
        Ok(real) if real.starts_with(root) => real,
        _ => return Resolved::NotFound,
    };
    let len = meta.len();
    let mtime = meta.modified().unwrap_or(UNIX_EPOCH);
    let etag_str = etag_for(len, mtime);
    let last_modified_str = httpdate::fmt_http_date(mtime);
    let mime = mime_guess::from_path(&path).first_or_octet_stream();
    let is_html = mime.essence_str() == "text/html";
    let ct = if mime.type_() == mime_guess::mime::TEXT
        || mime.essence_str() == "application/javascript"
        || mime.essence_str() == "image/svg+xml"
    {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_string()
    };
    let body = if len <= SMALL_FILE {
        match std::fs::read(&real) {
            Ok(b) if b.len() as u64 == len => Some(Bytes::from(b)),
            Ok(_) => None, // changed under us: stream it instead
            Err(_) => return Resolved::NotFound,
        }
    } else {
        None
    };
    let hv = |s: &str| HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""));
    Resolved::File(Arc::new(Entry {
        real,
        len,
        mtime,
        etag: hv(&etag_str),
        etag_str,
        last_modified: hv(&last_modified_str),
        last_modified_str,
        content_type: hv(&ct),
        cache_control: if is_html { cc.0 } else { cc.1 },
        body,
        checked_ms: 0,
    }))
}

async fn read_body(path: &Path, start: u64, count: u64) -> std::io::Result<Body> {
    let mut f = tokio::fs::File::open(path).await?;
    if start > 0 {
        f.seek(std::io::SeekFrom::Start(start)).await?;
    }
    if count <= SMALL_FILE {
        let mut buf = Vec::with_capacity(count as usize);
        f.take(count).read_to_end(&mut buf).await?;
        return Ok(body::full(buf));
    }
    let stream = ReaderStream::with_capacity(f.take(count), 64 * 1024);
    Ok(StreamBody::new(futures_util::StreamExt::map(stream, |r| {
        r.map(http_body::Frame::data)
    }))
    .boxed())
}

/// A strong validator from size and modification time (nanoseconds), quoted.
fn etag_for(len: u64, mtime: SystemTime) -> String {
    let nanos = mtime
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("\"{len:x}-{nanos:x}\"")
}

/// Conditional GET: If-None-Match wins over If-Modified-Since (RFC 9110 §13.2.2).
fn not_modified(h: &http::HeaderMap, etag: &str, mtime: SystemTime) -> bool {
    if let Some(inm) = h.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) {
        let tag = etag.trim_start_matches("W/");
        return inm
            .split(',')
            .map(str::trim)
            .any(|t| t == "*" || t.trim_start_matches("W/") == tag);
    }
    if let Some(ims) = h
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
    {
        let secs = |t: SystemTime| {
            t.duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        };
        return secs(mtime) <= secs(ims);
    }
    false
}

fn if_range_matches(h: &http::HeaderMap, etag: &str, last_modified: &str) -> bool {
    match h.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(v) => v == etag || v == last_modified,
    }
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RangeResult {
    /// Not a single byte range we serve (multi-range, other unit, garbage): send the whole file.
    Ignore,
    Satisfiable(u64, u64),
    Unsatisfiable,
}

/// Parses a single `bytes=` range against a file of `len` bytes.
pub(crate) fn parse_range(v: &str, len: u64) -> RangeResult {
    let Some(spec) = v.trim().strip_prefix("bytes=") else {
        return RangeResult::Ignore;
    };
    if spec.contains(',') {
        return RangeResult::Ignore;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeResult::Ignore;
    };
    let (a, b) = (a.trim(), b.trim());
    let num = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            None
        } else {
            s.parse().ok()
        }
    };
    match (a.is_empty(), b.is_empty()) {
        (true, true) => RangeResult::Ignore,
        (true, false) => match num(b) {
            None => RangeResult::Ignore,
            Some(0) => RangeResult::Unsatisfiable,
            Some(_) if len == 0 => RangeResult::Unsatisfiable,
            Some(n) => RangeResult::Satisfiable(len.saturating_sub(n), len - 1),
        },
        (false, _) => {
            let Some(start) = num(a) else {
                return RangeResult::Ignore;
            };
            let end = if b.is_empty() {
                u64::MAX
            } else {
                match num(b) {
                    Some(e) if e >= start => e,
                    _ => return RangeResult::Ignore,
                }
            };
            if start >= len {
                return RangeResult::Unsatisfiable;
            }
            RangeResult::Satisfiable(start, end.min(len - 1))
        }
    }
}

/// Whether a path names a dotfile or something inside a dot directory (but not `.well-known/`).
fn is_hidden(rel: &Path) -> bool {
    rel.components().enumerate().any(|(i, c)| {
        let name = c.as_os_str().to_string_lossy();
        name.starts_with('.') && !(i == 0 && name == ".well-known")
    })
}

/// Percent-decodes a request path and returns it relative to the root, or `None` when it is unsafe:
/// `..` or `.` segments (also when encoded), NUL, backslashes, or anything not valid UTF-8.
pub fn safe_relative_path(raw: &str) -> Option<PathBuf> {
    if !raw.starts_with('/') {
        return None;
    }
    let decoded = percent_decode_str(raw).decode_utf8().ok()?;
    if decoded.contains('\0') || decoded.contains('\\') {
        return None;
    }
    let mut out = PathBuf::new();
    for seg in decoded.split('/') {
        match seg {
            "" => continue,
            "." | ".." => return None,
            s => out.push(s),
        }
    }
    // Belt and braces: what we built must be plain normal components.
    if out.components().all(|c| matches!(c, Component::Normal(_))) {
        Some(out)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotfiles_are_hidden_but_well_known_is_not() {
        for hidden in [".env", ".git/config", "a/.htpasswd", "a/.well-known/x"] {
            assert!(is_hidden(Path::new(hidden)), "{hidden}");
        }
        for shown in ["index.html", ".well-known/acme-challenge/t", "a/b.c"] {
            assert!(!is_hidden(Path::new(shown)), "{shown}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_requests_for_a_missing_or_stale_entry_share_one_look_up() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.css"), "body{}").unwrap();
        let f = StaticFiles::new(dir.path(), "no-cache", "public, max-age=60").unwrap();
        let req = OriginRequest {
            method: Method::GET,
            uri: "https://localhost/a.css".parse().unwrap(),
            headers: http::HeaderMap::new(),
            body: body::empty(),
            client_ip: None,
        };
        let burst = || futures_util::future::join_all((0..50).map(|_| f.serve(&req)));
        assert!(burst().await.iter().all(|r| r.status() == StatusCode::OK));
        assert_eq!(f.resolves.load(Ordering::Relaxed), 1);
        assert!(burst().await.iter().all(|r| r.status() == StatusCode::OK));
        assert_eq!(
            f.resolves.load(Ordering::Relaxed),
            1,
            "a fresh entry is served from memory"
        );
        tokio::time::sleep(std::time::Duration::from_millis(REVALIDATE_MS + 100)).await;
        assert!(burst().await.iter().all(|r| r.status() == StatusCode::OK));
        assert_eq!(
            f.resolves.load(Ordering::Relaxed),
            2,
            "one revalidation for the stale entry"
        );
        assert!(f.inflight.is_empty());
    }

    #[test]
    fn traversal_attempts_are_refused_before_any_file_is_opened() {
        for bad in [
            "/../etc/passwd",
            "/a/../../etc/passwd",
            "/%2e%2e/etc/passwd",
            "/%2E%2E%2Fetc%2Fpasswd",
            "/a/%00b",
            "/a\\..\\b",
            "/./a",
            "relative",
            "/%ff%fe",
        ] {
            assert_eq!(safe_relative_path(bad), None, "{bad}");
        }
        assert_eq!(
            safe_relative_path("/a%20b/c.css"),
            Some(PathBuf::from("a b/c.css"))
        );
        assert_eq!(safe_relative_path("/"), Some(PathBuf::new()));
    }

    #[test]
    fn single_ranges_parse_and_others_are_ignored_or_unsatisfiable() {
        assert_eq!(
            parse_range("bytes=0-99", 1000),
            RangeResult::Satisfiable(0, 99)
        );
        assert_eq!(
            parse_range("bytes=900-", 1000),
            RangeResult::Satisfiable(900, 999)
        );
        assert_eq!(
            parse_range("bytes=-100", 1000),
            RangeResult::Satisfiable(900, 999)
        );
        assert_eq!(
            parse_range("bytes=0-5000", 1000),
            RangeResult::Satisfiable(0, 999)
        );
        assert_eq!(parse_range("bytes=1000-", 1000), RangeResult::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,5-6", 1000), RangeResult::Ignore);
        assert_eq!(parse_range("items=0-1", 1000), RangeResult::Ignore);
        assert_eq!(parse_range("bytes=5-1", 1000), RangeResult::Ignore);
    }

    proptest::proptest! {
        #[test]
        fn path_checks_never_panic_and_never_yield_parent_components(s in "\\PC{0,80}") {
            if let Some(p) = safe_relative_path(&s) {
                proptest::prop_assert!(p.components().all(|c| matches!(c, Component::Normal(_))));
            }
        }

        #[test]
        fn conditional_headers_never_panic_and_match_only_the_tag(inm in "[ -~]{0,60}", ims in "[ -~]{0,40}") {
            let mut h = http::HeaderMap::new();
            let etag = "\"1f-abc\"";
            if let Ok(v) = http::HeaderValue::from_str(&ims) {
                h.insert(header::IF_MODIFIED_SINCE, v);
            }
            let _ = not_modified(&h, etag, UNIX_EPOCH);
            let _ = if_range_matches(&h, etag, "Thu, 01 Jan 1970 00:00:00 GMT");
            if let Ok(v) = http::HeaderValue::from_str(&inm) {
                h.insert(header::IF_NONE_MATCH, v);
                let hit = not_modified(&h, etag, UNIX_EPOCH);
                let listed = inm.split(',').map(str::trim).any(|t| t == "*" || t.trim_start_matches("W/") == etag);
                proptest::prop_assert_eq!(hit, listed);
            }
        }

        #[test]
        fn range_results_stay_inside_the_file(s in "[ -~]{0,30}", len in 0u64..10_000) {
            if let RangeResult::Satisfiable(a, b) = parse_range(&s, len) {
                proptest::prop_assert!(a <= b && b < len);
            }
        }
    }
}
