//! `pushwise sets`: list and show the learned push sets, and pin, ban or unpin assets.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::bail;
use pushwise_store::context::{is_section, section_of};
use pushwise_store::rows::{PinAction, PinRow, SetRow};
use pushwise_store::{Context, Store};
use serde::Serialize;

use crate::cli::SetsCmd;
use crate::open::{latest, open_existing, open_inspect};
use crate::output::{out, page_arg, print_json, table};

#[derive(Serialize)]
struct ListRow {
    page: String,
    views: i64,
    /// Assets in the page-wide set (what a browser context without a set of its own gets).
    set_size: usize,
    /// Assets in each context's own set (contexts with enough views): what `plan` shows a
    /// browser in that context gets.
    context_sets: BTreeMap<&'static str, usize>,
    /// Bytes of the page-wide set.
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
    /// The page's pins and bans as stored now (the sets above show them from the pass after
    /// they were made).
    pins: Vec<PinRow>,
}

pub async fn run(db: &Path, c: SetsCmd) -> anyhow::Result<()> {
    match c {
        SetsCmd::List { json } => list(&open_inspect(db).await?, json).await,
        SetsCmd::Show { page, json } => {
            show(&open_inspect(db).await?, &page_arg(&page), json).await
        }
        SetsCmd::Pins { page, json } => {
            pins(
                &open_inspect(db).await?,
                page.as_deref().map(page_arg),
                json,
            )
            .await
        }
        SetsCmd::Pin { page, asset } => {
            pin(
                &open_existing(db).await?,
                &page,
                &asset,
                Some(PinAction::Pin),
            )
            .await
        }
        SetsCmd::Ban { page, asset } => {
            pin(
                &open_existing(db).await?,
                &page,
                &asset,
                Some(PinAction::Ban),
            )
            .await
        }
        SetsCmd::Unpin { page, asset } => pin(&open_existing(db).await?, &page, &asset, None).await,
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
            let mut context_sets = BTreeMap::new();
            for c in stats.iter().filter(|c| {
                c.page == s.page
                    && !c.context.is_page_wide()
                    && c.uses_own
                    && c.context.is_browser()
            }) {
                let n = rows
                    .iter()
                    .filter(|r| r.page == s.page && r.context == c.context)
                    .count();
                context_sets.insert(c.context.as_str(), n);
            }
            ListRow {
                page: s.page.clone(),
                views: s.views,
                set_size: mine.len(),
                context_sets,
                bytes: mine.iter().map(|r| r.bytes).sum(),
                generation: g,
            }
        })
        .collect();
    list.sort_by(|a, b| b.views.cmp(&a.views).then(a.page.cmp(&b.page)));
    if json {
        return print_json(&list);
    }
    let mut t = table(&[
        "page",
        "views",
        "page-wide set",
        "context sets",
        "bytes",
        "generation",
    ]);
    for r in &list {
        let contexts = if r.context_sets.is_empty() {
            "-".to_string()
        } else {
            r.context_sets
                .iter()
                .map(|(c, n)| format!("{c} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        t.add_row(vec![
            r.page.clone(),
            r.views.to_string(),
            r.set_size.to_string(),
            contexts,
            r.bytes.to_string(),
            r.generation.to_string(),
        ]);
    }
    writeln!(
        out(),
        "{t}\npage-wide set: assets for browser views of a context without a set of its own; \
         context sets: each context with enough views has its own (what `pushwise plan` shows)"
    )?;
    Ok(())
}

/// Pins and bans in force (all, or one page's): they apply from the next analyzer pass.
async fn pins(store: &Store, page: Option<String>, json: bool) -> anyhow::Result<()> {
    let rows: Vec<PinRow> = store
        .pins()
        .await?
        .into_iter()
        .filter(|r| page.as_deref().is_none_or(|p| r.page == p))
        .collect();
    if json {
        return print_json(&rows);
    }
    if rows.is_empty() {
        match page {
            Some(p) => writeln!(out(), "no pins or bans for {p}")?,
            None => writeln!(out(), "no pins or bans")?,
        }
        return Ok(());
    }
    let mut t = table(&["page", "asset", "action"]);
    for r in &rows {
        t.add_row(vec![
            r.page.clone(),
            r.asset.clone(),
            r.action.as_str().to_string(),
        ]);
    }
    writeln!(out(), "{t}")?;
    Ok(())
}

/// Every candidate of one page, page-wide and per context, in or out and why.
async fn show(store: &Store, page: &str, json: bool) -> anyhow::Result<()> {
    let g = latest(store).await?;
    let stats = store.page_stats(g, Some(page)).await?;
    let page_pins: Vec<PinRow> = store
        .pins()
        .await?
        .into_iter()
        .filter(|r| r.page == page)
        .collect();
    if stats.is_empty() {
        if page_pins.is_empty() {
            bail!("no page {page:?} in generation {g} (see `pushwise sets list`)");
        }
        if json {
            return print_json(&page_pins);
        }
        writeln!(
            out(),
            "{page}: no views in generation {g} yet; its pins and bans apply once it has some"
        )?;
        return print_pins(&page_pins);
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
        pins: page_pins,
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
    drop(o);
    print_pins(&show.pins)
}

fn print_pins(pins: &[PinRow]) -> anyhow::Result<()> {
    let mut o = out();
    for p in pins {
        writeln!(
            o,
            "{} {} (from the next analyzer pass after it was set)",
            match p.action {
                PinAction::Pin => "pinned:",
                PinAction::Ban => "banned:",
            },
            p.asset
        )?;
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
    let page = page_arg(page);
    let asset = same_origin_path(asset)?;
    if action.is_some() && !store.path_known(&asset).await? {
        eprintln!(
            "warning: {asset} was never requested from this server: pushwise pushes it only if \
             the origin serves it (check the path)"
        );
    }
    let changed = store.set_pin(&page, &asset, action).await?;
    let said = match action {
        Some(PinAction::Pin) => format!("pinned {asset} for {page} (from the next analyzer pass)"),
        Some(PinAction::Ban) => format!("banned {asset} for {page} (from the next analyzer pass)"),
        None if changed => format!("removed the pin or ban of {asset} for {page}"),
        None => bail!(
            "nothing to unpin: {page} has no pin or ban of {asset} (see `pushwise sets pins`)"
        ),
    };
    writeln!(out(), "{said}")?;
    Ok(())
}

/// An asset argument as a path on this site: push is same-origin only, so another origin's URL
/// (`https://cdn.example.com/x.js`, `//cdn/x.js`) is refused instead of stored as a path that
/// never matches.
fn same_origin_path(asset: &str) -> anyhow::Result<String> {
    let a = asset.trim();
    if a.contains("://") || a.starts_with("//") {
        bail!(
            "{a:?} is a URL: pins take a path on this site, like /css/site.css (pushwise pushes \
             only same-origin assets)"
        );
    }
    if a.is_empty() {
        bail!("the asset path is empty: give a path on this site, like /css/site.css");
    }
    Ok(page_arg(a))
}
