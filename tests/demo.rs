//! End-to-end: `pushwise demo --fast` learns the site's shared assets, learned push is not slower
//! than no push, and nothing is left running.

mod common;

use common::*;

#[test]
fn the_fast_demo_learns_shared_assets_and_push_is_not_slower() {
    // Its own TMPDIR, to see that the demo removes its temporary directory; --db to keep what it
    // learned where asked.
    let tmp = tempfile::tempdir().unwrap();
    let kept = tempfile::tempdir().unwrap();
    let learned_db = kept.path().join("learned.db");
    let o = std::process::Command::new(bin())
        .env("TMPDIR", tmp.path())
        .arg("--db")
        .arg(&learned_db)
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
    assert_eq!(db, learned_db.to_str().unwrap(), "--db is honoured");
    assert!(r["directory"].is_null(), "{r}");
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().flatten().collect();
    assert!(left.is_empty(), "the demo left {left:?} behind");
    let o = std::process::Command::new(bin())
        .arg("--db")
        .arg(&learned_db)
        .args(["sets", "show", "/"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd);
            assert!(!cmd.contains(db), "left running: {cmd}");
        }
    }
}
