//! Writes a synthetic combined-format access log for a site: `genlog --site examples/site --lines 1000000 > access.log`.

use std::io::{BufWriter, Write};
use std::path::PathBuf;

use clap::Parser;
use pushwise_bench::site::SiteMap;
use pushwise_bench::synth::{SynthConfig, combined_line, generate};

#[derive(Parser)]
struct Args {
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
    let site = SiteMap::scan(&a.site)?;
    // About 4.5 lines per visit with the default model; draw enough and cut.
    let cfg = SynthConfig {
        visits: a.lines / 4 + 10,
        seed: a.seed,
        start_ms: a.start_ms.unwrap_or(SynthConfig::default().start_ms),
        ..Default::default()
    };
    let (hits, _) = generate(&site, &cfg);
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
