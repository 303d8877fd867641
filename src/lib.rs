//! Gantry: pipeline file -> validated plan -> scheduler -> Docker -> events -> store -> reports.
//! The binary (`main.rs`) is a thin command line over these modules.

pub mod forge;
pub mod labels;
pub mod docker;
pub mod channel;
pub mod control;
pub mod events;
pub mod mask;
pub mod pipeline;
pub mod recorder;
pub mod store;
pub mod git;
pub mod scheduler;
pub mod stages;
pub mod cli;
pub mod secrets;
pub mod sweep;
pub mod words;
pub mod report;
pub mod smoke;
pub mod load;
pub mod gate;
pub mod policy;
pub mod limits;
pub mod agents;
pub mod config;
pub mod coordinator;
pub mod server;
