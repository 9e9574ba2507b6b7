//! The incremental learner's side of the store: its saved position (watermark, per-source clocks,
//! open sessions), the decayed counts it folds page views into, and the event pages it reads.
//!
//! Every count update is a set-based `INSERT … ON CONFLICT … DO UPDATE` of plain additions (the
//! weights share one reference time), so any SQL backend can run the same learner.

use std::collections::{HashMap, HashSet};

use sqlx::QueryBuilder;

use super::compact::Flags;
use super::{Pool, Store, on_pool};
use crate::context::Context;
use crate::error::Error;
use crate::rows::{AssetInfo, EventRow};

/// Writes the learner's state `$s` in transaction `$tx` (a macro: its body is compiled for the
/// transaction type of each backend).
macro_rules! write_state {
    ($tx:ident, $s:expr) => {{
        let s: &LearnState = $s;
        sqlx::query(
            "INSERT INTO learn_state (id, watermark, ref_ms, half_life_ms, window_ms) \
             VALUES (1, $1, $2, $3, $4) ON CONFLICT (id) DO UPDATE SET \
             watermark = excluded.watermark, ref_ms = excluded.ref_ms, \
             half_life_ms = excluded.half_life_ms, window_ms = excluded.window_ms",
        )
        .bind(s.watermark)
        .bind(s.ref_ms)
        .bind(s.half_life_ms)
        .bind(s.window_ms)
        .execute(&mut *$tx)
        .await?;
        sqlx::query("DELETE FROM source_clocks")
            .execute(&mut *$tx)
            .await?;
        let clocks: Vec<(i64, i64)> = s.clocks.iter().map(|(k, v)| (*k, *v)).collect();
        for chunk in clocks.chunks(CHUNK) {
            let mut q = QueryBuilder::new("INSERT INTO source_clocks (source, clock_ms) ");
            q.push_values(chunk, |mut b, (s, c)| {
                b.push_bind(*s).push_bind(*c);
            });
            q.build().execute(&mut *$tx).await?;
        }
        sqlx::query("DELETE FROM open_sessions")
            .execute(&mut *$tx)
            .await?;
        let open: Vec<(i64, i64, i64)> = s.open.iter().map(|((c, s), f)| (*c, *s, *f)).collect();
        for chunk in open.chunks(CHUNK) {
            let mut q = QueryBuilder::new("INSERT INTO open_sessions (client, source, first_id) ");
            q.push_values(chunk, |mut b, (c, s, f)| {
                b.push_bind(*c).push_bind(*s).push_bind(*f);
            });
            q.build().execute(&mut *$tx).await?;
        }
    }};
}

/// Rows per multi-row upsert: 8 columns × 500 stays far below SQLite's variable limit.
const CHUNK: usize = 500;

/// Where the learner stands: the last event it read, the parameters its counts were built with,
/// the clock of every source, and the sessions still open. (Which imports are complete is
/// [`Store::sources_done`]: the importer marks them, not the learner.)
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LearnState {
    pub watermark: i64,
    /// The time every stored weight is expressed at; `None` before the first view is counted.
    pub ref_ms: Option<i64>,
    pub half_life_ms: i64,
    pub window_ms: i64,
    /// Per source (0 = live traffic), the latest request time seen.
    pub clocks: HashMap<i64, i64>,
    /// (client, source) → the first event id of its open session.
    pub open: HashMap<(i64, i64), i64>,
}

/// Decayed page views of one page in one context.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewCount {
    pub page: String,
    pub context: Context,
    pub views: i64,
    pub weighted: f64,
}

/// Decayed evidence about one asset of one page in one context.
#[derive(Debug, Clone, PartialEq)]
pub struct AssetCount {
    pub page: String,
    pub context: Context,
    pub asset: String,
    pub hit_n: i64,
    pub hit_w: f64,
    pub unknown_n: i64,
    pub unknown_w: f64,
    /// Sum of ln(1 + delay in ms) over the hits.
    pub delay_ln_sum: f64,
}

/// Everything one pass writes, in one transaction.
#[derive(Debug, Clone, Default)]
pub struct Fold {
    /// The new state: watermark, reference time, parameters, clocks and open sessions.
    pub state: LearnState,
    /// Multiply every stored weight by this first (the reference time moved); 1 for no change.
    pub rescale: f64,
    pub views: Vec<ViewCount>,
    pub assets: Vec<AssetCount>,
    /// What the new events said about each path.
    pub info: Vec<(String, AssetInfo)>,
}

/// The stored counts, as [`Store::learn_counts`] reads them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counts {
    pub views: Vec<ViewCount>,
    pub assets: Vec<AssetCount>,
    pub info: Vec<(String, AssetInfo)>,
}

impl Fold {
    /// What [`Store::fold`] makes of `stored`, computed in memory: every stored weight scaled by
    /// `rescale`, then each row added to its key's (or inserted). The arithmetic is the SQL's,
    /// operation for operation, so the result is what reading the counts back after the fold
    /// would give — without reading them back (a pass reads the counts while it reads events,
    /// and writes the fold while it selects).
    pub fn apply_to(&self, stored: &mut Counts) {
        if self.rescale != 1.0 {
            for v in &mut stored.views {
                v.weighted *= self.rescale;
            }
            for a in &mut stored.assets {
                a.hit_w *= self.rescale;
                a.unknown_w *= self.rescale;
            }
        }
        let at = positions(&stored.views, &self.views, |v| (v.page.as_str(), v.context));
        for (v, i) in self.views.iter().zip(at) {
            match i {
                Some(i) => {
                    let s = &mut stored.views[i];
                    s.views += v.views;
                    s.weighted += v.weighted;
                }
                None => stored.views.push(v.clone()),
            }
        }
        let at = positions(&stored.assets, &self.assets, |a| {
            (a.page.as_str(), a.context, a.asset.as_str())
        });
        for (a, i) in self.assets.iter().zip(at) {
            match i {
                Some(i) => {
                    let s = &mut stored.assets[i];
                    s.hit_n += a.hit_n;
                    s.hit_w += a.hit_w;
                    s.unknown_n += a.unknown_n;
                    s.unknown_w += a.unknown_w;
                    s.delay_ln_sum += a.delay_ln_sum;
                }
                None => stored.assets.push(a.clone()),
            }
        }
        let at = positions(&stored.info, &self.info, |(path, _)| path.as_str());
        for (row, i) in self.info.iter().zip(at) {
            match i {
                Some(i) => stored.info[i].1.merge(&row.1),
                None => stored.info.push(row.clone()),
            }
        }
    }
}

/// For each of `rows`, the index of the stored row with the same key, if any (a fold's rows have
/// distinct keys, so rows appended meanwhile never match a later one).
fn positions<'a, T, K: std::hash::Hash + Eq>(
    stored: &'a [T],
    rows: &'a [T],
    key: impl Fn(&'a T) -> K,
) -> Vec<Option<usize>> {
    let at: HashMap<K, usize> = stored
        .iter()
        .enumerate()
        .map(|(i, s)| (key(s), i))
        .collect();
    rows.iter().map(|r| at.get(&key(r)).copied()).collect()
}

/// An `event_log` row as [`Store::read_events`] reads it: id, ts_ms, client, conn_id, path,
/// status, bytes, referer, flags, source, method.
type EventTuple = (
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    Option<i64>,
    i64,
    Option<i64>,
    i64,
);

/// Decodes a JSON array a query aggregated.
fn decode<T: serde::de::DeserializeOwned>(json: &str, what: &str) -> Result<T, Error> {
    serde_json::from_str(json).map_err(|e| Error::corrupt(format!("cannot decode the {what}: {e}")))
}

/// The `strings` dictionary as far as the learner has read it (id → text).
#[derive(Debug, Default)]
pub struct Dictionary {
    texts: HashMap<i64, String>,
    max_id: i64,
}

impl Dictionary {
    fn get(&self, id: i64) -> Option<&str> {
        self.texts.get(&id).map(String::as_str)
    }
}

impl Store {
    /// The learner's saved state, or `None` before its first pass (or after a reset).
    pub async fn learn_state(&self) -> Result<Option<LearnState>, Error> {
        let row: Option<(i64, Option<i64>, i64, i64)> = on_pool!(self, p => sqlx::query_as(
            "SELECT watermark, ref_ms, half_life_ms, window_ms FROM learn_state WHERE id = 1",
        )
        .fetch_optional(p)
        .await)?;
        let Some((watermark, ref_ms, half_life_ms, window_ms)) = row else {
            return Ok(None);
        };
        let mut s = LearnState {
            watermark,
            ref_ms,
            half_life_ms,
            window_ms,
            ..Default::default()
        };
        let clocks: Vec<(i64, i64)> = on_pool!(self, p =>
            sqlx::query_as("SELECT source, clock_ms FROM source_clocks")
                .fetch_all(p)
                .await)?;
        s.clocks.extend(clocks);
        let open: Vec<(i64, i64, i64)> = on_pool!(self, p =>
            sqlx::query_as("SELECT client, source, first_id FROM open_sessions")
                .fetch_all(p)
                .await)?;
        s.open
            .extend(open.into_iter().map(|(c, src, first)| ((c, src), first)));
        Ok(Some(s))
    }

    /// The import sources marked complete.
    pub async fn sources_done(&self) -> Result<HashSet<i64>, Error> {
        let done: Vec<i64> = on_pool!(self, p =>
            sqlx::query_scalar("SELECT source FROM sources_done")
                .fetch_all(p)
                .await)?;
        Ok(done.into_iter().collect())
    }

    /// Marks an import complete: every line of `source` is in the event log, so the learner can
    /// close its sessions instead of waiting for later lines.
    pub async fn mark_source_done(&self, source: i64) -> Result<(), Error> {
        on_pool!(self, p => sqlx::query(
            "INSERT INTO sources_done (source) VALUES ($1) ON CONFLICT DO NOTHING"
        )
        .bind(source)
        .execute(p)
        .await.map(|_| ()))?;
        Ok(())
    }

    /// The highest event id (0 when there are none).
    pub async fn max_event_id(&self) -> Result<i64, Error> {
        let id: Option<i64> = on_pool!(self, p =>
            sqlx::query_scalar("SELECT MAX(id) FROM event_log")
                .fetch_one(p)
                .await)?;
        Ok(id.unwrap_or(0))
    }

    /// Up to `limit` events after `after_id`, in id order, with their strings resolved through
    /// `dict` (which learns new strings as they appear). Reading in pages keeps memory bounded
    /// and holds no long read transaction.
    pub async fn read_events(
        &self,
        after_id: i64,
        limit: i64,
        dict: &mut Dictionary,
    ) -> Result<Vec<EventRow>, Error> {
        // One JSON array per page instead of one driver row per event: the driver's per-row and
        // per-value work was most of a pass's reading time.
        let json: String =
            match &self.pool {
                Pool::Sqlite(p) => sqlx::query_scalar(
                    "SELECT json_group_array(json_array(id, ts_ms, client, conn_id, path, status, \
                     bytes, referer, flags, source, method)) FROM (SELECT * FROM event_log \
                     WHERE id > $1 ORDER BY id LIMIT $2)",
                )
                .bind(after_id)
                .bind(limit)
                .fetch_one(p)
                .await?,
                Pool::Pg(pg) => sqlx::query_scalar(
                    "SELECT COALESCE(json_agg(json_build_array(id, ts_ms, client, conn_id, path, \
                     status, bytes, referer, flags, source, method))::text, '[]') \
                     FROM (SELECT * FROM event_log WHERE id > $1 ORDER BY id LIMIT $2) page",
                )
                .bind(after_id)
                .bind(limit)
                .fetch_one(&pg.pool)
                .await?,
            };
        let mut rows: Vec<EventTuple> = decode(&json, "event page")?;
        rows.sort_unstable_by_key(|r| r.0);
        let needs = |id: Option<i64>, d: &Dictionary| id.is_some_and(|id| d.get(id).is_none());
        if rows
            .iter()
            .any(|r| needs(Some(r.4), dict) || needs(r.7, dict) || needs(Some(r.10), dict))
        {
            self.extend_dictionary(dict).await?;
        }
        let text = |id: i64| {
            dict.get(id)
                .map(String::from)
                .ok_or_else(|| Error::corrupt(format!("event refers to unknown string id {id}")))
        };
        rows.into_iter()
            .map(
                |(
                    id,
                    ts_ms,
                    client,
                    conn_id,
                    path,
                    status,
                    bytes,
                    referer,
                    flags,
                    source,
                    method,
                )| {
                    let flags = Flags(flags);
                    Ok(EventRow {
                        id,
                        ts_ms,
                        client,
                        conn_id,
                        path: text(path)?,
                        status: u16::try_from(status).unwrap_or(0),
                        bytes,
                        referer: referer.map(text).transpose()?,
                        referer_external: flags.referer_external(),
                        is_page: flags.is_page(),
                        browser: flags.browser(),
                        cacheable: flags.cacheable(),
                        push: flags.push(),
                        holdout: flags.holdout(),
                        over_cap: flags.over_cap(),
                        source: source.unwrap_or(0),
                        fetch: dict.get(method).is_some_and(crate::event::is_fetch),
                        head: dict.get(method) == Some("HEAD"),
                    })
                },
            )
            .collect()
    }

    async fn extend_dictionary(&self, dict: &mut Dictionary) -> Result<(), Error> {
        let rows: Vec<(i64, String)> = on_pool!(self, p =>
            sqlx::query_as("SELECT id, text FROM strings WHERE id > $1 ORDER BY id")
                .bind(dict.max_id)
                .fetch_all(p)
                .await)?;
        for (id, text) in rows {
            dict.max_id = dict.max_id.max(id);
            dict.texts.insert(id, text);
        }
        Ok(())
    }

    /// Every stored count, for selection.
    ///
    /// From an SQLite file, on a rusqlite connection of its own: the counts are mostly floats,
    /// and the JSON path below spent most of its time in SQLite formatting them as text and serde
    /// parsing them back (`perf`: `dekkerMul2`, `sqlite3_str_vappendf`, `parse_number`); sqlx's
    /// own rows cost more still (see [`Store::read_events`]). rusqlite hands each column over as
    /// it is stored.
    pub async fn learn_counts(&self) -> Result<Counts, Error> {
        if let Pool::Sqlite(_) = self.pool {
            let path = self.path.clone();
            return tokio::task::spawn_blocking(move || read_counts_sqlite(&path))
                .await
                .map_err(|e| Error::corrupt(format!("the counts reader failed: {e}")))?;
        }
        self.learn_counts_json().await
    }

    /// [`Store::learn_counts`] through sqlx: each table comes back as one JSON array.
    async fn learn_counts_json(&self) -> Result<Counts, Error> {
        let json = self
            .json_rows("page, context, views, weighted", "view_counts")
            .await?;
        let views = decode::<Vec<(String, String, i64, f64)>>(&json, "view counts")?
            .into_iter()
            .map(|(page, context, views, weighted)| {
                Ok(ViewCount {
                    page,
                    context: super::context(context)?,
                    views,
                    weighted,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let json = self
            .json_rows(
                "page, context, asset, hit_n, hit_w, unknown_n, unknown_w, delay_ln_sum",
                "asset_counts",
            )
            .await?;
        type AssetTuple = (String, String, String, i64, f64, i64, f64, f64);
        let assets = decode::<Vec<AssetTuple>>(&json, "asset counts")?
            .into_iter()
            .map(
                |(page, context, asset, hit_n, hit_w, unknown_n, unknown_w, delay_ln_sum)| {
                    Ok(AssetCount {
                        page,
                        context: super::context(context)?,
                        asset,
                        hit_n,
                        hit_w,
                        unknown_n,
                        unknown_w,
                        delay_ln_sum,
                    })
                },
            )
            .collect::<Result<Vec<_>, Error>>()?;
        let json = self
            .json_rows(
                "path, bytes_sum, bytes_n, cacheable, saw_ok, last_status, last_id",
                "asset_info",
            )
            .await?;
        type InfoTuple = (String, i64, i64, u8, u8, i64, i64);
        let info = decode::<Vec<InfoTuple>>(&json, "asset info")?
            .into_iter()
            .map(
                |(path, bytes_sum, bytes_n, cacheable, saw_ok, last_status, last_id)| {
                    let info = AssetInfo {
                        bytes_sum,
                        bytes_n,
                        cacheable: cacheable != 0,
                        saw_ok: saw_ok != 0,
                        last_status: u16::try_from(last_status).unwrap_or(0),
                        last_id,
                    };
                    (path, info)
                },
            )
            .collect();
        Ok(Counts {
            views,
            assets,
            info,
        })
    }

    /// Every row of `table` (`columns` of it) aggregated into one JSON array of arrays.
    async fn json_rows(&self, columns: &'static str, table: &'static str) -> Result<String, Error> {
        let sql = match self.pool {
            Pool::Sqlite(_) => {
                format!("SELECT json_group_array(json_array({columns})) FROM {table}")
            }
            Pool::Pg(_) => format!(
                "SELECT COALESCE(json_agg(json_build_array({columns}))::text, '[]') FROM {table}"
            ),
        };
        // Only the static names above go into the statement.
        Ok(on_pool!(self, p => sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(p).await)?)
    }

    /// Writes one pass's counts and its new state in one transaction: a crash leaves either the
    /// state before the pass or the state after it, never half of it.
    pub async fn fold(&self, f: &Fold) -> Result<(), Error> {
        on_pool!(self, p => {
        let mut tx = p.begin().await?;
        if f.rescale != 1.0 {
            sqlx::query("UPDATE view_counts SET weighted = weighted * $1")
                .bind(f.rescale)
                .execute(&mut *tx)
                .await?;
            sqlx::query("UPDATE asset_counts SET hit_w = hit_w * $1, unknown_w = unknown_w * $1")
                .bind(f.rescale)
                .execute(&mut *tx)
                .await?;
        }
        for chunk in f.views.chunks(CHUNK) {
            let mut q = QueryBuilder::new(
                "INSERT INTO view_counts (page, context, views, weighted) ",
            );
            q.push_values(chunk, |mut b, v| {
                b.push_bind(&v.page)
                    .push_bind(v.context.as_str())
                    .push_bind(v.views)
                    .push_bind(v.weighted);
            });
            q.push(
                " ON CONFLICT (page, context) DO UPDATE SET \
                 views = view_counts.views + excluded.views, \
                 weighted = view_counts.weighted + excluded.weighted",
            );
            q.build().execute(&mut *tx).await?;
        }
        for chunk in f.assets.chunks(CHUNK) {
            let mut q = QueryBuilder::new(
                "INSERT INTO asset_counts (page, context, asset, hit_n, hit_w, unknown_n, \
                 unknown_w, delay_ln_sum) ",
            );
            q.push_values(chunk, |mut b, a| {
                b.push_bind(&a.page)
                    .push_bind(a.context.as_str())
                    .push_bind(&a.asset)
                    .push_bind(a.hit_n)
                    .push_bind(a.hit_w)
                    .push_bind(a.unknown_n)
                    .push_bind(a.unknown_w)
                    .push_bind(a.delay_ln_sum);
            });
            q.push(
                " ON CONFLICT (page, context, asset) DO UPDATE SET \
                 hit_n = asset_counts.hit_n + excluded.hit_n, \
                 hit_w = asset_counts.hit_w + excluded.hit_w, \
                 unknown_n = asset_counts.unknown_n + excluded.unknown_n, \
                 unknown_w = asset_counts.unknown_w + excluded.unknown_w, \
                 delay_ln_sum = asset_counts.delay_ln_sum + excluded.delay_ln_sum",
            );
            q.build().execute(&mut *tx).await?;
        }
        for chunk in f.info.chunks(CHUNK) {
            let mut q = QueryBuilder::new(
                "INSERT INTO asset_info (path, bytes_sum, bytes_n, cacheable, saw_ok, \
                 last_status, last_id) ",
            );
            q.push_values(chunk, |mut b, (path, a)| {
                b.push_bind(path)
                    .push_bind(a.bytes_sum)
                    .push_bind(a.bytes_n)
                    .push_bind(i64::from(a.cacheable))
                    .push_bind(i64::from(a.saw_ok))
                    .push_bind(i64::from(a.last_status))
                    .push_bind(a.last_id);
            });
            q.push(
                " ON CONFLICT (path) DO UPDATE SET \
                 bytes_sum = asset_info.bytes_sum + excluded.bytes_sum, \
                 bytes_n = asset_info.bytes_n + excluded.bytes_n, \
                 cacheable = CASE WHEN asset_info.cacheable <> 0 AND excluded.cacheable <> 0 \
                             THEN 1 ELSE 0 END, \
                 saw_ok = CASE WHEN asset_info.saw_ok <> 0 OR excluded.saw_ok <> 0 \
                          THEN 1 ELSE 0 END, \
                 last_status = CASE WHEN excluded.last_id > asset_info.last_id \
                               THEN excluded.last_status ELSE asset_info.last_status END, \
                 last_id = CASE WHEN excluded.last_id > asset_info.last_id \
                           THEN excluded.last_id ELSE asset_info.last_id END",
            );
            q.build().execute(&mut *tx).await?;
        }
        write_state!(tx, &f.state);
        tx.commit().await?;
        Ok(())
        })
    }

    /// Forgets everything the learner folded (for `analyze --rebuild`); events are kept.
    pub async fn reset_learning(&self) -> Result<(), Error> {
        on_pool!(self, p => {
        let mut tx = p.begin().await?;
        for sql in [
            "DELETE FROM learn_state",
            "DELETE FROM source_clocks",
            "DELETE FROM open_sessions",
            "DELETE FROM view_counts",
            "DELETE FROM asset_counts",
            "DELETE FROM asset_info",
        ] {
            sqlx::query(sql).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
        })
    }
}

/// [`Store::learn_counts`] of the SQLite file at `path`, in one read transaction.
fn read_counts_sqlite(path: &std::path::Path) -> Result<Counts, Error> {
    use rusqlite::{Connection, OpenFlags};
    let mut conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(2))?;
    let tx = conn.transaction()?;
    let mut views = Vec::new();
    {
        let mut q = tx.prepare("SELECT page, context, views, weighted FROM view_counts")?;
        let mut rows = q.query([])?;
        while let Some(r) = rows.next()? {
            views.push(ViewCount {
                page: r.get(0)?,
                context: super::context(r.get(1)?)?,
                views: r.get(2)?,
                weighted: r.get(3)?,
            });
        }
    }
    let mut assets = Vec::new();
    {
        let mut q = tx.prepare(
            "SELECT page, context, asset, hit_n, hit_w, unknown_n, unknown_w, delay_ln_sum \
             FROM asset_counts",
        )?;
        let mut rows = q.query([])?;
        while let Some(r) = rows.next()? {
            assets.push(AssetCount {
                page: r.get(0)?,
                context: super::context(r.get(1)?)?,
                asset: r.get(2)?,
                hit_n: r.get(3)?,
                hit_w: r.get(4)?,
                unknown_n: r.get(5)?,
                unknown_w: r.get(6)?,
                delay_ln_sum: r.get(7)?,
            });
        }
    }
    let mut info = Vec::new();
    {
        let mut q = tx.prepare(
            "SELECT path, bytes_sum, bytes_n, cacheable, saw_ok, last_status, last_id \
             FROM asset_info",
        )?;
        let mut rows = q.query([])?;
        while let Some(r) = rows.next()? {
            let last_status: i64 = r.get(5)?;
            info.push((
                r.get(0)?,
                AssetInfo {
                    bytes_sum: r.get(1)?,
                    bytes_n: r.get(2)?,
                    cacheable: r.get::<_, i64>(3)? != 0,
                    saw_ok: r.get::<_, i64>(4)? != 0,
                    last_status: u16::try_from(last_status).unwrap_or(0),
                    last_id: r.get(6)?,
                },
            ));
        }
    }
    tx.commit()?;
    Ok(Counts {
        views,
        assets,
        info,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const PAGES: [&str; 3] = ["/", "/a", "/b"];
    const ASSETS: [&str; 3] = ["/s.css", "/i.png", "/f.woff2"];
    const CONTEXTS: [Context; 2] = [Context::BrowserEntry, Context::BrowserInternal];

    /// A fold of counts over a few keys (each key at most once, as a pass's tally makes them).
    fn fold() -> impl Strategy<Value = Fold> {
        let weight = 0.001f64..1000.0;
        (
            prop::collection::btree_map((0..3usize, 0..2usize), (1i64..50, weight.clone()), 0..6),
            prop::collection::btree_map(
                (0..3usize, 0..2usize, 0..3usize),
                (
                    0i64..50,
                    weight.clone(),
                    0i64..5,
                    0.0f64..10.0,
                    0.0f64..90.0,
                ),
                0..12,
            ),
            prop::collection::btree_map(
                0..3usize,
                (0i64..9000, 0i64..3, any::<bool>(), any::<bool>(), 1i64..100),
                0..3,
            ),
            prop_oneof![Just(1.0f64), 0.001f64..1.0],
        )
            .prop_map(|(views, assets, info, rescale)| Fold {
                state: LearnState::default(),
                rescale,
                views: views
                    .into_iter()
                    .map(|((p, c), (views, weighted))| ViewCount {
                        page: PAGES[p].into(),
                        context: CONTEXTS[c],
                        views,
                        weighted,
                    })
                    .collect(),
                assets: assets
                    .into_iter()
                    .map(
                        |((p, c, a), (hit_n, hit_w, unknown_n, unknown_w, ln))| AssetCount {
                            page: PAGES[p].into(),
                            context: CONTEXTS[c],
                            asset: ASSETS[a].into(),
                            hit_n,
                            hit_w,
                            unknown_n,
                            unknown_w,
                            delay_ln_sum: ln,
                        },
                    )
                    .collect(),
                info: info
                    .into_iter()
                    .map(|(a, (bytes_sum, bytes_n, cacheable, saw_ok, last_id))| {
                        let info = AssetInfo {
                            bytes_sum,
                            bytes_n,
                            cacheable,
                            saw_ok,
                            last_status: 200 + last_id as u16 % 3,
                            last_id,
                        };
                        (ASSETS[a].to_string(), info)
                    })
                    .collect(),
            })
    }

    /// Counts in key order.
    fn sorted(mut c: Counts) -> Counts {
        c.views
            .sort_by(|a, b| (&a.page, a.context).cmp(&(&b.page, b.context)));
        c.assets
            .sort_by(|a, b| (&a.page, a.context, &a.asset).cmp(&(&b.page, b.context, &b.asset)));
        c.info.sort_by(|a, b| a.0.cmp(&b.0));
        c
    }

    /// The same counts, weights equal up to what a JSON round trip may round.
    fn assert_same(stored: Counts, expected: Counts) {
        let (s, e) = (sorted(stored), sorted(expected));
        let close = |x: f64, y: f64| (x - y).abs() <= 1e-12 * x.abs().max(y.abs()).max(1e-300);
        assert_eq!(s.info, e.info);
        assert_eq!(s.views.len(), e.views.len());
        for (x, y) in s.views.iter().zip(&e.views) {
            assert_eq!((&x.page, x.context, x.views), (&y.page, y.context, y.views));
            assert!(close(x.weighted, y.weighted), "{x:?} vs {y:?}");
        }
        assert_eq!(s.assets.len(), e.assets.len());
        for (x, y) in s.assets.iter().zip(&e.assets) {
            assert_eq!(
                (&x.page, x.context, &x.asset, x.hit_n, x.unknown_n),
                (&y.page, y.context, &y.asset, y.hit_n, y.unknown_n)
            );
            assert!(
                close(x.hit_w, y.hit_w)
                    && close(x.unknown_w, y.unknown_w)
                    && close(x.delay_ln_sum, y.delay_ln_sum),
                "{x:?} vs {y:?}"
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// A pass selects from the counts it read before its fold plus the fold applied in memory,
        /// and writes the fold meanwhile: both must be the same counts (read either way).
        #[test]
        fn a_fold_applied_in_memory_is_what_the_store_holds_after_it(
            folds in prop::collection::vec(fold(), 1..4),
        ) {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async {
                let dir = tempfile::tempdir().unwrap();
                let store = Store::open(&dir.path().join("f.db")).await.unwrap();
                for f in &folds {
                    let mut expected = store.learn_counts().await.unwrap();
                    f.apply_to(&mut expected);
                    store.fold(f).await.unwrap();
                    let stored = store.learn_counts().await.unwrap();
                    // The file's own reader and the JSON one (PostgreSQL's) read the same.
                    assert_same(store.learn_counts_json().await.unwrap(), stored.clone());
                    assert_same(stored, expected);
                }
            });
        }
    }
}
