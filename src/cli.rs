//! Command-line definitions (clap derive). Values are parsed straight into validated types (a
//! share in 0..=1, a non-zero count, a cookie name), so a bad flag is refused by clap, naming the
//! flag, and nothing after parsing checks again.

use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use pushwise_analyzer::LearnParams;
use pushwise_server::{CookieName, Share};
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
    /// SQLite database holding recorded requests, settings and learned push sets.
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
    Serve(Box<ServeArgs>),
    /// Learn push sets from the recorded requests (one pass with --once, else every --every).
    Analyze(AnalyzeArgs),
    /// Inspect learned push sets, and pin or ban assets.
    #[command(subcommand)]
    Sets(SetsCmd),
    /// Replay recorded traffic to score thresholds: precision, recall, wasted bytes; recommends one.
    Tune(TuneArgs),
    /// Show or change the probability threshold, minimum support and set caps (no restart needed).
    #[command(subcommand)]
    Threshold(ThresholdCmd),
    /// Import nginx/Apache access logs (combined or common, plain or .gz, - for stdin).
    Import(ImportArgs),
    /// Show what would be pushed (or hinted) for a request, and why.
    Plan(PlanArgs),
    /// Encode or decode cache digests (cookie / Cache-Digest header values).
    #[command(subcommand)]
    Digest(DigestCmd),
    /// One command: serve the example site, drive traffic, learn, and measure the gain.
    Demo(DemoArgs),
    /// Write a consistent copy of the database to DEST (safe while a server records into it).
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
    /// Address to listen on (port 0 picks a free port; the real one is printed).
    #[arg(long, env = "PUSHWISE_LISTEN", default_value = "127.0.0.1:8443")]
    pub listen: SocketAddr,
    /// TLS certificate chain (PEM). Without it, a self-signed certificate for localhost is made.
    #[arg(long, env = "PUSHWISE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, env = "PUSHWISE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// The site's host names (repeatable), so absolute Referers on any of them count as same-site.
    #[arg(long = "host", env = "PUSHWISE_HOSTS", value_delimiter = ',')]
    pub hosts: Vec<String>,
    /// Do not record requests (benchmarks, overhead comparison).
    #[arg(long, env = "PUSHWISE_NO_RECORD")]
    pub no_record: bool,
    /// Keep query strings in recorded paths (default: dropped).
    #[arg(long, env = "PUSHWISE_KEEP_QUERY")]
    pub keep_query: bool,
    /// Delete recorded requests older than this many days.
    #[arg(long, env = "PUSHWISE_RETENTION_DAYS", default_value_t = 30)]
    pub retention_days: u32,
    /// Most events per database write (a transaction of multi-row INSERTs).
    #[arg(long, env = "PUSHWISE_BATCH_SIZE", default_value = "2000")]
    pub batch_size: NonZeroUsize,
    /// Longest an event waits before its batch is written, in milliseconds. The writer wakes
    /// once per interval (not per event), and earlier when a batch is full or the queue half full.
    #[arg(long, env = "PUSHWISE_BATCH_INTERVAL_MS", default_value_t = 200)]
    pub batch_interval_ms: u64,
    /// Events queued for the writer before new ones are dropped (and counted).
    #[arg(long, env = "PUSHWISE_QUEUE_SIZE", default_value = "65536")]
    pub queue_size: NonZeroUsize,
    /// How many nice steps below the serving threads the database writes run (0..=19; Linux).
    /// The writer then uses the CPU the serving threads leave idle instead of competing with them;
    /// 0 runs it at the same priority.
    #[arg(long, env = "PUSHWISE_RECORDER_NICE", default_value_t = 10,
          value_parser = clap::value_parser!(u8).range(0..=19))]
    pub recorder_nice: u8,
    /// Run the analyzer in the background every this many seconds (0 disables).
    #[arg(long, env = "PUSHWISE_ANALYZE_EVERY", default_value_t = 60)]
    pub analyze_every: u64,
    /// How often to check the database for a newer push-set generation, in milliseconds.
    #[arg(long, env = "PUSHWISE_RELOAD_EVERY_MS", default_value_t = 1000)]
    pub reload_every_ms: u64,
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
    /// Serve Prometheus metrics at http://ADDR/metrics (off by default).
    #[arg(long, env = "PUSHWISE_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Log one combined-format line per request (re-importable with `pushwise import`).
    #[arg(long, env = "PUSHWISE_ACCESS_LOG")]
    pub access_log: bool,
    /// Concurrent streams a client may open on one HTTP/2 connection.
    #[arg(long, env = "PUSHWISE_MAX_CONCURRENT_STREAMS", default_value = "128")]
    pub max_concurrent_streams: NonZeroU32,
    /// Close connections idle this many seconds.
    #[arg(long, env = "PUSHWISE_IDLE_TIMEOUT", default_value_t = 60)]
    pub idle_timeout: u64,
    /// On SIGTERM / Ctrl-C, wait at most this many seconds for in-flight requests.
    #[arg(long, env = "PUSHWISE_SHUTDOWN_GRACE", default_value_t = 10)]
    pub shutdown_grace: u64,
    /// A proxy or load balancer in front of pushwise whose X-Forwarded-For is believed (CIDR or
    /// address, repeatable). From any other peer, X-Forwarded-For, Forwarded and X-Real-IP are
    /// dropped and the peer's address is the client.
    #[arg(long = "trusted-proxy", env = "PUSHWISE_TRUSTED_PROXIES", value_delimiter = ',',
          value_parser = cidr)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
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
    /// Seconds a request body may take to arrive whole; then 408 and the stream is closed.
    #[arg(long, env = "PUSHWISE_REQUEST_BODY_TIMEOUT", default_value = "30", value_parser = positive)]
    pub request_body_timeout: f64,
    /// Seconds a response may wait for a client that stopped reading; then its stream is reset.
    #[arg(long, env = "PUSHWISE_SEND_TIMEOUT", default_value = "30", value_parser = positive)]
    pub send_timeout: f64,
    /// Seconds a new connection has to finish its TLS handshake and HTTP/2 preface.
    #[arg(long, env = "PUSHWISE_HANDSHAKE_TIMEOUT", default_value = "10", value_parser = positive)]
    pub handshake_timeout: f64,
    /// HTTP/2 streams a client may reset before they are handled, per connection, before the
    /// connection is closed with ENHANCE_YOUR_CALM (the rapid-reset defence, CVE-2023-44487).
    #[arg(long, env = "PUSHWISE_MAX_PENDING_RESETS", default_value_t = 20)]
    pub max_pending_resets: usize,
    /// Requests in flight to the --upstream at most (so at most this many upstream connections);
    /// more wait, up to --upstream-timeout, then get 503.
    #[arg(long, env = "PUSHWISE_UPSTREAM_MAX_CONNECTIONS", default_value = "256")]
    pub upstream_max_connections: NonZeroUsize,
    /// Seconds the --upstream has to answer a request (headers), waiting for a connection included.
    #[arg(long, env = "PUSHWISE_UPSTREAM_TIMEOUT", default_value = "30", value_parser = positive)]
    pub upstream_timeout: f64,
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
    /// An asset with no usable Referer belongs to the latest page view on its connection this recent (seconds).
    #[arg(long, env = "PUSHWISE_WINDOW_SECS", default_value = "10", value_parser = positive)]
    pub window_secs: f64,
    /// Evidence loses half its weight every this many hours.
    #[arg(long, env = "PUSHWISE_HALF_LIFE_HOURS", default_value = "168", value_parser = positive)]
    pub half_life_hours: f64,
}

/// A network (`10.0.0.0/8`) or one address (`10.0.0.7`).
fn cidr(s: &str) -> Result<ipnet::IpNet, String> {
    let s = s.trim();
    s.parse::<ipnet::IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("must be an address or a CIDR network like 10.0.0.0/8, got {s:?}"))
}

/// A number greater than zero (and finite).
fn positive(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        _ => Err(format!("must be a number greater than 0, got {s:?}")),
    }
}

impl LearnArgs {
    /// The learner's parameters; both values are positive by their parsers.
    pub fn params(&self) -> LearnParams {
        LearnParams {
            window_ms: ((self.window_secs * 1000.0) as i64).max(1),
            half_life_ms: ((self.half_life_hours * 3_600_000.0) as i64).max(1),
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
    /// Seconds between passes when not --once.
    #[arg(long, default_value_t = 60)]
    pub every: u64,
    /// Print the pass summary as JSON (events read, page views counted, watermark, duration...).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub learn: LearnArgs,
}

#[derive(Subcommand, Debug)]
pub enum SetsCmd {
    /// One row per page: views, set size, bytes, generation.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Every candidate asset of a page, in or out of its set, and why.
    Show {
        /// The page path, e.g. /blog/.
        page: String,
        #[arg(long)]
        json: bool,
    },
    /// Always push ASSET with PAGE (takes effect at the next analyzer pass).
    Pin { page: String, asset: String },
    /// Never push ASSET with PAGE (takes effect at the next analyzer pass).
    Ban { page: String, asset: String },
    /// Remove a pin or ban.
    Unpin { page: String, asset: String },
}

#[derive(Args, Debug)]
pub struct TuneArgs {
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
    /// Replay only the newest this many recorded events (memory grows with it).
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
    Set {
        value: Probability,
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
    },
    /// Show the thresholds in force.
    Show {
        #[arg(long)]
        json: bool,
    },
    /// Remove a page override (or, without --page, the global setting).
    Clear {
        #[arg(long)]
        page: Option<String>,
    },
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// Log files (plain or .gz); - reads standard input.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
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
    /// The page path requested.
    #[arg(long, required_unless_present = "batch")]
    pub page: Option<String>,
    #[arg(long)]
    pub user_agent: Option<String>,
    /// The Referer the request carries (relative, or absolute on one of --host).
    #[arg(long)]
    pub referer: Option<String>,
    /// The site's host names, so absolute Referers on them are same-site.
    #[arg(long = "host")]
    pub hosts: Vec<String>,
    /// Read JSON lines {"page", "user_agent", "referer"} from FILE (- for stdin); write one
    /// {"push": [...], "context": ..., "level": ...} per line (level: context, page-wide,
    /// section-context, section, not-browser or none).
    #[arg(long, conflicts_with = "page")]
    pub batch: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum DigestCmd {
    /// Encode absolute URLs into a digest value.
    Encode {
        /// log2 of the inverse false-positive rate (7 = 1/128).
        #[arg(long = "p", default_value_t = 7, value_parser = clap::value_parser!(u8).range(1..=31))]
        p: u8,
        /// Absolute URLs (https://host/path) the client has; none gives the empty digest.
        urls: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Decode a digest value; with --url, test whether each URL is in it.
    Decode {
        value: String,
        #[arg(long = "url")]
        urls: Vec<String>,
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
    #[arg(long)]
    pub json: bool,
}

pub struct LogGuard;

pub fn init_tracing(g: &Global) -> LogGuard {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=error"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match g.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    LogGuard
}
