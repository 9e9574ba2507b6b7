//! The data commands: analyze, sets, tune, threshold, import, plan, digest. Human tables by default,
//! stable JSON with `--json`.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use pushwise_analyzer::import::{ImportOptions, ImportReport, LogFormat, PageRule, import_reader};
use pushwise_analyzer::learn::{self, PAGE_WIDE};
use pushwise_analyzer::plan::{PushSets, request_context};
use pushwise_analyzer::tune::{self, Objective};
use pushwise_server::digest::CacheDigest;
use serde::Serialize;

use crate::cli::{
    AnalyzeArgs, DigestCmd, FormatArg, ImportArgs, ObjectiveArg, PlanArgs, SetsCmd, ThresholdCmd,
    TuneArgs, open_existing, open_store,
};
use crate::serve::now_ms;

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(header.iter().copied());
    t
}

fn print_json<T: Serialize>(v: &T) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v)?;
    writeln!(out)?;
    Ok(())
}

/// A page as operators type it (`blog/`, `/blog/?x=1`) in the form the store keys it (`/blog/`).
fn page_arg(p: &str) -> String {
    let p = pushwise_analyzer::event::normalize_path(p.trim(), false);
    if p.starts_with('/') {
        p
    } else {
        format!("/{p}")
    }
}

fn out() -> std::io::StdoutLock<'static> {
    std::io::stdout().lock()
}

pub async fn analyze(db: &Path, a: AnalyzeArgs) -> anyhow::Result<()> {
    let store = open_existing(db).await?;
    let lp = a.learn.params()?;
    loop {
        let r = learn::run_pass(&store, &lp, now_ms())
            .await
            .context("analyzer pass failed")?;
        if a.json {
            print_json(&r)?;
        } else {
            writeln!(
                out(),
                "generation {}: {} events, {} page views ({} requests unattributed), {} pages, {} with a push set ({} assets) in {} ms",
                r.generation,
                r.events,
                r.views,
                r.unattributed,
                r.pages,
                r.pages_with_sets,
                r.assets_in_sets,
                r.duration_ms
            )?;
        }
        if a.once {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(a.every.max(1))) => {}
            _ = crate::serve::shutdown_signal() => return Ok(()),
        }
    }
}

#[derive(Serialize)]
struct ListRow {
    page: String,
    views: i64,
    set_size: usize,
    bytes: i64,
    generation: i64,
}

#[derive(Serialize)]
struct ContextJson {
    context: String,
    views: i64,
    /// false: this context has too few views and uses the page-wide set.
    own_set: bool,
}

#[derive(Serialize)]
struct ShowJson {
    page: String,
    views: i64,
    generation: i64,
    contexts: Vec<ContextJson>,
    /// Page-wide candidates, in push order.
    assets: Vec<pushwise_analyzer::store::SetRow>,
    /// Candidates of contexts with their own set.
    by_context: BTreeMap<String, Vec<pushwise_analyzer::store::SetRow>>,
}

async fn latest(store: &pushwise_analyzer::Store) -> anyhow::Result<i64> {
    store
        .latest_generation()
        .await?
        .context("no push sets yet: run `pushwise analyze --once` (or let `pushwise serve` run its analyzer)")
}

pub async fn sets(db: &Path, c: SetsCmd) -> anyhow::Result<()> {
    let store = open_existing(db).await?;
    match c {
        SetsCmd::List { json } => {
            let g = latest(&store).await?;
            let stats = store.page_stats(g, None).await?;
            let rows = store.set_rows(g, true, None).await?;
            let mut list: Vec<ListRow> = stats
                .iter()
                .filter(|s| s.context == PAGE_WIDE)
                .map(|s| {
                    let mine: Vec<_> = rows
                        .iter()
                        .filter(|r| r.page == s.page && r.context == PAGE_WIDE)
                        .collect();
                    ListRow {
                        page: s.page.clone(),
                        views: s.views,
                        set_size: mine.len(),
                        bytes: mine.iter().map(|r| r.bytes).sum(),
                        generation: g,
                    }
                })
                .collect();
            list.sort_by(|a, b| b.views.cmp(&a.views).then(a.page.cmp(&b.page)));
            if json {
                return print_json(&list);
            }
            let mut t = table(&["page", "views", "set size", "bytes", "generation"]);
            for r in &list {
                t.add_row(vec![
                    r.page.clone(),
                    r.views.to_string(),
                    r.set_size.to_string(),
                    r.bytes.to_string(),
                    r.generation.to_string(),
                ]);
            }
            writeln!(out(), "{t}")?;
        }
        SetsCmd::Show { page, json } => {
            let page = page_arg(&page);
            let g = latest(&store).await?;
            let stats = store.page_stats(g, Some(&page)).await?;
            if stats.is_empty() {
                bail!("no page {page:?} in generation {g} (see `pushwise sets list`)");
            }
            let rows = store.set_rows(g, false, Some(&page)).await?;
            let views = stats
                .iter()
                .find(|s| s.context == PAGE_WIDE)
                .map_or(0, |s| s.views);
            let mut show = ShowJson {
                page: page.clone(),
                views,
                generation: g,
                contexts: stats
                    .iter()
                    .filter(|s| s.context != PAGE_WIDE)
                    .map(|s| ContextJson {
                        context: s.context.clone(),
                        views: s.views,
                        own_set: s.uses_own,
                    })
                    .collect(),
                assets: Vec::new(),
                by_context: BTreeMap::new(),
            };
            for r in rows {
                if r.context == PAGE_WIDE {
                    show.assets.push(r);
                } else {
                    show.by_context
                        .entry(r.context.clone())
                        .or_default()
                        .push(r);
                }
            }
            if json {
                return print_json(&vec![show]);
            }
            let mut o = out();
            writeln!(o, "{page}: {views} page views, generation {g}")?;
            let mut ct = table(&["context", "views", "set used"]);
            for c in &show.contexts {
                ct.add_row(vec![
                    c.context.clone(),
                    c.views.to_string(),
                    if c.own_set {
                        "its own".into()
                    } else {
                        "page-wide (too few views)".to_string()
                    },
                ]);
            }
            writeln!(o, "{ct}")?;
            let render = |rows: &[pushwise_analyzer::store::SetRow]| {
                let mut t = table(&[
                    "asset",
                    "P(asset|page)",
                    "support",
                    "delay ms",
                    "bytes",
                    "in set",
                    "why",
                ]);
                for r in rows {
                    t.add_row(vec![
                        r.asset.clone(),
                        format!("{:.2}", r.probability),
                        r.support.to_string(),
                        r.delay_ms.to_string(),
                        r.bytes.to_string(),
                        if r.in_set {
                            "yes".into()
                        } else {
                            "no".to_string()
                        },
                        r.reason.clone(),
                    ]);
                }
                t
            };
            writeln!(o, "page-wide:\n{}", render(&show.assets))?;
            for (ctx, rows) in &show.by_context {
                writeln!(o, "{ctx}:\n{}", render(rows))?;
            }
        }
        SetsCmd::Pin { page, asset } => {
            let (page, asset) = (page_arg(&page), page_arg(&asset));
            store.set_pin(&page, &asset, Some("pin")).await?;
            writeln!(
                out(),
                "pinned {asset} for {page} (from the next analyzer pass)"
            )?;
        }
        SetsCmd::Ban { page, asset } => {
            let (page, asset) = (page_arg(&page), page_arg(&asset));
            store.set_pin(&page, &asset, Some("ban")).await?;
            writeln!(
                out(),
                "banned {asset} for {page} (from the next analyzer pass)"
            )?;
        }
        SetsCmd::Unpin { page, asset } => {
            let (page, asset) = (page_arg(&page), page_arg(&asset));
            store.set_pin(&page, &asset, None).await?;
            writeln!(out(), "cleared pin/ban of {asset} for {page}")?;
        }
    }
    Ok(())
}

pub async fn tune(db: &Path, a: TuneArgs) -> anyhow::Result<()> {
    let store = open_existing(db).await?;
    let lp = a.learn.params()?;
    let objective = match a.objective {
        ObjectiveArg::F1 => Objective::F1,
        ObjectiveArg::Bytes => Objective::BytesRatio,
    };
    let report = tune::tune(&store, &lp, objective, a.train_share).await?;
    if let Some(p) = &a.plot {
        std::fs::write(p, tune::plot(&report))
            .with_context(|| format!("writing {}", p.display()))?;
    }
    if a.apply
        && let Some(r) = &report.recommended
    {
        store
            .set_threshold(None, Some(r.threshold), Some(r.min_support))
            .await?;
    }
    if a.json {
        return print_json(&report);
    }
    let mut o = out();
    writeln!(
        o,
        "learned on {} page views, scored on the {} newer ones",
        report.train_views, report.test_views
    )?;
    let Some(rec) = &report.recommended else {
        writeln!(
            o,
            "not enough data to recommend a threshold (need page views with assets on both sides of the split)"
        )?;
        return Ok(());
    };
    let mut t = table(&[
        "threshold",
        "precision",
        "recall",
        "F1",
        "pushed/view",
        "wasted bytes/view",
    ]);
    for p in report
        .grid
        .iter()
        .filter(|p| p.min_support == rec.min_support)
    {
        t.add_row(vec![
            format!(
                "{:.2}{}",
                p.threshold,
                if p.threshold == rec.threshold {
                    " *"
                } else {
                    ""
                }
            ),
            format!("{:.3}", p.precision),
            format!("{:.3}", p.recall),
            format!("{:.3}", p.f1),
            format!("{:.2}", p.pushed_per_view),
            format!("{:.0}", p.wasted_bytes_per_view),
        ]);
    }
    writeln!(o, "at minimum support {}:\n{t}", rec.min_support)?;
    writeln!(
        o,
        "recommended: threshold {:.2}, minimum support {} (precision {:.3}, recall {:.3}, {:.0} wasted bytes per view)\nrule: {}",
        rec.threshold,
        rec.min_support,
        rec.precision,
        rec.recall,
        rec.wasted_bytes_per_view,
        report.rule
    )?;
    if a.apply {
        writeln!(o, "applied as the global setting")?;
    } else {
        writeln!(
            o,
            "apply with: pushwise threshold set {:.2} --min-support {}",
            rec.threshold, rec.min_support
        )?;
    }
    if let Some(p) = &a.plot {
        writeln!(o, "chart written to {}", p.display())?;
    }
    Ok(())
}

pub async fn threshold(db: &Path, c: ThresholdCmd) -> anyhow::Result<()> {
    match c {
        ThresholdCmd::Set {
            value,
            page,
            min_support,
        } => {
            let page = page.as_deref().map(page_arg);
            let store = open_store(db).await?;
            store
                .set_threshold(page.as_deref(), Some(value), min_support)
                .await?;
            writeln!(
                out(),
                "threshold {value} {}{} (used from the next analyzer pass)",
                page.as_deref()
                    .map_or("globally".to_string(), |p| format!("for {p}")),
                min_support.map_or(String::new(), |m| format!(", minimum support {m}"))
            )?;
        }
        ThresholdCmd::Show { json } => {
            let store = open_existing(db).await?;
            let rows = store.thresholds().await?;
            let d = learn::SelectParams::default();
            if json {
                #[derive(Serialize)]
                struct J {
                    defaults: (f64, i64),
                    settings: Vec<pushwise_analyzer::store::ThresholdRow>,
                }
                return print_json(&J {
                    defaults: (d.threshold, d.min_support),
                    settings: rows,
                });
            }
            let mut t = table(&["page", "threshold", "min support"]);
            t.add_row(vec![
                "(built-in default)".into(),
                d.threshold.to_string(),
                d.min_support.to_string(),
            ]);
            for r in rows {
                t.add_row(vec![
                    if r.page.is_empty() {
                        "(global)".into()
                    } else {
                        r.page
                    },
                    r.probability.map_or("-".into(), |v| v.to_string()),
                    r.min_support.map_or("-".into(), |v| v.to_string()),
                ]);
            }
            writeln!(out(), "{t}")?;
        }
        ThresholdCmd::Clear { page } => {
            let page = page.as_deref().map(page_arg);
            let store = open_existing(db).await?;
            let removed = store.clear_threshold(page.as_deref()).await?;
            writeln!(
                out(),
                "{}",
                if removed {
                    "cleared"
                } else {
                    "nothing to clear"
                }
            )?;
        }
    }
    Ok(())
}

pub async fn import(db: &Path, a: ImportArgs) -> anyhow::Result<()> {
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
        let report = import_reader(&store, reader, &opts, |n| bar.set_position(n))
            .await
            .with_context(|| format!("importing {name}"))?;
        bar.finish_and_clear();
        reports.push((name, report, started.elapsed().as_secs_f64()));
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

#[derive(serde::Deserialize)]
struct PlanLine {
    page: String,
    #[serde(default)]
    user_agent: Option<String>,
    #[serde(default)]
    referer: Option<String>,
}

pub async fn plan(db: &Path, a: PlanArgs) -> anyhow::Result<()> {
    let store = open_existing(db).await?;
    let sets = PushSets::new();
    sets.reload_if_newer(&store).await?;
    let hosts: Vec<&str> = a.hosts.iter().map(String::as_str).collect();
    if let Some(batch) = &a.batch {
        let input: Box<dyn BufRead> = if batch.as_os_str() == "-" {
            Box::new(std::io::BufReader::new(std::io::stdin()))
        } else {
            Box::new(std::io::BufReader::new(
                std::fs::File::open(batch)
                    .with_context(|| format!("cannot open {}", batch.display()))?,
            ))
        };
        let mut o = std::io::BufWriter::new(out());
        for (i, line) in input.lines().enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let l: PlanLine = serde_json::from_str(&line)
                .with_context(|| format!("line {}: not a plan request", i + 1))?;
            let ctx = request_context(l.user_agent.as_deref(), l.referer.as_deref(), &hosts);
            let d = sets.decide(&page_arg(&l.page), ctx);
            serde_json::to_writer(
                &mut o,
                &serde_json::json!({"push": d.assets.iter().map(|a| &a.path).collect::<Vec<_>>()}),
            )?;
            o.write_all(b"\n")?;
        }
        o.flush()?;
        return Ok(());
    }
    let page = page_arg(a.page.as_deref().unwrap_or("/"));
    let ctx = request_context(a.user_agent.as_deref(), a.referer.as_deref(), &hosts);
    let d = sets.decide(&page, ctx);
    if a.json {
        return print_json(&d);
    }
    let mut o = out();
    let why = match d.source {
        "context" => "this context's own learned set",
        "page-wide" => "the page-wide set (this context has too few views for its own)",
        _ => "no set learned for this page",
    };
    writeln!(
        o,
        "{page} as {} (generation {}): {why}",
        d.context, d.generation
    )?;
    if d.assets.is_empty() {
        writeln!(o, "nothing would be pushed")?;
        return Ok(());
    }
    let mut t = table(&["#", "asset", "as", "P(asset|page)", "bytes"]);
    for (i, x) in d.assets.iter().enumerate() {
        t.add_row(vec![
            (i + 1).to_string(),
            x.path.clone(),
            x.as_type.clone(),
            format!("{:.2}", x.probability),
            x.bytes.to_string(),
        ]);
    }
    writeln!(
        o,
        "{t}\n(before per-client skips: cache digest, this connection's diary, holdout)"
    )?;
    Ok(())
}

pub fn digest(c: DigestCmd) -> anyhow::Result<()> {
    match c {
        DigestCmd::Encode { p, urls, json } => {
            for u in &urls {
                if !(u.starts_with("https://") || u.starts_with("http://")) {
                    bail!("{u:?} is not an absolute URL (digests key on https://host/path)");
                }
            }
            let d = CacheDigest::from_urls(urls.iter().map(|u| (u.as_str(), None)), p);
            if json {
                return print_json(
                    &serde_json::json!({"value": d.encode(), "urls": urls.len(), "log2_n": d.log2_n(), "log2_p": d.log2_p()}),
                );
            }
            writeln!(out(), "{}", d.encode())?;
        }
        DigestCmd::Decode { value, urls, json } => {
            let Some(d) = CacheDigest::decode(&value) else {
                bail!("not a valid cache digest (a server treats it as no digest)");
            };
            let checks: Vec<(String, bool)> = urls
                .iter()
                .map(|u| (u.clone(), d.contains(u, None)))
                .collect();
            if json {
                return print_json(&serde_json::json!({
                    "log2_n": d.log2_n(), "log2_p": d.log2_p(), "values": d.len(),
                    "false_positive_rate": 1.0 / f64::from(1u32 << d.log2_p()),
                    "urls": checks.iter().map(|(u, c)| serde_json::json!({"url": u, "present": c})).collect::<Vec<_>>(),
                }));
            }
            let mut o = out();
            writeln!(
                o,
                "{} entries, N = 2^{}, false-positive rate 1/{}",
                d.len(),
                d.log2_n(),
                1u64 << d.log2_p()
            )?;
            for (u, present) in checks {
                writeln!(o, "{} {u}", if present { "present" } else { "absent " })?;
            }
        }
    }
    Ok(())
}
