//! The events the recorder benchmarks write: a product site's image requests, one page view in
//! ten, so the recorder bench and `storewrite` measure the same rows.

use pushwise_store::{Event, PushMark, Referer};

/// The `i`th event of the load: 997 clients, 50 image paths, ten streams per connection.
pub fn event(i: u64) -> Event {
    Event {
        ts_ms: 1_767_225_600_000 + i as i64,
        client: (i % 997) as i64 * 7_919,
        conn_id: (i / 10) as i64,
        stream_id: (i % 10) as i64 * 2 + 1,
        method: "GET".into(),
        path: format!("/img/product-{}.png", i % 50).into(),
        status: 200,
        bytes: 34_000,
        content_type: Some("image/png".into()),
        referer: Referer::SameSite("/products.html".into()),
        is_page: i.is_multiple_of(10),
        browser: true,
        cacheable: true,
        push: PushMark::Requested,
        holdout: false,
        over_cap: false,
        source: None,
        source_line: None,
    }
}
