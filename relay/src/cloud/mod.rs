//! The control plane ("the cloud"): what the relay reports and asks, per CONTRACTS.md.

pub mod client;
pub mod https;
pub mod outbox;
