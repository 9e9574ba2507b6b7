//! The `pushwise` binary: parses the command line once into validated settings and runs a command.

mod cli;
mod commands;
mod demo;
mod open;
mod output;
mod signal;

use anyhow::Context as _;
use std::process::ExitCode;

/// mimalloc instead of glibc's malloc: under h2load, glibc's allocator was about 8% of the
/// server's CPU (`perf record`, BENCHMARKS.md), and a request allocates and frees many small,
/// short-lived buffers across threads, which mimalloc's per-thread free lists serve faster.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use cli::Command;

fn main() -> ExitCode {
    let args = cli::parse();
    if !matches!(args.command, Command::Serve(_)) {
        no_huge_pages();
    }
    let _log_guard = cli::init_tracing(&args.global);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pushwise: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(dispatch(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let code = exit_code(&e);
            if code != ExitCode::SUCCESS {
                eprintln!("pushwise: {}", error_message(&e));
            }
            code
        }
    }
}

/// Turns transparent huge pages off for this process. mimalloc asks for them, and each first touch
/// of one zeroes 2 MiB: `perf` on an analyzer pass after 100k new events found 40% of its samples
/// in the kernel zeroing pages, and turning them off took its peak RSS from ~155 to ~120 MiB. A
/// batch command lives for seconds, so it pays for the zeroing and never gains the fewer TLB
/// misses; `serve` lives long enough to gain them and keeps them. Best effort: a kernel without
/// the setting changes nothing.
fn no_huge_pages() {
    #[cfg(target_os = "linux")]
    let _ = rustix::thread::disable_transparent_huge_pages(true);
}

/// Runs the command the user chose.
async fn dispatch(cli: cli::Cli) -> anyhow::Result<()> {
    let db = cli.global.db;
    // A malformed --db URL is refused before any command starts, by the store's parser (clap's
    // own message would repeat the value, password included). The demo does not use --db unless
    // it was given, and then checks it the same way.
    if !matches!(cli.command, Command::Demo(_) | Command::Digest(_)) {
        pushwise_store::Location::from_path(&db).context("--db")?;
    }
    let result = run_command(&db, cli.command).await;
    open::close_all().await;
    result
}

async fn run_command(db: &std::path::Path, command: Command) -> anyhow::Result<()> {
    let db = db.to_path_buf();
    match command {
        Command::Serve(a) => commands::serve::run(&db, *a).await,
        Command::Analyze(a) => commands::analyze::run(&db, a).await,
        Command::Sets(c) => commands::sets::run(&db, c).await,
        Command::Tune(a) => commands::tune::run(&db, a).await,
        Command::Threshold(c) => commands::threshold::run(&db, c).await,
        Command::Import(a) => commands::import::run(&db, a).await,
        Command::Plan(a) => commands::plan::run(&db, a).await,
        Command::Digest(c) => commands::digest::run(c),
        Command::Backup(a) => commands::backup::run(&db, a).await,
        Command::Demo(a) => demo::run(a).await,
    }
}

/// The exit code for an error, chosen by its kind, never by its text: 0 for a closed pipe
/// (`pushwise sets list | head` is success, as in ripgrep), 2 for a value the user gave that a
/// library refused (as clap does for a bad flag), 1 for everything else.
fn exit_code(e: &anyhow::Error) -> ExitCode {
    // serde_json's error does not return its io::Error from `source()`: ask it for the kind.
    let closed_pipe = e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<serde_json::Error>()
                .is_some_and(|j| j.io_error_kind() == Some(std::io::ErrorKind::BrokenPipe))
    });
    if closed_pipe {
        return ExitCode::SUCCESS;
    }
    let invalid_input = e.chain().any(|c| {
        c.downcast_ref::<pushwise_server::Error>()
            .is_some_and(pushwise_server::Error::is_config)
            || c.downcast_ref::<pushwise_analyzer::Error>()
                .is_some_and(pushwise_analyzer::Error::is_invalid_input)
            || c.downcast_ref::<pushwise_store::rows::OutOfRange>()
                .is_some()
    });
    if invalid_input {
        ExitCode::from(2)
    } else {
        ExitCode::FAILURE
    }
}

/// The error and its causes on one line, skipping a cause whose text its parent already ends with
/// (many errors, sqlx's and ours, both print their source and return it from `source()`).
fn error_message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let m = cause.to_string();
        if out.ends_with(&m) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&m);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::process::ExitCode;

    use super::{error_message, exit_code};

    #[test]
    fn exit_codes_follow_the_error_kind() {
        let pipe = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
            .context("writing the table");
        assert_eq!(exit_code(&pipe), ExitCode::SUCCESS);
        let refused = anyhow::Error::new(pushwise_store::rows::Probability::new(2.0).unwrap_err())
            .context("applying the recommendation");
        assert_eq!(exit_code(&refused), ExitCode::from(2));
        let json_pipe = serde_json::to_writer(ClosedPipe, &[1, 2, 3]).unwrap_err();
        assert_eq!(
            exit_code(&anyhow::Error::new(json_pipe).context("writing JSON")),
            ExitCode::SUCCESS
        );
        let other = anyhow::anyhow!("disk full");
        assert_eq!(exit_code(&other), ExitCode::FAILURE);
    }

    struct ClosedPipe;
    impl std::io::Write for ClosedPipe {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[derive(Debug)]
    struct Wraps(std::io::Error);
    impl std::fmt::Display for Wraps {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "applying migrations failed: {}", self.0)
        }
    }
    impl std::error::Error for Wraps {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_cause_already_printed_by_its_parent_is_not_repeated() {
        let e = anyhow::Error::new(Wraps(std::io::Error::other("migration 2 is missing")))
            .context("cannot open the database x.db");
        assert_eq!(
            error_message(&e),
            "cannot open the database x.db: applying migrations failed: migration 2 is missing"
        );
        let plain = anyhow::Error::new(std::io::Error::other("disk full")).context("writing");
        assert_eq!(error_message(&plain), "writing: disk full");
    }
}
