//! Writes a synthetic combined-format access log: `genlog --lines 10000 > access.log` (shaped like
//! a real site's log), or `genlog --preset kind --site examples/site --lines 1000000` (the example
//! site's tidy traffic, for throughput and scale benchmarks).

use std::io::{BufWriter, Write};
use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use pushwise_bench::shaped::ShapedConfig;
use pushwise_bench::site::SiteMap;
use pushwise_bench::synth::{Hit, SynthConfig, combined_line, generate};

#[derive(Clone, Copy, ValueEnum)]
enum Preset {
    /// A real small site's shape (bench/src/shaped.rs): crawlers, warm caches, a long tail of
    /// rarely seen pages, slide decks, Referer-less and hot-linked fetches. Ignores --site.
    Shaped,
    /// The pages of --site, every visitor a browser or a crawler on a popular page: tidy.
    Kind,
}

#[derive(Parser)]
struct Args {
    #[arg(long, value_enum, default_value_t = Preset::Shaped)]
    preset: Preset,
    /// The site whose pages the kind preset visits.
    #[arg(long, default_value = "examples/site")]
    site: PathBuf,
    /// Stop after about this many lines.
    #[arg(long, default_value_t = 100_000)]
    lines: usize,
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Unix milliseconds of the first visit (default: 2026-01-01), to make a log that follows
    /// another one in time.
    #[arg(long)]
    start_ms: Option<i64>,
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let hits: Vec<Hit> = match a.preset {
        Preset::Kind => {
            let site = SiteMap::scan(&a.site)?;
            // About 4.5 lines per visit with the default model; draw enough and cut.
            let cfg = SynthConfig {
                visits: a.lines / 4 + 10,
                seed: a.seed,
                start_ms: a.start_ms.unwrap_or(SynthConfig::default().start_ms),
                ..Default::default()
            };
            generate(&site, &cfg).0
        }
        Preset::Shaped => {
            // About 2.5 lines per page view at the default shape; the duration keeps its rate.
            let views = a.lines * 2 / 5 + 10;
            let d = ShapedConfig::default();
            let cfg = ShapedConfig {
                page_views: views,
                duration_ms: d.duration_ms * views as i64 / d.page_views as i64,
                seed: a.seed,
                start_ms: a.start_ms.unwrap_or(d.start_ms),
                ..d
            };
            pushwise_bench::shaped::generate(&cfg).0
        }
    };
    let mut out = BufWriter::new(std::io::stdout().lock());
    for h in hits.iter().take(a.lines) {
        if let Err(e) = writeln!(out, "{}", combined_line(h)) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(());
            }
            return Err(e.into());
        }
    }
    out.flush()?;
    Ok(())
}
