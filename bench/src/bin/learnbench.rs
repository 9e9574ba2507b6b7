//! The learning benchmark: on a shaped log, learn on the older 70% and score the newer 30%
//! (digest-aware) for plain co-occurrence, the per-page oracle and pushwise following its own
//! `tune`: `learnbench --pushwise target/release/pushwise --seeds 1,2,3,4`.

use std::path::PathBuf;

use clap::Parser;
use pushwise_bench::learn::{LearnResult, SEEN_BUCKETS, SeenScore, run};
use pushwise_bench::score::Score;
use pushwise_bench::shaped::ShapedConfig;

#[derive(Parser)]
struct Args {
    /// The pushwise binary to measure.
    #[arg(long)]
    pushwise: PathBuf,
    /// Page views in each log (crawlers included); the default, over four days, is the size of
    /// the real log the learning issue measured (about 10,000 lines). Longer logs keep the rate.
    #[arg(long, default_value_t = 5_000)]
    views: usize,
    /// Distinct pages of the modelled site.
    #[arg(long, default_value_t = 800)]
    pages: usize,
    /// One log per seed; the table shows each and their mean.
    #[arg(long, value_delimiter = ',', default_value = "1,2,3,4")]
    seeds: Vec<u64>,
    /// Share of page views (oldest first) to learn on.
    #[arg(long, default_value_t = 0.7)]
    share: f64,
    /// Working directory (logs, databases, plan requests); a temporary one by default.
    #[arg(long)]
    work: Option<PathBuf>,
    /// Print the results as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let work = a.work.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("pushwise-learnbench-{}", std::process::id()))
    });
    let mut results: Vec<(u64, LearnResult)> = Vec::new();
    for &seed in &a.seeds {
        let cfg = ShapedConfig {
            duration_ms: ShapedConfig::default().duration_ms * a.views as i64 / 5_000,
            page_views: a.views,
            pages: a.pages,
            seed,
            ..ShapedConfig::default()
        };
        results.push((
            seed,
            run(&a.pushwise, &cfg, a.share, &work.join(seed.to_string()))?,
        ));
    }
    if a.json {
        let j: Vec<_> = results
            .iter()
            .map(|(s, r)| serde_json::json!({"seed": s, "result": r}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&j)?);
        return Ok(());
    }
    let r0 = &results[0].1;
    println!(
        "{} page views per log ({} pages, about {} by browsers), learned on the oldest {:.0}%, scored on the rest digest-aware\n",
        r0.views,
        a.pages,
        r0.browser_views,
        a.share * 100.0
    );
    let f = |s: &Score| format!("{:.3}", s.f1);
    let mut head = String::from("| learner (F1) |");
    let mut rule = String::from("|---|");
    for (seed, _) in &results {
        head += &format!(" seed {seed} |");
        rule += "---|";
    }
    println!("{head} mean |\n{rule}---|");
    type Column = fn(&LearnResult) -> f64;
    let rows: [(&str, Column); 6] = [
        (
            "plain per-page co-occurrence, best threshold (hindsight)",
            |r| r.plain_cooccurrence.f1,
        ),
        (
            "the same with pushwise's quiet-client rule (after 1 quiet view), best threshold (hindsight)",
            |r| r.plain_quiet.f1,
        ),
        (
            "per-page oracle: same counts, each page's threshold chosen on the newer part",
            |r| r.per_page_oracle.f1,
        ),
        ("**pushwise following its own `tune`**", |r| r.pushwise.f1),
        ("`tune`'s prediction for its recommendation", |r| {
            r.tune.predicted_f1
        }),
        (
            "(hindsight reference, not a learner) per-page co-occurrence counted on the scored views themselves",
            |r| r.memorised_newer.f1,
        ),
    ];
    for (name, get) in rows {
        let vals: Vec<f64> = results.iter().map(|(_, r)| get(r)).collect();
        let mean = vals.iter().sum::<f64>() / vals.len() as f64;
        let cells: String = vals.iter().map(|v| format!(" {v:.3} |")).collect();
        println!("| {name} |{cells} {mean:.3} |");
    }
    println!();
    // Where the references win: the oracle's per-page threshold is chosen on the scored views,
    // which on a page seen once or twice is hindsight about those few views themselves.
    println!(
        "| F1 on browser views of pages seen N times while learning (mean over seeds) | newer views | pushwise | per-page oracle | plain |"
    );
    println!("|---|---|---|---|---|");
    for (i, &(lo, hi)) in SEEN_BUCKETS.iter().enumerate() {
        let n = results.len() as f64;
        let mean = |g: fn(&SeenScore) -> f64| {
            results.iter().map(|(_, r)| g(&r.by_seen[i])).sum::<f64>() / n
        };
        let label = match (lo, hi) {
            (a, b) if a == b => format!("{a}"),
            (a, usize::MAX) => format!("{a}+"),
            (a, b) => format!("{a}-{b}"),
        };
        println!(
            "| {label} | {:.0} | {:.3} | {:.3} | {:.3} |",
            mean(|s| s.newer_browser_views as f64),
            mean(|s| s.pushwise.f1),
            mean(|s| s.per_page_oracle.f1),
            mean(|s| s.plain_cooccurrence.f1)
        );
    }
    println!();
    for (seed, r) in &results {
        println!(
            "seed {seed}: pushwise P {:.3} R {:.3} (plain P {:.3} R {:.3}); tune chose threshold {}, min support {}, caps {} / {} B, quiet after {}; predicted {:.3}, scored {} ({:+.3}); levels {:?}",
            r.pushwise.precision,
            r.pushwise.recall,
            r.plain_cooccurrence.precision,
            r.plain_cooccurrence.recall,
            r.tune.threshold,
            r.tune.min_support,
            r.tune.max_count,
            r.tune.max_bytes,
            r.tune.quiet_after,
            r.tune.predicted_f1,
            f(&r.pushwise),
            r.pushwise.f1 - r.tune.predicted_f1,
            r.levels
        );
    }
    Ok(())
}
