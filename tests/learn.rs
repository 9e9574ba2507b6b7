//! End-to-end: import messy access logs, learn push sets, inspect, tune and plan them from the CLI;
//! and learn from live traffic served to nghttp.

mod common;

use std::io::Write;

use common::*;
use pushwise_bench::site::SiteMap;
use pushwise_bench::synth::{SynthConfig, combined_line, generate};

fn write_log(dir: &std::path::Path, visits: usize, seed: u64) -> std::path::PathBuf {
    let site = SiteMap::scan(&site()).unwrap();
    let (hits, _) = generate(
        &site,
        &SynthConfig {
            visits,
            seed,
            ..Default::default()
        },
    );
    let path = dir.join(format!("access-{seed}.log"));
    let mut f = std::fs::File::create(&path).unwrap();
    for h in &hits {
        writeln!(f, "{}", combined_line(h)).unwrap();
    }
    path
}

#[test]
fn import_counts_and_skips_malformed_lines_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");
    let log = dir.path().join("mixed.log");
    let good = r#"203.0.113.9 - - [10/Oct/2025:13:55:36 -0700] "GET /index.html HTTP/1.1" 200 3657 "-" "Mozilla/5.0 (X11) Firefox/121.0""#;
    let mut f = std::fs::File::create(&log).unwrap();
    writeln!(f, "{good}").unwrap();
    writeln!(f).unwrap(); // empty
    writeln!(f, "203.0.113.9 - - [10/Oct/2025:13:55").unwrap(); // truncated
    f.write_all(b"\x00\x01\x02\xff\xfe binary\n").unwrap(); // binary
    writeln!(f, "{}", "x".repeat(70_000)).unwrap(); // huge
    writeln!(f, "{}", good.replace("10/Oct/2025", "32/Foo/2025")).unwrap(); // wrong date
    writeln!(f, "{}", good.replace("/index.html", "/css/site.css")).unwrap();
    drop(f);
    let r = pushwise_json(&db, &["import", "--json", log.to_str().unwrap()]);
    let r = &r[0];
    assert_eq!(r["lines"], 7);
    assert_eq!(r["imported"], 2);
    let skipped = &r["skipped"];
    assert_eq!(skipped["empty"], 1);
    assert_eq!(skipped["truncated"], 1);
    assert_eq!(skipped["not_text"], 1);
    assert_eq!(skipped["too_long"], 1);
    assert_eq!(skipped["bad_date"], 1);
    assert_eq!(r["first_skipped"][0][0], 2);
    // Same file again: nothing new.
    let r = pushwise_json(&db, &["import", "--json", log.to_str().unwrap()]);
    assert_eq!(r[0]["imported"], 0);
    assert_eq!(r[0]["duplicates"], 2);
    let ev = events(&db);
    assert_eq!(ev.len(), 2);
    // 13:55:36 -0700 is 20:55:36 UTC.
    assert_eq!(ev[0].ts_ms % 86_400_000, (20 * 3600 + 55 * 60 + 36) * 1000);
}

#[test]
fn gzip_and_stdin_logs_import_too() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");
    let log = write_log(dir.path(), 50, 3);
    let text = std::fs::read(&log).unwrap();
    let lines = text.iter().filter(|b| **b == b'\n').count();
    let gz = dir.path().join("a.log.gz");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::fast(),
    );
    enc.write_all(&text).unwrap();
    enc.finish().unwrap();
    let r = pushwise_json(&db, &["import", "--json", gz.to_str().unwrap()]);
    assert_eq!(r[0]["imported"].as_u64().unwrap() as usize, lines);
    let mut child = std::process::Command::new(bin())
        .args(["--db", db.to_str().unwrap(), "import", "--json", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&text).unwrap();
    let out = child.wait_with_output().unwrap();
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // The same content from stdin has the same fingerprint: nothing twice.
    assert_eq!(r[0]["imported"], 0);
    assert_eq!(events(&db).len(), lines);
}

#[test]
fn imported_logs_learn_shared_and_page_specific_sets_and_tune_scores_them() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");
    let log = write_log(dir.path(), 1500, 11);
    pushwise(
        &db,
        &[
            "import",
            "--host",
            "example.com",
            "--host",
            "www.example.com",
            log.to_str().unwrap(),
        ],
    );
    let out = pushwise(&db, &["analyze", "--once"]);
    assert!(out.contains("generation 1"), "{out}");
    let show = pushwise_json(&db, &["sets", "show", "/", "--json"]);
    let in_set = |v: &serde_json::Value, ctx: Option<&str>| -> Vec<String> {
        let rows = match ctx {
            None => &v[0]["assets"],
            Some(c) => &v[0]["by_context"][c],
        };
        // A context whose candidates were never needed has no rows at all.
        rows.as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter(|a| a["in_set"] == true)
            .map(|a| a["path"].as_str().unwrap().to_string())
            .collect()
    };
    let ctx_set = in_set(&show, Some("browser/entry"));
    for a in [
        "/css/site.css",
        "/js/app.js",
        "/img/logo.svg",
        "/fonts/open-sans-300.woff2",
        "/img/home-hero.png",
    ] {
        assert!(
            ctx_set.contains(&a.to_string()),
            "{a} missing from {ctx_set:?}"
        );
    }
    assert!(
        !ctx_set
            .iter()
            .any(|a| a.contains("product") || a.contains("post-")),
        "{ctx_set:?}"
    );
    // Crawlers never fetch assets: their views are counted in a context of their own, which never
    // gets a set (they are pushed nothing).
    let bots = show[0]["contexts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["context"] == "other/entry")
        .unwrap();
    assert!(bots["views"].as_i64().unwrap() > 0, "{bots}");
    assert_eq!(bots["own_set"], false);
    assert!(in_set(&show, Some("other/entry")).is_empty());
    let products = pushwise_json(&db, &["sets", "show", "/products.html", "--json"]);
    let p = in_set(&products, Some("browser/entry"));
    assert!(p.contains(&"/img/product-1.png".to_string()), "{p:?}");
    assert!(!p.contains(&"/img/home-hero.png".to_string()), "{p:?}");

    // The list agrees.
    let list = pushwise_json(&db, &["sets", "list", "--json"]);
    let keys: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["page"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys.iter().filter(|k| k.starts_with('/')).count(),
        7,
        "{keys:?}"
    );
    // And the two sections the pages back off to: the top level and /blog/.
    assert!(
        keys.contains(&"section:/") && keys.contains(&"section:/blog/"),
        "{keys:?}"
    );

    // plan: a browser entering the site gets its context's set; a crawler gets nothing.
    let plan = pushwise_json(
        &db,
        &[
            "plan",
            "--page",
            "/",
            "--user-agent",
            pushwise_bench::synth::BROWSER_UAS[0],
            "--json",
        ],
    );
    assert_eq!(plan["context"], "browser/entry");
    assert_eq!(plan["source"], "context");
    let plan_paths: Vec<&str> = plan["assets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["path"].as_str().unwrap())
        .collect();
    assert_eq!(plan_paths, ctx_set);
    let bot = pushwise_json(
        &db,
        &[
            "plan",
            "--page",
            "/",
            "--user-agent",
            "Googlebot/2.1",
            "--json",
        ],
    );
    assert!(bot["assets"].as_array().unwrap().is_empty(), "{bot}");

    // plan --batch: one JSON line out per line in, same decision.
    let batch = dir.path().join("req.jsonl");
    std::fs::write(
        &batch,
        format!(
            "{{\"page\": \"/\", \"user_agent\": \"{}\", \"referer\": null}}\n{{\"page\": \"/\", \"user_agent\": \"Googlebot\"}}\n",
            pushwise_bench::synth::BROWSER_UAS[0]
        ),
    )
    .unwrap();
    let out = pushwise(&db, &["plan", "--batch", batch.to_str().unwrap()]);
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["push"].as_array().unwrap().len(), ctx_set.len());
    assert!(lines[1]["push"].as_array().unwrap().is_empty());

    // tune: precision and recall per threshold, a recommendation, and a chart.
    let svg = dir.path().join("tune.svg");
    let t = pushwise_json(&db, &["tune", "--json", "--plot", svg.to_str().unwrap()]);
    let rec = &t["recommended"];
    assert!(rec["precision"].as_f64().unwrap() > 0.5, "{rec}");
    assert!(rec["recall"].as_f64().unwrap() > 0.5, "{rec}");
    assert!(t["grid"].as_array().unwrap().len() > 50);
    let chart = std::fs::read_to_string(&svg).unwrap();
    assert!(chart.starts_with("<svg") && chart.contains("precision") && chart.contains("polyline"));
}

#[test]
fn thresholds_and_pins_change_the_next_generation() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");
    let log = write_log(dir.path(), 800, 5);
    pushwise(&db, &["import", log.to_str().unwrap()]);
    pushwise(&db, &["threshold", "set", "0.99", "--page", "/"]);
    pushwise(&db, &["sets", "pin", "/", "/img/logo.svg"]);
    pushwise(&db, &["sets", "ban", "/", "/css/site.css"]);
    pushwise(&db, &["analyze", "--once"]);
    let show = pushwise_json(&db, &["sets", "show", "/", "--json"]);
    let rows = show[0]["assets"].as_array().unwrap();
    let get = |p: &str| rows.iter().find(|a| a["path"] == p).unwrap().clone();
    assert_eq!(get("/css/site.css")["reason"], "banned");
    assert_eq!(get("/img/logo.svg")["reason"], "pinned");
    assert_eq!(get("/js/app.js")["reason"], "below threshold");
    let th = pushwise_json(&db, &["threshold", "show", "--json"]);
    assert_eq!(th["settings"][0]["page"], "/");
    let o = std::process::Command::new(bin())
        .args(["--db", db.to_str().unwrap(), "threshold", "set", "1.5"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(text(&o).contains("between 0 and 1"), "{}", text(&o));
}

#[test]
fn changing_commands_refuse_a_missing_database_instead_of_creating_one() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("absent.db");
    for args in [
        &["threshold", "set", "0.8", "--min-support", "3"][..],
        &["threshold", "clear"],
        &["sets", "pin", "/", "/a.css"],
        &["sets", "ban", "/", "/a.css"],
        &["analyze", "--once"],
        &["tune"],
    ] {
        let o = std::process::Command::new(bin())
            .arg("--db")
            .arg(&db)
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            !o.status.success(),
            "{args:?} succeeded on a missing database"
        );
        assert!(
            text(&o).contains("no database at"),
            "{args:?}: {}",
            text(&o)
        );
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "{args:?} created {left:?}");
    }
}

#[test]
fn tune_says_how_to_apply_its_recommendation_to_the_same_database() {
    let dir = tempfile::tempdir().unwrap();
    // A path that needs quoting, so the printed command must quote it to be pasted.
    let db = dir.path().join("my store.db");
    let log = write_log(dir.path(), 800, 7);
    pushwise(&db, &["import", log.to_str().unwrap()]);
    let out = pushwise(&db, &["tune"]);
    let line = out
        .lines()
        .find(|l| l.starts_with("apply with: "))
        .unwrap_or_else(|| panic!("no apply line in {out}"));
    let cmd = line.trim_start_matches("apply with: ");
    let quoted = format!("pushwise --db '{}' threshold set ", db.display());
    assert!(cmd.starts_with(&quoted), "{cmd}");
    // Pasted into a shell (with this build's binary), it changes this database's setting.
    let script = cmd.replacen("pushwise", bin(), 1);
    let o = std::process::Command::new("sh")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    assert!(o.status.success(), "{script}: {}", text(&o));
    let th = pushwise_json(&db, &["threshold", "show", "--json"]);
    assert_eq!(th["settings"][0]["page"], "", "{th}");
}

/// Every page's candidates as (context, path) → (probability, in set), from `sets show --json`.
fn learned_sets(
    db: &std::path::Path,
    pages: &[pushwise_bench::site::Page],
) -> std::collections::BTreeMap<(String, String, String), (f64, bool)> {
    let mut out = std::collections::BTreeMap::new();
    for page in pages {
        let show = pushwise_json(db, &["sets", "show", &page.path, "--json"]);
        let mut rows: Vec<serde_json::Value> = show[0]["assets"].as_array().unwrap().clone();
        for list in show[0]["by_context"].as_object().unwrap().values() {
            rows.extend(list.as_array().unwrap().iter().cloned());
        }
        for r in rows {
            out.insert(
                (
                    page.path.clone(),
                    r["context"].as_str().unwrap().to_string(),
                    r["path"].as_str().unwrap().to_string(),
                ),
                (r["probability"].as_f64().unwrap(), r["in_set"] == true),
            );
        }
    }
    out
}

#[test]
fn live_traffic_served_to_nghttp_learns_each_pages_assets() {
    let mut s = serve_site(&["--push-mode", "off"]);
    pushwise(&s.db, &["threshold", "set", "0.5", "--min-support", "5"]);
    let sitemap = SiteMap::scan(&site()).unwrap();
    let mut client = 0;
    for round in 0..2 {
        for page in &sitemap.pages {
            for _ in 0..8 {
                client += 1;
                let ua = format!("{} client/{client}", pushwise_bench::synth::BROWSER_UAS[0]);
                let cold = (client + round) % 4 != 0;
                let mut args = vec!["-n".to_string(), "-H".into(), format!("user-agent: {ua}")];
                if cold {
                    // -a fetches what the HTML links; what a browser finds in CSS is asked for on
                    // the same connection, as a browser does.
                    args.push("-a".into());
                    args.push(s.url(&page.path));
                    for (_, a) in &page.via_css {
                        args.push(s.url(a));
                    }
                } else {
                    args.push(s.url(&page.path));
                }
                let o = std::process::Command::new("nghttp")
                    .args(&args)
                    .output()
                    .unwrap();
                assert!(o.status.success(), "{}", text(&o));
            }
        }
        // A pass between the rounds: the next one reads only what is new (and the open sessions).
        pushwise(&s.db, &["analyze", "--once"]);
    }
    assert_eq!(s.stop(), 0);
    let pass = pushwise_json(&s.db, &["analyze", "--once", "--json"]);
    // The passes between the rounds read most events: this one reads what came after them.
    let all = events(&s.db).len() as u64;
    assert!(pass["events"].as_u64().unwrap() < all / 2, "{pass}");
    assert!(pass["watermark"].as_i64().unwrap() > 0, "{pass}");
    for page in &sitemap.pages {
        let show = pushwise_json(&s.db, &["sets", "show", &page.path, "--json"]);
        let set: Vec<String> = show[0]["assets"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["in_set"] == true)
            .map(|a| a["path"].as_str().unwrap().to_string())
            .collect();
        for a in page.all_assets() {
            assert!(set.contains(&a), "{}: {a} missing from {set:?}", page.path);
        }
        for other in sitemap.pages.iter().filter(|p| p.path != page.path) {
            for a in other
                .all_assets()
                .iter()
                .filter(|a| !page.all_assets().contains(a))
            {
                assert!(
                    !set.contains(a),
                    "{}: {a} belongs to {}",
                    page.path,
                    other.path
                );
            }
        }
    }
    // What the passes learned piece by piece is what one rebuild over the same events learns.
    let incremental = learned_sets(&s.db, &sitemap.pages);
    pushwise(&s.db, &["analyze", "--rebuild"]);
    let rebuilt = learned_sets(&s.db, &sitemap.pages);
    assert_eq!(
        incremental.keys().collect::<Vec<_>>(),
        rebuilt.keys().collect::<Vec<_>>()
    );
    for (k, (p, in_set)) in &incremental {
        let (q, in_set2) = rebuilt[k];
        assert!((p - q).abs() <= 1e-9, "{k:?}: {p} vs {q}");
        assert_eq!(*in_set, in_set2, "{k:?}");
    }
}

/// One combined-format line at second `t` (2026-01-01 plus `t` seconds).
fn line(ip: &str, t: i64, path: &str, referer: &str, ua: &str) -> String {
    let date = pushwise_store::time::format_clf_date(1_767_225_600_000 + t * 1000, 0);
    format!("{ip} - - [{date}] \"GET {path} HTTP/1.1\" 200 5000 \"{referer}\" \"{ua}\"")
}

#[test]
fn a_page_seen_twice_in_a_section_where_every_page_uses_the_stylesheet_gets_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");
    let log = dir.path().join("a.log");
    let mut f = std::fs::File::create(&log).unwrap();
    let ua = pushwise_bench::synth::BROWSER_UAS[0];
    let mut t = 0;
    // Twenty blog pages, three cold browser views each: every one fetches the site's stylesheet.
    for p in 0..20 {
        for v in 0..3 {
            let ip = format!("10.0.{p}.{v}");
            let page = format!("/blog/post-{p}.html");
            writeln!(f, "{}", line(&ip, t, &page, "-", ua)).unwrap();
            let r = format!("https://example.com{page}");
            writeln!(f, "{}", line(&ip, t + 1, "/css/site.css", &r, ua)).unwrap();
            t += 30;
        }
    }
    // A rare page, seen twice by browsers whose caches were warm: they fetched nothing.
    for v in 0..2 {
        let ip = format!("10.1.0.{v}");
        writeln!(f, "{}", line(&ip, t, "/blog/rare.html", "-", ua)).unwrap();
        t += 30;
    }
    drop(f);
    pushwise(
        &db,
        &["import", log.to_str().unwrap(), "--host", "example.com"],
    );
    pushwise(&db, &["threshold", "set", "0.5", "--min-support", "5"]);
    pushwise(&db, &["analyze", "--once"]);
    for page in ["/blog/rare.html", "/blog/never-seen.html"] {
        let d = pushwise_json(&db, &["plan", "--page", page, "--user-agent", ua, "--json"]);
        assert_eq!(d["source"], "section-context", "{page}: {d}");
        let assets: Vec<&str> = d["assets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["path"].as_str().unwrap())
            .collect();
        assert_eq!(assets, ["/css/site.css"], "{page}");
    }
    // `sets show` says the rare page backs off, and where to.
    let out = pushwise(&db, &["sets", "show", "/blog/rare.html"]);
    assert!(
        out.contains("browsers get the set of section:/blog/"),
        "{out}"
    );
    let out = pushwise(&db, &["sets", "show", "section:/blog/", "--json"]);
    assert!(out.contains("/css/site.css"), "{out}");
}

#[test]
fn crawlers_get_no_set_and_their_views_do_not_dilute_the_browsers() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");
    let log = dir.path().join("a.log");
    let mut f = std::fs::File::create(&log).unwrap();
    let browser = pushwise_bench::synth::BROWSER_UAS[0];
    let bot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
    for v in 0..30 {
        let ip = format!("10.0.0.{v}");
        writeln!(f, "{}", line(&ip, v * 30, "/p.html", "-", browser)).unwrap();
        let r = "https://example.com/p.html";
        writeln!(f, "{}", line(&ip, v * 30 + 1, "/a.css", r, browser)).unwrap();
    }
    // Three times as many crawler views, none of which fetch anything.
    for v in 0..90 {
        let ip = format!("66.249.0.{v}");
        writeln!(f, "{}", line(&ip, v * 10, "/p.html", "-", bot)).unwrap();
    }
    drop(f);
    pushwise(
        &db,
        &["import", log.to_str().unwrap(), "--host", "example.com"],
    );
    pushwise(&db, &["threshold", "set", "0.5", "--min-support", "5"]);
    pushwise(&db, &["analyze", "--once"]);
    let plan = |ua: &str| {
        pushwise_json(
            &db,
            &["plan", "--page", "/p.html", "--user-agent", ua, "--json"],
        )
    };
    let d = plan(browser);
    // 30 of 30 browser views, not 30 of 120 views.
    assert_eq!(d["assets"][0]["path"], "/a.css", "{d}");
    assert_eq!(d["assets"][0]["probability"], 1.0, "{d}");
    for ua in [
        bot,
        "curl/8.5.0",
        "Feedly/1.0 (+http://www.feedly.com/fetcher.html)",
    ] {
        let d = plan(ua);
        assert_eq!(d["source"], "not-browser", "{ua}: {d}");
        assert_eq!(d["assets"], serde_json::json!([]), "{ua}");
    }
    // The batch form says the context and the level for each request.
    let req = dir.path().join("req.jsonl");
    std::fs::write(
        &req,
        format!(
            "{}\n{}\n",
            serde_json::json!({"page": "/p.html", "user_agent": browser}),
            serde_json::json!({"page": "/p.html", "user_agent": bot, "referer": "https://example.com/"})
        ),
    )
    .unwrap();
    let out = pushwise(
        &db,
        &[
            "plan",
            "--batch",
            req.to_str().unwrap(),
            "--host",
            "example.com",
            "--json",
        ],
    );
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["context"], "browser/entry");
    assert_eq!(lines[0]["level"], "context");
    assert_eq!(lines[0]["push"], serde_json::json!(["/a.css"]));
    assert_eq!(lines[1]["context"], "other/internal");
    assert_eq!(lines[1]["level"], "not-browser");
    assert_eq!(lines[1]["push"], serde_json::json!([]));
}

#[test]
fn tunes_prediction_is_within_three_hundredths_of_what_its_recommendation_then_scores() {
    // The learning benchmark's protocol on a month of shaped traffic: tune on the older 70% (it
    // learns on the older part of that and scores the newer), apply, learn on all of it, and
    // score the 30% that follows.
    let dir = tempfile::tempdir().unwrap();
    let cfg = pushwise_bench::shaped::ShapedConfig {
        page_views: 40_000,
        duration_ms: 32 * 24 * 3600 * 1000,
        seed: 1,
        ..Default::default()
    };
    let r = pushwise_bench::learn::run(std::path::Path::new(bin()), &cfg, 0.7, dir.path()).unwrap();
    let (predicted, scored) = (r.tune.predicted_f1, r.pushwise.f1);
    assert!(
        (predicted - scored).abs() <= 0.03,
        "tune predicted {predicted:.3}, the next period scored {scored:.3}"
    );
    // And the learner it tuned beats plain co-occurrence by at least 0.05 F1, and the per-page
    // oracle, as BENCHMARKS.md reports.
    assert!(scored >= r.plain_cooccurrence.f1 + 0.05, "{r:?}");
    assert!(scored > r.per_page_oracle.f1, "{r:?}");
}

#[test]
fn set_caps_are_settings_that_bound_the_next_generation() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");
    let log = write_log(dir.path(), 800, 5);
    pushwise(&db, &["import", log.to_str().unwrap()]);
    pushwise(
        &db,
        &[
            "threshold",
            "set",
            "0.1",
            "--min-support",
            "1",
            "--max-count",
            "2",
        ],
    );
    pushwise(
        &db,
        &[
            "threshold",
            "set",
            "0.1",
            "--page",
            "/about.html",
            "--max-bytes",
            "1",
        ],
    );
    pushwise(&db, &["analyze", "--once"]);
    let show = pushwise_json(&db, &["sets", "show", "/", "--json"]);
    let in_set = show[0]["assets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["in_set"] == true)
        .count();
    assert_eq!(in_set, 2, "{show}");
    assert!(
        show[0]["assets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["reason"] == "over count")
    );
    // One byte: nothing fits on /about.html, whatever its probabilities.
    let about = pushwise_json(&db, &["sets", "show", "/about.html", "--json"]);
    let rows = about[0]["assets"].as_array().unwrap();
    assert!(rows.iter().all(|a| a["in_set"] == false), "{about}");
    assert!(rows.iter().any(|a| a["reason"] == "over bytes"), "{about}");
    let th = pushwise_json(&db, &["threshold", "show", "--json"]);
    assert_eq!(th["settings"][0]["max_count"], 2, "{th}");
    assert_eq!(th["settings"][1]["max_bytes"], 1, "{th}");
    assert_eq!(th["defaults"]["max_count"], 16, "{th}");
    // A cap below one is refused, with the rule, and changes nothing.
    for (flag, v) in [
        ("--max-count", "0"),
        ("--max-bytes", "-5"),
        ("--max-count", "x"),
    ] {
        let o = std::process::Command::new(bin())
            .args([
                "--db",
                db.to_str().unwrap(),
                "threshold",
                "set",
                "0.5",
                &format!("{flag}={v}"),
            ])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{flag} {v}: {}", text(&o));
        assert!(text(&o).contains("at least 1"), "{}", text(&o));
    }
    let th2 = pushwise_json(&db, &["threshold", "show", "--json"]);
    assert_eq!(th, th2);
    // tune --apply stores all four settings it recommends.
    pushwise(&db, &["tune", "--apply"]);
    let th = pushwise_json(&db, &["threshold", "show", "--json"]);
    let global = &th["settings"][0];
    for k in ["probability", "min_support", "max_count", "max_bytes"] {
        assert!(global[k].is_number(), "{k}: {th}");
    }
}

#[test]
fn a_command_leaves_every_change_in_the_main_file_and_backup_copies_a_live_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");
    let wal = dir.path().join("p.db-wal");
    let log = write_log(dir.path(), 300, 3);
    for args in [
        vec!["import", log.to_str().unwrap()],
        vec!["threshold", "set", "0.8", "--min-support", "3"],
        vec!["analyze", "--once"],
    ] {
        pushwise(&db, &args);
        let wal_len = std::fs::metadata(&wal).map_or(0, |m| m.len());
        assert_eq!(wal_len, 0, "after {args:?} the -wal holds {wal_len} bytes");
    }
    // The main file alone is a complete copy.
    let copy = dir.path().join("copy.db");
    std::fs::copy(&db, &copy).unwrap();
    let th = pushwise_json(&copy, &["threshold", "show", "--json"]);
    assert_eq!(th["settings"][0]["probability"], 0.8, "{th}");
    let list = pushwise_json(&copy, &["sets", "list", "--json"]);
    assert!(!list.as_array().unwrap().is_empty());

    // backup while a server records into the database.
    let root = site();
    let s = Server::start_with_db(
        &[
            "--root",
            root.to_str().unwrap(),
            "--analyze-every",
            "0",
            "--batch-interval-ms",
            "20",
        ],
        tempfile::tempdir().unwrap(),
        db.clone(),
    );
    for _ in 0..5 {
        nghttp(&[&s.url("/"), &s.url("/about.html")]);
    }
    let dest = dir.path().join("backup.db");
    let out = pushwise(&db, &["backup", dest.to_str().unwrap()]);
    assert!(out.contains("backed up"), "{out}");
    let th = pushwise_json(&dest, &["threshold", "show", "--json"]);
    assert_eq!(th["settings"][0]["probability"], 0.8, "{th}");
    let check: String = tokio::runtime::Runtime::new().unwrap().block_on(async {
        use sqlx::Connection;
        let url = format!("sqlite://{}?mode=ro", dest.display());
        let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_one(&mut c)
            .await
            .unwrap()
    });
    assert_eq!(check, "ok");
    // Never over an existing file, which stays as it was.
    let before = std::fs::read(&dest).unwrap();
    let o = std::process::Command::new(bin())
        .args([
            "--db",
            db.to_str().unwrap(),
            "backup",
            dest.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(text(&o).contains("never overwrites"), "{}", text(&o));
    assert_eq!(std::fs::read(&dest).unwrap(), before);
}

#[test]
fn a_pass_that_selects_the_same_sets_writes_no_new_generation() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");
    let log = write_log(dir.path(), 300, 5);
    pushwise(
        &db,
        &["import", "--host", "example.com", log.to_str().unwrap()],
    );
    let first = pushwise_json(&db, &["analyze", "--once", "--json"]);
    assert_eq!(first["generation_written"], true, "{first}");
    // Nothing new: the same sets, so the newest generation stays the one servers hold.
    let idle = pushwise_json(&db, &["analyze", "--once", "--json"]);
    assert_eq!(idle["generation_written"], false, "{idle}");
    assert_eq!(idle["generation"], first["generation"], "{idle}");
    // A setting that changes the sets does give a new generation.
    pushwise(&db, &["threshold", "set", "0.99"]);
    let changed = pushwise_json(&db, &["analyze", "--once", "--json"]);
    assert_eq!(changed["generation_written"], true, "{changed}");
    assert_eq!(
        changed["generation"].as_i64(),
        first["generation"].as_i64().map(|g| g + 1),
        "{changed}"
    );
}

#[test]
fn tune_recommends_holding_back_clients_that_took_nothing_and_plan_replays_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let log = dir.path().join("q.log");
    let mut f = std::fs::File::create(&log).unwrap();
    let ua = pushwise_bench::synth::BROWSER_UAS[0];
    let mut t = 0;
    // 400 visitors, three pages each; every third one fetches nothing (a blocker, a warm cache).
    for v in 0..400 {
        let ip = format!("10.2.{}.{}", v / 200, v % 200);
        let mut referer = "-".to_string();
        for k in 0..3 {
            let n = (v + k) % 10;
            let page = format!("/p{n}.html");
            writeln!(f, "{}", line(&ip, t, &page, &referer, ua)).unwrap();
            let r = format!("https://example.com{page}");
            if v % 3 != 0 {
                writeln!(f, "{}", line(&ip, t + 1, &format!("/img/p{n}.png"), &r, ua)).unwrap();
            }
            referer = r;
            t += 20;
        }
    }
    drop(f);
    pushwise(
        &db,
        &["import", log.to_str().unwrap(), "--host", "example.com"],
    );
    let tune = pushwise_json(&db, &["tune", "--apply", "--json"]);
    let rec = &tune["recommended"];
    assert!(rec["quiet_after"].as_u64().unwrap() >= 1, "{rec}");
    // The rule is what lifts the score: the same setting without it scores lower.
    let off = tune["grid"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| {
            p["quiet_after"] == 0
                && ["threshold", "min_support", "max_count", "max_bytes"]
                    .iter()
                    .all(|k| p[k] == rec[k])
        })
        .expect("the grid tries the recommendation without the rule");
    assert!(
        rec["f1"].as_f64().unwrap() >= off["f1"].as_f64().unwrap() + 0.05,
        "{rec} vs {off}"
    );
    // `tune --apply` stored it, and `threshold show` says so.
    let shown = pushwise_json(&db, &["threshold", "show", "--json"]);
    assert_eq!(shown["settings"][0]["quiet_after"], rec["quiet_after"]);
    // `plan --batch` replays the rule over the lines that name a client.
    pushwise(
        &db,
        &[
            "threshold",
            "set",
            "0.3",
            "--min-support",
            "1",
            "--quiet-after",
            "1",
        ],
    );
    pushwise(&db, &["analyze", "--once"]);
    let req = dir.path().join("req.jsonl");
    let l = |client: &str, page: &str, fetched: &[&str]| {
        serde_json::json!({"page": page, "user_agent": ua, "client": client, "fetched": fetched})
            .to_string()
    };
    std::fs::write(
        &req,
        [
            l("quiet", "/p1.html", &[]),
            l("busy", "/p1.html", &["/img/p1.png"]),
            l("quiet", "/p2.html", &[]),
            l("busy", "/p2.html", &[]),
        ]
        .join("\n"),
    )
    .unwrap();
    let out = pushwise(&db, &["plan", "--batch", req.to_str().unwrap(), "--json"]);
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert_eq!(
        lines[0]["push"],
        serde_json::json!(["/img/p1.png"]),
        "{out}"
    );
    assert_eq!(lines[2]["quiet"], true, "{out}");
    assert_eq!(lines[2]["push"], serde_json::json!([]), "{out}");
    assert_eq!(lines[3]["quiet"], false, "{out}");
    assert_eq!(
        lines[3]["push"],
        serde_json::json!(["/img/p2.png"]),
        "{out}"
    );
    // With times, a client idle for more than a day is forgotten, as the server forgets it.
    let at = |t: i64| {
        serde_json::json!({"page": "/p1.html", "user_agent": ua, "client": "late", "fetched": [], "ts_ms": t})
            .to_string()
    };
    let day = pushwise_store::quiet::FORGET_AFTER_MS;
    std::fs::write(&req, [at(0), at(1_000), at(2_000 + day)].join("\n")).unwrap();
    let out = pushwise(&db, &["plan", "--batch", req.to_str().unwrap(), "--json"]);
    let quiet: Vec<bool> = out
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["quiet"] == true)
        .collect();
    assert_eq!(quiet, [false, true, false], "{out}");
    // Without the rule, the same lines are all answered.
    pushwise(&db, &["threshold", "set", "0.3", "--quiet-after", "0"]);
    let out = pushwise(&db, &["plan", "--batch", req.to_str().unwrap(), "--json"]);
    assert!(!out.contains("\"quiet\":true"), "{out}");
}
