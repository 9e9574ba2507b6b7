//! Which forwarding headers to believe: `X-Forwarded-For` names the client only when the peer is
//! a proxy the operator trusts (`--trusted-proxy`); from anyone else such headers are dropped.
//!
//! Why: the client key (a keyed hash of address and User-Agent) is what the learner counts
//! clients by, and the upstream may log or rate-limit by `X-Forwarded-For`. Believing any client's
//! header would let one host be anyone.

use std::net::IpAddr;

use http::HeaderMap;
use ipnet::IpNet;

/// Headers that claim who the client is.
const CLAIMS: [&str; 4] = [
    "x-forwarded-for",
    "forwarded",
    "x-real-ip",
    "x-forwarded-host",
];

/// Whether `peer` is one of the trusted proxies.
pub fn is_trusted(peer: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|n| n.contains(&peer))
}

/// The client's address: the peer's, unless the peer is a trusted proxy; then the right-most
/// `X-Forwarded-For` hop that is not itself a trusted proxy (hops further left were written by
/// whoever the client is, so they prove nothing).
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    if !is_trusted(peer, trusted) {
        return peer;
    }
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|h| h.trim().parse::<IpAddr>())
        .collect::<Result<_, _>>()
        .unwrap_or_default();
    hops.into_iter()
        .rev()
        .find(|ip| !is_trusted(*ip, trusted))
        .unwrap_or(peer)
}

/// Drops the client's own claims of who it is unless `peer_trusted`: the upstream then sees
/// `X-Forwarded-For` with the peer's address only (added by the upstream origin).
pub fn strip_untrusted(headers: &mut HeaderMap, peer_trusted: bool) {
    if !peer_trusted {
        for h in CLAIMS {
            headers.remove(h);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn xff(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        h.insert("x-real-ip", HeaderValue::from_static("6.6.6.6"));
        h
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let h = xff("1.2.3.4");
        assert_eq!(client_ip(ip("203.0.113.9"), &h, &[]), ip("203.0.113.9"));
        let mut h2 = h.clone();
        strip_untrusted(&mut h2, false);
        assert!(h2.is_empty());
    }

    #[test]
    fn behind_a_trusted_proxy_the_client_is_the_last_untrusted_hop() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let h = xff("6.6.6.6, 1.2.3.4, 10.0.0.7");
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &trusted), ip("1.2.3.4"));
        // Garbage in the header: no claim is believed.
        let h = xff("1.2.3.4, not-an-ip");
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &trusted), ip("10.0.0.1"));
        let mut kept = xff("1.2.3.4");
        strip_untrusted(&mut kept, true);
        assert_eq!(kept.len(), 2);
    }
}
