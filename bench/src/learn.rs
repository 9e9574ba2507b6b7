//! The learning benchmark's protocol as a function, for `learnbench` and the end-to-end tests: on
//! a shaped log, pushwise imports the older part, follows its own `tune --apply`, learns, and
//! `plan --batch` answers every newer page view; the answers and the references are scored
//! digest-aware (see [`crate::score`]).

use std::collections::BTreeMap;
use std::io::{BufRead, BufWriter, Write};
use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};
use serde::Serialize;

use crate::score::{
    Newer, Score, best_threshold_quiet, best_threshold_sets, cooccurrence, per_page_oracle,
    split_ms,
};
use pushwise_store::context::section_of;

use crate::shaped::{ShapedConfig, ViewTruth, generate};
use crate::synth::combined_line;

/// What `tune` recommended, and the F1 it predicted for it.
#[derive(Debug, Clone, Serialize)]
pub struct TuneChoice {
    pub threshold: f64,
    pub min_support: i64,
    pub max_count: i64,
    pub max_bytes: i64,
    pub quiet_after: i64,
    pub predicted_f1: f64,
}

/// One section's scores.
#[derive(Debug, Clone, Serialize)]
pub struct SectionScore {
    pub views: usize,
    pub pushwise_f1: f64,
    pub memorised_f1: f64,
}

/// Everything one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct LearnResult {
    pub views: usize,
    pub browser_views: usize,
    pub older_views: usize,
    pub newer_views: usize,
    pub plain_cooccurrence: Score,
    /// Plain co-occurrence with the quiet-client rule: what the rule alone gives a plain learner.
    pub plain_quiet: Score,
    pub per_page_oracle: Score,
    /// Not a learner: per-page co-occurrence counted on the scored views themselves (it memorises
    /// what each page's scored views fetched, but pushes to crawlers like any per-page set).
    pub memorised_newer: Score,
    pub pushwise: Score,
    pub tune: TuneChoice,
    /// How many newer views each back-off level decided.
    pub levels: BTreeMap<String, usize>,
    pub by_section: BTreeMap<String, SectionScore>,
    /// The newer browser views by how many browser views their page had in the older part.
    pub by_seen: Vec<SeenScore>,
}

/// How often a page was seen while learning: never, once, 2–4 times, ...
pub const SEEN_BUCKETS: [(usize, usize); 6] =
    [(0, 0), (1, 1), (2, 4), (5, 19), (20, 99), (100, usize::MAX)];

/// The scores on the newer browser views of pages seen a number of times in the older part.
#[derive(Debug, Clone, Serialize)]
pub struct SeenScore {
    pub older_views: (usize, usize),
    pub newer_browser_views: usize,
    pub pushwise: Score,
    pub per_page_oracle: Score,
    pub plain_cooccurrence: Score,
}

fn pushwise(bin: &Path, db: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(bin)
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .with_context(|| format!("running {}", bin.display()))?;
    if !out.status.success() {
        bail!(
            "pushwise {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// Runs the protocol with the pushwise binary `bin`, in `work` (log, database, requests).
pub fn run(bin: &Path, cfg: &ShapedConfig, share: f64, work: &Path) -> anyhow::Result<LearnResult> {
    std::fs::create_dir_all(work)?;
    let (hits, truth) = generate(cfg);
    let split = split_ms(&truth, share);

    // pushwise: import the older part, follow its own tune, learn, plan every newer view.
    let log = work.join("older.log");
    let mut w = BufWriter::new(std::fs::File::create(&log)?);
    for h in hits.iter().filter(|h| h.ts_ms < split) {
        writeln!(w, "{}", combined_line(h))?;
    }
    w.flush()?;
    let db = work.join("learn.db");
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", db.display()));
    }
    let hosts: Vec<&str> = cfg
        .hosts
        .iter()
        .flat_map(|h| ["--host", h.as_str()])
        .collect();
    let mut import = vec!["import", log.to_str().context("work path")?];
    import.extend(&hosts);
    pushwise(bin, &db, &import)?;
    let tune: serde_json::Value =
        serde_json::from_str(&pushwise(bin, &db, &["tune", "--apply", "--json"])?)?;
    pushwise(bin, &db, &["analyze", "--once"])?;
    let newer = Newer::new(&truth, split);
    let requests = work.join("newer.jsonl");
    let mut w = BufWriter::new(std::fs::File::create(&requests)?);
    // Every view in time order (as `Newer` orders them), older ones too: the server saw them, so
    // the quiet-client rule knows their clients; only the newer ones' answers are scored.
    let mut all: Vec<&ViewTruth> = truth.iter().collect();
    all.sort_by_key(|v| v.ts_ms);
    for v in &all {
        serde_json::to_writer(
            &mut w,
            // The client and what the view then fetched: the server sees both (a client's
            // requests after each page view), and `plan` uses them only for later lines.
            &serde_json::json!({
                "page": v.page,
                "user_agent": v.user_agent,
                "referer": v.referer,
                "client": format!("{} {}", v.ip, v.user_agent),
                "fetched": v.fetched,
                "ts_ms": v.ts_ms,
            }),
        )?;
        w.write_all(b"\n")?;
    }
    w.flush()?;
    let mut plan = vec![
        "plan",
        "--json",
        "--batch",
        requests.to_str().context("work path")?,
    ];
    plan.extend(&hosts);
    let planned = pushwise(bin, &db, &plan)?;
    let mut sets: Vec<Vec<String>> = Vec::new();
    let mut levels = BTreeMap::<String, usize>::new();
    for (line, view) in planned.as_bytes().lines().zip(&all) {
        let v: serde_json::Value = serde_json::from_str(&line?)?;
        if view.ts_ms < split {
            continue;
        }
        sets.push(serde_json::from_value(v["push"].clone())?);
        *levels
            .entry(v["level"].as_str().unwrap_or("?").to_string())
            .or_default() += 1;
    }
    if sets.len() != newer.views.len() {
        bail!(
            "plan answered {} of {} requests",
            sets.len(),
            newer.views.len()
        );
    }
    let ours = newer.score(&sets);

    // The references: with hindsight on the threshold (globally, then per page).
    let older: Vec<&ViewTruth> = truth.iter().filter(|v| v.ts_ms < split).collect();
    let plain_table = cooccurrence(older.iter().copied());
    let (plain, plain_sets) = best_threshold_sets(&plain_table, &newer);
    let (oracle, oracle_sets) = per_page_oracle(&plain_table, &newer);
    let plain_quiet = best_threshold_quiet(&plain_table, &all, &newer, split);
    let memo_table = cooccurrence(newer.views.iter().copied());
    let (memo, memo_sets) = best_threshold_sets(&memo_table, &newer);
    let mut seen: std::collections::HashMap<&str, usize> = Default::default();
    for v in older.iter().filter(|v| v.browser) {
        *seen.entry(v.page.as_str()).or_default() += 1;
    }
    let by_seen = SEEN_BUCKETS
        .iter()
        .map(|&(lo, hi)| {
            let only = |v: &ViewTruth| {
                let n = seen.get(v.page.as_str()).copied().unwrap_or(0);
                v.browser && (lo..=hi).contains(&n)
            };
            SeenScore {
                older_views: (lo, hi),
                newer_browser_views: newer.views.iter().filter(|v| only(v)).count(),
                pushwise: newer.score_where(&sets, only),
                per_page_oracle: newer.score_where(&oracle_sets, only),
                plain_cooccurrence: newer.score_where(&plain_sets, only),
            }
        })
        .collect();
    let mut by_section = BTreeMap::new();
    for v in &newer.views {
        let name = section_of(&v.page);
        if by_section.contains_key(&name) {
            continue;
        }
        let only = |v: &ViewTruth| section_of(&v.page) == name;
        by_section.insert(
            name.clone(),
            SectionScore {
                views: newer.views.iter().filter(|v| only(v)).count(),
                pushwise_f1: newer.score_where(&sets, only).f1,
                memorised_f1: newer.score_where(&memo_sets, only).f1,
            },
        );
    }
    let rec = &tune["recommended"];
    Ok(LearnResult {
        views: truth.len(),
        browser_views: truth.iter().filter(|v| v.browser).count(),
        older_views: older.len(),
        newer_views: newer.views.len(),
        plain_cooccurrence: plain,
        plain_quiet,
        per_page_oracle: oracle,
        memorised_newer: memo,
        pushwise: ours,
        tune: TuneChoice {
            threshold: rec["threshold"].as_f64().unwrap_or(f64::NAN),
            min_support: rec["min_support"].as_i64().unwrap_or(0),
            max_count: rec["max_count"].as_i64().unwrap_or(0),
            max_bytes: rec["max_bytes"].as_i64().unwrap_or(0),
            quiet_after: rec["quiet_after"].as_i64().unwrap_or(0),
            predicted_f1: rec["f1"].as_f64().unwrap_or(0.0),
        },
        levels,
        by_section,
        by_seen,
    })
}
