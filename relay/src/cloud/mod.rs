//! The control plane ("the cloud"): what the relay reports and asks, per CONTRACTS.md.

pub mod client;
pub mod outbox;
