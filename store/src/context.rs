//! The closed sets a request is classified into: its User-Agent class and its request context.
//!
//! Why here: the server classifies requests when they arrive, the analyzer learns per context and
//! the store keeps both; one definition keeps the three from drifting apart.

use serde::{Serialize, Serializer};

use crate::event::Referer;

/// What kind of client a User-Agent announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UaClass {
    /// Crawlers, monitors, feed readers, command-line clients: they fetch pages, not assets.
    Other,
    /// An interactive browser, which fetches a page's subresources.
    Browser,
}

impl UaClass {
    /// Classifies a User-Agent header (absent = not a browser).
    pub fn of(user_agent: Option<&str>) -> UaClass {
        let Some(ua) = user_agent else {
            return UaClass::Other;
        };
        if !ua.starts_with("Mozilla/") {
            return UaClass::Other;
        }
        let lower = ua.to_ascii_lowercase();
        const NOT_BROWSERS: [&str; 12] = [
            "bot",
            "crawl",
            "spider",
            "slurp",
            "monitor",
            "feed",
            "preview",
            "fetch",
            "python",
            "curl",
            "wget",
            "lighthouse",
        ];
        if NOT_BROWSERS.iter().any(|w| lower.contains(w)) {
            UaClass::Other
        } else {
            UaClass::Browser
        }
    }

    pub fn from_browser(browser: bool) -> UaClass {
        if browser {
            UaClass::Browser
        } else {
            UaClass::Other
        }
    }

    pub fn is_browser(self) -> bool {
        self == UaClass::Browser
    }

    pub fn as_str(self) -> &'static str {
        match self {
            UaClass::Browser => "browser",
            UaClass::Other => "other",
        }
    }
}

/// The context a push set is learned and chosen for: UA class × entering the site or navigating
/// inside it, plus the page-wide estimate over all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Context {
    /// Every view of the page, whatever its context: the fallback set.
    PageWide,
    OtherInternal,
    OtherEntry,
    BrowserInternal,
    BrowserEntry,
}

impl Context {
    /// The contexts a request can be in (every variant but [`Context::PageWide`]).
    pub const REQUEST: [Context; 4] = [
        Context::BrowserEntry,
        Context::BrowserInternal,
        Context::OtherEntry,
        Context::OtherInternal,
    ];

    /// The context of a request: a view "enters" the site when it has no same-site Referer.
    pub fn of(ua: UaClass, referer: &Referer) -> Context {
        Context::from_parts(ua, referer.is_entry())
    }

    pub fn from_parts(ua: UaClass, entry: bool) -> Context {
        match (ua, entry) {
            (UaClass::Browser, true) => Context::BrowserEntry,
            (UaClass::Browser, false) => Context::BrowserInternal,
            (UaClass::Other, true) => Context::OtherEntry,
            (UaClass::Other, false) => Context::OtherInternal,
        }
    }

    /// The name stored in the database and shown in JSON (`*` for page-wide).
    pub fn as_str(self) -> &'static str {
        match self {
            Context::PageWide => "*",
            Context::BrowserEntry => "browser/entry",
            Context::BrowserInternal => "browser/internal",
            Context::OtherEntry => "other/entry",
            Context::OtherInternal => "other/internal",
        }
    }

    /// The inverse of [`Context::as_str`].
    pub fn parse(name: &str) -> Option<Context> {
        std::iter::once(Context::PageWide)
            .chain(Context::REQUEST)
            .find(|c| c.as_str() == name)
    }

    pub fn is_page_wide(self) -> bool {
        self == Context::PageWide
    }

    /// True for the request contexts of browsers, the only clients pushwise pushes or hints to.
    pub fn is_browser(self) -> bool {
        matches!(self, Context::BrowserEntry | Context::BrowserInternal)
    }

    /// True for the contexts whose views make up the page-wide (and section) estimates: the
    /// browser contexts. Crawlers' views say nothing about what a browser fetches.
    pub fn feeds_page_wide(self) -> bool {
        self.is_browser()
    }
}

/// The key under which the learned sets of a page's *section* are kept: `section:` and the path
/// up to and including its first segment's slash (`/blog/2024/x.html` -> `section:/blog/`), or
/// `section:/` for pages at the top level. A recorded page path always starts with `/`, so a
/// section key can never be mistaken for a page.
pub fn section_of(page: &str) -> String {
    let rest = page.strip_prefix('/').unwrap_or(page);
    match rest.find('/') {
        Some(i) => format!("{SECTION_PREFIX}/{}", &rest[..=i]),
        None => format!("{SECTION_PREFIX}/"),
    }
}

/// What every section key starts with.
pub const SECTION_PREFIX: &str = "section:";

/// True when a learned-set key names a section rather than a page.
pub fn is_section(key: &str) -> bool {
    key.starts_with(SECTION_PREFIX)
}

impl Serialize for Context {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bots_and_tools_are_not_browsers() {
        assert!(
            UaClass::of(Some(
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120 Safari/537.36"
            ))
            .is_browser()
        );
        assert!(
            !UaClass::of(Some(
                "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
            ))
            .is_browser()
        );
        assert!(!UaClass::of(Some("curl/8.0")).is_browser());
        assert!(!UaClass::of(Some("nghttp2/1.52.0")).is_browser());
        assert!(!UaClass::of(None).is_browser());
    }

    #[test]
    fn a_section_is_the_first_path_segment_or_the_top_level() {
        assert_eq!(section_of("/blog/2024/x.html"), "section:/blog/");
        assert_eq!(section_of("/blog/"), "section:/blog/");
        assert_eq!(section_of("/about.html"), "section:/");
        assert_eq!(section_of("/"), "section:/");
        assert!(is_section(&section_of("/a/b")));
        assert!(!is_section("/section:/x"));
    }

    #[test]
    fn only_browser_contexts_are_pushed_to_or_feed_the_page_wide_estimate() {
        assert!(Context::BrowserEntry.is_browser() && Context::BrowserInternal.feeds_page_wide());
        assert!(!Context::OtherEntry.is_browser() && !Context::OtherInternal.feeds_page_wide());
        assert!(!Context::PageWide.is_browser());
    }

    #[test]
    fn every_context_name_parses_back_to_its_context() {
        for c in std::iter::once(Context::PageWide).chain(Context::REQUEST) {
            assert_eq!(Context::parse(c.as_str()), Some(c));
        }
        assert_eq!(Context::parse("browser"), None);
    }

    #[test]
    fn entering_without_a_same_site_referer_and_navigating_with_one() {
        let same = Referer::SameSite("/a".into());
        assert_eq!(
            Context::of(UaClass::Browser, &Referer::External),
            Context::BrowserEntry
        );
        assert_eq!(
            Context::of(UaClass::Browser, &same),
            Context::BrowserInternal
        );
        assert_eq!(
            Context::of(UaClass::Other, &Referer::None),
            Context::OtherEntry
        );
        assert_eq!(Context::of(UaClass::Other, &same), Context::OtherInternal);
    }
}
