//! Shared helpers for the end-to-end tests: start the real `pushwise` binary on 127.0.0.1:0 with a
//! fresh database, talk to it with real clients (nghttp, curl, h2load), stop it with SIGTERM.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BROWSER_UA: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_pushwise")
}

pub fn site() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/site")
}

/// A running server; killed on drop if not stopped.
pub struct Server {
    pub child: Child,
    pub port: u16,
    pub db: PathBuf,
    pub dir: tempfile::TempDir,
    stderr_log: PathBuf,
}

impl Server {
    /// Starts `pushwise serve` with `args` (plus `--listen 127.0.0.1:0` and a temp `--db`).
    pub fn start(args: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("pushwise.db");
        Self::start_with_db(args, dir, db)
    }

    pub fn start_with_db(args: &[&str], dir: tempfile::TempDir, db: PathBuf) -> Server {
        let stderr_log = dir.path().join("stderr.log");
        let mut child = Command::new(bin())
            .arg("--db")
            .arg(&db)
            .arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_log).unwrap())
            .spawn()
            .expect("start pushwise");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let port = line
            .trim()
            .strip_prefix("listening on https://127.0.0.1:")
            .unwrap_or_else(|| {
                panic!(
                    "unexpected first line {line:?}; stderr: {}",
                    std::fs::read_to_string(&stderr_log).unwrap_or_default()
                )
            })
            .parse()
            .unwrap();
        Server {
            child,
            port,
            db,
            dir,
            stderr_log,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    /// SIGTERM, then wait for exit; returns the exit status code.
    pub fn stop(&mut self) -> i32 {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("server did not exit within 20 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn run(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd} (installed by .ci/run): {e}"))
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `nghttp -nv` (verbose frames, no output) with extra args.
pub fn nghttp(args: &[&str]) -> String {
    let o = run("nghttp", &[&["-nv"], args].concat());
    text(&o)
}

/// Runs a `pushwise` subcommand against `db`; panics with its output on failure.
pub fn pushwise(db: &Path, args: &[&str]) -> String {
    let o = Command::new(bin())
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "pushwise {args:?} failed: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn pushwise_json(db: &Path, args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&pushwise(db, args)).unwrap()
}

/// Events in the database, read through the store.
pub fn events(db: &Path) -> Vec<pushwise_analyzer::store::EventRow> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let s = pushwise_analyzer::Store::open(db).await.unwrap();
        let e = s.load_events(i64::MIN).await.unwrap();
        s.close().await;
        e
    })
}

/// Headers of the response to stream 13 (nghttp's first request) from `nghttp -v` output.
pub fn header<'a>(out: &'a str, name: &str) -> Option<&'a str> {
    out.lines().find_map(|l| {
        let l = l.trim();
        let pos = l.find(&format!("{name}: "))?;
        Some(l[pos + name.len() + 2..].trim())
    })
}
