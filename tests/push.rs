//! End-to-end: learned push sets are pushed over h2 (nghttp), skipped per cache digest and per
//! connection, replaced by 103 Early Hints for clients that refuse push, and held out on purpose.

mod common;

use common::*;

const HOME_SET: [&str; 6] = [
    "/css/site.css",
    "/js/app.js",
    "/img/logo.svg",
    "/fonts/open-sans-300.woff2",
    "/img/header-bg.png",
    "/img/home-hero.png",
];

fn server_with_home_set(extra: &[&str]) -> Server {
    server_with_home_set_and(extra, |_| {})
}

/// [`server_with_home_set`], with `before` run on the database before the server starts.
fn server_with_home_set_and(extra: &[&str], before: impl FnOnce(&std::path::Path)) -> Server {
    let (dir, db) = temp_db();
    prepare_sets(
        &db,
        &[
            ("/", &HOME_SET),
            (
                "/about.html",
                &["/css/site.css", "/js/app.js", "/img/about-team.png"],
            ),
        ],
    );
    before(&db);
    let root = site();
    let mut args = vec!["--root", root.to_str().unwrap(), "--analyze-every", "0"];
    if !extra.contains(&"--holdout") {
        args.extend(["--holdout", "0"]);
    }
    args.extend_from_slice(extra);
    Server::start_with_db(&args, dir, db)
}

/// DATA bytes received per stream id in `nghttp -v` output.
fn data_bytes(out: &str) -> std::collections::HashMap<u32, usize> {
    let mut m = std::collections::HashMap::new();
    for l in out.lines().filter(|l| l.contains("recv DATA frame")) {
        let num = |key: &str| -> usize {
            let i = l.find(key).unwrap() + key.len();
            l[i..]
                .chars()
                .take_while(|c| c.is_ascii_digit())
                .collect::<String>()
                .parse()
                .unwrap()
        };
        *m.entry(num("stream_id=") as u32).or_insert(0) += num("length=");
    }
    m
}

#[test]
fn the_learned_set_is_promised_in_order_with_correct_bodies() {
    let mut s = server_with_home_set(&[]);
    let out = nghttp(&[&s.url("/")]);
    assert_eq!(promised_paths(&out), HOME_SET, "{out}");
    // Promised streams are 2, 4, 6, ... in promise order; each carries the whole file.
    let bytes = data_bytes(&out);
    for (i, p) in HOME_SET.iter().enumerate() {
        let want = std::fs::metadata(site().join(&p[1..])).unwrap().len() as usize;
        assert_eq!(
            bytes.get(&(2 * i as u32 + 2)).copied(),
            Some(want),
            "{p}: {out}"
        );
    }
    assert!(early_hint_links(&out).is_empty());
    assert_eq!(s.stop(), 0);
    let ev = events(&s.db);
    let pushed: Vec<&str> = ev
        .iter()
        .filter(|e| e.push == 1)
        .map(|e| e.path.as_str())
        .collect();
    assert_eq!(pushed.len(), HOME_SET.len(), "{ev:?}");
    assert!(
        ev.iter()
            .filter(|e| e.push == 1)
            .all(|e| e.referer.as_deref() == Some("/"))
    );
}

#[test]
fn a_digest_cookie_covering_the_set_means_no_promises() {
    let s = server_with_home_set(&[]);
    let urls: Vec<String> = HOME_SET.iter().map(|p| s.url(p)).collect();
    let mut args = vec!["digest", "encode"];
    args.extend(urls.iter().map(String::as_str));
    let digest = pushwise(&s.db, &args).trim().to_string();
    let out = nghttp(&[
        "-H",
        &format!("cookie: a=b; pushwise_digest={digest}"),
        &s.url("/"),
    ]);
    assert!(promised_paths(&out).is_empty(), "{out}");
}

#[test]
fn the_empty_digest_is_encodable_and_covers_nothing() {
    let s = server_with_home_set(&[]);
    // The draft's vector for no URLs at P = 2^7 (shared/cache-digest-vectors.json).
    let empty = pushwise(&s.db, &["digest", "encode", "--p", "7"]);
    assert_eq!(empty.trim(), "AcA");
    let out = nghttp(&["-H", "cookie: pushwise_digest=AcA", &s.url("/")]);
    assert_eq!(promised_paths(&out), HOME_SET, "{out}");
}

#[test]
fn the_server_sets_a_digest_cookie_that_stops_repeat_pushes() {
    let s = server_with_home_set(&[]);
    let out = nghttp(&[&s.url("/")]);
    let cookie = header(&out, "set-cookie")
        .expect("digest cookie")
        .to_string();
    assert!(cookie.starts_with("pushwise_digest="), "{cookie}");
    for attr in [
        "Path=/",
        "Secure",
        "HttpOnly",
        "SameSite=Lax",
        "Max-Age=3600",
    ] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    let value = cookie.split(';').next().unwrap();
    let out = nghttp(&["-H", &format!("cookie: {value}"), &s.url("/")]);
    assert!(promised_paths(&out).is_empty(), "{out}");
}

#[test]
fn a_cache_digest_header_covering_part_of_the_set_leaves_only_the_rest() {
    let s = server_with_home_set(&[]);
    let have = [s.url("/css/site.css"), s.url("/img/home-hero.png")];
    // A digest is a Bloom-like filter: at the default P = 2^7, with two URLs, each of the other
    // four has a 1/64 chance of colliding (the port in the URL changes every run). At P = 2^20 a
    // false positive is a one-in-a-hundred-thousand event, so a skipped asset means a bug.
    let digest = pushwise(
        &s.db,
        &["digest", "encode", "--p", "20", &have[0], &have[1]],
    )
    .trim()
    .to_string();
    let out = nghttp(&[
        "-H",
        &format!("cache-digest: {digest}; complete"),
        &s.url("/"),
    ]);
    let want: Vec<&str> = HOME_SET
        .iter()
        .copied()
        .filter(|p| *p != "/css/site.css" && *p != "/img/home-hero.png")
        .collect();
    assert_eq!(promised_paths(&out), want, "{out}");
}

#[test]
fn a_malformed_digest_is_no_digest_and_the_page_is_still_served() {
    let s = server_with_home_set(&[]);
    let out = nghttp(&[
        "-H",
        "cookie: pushwise_digest=%%%not-base64",
        "-H",
        "cache-digest: ????",
        &s.url("/"),
    ]);
    assert!(out.contains(":status: 200"), "{out}");
    assert_eq!(promised_paths(&out), HOME_SET);
}

#[test]
fn a_second_page_on_the_same_connection_pushes_nothing_already_pushed() {
    let s = server_with_home_set(&[]);
    // Both pages on one connection, concurrently: one of them pushes (a single parent stream keeps
    // promised ids in order), the other gets a 103 for what was not delivered yet.
    for _ in 0..10 {
        let out = nghttp(&[&s.url("/"), &s.url("/about.html")]);
        assert!(!out.contains("PROTOCOL_ERROR"), "{out}");
        let promised = promised_paths(&out);
        let hinted: Vec<String> = early_hint_links(&out)
            .iter()
            .map(|l| l[1..l.find('>').unwrap()].to_string())
            .collect();
        assert!(!promised.is_empty(), "{out}");
        let mut all: Vec<&String> = promised.iter().chain(hinted.iter()).collect();
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(
            all.len(),
            n,
            "something was delivered twice: {promised:?} {hinted:?}"
        );
        assert_eq!(n, HOME_SET.len() + 1, "{promised:?} {hinted:?}");
    }
}

#[test]
fn a_client_that_disables_push_gets_103_early_hints_with_the_same_set() {
    let s = server_with_home_set(&[]);
    let out = nghttp(&["--no-push", &s.url("/")]);
    assert!(promised_paths(&out).is_empty(), "{out}");
    let links = early_hint_links(&out);
    let want: Vec<String> = HOME_SET
        .iter()
        .map(|p| {
            let as_ = pushwise_store::rows::AsType::of(p).as_str();
            let cors = if as_ == "font" { "; crossorigin" } else { "" };
            format!("<{p}>; rel=preload; as={as_}{cors}")
        })
        .collect();
    assert_eq!(links, want, "{out}");
    // The final response carries the same Link headers.
    let finals = out.lines().filter(|l| l.contains(") link: <")).count();
    assert_eq!(finals, 2 * HOME_SET.len(), "{out}");
}

#[test]
fn hints_mode_sends_103_even_to_clients_that_accept_push() {
    let s = server_with_home_set(&["--push-mode", "hints"]);
    let out = nghttp(&[&s.url("/")]);
    assert!(promised_paths(&out).is_empty());
    assert_eq!(early_hint_links(&out).len(), HOME_SET.len(), "{out}");
}

#[test]
fn a_holdout_view_gets_neither_push_nor_hints_and_is_recorded_as_holdout() {
    let mut s = server_with_home_set(&["--holdout", "1"]);
    let out = nghttp(&[&s.url("/")]);
    assert!(promised_paths(&out).is_empty(), "{out}");
    let out = nghttp(&["--no-push", &s.url("/")]);
    assert!(early_hint_links(&out).is_empty(), "{out}");
    assert_eq!(s.stop(), 0);
    let ev = events(&s.db);
    assert!(ev.iter().filter(|e| e.is_page).all(|e| e.holdout), "{ev:?}");
}

#[test]
fn http1_page_views_get_preload_links_not_pushes() {
    let s = server_with_home_set(&[]);
    let o = run(
        "curl",
        &[
            "-sk",
            "--http1.1",
            "-A",
            BROWSER_UA,
            "-D",
            "-",
            "-o",
            "/dev/null",
            &s.url("/"),
        ],
    );
    let t = text(&o);
    assert_eq!(t.matches("link: <").count(), HOME_SET.len(), "{t}");
}

/// An HTTP/1.1 app whose tracker script sets a cookie: it must never be pushed.
fn start_app() -> u16 {
    http1_app(|req| {
        let path = req.split_whitespace().nth(1).unwrap_or("/").to_string();
        if path == "/slow" {
            // An application that thinks before answering: hints should not wait for it.
            std::thread::sleep(std::time::Duration::from_millis(800));
        }
        let (ct, extra, body) = match path.as_str() {
            "/" | "/slow" => (
                "text/html",
                "",
                "<html><link rel=stylesheet href=/a.css></html>",
            ),
            "/a.css" => (
                "text/css",
                "Cache-Control: public, max-age=60\r\n",
                "body{}",
            ),
            "/tracker.js" => ("text/javascript", "Set-Cookie: id=1\r\n", "track()"),
            "/private.js" => ("text/javascript", "Cache-Control: private\r\n", "me()"),
            _ => ("text/plain", "", "nope"),
        };
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: {ct}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    })
}

#[test]
fn set_cookie_and_private_assets_are_never_pushed_from_an_upstream() {
    let port = start_app();
    let (dir, db) = temp_db();
    prepare_sets(&db, &[("/", &["/tracker.js", "/a.css", "/private.js"])]);
    let up = format!("http://127.0.0.1:{port}");
    let s = Server::start_with_db(
        &["--upstream", &up, "--holdout", "0", "--analyze-every", "0"],
        dir,
        db,
    );
    let out = nghttp(&[&s.url("/")]);
    assert!(out.contains(":status: 200"), "{out}");
    assert_eq!(promised_paths(&out), ["/a.css"], "{out}");
}

/// Seconds of the first nghttp -v line that contains `needle`.
fn at(out: &str, needle: &str) -> f64 {
    let l = out
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no {needle:?} in {out}"));
    l.trim_start_matches('[')
        .split(']')
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn early_hints_and_promises_go_out_before_a_slow_upstream_answers() {
    let port = start_app();
    let (dir, db) = temp_db();
    prepare_sets(&db, &[("/slow", &["/a.css"])]);
    let up = format!("http://127.0.0.1:{port}");
    let s = Server::start_with_db(
        &["--upstream", &up, "--holdout", "0", "--analyze-every", "0"],
        dir,
        db,
    );
    let out = nghttp(&["--no-push", &s.url("/slow")]);
    let hint = at(&out, ":status: 103");
    let page = at(&out, ":status: 200");
    assert!(
        page - hint > 0.5,
        "103 at {hint}s, 200 at {page}s: hints waited for the application\n{out}"
    );
    let out = nghttp(&[&s.url("/slow")]);
    let promise = at(&out, "recv PUSH_PROMISE frame");
    let page = at(&out, ":status: 200");
    assert!(
        page - promise > 0.5,
        "promise at {promise}s, page at {page}s\n{out}"
    );
}

#[test]
fn crawlers_and_tools_get_neither_pushes_nor_early_hints() {
    let s = server_with_home_set(&[]);
    for ua in [
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "curl/8.5.0",
        "nghttp2/1.59.0",
    ] {
        let h = format!("user-agent: {ua}");
        let out = nghttp(&["-H", &h, &s.url("/")]);
        assert!(out.contains(":status: 200"), "{out}");
        assert!(promised_paths(&out).is_empty(), "{ua}: {out}");
        let out = nghttp(&["--no-push", "-H", &h, &s.url("/")]);
        assert!(early_hint_links(&out).is_empty(), "{ua}: {out}");
    }
    // The same page to a browser: the whole set.
    assert_eq!(promised_paths(&nghttp(&[&s.url("/")])), HOME_SET);
}

#[test]
fn a_navigation_to_an_answered_page_without_a_set_gets_its_sections_set_and_a_missing_page_or_an_asset_does_not()
 {
    let (dir, db) = temp_db();
    let section_set = ["/css/site.css", "/css/blog.css"];
    prepare_sets(&db, &[("section:/blog/", &section_set)]);
    let root = site();
    let s = Server::start_with_db(
        &[
            "--root",
            root.to_str().unwrap(),
            "--analyze-every",
            "0",
            "--holdout",
            "0",
        ],
        dir,
        db,
    );
    let html = "accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    // A page this server has not answered yet gets nothing (it may not exist); once it has been
    // answered, its navigations get the section's set.
    let out = nghttp(&["-H", html, &s.url("/blog/post-2.html")]);
    assert!(promised_paths(&out).is_empty(), "{out}");
    let out = nghttp(&["-H", html, &s.url("/blog/post-2.html")]);
    assert_eq!(promised_paths(&out), section_set, "{out}");
    assert!(nghttp(&[&s.url("/blog/post-1.html")]).contains(":status: 200"));
    let out = nghttp(&[
        "-H",
        "sec-fetch-dest: document",
        &s.url("/blog/post-1.html"),
    ]);
    assert_eq!(promised_paths(&out), section_set, "{out}");
    // A navigation to a page that does not exist never gets the section's assets, however often.
    for _ in 0..2 {
        let out = nghttp(&["-H", html, &s.url("/blog/no-such-post.html")]);
        assert!(out.contains(":status: 404"), "{out}");
        assert!(promised_paths(&out).is_empty(), "{out}");
        assert!(early_hint_links(&out).is_empty(), "{out}");
    }
    // Not navigations: an image under the section, and a fetch that asks for anything.
    let out = nghttp(&[
        "-H",
        "accept: image/avif,image/webp,*/*",
        &s.url("/blog/index.html"),
    ]);
    assert!(promised_paths(&out).is_empty(), "{out}");
    let out = nghttp(&[
        "-H",
        html,
        "-H",
        "sec-fetch-dest: image",
        &s.url("/blog/post-2.html"),
    ]);
    assert!(promised_paths(&out).is_empty(), "{out}");
    // Outside the section: nothing.
    let out = nghttp(&["-H", html, &s.url("/about.html")]);
    assert!(promised_paths(&out).is_empty(), "{out}");
}

#[test]
fn a_browser_that_took_nothing_it_was_hinted_gets_nothing_next_time_and_one_that_took_some_keeps_its_hints()
 {
    let s = server_with_home_set_and(&["--metrics-listen", "127.0.0.1:0"], |db| {
        pushwise(db, &["threshold", "set", "0.5", "--quiet-after", "1"]);
    });
    let view = |ua: &str| {
        let h = format!("user-agent: {BROWSER_UA} {ua}");
        early_hint_links(&nghttp(&["--no-push", "-H", &h, &s.url("/")])).len()
    };
    // A client hinted the set that fetches none of it (a blocker, a warm cache, a disguised
    // bot): its next view gets no hints.
    assert_eq!(view("quiet/1"), HOME_SET.len());
    assert_eq!(view("quiet/1"), 0);
    assert_eq!(view("quiet/1"), 0);
    // A client that fetches one hinted asset keeps getting the set.
    assert_eq!(view("busy/1"), HOME_SET.len());
    let h = format!("user-agent: {BROWSER_UA} busy/1");
    assert!(nghttp(&["-H", &h, &s.url("/css/site.css")]).contains(":status: 200"));
    assert_eq!(view("busy/1"), HOME_SET.len());
    assert_eq!(view("busy/1"), HOME_SET.len());
    let m = s.metrics();
    assert_eq!(metric_value(&m, "pushwise_quiet_views_total "), 2.0, "{m}");
}

#[test]
fn the_quiet_client_rule_is_off_by_default() {
    let s = server_with_home_set(&[]);
    let h = format!("user-agent: {BROWSER_UA} quiet/2");
    for _ in 0..3 {
        let out = nghttp(&["--no-push", "-H", &h, &s.url("/")]);
        assert_eq!(early_hint_links(&out).len(), HOME_SET.len(), "{out}");
    }
}
