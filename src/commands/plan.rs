//! `pushwise plan`: what the server would push or hint for a request (or a batch of them), and why.

use std::io::{BufRead, Write};

use std::path::Path;

use anyhow::Context as _;
use std::collections::HashMap;

use pushwise_store::PushSets;
use pushwise_store::quiet::Activity;
use pushwise_store::sets::request_context;

use crate::cli::PlanArgs;
use crate::open::open_inspect;
use crate::output::{out, page_arg, print_json, table};

#[derive(serde::Deserialize)]
struct PlanLine {
    page: String,
    #[serde(default)]
    user_agent: Option<String>,
    #[serde(default)]
    referer: Option<String>,
    /// Who made the request (any string: requests with the same one are one client), for the
    /// quiet-client rule.
    #[serde(default)]
    client: Option<String>,
    /// What this view went on to fetch, for the client's later lines: the server sees a client's
    /// requests after each page view, so a batch line carries them. Absent: unknown.
    #[serde(default)]
    fetched: Option<Vec<String>>,
    /// When the request was made (Unix ms), so a client idle for a day is forgotten as the
    /// server forgets it. Absent: never forgotten.
    #[serde(default)]
    ts_ms: Option<i64>,
}

pub async fn run(db: &Path, a: PlanArgs) -> anyhow::Result<()> {
    if a.page.is_none() && a.batch.is_none() {
        anyhow::bail!(
            "give --page PATH for one request, or --batch FILE (- for stdin) for many, one JSON \
             line each"
        );
    }
    let store = open_inspect(db).await?;
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
        "{t}\n(before per-client skips: cache digest, this connection's diary, holdout, quiet-client rule)"
    )?;
    Ok(())
}

/// Answers one JSON request per input line with `{"push": [...], "context": ..., "level": ...,
/// "quiet": ...}`: the set, the request context it was classified into, the back-off level that
/// decided, and whether the quiet-client rule held the client back (lines that name a `client`
/// and what each view `fetched` replay it, in order).
///
/// Every input line gets exactly one output line, in order (a blank or malformed one gets
/// `{"error": ..., "line": N}`), so outputs can be zipped with inputs; the command fails at the
/// end if any line did.
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
    let mut failed = 0u64;
    let after = sets.quiet_after();
    let mut clients: HashMap<String, Activity> = HashMap::new();
    for (i, line) in input.split(b'\n').enumerate() {
        let line = line.with_context(|| format!("reading {}", batch.display()))?;
        let parsed = std::str::from_utf8(&line)
            .map_err(|_| "not UTF-8 text".to_string())
            .and_then(|text| {
                if text.trim().is_empty() {
                    Err("empty line: expected {\"page\": ...}".to_string())
                } else {
                    serde_json::from_str::<PlanLine>(text).map_err(|e| e.to_string())
                }
            });
        let l = match parsed {
            Ok(l) => l,
            Err(e) => {
                failed += 1;
                serde_json::to_writer(
                    &mut o,
                    &serde_json::json!({"error": format!("not a plan request: {e}"), "line": i + 1}),
                )?;
                o.write_all(b"\n")?;
                continue;
            }
        };
        let ctx = request_context(l.user_agent.as_deref(), l.referer.as_deref(), hosts);
        let d = sets.decide(&page_arg(&l.page), ctx);
        // The quiet-client rule, as the server applies it (held back: nothing pushed or hinted).
        let quiet = l.client.filter(|_| !d.assets.is_empty()).is_some_and(|c| {
            let took = l
                .fetched
                .as_ref()
                .map(|f| d.assets.iter().any(|x| f.contains(&x.path)));
            clients
                .entry(c)
                .or_default()
                .replay_view(l.ts_ms, after, took)
        });
        let push: Vec<&String> = if quiet {
            Vec::new()
        } else {
            d.assets.iter().map(|a| &a.path).collect()
        };
        serde_json::to_writer(
            &mut o,
            &serde_json::json!({
                "push": push,
                "context": d.context,
                "level": d.source,
                "quiet": quiet,
            }),
        )?;
        o.write_all(b"\n")?;
    }
    o.flush()?;
    drop(o);
    if failed > 0 {
        anyhow::bail!(
            "{failed} line(s) of {} were not plan requests (answered with an \"error\" object each)",
            batch.display()
        );
    }
    Ok(())
}
