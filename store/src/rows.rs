//! The typed rows the store reads and writes: events as the learner reads them, push-set
//! candidates, page statistics, generations, thresholds and pins, with their closed sets of names.

use serde::{Serialize, Serializer};

use crate::context::Context;
use crate::event::PushMark;

/// One event as the learner reads it back (the columns it needs, nothing else).
#[derive(Debug, Clone)]
pub struct EventRow {
    pub id: i64,
    pub ts_ms: i64,
    pub client: i64,
    pub conn_id: i64,
    pub path: String,
    pub status: u16,
    pub bytes: i64,
    pub referer: Option<String>,
    pub referer_external: bool,
    pub is_page: bool,
    pub browser: bool,
    pub cacheable: bool,
    pub push: i64,
    pub holdout: bool,
    /// A page view over its network prefix's learning cap: never learned from.
    pub over_cap: bool,
    /// The import this event came from (its file fingerprint), 0 for live traffic.
    pub source: i64,
    /// A GET or HEAD (see [`is_fetch`](crate::event::is_fetch)).
    pub fetch: bool,
    /// A HEAD: its response has no body, so it says nothing about the asset's size.
    pub head: bool,
}

impl EventRow {
    /// Whether the learner may learn from this event: a GET or HEAD of a real path (not the
    /// [`ERROR_PATH`](crate::event::ERROR_PATH) bucket). A POST endpoint is never an asset.
    pub fn learnable(&self) -> bool {
        self.fetch && self.path.starts_with('/')
    }
}

/// What the responses for one path said: full-response sizes, cacheability, last status. The
/// learner keeps one per path, and the store keeps it across passes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AssetInfo {
    pub bytes_sum: i64,
    pub bytes_n: i64,
    pub cacheable: bool,
    pub saw_ok: bool,
    pub last_status: u16,
    /// The event that said `last_status` (events are added in id order).
    pub last_id: i64,
}

impl AssetInfo {
    /// A path no response has been seen for yet: cacheable until a response says otherwise.
    pub fn unseen() -> AssetInfo {
        AssetInfo {
            cacheable: true,
            ..Default::default()
        }
    }

    /// Adds what later events said (`newer`) to what earlier ones did: the `asset_info` upsert
    /// of a fold, in memory.
    pub fn merge(&mut self, newer: &AssetInfo) {
        self.bytes_sum += newer.bytes_sum;
        self.bytes_n += newer.bytes_n;
        self.cacheable &= newer.cacheable;
        self.saw_ok |= newer.saw_ok;
        if newer.last_id > self.last_id {
            self.last_status = newer.last_status;
            self.last_id = newer.last_id;
        }
    }

    /// What one event says about its path: its size when a full 200, whether it may be shared,
    /// its status. Push marks (skipped by digest, hinted) are not responses and say nothing.
    pub fn add(&mut self, e: &EventRow) {
        if !e.learnable() {
            return;
        }
        if matches!(
            PushMark::from_i64(e.push),
            PushMark::SkippedDigest | PushMark::Hinted
        ) {
            return;
        }
        self.cacheable &= e.cacheable;
        if e.status == 200 {
            self.saw_ok = true;
            // Sizes from full GET responses only: a HEAD (no body) or a 304 would shrink the
            // typical size the byte cap and the push budget rely on.
            if !e.head {
                self.bytes_sum += e.bytes.max(0);
                self.bytes_n += 1;
            }
        }
        if e.status != 0 {
            self.last_status = e.status;
            self.last_id = e.id;
        }
    }

    pub fn typical_bytes(&self) -> i64 {
        if self.bytes_n == 0 {
            0
        } else {
            self.bytes_sum / self.bytes_n
        }
    }
}

/// Why a candidate asset is in its set or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    Ok,
    Pinned,
    BelowThreshold,
    LowSupport,
    OverCount,
    OverBytes,
    NotCacheable,
    Not200,
    Banned,
}

impl Reason {
    pub const ALL: [Reason; 9] = [
        Reason::Ok,
        Reason::Pinned,
        Reason::BelowThreshold,
        Reason::LowSupport,
        Reason::OverCount,
        Reason::OverBytes,
        Reason::NotCacheable,
        Reason::Not200,
        Reason::Banned,
    ];

    /// The name stored in `set_assets.reason` and shown by `sets show`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Ok => "ok",
            Reason::Pinned => "pinned",
            Reason::BelowThreshold => "below threshold",
            Reason::LowSupport => "low support",
            Reason::OverCount => "over count",
            Reason::OverBytes => "over bytes",
            Reason::NotCacheable => "not cacheable",
            Reason::Not200 => "not 200",
            Reason::Banned => "banned",
        }
    }

    pub fn parse(s: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// True for the reasons that put an asset into its set.
    pub fn in_set(self) -> bool {
        matches!(self, Reason::Ok | Reason::Pinned)
    }
}

/// The `as=` value of a preload link (the request destination a browser should use).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AsType {
    Style,
    Script,
    Font,
    Image,
    Fetch,
}

impl AsType {
    /// The destination of an asset path, by its extension.
    pub fn of(path: &str) -> AsType {
        let ext = path
            .rsplit('/')
            .next()
            .and_then(|f| f.rsplit_once('.'))
            .map(|(_, e)| e.to_ascii_lowercase())
            .unwrap_or_default();
        match ext.as_str() {
            "css" => AsType::Style,
            "js" | "mjs" => AsType::Script,
            "woff" | "woff2" | "ttf" | "otf" | "eot" => AsType::Font,
            "png" | "jpg" | "jpeg" | "gif" | "svg" | "webp" | "avif" | "ico" | "bmp" => {
                AsType::Image
            }
            _ => AsType::Fetch,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AsType::Style => "style",
            AsType::Script => "script",
            AsType::Font => "font",
            AsType::Image => "image",
            AsType::Fetch => "fetch",
        }
    }

    /// The inverse of [`AsType::as_str`]; anything else is a plain fetch.
    pub fn parse(s: &str) -> AsType {
        [AsType::Style, AsType::Script, AsType::Font, AsType::Image]
            .into_iter()
            .find(|a| a.as_str() == s)
            .unwrap_or(AsType::Fetch)
    }
}

/// Serializes a closed-set value as its stored name.
macro_rules! serialize_as_str {
    ($($t:ty),*) => {$(
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    )*};
}
serialize_as_str!(Reason, AsType, PinAction);

/// One candidate asset of one page and context, as the analyzer wrote it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SetRow {
    pub page: String,
    pub context: Context,
    #[serde(rename = "path")]
    pub asset: String,
    pub probability: f64,
    pub support: i64,
    pub delay_ms: i64,
    pub bytes: i64,
    pub as_type: AsType,
    pub in_set: bool,
    pub position: i64,
    pub reason: Reason,
}

/// Views of one page in one context, per generation.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PageStat {
    pub page: String,
    pub context: Context,
    pub views: i64,
    pub weighted: f64,
    pub uses_own: bool,
}

/// Summary of a generation.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Generation {
    pub id: i64,
    pub created_ms: i64,
    pub events: i64,
    pub views: i64,
    pub pages: i64,
    pub duration_ms: i64,
}

/// A complete new generation of push sets, written in one transaction.
#[derive(Debug, Clone, Default)]
pub struct NewGeneration {
    pub created_ms: i64,
    pub events: i64,
    pub views: i64,
    pub duration_ms: i64,
    pub pages: Vec<PageStat>,
    pub assets: Vec<SetRow>,
}

/// A value outside the range a setting accepts.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{what} must be {range}, got {got}")]
pub struct OutOfRange {
    what: &'static str,
    range: &'static str,
    got: String,
}

impl OutOfRange {
    pub(crate) fn new(what: &'static str, range: &'static str, got: String) -> OutOfRange {
        OutOfRange { what, range, got }
    }
}

/// A probability threshold, in 0..=1 by construction.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize)]
#[serde(transparent)]
pub struct Probability(f64);

impl Probability {
    pub fn new(p: f64) -> Result<Probability, OutOfRange> {
        if (0.0..=1.0).contains(&p) {
            Ok(Probability(p))
        } else {
            Err(OutOfRange {
                what: "a probability threshold",
                range: "between 0 and 1",
                got: p.to_string(),
            })
        }
    }

    pub fn get(self) -> f64 {
        self.0
    }
}

impl std::str::FromStr for Probability {
    type Err = OutOfRange;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let p: f64 = s.trim().parse().map_err(|_| OutOfRange {
            what: "a probability threshold",
            range: "a number between 0 and 1",
            got: format!("{s:?}"),
        })?;
        Probability::new(p)
    }
}

/// The least number of views that must back an estimate, at least 1 by construction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct MinSupport(i64);

impl MinSupport {
    pub fn new(n: i64) -> Result<MinSupport, OutOfRange> {
        if n >= 1 {
            Ok(MinSupport(n))
        } else {
            Err(OutOfRange {
                what: "the minimum support",
                range: "at least 1",
                got: n.to_string(),
            })
        }
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

impl std::str::FromStr for MinSupport {
    type Err = OutOfRange;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let n: i64 = s.trim().parse().map_err(|_| OutOfRange {
            what: "the minimum support",
            range: "a whole number of at least 1",
            got: format!("{s:?}"),
        })?;
        MinSupport::new(n)
    }
}

/// Threshold in force for one page (or globally when `page` is empty).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ThresholdRow {
    pub page: String,
    pub probability: Option<f64>,
    pub min_support: Option<i64>,
    pub max_count: Option<i64>,
    pub max_bytes: Option<i64>,
    /// Held back after this many quiet views ([`crate::quiet`]); global only.
    pub quiet_after: Option<i64>,
}

/// What `threshold set` (or `tune --apply`) changes; `None` leaves a setting as it is.
#[derive(Debug, Clone, Copy, Default)]
pub struct ThresholdUpdate {
    pub probability: Option<Probability>,
    pub min_support: Option<MinSupport>,
    pub max_count: Option<MaxCount>,
    pub max_bytes: Option<MaxBytes>,
    pub quiet_after: Option<QuietAfter>,
}

/// The most assets one push set may hold, at least 1 by construction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct MaxCount(i64);

/// The most bytes (by typical response size) one push set may hold, at least 1 by construction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct MaxBytes(i64);

macro_rules! positive_setting {
    ($t:ident, $what:literal) => {
        impl $t {
            pub fn new(n: i64) -> Result<$t, OutOfRange> {
                if n >= 1 {
                    Ok($t(n))
                } else {
                    Err(OutOfRange {
                        what: $what,
                        range: "at least 1",
                        got: n.to_string(),
                    })
                }
            }

            pub fn get(self) -> i64 {
                self.0
            }
        }

        impl std::str::FromStr for $t {
            type Err = OutOfRange;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let n: i64 = s.trim().parse().map_err(|_| OutOfRange {
                    what: $what,
                    range: "a whole number of at least 1",
                    got: format!("{s:?}"),
                })?;
                $t::new(n)
            }
        }
    };
}

positive_setting!(MaxCount, "the most assets in a set");
positive_setting!(MaxBytes, "the most bytes in a set");

/// What an operator said of an asset on a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PinAction {
    /// Always push it.
    Pin,
    /// Never push it.
    Ban,
}

impl PinAction {
    pub fn as_str(self) -> &'static str {
        match self {
            PinAction::Pin => "pin",
            PinAction::Ban => "ban",
        }
    }

    pub fn parse(s: &str) -> Option<PinAction> {
        match s {
            "pin" => Some(PinAction::Pin),
            "ban" => Some(PinAction::Ban),
            _ => None,
        }
    }
}

/// An operator's pin (always push) or ban (never push).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PinRow {
    pub page: String,
    pub asset: String,
    pub action: PinAction,
}

/// The most quiet views `quiet_after` may ask for.
pub const MAX_QUIET_AFTER: u16 = 100;

/// How many quiet views hold a client back ([`crate::quiet`]): 0 = never (the default), N = after N views that were
/// offered a set and took none of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize)]
#[serde(transparent)]
pub struct QuietAfter(u16);

impl QuietAfter {
    pub const OFF: QuietAfter = QuietAfter(0);

    pub fn new(n: i64) -> Result<QuietAfter, OutOfRange> {
        match u16::try_from(n) {
            Ok(v) if v <= MAX_QUIET_AFTER => Ok(QuietAfter(v)),
            _ => Err(OutOfRange::new(
                "the quiet-client setting",
                "a whole number from 0 (off) to 100",
                n.to_string(),
            )),
        }
    }

    pub fn get(self) -> u16 {
        self.0
    }

    pub fn is_off(self) -> bool {
        self.0 == 0
    }
}

impl std::str::FromStr for QuietAfter {
    type Err = OutOfRange;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let n: i64 = s.trim().parse().map_err(|_| {
            OutOfRange::new(
                "the quiet-client setting",
                "a whole number from 0 (off) to 100",
                format!("{s:?}"),
            )
        })?;
        QuietAfter::new(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_assets_typical_size_comes_from_full_get_responses_only() {
        let row = |status: u16, bytes: i64, head: bool| EventRow {
            id: 1,
            ts_ms: 0,
            client: 1,
            conn_id: 1,
            path: "/css/site.css".into(),
            status,
            bytes,
            referer: None,
            referer_external: false,
            is_page: false,
            browser: true,
            cacheable: true,
            push: 0,
            holdout: false,
            over_cap: false,
            source: 0,
            fetch: true,
            head,
        };
        let mut info = AssetInfo::unseen();
        info.add(&row(200, 5422, false));
        info.add(&row(200, 0, true)); // HEAD: no body
        info.add(&row(304, 0, false)); // revalidated: no body
        info.add(&row(200, 5422, false));
        assert_eq!(info.typical_bytes(), 5422);
        assert!(info.saw_ok);
        assert_eq!(info.last_status, 200);
    }

    #[test]
    fn every_reason_name_parses_back_and_only_ok_and_pinned_are_in_the_set() {
        for r in Reason::ALL {
            assert_eq!(Reason::parse(r.as_str()), Some(r));
            assert_eq!(r.in_set(), matches!(r, Reason::Ok | Reason::Pinned));
        }
    }

    #[test]
    fn preload_destinations_follow_the_extension() {
        assert_eq!(AsType::of("/css/a.CSS"), AsType::Style);
        assert_eq!(AsType::of("/js/app.mjs"), AsType::Script);
        assert_eq!(AsType::of("/f/x.woff2"), AsType::Font);
        assert_eq!(AsType::of("/i/x.webp"), AsType::Image);
        assert_eq!(AsType::of("/api/data"), AsType::Fetch);
        for a in [
            AsType::Style,
            AsType::Script,
            AsType::Font,
            AsType::Image,
            AsType::Fetch,
        ] {
            assert_eq!(AsType::parse(a.as_str()), a);
        }
    }

    #[test]
    fn thresholds_outside_zero_to_one_and_supports_below_one_are_refused() {
        assert!(Probability::new(0.0).is_ok() && Probability::new(1.0).is_ok());
        assert!(Probability::new(1.01).is_err() && Probability::new(-0.1).is_err());
        assert!(Probability::new(f64::NAN).is_err());
        assert!("0.3".parse::<Probability>().is_ok());
        assert!("x".parse::<Probability>().is_err());
        assert!(MinSupport::new(0).is_err() && MinSupport::new(1).is_ok());
        assert_eq!(
            "0".parse::<MinSupport>().unwrap_err().to_string(),
            "the minimum support must be at least 1, got 0"
        );
    }
}
