//! The per-page-view push decision at request time: learned set → holdout, digest and diary skips,
//! budget; plus the digest cookie and the preload `Link` values. No SQLite here, only memory.

use http::{HeaderMap, HeaderValue, header};
use pushwise_store::Context;
use pushwise_store::rows::AsType;
use pushwise_store::sets::PlannedAsset;

use crate::conn::ConnState;
use crate::digest::{self, CacheDigest};
use crate::exchange::ReqInfo;
use crate::metrics::{DigestResult, DigestSource, PushOutcome};
use crate::shared::Shared;

/// What to do for one page view.
#[derive(Debug, Default)]
pub struct ViewPlan {
    pub holdout: bool,
    /// Assets to push or hint, in order, after every skip.
    pub candidates: Vec<PlannedAsset>,
    /// Set assets the client's digest says it has (recorded as skipped).
    pub skipped_digest: Vec<String>,
    /// Set assets the client already has per digest, pushes or this connection (for the cookie).
    pub client_has: Vec<String>,
    /// The digest cookie value the client sent, to avoid re-setting an identical cookie.
    pub cookie_sent: Option<String>,
}

/// The origin of a request, for absolute push URIs and digest keys.
/// A same-origin absolute path: one leading `/` (`//host/x` would be another origin).
pub fn is_local_path(path: &str) -> bool {
    path.starts_with('/') && !path.starts_with("//")
}

pub fn absolute_url(authority: &str, path: &str) -> String {
    format!("https://{authority}{path}")
}

/// Decides what a page view gets (before the protocol layer tries to push or hint it).
///
/// The request context comes from what [`ReqInfo`] already derived from the same headers (UA
/// class, Referer reduced against the site's hosts), so the headers are parsed once.
pub fn plan_view(
    shared: &Shared,
    conn: &ConnState,
    headers: &HeaderMap,
    authority: &str,
    req: &ReqInfo,
) -> ViewPlan {
    let cfg = &shared.config;
    if req.foreign_host {
        return ViewPlan::default();
    }
    let page = req.path.as_str();
    // Most GETs are assets with no set: answer them before any other work. A page without
    // statistics may still back off to its section's set, but only when the request is a
    // navigation (an asset under the same section must not be answered with the section's set)
    // to a path this server has answered successfully: a navigation to a page that does not
    // exist (a 404, a mistyped or probing URL) must not be pushed or hinted the section's assets.
    // The cost: after a restart, a page nobody has recorded a view of yet gets its section's set
    // from its second view on.
    let has_set = shared.sets.contains(page)
        || (is_navigation(headers)
            && shared.sets.has_section_for(page)
            && shared.known_paths.contains(page));
    if !has_set {
        return ViewPlan::default();
    }
    let ctx = Context::of(req.ua, &req.referer);
    let decision = shared.sets.decide(page, ctx);
    let mut plan = ViewPlan::default();
    if decision.assets.is_empty() || cfg.push_mode == crate::config::PushMode::Off {
        return plan;
    }
    // The quiet-client rule: a browser offered a set before that took none of it gets nothing
    // now. Held-back and holdout views are offers too (the client's own fetches still show).
    let after = shared.sets.quiet_after();
    if shared
        .quiet
        .view(req.client, &decision.assets, after, req.ts_ms)
    {
        shared.metrics.quiet_views.inc();
        return plan;
    }
    let holdout = cfg.holdout.get();
    if holdout > 0.0 && fastrand::f64() < holdout {
        plan.holdout = true;
        shared.metrics.holdout_views.inc();
        return plan;
    }
    let digests = client_digests(shared, headers, &mut plan);
    let mut budget = cfg.push_budget_bytes as i64;
    // Only same-origin paths are ever pushed or announced, whatever the store holds.
    for a in decision.assets.iter().filter(|a| is_local_path(&a.path)) {
        let url = absolute_url(authority, &a.path);
        if digests.iter().any(|d| d.contains(&url, None)) {
            shared.metrics.push(PushOutcome::skipped_digest);
            plan.skipped_digest.push(a.path.clone());
            plan.client_has.push(a.path.clone());
            continue;
        }
        if a.bytes > budget {
            shared.metrics.push(PushOutcome::skipped_budget);
            continue;
        }
        if !conn.claim(&a.path) {
            shared.metrics.push(PushOutcome::skipped_diary);
            plan.client_has.push(a.path.clone());
            continue;
        }
        budget -= a.bytes;
        plan.candidates.push(a.clone());
    }
    plan
}

/// At most this many digests are read from one request (cookies and headers together): each is
/// checked against every candidate with a SHA-256, so their number is the client's to bound.
pub const MAX_DIGESTS: usize = 8;

fn client_digests(shared: &Shared, headers: &HeaderMap, plan: &mut ViewPlan) -> Vec<CacheDigest> {
    let mut out = Vec::new();
    for cookie in headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
    {
        if let Some(v) = digest::cookie_value(cookie, shared.config.digest_cookie.as_str()) {
            plan.cookie_sent = Some(v.to_string());
            match CacheDigest::decode(v) {
                Some(d) => {
                    shared
                        .metrics
                        .digest(DigestSource::cookie, DigestResult::read);
                    out.push(d);
                }
                None => shared
                    .metrics
                    .digest(DigestSource::cookie, DigestResult::invalid),
            }
        }
    }
    for h in headers.get_all("cache-digest").iter() {
        let parsed = h.to_str().map(digest::parse_header).unwrap_or_default();
        if parsed.is_empty() {
            shared
                .metrics
                .digest(DigestSource::header, DigestResult::invalid);
        } else {
            shared
                .metrics
                .digest(DigestSource::header, DigestResult::read);
        }
        out.extend(parsed);
        if out.len() >= MAX_DIGESTS {
            break;
        }
    }
    out.truncate(MAX_DIGESTS);
    out
}

/// `Set-Cookie` carrying the digest of the set assets the client has after this view, or `None`
/// when it would not change what the client sent.
pub fn digest_cookie(
    shared: &Shared,
    authority: &str,
    plan: &ViewPlan,
    delivered: &[String],
) -> Option<HeaderValue> {
    let cfg = &shared.config;
    let mut have: Vec<String> = plan
        .client_has
        .iter()
        .chain(delivered.iter())
        .map(|p| absolute_url(authority, p))
        .collect();
    have.sort();
    have.dedup();
    have.truncate(cfg.digest_max_urls);
    if have.is_empty() {
        return None;
    }
    let d = CacheDigest::from_urls(
        have.iter().map(|u| (u.as_str(), None)),
        digest::DEFAULT_LOG2_P,
    )
    .encode();
    if plan.cookie_sent.as_deref() == Some(d.as_str()) {
        return None;
    }
    HeaderValue::from_str(&format!(
        "{}={d}; Path=/; Max-Age={}; Secure; HttpOnly; SameSite=Lax",
        cfg.digest_cookie.as_str(),
        cfg.digest_max_age
    ))
    .ok()
}

/// `<path>; rel=preload; as=TYPE` (fonts need `crossorigin` to be reused by the CSS fetch).
pub fn link_value(a: &PlannedAsset) -> Option<HeaderValue> {
    if !is_local_path(&a.path) {
        return None;
    }
    let mut v = format!("<{}>; rel=preload; as={}", a.path, a.as_type.as_str());
    if a.as_type == AsType::Font {
        v.push_str("; crossorigin");
    }
    HeaderValue::from_str(&v).ok()
}

/// True when the request is a browser navigation to a document (`Sec-Fetch-Dest: document`, or an
/// `Accept` that asks for HTML first): only such a request may use a section's set for a page
/// the analyzer has not seen.
pub fn is_navigation(headers: &HeaderMap) -> bool {
    if let Some(d) = headers.get("sec-fetch-dest") {
        return d.as_bytes() == b"document";
    }
    headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.trim_start().starts_with("text/html"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_document_navigations_may_borrow_a_sections_set() {
        let h = |pairs: &[(&'static str, &'static str)]| {
            let mut m = http::HeaderMap::new();
            for (k, v) in pairs {
                m.insert(*k, http::HeaderValue::from_static(v));
            }
            super::is_navigation(&m)
        };
        assert!(h(&[(
            "accept",
            "text/html,application/xhtml+xml,*/*;q=0.8"
        )]));
        assert!(h(&[("sec-fetch-dest", "document"), ("accept", "*/*")]));
        assert!(!h(&[("sec-fetch-dest", "image"), ("accept", "text/html")]));
        assert!(!h(&[("accept", "image/avif,image/webp,*/*")]));
        assert!(!h(&[("accept", "*/*")]));
        assert!(!h(&[]));
    }

    fn asset(path: &str) -> PlannedAsset {
        PlannedAsset {
            path: path.into(),
            as_type: AsType::Style,
            bytes: 100,
            probability: 1.0,
        }
    }

    #[test]
    fn only_same_origin_paths_become_link_headers() {
        assert_eq!(
            link_value(&asset("/css/site.css")).unwrap(),
            "</css/site.css>; rel=preload; as=style"
        );
        for bad in [
            "//css/site.css",
            "//evil.example/x.css",
            "css/site.css",
            "!error",
        ] {
            assert!(link_value(&asset(bad)).is_none(), "{bad}");
        }
    }
}
