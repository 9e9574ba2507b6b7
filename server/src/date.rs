//! The `Date` response header, formatted at most once per second per thread.
//!
//! RFC 9110 §6.6.1: an origin server with a clock sends `Date` in every response. Formatting an
//! IMF-fixdate per response would cost more than the header is worth, so each thread keeps the
//! value of the current second (no lock shared between threads on the request path).

use std::cell::RefCell;
use std::time::UNIX_EPOCH;

use http::HeaderValue;

thread_local! {
    static CACHED: RefCell<(u64, Option<HeaderValue>)> = const { RefCell::new((0, None)) };
}

/// The `Date` value for now.
pub fn now() -> HeaderValue {
    let now = crate::clock::now().system;
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    CACHED.with(|c| {
        let mut c = c.borrow_mut();
        if c.0 != secs || c.1.is_none() {
            let v = HeaderValue::from_str(&httpdate::fmt_http_date(now))
                .unwrap_or_else(|_| HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"));
            *c = (secs, Some(v));
        }
        c.1.clone()
            .unwrap_or_else(|| HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"))
    })
}

/// Adds `Date: now` unless the response has one (an upstream's own is kept).
pub fn set(headers: &mut http::HeaderMap) {
    if !headers.contains_key(http::header::DATE) {
        headers.insert(http::header::DATE, now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    #[test]
    fn the_date_is_an_imf_fixdate_of_now_and_an_upstream_date_is_kept() {
        let v = now();
        let t = httpdate::parse_http_date(v.to_str().unwrap()).unwrap();
        let age = SystemTime::now().duration_since(t).unwrap();
        assert!(age.as_secs() <= 2, "{v:?}");
        let mut h = http::HeaderMap::new();
        h.insert(
            http::header::DATE,
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"),
        );
        set(&mut h);
        assert_eq!(h[http::header::DATE], "Sun, 06 Nov 1994 08:49:37 GMT");
    }
}
