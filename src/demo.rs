//! `pushwise demo`: serve the example site, drive traffic, learn, and measure the gain.

use crate::cli::DemoArgs;

pub async fn demo(_a: DemoArgs) -> anyhow::Result<()> {
    anyhow::bail!("the demo is not built yet")
}
