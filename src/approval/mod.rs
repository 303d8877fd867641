//! Approvals of gated promotions: `request` is the model (what the events carry),
//! `decide` the workflow above the store (who may decide, what a decision does). The gate
//! (`gate/`) stays pure: it judges, it does not ask anyone.

pub mod decide;
pub mod request;

pub use decide::{decide, Approval, ApprovalState, Refusal};
pub use request::{ApprovalRequest, ChangeAuthor, ChangeSet, Decision, DecisionKind};
