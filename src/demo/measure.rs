//! The demo's last phase: page loads through a delay proxy at the emulated RTT, for no push,
//! learned push, Early Hints only, an oracle set, and repeat visits with and without the digest.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;

use pushwise_bench::loader::{LoadConfig, load_page, median_p90};
use pushwise_bench::site::SiteMap;
use pushwise_bench::synth::BROWSER_UAS;
use serde::Serialize;

/// One configuration's page loads.
#[derive(Serialize, Clone)]
pub struct Measured {
    pub config: &'static str,
    pub median_ms: f64,
    pub p90_ms: f64,
    pub loads: usize,
    pub pushed_used: usize,
    pub pushed_wasted: usize,
    pub speedup_vs_no_push: f64,
}

/// Where a configuration's loads go (through the proxy) and how the client behaves.
struct Case {
    name: &'static str,
    proxy: SocketAddr,
    server: SocketAddr,
    push: bool,
    hints: bool,
    repeat: bool,
}

/// The proxy and server address of the learned-set server and of the oracle server.
pub struct Targets {
    pub learned: (SocketAddr, SocketAddr),
    pub oracle: (SocketAddr, SocketAddr),
}

/// Index of the first repeat-visit case: its speed-ups are against "no push, repeat visit".
const FIRST_REPEAT: usize = 4;

fn cases(t: &Targets) -> [Case; 6] {
    let case = |name, (proxy, server), push, hints, repeat| Case {
        name,
        proxy,
        server,
        push,
        hints,
        repeat,
    };
    [
        case("no push", t.learned, false, false, false),
        case("learned push", t.learned, true, false, false),
        case("Early Hints only", t.learned, false, true, false),
        case("oracle push", t.oracle, true, false, false),
        case("no push, repeat visit", t.learned, false, false, true),
        case(
            "learned push + digest, repeat visit",
            t.learned,
            true,
            false,
            true,
        ),
    ]
}

/// The number of page loads [`measure`] makes.
pub fn load_count(site: &SiteMap, runs: usize) -> u64 {
    (6 * runs * site.pages.len()) as u64
}

/// Loads every page `runs` times per configuration; speed-ups are against the no-push loads of
/// the same kind (first or repeat visit).
pub async fn measure(
    site: &SiteMap,
    targets: &Targets,
    tls: Arc<rustls::ClientConfig>,
    runs: usize,
    pb: &indicatif::ProgressBar,
) -> anyhow::Result<Vec<Measured>> {
    let mut results = Vec::new();
    for c in &cases(targets) {
        results.push(measure_case(site, c, &tls, runs, pb).await?);
    }
    let (base, base_repeat) = (results[0].median_ms, results[FIRST_REPEAT].median_ms);
    for (i, r) in results.iter_mut().enumerate() {
        let b = if i >= FIRST_REPEAT { base_repeat } else { base };
        r.speedup_vs_no_push = if r.median_ms > 0.0 {
            b / r.median_ms
        } else {
            0.0
        };
    }
    Ok(results)
}

async fn measure_case(
    site: &SiteMap,
    c: &Case,
    tls: &Arc<rustls::ClientConfig>,
    runs: usize,
    pb: &indicatif::ProgressBar,
) -> anyhow::Result<Measured> {
    let cfg = LoadConfig {
        connect: c.proxy,
        authority: super::authority(c.server),
        push: c.push,
        follow_hints: c.hints,
        user_agent: format!("{} demo-measure", BROWSER_UAS[0]),
        subresources: true,
    };
    let mut samples = Vec::new();
    let (mut used, mut wasted) = (0, 0);
    for _ in 0..runs {
        for p in &site.pages {
            let mut cache = HashSet::new();
            let mut cookie = None;
            if c.repeat {
                let first = load_page(&cfg, tls.clone(), &p.path, None, None, &mut cache).await?;
                cookie = first.cookie;
            }
            let r = load_page(
                &cfg,
                tls.clone(),
                &p.path,
                None,
                cookie.as_deref(),
                &mut cache,
            )
            .await?;
            used += r.pushed_used.len();
            wasted += r.pushed_wasted.len();
            samples.push(r.elapsed);
            pb.inc(1);
        }
    }
    let (median_ms, p90_ms) = median_p90(&mut samples);
    Ok(Measured {
        config: c.name,
        median_ms,
        p90_ms,
        loads: samples.len(),
        pushed_used: used,
        pushed_wasted: wasted,
        speedup_vs_no_push: 0.0,
    })
}
