//! `pushwise sets`: list and show the learned push sets, and pin, ban or unpin assets.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::bail;
use pushwise_store::context::{is_section, section_of};
use pushwise_store::rows::{PinAction, SetRow};
use pushwise_store::{Context, Store};
use serde::Serialize;

use crate::cli::SetsCmd;
use crate::open::{latest, open_existing};
use crate::output::{out, page_arg, print_json, table};

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
    context: Context,
    views: i64,
    /// false: this context has too few views (or is not a browser's) and backs off.
    own_set: bool,
}

#[derive(Serialize)]
struct ShowJson {
    page: String,
    /// Browser views (crawlers' are in their own contexts and never in the page's set).
    views: i64,
    /// false: the page has too few views for a set of its own and backs off to `section`.
    own_set: bool,
    /// The section key it backs off to (`sets show section:/blog/` shows that set).
    section: Option<String>,
    generation: i64,
    contexts: Vec<ContextJson>,
    /// Page-wide candidates, in push order.
    assets: Vec<SetRow>,
    /// Candidates of contexts with their own set.
    by_context: BTreeMap<&'static str, Vec<SetRow>>,
}

pub async fn run(db: &Path, c: SetsCmd) -> anyhow::Result<()> {
    let store = open_existing(db).await?;
    match c {
        SetsCmd::List { json } => list(&store, json).await,
        SetsCmd::Show { page, json } => show(&store, &page_arg(&page), json).await,
        SetsCmd::Pin { page, asset } => pin(&store, &page, &asset, Some(PinAction::Pin)).await,
        SetsCmd::Ban { page, asset } => pin(&store, &page, &asset, Some(PinAction::Ban)).await,
        SetsCmd::Unpin { page, asset } => pin(&store, &page, &asset, None).await,
    }
}

/// One row per page: views, page-wide set size and bytes.
pub async fn list(store: &Store, json: bool) -> anyhow::Result<()> {
    let g = latest(store).await?;
    let stats = store.page_stats(g, None).await?;
    let rows = store.set_rows(g, true, None).await?;
    let mut list: Vec<ListRow> = stats
        .iter()
        .filter(|s| s.context.is_page_wide())
        .map(|s| {
            let mine: Vec<_> = rows
                .iter()
                .filter(|r| r.page == s.page && r.context.is_page_wide())
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
    Ok(())
}

/// Every candidate of one page, page-wide and per context, in or out and why.
async fn show(store: &Store, page: &str, json: bool) -> anyhow::Result<()> {
    let g = latest(store).await?;
    let stats = store.page_stats(g, Some(page)).await?;
    if stats.is_empty() {
        bail!("no page {page:?} in generation {g} (see `pushwise sets list`)");
    }
    let wide = stats.iter().find(|s| s.context.is_page_wide());
    let own_set = wide.is_some_and(|s| s.uses_own);
    let mut show = ShowJson {
        page: page.to_string(),
        views: wide.map_or(0, |s| s.views),
        own_set,
        section: (!is_section(page)).then(|| section_of(page)),
        generation: g,
        contexts: stats
            .iter()
            .filter(|s| !s.context.is_page_wide())
            .map(|s| ContextJson {
                context: s.context,
                views: s.views,
                own_set: s.uses_own,
            })
            .collect(),
        assets: Vec::new(),
        by_context: BTreeMap::new(),
    };
    for r in store.set_rows(g, false, Some(page)).await? {
        if r.context.is_page_wide() {
            show.assets.push(r);
        } else {
            show.by_context
                .entry(r.context.as_str())
                .or_default()
                .push(r);
        }
    }
    if json {
        return print_json(&vec![show]);
    }
    print_show(&show)
}

fn print_show(show: &ShowJson) -> anyhow::Result<()> {
    let mut o = out();
    writeln!(
        o,
        "{}: {} browser page views, generation {}",
        show.page, show.views, show.generation
    )?;
    if !show.own_set {
        match &show.section {
            Some(sec) => writeln!(
                o,
                "too few views for a set of its own: browsers get the set of {sec} \
                 (`pushwise sets show {sec}`)"
            )?,
            None => writeln!(o, "too few views for a set of its own: nothing is pushed")?,
        }
    }
    let mut ct = table(&["context", "views", "set used"]);
    for c in &show.contexts {
        ct.add_row(vec![
            c.context.as_str().to_string(),
            c.views.to_string(),
            if c.own_set {
                "its own".into()
            } else if c.context.is_browser() {
                "the page's (too few views)".to_string()
            } else {
                "none (not a browser)".to_string()
            },
        ]);
    }
    writeln!(o, "{ct}")?;
    writeln!(o, "page-wide:\n{}", candidates_table(&show.assets))?;
    for (ctx, rows) in &show.by_context {
        writeln!(o, "{ctx}:\n{}", candidates_table(rows))?;
    }
    Ok(())
}

fn candidates_table(rows: &[SetRow]) -> comfy_table::Table {
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
            if r.in_set { "yes" } else { "no" }.to_string(),
            r.reason.as_str().to_string(),
        ]);
    }
    t
}

/// Pins, bans or (with `None`) clears an asset for a page.
async fn pin(
    store: &Store,
    page: &str,
    asset: &str,
    action: Option<PinAction>,
) -> anyhow::Result<()> {
    let (page, asset) = (page_arg(page), page_arg(asset));
    store.set_pin(&page, &asset, action).await?;
    let said = match action {
        Some(PinAction::Pin) => format!("pinned {asset} for {page} (from the next analyzer pass)"),
        Some(PinAction::Ban) => format!("banned {asset} for {page} (from the next analyzer pass)"),
        None => format!("cleared pin/ban of {asset} for {page}"),
    };
    writeln!(out(), "{said}")?;
    Ok(())
}
