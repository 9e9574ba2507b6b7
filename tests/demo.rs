//! End-to-end: `pushwise demo --fast` learns the site's shared assets, learned push is not slower
//! than no push, and nothing is left running.

mod common;

use common::*;

#[test]
fn the_fast_demo_learns_shared_assets_and_push_is_not_slower() {
    let o = std::process::Command::new(bin())
        .args([
            "demo",
            "--fast",
            "--json",
            "--site",
            site().to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let home = r["sets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["page"] == "/")
        .unwrap();
    let assets: Vec<&str> = home["assets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    for a in [
        "/css/site.css",
        "/js/app.js",
        "/img/logo.svg",
        "/fonts/open-sans-300.woff2",
    ] {
        assert!(assets.contains(&a), "{a} not learned for /: {assets:?}");
    }
    let median = |name: &str| -> f64 {
        r["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["config"] == name)
            .unwrap()["median_ms"]
            .as_f64()
            .unwrap()
    };
    let (no_push, learned) = (median("no push"), median("learned push"));
    assert!(
        learned <= no_push,
        "learned push {learned} ms slower than no push {no_push} ms"
    );
    // Repeat visits with the digest cookie push nothing the browser has.
    let repeat = r["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["config"] == "learned push + digest, repeat visit")
        .unwrap();
    assert_eq!(repeat["pushed_wasted"], 0);
    // The demo's servers are gone: no process still has its database open.
    let db = r["database"].as_str().unwrap();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd);
            assert!(!cmd.contains(db), "left running: {cmd}");
        }
    }
    let _ = std::fs::remove_dir_all(std::path::Path::new(db).parent().unwrap());
}
