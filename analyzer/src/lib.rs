//! pushwise's learner: attribute recorded requests to page views, estimate P(asset | page) per
//! request context, select push sets, tune the thresholds, and import access logs to learn from.
//!
//! It reads and writes only through `pushwise-store`; the server never depends on this crate, so
//! every probability pushwise uses is computed here and nowhere else.

pub mod attribute;
pub mod error;
pub mod estimate;
pub mod import;
pub mod params;
pub mod pass;
pub mod select;
pub mod sessions;
pub mod svg;
pub mod tally;
pub mod tune;

#[cfg(test)]
mod pass_tests;
#[cfg(test)]
mod tests;

pub use error::Error;
pub use params::{LearnParams, SelectParams};
pub use pass::{PassReport, rebuild, run_pass, run_pass_with};
