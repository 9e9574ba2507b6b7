//! Cache digests: the Golomb-coded set of draft-ietf-httpbis-cache-digest, as a cookie or a
//! `Cache-Digest` header, telling the server which URLs the client already has cached.
//!
//! A malformed digest means *no digest*: decoding returns `None`, never an error response.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};

/// The false-positive rate we use for the cookie: 1 / 2^7 = 1/128 per asset not cached.
pub const DEFAULT_LOG2_P: u8 = 7;
/// Digest values longer than this (in base64 characters) are ignored as malformed.
pub const MAX_ENCODED_LEN: usize = 4096;

/// A decoded digest: sorted hash values with the parameters needed to test membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheDigest {
    log2_n: u8,
    log2_p: u8,
    values: Vec<u64>,
}

fn hash_prefix(url: &str, etag: Option<&str>) -> u64 {
    let mut h = Sha256::new();
    h.update(url.as_bytes());
    if let Some(e) = etag {
        h.update(e.as_bytes());
    }
    let out = h.finalize();
    u64::from_be_bytes(out[..8].try_into().expect("sha256 has 32 bytes"))
}

fn truncate(hash: u64, bits: u32) -> u64 {
    if bits == 0 { 0 } else { hash >> (64 - bits) }
}

/// log2 N: the number of URLs rounded to the nearest power of two (0 for none).
fn log2_n_for(n: usize) -> u8 {
    if n == 0 {
        return 0;
    }
    (n as f64).log2().round() as u8
}

struct BitWriter {
    out: Vec<u8>,
    acc: u8,
    used: u8,
}

impl BitWriter {
    fn push(&mut self, bit: bool) {
        self.acc = (self.acc << 1) | bit as u8;
        self.used += 1;
        if self.used == 8 {
            self.out.push(self.acc);
            self.acc = 0;
            self.used = 0;
        }
    }
    fn push_bits(&mut self, v: u64, n: u32) {
        for i in (0..n).rev() {
            self.push((v >> i) & 1 == 1);
        }
    }
    fn finish(mut self) -> Vec<u8> {
        if self.used > 0 {
            self.acc <<= 8 - self.used;
            self.out.push(self.acc);
        }
        self.out
    }
}

struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl BitReader<'_> {
    fn remaining(&self) -> usize {
        self.data.len() * 8 - self.pos
    }
    fn bit(&mut self) -> Option<bool> {
        let byte = *self.data.get(self.pos / 8)?;
        let b = (byte >> (7 - self.pos % 8)) & 1 == 1;
        self.pos += 1;
        Some(b)
    }
    fn bits(&mut self, n: u32) -> Option<u64> {
        let mut v = 0u64;
        for _ in 0..n {
            v = (v << 1) | self.bit()? as u64;
        }
        Some(v)
    }
}

impl CacheDigest {
    /// Builds the digest of `urls` (each with an optional ETag when validators are digested).
    pub fn from_urls<'a>(
        urls: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
        log2_p: u8,
    ) -> CacheDigest {
        let urls: Vec<_> = urls.into_iter().collect();
        let log2_n = log2_n_for(urls.len());
        let bits = u32::from(log2_n) + u32::from(log2_p);
        let mut values: Vec<u64> = urls
            .iter()
            .map(|(u, e)| truncate(hash_prefix(u, *e), bits))
            .collect();
        values.sort_unstable();
        values.dedup();
        CacheDigest {
            log2_n,
            log2_p,
            values,
        }
    }

    /// The raw bytes of the Golomb-coded set.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = BitWriter {
            out: Vec::new(),
            acc: 0,
            used: 0,
        };
        w.push_bits(u64::from(self.log2_n), 5);
        w.push_bits(u64::from(self.log2_p), 5);
        let mut c: i128 = -1;
        for &v in &self.values {
            let d = (i128::from(v) - c - 1) as u64;
            for _ in 0..(d >> self.log2_p) {
                w.push(false);
            }
            w.push(true);
            w.push_bits(d, u32::from(self.log2_p));
            c = i128::from(v);
        }
        w.finish()
    }

    /// base64url without padding, as carried in the cookie and the header.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.to_bytes())
    }

    /// Decodes raw bytes; `None` when they are not a well-formed digest.
    pub fn from_bytes(data: &[u8]) -> Option<CacheDigest> {
        let mut r = BitReader { data, pos: 0 };
        let log2_n = r.bits(5)? as u8;
        let log2_p = r.bits(5)? as u8;
        if u32::from(log2_n) + u32::from(log2_p) > 62 {
            return None;
        }
        let max_value = 1u64 << (u32::from(log2_n) + u32::from(log2_p));
        let mut values = Vec::new();
        let mut c: i128 = -1;
        loop {
            // Trailing zero bits (fewer than a byte) are padding; a 1 starts a value.
            let mut q: u64 = 0;
            let start = r.pos;
            let found_one = loop {
                match r.bit() {
                    Some(true) => break true,
                    Some(false) => q += 1,
                    None => break false,
                }
            };
            if !found_one {
                if r.pos - start >= 8 {
                    return None; // a whole zero byte is not padding
                }
                break;
            }
            if r.remaining() < usize::from(log2_p) {
                return None;
            }
            let low = r.bits(u32::from(log2_p))?;
            let d = (q.checked_shl(u32::from(log2_p))?) | low;
            if q > (max_value >> log2_p) {
                return None;
            }
            let v = c + 1 + i128::from(d);
            if v >= i128::from(max_value) {
                return None;
            }
            values.push(v as u64);
            c = v;
        }
        Some(CacheDigest {
            log2_n,
            log2_p,
            values,
        })
    }

    /// Decodes a base64url value (padding tolerated); `None` when malformed.
    pub fn decode(value: &str) -> Option<CacheDigest> {
        let value = value.trim().trim_end_matches('=');
        if value.is_empty() || value.len() > MAX_ENCODED_LEN {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(value).ok()?;
        CacheDigest::from_bytes(&bytes)
    }

    /// True when `url` (with its ETag if the digest carries validators) is probably cached.
    pub fn contains(&self, url: &str, etag: Option<&str>) -> bool {
        let bits = u32::from(self.log2_n) + u32::from(self.log2_p);
        let v = truncate(hash_prefix(url, etag), bits);
        self.values.binary_search(&v).is_ok()
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn log2_n(&self) -> u8 {
        self.log2_n
    }

    pub fn log2_p(&self) -> u8 {
        self.log2_p
    }

    pub fn values(&self) -> &[u64] {
        &self.values
    }
}

/// Parses a `Cache-Digest` request header: comma-separated digests, each `value *( ";" flag )`.
/// Digests flagged `stale` or `validators` (whose keys need ETags we do not track) are left out.
pub fn parse_header(value: &str) -> Vec<CacheDigest> {
    value
        .split(',')
        .filter_map(|item| {
            let mut parts = item.split(';').map(str::trim);
            let v = parts.next()?;
            let flags: Vec<&str> = parts.collect();
            if flags
                .iter()
                .any(|f| f.eq_ignore_ascii_case("stale") || f.eq_ignore_ascii_case("validators"))
            {
                return None;
            }
            CacheDigest::decode(v)
        })
        .take(8)
        .collect()
}

/// Finds cookie `name` in a `Cookie` header value.
pub fn cookie_value<'a>(cookie_header: &'a str, name: &str) -> Option<&'a str> {
    cookie_header.split(';').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k.trim() == name).then(|| v.trim().trim_matches('"'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Vectors {
        hash_prefix: Vec<HashVec>,
        digests: Vec<DigestVec>,
    }
    #[derive(serde::Deserialize)]
    struct HashVec {
        url: String,
        etag: Option<String>,
        first_8_bytes_be: String,
    }
    #[derive(serde::Deserialize)]
    struct DigestVec {
        urls: Vec<String>,
        log2_p: u8,
        hex: String,
        base64url: String,
    }

    fn vectors() -> Vectors {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/cache-digest-vectors.json"
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn hash_prefixes_match_the_shared_vectors() {
        for v in vectors().hash_prefix {
            let want =
                u64::from_str_radix(v.first_8_bytes_be.trim_start_matches("0x"), 16).unwrap();
            assert_eq!(hash_prefix(&v.url, v.etag.as_deref()), want, "{}", v.url);
        }
    }

    #[test]
    fn encoder_reproduces_every_shared_vector_byte_for_byte() {
        let vs = vectors().digests;
        assert!(vs.len() >= 5);
        for v in vs {
            let d = CacheDigest::from_urls(v.urls.iter().map(|u| (u.as_str(), None)), v.log2_p);
            let bytes = d.to_bytes();
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(hex, v.hex, "{:?}", v.urls);
            assert_eq!(d.encode(), v.base64url, "{:?}", v.urls);
            let back = CacheDigest::decode(&v.base64url).expect("vector decodes");
            assert_eq!(back, d);
            for u in &v.urls {
                assert!(back.contains(u, None), "{u} in its own digest");
            }
        }
    }

    #[test]
    fn malformed_digests_are_no_digest() {
        for bad in [
            "",
            "!!!!",
            "A",
            "AAAAAAAA",
            "////////////",
            &"A".repeat(MAX_ENCODED_LEN + 1),
        ] {
            assert_eq!(CacheDigest::decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn header_skips_stale_and_validator_digests() {
        let d = CacheDigest::from_urls([("https://a/x.css", None)], 7).encode();
        assert_eq!(parse_header(&format!("{d}; complete")).len(), 1);
        assert_eq!(parse_header(&format!("{d}; stale")).len(), 0);
        assert_eq!(parse_header(&format!("{d}; validators, {d}")).len(), 1);
        assert_eq!(parse_header("garbage; complete").len(), 0);
    }

    #[test]
    fn cookie_lookup_finds_the_named_cookie() {
        assert_eq!(
            cookie_value("a=1; pushwise_digest=AfdA; b=2", "pushwise_digest"),
            Some("AfdA")
        );
        assert_eq!(cookie_value("a=1", "pushwise_digest"), None);
    }

    proptest::proptest! {
        #[test]
        fn round_trip_keeps_every_url(urls in proptest::collection::vec("[a-z0-9/._-]{1,30}", 0..60), p in 1u8..12) {
            let full: Vec<String> = urls.iter().map(|u| format!("https://example.com/{u}")).collect();
            let d = CacheDigest::from_urls(full.iter().map(|u| (u.as_str(), None)), p);
            let back = CacheDigest::decode(&d.encode());
            let back = back.expect("own encoding decodes");
            proptest::prop_assert_eq!(&back, &d);
            for u in &full {
                proptest::prop_assert!(back.contains(u, None));
            }
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = CacheDigest::from_bytes(&bytes);
            let _ = CacheDigest::decode(&URL_SAFE_NO_PAD.encode(&bytes));
        }

        #[test]
        fn parsing_arbitrary_headers_never_panics(s in "\\PC{0,200}") {
            let _ = parse_header(&s);
            let _ = cookie_value(&s, "pushwise_digest");
        }
    }
}
