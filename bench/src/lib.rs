//! Tooling shared by `pushwise demo`, the benchmarks and the tests: a site scanner, a synthetic
//! traffic/log model, a browser-like HTTP/2 page loader and a userspace delay proxy.

pub mod browser;
pub mod learn;
pub mod loader;
pub mod proxy;
pub mod recorder_load;
pub mod score;
pub mod shaped;
pub mod site;
pub mod synth;
