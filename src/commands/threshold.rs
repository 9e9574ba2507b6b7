//! `pushwise threshold`: show, set or clear the probability threshold, minimum support and caps.

use std::io::Write;
use std::path::Path;

use pushwise_analyzer::SelectParams;
use pushwise_store::rows::ThresholdUpdate;
use serde::Serialize;

use crate::cli::ThresholdCmd;
use crate::open::{open_existing, open_inspect};
use crate::output::{out, page_arg, print_json, table};

pub async fn run(db: &Path, c: ThresholdCmd) -> anyhow::Result<()> {
    match c {
        ThresholdCmd::Set {
            value,
            page,
            min_support,
            max_count,
            max_bytes,
            quiet_after,
        } => {
            let page = page.as_deref().map(page_arg);
            // A setting in a database nothing records into would be lost: refuse a missing one.
            let store = open_existing(db).await?;
            let u = ThresholdUpdate {
                probability: Some(value),
                min_support,
                max_count,
                max_bytes,
                quiet_after,
            };
            store.set_threshold(page.as_deref(), u).await?;
            writeln!(
                out(),
                "threshold {} {}{}{}{}{} (used from the next analyzer pass{})",
                value.get(),
                page.as_deref()
                    .map_or("globally".to_string(), |p| format!("for {p}")),
                min_support.map_or(String::new(), |m| format!(", minimum support {}", m.get())),
                max_count.map_or(String::new(), |m| format!(", at most {} assets", m.get())),
                max_bytes.map_or(String::new(), |m| format!(", at most {} bytes", m.get())),
                quiet_after.map_or(String::new(), |q| if q.is_off() {
                    ", quiet-client rule off".to_string()
                } else {
                    format!(", clients held back after {} quiet view(s)", q.get())
                }),
                if quiet_after.is_some() {
                    "; the quiet-client rule from the servers' next reload"
                } else {
                    ""
                },
            )?;
        }
        ThresholdCmd::Show { json } => {
            let store = open_inspect(db).await?;
            let rows = store.thresholds().await?;
            let d = SelectParams::default();
            if json {
                #[derive(Serialize)]
                struct Defaults {
                    threshold: f64,
                    min_support: i64,
                    max_count: usize,
                    max_bytes: i64,
                    quiet_after: u16,
                }
                #[derive(Serialize)]
                struct J {
                    defaults: Defaults,
                    settings: Vec<pushwise_store::rows::ThresholdRow>,
                }
                return print_json(&J {
                    defaults: Defaults {
                        threshold: d.threshold,
                        min_support: d.min_support,
                        max_count: d.max_count,
                        max_bytes: d.max_bytes,
                        quiet_after: d.quiet_after.get(),
                    },
                    settings: rows,
                });
            }
            let mut t = table(&[
                "page",
                "threshold",
                "min support",
                "max assets",
                "max bytes",
                "quiet after",
            ]);
            t.add_row(vec![
                "(built-in default)".into(),
                d.threshold.to_string(),
                d.min_support.to_string(),
                d.max_count.to_string(),
                d.max_bytes.to_string(),
                "0 (off)".into(),
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
                    r.max_count.map_or("-".into(), |v| v.to_string()),
                    r.max_bytes.map_or("-".into(), |v| v.to_string()),
                    r.quiet_after.map_or("-".into(), |v| v.to_string()),
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
