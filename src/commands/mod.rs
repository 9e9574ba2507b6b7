//! One module per subcommand; each exposes `run` and imports only its own arguments from `cli`.

pub mod analyze;
pub mod backup;
pub mod digest;
pub mod import;
pub mod plan;
pub mod serve;
pub mod sets;
pub mod threshold;
pub mod tune;
