//! End-to-end: the Prometheus scrape passes promtool after a run that pushed, skipped by digest,
//! hinted and recorded; the Grafana dashboard only queries metrics that exist; JSON logs parse.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::*;

fn scrape_after_a_busy_run() -> (Server, String) {
    let (dir, db) = temp_db();
    prepare_sets(
        &db,
        &[("/", &["/css/site.css", "/js/app.js", "/img/logo.svg"])],
    );
    let root = site();
    let mut s = Server::start_with_db(
        &[
            "--root",
            root.to_str().unwrap(),
            "--metrics-listen",
            "127.0.0.1:0",
            "--holdout",
            "0",
            "--batch-interval-ms",
            "20",
        ],
        dir,
        db,
    );
    nghttp(&[&s.url("/")]); // pushes
    // P = 2^20 so that no other asset of the set is a false positive of the digest (at the
    // default 2^7 one would be, in about one run in sixty-four, and the counts below would move).
    let digest = pushwise(
        &s.db,
        &["digest", "encode", "--p", "20", &s.url("/css/site.css")],
    )
    .trim()
    .to_string();
    nghttp(&[
        "-H",
        &format!("cookie: pushwise_digest={digest}"),
        &s.url("/"),
    ]); // skipped by digest
    nghttp(&["-H", "cookie: pushwise_digest=!!bad", &s.url("/")]); // invalid digest: pushes as if none
    nghttp(&["--no-push", &s.url("/")]); // hinted
    std::thread::sleep(std::time::Duration::from_millis(300)); // let the recorder write
    let url = s.metrics_url.clone().expect("metrics line");
    let o = run("curl", &["-sf", &url]);
    assert!(o.status.success());
    let scrape = String::from_utf8(o.stdout).unwrap();
    assert_eq!(s.stop(), 0);
    (s, scrape)
}

fn sample(scrape: &str, name_and_labels: &str) -> f64 {
    scrape
        .lines()
        .find(|l| l.starts_with(name_and_labels) && l[name_and_labels.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no sample {name_and_labels} in\n{scrape}"))
}

#[test]
fn the_scrape_after_push_digest_hints_and_recording_passes_promtool() {
    let (_s, scrape) = scrape_after_a_busy_run();
    // 3 on the first view, the 2 the digest did not cover, 3 with the invalid digest.
    assert_eq!(
        sample(&scrape, r#"pushwise_pushes_total{outcome="promised"}"#),
        8.0
    );
    assert!(
        sample(
            &scrape,
            r#"pushwise_pushes_total{outcome="skipped_digest"}"#
        ) >= 1.0
    );
    assert!(
        sample(
            &scrape,
            r#"pushwise_pushes_total{outcome="refused_by_client"}"#
        ) >= 1.0
    );
    assert_eq!(sample(&scrape, "pushwise_early_hints_total"), 1.0);
    assert_eq!(
        sample(
            &scrape,
            r#"pushwise_cache_digests_total{source="cookie",result="invalid"}"#
        ),
        1.0
    );
    assert!(sample(&scrape, "pushwise_recorder_events_written_total") > 0.0);
    assert!(sample(&scrape, "pushwise_pushed_bytes_total") > 0.0);
    assert_eq!(sample(&scrape, "pushwise_push_set_generation"), 1.0);
    let mut p = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus)");
    p.stdin
        .take()
        .unwrap()
        .write_all(scrape.as_bytes())
        .unwrap();
    let out = p.wait_with_output().unwrap();
    assert!(out.status.success(), "promtool findings:\n{}", text(&out));
    assert!(
        text(&out).trim().is_empty(),
        "promtool findings:\n{}",
        text(&out)
    );
}

/// Metric names in PromQL expressions (`pushwise_...`), with histogram suffixes stripped.
fn dashboard_metrics(dash: &serde_json::Value) -> Vec<String> {
    let mut names = Vec::new();
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            let mut rest = expr;
            while let Some(i) = rest.find("pushwise_") {
                let tail = &rest[i..];
                let end = tail
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(tail.len());
                names.push(tail[..end].to_string());
                rest = &tail[end..];
            }
        }
    }
    names.sort();
    names.dedup();
    names
}

/// A scrape of a server that has served nothing yet.
fn fresh_scrape() -> String {
    let mut s = serve_site(&["--metrics-listen", "127.0.0.1:0"]);
    let url = s.metrics_url.clone().expect("metrics line");
    let o = run("curl", &["-sf", &url]);
    assert!(o.status.success());
    assert_eq!(s.stop(), 0);
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn a_fresh_server_exports_every_metric_every_dashboard_queries() {
    let scrape = fresh_scrape();
    let exported: std::collections::HashSet<&str> = scrape
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/dashboards");
    let mut dashboards = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        dashboards += 1;
        let dash: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for m in dashboard_metrics(&dash) {
            assert!(
                exported.contains(m.as_str()),
                "{} queries {m}, which a fresh server does not export",
                path.display()
            );
        }
    }
    assert!(dashboards >= 1);
    // Labelled families are there at 0 before their first event.
    assert_eq!(
        sample(
            &scrape,
            r#"pushwise_pushes_total{outcome="cancelled_by_client"}"#
        ),
        0.0
    );
    assert_eq!(
        sample(
            &scrape,
            r#"pushwise_cache_digests_total{source="header",result="invalid"}"#
        ),
        0.0
    );
}

#[test]
fn every_metric_the_dashboard_queries_is_exported() {
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/dashboards/pushwise.json"
        ))
        .unwrap(),
    )
    .unwrap();
    assert!(dash["schemaVersion"].as_u64().unwrap() >= 30);
    let vars = dash["templating"]["list"].as_array().unwrap();
    assert!(
        vars.iter()
            .any(|v| v["type"] == "datasource" && v["name"] == "datasource")
    );
    for p in dash["panels"].as_array().unwrap() {
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{}", p["title"]);
    }
    let (_s, scrape) = scrape_after_a_busy_run();
    let exported: std::collections::HashSet<&str> = scrape
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    let used = dashboard_metrics(&dash);
    assert!(used.len() >= 15, "{used:?}");
    for m in used {
        assert!(
            exported.contains(m.as_str()),
            "dashboard uses {m}, which the server does not export"
        );
    }
}

#[test]
fn json_logs_are_one_json_object_per_line() {
    let mut s = serve_site(&["--log-format", "json"]);
    nghttp(&[&s.url("/")]);
    assert_eq!(s.stop(), 0);
    let log = s.stderr();
    let mut n = 0;
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
        n += 1;
    }
    assert!(n >= 2, "{log}");
    assert!(log.contains("pushwise serving"), "{log}");
    assert!(log.contains("recorder drained"), "{log}");
    assert!(
        !log.contains("connection closed"),
        "a line per connection is DEBUG: {log}"
    );
}

#[test]
fn the_access_log_is_a_plain_file_naming_each_protocol_and_imports_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let access = dir.path().join("access.log");
    let mut s = serve_site(&["--access-log", access.to_str().unwrap()]);
    nghttp(&[&s.url("/"), &s.url("/css/site.css")]);
    let o = run(
        "curl",
        &["-sk", "--http1.1", "-o", "/dev/null", &s.url("/about.html")],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(s.stop(), 0);
    let log = std::fs::read_to_string(&access).unwrap();
    assert!(log.contains("\"GET / HTTP/2\" 200"), "{log}");
    assert!(log.contains("\"GET /about.html HTTP/1.1\" 200"), "{log}");
    assert!(
        !log.contains('\u{1b}') && !log.contains("INFO") && !s.stderr().contains("GET /"),
        "plain lines in the file, none on stderr: {log}"
    );
    assert!(
        !s.stderr().contains('\u{1b}'),
        "no colour codes in redirected stderr: {}",
        s.stderr()
    );
    let lines = log.lines().count();
    assert!(lines >= 3, "{log}");
    let db = dir.path().join("imported.db");
    let o = Command::new(bin())
        .arg("--db")
        .arg(&db)
        .args(["import", "--json", access.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["imported"], lines as u64, "{v}");
    assert_eq!(v[0]["skipped"], serde_json::json!({}), "{v}");
}
