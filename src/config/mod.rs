//! The operator's configuration: who the users are and what roles they hold.

pub mod role;

pub use role::Role;
