//! Command-line definitions (clap derive). Values are parsed straight into validated types (a
//! share in 0..=1, a non-zero count, a cookie name), so a bad flag is refused by clap, naming the
//! flag, and nothing after parsing checks again.

use std::net::{SocketAddr, ToSocketAddrs};
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use pushwise_analyzer::LearnParams;
use pushwise_server::{CookieName, Share};
use pushwise_store::quiet::QuietAfter;
use pushwise_store::rows::{MaxBytes, MaxCount, MinSupport, Probability};

/// pushwise: an HTTP/2 server that learns from its own access logs which assets to push.
///
/// Typical first run: `pushwise demo`. In production: `pushwise serve --root DIR` (or
/// `--upstream URL`), let it record, and inspect what it learned with `pushwise sets list`.
#[derive(Parser, Debug)]
#[command(name = "pushwise", version, about, long_about, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Where recorded requests, settings and learned push sets live: an SQLite file (a path, or
    /// sqlite://PATH), or a PostgreSQL database that a fleet of servers shares
    /// (postgres://USER:PASSWORD@HOST:PORT/DB; libpq parameters such as sslmode=verify-full
    /// pass through; pushwise's own: pool_max=N connections per process, default 8, and
    /// statement_timeout=30s, the default; 0 for none).
    #[arg(
        long,
        global = true,
        env = "PUSHWISE_DB",
        default_value = "pushwise.db"
    )]
    pub db: PathBuf,
    /// Log format on stderr (filter with RUST_LOG, e.g. RUST_LOG=pushwise=debug).
    #[arg(long, global = true, env = "PUSHWISE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve a directory or an upstream app over HTTP/2 + TLS, record requests, push learned sets.
    #[command(
        after_long_help = "Examples:\n  pushwise serve --root ./public --listen 0.0.0.0:443 \\\n      --tls-cert cert.pem --tls-key key.pem --host example.com\n  pushwise serve --upstream http://127.0.0.1:3000 --listen 8443 --metrics-listen 127.0.0.1:9090"
    )]
    Serve(Box<ServeArgs>),
    /// Learn push sets from the recorded requests (one pass with --once, else every --every).
    #[command(
        after_long_help = "Examples:\n  pushwise analyze --once\n  pushwise analyze --rebuild --half-life-hours 72"
    )]
    Analyze(AnalyzeArgs),
    /// Inspect learned push sets, and pin or ban assets.
    #[command(subcommand)]
    #[command(
        after_long_help = "Examples:\n  pushwise sets list\n  pushwise sets show /blog/ --json"
    )]
    Sets(SetsCmd),
    /// Replay recorded traffic to score thresholds: precision, recall, wasted bytes; recommends one.
    #[command(
        after_long_help = "Examples:\n  pushwise tune\n  pushwise tune --objective bytes --plot tune.svg --apply"
    )]
    Tune(TuneArgs),
    /// Show or change the probability threshold, minimum support and set caps (no restart needed).
    #[command(subcommand)]
    #[command(
        after_long_help = "Examples:\n  pushwise threshold show\n  pushwise threshold set 0.4 --min-support 10"
    )]
    Threshold(ThresholdCmd),
    /// Import nginx/Apache access logs (combined or common, plain or .gz, - for stdin).
    #[command(
        after_long_help = "Examples:\n  pushwise import /var/log/nginx/access.log /var/log/nginx/access.log.1.gz\n  zcat old.log.gz | pushwise import --format common -"
    )]
    Import(ImportArgs),
    /// Show what would be pushed (or hinted) for a request, and why.
    #[command(
        after_long_help = "Examples:\n  pushwise plan --page /blog/ --user-agent 'Mozilla/5.0 Chrome/120.0'\n  pushwise plan --batch requests.jsonl"
    )]
    Plan(PlanArgs),
    /// Encode or decode cache digests (cookie / Cache-Digest header values).
    #[command(subcommand)]
    #[command(
        after_long_help = "Examples:\n  pushwise digest encode https://example.com/css/site.css https://example.com/js/app.js\n  pushwise digest decode AfdA --url https://example.com/a.css"
    )]
    Digest(DigestCmd),
    /// One command: serve the example site, drive traffic, learn, and measure the gain.
    #[command(after_long_help = "Examples:\n  pushwise demo\n  pushwise demo --rtt-ms 100 --keep")]
    Demo(DemoArgs),
    /// Write a consistent copy of the database to DEST (safe while a server records into it).
    #[command(
        after_long_help = "Examples:\n  pushwise backup /var/backups/pushwise-$(date +%F).db"
    )]
    Backup(BackupArgs),
}

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// Where to write the copy; must not exist (a backup never overwrites a file).
    pub dest: PathBuf,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Directory to serve as static files.
    #[arg(
        long,
        env = "PUSHWISE_ROOT",
        conflicts_with = "upstream",
        required_unless_present = "upstream"
    )]
    pub root: Option<PathBuf>,
    /// HTTP/1.1 application to proxy instead of a directory, e.g. http://127.0.0.1:3000.
    #[arg(long, env = "PUSHWISE_UPSTREAM")]
    pub upstream: Option<String>,
    /// Address to listen on: HOST:PORT (a name or an address), or a bare PORT for every
    /// interface, as nginx's `listen 8443`. Port 0 picks a free port; the real one is printed.
    #[arg(long, env = "PUSHWISE_LISTEN", default_value = "127.0.0.1:8443", value_parser = listen_addr)]
    pub listen: SocketAddr,
    /// TLS certificate chain (PEM). Without it, a self-signed certificate for localhost is made.
    #[arg(long, env = "PUSHWISE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, env = "PUSHWISE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// The site's host names (repeatable, or comma-separated: example.com,www.example.com;
    /// `*.example.com` covers one label). Only requests for them are pushed to, hinted and
    /// recorded, and absolute Referers on them count as same-site; requests for other names are
    /// served plainly. Default: the names the certificate covers. `*` accepts any name.
    #[arg(long = "host", env = "PUSHWISE_HOST", value_delimiter = ',')]
    pub hosts: Vec<String>,
    /// Serve from a database this process may only read (a replica, a read-only mount): push sets
    /// are loaded from it and reloaded when it changes; nothing is recorded or learned. Without
    /// it, a database that cannot be written stops `serve` at start, with the reason.
    #[arg(long, env = "PUSHWISE_READ_ONLY_DB")]
    pub read_only_db: bool,
    /// Do not record requests (benchmarks, overhead comparison).
    #[arg(long, env = "PUSHWISE_NO_RECORD")]
    pub no_record: bool,
    /// Keep query strings in recorded paths (default: dropped).
    #[arg(long, env = "PUSHWISE_KEEP_QUERY")]
    pub keep_query: bool,
    /// Delete recorded requests older than this many days.
    #[arg(long, env = "PUSHWISE_RETENTION_DAYS", default_value_t = 30)]
    pub retention_days: u32,
    /// Replace the secret salt of client keys this often: days, or a duration like 12h (0:
    /// never). Keys from before a rotation cannot be linked to keys after it. A client active
    /// within the attribution window (--window-secs) around the rotation keeps its old key until
    /// it pauses, so no visit in progress is split.
    #[arg(long, env = "PUSHWISE_SALT_ROTATE_DAYS", default_value = "30", value_parser = days)]
    pub salt_rotate_days: Duration,
    /// Most events per database write (a transaction of multi-row INSERTs).
    #[arg(long, env = "PUSHWISE_BATCH_SIZE", default_value = "2000")]
    pub batch_size: NonZeroUsize,
    /// Longest an event waits before its batch is written: milliseconds, or a duration like 1s.
    /// The writer wakes once per interval (not per event), and earlier when a batch is full or
    /// the queue half full.
    #[arg(long, env = "PUSHWISE_BATCH_INTERVAL_MS", default_value = "200", value_parser = millis)]
    pub batch_interval_ms: Duration,
    /// Events queued for the writer before new ones are dropped (and counted).
    #[arg(long, env = "PUSHWISE_QUEUE_SIZE", default_value = "65536")]
    pub queue_size: NonZeroUsize,
    /// Memory the events waiting to be written may hold, queued or kept while the database
    /// refuses writes: bytes, or with a unit (64MiB, 512KiB). Beyond it new events are dropped
    /// and counted, as with --queue-size; long paths and Referers cannot pin more.
    #[arg(long, env = "PUSHWISE_QUEUE_BYTES", default_value = "64MiB", value_parser = byte_size)]
    pub queue_bytes: usize,
    /// How many nice steps below the serving threads the database writes run (0..=19; Linux).
    /// The writer then uses the CPU the serving threads leave idle instead of competing with them;
    /// 0 runs it at the same priority.
    #[arg(long, env = "PUSHWISE_RECORDER_NICE", default_value_t = 10,
          value_parser = clap::value_parser!(u8).range(0..=19))]
    pub recorder_nice: u8,
    /// Run the analyzer in the background this often: seconds, or a duration like 5m (0 disables).
    #[arg(long, env = "PUSHWISE_ANALYZE_EVERY", default_value = "60", value_parser = seconds)]
    pub analyze_every: Duration,
    /// How often to check the database for a newer push-set generation: milliseconds, or a
    /// duration like 2s.
    #[arg(long, env = "PUSHWISE_RELOAD_EVERY_MS", default_value = "1000", value_parser = millis)]
    pub reload_every_ms: Duration,
    /// push: server push where the client allows it, else 103 Early Hints; hints: hints only; off.
    #[arg(long, env = "PUSHWISE_PUSH_MODE", value_enum, default_value_t = PushModeArg::Push)]
    pub push_mode: PushModeArg,
    /// Share of page views served without push or hints, so learning stays unbiased (0..1).
    #[arg(
        long,
        env = "PUSHWISE_HOLDOUT",
        default_value = "0.05",
        allow_negative_numbers = true
    )]
    pub holdout: Share,
    /// Also send 103 Early Hints on HTTP/1.1 (not supported by the HTTP/1.1 stack yet: Link headers only).
    #[arg(long, env = "PUSHWISE_EARLY_HINTS_H1")]
    pub early_hints_h1: bool,
    /// Name of the cache-digest cookie.
    #[arg(
        long,
        env = "PUSHWISE_DIGEST_COOKIE",
        default_value = "pushwise_digest"
    )]
    pub digest_cookie: CookieName,
    /// Bytes pushed for one page view at most.
    #[arg(long, env = "PUSHWISE_PUSH_BUDGET_BYTES", default_value_t = 512 * 1024)]
    pub push_budget_bytes: u64,
    /// Cache-Control of HTML pages.
    #[arg(long, env = "PUSHWISE_CACHE_CONTROL_PAGES", default_value = "no-cache")]
    pub cache_control_pages: String,
    /// Cache-Control of other files.
    #[arg(
        long,
        env = "PUSHWISE_CACHE_CONTROL_ASSETS",
        default_value = "public, max-age=3600"
    )]
    pub cache_control_assets: String,
    /// Serve Prometheus metrics at http://ADDR/metrics (off by default; ADDR as for --listen).
    #[arg(long, env = "PUSHWISE_METRICS_LISTEN", value_parser = listen_addr)]
    pub metrics_listen: Option<SocketAddr>,
    /// Write one combined-format line per request to FILE (appended; created readable by its
    /// owner only; `-` for standard output). Plain lines, no log prefix: `pushwise import FILE`
    /// reads it back as it is. The client field is the salted client key, never an address.
    #[arg(long, env = "PUSHWISE_ACCESS_LOG", value_name = "FILE")]
    pub access_log: Option<String>,
    /// Threads that serve connections (default: one per core). Each runs its own single-threaded
    /// runtime and serves the connections it is handed from start to finish, which measured 4-5%
    /// more requests per second than sharing one work-stealing pool; 0 serves connections on the
    /// shared pool instead (at most 1024).
    #[arg(long, env = "PUSHWISE_WORKERS", value_parser = clap::value_parser!(u64).range(0..=1024))]
    pub workers: Option<u64>,
    /// Concurrent streams a client may open on one HTTP/2 connection.
    #[arg(long, env = "PUSHWISE_MAX_CONCURRENT_STREAMS", default_value = "128")]
    pub max_concurrent_streams: NonZeroU32,
    /// Close connections idle this long: seconds, or a duration like 2m.
    #[arg(long, env = "PUSHWISE_IDLE_TIMEOUT", default_value = "60", value_parser = positive_seconds)]
    pub idle_timeout: Duration,
    /// On SIGTERM / Ctrl-C, wait at most this long for in-flight requests: seconds, or a
    /// duration like 500ms.
    #[arg(long, env = "PUSHWISE_SHUTDOWN_GRACE", default_value = "10", value_parser = seconds)]
    pub shutdown_grace: Duration,
    /// A proxy or load balancer in front of pushwise whose X-Forwarded-For is believed (CIDR or
    /// address, repeatable). From any other peer, X-Forwarded-For, Forwarded and X-Real-IP are
    /// dropped and the peer's address is the client.
    /// Repeatable, or comma-separated.
    #[arg(long = "trusted-proxy", env = "PUSHWISE_TRUSTED_PROXY", value_delimiter = ',',
          value_parser = cidr)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Views of one page from one network (a /24 of IPv4, a /64 of IPv6) learned from per 10
    /// minutes; more are served and recorded but teach nothing, so one host rotating its
    /// User-Agent cannot pose as a crowd (0: no cap).
    #[arg(long, env = "PUSHWISE_PREFIX_CAP", default_value_t = 10)]
    pub prefix_cap: u32,
    /// Serve files and directories whose name starts with a dot (.git/, .env). Off by default;
    /// /.well-known/ is always served.
    #[arg(long, env = "PUSHWISE_SERVE_DOTFILES")]
    pub serve_dotfiles: bool,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub learn: LearnArgs,
}

/// What one client may cost the server. Each limit is attacked by a test; SECURITY.md has the table.
#[derive(Args, Debug, Clone)]
pub struct LimitArgs {
    /// Open connections at most (TLS or still handshaking); more are closed as soon as accepted.
    #[arg(long, env = "PUSHWISE_MAX_CONNECTIONS", default_value = "4096")]
    pub max_connections: NonZeroUsize,
    /// Streams handled at once across all connections; more are refused with REFUSED_STREAM.
    #[arg(long, env = "PUSHWISE_MAX_STREAMS", default_value = "8192")]
    pub max_streams: NonZeroUsize,
    /// Largest request body, in bytes (streamed to the upstream; a static site reads none).
    #[arg(long, env = "PUSHWISE_MAX_REQUEST_BODY", default_value_t = 8 * 1024 * 1024)]
    pub max_request_body: usize,
    /// How long a request body may take to arrive whole (seconds, or like 1m); then 408 and the
    /// stream is closed.
    #[arg(long, env = "PUSHWISE_REQUEST_BODY_TIMEOUT", default_value = "30", value_parser = positive_seconds)]
    pub request_body_timeout: Duration,
    /// How long a response may wait for a client that stopped reading (seconds, or like 1m);
    /// then its stream is reset.
    #[arg(long, env = "PUSHWISE_SEND_TIMEOUT", default_value = "30", value_parser = positive_seconds)]
    pub send_timeout: Duration,
    /// How long a new connection has to finish its TLS handshake and HTTP/2 preface (seconds).
    #[arg(long, env = "PUSHWISE_HANDSHAKE_TIMEOUT", default_value = "10", value_parser = positive_seconds)]
    pub handshake_timeout: Duration,
    /// HTTP/2 streams a client may reset before they are handled, per connection, before the
    /// connection is closed with ENHANCE_YOUR_CALM (the rapid-reset defence, CVE-2023-44487).
    #[arg(long, env = "PUSHWISE_MAX_PENDING_RESETS", default_value_t = 20)]
    pub max_pending_resets: usize,
    /// Requests in flight to the --upstream at most (so at most this many upstream connections);
    /// more wait, up to --upstream-timeout, then get 503.
    #[arg(long, env = "PUSHWISE_UPSTREAM_MAX_CONNECTIONS", default_value = "256")]
    pub upstream_max_connections: NonZeroUsize,
    /// How long the --upstream has to answer a request (headers), waiting for a connection
    /// included (seconds, or like 1m).
    #[arg(long, env = "PUSHWISE_UPSTREAM_TIMEOUT", default_value = "30", value_parser = positive_seconds)]
    pub upstream_timeout: Duration,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushModeArg {
    Push,
    Hints,
    Off,
}

/// How requests are attributed and how fast old evidence fades.
#[derive(Args, Debug, Clone)]
pub struct LearnArgs {
    /// An asset with no usable Referer belongs to the latest page view on its connection this
    /// recent: seconds, or a duration like 1500ms.
    #[arg(long, env = "PUSHWISE_WINDOW_SECS", default_value = "10", value_parser = positive_seconds)]
    pub window_secs: Duration,
    /// Evidence loses half its weight this often: hours, or a duration like 3d.
    #[arg(long, env = "PUSHWISE_HALF_LIFE_HOURS", default_value = "168", value_parser = positive_hours)]
    pub half_life_hours: Duration,
}

/// A network (`10.0.0.0/8`) or one address (`10.0.0.7`).
fn cidr(s: &str) -> Result<ipnet::IpNet, String> {
    let s = s.trim();
    s.parse::<ipnet::IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("must be an address or a CIDR network like 10.0.0.0/8, got {s:?}"))
}

/// A duration given as a bare number of `unit`s (`30`, `0.5`) or with its unit (`30s`, `500ms`,
/// `5m`, `2h`, `7d`, as humantime reads them).
fn duration(s: &str, unit: Duration, unit_name: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(v) = s.parse::<f64>() {
        return Duration::try_from_secs_f64(v * unit.as_secs_f64()).map_err(|_| {
            format!("must be a number of {unit_name} (0 or more) or a duration like 30s, got {s:?}")
        });
    }
    humantime::parse_duration(s).map_err(|e| {
        format!(
            "must be a number of {unit_name} or a duration like 30s, 500ms or 5m, got {s:?} ({e})"
        )
    })
}

/// Seconds (a bare number) or a duration; 0 allowed.
fn seconds(s: &str) -> Result<Duration, String> {
    duration(s, Duration::from_secs(1), "seconds")
}

/// Milliseconds (a bare number) or a duration; 0 allowed.
fn millis(s: &str) -> Result<Duration, String> {
    duration(s, Duration::from_millis(1), "milliseconds")
}

fn non_zero(d: Duration, s: &str) -> Result<Duration, String> {
    if d.is_zero() {
        Err(format!("must be more than 0, got {s:?}"))
    } else {
        Ok(d)
    }
}

/// Seconds (a bare number) or a duration, more than zero.
fn positive_seconds(s: &str) -> Result<Duration, String> {
    non_zero(seconds(s)?, s)
}

/// Hours (a bare number) or a duration, more than zero.
fn positive_hours(s: &str) -> Result<Duration, String> {
    non_zero(duration(s, Duration::from_secs(3600), "hours")?, s)
}

/// A size in bytes: a bare number, or a number with a unit (KiB, MiB, GiB, or KB, MB, GB as
/// powers of 1000; `k`, `M`, `G` alone are the binary ones, as in nginx).
fn byte_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| {
        format!("'{s}' is not a size: give bytes, or a number with KiB, MiB or GiB")
    })?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        other => return Err(format!("'{other}' is not a size unit: use KiB, MiB or GiB")),
    };
    n.checked_mul(mult)
        .and_then(|b| usize::try_from(b).ok())
        .ok_or_else(|| format!("'{s}' is too large"))
}

/// Days (a bare number) or a duration; 0 allowed.
fn days(s: &str) -> Result<Duration, String> {
    duration(s, Duration::from_secs(86_400), "days")
}

/// `HOST:PORT` (an address or a name, resolved now: the first address it has), `[V6]:PORT`, or
/// a bare `PORT` meaning every interface.
fn listen_addr(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from(([0, 0, 0, 0], port)));
    }
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    match s.to_socket_addrs() {
        Ok(mut addrs) => addrs
            .next()
            .ok_or_else(|| format!("{s:?} resolves to no address")),
        Err(e) => Err(format!(
            "must be HOST:PORT (like 127.0.0.1:8443 or localhost:8443) or a bare PORT, got {s:?} ({e})"
        )),
    }
}

impl LearnArgs {
    /// The learner's parameters; both values are positive by their parsers.
    pub fn params(&self) -> LearnParams {
        LearnParams {
            window_ms: i64::try_from(self.window_secs.as_millis())
                .unwrap_or(i64::MAX)
                .max(1),
            half_life_ms: i64::try_from(self.half_life_hours.as_millis())
                .unwrap_or(i64::MAX)
                .max(1),
            ..Default::default()
        }
    }
}

#[derive(Args, Debug)]
pub struct AnalyzeArgs {
    /// Run one pass and exit.
    #[arg(long)]
    pub once: bool,
    /// Forget the learned counts and count every retained event again, then exit. Needed after
    /// changing --half-life-hours or --window-secs (a pass refuses counts built with other values);
    /// takes the time of reading every event once, in bounded memory, with a progress bar.
    #[arg(long, conflicts_with = "once")]
    pub rebuild: bool,
    /// Time between passes when not --once: seconds, or a duration like 5m.
    #[arg(long, default_value = "60", value_parser = positive_seconds)]
    pub every: Duration,
    /// Print the pass summary as JSON (events read, page views counted, watermark, duration...).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub learn: LearnArgs,
}

#[derive(Subcommand, Debug)]
pub enum SetsCmd {
    /// One row per page: browser views, the page-wide set and each context's set, bytes.
    #[command(
        after_long_help = "Examples:\n  pushwise sets list\n  pushwise sets list --json | jq '.[0]'"
    )]
    List {
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Every candidate asset of a page, in or out of its set, and why; its pins and bans.
    ///
    /// An asset seen with the page but less likely than a tenth of the page's threshold is not
    /// listed (the noise of a large site); pinned and banned assets always are.
    #[command(
        after_long_help = "Examples:\n  pushwise sets show /\n  pushwise sets show section:/blog/ --json"
    )]
    Show {
        /// The page path, e.g. /blog/ (or a section key, section:/blog/).
        page: String,
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Pins and bans in force, for every page or one.
    #[command(after_long_help = "Examples:\n  pushwise sets pins\n  pushwise sets pins / --json")]
    Pins {
        /// Only this page's.
        page: Option<String>,
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Always push ASSET with PAGE (takes effect at the next analyzer pass).
    #[command(after_long_help = "Example:\n  pushwise sets pin / /css/site.css")]
    Pin {
        /// The page path, e.g. /.
        page: String,
        /// The asset's path on this site, e.g. /css/site.css (never another origin's URL).
        asset: String,
    },
    /// Never push ASSET with PAGE (takes effect at the next analyzer pass).
    #[command(after_long_help = "Example:\n  pushwise sets ban / /img/huge-hero.jpg")]
    Ban {
        /// The page path, e.g. /.
        page: String,
        /// The asset's path on this site, e.g. /img/hero.jpg.
        asset: String,
    },
    /// Remove a pin or ban.
    #[command(after_long_help = "Example:\n  pushwise sets unpin / /css/site.css")]
    Unpin {
        /// The page path, e.g. /.
        page: String,
        /// The asset whose pin or ban to remove.
        asset: String,
    },
}

#[derive(Args, Debug)]
pub struct TuneArgs {
    /// Print the whole report (every threshold scored, the recommendation) as JSON.
    #[arg(long)]
    pub json: bool,
    /// Write an SVG chart of precision, recall and waste against the threshold.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// How to choose the recommendation.
    #[arg(long, value_enum, default_value_t = ObjectiveArg::F1)]
    pub objective: ObjectiveArg,
    /// Share of page views (oldest first) to learn on; the rest is scored.
    #[arg(long, default_value_t = 0.7)]
    pub train_share: f64,
    /// Replay only the newest this many recorded events. Memory holds about 125,000 of them at a
    /// time (a larger window is read once per bucket of clients) plus the window's page views.
    #[arg(long, default_value_t = pushwise_analyzer::tune::WINDOW_EVENTS,
          value_parser = clap::value_parser!(i64).range(1..))]
    pub window_events: i64,
    /// Store the recommendation (threshold, minimum support, count and byte caps) as the global
    /// setting.
    #[arg(long)]
    pub apply: bool,
    #[command(flatten)]
    pub learn: LearnArgs,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum ObjectiveArg {
    /// Best F1 of precision and recall.
    F1,
    /// Most needed bytes pushed per wasted byte (recall at least 0.5).
    Bytes,
}

#[derive(Subcommand, Debug)]
pub enum ThresholdCmd {
    /// Set the probability threshold (0..1), globally or for one page.
    #[command(
        after_long_help = "Examples:\n  pushwise threshold set 0.4 --min-support 10\n  pushwise threshold set 0.8 --page /slides/\n  pushwise threshold set 0.3 --quiet-after 1"
    )]
    Set {
        /// The least P(asset | page) an asset needs to be pushed, between 0 and 1.
        value: Probability,
        /// Set it for this page only (a path like /blog/); without it, globally.
        #[arg(long)]
        page: Option<String>,
        /// Also set the minimum number of page views backing an estimate (and a page or section
        /// needs this many browser views before it uses its own set instead of backing off).
        #[arg(long)]
        min_support: Option<MinSupport>,
        /// Also set the most assets one push set may hold (default 16).
        #[arg(long)]
        max_count: Option<MaxCount>,
        /// Also set the most bytes one push set may hold, by typical response size (default 524288).
        #[arg(long)]
        max_bytes: Option<MaxBytes>,
        /// Also set the quiet-client rule (global only): a browser offered a set on N page views
        /// that took none of it gets no push or hints until it takes one (it expires after a day
        /// idle). 0 turns it off (the default). Servers apply it from their next reload.
        #[arg(long, value_name = "N", conflicts_with = "page")]
        quiet_after: Option<QuietAfter>,
    },
    /// Show the thresholds in force.
    #[command(
        after_long_help = "Examples:\n  pushwise threshold show\n  pushwise threshold show --json"
    )]
    Show {
        /// Print JSON (the built-in defaults and every setting) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Remove a page override (or, without --page, the global setting).
    #[command(
        after_long_help = "Examples:\n  pushwise threshold clear --page /slides/\n  pushwise threshold clear"
    )]
    Clear {
        /// The page whose override to remove; without it, the global setting goes.
        #[arg(long)]
        page: Option<String>,
    },
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// Log files (plain or .gz); - reads standard input.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// The log's line format: combined (nginx's and Apache's default, with Referer and
    /// User-Agent) or common (without them).
    #[arg(long, value_enum, default_value_t = FormatArg::Combined)]
    pub format: FormatArg,
    /// The site's own host names (repeatable): Referers on them are same-site, others external.
    #[arg(long = "host")]
    pub hosts: Vec<String>,
    /// Keep query strings in paths.
    #[arg(long)]
    pub keep_query: bool,
    /// Extensions that are pages (besides paths ending in / or without extension).
    #[arg(long, value_delimiter = ',', default_value = "html,htm,php")]
    pub page_ext: Vec<String>,
    /// Views of one page from one network (/24, /64) learned from per 10 minutes of the log's
    /// time, as `serve --prefix-cap` (0: no cap). Lines whose client is not an address are not
    /// capped.
    #[arg(long, env = "PUSHWISE_PREFIX_CAP", default_value_t = 10)]
    pub prefix_cap: u32,
    /// Print one JSON report per file (lines, imported, skipped by reason) instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum FormatArg {
    Combined,
    Common,
}

#[derive(Args, Debug)]
pub struct PlanArgs {
    /// The page path requested (or give --batch FILE for many requests).
    #[arg(long)]
    pub page: Option<String>,
    /// The request's User-Agent (default: none, which plans as a non-browser).
    #[arg(long)]
    pub user_agent: Option<String>,
    /// The Referer the request carries (relative, or absolute on one of --host).
    #[arg(long)]
    pub referer: Option<String>,
    /// The site's host names, so absolute Referers on them are same-site.
    #[arg(long = "host")]
    pub hosts: Vec<String>,
    /// Read JSON lines {"page", "user_agent", "referer"} from FILE (- for stdin); write one
    /// {"push": [...], "context": ..., "level": ..., "quiet": ...} per line (level: context,
    /// page-wide, section-context, section, not-browser or none). Lines may also name a "client"
    /// (any string), what the view then "fetched" (a list of paths) and its time "ts_ms" (Unix
    /// ms): the quiet-client rule (`threshold set --quiet-after`) is replayed over them in order,
    /// as the server applies it.
    #[arg(long, conflicts_with = "page")]
    pub batch: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum DigestCmd {
    /// Encode absolute URLs into a digest value (none gives the empty digest).
    #[command(
        after_long_help = "Examples:\n  pushwise digest encode https://example.com/css/site.css https://example.com/js/app.js\n  pushwise digest encode -p 8"
    )]
    Encode {
        /// log2 of the inverse false-positive rate (7 = 1/128).
        #[arg(short = 'p', long = "probability-bits", alias = "p", default_value_t = 7,
              value_parser = clap::value_parser!(u8).range(1..=31))]
        p: u8,
        /// Absolute URLs (https://host/path) the client has; none gives the empty digest.
        urls: Vec<String>,
        /// Print JSON (the value, its parameters, the number of URLs) instead of the value alone.
        #[arg(long)]
        json: bool,
    },
    /// Decode a digest value; with --url, test whether each URL is in it.
    #[command(
        after_long_help = "Examples:\n  pushwise digest decode AfdA\n  pushwise digest decode AfdA --url https://example.com/a.css"
    )]
    Decode {
        /// The digest, as a cookie or Cache-Digest header carries it (base64url).
        value: String,
        /// An absolute URL (https://host/path) to test for (repeatable).
        #[arg(long = "url")]
        urls: Vec<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Emulated round-trip time, milliseconds.
    #[arg(long, default_value_t = 50)]
    pub rtt_ms: u64,
    /// Fewer visits and page loads (for tests).
    #[arg(long)]
    pub fast: bool,
    /// Directory of the example site.
    #[arg(long, default_value = "examples/site")]
    pub site: PathBuf,
    /// Print the results as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// The global --db, when given: the demo writes its learned database there (it must not
    /// exist) instead of its temporary directory. Set by `main`, not parsed here.
    #[arg(skip)]
    pub db: Option<PathBuf>,
    /// Keep the demo's temporary directory (its database, logs and certificate) and print
    /// where it is; by default it is removed at the end.
    #[arg(long)]
    pub keep: bool,
}

/// Parses the command line and the `PUSHWISE_*` environment into validated settings, or exits
/// with a usage error (status 2) that names the flag or the variable at fault.
pub fn parse() -> Cli {
    let cmd = match with_environment(Cli::command(), &|k| std::env::var_os(k)) {
        Ok(c) => c,
        Err(errors) => {
            for e in errors {
                eprintln!("error: {e}");
            }
            std::process::exit(2);
        }
    };
    let matches = cmd.get_matches();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let Command::Demo(d) = &mut cli.command {
        // The demo honours --db only when given: its default is a temporary directory.
        let given = [Some(&matches), matches.subcommand_matches("demo")]
            .into_iter()
            .flatten()
            .any(|m| {
                matches!(
                    m.value_source("db"),
                    Some(
                        clap::parser::ValueSource::CommandLine
                            | clap::parser::ValueSource::EnvVariable
                    )
                )
            });
        d.db = given.then(|| cli.global.db.clone());
    }
    cli
}

/// Old names of environment variables, still read when the new one is unset.
const ENV_ALIASES: &[(&str, &str)] = &[
    ("PUSHWISE_HOST", "PUSHWISE_HOSTS"),
    ("PUSHWISE_TRUSTED_PROXY", "PUSHWISE_TRUSTED_PROXIES"),
];

/// Applies the environment rules clap does not have, to every argument with an `env`, in every
/// subcommand: an empty value counts as unset (as shells and container platforms write it); a
/// flag's variable takes 1/0, true/false, yes/no, on/off; an old variable name is still read;
/// and a value the flag's own parser refuses is reported naming the variable, not a flag the
/// user never typed.
fn with_environment(
    mut cmd: clap::Command,
    var: &dyn Fn(&str) -> Option<std::ffi::OsString>,
) -> Result<clap::Command, Vec<String>> {
    let mut errors = Vec::new();
    let ids: Vec<(clap::Id, String)> = cmd
        .get_arguments()
        .filter_map(|a| {
            let env = a.get_env()?.to_str()?.to_string();
            Some((a.get_id().clone(), env))
        })
        .collect();
    for (id, env) in ids {
        let name = ENV_ALIASES
            .iter()
            .find(|(new, old)| *new == env && var(new).is_none() && var(old).is_some())
            .map_or(env.clone(), |(_, old)| (*old).to_string());
        let value = var(&name);
        let empty = value.as_ref().is_some_and(|v| v.is_empty());
        cmd = cmd.mut_arg(&id, |a| {
            let a = if matches!(a.get_action(), ArgAction::SetTrue) {
                a.value_parser(clap::builder::BoolishValueParser::new())
            } else {
                a
            };
            if empty {
                a.env(None)
            } else {
                a.env(name.clone())
            }
        });
        let Some(value) = value.filter(|v| !v.is_empty()) else {
            continue;
        };
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_id() == &id)
            .expect("the argument just changed");
        let long = arg.get_long().map_or(id.to_string(), |l| format!("--{l}"));
        let refused = if matches!(arg.get_action(), ArgAction::SetTrue) {
            clap::builder::TypedValueParser::parse_ref(
                &clap::builder::BoolishValueParser::new(),
                &cmd,
                None,
                &value,
            )
            .err()
            .map(|_| "expected 1/0, true/false, yes/no or on/off".to_string())
        } else {
            // The flag's own parser, as if the value had been typed: `--flag=VALUE`.
            let mut typed = std::ffi::OsString::from(format!("{long}="));
            typed.push(&value);
            clap::Command::new("pushwise")
                .no_binary_name(true)
                .arg(arg.clone().env(None).required(false))
                .try_get_matches_from([typed])
                .err()
                .map(|e| clap_reason(&e))
        };
        if let Some(why) = refused {
            errors.push(format!(
                "environment variable {name}={:?} (for {long}): {why}",
                value.to_string_lossy()
            ));
        }
    }
    let subs: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    for s in subs {
        let sub = cmd
            .find_subcommand(&s)
            .expect("a listed subcommand")
            .clone();
        match with_environment(sub, var) {
            Ok(sub) => cmd = cmd.mut_subcommand(&s, |_| sub),
            Err(e) => errors.extend(e),
        }
    }
    if errors.is_empty() {
        Ok(cmd)
    } else {
        Err(errors)
    }
}

/// The reason in a clap value error, without clap's "error:" prefix and usage hints.
fn clap_reason(e: &clap::Error) -> String {
    if let Some(src) = std::error::Error::source(e) {
        return src.to_string();
    }
    let text = e.to_string();
    text.lines()
        .next()
        .unwrap_or("invalid value")
        .trim_start_matches("error: ")
        .to_string()
}

pub struct LogGuard;

/// Colour codes only for a person at a terminal: never into a file or a pipe (where they are
/// garbage), and never when `NO_COLOR` is set to anything (<https://no-color.org>).
fn colour_on_stderr(is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    is_terminal && no_color.is_none_or(|v| v.is_empty())
}

pub fn init_tracing(g: &Global) -> LogGuard {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=error"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour_on_stderr(
            std::io::IsTerminal::is_terminal(&std::io::stderr()),
            std::env::var_os("NO_COLOR").as_deref(),
        ))
        .with_writer(std::io::stderr);
    match g.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    LogGuard
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::ffi::OsString;

    use super::*;

    fn all_commands(cmd: &clap::Command) -> Vec<(String, clap::Command)> {
        let mut out = vec![(cmd.get_name().to_string(), cmd.clone())];
        for s in cmd.get_subcommands() {
            for (name, c) in all_commands(s) {
                out.push((format!("{} {name}", cmd.get_name()), c));
            }
        }
        out
    }

    #[test]
    fn byte_sizes_take_units_and_refuse_nonsense() {
        assert_eq!(byte_size("4096"), Ok(4096));
        assert_eq!(byte_size("64MiB"), Ok(64 << 20));
        assert_eq!(byte_size("512 KiB"), Ok(512 << 10));
        assert_eq!(byte_size("1G"), Ok(1 << 30));
        assert_eq!(byte_size("2MB"), Ok(2_000_000));
        assert!(byte_size("").is_err());
        assert!(byte_size("-1").is_err());
        assert!(byte_size("1.5MiB").is_err());
        assert!(
            byte_size("3 parsecs")
                .unwrap_err()
                .contains("not a size unit")
        );
        assert!(byte_size("99999999999999999999GiB").is_err());
        assert!(
            byte_size("18446744073709551615GiB")
                .unwrap_err()
                .contains("too large")
        );
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_command_and_argument_explains_itself_and_every_command_has_an_example() {
        let mut cmd = Cli::command();
        cmd.build();
        for (name, c) in all_commands(&cmd) {
            if name.split(' ').any(|w| w == "help") {
                continue;
            }
            assert!(c.get_about().is_some(), "`{name}` has no description");
            if c.get_subcommands().next().is_none() && name != "pushwise" {
                let ex = c
                    .get_after_long_help()
                    .map(|h| h.to_string())
                    .unwrap_or_default();
                assert!(
                    ex.starts_with("Example") && ex.contains("pushwise "),
                    "`{name}`'s long help ends with no example"
                );
            }
            for a in c.get_arguments() {
                if matches!(a.get_id().as_str(), "help" | "version") {
                    continue;
                }
                assert!(
                    a.get_help()
                        .is_some_and(|h| !h.to_string().trim().is_empty()),
                    "`{name}`: argument {} has no help text",
                    a.get_id()
                );
            }
        }
    }

    #[test]
    fn every_environment_variable_is_pushwise_and_the_flag_name() {
        let mut cmd = Cli::command();
        cmd.build();
        let serve = cmd.find_subcommand("serve").unwrap();
        let mut checked = 0;
        for a in serve.get_arguments() {
            let Some(long) = a.get_long() else { continue };
            if matches!(long, "help" | "version") {
                continue;
            }
            let want = format!("PUSHWISE_{}", long.to_uppercase().replace('-', "_"));
            assert_eq!(
                a.get_env().and_then(|e| e.to_str()),
                Some(want.as_str()),
                "serve --{long} should read {want}"
            );
            checked += 1;
        }
        assert!(checked > 30, "{checked}");
    }

    fn parse_with(env: &[(&str, &str)], args: &[&str]) -> Result<Cli, Vec<String>> {
        let vars: HashMap<String, OsString> = env
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        let cmd = with_environment(Cli::command(), &|k| vars.get(k).cloned())?;
        // The real process environment is not the one under test: clap reads env vars itself,
        // so the test only uses variables no process sets and checks what clap saw by name.
        let m = cmd
            .try_get_matches_from(std::iter::once("pushwise").chain(args.iter().copied()))
            .map_err(|e| vec![e.to_string()])?;
        Cli::from_arg_matches(&m).map_err(|e| vec![e.to_string()])
    }

    #[test]
    fn environment_values_are_refused_naming_the_variable() {
        let e = parse_with(
            &[("PUSHWISE_NO_RECORD", "maybe")],
            &["serve", "--root", "."],
        )
        .err()
        .unwrap();
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].contains("PUSHWISE_NO_RECORD=\"maybe\"") && e[0].contains("yes/no"),
            "{e:?}"
        );
        let e = parse_with(&[("PUSHWISE_HOLDOUT", "-0.1")], &["serve", "--root", "."])
            .err()
            .unwrap();
        assert!(
            e[0].contains("PUSHWISE_HOLDOUT") && e[0].contains("between 0 and 1"),
            "{e:?}"
        );
        let e = parse_with(
            &[("PUSHWISE_IDLE_TIMEOUT", "soon")],
            &["serve", "--root", "."],
        )
        .err()
        .unwrap();
        assert!(
            e[0].contains("PUSHWISE_IDLE_TIMEOUT") && e[0].contains("--idle-timeout"),
            "{e:?}"
        );
    }

    #[test]
    fn boolean_environment_values_take_what_shells_write_and_empty_is_unset() {
        for (v, want) in [
            ("1", true),
            ("yes", true),
            ("on", true),
            ("true", true),
            ("0", false),
            ("no", false),
            ("off", false),
        ] {
            // Checked through the prepared definition: the variable's value parser accepts it.
            let cmd = with_environment(Cli::command(), &|k| {
                (k == "PUSHWISE_NO_RECORD").then(|| OsString::from(v))
            })
            .unwrap();
            let serve = cmd.find_subcommand("serve").unwrap();
            let arg = serve
                .get_arguments()
                .find(|a| a.get_long() == Some("no-record"))
                .unwrap();
            let parsed = clap::builder::TypedValueParser::parse_ref(
                &clap::builder::BoolishValueParser::new(),
                serve,
                Some(arg),
                std::ffi::OsStr::new(v),
            )
            .unwrap();
            assert_eq!(parsed, want, "{v}");
        }
        // Empty: as if unset (the default applies, no error).
        let cmd = with_environment(Cli::command(), &|k| {
            (k == "PUSHWISE_NO_RECORD" || k == "PUSHWISE_LISTEN").then(OsString::new)
        })
        .unwrap();
        let serve = cmd.find_subcommand("serve").unwrap();
        for long in ["no-record", "listen"] {
            let arg = serve
                .get_arguments()
                .find(|a| a.get_long() == Some(long))
                .unwrap();
            assert!(arg.get_env().is_none(), "empty {long} variable still read");
        }
    }

    #[test]
    fn an_old_variable_name_is_read_when_the_new_one_is_unset() {
        let cmd = with_environment(Cli::command(), &|k| {
            (k == "PUSHWISE_HOSTS").then(|| OsString::from("a.example,b.example"))
        })
        .unwrap();
        let serve = cmd.find_subcommand("serve").unwrap();
        let arg = serve
            .get_arguments()
            .find(|a| a.get_long() == Some("host"))
            .unwrap();
        assert_eq!(arg.get_env().unwrap(), "PUSHWISE_HOSTS");
    }

    #[test]
    fn durations_take_a_bare_number_in_the_flags_unit_or_a_unit_of_their_own() {
        assert_eq!(seconds("30"), Ok(Duration::from_secs(30)));
        assert_eq!(seconds("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(seconds("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(seconds("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(seconds("0"), Ok(Duration::ZERO));
        assert_eq!(millis("200"), Ok(Duration::from_millis(200)));
        assert_eq!(millis("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(positive_hours("168"), Ok(Duration::from_secs(168 * 3600)));
        assert_eq!(positive_hours("3d"), Ok(Duration::from_secs(3 * 86_400)));
        for bad in ["-1", "soon", "", "1 fortnight", "inf", "NaN"] {
            assert!(seconds(bad).is_err(), "{bad:?}");
        }
        assert!(positive_seconds("0").unwrap_err().contains("more than 0"));
    }

    #[test]
    fn listen_takes_a_bare_port_a_host_name_or_an_address() {
        assert_eq!(
            listen_addr("8443").unwrap(),
            "0.0.0.0:8443".parse().unwrap()
        );
        assert_eq!(
            listen_addr("127.0.0.1:0").unwrap(),
            "127.0.0.1:0".parse().unwrap()
        );
        assert_eq!(
            listen_addr("[::1]:8443").unwrap(),
            "[::1]:8443".parse().unwrap()
        );
        assert!(listen_addr("localhost:8443").unwrap().ip().is_loopback());
        for bad in ["", "localhost", "127.0.0.1:99999", "no such host:1"] {
            let e = listen_addr(bad).unwrap_err();
            assert!(e.contains("HOST:PORT"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn colour_only_at_a_terminal_and_never_with_no_color() {
        use std::ffi::OsStr;
        assert!(colour_on_stderr(true, None));
        assert!(colour_on_stderr(true, Some(OsStr::new(""))));
        assert!(!colour_on_stderr(true, Some(OsStr::new("1"))));
        assert!(!colour_on_stderr(false, None));
    }
}
