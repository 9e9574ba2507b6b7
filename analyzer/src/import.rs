//! Import of nginx/Apache access logs (combined or common format, plain or gzip) into the events table.
//!
//! A site can learn before it switches its traffic to pushwise. Bad lines are counted and skipped,
//! never abort the import and never partially insert; re-importing a file inserts nothing twice.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use sha2::{Digest, Sha256};

use pushwise_store::event::{method, normalize_path, recorded_path};
use pushwise_store::time::parse_clf_date;
use pushwise_store::{ClientKeyer, Event, PrefixCap, PushMark, Referer, Store, UaClass};

use crate::error::Error;

/// Lines longer than this are skipped as garbage (real request lines are far shorter).
pub const MAX_LINE: usize = 64 * 1024;
const BATCH: usize = 10_000;

/// Which access-log format the lines are in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// `%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i"` (nginx's default).
    Combined,
    /// `%h %l %u %t "%r" %>s %b` (no Referer, no User-Agent).
    Common,
}

impl LogFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Combined => "combined",
            LogFormat::Common => "common",
        }
    }

    /// The other format, tried on rejected lines to tell the user which one the log is in.
    pub fn other(self) -> LogFormat {
        match self {
            LogFormat::Combined => LogFormat::Common,
            LogFormat::Common => LogFormat::Combined,
        }
    }

    /// What a line of this format looks like, for error messages.
    pub fn shape(self) -> &'static str {
        match self {
            LogFormat::Combined => {
                r#"IP - USER [DATE] "METHOD PATH PROTOCOL" STATUS BYTES "REFERER" "USER-AGENT""#
            }
            LogFormat::Common => r#"IP - USER [DATE] "METHOD PATH PROTOCOL" STATUS BYTES"#,
        }
    }
}

/// One parsed log line, borrowing from the input.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine<'a> {
    pub ip: &'a str,
    pub ts_ms: i64,
    pub method: &'a str,
    pub target: &'a str,
    pub status: u16,
    pub bytes: u64,
    pub referer: Option<&'a str>,
    pub user_agent: Option<&'a str>,
}

/// Why a line was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    Empty,
    NotText,
    TooLong,
    Truncated,
    BadDate,
    BadRequest,
    BadStatus,
    BadBytes,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::Empty => "empty",
            SkipReason::NotText => "not text",
            SkipReason::TooLong => "too long",
            SkipReason::Truncated => "truncated",
            SkipReason::BadDate => "bad date",
            SkipReason::BadRequest => "bad request line",
            SkipReason::BadStatus => "bad status",
            SkipReason::BadBytes => "bad byte count",
        }
    }
}

/// A tiny cursor over one line.
struct Cur<'a> {
    s: &'a str,
}

impl<'a> Cur<'a> {
    fn token(&mut self) -> Option<&'a str> {
        let s = self.s.trim_start_matches(' ');
        if s.is_empty() {
            return None;
        }
        let end = s.find(' ').unwrap_or(s.len());
        self.s = &s[end..];
        Some(&s[..end])
    }

    fn bracketed(&mut self) -> Option<&'a str> {
        let s = self.s.trim_start_matches(' ');
        let s = s.strip_prefix('[')?;
        let end = s.find(']')?;
        self.s = &s[end + 1..];
        Some(&s[..end])
    }

    /// A `"..."` field; backslash escapes are kept verbatim (we only need the boundaries).
    fn quoted(&mut self) -> Option<&'a str> {
        let s = self.s.trim_start_matches(' ');
        let body = s.strip_prefix('"')?;
        let bytes = body.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' => i += 2,
                b'"' => {
                    self.s = &body[i + 1..];
                    return Some(&body[..i]);
                }
                _ => i += 1,
            }
        }
        None
    }
}

/// Parses one line. Never panics, whatever the input.
pub fn parse_line(line: &str, format: LogFormat) -> Result<LogLine<'_>, SkipReason> {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.trim().is_empty() {
        return Err(SkipReason::Empty);
    }
    if line.len() > MAX_LINE {
        return Err(SkipReason::TooLong);
    }
    if line.bytes().any(|b| b < 0x20 && b != b'\t') {
        return Err(SkipReason::NotText);
    }
    let mut c = Cur { s: line };
    let ip = c.token().ok_or(SkipReason::Truncated)?;
    c.token().ok_or(SkipReason::Truncated)?; // ident
    c.token().ok_or(SkipReason::Truncated)?; // user
    let date = c.bracketed().ok_or(SkipReason::Truncated)?;
    let ts_ms = parse_clf_date(date).ok_or(SkipReason::BadDate)?;
    let request = c.quoted().ok_or(SkipReason::Truncated)?;
    let mut parts = request.split(' ').filter(|p| !p.is_empty());
    let method = parts.next().ok_or(SkipReason::BadRequest)?;
    let target = parts.next().ok_or(SkipReason::BadRequest)?;
    if !method.bytes().all(|b| b.is_ascii_uppercase()) || !target.starts_with('/') {
        return Err(SkipReason::BadRequest);
    }
    let status_s = c.token().ok_or(SkipReason::Truncated)?;
    let status: u16 = status_s.parse().map_err(|_| SkipReason::BadStatus)?;
    if !(100..=599).contains(&status) {
        return Err(SkipReason::BadStatus);
    }
    let bytes_s = c.token().ok_or(SkipReason::Truncated)?;
    let bytes = if bytes_s == "-" {
        0
    } else {
        bytes_s.parse().map_err(|_| SkipReason::BadBytes)?
    };
    let (referer, user_agent) = match format {
        LogFormat::Common => (None, None),
        LogFormat::Combined => {
            let r = c.quoted().ok_or(SkipReason::Truncated)?;
            let ua = c.quoted().ok_or(SkipReason::Truncated)?;
            (
                Some(r).filter(|r| *r != "-" && !r.is_empty()),
                Some(ua).filter(|u| *u != "-" && !u.is_empty()),
            )
        }
    };
    Ok(LogLine {
        ip,
        ts_ms,
        method,
        target,
        status,
        bytes,
        referer,
        user_agent,
    })
}

/// Which paths are pages when the log has no content types.
#[derive(Debug, Clone)]
pub struct PageRule {
    /// Extensions (without dot, lower case) that are pages; paths ending in `/` or with no
    /// extension are pages too.
    pub extensions: Vec<String>,
}

impl Default for PageRule {
    fn default() -> Self {
        PageRule {
            extensions: vec!["html".into(), "htm".into(), "php".into()],
        }
    }
}

impl PageRule {
    pub fn is_page(&self, path: &str) -> bool {
        let last = path.rsplit('/').next().unwrap_or("");
        if last.is_empty() {
            return true;
        }
        match last.rsplit_once('.') {
            None => true,
            Some((_, ext)) => self.extensions.iter().any(|e| e.eq_ignore_ascii_case(ext)),
        }
    }
}

/// Options of one import.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub format: LogFormat,
    pub hosts: Vec<String>,
    pub keep_query: bool,
    pub pages: PageRule,
    /// The learning cap per network, shared by every file of one import (lines whose client
    /// field is not an address, such as pushwise's own access log, are not capped).
    pub prefix_cap: Arc<PrefixCap>,
}

/// What an import did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportReport {
    pub lines: u64,
    pub imported: u64,
    /// Lines already imported earlier (same file fingerprint and line number).
    pub duplicates: u64,
    pub skipped: BTreeMap<SkipReason, u64>,
    /// Line numbers and reasons of the first few skipped lines.
    pub first_skipped: Vec<(u64, SkipReason)>,
    /// The first skipped line itself (at most 200 characters, control characters escaped), so
    /// the user sees what was refused.
    pub first_rejected: Option<String>,
    /// Skipped lines that parse in the other format (`--format common` for a combined import):
    /// the log is probably in that one.
    pub other_format_lines: u64,
}

impl ImportReport {
    pub fn skipped_total(&self) -> u64 {
        self.skipped.values().sum()
    }
}

/// Imports one log stream (reading it synchronously: this is CLI work, not request-path work).
/// `progress` is called with the compressed bytes read so far.
pub async fn import_reader<R: Read>(
    store: &Store,
    input: R,
    opts: &ImportOptions,
    mut progress: impl FnMut(u64),
) -> Result<ImportReport, Error> {
    let keyer = ClientKeyer::new(store.salt().await?);
    let read_bytes = Arc::new(AtomicU64::new(0));
    let (mut lines, fingerprint) = open_lines(input, Arc::clone(&read_bytes))?;
    let hosts: Vec<&str> = opts.hosts.iter().map(String::as_str).collect();
    let mut report = ImportReport::default();
    let mut batch: Vec<Event> = Vec::with_capacity(BATCH);
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let mut line_no = 0u64;
    let mut last_progress = 0u64;
    loop {
        buf.clear();
        let n = read_line_capped(&mut lines, &mut buf, MAX_LINE + 1)?;
        if n == 0 {
            break;
        }
        line_no += 1;
        report.lines += 1;
        let parsed = match std::str::from_utf8(&buf) {
            Err(_) => Err(SkipReason::NotText),
            Ok(_) if buf.len() > MAX_LINE => Err(SkipReason::TooLong),
            Ok(s) => parse_line(s, opts.format),
        };
        match parsed {
            Err(reason) => {
                *report.skipped.entry(reason).or_default() += 1;
                if report.first_skipped.len() < 5 {
                    report.first_skipped.push((line_no, reason));
                }
                if report.first_rejected.is_none() && reason != SkipReason::Empty {
                    report.first_rejected = Some(shown_line(&buf));
                }
                if std::str::from_utf8(&buf)
                    .is_ok_and(|s| parse_line(s, opts.format.other()).is_ok())
                {
                    report.other_format_lines += 1;
                }
            }
            Ok(l) => batch.push(event_of(&l, &keyer, opts, &hosts, (fingerprint, line_no))),
        }
        if batch.len() >= BATCH {
            flush(store, &mut batch, &mut report).await?;
        }
        if line_no.is_multiple_of(4096) {
            let read = read_bytes.load(Ordering::Relaxed);
            if read != last_progress {
                progress(read);
                last_progress = read;
            }
        }
    }
    flush(store, &mut batch, &mut report).await?;
    // Every line is in: the learner may close this log's sessions instead of waiting for more.
    store.mark_source_done(fingerprint).await?;
    Ok(report)
}

/// A rejected line as the user should see it: at most 200 characters, lossy UTF-8, control
/// characters (a terminal's escape sequences among them) escaped.
fn shown_line(buf: &[u8]) -> String {
    let text = String::from_utf8_lossy(buf);
    let text = text.trim_end_matches(['\n', '\r']);
    let mut out: String = text
        .chars()
        .take(200)
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect();
    if text.chars().count() > 200 {
        out.push_str("...");
    }
    out
}

/// Where the first block of a stream shows it is binary (a program, an image, a database), which
/// would otherwise be "read" as thousands of garbage lines: a zero byte in its first line, or
/// zero bytes throughout (compressed data has one in 256). A log with a corrupt line or two
/// further on is text: those lines are skipped as "not text", the rest imported.
fn binary_at(head: &[u8]) -> Option<usize> {
    let first_line = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
    let first_zero = head.iter().position(|&b| b == 0)?;
    let zeros = head.iter().filter(|&&b| b == 0).count();
    (first_zero < first_line || (zeros >= 8 && zeros * 1000 > head.len())).then_some(first_zero)
}

/// The lines of a log stream, gunzipped when it is gzip (sniffed by its magic bytes, whatever the
/// file is called), and the stream's fingerprint: a hash of its first 64 KiB of content, so the
/// same file (or a copy, or the same file grown by rotation-in-place) keeps its identity.
fn open_lines<'r, R: Read + 'r>(
    input: R,
    read_bytes: Arc<AtomicU64>,
) -> Result<(Box<dyn BufRead + 'r>, i64), Error> {
    let counting = CountingReader {
        inner: input,
        n: read_bytes,
    };
    let mut reader = BufReader::with_capacity(256 * 1024, counting);
    let is_gz = reader.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    let mut lines: Box<dyn BufRead + 'r> = if is_gz {
        Box::new(BufReader::with_capacity(
            256 * 1024,
            flate2::bufread::MultiGzDecoder::new(reader),
        ))
    } else {
        Box::new(reader)
    };
    let fingerprint = {
        let head = lines.fill_buf()?;
        if let Some(at) = binary_at(&head[..head.len().min(64 * 1024)]) {
            return Err(Error::invalid(format!(
                "this is not a text access log: it holds binary data (a zero byte at offset {at})"
            )));
        }
        let head = &head[..head.len().min(64 * 1024)];
        let h = Sha256::digest(head);
        i64::from_be_bytes(h[..8].try_into().expect("8 bytes"))
    };
    Ok((lines, fingerprint))
}

/// The event one parsed line stands for; `source` is the stream's fingerprint and the line number.
fn event_of(
    l: &LogLine<'_>,
    keyer: &ClientKeyer,
    opts: &ImportOptions,
    hosts: &[&str],
    (fingerprint, line_no): (i64, u64),
) -> Event {
    let path = normalize_path(l.target, opts.keep_query);
    let mut e = Event {
        ts_ms: l.ts_ms,
        client: keyer.key(l.ip, l.user_agent),
        conn_id: 0,
        stream_id: 0,
        method: method(l.method),
        is_page: opts.pages.is_page(&path),
        // As the server records them: error responses under one path (bot probes would
        // otherwise each become a dictionary row).
        path: recorded_path(path, l.status),
        status: l.status,
        bytes: l.bytes,
        content_type: None,
        referer: Referer::reduce(l.referer, hosts, opts.keep_query),
        browser: UaClass::of(l.user_agent).is_browser(),
        cacheable: true,
        push: PushMark::Requested,
        holdout: false,
        over_cap: false,
        source: Some(fingerprint),
        source_line: Some(line_no as i64),
    };
    // A client field that is not an address (pushwise's own access log) is not capped.
    if let Ok(ip) = l.ip.parse() {
        opts.prefix_cap.mark(&mut e, ip);
    }
    e
}

struct CountingReader<R> {
    inner: R,
    n: Arc<AtomicU64>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

async fn flush(
    store: &Store,
    batch: &mut Vec<Event>,
    report: &mut ImportReport,
) -> Result<(), Error> {
    if batch.is_empty() {
        return Ok(());
    }
    let inserted = store.insert_events(batch).await?;
    report.imported += inserted;
    report.duplicates += batch.len() as u64 - inserted;
    batch.clear();
    Ok(())
}

/// Reads one line into `buf`, keeping at most `cap` bytes of it (the rest is consumed and dropped).
/// Returns the number of bytes consumed (0 at end of input).
fn read_line_capped(r: &mut dyn BufRead, buf: &mut Vec<u8>, cap: usize) -> std::io::Result<usize> {
    let mut consumed = 0;
    loop {
        let avail = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if avail.is_empty() {
            return Ok(consumed);
        }
        let (chunk, done) = match memchr_nl(avail) {
            Some(i) => (&avail[..=i], true),
            None => (avail, false),
        };
        let room = cap.saturating_sub(buf.len());
        let keep = if done {
            &chunk[..chunk.len() - 1]
        } else {
            chunk
        };
        buf.extend_from_slice(&keep[..keep.len().min(room)]);
        let n = chunk.len();
        r.consume(n);
        consumed += n;
        if done {
            return Ok(consumed);
        }
    }
}

fn memchr_nl(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'\n')
}

#[cfg(test)]
mod binary_tests {
    use super::binary_at;

    #[test]
    fn binary_files_are_told_from_logs_with_a_corrupt_line() {
        assert_eq!(binary_at(b"\x7fELF\x02\x01\x01\x00\x00"), Some(7));
        assert_eq!(binary_at(b"SQLite format 3\x00\x10\x00"), Some(15));
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.extend(std::iter::repeat_n([0u8, 0, 0, 13, b'I', b'H'], 40).flatten());
        assert!(binary_at(&png).is_some());
        let mut log =
            b"1.2.3.4 - - [10/Oct/2026:13:55:36 +0000] \"GET / HTTP/1.1\" 200 1\n".repeat(50);
        log.extend(b"\x00\x01 corrupt\n");
        log.extend(
            b"1.2.3.4 - - [10/Oct/2026:13:55:36 +0000] \"GET / HTTP/1.1\" 200 1\n".repeat(50),
        );
        assert_eq!(binary_at(&log), None);
        assert_eq!(binary_at(b"plain text\n"), None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"203.0.113.7 - - [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif?x=1 HTTP/1.0" 200 2326 "http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)""#;

    #[test]
    fn combined_line_parses_with_timezone_applied() {
        let l = parse_line(LINE, LogFormat::Combined).unwrap();
        assert_eq!(l.ip, "203.0.113.7");
        assert_eq!(l.method, "GET");
        assert_eq!(l.target, "/apache_pb.gif?x=1");
        assert_eq!(l.status, 200);
        assert_eq!(l.bytes, 2326);
        assert_eq!(l.referer, Some("http://www.example.com/start.html"));
        // 2000-10-10 13:55:36 -0700 == 20:55:36 UTC == 971211336
        assert_eq!(l.ts_ms, 971_211_336_000);
    }

    #[test]
    fn common_line_has_no_referer_or_agent() {
        let l = parse_line(
            r#"::1 - bob [01/Jan/2024:00:00:00 +0000] "HEAD / HTTP/1.1" 304 -"#,
            LogFormat::Common,
        )
        .unwrap();
        assert_eq!(l.bytes, 0);
        assert_eq!(l.referer, None);
        assert_eq!(l.ts_ms, 1_704_067_200_000);
    }

    #[test]
    fn malformed_lines_say_why() {
        let cases = [
            ("", SkipReason::Empty),
            ("1.2.3.4 - -", SkipReason::Truncated),
            (
                r#"1.2.3.4 - - [99/Foo/2000:13:55:36 -0700] "GET / HTTP/1.1" 200 1 "-" "-""#,
                SkipReason::BadDate,
            ),
            (
                r#"1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "\x16\x03" 400 1 "-" "-""#,
                SkipReason::BadRequest,
            ),
            (
                r#"1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" 2000 1 "-" "-""#,
                SkipReason::BadStatus,
            ),
            (
                r#"1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" 200 x "-" "-""#,
                SkipReason::BadBytes,
            ),
            (
                r#"1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" 200 1 "-"#,
                SkipReason::Truncated,
            ),
            ("1.2.3.4 \u{1} - [x]", SkipReason::NotText),
        ];
        for (line, reason) in cases {
            assert_eq!(
                parse_line(line, LogFormat::Combined),
                Err(reason),
                "{line:?}"
            );
        }
        let huge = "x".repeat(MAX_LINE + 10);
        assert_eq!(
            parse_line(&huge, LogFormat::Combined),
            Err(SkipReason::TooLong)
        );
    }

    #[test]
    fn pages_are_directories_extensionless_or_html() {
        let r = PageRule::default();
        assert!(r.is_page("/"));
        assert!(r.is_page("/blog/"));
        assert!(r.is_page("/about"));
        assert!(r.is_page("/x/index.php"));
        assert!(!r.is_page("/css/site.css"));
    }

    proptest::proptest! {
        #[test]
        fn parser_never_panics_on_arbitrary_text(s in "\\PC{0,300}") {
            let _ = parse_line(&s, LogFormat::Combined);
            let _ = parse_line(&s, LogFormat::Common);
        }

        #[test]
        fn parser_never_panics_on_near_valid_lines(
            ip in "[0-9a-f:.]{1,20}",
            date in "[0-9A-Za-z/: +-]{0,30}",
            req in "[ -~]{0,40}",
            status in "[0-9-]{0,5}",
            tail in "[ -~]{0,60}",
        ) {
            let line = format!("{ip} - - [{date}] \"{req}\" {status} {tail}");
            let _ = parse_line(&line, LogFormat::Combined);
        }
    }
}
