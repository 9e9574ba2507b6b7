//! `pushwise tune`: score thresholds on a time-ordered split and recommend (or apply) one.

use std::io::Write;
use std::path::Path;

use anyhow::Context as _;
use pushwise_analyzer::tune::{self, Objective, TunePoint, TuneReport};
use pushwise_store::Store;
use pushwise_store::quiet::QuietAfter;
use pushwise_store::rows::{MaxBytes, MaxCount, MinSupport, Probability, ThresholdUpdate};

use crate::cli::{ObjectiveArg, TuneArgs};
use crate::open::{open_existing, open_inspect};
use crate::output::{out, print_json, pushwise_db, table};

pub async fn run(db: &Path, a: TuneArgs) -> anyhow::Result<()> {
    // Scoring only reads; only --apply writes (the one setting it stores).
    let store = if a.apply {
        open_existing(db).await?
    } else {
        open_inspect(db).await?
    };
    let lp = a.learn.params();
    let objective = match a.objective {
        ObjectiveArg::F1 => Objective::F1,
        ObjectiveArg::Bytes => Objective::BytesRatio,
    };
    let report = tune::tune(&store, &lp, objective, a.train_share, a.window_events).await?;
    if let Some(p) = &a.plot {
        std::fs::write(p, tune::plot(&report))
            .with_context(|| format!("writing {}", p.display()))?;
    }
    if a.apply
        && let Some(r) = &report.recommended
    {
        apply(&store, r).await?;
    }
    if a.json {
        return print_json(&report);
    }
    print_report(db, &report, &a)
}

/// Stores a recommendation as the global threshold, minimum support, caps and quiet-client rule.
pub async fn apply(store: &Store, r: &TunePoint) -> anyhow::Result<()> {
    let u = ThresholdUpdate {
        probability: Some(Probability::new(r.threshold)?),
        min_support: Some(MinSupport::new(r.min_support)?),
        max_count: Some(MaxCount::new(
            i64::try_from(r.max_count).unwrap_or(i64::MAX),
        )?),
        max_bytes: Some(MaxBytes::new(r.max_bytes)?),
        quiet_after: Some(QuietAfter::new(i64::from(r.quiet_after))?),
    };
    store.set_threshold(None, u).await?;
    Ok(())
}

fn print_report(db: &Path, report: &TuneReport, a: &TuneArgs) -> anyhow::Result<()> {
    let mut o = out();
    writeln!(
        o,
        "replaying the newest {} events at most (from event {}): learned on {} page views, scored on the {} newer ones",
        report.window_events, report.from_event_id, report.train_views, report.test_views
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
    let mut seen = std::collections::HashSet::new();
    for p in report.grid.iter().filter(|p| {
        p.min_support == rec.min_support
            && (p.max_count, p.max_bytes, p.quiet_after)
                == (rec.max_count, rec.max_bytes, rec.quiet_after)
            && seen.insert(p.threshold.to_bits())
    }) {
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
    writeln!(
        o,
        "at minimum support {}, at most {} assets and {} bytes per set, {}:\n{t}",
        rec.min_support,
        rec.max_count,
        rec.max_bytes,
        quiet_rule(rec.quiet_after)
    )?;
    writeln!(
        o,
        "recommended: threshold {:.2}, minimum support {}, at most {} assets and {} bytes per set, {}\n\
         held-out score: F1 {:.3} (precision {:.3}, recall {:.3}), {:.0} wasted bytes per view\n\
         scoring: {}\nrule: {}",
        rec.threshold,
        rec.min_support,
        rec.max_count,
        rec.max_bytes,
        quiet_rule(rec.quiet_after),
        rec.f1,
        rec.precision,
        rec.recall,
        rec.wasted_bytes_per_view,
        report.scoring,
        report.rule
    )?;
    if a.apply {
        writeln!(o, "applied as the global setting")?;
    } else {
        writeln!(
            o,
            "apply with: {} threshold set {:.2} --min-support {} --max-count {} --max-bytes {} --quiet-after {}",
            pushwise_db(db),
            rec.threshold,
            rec.min_support,
            rec.max_count,
            rec.max_bytes,
            rec.quiet_after
        )?;
    }
    if let Some(p) = &a.plot {
        writeln!(o, "chart written to {}", p.display())?;
    }
    Ok(())
}

/// The quiet-client setting in words.
fn quiet_rule(after: u16) -> String {
    match after {
        0 => "no quiet-client rule".to_string(),
        n => format!("clients held back after {n} quiet view(s)"),
    }
}
