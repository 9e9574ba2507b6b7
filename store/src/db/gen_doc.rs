//! The encoding of one page of a generation in `generation_pages`: its stats and candidates as
//! JSON arrays of positional rows (the layout migration 0004 documents).
//!
//! Positional arrays rather than objects: a generation has tens of thousands of candidates, and
//! this is written on every analyzer pass and read by every server at every reload.

use std::collections::BTreeMap;

use crate::context::Context;
use crate::error::Error;
use crate::rows::{AsType, NewGeneration, PageStat, Reason, SetRow};

impl NewGeneration {
    /// The generation in the form it is stored in: encoding is CPU work a caller may want to do
    /// off the async workers, or while something else is written.
    pub fn encode(&self) -> Result<EncodedGeneration, Error> {
        Ok(EncodedGeneration {
            created_ms: self.created_ms,
            events: self.events,
            views: self.views,
            duration_ms: self.duration_ms,
            digest: String::new(),
            pages: encode(&self.pages, &self.assets)?,
        }
        .with_digest())
    }
}

impl EncodedGeneration {
    /// Sets `digest` to the SHA-256 of the pages as stored: equal digests, equal sets.
    fn with_digest(mut self) -> EncodedGeneration {
        use sha2::Digest as _;
        let mut h = sha2::Sha256::new();
        for p in &self.pages {
            for part in [
                p.page.as_bytes(),
                p.stats.as_bytes(),
                p.candidates.as_bytes(),
            ] {
                h.update((part.len() as u64).to_le_bytes());
                h.update(part);
            }
            h.update(p.in_set.to_le_bytes());
        }
        self.digest = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        self
    }
}

/// A [`NewGeneration`] encoded for [`crate::Store::write_encoded_generation`].
#[derive(Debug, Clone)]
pub struct EncodedGeneration {
    pub created_ms: i64,
    pub events: i64,
    pub views: i64,
    pub duration_ms: i64,
    /// Identifies the pages' content (see [`crate::Store::write_generation_if_changed`]).
    pub digest: String,
    pub(super) pages: Vec<PageDoc>,
}

/// One page's row, ready to insert.
#[derive(Debug, Clone)]
pub(super) struct PageDoc {
    pub page: String,
    pub in_set: i64,
    pub stats: String,
    pub candidates: String,
}

type StatOut<'a> = (&'a str, i64, f64, u8);
type StatIn = (String, i64, f64, u8);
type CandidateOut<'a> = (
    &'a str,
    &'a str,
    f64,
    i64,
    i64,
    i64,
    &'a str,
    u8,
    i64,
    &'a str,
);
type CandidateIn = (String, String, f64, i64, i64, i64, String, u8, i64, String);

/// Groups a generation's stats and candidates by page, in page order.
pub(super) fn encode<'a>(
    stats: &'a [PageStat],
    candidates: &'a [SetRow],
) -> Result<Vec<PageDoc>, Error> {
    type Parts<'a> = (Vec<StatOut<'a>>, Vec<CandidateOut<'a>>, i64);
    let mut pages: BTreeMap<&str, Parts<'a>> = BTreeMap::new();
    for s in stats {
        let row = (
            s.context.as_str(),
            s.views,
            s.weighted,
            u8::from(s.uses_own),
        );
        pages.entry(&s.page).or_default().0.push(row);
    }
    for c in candidates {
        let p = pages.entry(&c.page).or_default();
        p.1.push((
            c.context.as_str(),
            &c.asset,
            c.probability,
            c.support,
            c.delay_ms,
            c.bytes,
            c.as_type.as_str(),
            u8::from(c.in_set),
            c.position,
            c.reason.as_str(),
        ));
        p.2 += i64::from(c.in_set);
    }
    pages
        .into_iter()
        .map(|(page, (stats, candidates, in_set))| {
            Ok(PageDoc {
                page: page.to_string(),
                in_set,
                stats: to_json(&stats)?,
                candidates: to_json(&candidates)?,
            })
        })
        .collect()
}

fn to_json<T: serde::Serialize>(rows: &T) -> Result<String, Error> {
    // Only a non-finite float can fail here; the analyzer never produces one.
    serde_json::to_string(rows).map_err(|e| Error::corrupt(format!("cannot encode a set: {e}")))
}

/// Decodes one page's stats.
pub(super) fn stats(page: String, json: &str) -> Result<Vec<PageStat>, Error> {
    let rows: Vec<StatIn> = from_json(&page, json)?;
    rows.into_iter()
        .map(|(context, views, weighted, uses_own)| {
            Ok(PageStat {
                page: page.clone(),
                context: context_named(&context)?,
                views,
                weighted,
                uses_own: uses_own != 0,
            })
        })
        .collect()
}

/// Decodes one page's candidates.
pub(super) fn candidates(page: String, json: &str) -> Result<Vec<SetRow>, Error> {
    let rows: Vec<CandidateIn> = from_json(&page, json)?;
    rows.into_iter()
        .map(
            |(
                context,
                asset,
                probability,
                support,
                delay_ms,
                bytes,
                as_type,
                in_set,
                position,
                reason,
            )| {
                Ok(SetRow {
                    page: page.clone(),
                    context: context_named(&context)?,
                    asset,
                    probability,
                    support,
                    delay_ms,
                    bytes,
                    as_type: AsType::parse(&as_type),
                    in_set: in_set != 0,
                    position,
                    reason: Reason::parse(&reason)
                        .ok_or_else(|| Error::corrupt(format!("unknown reason {reason:?}")))?,
                })
            },
        )
        .collect()
}

fn from_json<T: serde::de::DeserializeOwned>(page: &str, json: &str) -> Result<T, Error> {
    serde_json::from_str(json)
        .map_err(|e| Error::corrupt(format!("the push set of {page:?} does not decode: {e}")))
}

fn context_named(name: &str) -> Result<Context, Error> {
    Context::parse(name).ok_or_else(|| Error::corrupt(format!("unknown context {name:?}")))
}
