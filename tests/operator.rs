//! End-to-end: the database and the CLI behave as a careful operator expects — inspecting commands
//! never write, foreign files are refused untouched, a failed start leaves nothing, import says
//! why it imported nothing, and every batch line gets its answer.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// `views` browser views of `/` entering the site, each fetching the stylesheet and the script.
fn browser_log(views: usize) -> String {
    browser_views_log("/", &["/css/site.css", "/js/app.js"], views)
}

/// A pushwise database with one learned generation, built the way an operator would.
fn learned_db(dir: &Path) -> PathBuf {
    let db = dir.join("pushwise.db");
    let log = dir.join("access.log");
    std::fs::write(&log, browser_log(60)).unwrap();
    pushwise(
        &db,
        &["import", "--host", "example.com", log.to_str().unwrap()],
    );
    pushwise(&db, &["analyze", "--once"]);
    db
}

/// The file's bytes and the directory's entries: what "nothing written" means.
fn snapshot(db: &Path) -> (Vec<u8>, Vec<String>) {
    let mut names: Vec<String> = std::fs::read_dir(db.parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    (std::fs::read(db).unwrap(), names)
}

/// `chattr +i` on paths (root ignores file modes; the immutable attribute stops even root),
/// undone on drop so the temporary directory can be removed.
struct Immutable(Vec<PathBuf>);

impl Immutable {
    fn set(paths: &[&Path]) -> Immutable {
        for p in paths {
            let st = Command::new("chattr").arg("+i").arg(p).status().unwrap();
            assert!(st.success(), "chattr +i {}", p.display());
        }
        Immutable(paths.iter().map(|p| p.to_path_buf()).collect())
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = Command::new("chattr").arg("-i").arg(p).status();
        }
    }
}

#[test]
fn inspecting_commands_read_a_database_they_cannot_write_and_leave_no_trace() {
    let dir = tempfile::tempdir().unwrap();
    let db = learned_db(dir.path());
    let backup = tempfile::tempdir().unwrap();
    let before = snapshot(&db);
    {
        // The file and its directory both unwritable: no -wal or -shm can even be created.
        let _guard = Immutable::set(&[&db, dir.path()]);
        let list = pushwise_json(&db, &["sets", "list", "--json"]);
        let home = list
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["page"] == "/")
            .unwrap_or_else(|| panic!("{list}"));
        assert!(home["set_size"].as_u64().unwrap() >= 1, "{home}");
        assert!(home["context_sets"].is_object(), "{home}");
        pushwise(&db, &["sets", "show", "/"]);
        pushwise(&db, &["sets", "pins"]);
        pushwise(&db, &["threshold", "show", "--json"]);
        let plan = pushwise_json(
            &db,
            &["plan", "--page", "/", "--user-agent", BROWSER_UA, "--json"],
        );
        assert!(!plan["assets"].as_array().unwrap().is_empty(), "{plan}");
        pushwise(&db, &["tune", "--json"]);
        let copy = backup.path().join("copy.db");
        pushwise(&db, &["backup", copy.to_str().unwrap()]);
        assert!(copy.exists());
        // A changing command says the database is read-only and changes nothing.
        let e = pushwise_fails(&db, &["threshold", "set", "0.5"]);
        assert!(e.contains("readonly") || e.contains("read-only"), "{e}");
        assert!(e.contains(db.to_str().unwrap()), "{e}");
    }
    assert!(
        snapshot(&db) == before,
        "an inspecting command wrote to or beside the database"
    );
    // The copy is a whole pushwise database.
    let copy = backup.path().join("copy.db");
    let list = pushwise_json(&copy, &["sets", "list", "--json"]);
    assert!(!list.as_array().unwrap().is_empty());
}

/// Another application's SQLite database, with one table and in rollback-journal mode.
fn foreign_sqlite(path: &Path) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use sqlx::Connection;
        let opts = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true);
        let mut c = sqlx::SqliteConnection::connect_with(&opts).await.unwrap();
        sqlx::query("CREATE TABLE notes (body TEXT)")
            .execute(&mut c)
            .await
            .unwrap();
        sqlx::query("INSERT INTO notes VALUES ('mine')")
            .execute(&mut c)
            .await
            .unwrap();
        c.close().await.unwrap();
    });
}

#[test]
fn another_applications_database_and_a_file_that_is_no_database_are_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other.db");
    foreign_sqlite(&other);
    let text_file = dir.path().join("notes.db");
    std::fs::write(&text_file, "# my notes\nnot a database at all\n").unwrap();
    let log = dir.path().join("access.log");
    std::fs::write(&log, browser_log(2)).unwrap();
    let commands: Vec<Vec<&str>> = vec![
        vec!["sets", "list"],
        vec!["threshold", "show"],
        vec!["plan", "--page", "/"],
        vec!["threshold", "set", "0.5"],
        vec!["sets", "pin", "/", "/css/site.css"],
        vec!["analyze", "--once"],
        vec!["import", log.to_str().unwrap()],
        vec![
            "serve",
            "--root",
            "examples/site",
            "--listen",
            "127.0.0.1:0",
        ],
    ];
    for (file, says) in [
        (&other, "not pushwise's"),
        (&text_file, "is not a database"),
    ] {
        let before = snapshot(file);
        for args in &commands {
            let e = pushwise_fails(file, args);
            assert!(e.contains(says), "{args:?} on {}: {e}", file.display());
            assert!(
                !e.contains("not writable") && !e.contains("readonly"),
                "{args:?}: {e}"
            );
            assert!(
                snapshot(file) == before,
                "{args:?} changed {}",
                file.display()
            );
        }
    }
}

#[test]
fn serve_refuses_an_unwritable_database_unless_told_to_serve_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let db = learned_db(dir.path());
    let before = snapshot(&db);
    let _guard = Immutable::set(&[&db]);
    let o = Command::new(bin())
        .arg("--db")
        .arg(&db)
        .args(["serve", "--root", site().to_str().unwrap()])
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let e = text(&o);
    assert!(
        e.contains("readonly") && e.contains("--read-only-db"),
        "the real cause and the way out: {e}"
    );
    // Told to: it serves the learned sets from the database it may only read, records nothing.
    let work = tempfile::tempdir().unwrap();
    let mut s = Server::start_with_db(
        // Holdout 0: a 5% holdout view would announce nothing, by design.
        &[
            "--root",
            site().to_str().unwrap(),
            "--read-only-db",
            "--holdout",
            "0",
        ],
        work,
        db.clone(),
    );
    let out = nghttp(&[&s.url("/")]);
    assert!(out.contains(":status: 200"), "{out}");
    let mut sent = early_hint_links(&out);
    sent.extend(promised_paths(&out));
    assert!(
        sent.iter().any(|l| l.contains("/css/site.css")),
        "the learned set is pushed or announced: {out}"
    );
    assert_eq!(s.stop(), 0);
    assert!(!s.stderr().contains("cannot write"), "{}", s.stderr());
    assert_eq!(snapshot(&db).0, before.0, "the database file changed");
}

#[test]
fn a_start_that_fails_on_its_port_leaves_no_database_behind() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let (_dir, db) = temp_db();
    let e = pushwise_fails(
        &db,
        &[
            "serve",
            "--root",
            site().to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{port}"),
        ],
    );
    assert!(e.contains("cannot listen"), "{e}");
    let left: Vec<_> = std::fs::read_dir(db.parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "a failed start left {left:?}");
}

#[test]
fn import_says_why_nothing_was_imported_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("pushwise.db");
    // A common-format log under the default combined format.
    let common = dir.path().join("common.log");
    std::fs::write(
        &common,
        "10.0.0.1 - - [10/Oct/2026:13:55:36 +0000] \"GET / HTTP/1.1\" 200 2326\n\
         10.0.0.1 - - [10/Oct/2026:13:55:37 +0000] \"GET /a.css HTTP/1.1\" 200 100\n",
    )
    .unwrap();
    let e = pushwise_fails(&db, &["import", common.to_str().unwrap()]);
    assert!(e.contains("nothing imported"), "{e}");
    assert!(e.contains("try --format common"), "{e}");
    assert!(
        e.contains("\"GET / HTTP/1.1\" 200 2326"),
        "shows the line: {e}"
    );
    let out = pushwise(
        &db,
        &["import", "--format", "common", common.to_str().unwrap()],
    );
    assert!(out.contains("2 imported"), "{out}");
    // Not a log at all: a text file, and a binary.
    let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let e = pushwise_fails(&db, &["import", readme.to_str().unwrap()]);
    assert!(
        e.contains("nothing imported") && e.contains("# pushwise"),
        "{e}"
    );
    let e = pushwise_fails(&db, &["import", bin()]);
    assert!(e.contains("binary"), "{e}");
    // Some good lines among bad ones: imported, exit 0, the bad ones reported.
    let mixed = dir.path().join("mixed.log");
    std::fs::write(&mixed, format!("garbage line\n{}", browser_log(1))).unwrap();
    let out = pushwise(&db, &["import", mixed.to_str().unwrap()]);
    assert!(
        out.contains("3 imported") && out.contains("garbage line"),
        "{out}"
    );
}

#[test]
fn plan_batch_answers_every_line_in_order_and_fails_at_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let db = learned_db(dir.path());
    let input = format!(
        "{{\"page\": \"/\", \"user_agent\": \"{BROWSER_UA}\"}}\n{{\"page\": \n\n{{\"page\": \"/about.html\"}}\n"
    );
    let mut child = Command::new(bin())
        .arg("--db")
        .arg(&db)
        .args(["plan", "--batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(!o.status.success(), "{}", text(&o));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "one answer per input line: {lines:?}");
    assert!(lines[0]["push"].is_array(), "{}", lines[0]);
    assert_eq!(lines[1]["line"], 2, "{}", lines[1]);
    assert!(lines[1]["error"].is_string());
    assert_eq!(lines[2]["line"], 3, "{}", lines[2]);
    assert!(lines[3]["push"].is_array(), "{}", lines[3]);
    assert!(text(&o).contains("2 line(s)"), "{}", text(&o));
}

#[test]
fn a_reader_that_stops_reading_is_success_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = learned_db(dir.path());
    // Far more output than a pipe buffers, so the writer meets the closed pipe.
    let line = format!("{{\"page\": \"/\", \"user_agent\": \"{BROWSER_UA}\"}}\n");
    let input = line.repeat(20_000);
    let mut child = Command::new(bin())
        .arg("--db")
        .arg(&db)
        .args(["plan", "--batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let mut first = [0u8; 1];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap(); // then dropped: closed
    let o = child.wait_with_output().unwrap();
    let _ = feeder.join();
    assert!(o.status.success(), "{}", text(&o));
    assert!(!text(&o).contains("Broken pipe"), "{}", text(&o));
}

#[test]
fn pins_are_same_origin_paths_listed_and_shown_before_the_next_pass() {
    let dir = tempfile::tempdir().unwrap();
    let db = learned_db(dir.path());
    let e = pushwise_fails(&db, &["sets", "pin", "/", "https://cdn.example.com/x.js"]);
    assert!(e.contains("same-origin"), "{e}");
    let e = pushwise_fails(&db, &["sets", "pin", "/", "//cdn.example.com/x.js"]);
    assert!(e.contains("same-origin"), "{e}");
    let o = Command::new(bin())
        .arg("--db")
        .arg(&db)
        .args(["sets", "pin", "/", "/css/nonexistent.css"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("never requested"), "{}", text(&o));
    pushwise(&db, &["sets", "ban", "/", "/js/app.js"]);
    let pins = pushwise_json(&db, &["sets", "pins", "--json"]);
    assert_eq!(pins.as_array().unwrap().len(), 2, "{pins}");
    let only = pushwise_json(&db, &["sets", "pins", "/nothere", "--json"]);
    assert!(only.as_array().unwrap().is_empty(), "{only}");
    let show = pushwise_json(&db, &["sets", "show", "/", "--json"]);
    let shown: Vec<&str> = show[0]["pins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["asset"].as_str().unwrap())
        .collect();
    assert_eq!(shown, ["/css/nonexistent.css", "/js/app.js"], "{show}");
    // A page with pins and no views yet is shown too.
    pushwise(&db, &["sets", "pin", "/new/", "/css/site.css"]);
    let out = pushwise(&db, &["sets", "show", "/new/"]);
    assert!(
        out.contains("/css/site.css") && out.contains("no views"),
        "{out}"
    );
    assert!(pushwise(&db, &["sets", "unpin", "/", "/js/app.js"]).contains("removed"));
    let e = pushwise_fails(&db, &["sets", "unpin", "/", "/js/app.js"]);
    assert!(e.contains("nothing to unpin"), "{e}");
    // A page given without its leading slash is the page with it.
    pushwise(&db, &["threshold", "set", "0.7", "--page", "nothere"]);
    let t = pushwise_json(&db, &["threshold", "show", "--json"]);
    assert!(
        t["settings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["page"] == "/nothere"),
        "{t}"
    );
}

#[test]
fn digests_refuse_relative_urls_both_ways_and_speak_one_json() {
    let (_dir, db) = temp_db();
    let e = pushwise_fails(&db, &["digest", "decode", "AfwA", "--url", "/css/site.css"]);
    assert!(e.contains("not an absolute URL"), "{e}");
    // The README's example holds.
    let out = pushwise(
        &db,
        &[
            "digest",
            "decode",
            "AfwA",
            "--url",
            "https://example.com/a.css",
        ],
    );
    assert!(out.starts_with("1 entry,"), "{out}");
    assert!(out.contains("present https://example.com/a.css"), "{out}");
    let enc = pushwise_json(
        &db,
        &[
            "digest",
            "encode",
            "--probability-bits",
            "7",
            "--json",
            "https://example.com/a.css",
        ],
    );
    assert_eq!(enc["value"], "AfwA");
    let dec = pushwise_json(&db, &["digest", "decode", "AfwA", "--json"]);
    assert_eq!(enc["entries"], dec["entries"], "{enc} {dec}");
    assert!(
        enc["urls"].is_array() && dec["urls"].is_array(),
        "{enc} {dec}"
    );
    let short = pushwise(
        &db,
        &["digest", "encode", "-p", "7", "https://example.com/a.css"],
    );
    assert_eq!(short.trim(), "AfwA");
}

#[test]
fn a_read_only_server_follows_the_generations_another_process_writes() {
    let dir = tempfile::tempdir().unwrap();
    let db = learned_db(dir.path());
    let work = tempfile::tempdir().unwrap();
    let mut s = Server::start_with_db(
        &[
            "--root",
            site().to_str().unwrap(),
            "--read-only-db",
            "--reload-every-ms",
            "100",
            "--holdout",
            "0",
        ],
        work,
        db.clone(),
    );
    let sent = |out: &str| {
        let mut v = early_hint_links(out);
        v.extend(promised_paths(out));
        v
    };
    let out = nghttp(&[&s.url("/")]);
    assert!(
        sent(&out).iter().any(|l| l.contains("/css/site.css")),
        "{out}"
    );
    // Another process (the operator, or a primary's analyzer) writes a new generation.
    pushwise(&db, &["sets", "ban", "/", "/css/site.css"]);
    pushwise(&db, &["analyze", "--once"]);
    std::thread::sleep(Duration::from_millis(600));
    let out = nghttp(&[&s.url("/")]);
    let now = sent(&out);
    assert!(
        !now.iter().any(|l| l.contains("/css/site.css")) && !now.is_empty(),
        "the read-only server still serves the old generation: {now:?}"
    );
    assert_eq!(s.stop(), 0);
}

#[test]
fn an_older_schema_is_read_by_no_inspecting_command_until_a_changing_one_upgrades_it() {
    let (_dir, db) = temp_db();
    // A database as an older pushwise left it: every migration but the newest applied.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let newest = pushwise_store::MIGRATOR
        .iter()
        .map(|m| m.version)
        .max()
        .unwrap();
    rt.block_on(async {
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .connect_with(
                sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(&db)
                    .create_if_missing(true),
            )
            .await
            .unwrap();
        pushwise_store::MIGRATOR
            .run_to(newest - 1, &pool)
            .await
            .unwrap();
        pool.close().await;
    });
    let before = std::fs::read(&db).unwrap();
    let e = pushwise_fails(&db, &["threshold", "show"]);
    assert!(
        e.contains("older schema") && e.contains(&format!("version {newest}")),
        "{e}"
    );
    assert_eq!(
        std::fs::read(&db).unwrap(),
        before,
        "an inspecting command migrated it"
    );
    // A changing command upgrades it; then inspecting works.
    pushwise(&db, &["threshold", "set", "0.4"]);
    let t = pushwise_json(&db, &["threshold", "show", "--json"]);
    assert_eq!(t["settings"][0]["probability"], 0.4, "{t}");
}
