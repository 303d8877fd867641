//! Gantry: pipeline file -> validated plan -> scheduler -> Docker -> events -> store -> reports.
//! The binary (`main.rs`) is a thin command line over these modules.

pub mod agents;
pub mod approval;
pub mod channel;
pub mod cli;
pub mod commit;
pub mod config;
pub mod control;
pub mod coordinator;
pub mod docker;
pub mod engine;
pub mod events;
pub mod forge;
pub mod gate;
pub mod git;
pub mod labels;
pub mod limits;
pub mod load;
pub mod mask;
pub mod pipeline;
pub mod policy;
pub mod recorder;
pub mod report;
pub mod runs;
pub mod scheduler;
pub mod secrets;
pub mod server;
pub mod smoke;
pub mod stages;
pub mod store;
pub mod sweep;
pub mod words;
