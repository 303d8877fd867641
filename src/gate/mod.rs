//! The release gate: threshold expressions evaluated against measured figures.

pub mod threshold;
