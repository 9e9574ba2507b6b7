//! Scans a static site: its pages and, per page, the assets a browser would fetch (from the HTML,
//! and from the stylesheets' `url()` references).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use pushwise_store::Context;
use pushwise_store::rows::{AsType, NewGeneration, PageStat, Reason, SetRow};

/// One page and what a browser fetches for it.
#[derive(Debug, Clone)]
pub struct Page {
    /// URL path, e.g. `/` or `/blog/post-1.html`.
    pub path: String,
    /// Assets referenced by the HTML (stylesheets, scripts, images), in document order.
    pub direct: Vec<String>,
    /// Assets referenced by those stylesheets: (stylesheet, asset).
    pub via_css: Vec<(String, String)>,
}

impl Page {
    /// Every asset of the page, direct then via CSS, without duplicates.
    pub fn all_assets(&self) -> Vec<String> {
        let mut seen = BTreeSet::new();
        self.direct
            .iter()
            .chain(self.via_css.iter().map(|(_, a)| a))
            .filter(|a| seen.insert(a.to_string()))
            .cloned()
            .collect()
    }
}

/// A scanned site.
#[derive(Debug, Clone)]
pub struct SiteMap {
    pub root: PathBuf,
    pub pages: Vec<Page>,
    /// Size of every file by URL path.
    pub sizes: BTreeMap<String, u64>,
}

impl SiteMap {
    pub fn scan(root: &Path) -> std::io::Result<SiteMap> {
        let mut files = Vec::new();
        walk(root, root, &mut files)?;
        let mut sizes = BTreeMap::new();
        for f in &files {
            let len = std::fs::metadata(root.join(&f[1..]))?.len();
            sizes.insert(f.clone(), len);
        }
        let mut pages = Vec::new();
        for f in files.iter().filter(|f| f.ends_with(".html")) {
            let html = std::fs::read_to_string(root.join(&f[1..]))?;
            let path = f.strip_suffix("index.html").unwrap_or(f).to_string();
            let direct: Vec<String> = html_refs(&html)
                .into_iter()
                .map(|r| resolve(f, &r))
                .filter(|r| sizes.contains_key(r))
                .collect();
            let mut via_css = Vec::new();
            for css in direct.iter().filter(|d| d.ends_with(".css")) {
                let text = std::fs::read_to_string(root.join(&css[1..]))?;
                for r in css_refs(&text) {
                    let r = resolve(css, &r);
                    if sizes.contains_key(&r) {
                        via_css.push((css.clone(), r));
                    }
                }
            }
            pages.push(Page {
                path,
                direct,
                via_css,
            });
        }
        pages.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(SiteMap {
            root: root.to_path_buf(),
            pages,
            sizes,
        })
    }

    /// A generation whose page-wide set for each page is exactly its assets, in discovery order
    /// (what an oracle that knows every page would push).
    pub fn oracle_generation(&self) -> NewGeneration {
        let mut g = NewGeneration {
            created_ms: 1,
            ..Default::default()
        };
        for p in &self.pages {
            g.pages.push(PageStat {
                page: p.path.clone(),
                context: Context::PageWide,
                views: 1,
                weighted: 1.0,
                uses_own: true,
            });
            for (i, asset) in p.all_assets().into_iter().enumerate() {
                g.assets.push(SetRow {
                    page: p.path.clone(),
                    context: Context::PageWide,
                    as_type: AsType::of(&asset),
                    bytes: self.size(&asset) as i64,
                    asset,
                    probability: 1.0,
                    support: 1,
                    delay_ms: i as i64,
                    in_set: true,
                    position: i as i64,
                    reason: Reason::Pinned,
                });
            }
        }
        g
    }

    pub fn page(&self, path: &str) -> Option<&Page> {
        self.pages.iter().find(|p| p.path == path)
    }

    pub fn size(&self, path: &str) -> u64 {
        self.sizes.get(path).copied().unwrap_or(0)
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let p = e.path();
        if p.is_dir() {
            walk(root, &p, out)?;
        } else if let Ok(rel) = p.strip_prefix(root) {
            out.push(format!("/{}", rel.to_string_lossy()));
        }
    }
    out.sort();
    Ok(())
}

/// Resolves `r` against the document at `base` (absolute paths kept; query/fragment dropped).
pub fn resolve(base: &str, r: &str) -> String {
    let r = r.split(['?', '#']).next().unwrap_or("");
    if r.starts_with('/') {
        return r.to_string();
    }
    let dir = &base[..base.rfind('/').map_or(0, |i| i + 1)];
    let mut parts: Vec<&str> = dir.split('/').filter(|s| !s.is_empty()).collect();
    for seg in r.split('/') {
        match seg {
            "." | "" => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    format!("/{}", parts.join("/"))
}

fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let lower = tag.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find(name) {
        let at = from + i;
        from = at + name.len();
        let before_ok = at == 0 || lower.as_bytes()[at - 1].is_ascii_whitespace();
        let rest = tag[at + name.len()..].trim_start();
        if !before_ok || !rest.starts_with('=') {
            continue;
        }
        let v = rest[1..].trim_start();
        return Some(match v.chars().next() {
            Some(q @ ('"' | '\'')) => v[1..].split(q).next().unwrap_or(""),
            _ => v
                .split(|c: char| c.is_whitespace() || c == '>')
                .next()
                .unwrap_or(""),
        });
    }
    None
}

/// Subresource references in HTML, as a browser's preload scanner finds them.
pub fn html_refs(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find('<') {
        rest = &rest[i + 1..];
        let end = rest.find('>').unwrap_or(rest.len());
        let tag = &rest[..end];
        let name: String = tag
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        let r = match name.as_str() {
            "link" => {
                let rel = attr(tag, "rel").unwrap_or("").to_ascii_lowercase();
                if rel
                    .split_whitespace()
                    .any(|x| x == "stylesheet" || x == "preload" || x == "icon")
                {
                    attr(tag, "href")
                } else {
                    None
                }
            }
            "script" | "img" => attr(tag, "src"),
            _ => None,
        };
        if let Some(r) =
            r.filter(|r| !r.is_empty() && !r.contains("://") && !r.starts_with("data:"))
        {
            out.push(r.to_string());
        }
        rest = &rest[end.min(rest.len())..];
    }
    out
}

/// `url(...)` references in CSS.
pub fn css_refs(css: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = css;
    while let Some(i) = rest.find("url(") {
        rest = &rest[i + 4..];
        let end = rest.find(')').unwrap_or(rest.len());
        let r = rest[..end].trim().trim_matches(['"', '\'']);
        if !r.is_empty() && !r.starts_with("data:") && !r.contains("://") {
            out.push(r.to_string());
        }
        rest = &rest[end..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_and_css_references_are_found_like_a_browser_would() {
        let html = r#"<link rel="stylesheet" href="/a.css"><link rel=icon href=f.ico><script src='/j.js' defer></script><img alt=x src="i.png"><a href="/x">"#;
        assert_eq!(html_refs(html), ["/a.css", "f.ico", "/j.js", "i.png"]);
        assert_eq!(
            css_refs("a{background:url(/b.png)} @font-face{src:url('/f.woff2') format('woff2')}"),
            ["/b.png", "/f.woff2"]
        );
        assert_eq!(resolve("/blog/post.html", "../img/x.png"), "/img/x.png");
        assert_eq!(resolve("/blog/", "x.png?v=1"), "/blog/x.png");
    }
}
