//! The operator's configuration: who the users are and what roles they hold.

pub mod role;
pub mod users;

pub use role::Role;
pub use users::{Config, ConfigError, User};
