//! pushwise's network side: TLS, HTTP/2 (with push and Early Hints) and HTTP/1.1, the origin,
//! recording, the push decision per page view, metrics, and the server's own lifecycle.
//!
//! The entry point is [`run`] (or [`Server::new`] then [`Server::run`]), which serves a listener
//! until a shutdown future resolves. This crate reads push sets through `pushwise-store` and never
//! depends on the analyzer: it does not compute probabilities, it serves what was learned.

mod accept;
pub mod access_log;
mod batch_thread;
pub mod body;
mod client_keys;
mod clock;
mod coalesce;
pub mod config;
mod conn;
mod date;
pub mod digest;
mod error;
mod exchange;
mod forwarded;
mod h1;
mod h2conn;
mod intern;
mod known_paths;
pub mod metrics;
pub mod origin;
mod push;
mod quiet;
pub mod recorder;
mod request_body;
mod server;
mod shared;
pub mod tls;
mod workers;

pub use config::{Config, CookieName, InvalidSetting, PushMode, Settings, Share};
pub use error::Error;
pub use server::{Server, run};
