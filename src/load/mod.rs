//! The load generator the load agent (`gantry-load`) runs.
//!
//! A [`LoadSpec`] (JSON, written by the coordinator) says what to send and how fast;
//! [`LoadRun`] drives it over keep-alive HTTP/1.1 connections and records every outcome
//! into HDR histograms; a [`LoadSummary`] (JSON, written by the agent) carries the figures
//! and the serialised histogram back, so the coordinator's gate can compute any percentile.
//!
//! Two modes:
//! - constant arrival rate (open model): request *i* is due at `t0 + schedule(i)`, and its
//!   latency is measured from that intended time, so a stalled server shows up in the
//!   percentiles instead of silently slowing the sender down (no coordinated omission);
//! - max throughput (closed loop, like wrk): each connection sends its next request as soon
//!   as the previous one is answered; latency from the actual send.

pub mod conn;
pub mod request;
pub mod run;
pub mod schedule;
pub mod spec;
pub mod stats;
pub mod summary;

pub use run::{LoadError, LoadRun, Progress};
pub use spec::{LoadSpec, Mode, RequestSpec, SpecError, Stage};
pub use summary::{LatencyMs, LoadSummary, SummaryError};
