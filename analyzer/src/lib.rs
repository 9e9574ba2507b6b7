//! pushwise's data side: the store (all SQL), recorded events, log import, and the learning of push sets.
//!
//! The server depends on this crate through a narrow API: it hands [`Event`]s to
//! a [`store::EventWriter`] from its recorder task and reads push sets through [`plan::PushSets`].
//! Everything that computes a probability lives here, never in the server.

pub mod error;
pub mod event;
pub mod import;
pub mod learn;
pub mod plan;
pub mod store;
pub mod svg;
pub mod tune;

pub use error::Error;
pub use event::{ClientKeyer, Event, PushMark, Referer};
pub use store::{EventWriter, Store};
