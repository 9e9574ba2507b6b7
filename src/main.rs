//! The `pushwise` binary: parses the command line once into validated settings and runs a command.

mod cli;
mod demo;
mod inspect;
mod serve;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
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
    match rt.block_on(cli::dispatch(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // A closed pipe (`pushwise sets list | head`) is success, as in ripgrep.
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            eprintln!("pushwise: {}", error_message(&e));
            ExitCode::FAILURE
        }
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
    use super::error_message;

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
