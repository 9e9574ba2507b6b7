//! `pushwise import`: read nginx/Apache access logs into the store, with a progress bar per file.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::Context as _;
use pushwise_analyzer::import::{ImportOptions, ImportReport, LogFormat, PageRule, import_reader};
use serde::Serialize;

use crate::cli::{FormatArg, ImportArgs};
use crate::open::open_store;
use crate::output::{out, print_json};

pub async fn run(db: &Path, a: ImportArgs) -> anyhow::Result<()> {
    let store = open_store(db).await?;
    let opts = ImportOptions {
        format: match a.format {
            FormatArg::Combined => LogFormat::Combined,
            FormatArg::Common => LogFormat::Common,
        },
        hosts: a.hosts.clone(),
        keep_query: a.keep_query,
        pages: PageRule {
            extensions: a
                .page_ext
                .iter()
                .map(|e| e.trim_start_matches('.').to_ascii_lowercase())
                .collect(),
        },
    };
    let mut reports: Vec<(String, ImportReport, f64)> = Vec::new();
    for f in &a.files {
        reports.push(import_file(&store, f, &opts).await?);
    }
    if a.json {
        #[derive(Serialize)]
        struct J<'a> {
            file: &'a str,
            #[serde(flatten)]
            report: &'a ImportReport,
            seconds: f64,
            lines_per_second: f64,
        }
        let js: Vec<J> = reports
            .iter()
            .map(|(f, r, s)| J {
                file: f,
                report: r,
                seconds: *s,
                lines_per_second: r.lines as f64 / s.max(1e-9),
            })
            .collect();
        return print_json(&js);
    }
    let mut o = out();
    for (f, r, secs) in &reports {
        writeln!(
            o,
            "{f}: {} lines, {} imported, {} already imported, {} skipped in {:.2} s ({:.0} lines/s)",
            r.lines,
            r.imported,
            r.duplicates,
            r.skipped_total(),
            secs,
            r.lines as f64 / secs.max(1e-9)
        )?;
        for (reason, n) in &r.skipped {
            writeln!(o, "  skipped {n} ({})", reason.as_str())?;
        }
        for (line, reason) in &r.first_skipped {
            writeln!(o, "  line {line}: {}", reason.as_str())?;
        }
    }
    Ok(())
}

/// Imports one file (`-` is standard input) with a progress bar; returns its name, its report and
/// the seconds it took.
async fn import_file(
    store: &pushwise_store::Store,
    f: &Path,
    opts: &ImportOptions,
) -> anyhow::Result<(String, ImportReport, f64)> {
    let started = Instant::now();
    let name = f.display().to_string();
    let (reader, size): (Box<dyn std::io::Read>, u64) = if name == "-" {
        (Box::new(std::io::stdin()), 0)
    } else {
        let file = std::fs::File::open(f).with_context(|| format!("cannot open {name}"))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        (Box::new(file), size)
    };
    let bar = if size > 0 {
        indicatif::ProgressBar::new(size)
    } else {
        indicatif::ProgressBar::new_spinner()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(name.clone());
    let report = import_reader(store, reader, opts, |n| bar.set_position(n))
        .await
        .with_context(|| format!("importing {name}"))?;
    bar.finish_and_clear();
    Ok((name, report, started.elapsed().as_secs_f64()))
}
