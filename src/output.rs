//! How commands print: human tables (comfy-table), stable JSON with `--json`, and the page
//! arguments operators type, normalised the way the store keys pages.

use std::io::Write;

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde::Serialize;

/// A table with the project's look and `header` as its first row.
pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(header.iter().copied());
    t
}

/// Pretty JSON on stdout, one document.
pub fn print_json<T: Serialize>(v: &T) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v)?;
    writeln!(out)?;
    Ok(())
}

/// A `pushwise --db DB` prefix for the commands a command tells operators to run next, so that
/// pasting one acts on the same database (never on a new empty one in the current directory).
pub fn pushwise_db(db: &std::path::Path) -> String {
    // A PostgreSQL URL is shown without its password (the hint lands in terminals and logs).
    let shown = match pushwise_store::Location::from_path(db) {
        Ok(loc @ pushwise_store::Location::Postgres(_)) => loc.to_string(),
        _ => db.to_string_lossy().into_owned(),
    };
    format!("pushwise --db {}", shell_quote(&shown))
}

/// Quotes `s` for a POSIX shell when it holds anything but plain path characters.
pub fn shell_quote(s: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+:=@,%".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// A page as operators type it (`blog/`, `/blog/?x=1`) in the form the store keys it (`/blog/`).
pub fn page_arg(p: &str) -> String {
    let p = p.trim();
    // A section's sets (`section:/blog/`) are inspected by their key.
    if let Some(rest) = p.strip_prefix(pushwise_store::context::SECTION_PREFIX) {
        return format!(
            "{}{}",
            pushwise_store::context::SECTION_PREFIX,
            page_arg(rest)
        );
    }
    let p = if p.starts_with('/') {
        p.to_string()
    } else {
        format!("/{p}")
    };
    pushwise_store::event::normalize_path(&p, false)
}

pub fn out() -> std::io::StdoutLock<'static> {
    std::io::stdout().lock()
}

/// A progress bar on stderr (hidden when `quiet`), in the project's style.
pub fn bar(len: u64, msg: &'static str, quiet: bool) -> indicatif::ProgressBar {
    let b = if quiet {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(len)
    };
    b.set_style(
        indicatif::ProgressStyle::with_template("{msg:>24} [{bar:40}] {pos}/{len} {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    b.set_message(msg);
    b
}

#[cfg(test)]
mod tests {
    use super::page_arg;

    #[test]
    fn pages_are_keyed_with_a_leading_slash_and_no_query() {
        assert_eq!(page_arg("blog/"), "/blog/");
        assert_eq!(page_arg(" /blog/?x=1#top "), "/blog/");
        assert_eq!(page_arg(""), "/");
    }
}
