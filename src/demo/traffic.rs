//! The demo's first phase: synthetic visitors (browsers with cold and warm caches, some refusing
//! push, crawlers) browse the example site through a running server, which records them.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;

use pushwise_bench::loader::{LoadConfig, load_page};
use pushwise_bench::site::SiteMap;
use pushwise_bench::synth::BROWSER_UAS;

/// One visitor: who it is and the pages it views, in order.
struct Visit {
    id: usize,
    bot: bool,
    returning: bool,
    push: bool,
    pages: Vec<String>,
}

/// `visits` visitors drawn from a fixed seed, so every demo run drives the same traffic.
fn plan_visits(site: &SiteMap, visits: usize) -> Vec<Visit> {
    let mut rng = fastrand::Rng::with_seed(42);
    (0..visits)
        .map(|id| {
            let bot = rng.f64() < 0.2;
            let returning = !bot && rng.f64() < 0.3;
            let push = rng.f64() < 0.6;
            let n = if bot { 1 } else { 1 + rng.usize(0..4) };
            let pages = (0..n)
                .map(|i| {
                    let p = if i == 0 && rng.f64() < 0.4 {
                        &site.pages[0]
                    } else {
                        &site.pages[rng.usize(0..site.pages.len())]
                    };
                    p.path.clone()
                })
                .collect();
            Visit {
                id,
                bot,
                returning,
                push,
                pages,
            }
        })
        .collect()
}

/// How a visitor's client behaves.
fn load_config(v: &Visit, server: SocketAddr) -> LoadConfig {
    LoadConfig {
        connect: server,
        authority: super::authority(server),
        push: v.push,
        follow_hints: !v.push,
        user_agent: if v.bot {
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)".to_string()
        } else {
            format!(
                "{} demo-visitor/{}",
                BROWSER_UAS[v.id % BROWSER_UAS.len()],
                v.id
            )
        },
        subresources: !v.bot,
    }
}

/// Drives the visits against `server`, eight at a time; returns the number of page views.
pub async fn drive(
    site: &SiteMap,
    server: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    visits: usize,
    pb: &indicatif::ProgressBar,
) -> anyhow::Result<usize> {
    let all_assets: HashSet<String> = site.pages.iter().flat_map(|p| p.all_assets()).collect();
    let sem = Arc::new(tokio::sync::Semaphore::new(8));
    let mut tasks = tokio::task::JoinSet::new();
    let mut page_views = 0;
    for v in plan_visits(site, visits) {
        page_views += v.pages.len();
        let cfg = load_config(&v, server);
        let (tls, sem, pb) = (tls.clone(), Arc::clone(&sem), pb.clone());
        let mut cache: HashSet<String> = if v.returning {
            all_assets.clone()
        } else {
            HashSet::new()
        };
        tasks.spawn(async move {
            let _permit = sem.acquire().await;
            let mut cookie = None;
            let mut prev: Option<String> = None;
            for p in &v.pages {
                let r = load_page(
                    &cfg,
                    tls.clone(),
                    p,
                    prev.as_deref(),
                    cookie.as_deref(),
                    &mut cache,
                )
                .await?;
                cookie = r.cookie.or(cookie);
                prev = Some(p.clone());
            }
            pb.inc(1);
            anyhow::Ok(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(page_views)
}
