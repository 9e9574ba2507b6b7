//! `pushwise plan`: what the server would push or hint for a request (or a batch of them), and why.

use std::io::{BufRead, Write};
use std::path::Path;

use anyhow::Context as _;
use pushwise_store::PushSets;
use pushwise_store::sets::request_context;

use crate::cli::PlanArgs;
use crate::open::open_existing;
use crate::output::{out, page_arg, print_json, table};

#[derive(serde::Deserialize)]
struct PlanLine {
    page: String,
    #[serde(default)]
    user_agent: Option<String>,
    #[serde(default)]
    referer: Option<String>,
}

pub async fn run(db: &Path, a: PlanArgs) -> anyhow::Result<()> {
    let store = open_existing(db).await?;
    let sets = PushSets::new();
    sets.reload_if_newer(&store).await?;
    let hosts: Vec<&str> = a.hosts.iter().map(String::as_str).collect();
    if let Some(batch) = &a.batch {
        return plan_batch(&sets, batch, &hosts);
    }
    let page = page_arg(a.page.as_deref().unwrap_or("/"));
    let ctx = request_context(a.user_agent.as_deref(), a.referer.as_deref(), &hosts);
    let d = sets.decide(&page, ctx);
    if a.json {
        return print_json(&d);
    }
    let mut o = out();
    let why = d.source.explain();
    writeln!(
        o,
        "{page} as {} (generation {}): {why}",
        d.context.as_str(),
        d.generation
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
            x.as_type.as_str().to_string(),
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

/// Answers one JSON request per input line with `{"push": [...], "context": ..., "level": ...}`:
/// the set, the request context it was classified into and the back-off level that decided.
fn plan_batch(sets: &PushSets, batch: &std::path::Path, hosts: &[&str]) -> anyhow::Result<()> {
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
        let ctx = request_context(l.user_agent.as_deref(), l.referer.as_deref(), hosts);
        let d = sets.decide(&page_arg(&l.page), ctx);
        serde_json::to_writer(
            &mut o,
            &serde_json::json!({
                "push": d.assets.iter().map(|a| &a.path).collect::<Vec<_>>(),
                "context": d.context,
                "level": d.source,
            }),
        )?;
        o.write_all(b"\n")?;
    }
    o.flush()?;
    Ok(())
}
