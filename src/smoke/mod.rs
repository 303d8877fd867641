//! User-journey smoke tests: the library behind the `gantry-smoke` agent.
//!
//! The coordinator writes a [`SmokeSpec`] (JSON), the agent container runs it against the
//! deployed app with [`run`] and writes a [`SmokeReport`] (JSON) that the coordinator reads
//! back to decide pass/fail; [`junit_xml`] turns a report into JUnit XML for CI tooling.
//! [`probe`] is the HTTP health check the coordinator runs (as `gantry-smoke probe`) on an
//! environment's network.
//!
//! One job per module: `spec` (input model + validation), `template` (`{{var}}`),
//! `checks` (expectations -> failures), `http` (client and error wording), `runner`
//! (journeys), `report` (output model + messages), `junit`, `probe`, `fsio` (atomic write).

mod checks;
mod error;
mod fsio;
mod http;
mod junit;
mod probe;
mod report;
mod runner;
mod spec;
mod template;

pub use error::SmokeError;
pub use fsio::write_atomic;
pub use junit::junit_xml;
pub use probe::{probe, ProbeAttempt, ProbeOptions, ProbeOutcome};
pub use report::{Failure, JourneyReport, Outcome, SmokeReport, StepReport};
pub use runner::run;
pub use spec::{Expect, Journey, Request, SmokeSpec, Step};

/// `{{name}}` templates, for the fuzz targets in `fuzz/` (not a stable surface).
#[doc(hidden)]
pub mod templates {
    pub use super::template::{placeholders, render, render_json, UnknownVariable, Vars};
}
