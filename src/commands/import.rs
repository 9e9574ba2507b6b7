//! `pushwise import`: read nginx/Apache access logs into the store, with a progress bar per file.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::Context as _;
use pushwise_analyzer::import::{
    ImportOptions, ImportReport, LogFormat, PageRule, SkipReason, import_reader,
};
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
        prefix_cap: std::sync::Arc::new(pushwise_store::PrefixCap::new(a.prefix_cap)),
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
        print_json(&js)?;
        return nothing_imported(&reports, opts.format);
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
        if let Some(text) = &r.first_rejected {
            writeln!(o, "  first skipped line: {text}")?;
        }
        if let Some(hint) = other_format_hint(r, opts.format) {
            writeln!(o, "  {hint}")?;
        }
    }
    drop(o);
    nothing_imported(&reports, opts.format)
}

/// "try --format X" when most skipped lines parse in the other format.
fn other_format_hint(r: &ImportReport, format: LogFormat) -> Option<String> {
    let other = format.other();
    let skipped = r.skipped_total() - r.skipped.get(&SkipReason::Empty).copied().unwrap_or(0);
    (r.other_format_lines > 0 && r.other_format_lines * 2 >= skipped).then(|| {
        format!(
            "{} of the skipped lines are in the {} format: try --format {}",
            r.other_format_lines,
            other.as_str(),
            other.as_str()
        )
    })
}

/// An error when a file with lines in it gave not one event (imported or already imported): the
/// user pointed import at the wrong file or the wrong --format, and exit 0 would hide it.
fn nothing_imported(
    reports: &[(String, ImportReport, f64)],
    format: LogFormat,
) -> anyhow::Result<()> {
    for (f, r, _) in reports {
        let empty = r.skipped.get(&SkipReason::Empty).copied().unwrap_or(0);
        if r.imported + r.duplicates == 0 && r.skipped_total() > empty {
            let mut msg = format!(
                "nothing imported from {f}: none of its {} lines is an access-log line in the {} \
                 format ({})",
                r.lines,
                format.as_str(),
                format.shape()
            );
            if let Some(text) = &r.first_rejected {
                msg.push_str(&format!("; the first one reads: {text}"));
            }
            if let Some(hint) = other_format_hint(r, format) {
                msg.push_str(&format!("; {hint}"));
            }
            anyhow::bail!(msg);
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
