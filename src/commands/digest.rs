//! `pushwise digest`: encode URLs into a cache digest, or decode one and test URLs against it.

use std::io::Write;

use anyhow::bail;
use pushwise_server::digest::CacheDigest;

use crate::cli::DigestCmd;
use crate::output::{out, print_json};

pub fn run(c: DigestCmd) -> anyhow::Result<()> {
    match c {
        DigestCmd::Encode { p, urls, json } => {
            absolute(&urls)?;
            let d = CacheDigest::from_urls(urls.iter().map(|u| (u.as_str(), None)), p);
            if json {
                // The same keys as `decode --json`: `entries` counts, `urls` lists.
                return print_json(&serde_json::json!({
                    "value": d.encode(), "entries": urls.len(), "urls": urls,
                    "log2_n": d.log2_n(), "log2_p": d.log2_p(),
                }));
            }
            writeln!(out(), "{}", d.encode())?;
        }
        DigestCmd::Decode { value, urls, json } => {
            absolute(&urls)?;
            let Some(d) = CacheDigest::decode(&value) else {
                bail!("not a valid cache digest (a server treats it as no digest)");
            };
            let checks: Vec<(String, bool)> = urls
                .iter()
                .map(|u| (u.clone(), d.contains(u, None)))
                .collect();
            if json {
                return print_json(&serde_json::json!({
                    "log2_n": d.log2_n(), "log2_p": d.log2_p(), "entries": d.len(),
                    "false_positive_rate": 1.0 / f64::from(1u32 << d.log2_p()),
                    "urls": checks.iter().map(|(u, c)| serde_json::json!({"url": u, "present": c})).collect::<Vec<_>>(),
                }));
            }
            let mut o = out();
            writeln!(
                o,
                "{} {}, N = 2^{}, false-positive rate 1/{}",
                d.len(),
                if d.len() == 1 { "entry" } else { "entries" },
                d.log2_n(),
                1u64 << d.log2_p()
            )?;
            for (u, present) in checks {
                writeln!(o, "{} {u}", if present { "present" } else { "absent " })?;
            }
        }
    }
    Ok(())
}

/// Digests key on absolute URLs: a relative one would never match (decode would say "absent"
/// whatever the digest holds), so both directions refuse it alike.
fn absolute(urls: &[String]) -> anyhow::Result<()> {
    for u in urls {
        if !(u.starts_with("https://") || u.starts_with("http://")) {
            bail!(
                "{u:?} is not an absolute URL: digests key on the full URL, like https://example.com{}",
                if u.starts_with('/') {
                    u.as_str()
                } else {
                    "/css/site.css"
                }
            );
        }
    }
    Ok(())
}
