//! Storefront: the demo web service of Gantry's example pipeline. Standard library
//! only; see README.md for routes and settings.

pub mod app;
pub mod cart;
pub mod catalog;
pub mod config;
pub mod http;
pub mod json;
pub mod metrics;
pub mod rng;
pub mod routes;
pub mod server;
pub mod signals;
