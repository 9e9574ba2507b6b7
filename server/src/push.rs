//! The per-page-view push decision at request time: learned set → holdout, digest and diary skips,
//! budget; plus the digest cookie and the preload `Link` values. No SQLite here, only memory.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use http::{HeaderMap, HeaderValue, header};
use pushwise_analyzer::event::Context;
use pushwise_analyzer::plan::PlannedAsset;

use crate::digest::{self, CacheDigest};
use crate::exchange::ReqInfo;
use crate::metrics::{DigestResult, DigestSource, PushOutcome};
use crate::server::Shared;

/// Per-connection memory: what this connection already has, and whether its client refuses push.
#[derive(Debug)]
pub struct ConnState {
    pub id: u64,
    pub client_ip: std::net::IpAddr,
    /// Paths pushed or requested on this connection: never pushed again on it.
    diary: Mutex<HashSet<String>>,
    push_refused: AtomicBool,
    /// Taken by the first page view that pushes; see [`ConnState::take_push_gate`].
    push_gate: AtomicBool,
    /// Requests and pushes on this connection, for the close log line.
    pub requests: AtomicU64,
    pub pushes: AtomicU64,
    /// The last User-Agent seen on this connection and its client key: the address is fixed per
    /// connection and the UA nearly always is, so the keyed hash runs about once per connection.
    client_key: Mutex<Option<(Option<String>, i64)>>,
}

impl ConnState {
    pub fn new(id: u64, client_ip: std::net::IpAddr) -> Self {
        ConnState {
            id,
            client_ip,
            diary: Mutex::new(HashSet::new()),
            push_refused: AtomicBool::new(false),
            push_gate: AtomicBool::new(false),
            requests: AtomicU64::new(0),
            pushes: AtomicU64::new(0),
            client_key: Mutex::new(None),
        }
    }

    /// The client key for a request with `user_agent` on this connection, computed by `key` only
    /// when the User-Agent differs from the previous request's.
    pub fn client_key(
        &self,
        user_agent: Option<&str>,
        key: impl FnOnce(Option<&str>) -> i64,
    ) -> i64 {
        let mut last = self.client_key.lock().unwrap_or_else(|p| p.into_inner());
        match &*last {
            Some((ua, k)) if ua.as_deref() == user_agent => *k,
            _ => {
                let k = key(user_agent);
                *last = Some((user_agent.map(String::from), k));
                k
            }
        }
    }

    pub fn note(&self, path: &str) {
        if let Ok(mut d) = self.diary.lock()
            && d.len() < 4096
        {
            d.insert(path.to_string());
        }
    }

    /// Claims `path` for this connection: true when it was neither requested nor claimed before.
    /// Check and insert are one step, so two page views in flight at once never both push it.
    fn claim(&self, path: &str) -> bool {
        self.diary
            .lock()
            .map(|mut d| d.insert(path.to_string()))
            .unwrap_or(false)
    }

    pub fn push_refused(&self) -> bool {
        self.push_refused.load(Ordering::Relaxed)
    }

    /// True for the one page view per connection that may push; later ones get 103 hints.
    ///
    /// Why: the `h2` crate sends the frames of different streams round-robin, so PUSH_PROMISEs
    /// queued on two parent streams at once can reach the client with decreasing promised stream
    /// ids, which RFC 9113 §5.1.1 makes a connection error (nghttp answers GOAWAY PROTOCOL_ERROR).
    /// With a single parent stream per connection the promises stay in id order.
    pub fn take_push_gate(&self) -> bool {
        self.push_gate
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// The first failed push is the answer for the connection (h2 has no getter for ENABLE_PUSH).
    pub fn refuse_push(&self) {
        self.push_refused.store(true, Ordering::Relaxed);
    }
}

/// What to do for one page view.
#[derive(Debug, Default)]
pub struct ViewPlan {
    pub holdout: bool,
    pub context: &'static str,
    pub source: &'static str,
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
    let page = req.path.as_str();
    // Most GETs are assets with no set: answer them before any other work.
    if !shared.sets.contains(page) {
        return ViewPlan {
            source: "none",
            ..Default::default()
        };
    }
    let ctx = Context::of(req.browser, &req.referer);
    let decision = shared.sets.decide(page, ctx);
    let mut plan = ViewPlan {
        context: decision.context,
        source: decision.source,
        ..Default::default()
    };
    if decision.assets.is_empty() || cfg.push_mode == crate::PushMode::Off {
        return plan;
    }
    if cfg.holdout > 0.0 && fastrand::f64() < cfg.holdout {
        plan.holdout = true;
        shared.metrics.holdout_views.inc();
        return plan;
    }
    let digests = client_digests(shared, headers, &mut plan);
    let mut budget = cfg.push_budget_bytes as i64;
    for a in decision.assets.iter() {
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

fn client_digests(shared: &Shared, headers: &HeaderMap, plan: &mut ViewPlan) -> Vec<CacheDigest> {
    let mut out = Vec::new();
    for cookie in headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
    {
        if let Some(v) = digest::cookie_value(cookie, &shared.config.digest_cookie) {
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
    }
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
        cfg.digest_cookie, cfg.digest_max_age
    ))
    .ok()
}

/// `<path>; rel=preload; as=TYPE` (fonts need `crossorigin` to be reused by the CSS fetch).
pub fn link_value(a: &PlannedAsset) -> Option<HeaderValue> {
    let mut v = format!("<{}>; rel=preload; as={}", a.path, a.as_type);
    if a.as_type == "font" {
        v.push_str("; crossorigin");
    }
    HeaderValue::from_str(&v).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_key_is_hashed_again_only_when_the_user_agent_changes() {
        let conn = ConnState::new(1, "192.0.2.7".parse().unwrap());
        let keyer = pushwise_analyzer::event::ClientKeyer::new([7; 32]);
        let calls = std::cell::Cell::new(0);
        let key = |ua: Option<&str>| {
            calls.set(calls.get() + 1);
            keyer.key("192.0.2.7", ua)
        };
        let a = conn.client_key(Some("UA-1"), key);
        assert_eq!(conn.client_key(Some("UA-1"), key), a);
        assert_eq!(calls.get(), 1);
        let b = conn.client_key(Some("UA-2"), key);
        assert_ne!(a, b);
        assert_eq!(b, keyer.key("192.0.2.7", Some("UA-2")));
        assert_eq!(conn.client_key(None, key), keyer.key("192.0.2.7", None));
        assert_eq!(calls.get(), 3);
    }
}
