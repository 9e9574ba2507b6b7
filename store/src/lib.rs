//! pushwise's store: the only code that speaks SQL, and the vocabulary the server and the analyzer
//! share (events, contexts, client keys, the in-memory push sets).
//!
//! Data flows one way through it: the server's recorder writes [`Event`]s, the analyzer reads them
//! back as [`rows::EventRow`]s and writes a generation of push sets, and the server reads that
//! generation into [`PushSets`]. Neither the server nor the analyzer writes SQL of its own.

pub mod client_key;
pub mod context;
mod db;
pub mod error;
pub mod event;
pub mod location;
pub mod pg_cluster;
pub mod prefix_cap;
pub mod quiet;
pub mod rows;
pub mod sets;
pub mod time;

pub use client_key::ClientKeyer;
pub use context::{Context, UaClass};
pub use db::{
    APPLICATION_ID, AnalyzerLock, AssetCount, Counts, Dictionary, EventWriter, Fold,
    GenerationNotices, LearnState, MIGRATOR, PG_MIGRATOR, SaltState, Store, ViewCount,
};
pub use error::Error;
pub use event::{Event, PushMark, Referer};
pub use location::Location;
pub use prefix_cap::PrefixCap;
pub use sets::PushSets;
