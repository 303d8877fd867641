//! The release gate: threshold expressions evaluated against measured figures.

pub mod apm;
pub mod threshold;
pub mod verdict;
pub mod judge;
