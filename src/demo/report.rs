//! What the demo prints: the learned sets, the page-load table, and how to explore the database
//! (or one JSON document with `--json`).

use std::io::Write;
use std::path::PathBuf;

use pushwise_analyzer::tune::TunePoint;
use pushwise_store::{Context, Store};
use serde::Serialize;

use super::measure::Measured;
use crate::output::{out, print_json, table};

#[derive(Serialize)]
pub struct DemoReport {
    /// The learned database, when it outlives the demo (`--db`, or `--keep`).
    pub database: Option<PathBuf>,
    /// The demo's working directory, when kept (`--keep`).
    pub directory: Option<PathBuf>,
    pub rtt_ms: u64,
    pub visits: usize,
    pub page_views: usize,
    pub generation: i64,
    pub sets: Vec<DemoSet>,
    pub results: Vec<Measured>,
}

/// What one page's view by a browser entering the site gets.
#[derive(Serialize)]
pub struct DemoSet {
    pub page: String,
    pub context: Context,
    pub assets: Vec<String>,
}

/// Prints the report: JSON, or the human summary (`site` names the site, `loads` the loads per
/// configuration).
pub async fn print(
    r: &DemoReport,
    json: bool,
    site: &str,
    tuned: Option<&TunePoint>,
    store: &Store,
    loads: usize,
) -> anyhow::Result<()> {
    if json {
        return print_json(r);
    }
    {
        let mut o = out();
        writeln!(
            o,
            "push: the server sends a page's assets before the browser asks for them. Early Hints \
             (103): it names them first so the browser fetches them early (what Chrome and \
             Firefox use).\noracle: a set of exactly what each page needs, the best any learner \
             could do. digest: a compact list of what the browser has cached, so nothing is sent \
             twice.\n"
        )?;
        writeln!(
            o,
            "pushwise demo: {} visits ({} page views) to {site}, learned generation {}\n",
            r.visits, r.page_views, r.generation
        )?;
        if let Some(t) = tuned {
            writeln!(
                o,
                "tune recommended threshold {:.2}, minimum support {} (precision {:.2}, recall {:.2} on the newer 30%); applied\n",
                t.threshold, t.min_support, t.precision, t.recall
            )?;
        }
        writeln!(o, "learned push sets (sets list):")?;
    }
    crate::commands::sets::list(store, false).await?;
    let mut o = out();
    writeln!(
        o,
        "\nwhat a browser entering the site gets pushed (plan --page P):"
    )?;
    for s in &r.sets {
        let assets = if s.assets.is_empty() {
            "(nothing)".to_string()
        } else {
            s.assets.join(" ")
        };
        writeln!(o, "  {:<20} {assets}", s.page)?;
    }
    writeln!(
        o,
        "\npage loads through a delay proxy at {} ms RTT ({loads} loads each, browser-like loader):",
        r.rtt_ms
    )?;
    writeln!(o, "{}", results_table(&r.results))?;
    writeln!(
        o,
        "learned push vs no push: {:.1} ms faster at the median ({:.2}x)",
        r.results[0].median_ms - r.results[1].median_ms,
        r.results[1].speedup_vs_no_push
    )?;
    explore_hint(&mut o, r)
}

fn results_table(results: &[Measured]) -> comfy_table::Table {
    let mut t = table(&[
        "configuration",
        "median ms",
        "p90 ms",
        "speed-up vs no push",
        "pushes used",
        "pushes wasted",
    ]);
    for r in results {
        t.add_row(vec![
            r.config.to_string(),
            format!("{:.1}", r.median_ms),
            format!("{:.1}", r.p90_ms),
            format!("{:.2}x", r.speedup_vs_no_push),
            r.pushed_used.to_string(),
            r.pushed_wasted.to_string(),
        ]);
    }
    t
}

/// Commands to explore the kept database, naming the binary the way the user can type it
/// (relative when it lives under the current directory).
fn explore_hint(o: &mut impl Write, r: &DemoReport) -> anyhow::Result<()> {
    let exe = std::env::current_exe()
        .ok()
        .and_then(|e| {
            let cwd = std::env::current_dir().ok()?;
            e.strip_prefix(&cwd)
                .ok()
                .map(|r| format!("./{}", r.display()))
        })
        .unwrap_or_else(|| "pushwise".to_string());
    if let Some(d) = &r.directory {
        writeln!(
            o,
            "\nthe demo's directory is kept at {} (--keep)",
            d.display()
        )?;
    }
    let Some(db) = &r.database else {
        writeln!(
            o,
            "\nthe demo's temporary directory is removed; run `pushwise demo --keep` (or \
             `pushwise --db FILE demo`) to explore what it learned"
        )?;
        return Ok(());
    };
    let db = db.display();
    writeln!(o, "\nthe database is kept at {db}; explore it with:")?;
    for cmd in [
        "sets list",
        "sets show /",
        "tune --plot tune.svg",
        "plan --page / --user-agent 'Mozilla/5.0 Chrome/120'",
    ] {
        writeln!(o, "  {exe} --db {db} {cmd}")?;
    }
    Ok(())
}
