//! The store on a real PostgreSQL server: the same rows, the same schema, and the fleet's locks.
//!
//! Each test starts its own throwaway server ([`PgCluster`]), so a test that stops it or fills it
//! cannot disturb another.

use std::collections::BTreeMap;

use super::tests::{compact_strings, ev, events_view, varied_with_imports};
use super::*;
use crate::location::Location;
use crate::pg_cluster::PgCluster;

/// A new database `db` on `cluster`, opened as a store.
async fn pg_store(cluster: &PgCluster, db: &str) -> Store {
    cluster.create_database(db).unwrap();
    open_again(cluster, db).await
}

/// Another handle on database `db` (as a second server of the fleet would open it).
async fn open_again(cluster: &PgCluster, db: &str) -> Store {
    Store::open_at(&Location::parse(&cluster.url(db)).unwrap())
        .await
        .unwrap()
}

/// Table → sorted column names of every table and view but sqlx's own.
type Shape = BTreeMap<String, Vec<String>>;

fn shape(rows: Vec<(String, String)>) -> Shape {
    let mut out = Shape::new();
    for (t, c) in rows {
        if t != "_sqlx_migrations" {
            out.entry(t).or_default().push(c);
        }
    }
    for cols in out.values_mut() {
        cols.sort();
    }
    out
}

#[tokio::test]
async fn both_schemas_hold_the_same_tables_and_columns() {
    let dir = tempfile::tempdir().unwrap();
    let lite = Store::open(&dir.path().join("t.db")).await.unwrap();
    let lite_shape = shape(
        sqlx::query_as(
            "SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p \
             WHERE m.type IN ('table', 'view') AND m.name NOT LIKE 'sqlite_%'",
        )
        .fetch_all(super::tests::sqlite(&lite))
        .await
        .unwrap(),
    );
    let cluster = PgCluster::start().unwrap();
    let pg = pg_store(&cluster, "shape").await;
    let Pool::Pg(p) = &pg.pool else {
        unreachable!()
    };
    let pg_shape = shape(
        sqlx::query_as(
            "SELECT table_name::text, column_name::text FROM information_schema.columns \
             WHERE table_schema = current_schema()",
        )
        .fetch_all(&p.pool)
        .await
        .unwrap(),
    );
    assert!(lite_shape.contains_key("event_log") && lite_shape.contains_key("events"));
    assert_eq!(pg_shape, lite_shape);
}

#[tokio::test]
async fn events_read_back_the_same_from_postgres_by_either_way_in() {
    let cluster = PgCluster::start().unwrap();
    let s = pg_store(&cluster, "rows").await;
    let events = varied_with_imports();
    assert_eq!(s.insert_events(&events[..333]).await.unwrap(), 333);
    // The recorder's writer runs on a plain thread and drives the pool's runtime from there.
    let w = s.clone();
    let tail = events[333..].to_vec();
    let n = tokio::task::spawn_blocking(move || w.event_writer().insert(&tail))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 444);
    assert_eq!(events_view(&s).await, events);
    // Imported lines already present are skipped, live ones never are.
    let imported: Vec<Event> = events
        .iter()
        .filter(|e| e.source.is_some())
        .cloned()
        .collect();
    assert!(!imported.is_empty());
    assert_eq!(s.insert_events(&imported).await.unwrap(), 0);
    assert_eq!(
        s.insert_events(&[ev(9, None), ev(9, None)]).await.unwrap(),
        2
    );
    assert_eq!(s.count_events().await.unwrap(), 779);
    let mut texts = std::collections::HashSet::new();
    for e in events.iter().chain([&ev(9, None)]) {
        texts.extend(compact_strings(e));
    }
    assert_eq!(s.count_strings().await.unwrap() as usize, texts.len());
    // The learner's paged read sees them in id order with their strings.
    let rows = s.load_events(0).await.unwrap();
    assert_eq!(rows.len(), 779);
    for (r, e) in rows.iter().zip(&events) {
        assert_eq!(
            (r.path.as_str(), r.ts_ms, r.status),
            (&*e.path, e.ts_ms, e.status)
        );
    }
}

#[tokio::test]
async fn postgres_settings_salts_thresholds_pins_and_generations_behave_as_on_sqlite() {
    let cluster = PgCluster::start().unwrap();
    let a = pg_store(&cluster, "fleet").await;
    let b = open_again(&cluster, "fleet").await;
    let first = a.salt_state().await.unwrap();
    assert_eq!(b.salt_state().await.unwrap(), first, "one salt per fleet");
    let rotated = a
        .rotate_salt(&first.salt, first.since_ms + 1)
        .await
        .unwrap();
    assert_eq!(
        b.rotate_salt(&first.salt, first.since_ms + 9)
            .await
            .unwrap(),
        rotated
    );
    a.set_threshold(
        None,
        crate::rows::ThresholdUpdate {
            probability: Some(Probability::new(0.25).unwrap()),
            quiet_after: Some(crate::quiet::QuietAfter::new(2).unwrap()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    a.set_threshold(
        Some("/p"),
        crate::rows::ThresholdUpdate {
            min_support: Some(MinSupport::new(3).unwrap()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let t = b.thresholds().await.unwrap();
    assert_eq!(t.len(), 2);
    assert_eq!((t[0].page.as_str(), t[0].probability), ("", Some(0.25)));
    assert_eq!(t[0].quiet_after, Some(2));
    assert_eq!(b.quiet_after().await.unwrap().get(), 2);
    assert_eq!((t[1].page.as_str(), t[1].min_support), ("/p", Some(3)));
    assert!(b.clear_threshold(Some("/p")).await.unwrap());
    assert!(
        a.set_pin("/p", "/a.css", Some(PinAction::Pin))
            .await
            .unwrap()
    );
    assert_eq!(b.pins().await.unwrap().len(), 1);
    assert!(b.set_pin("/p", "/a.css", None).await.unwrap());
    assert!(!b.set_pin("/p", "/a.css", None).await.unwrap());
    assert_eq!(a.latest_generation().await.unwrap(), None);
    // A read-only open sees the same database and refuses to write.
    let ro = Store::open_read_only(std::path::Path::new(&cluster.url("fleet")))
        .await
        .unwrap();
    assert!(ro.is_read_only());
    assert_eq!(ro.thresholds().await.unwrap().len(), 1);
    assert!(ro.set_setting("x", "y").await.is_err());
}

#[tokio::test]
async fn one_analyzer_lock_per_fleet_and_a_dead_holder_releases_it() {
    let cluster = PgCluster::start().unwrap();
    let a = pg_store(&cluster, "lock").await;
    let b = open_again(&cluster, "lock").await;
    let held = a.try_analyzer_lock().await.unwrap().expect("free at first");
    assert!(b.try_analyzer_lock().await.unwrap().is_none());
    held.release().await;
    let again = b.try_analyzer_lock().await.unwrap().expect("released");
    // A holder that goes away without releasing (a crash): its session ends, so does the lock.
    drop(again);
    let mut got = None;
    for _ in 0..50 {
        got = a.try_analyzer_lock().await.unwrap();
        if got.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        got.is_some(),
        "the dropped holder's lock was never released"
    );
}

#[tokio::test]
async fn pruning_strings_on_postgres_keeps_warm_caches_correct() {
    let cluster = PgCluster::start().unwrap();
    let s = pg_store(&cluster, "prune").await;
    let other = open_again(&cluster, "prune").await;
    let at = |ts: i64, p: &str| Event {
        path: p.to_string().into(),
        ..ev(ts, None)
    };
    s.insert_events(&[at(10, "/old.css"), at(5_000, "/keep.css")])
        .await
        .unwrap();
    other.insert_events(&[at(30, "/old.css")]).await.unwrap();
    assert_eq!(s.prune_events_before(1_000).await.unwrap(), 2);
    assert!(s.prune_strings().await.unwrap() >= 1);
    assert!(!s.path_known("/old.css").await.unwrap());
    other.insert_events(&[at(7_000, "/old.css")]).await.unwrap();
    s.insert_events(&[at(8_000, "/old.css")]).await.unwrap();
    let paths: Vec<String> = s
        .load_events(0)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.path)
        .collect();
    assert_eq!(paths, ["/keep.css", "/old.css", "/old.css"]);
    assert_eq!(s.prune_strings().await.unwrap(), 0);
}

#[tokio::test]
async fn another_applications_postgres_database_is_refused_untouched() {
    let cluster = PgCluster::start().unwrap();
    let url = cluster.create_database("theirs").unwrap();
    let admin = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::query("CREATE TABLE orders (id BIGINT)")
        .execute(&admin)
        .await
        .unwrap();
    let e = Store::open_at(&Location::parse(&url).unwrap())
        .await
        .unwrap_err();
    assert!(e.is_foreign(), "{e}");
    assert!(e.to_string().contains("orders"), "{e}");
    let tables: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .fetch_one(&admin)
    .await
    .unwrap();
    assert_eq!(tables, 1, "nothing was added to their database");
}
