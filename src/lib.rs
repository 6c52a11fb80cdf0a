//! The `glasscast` binary's library half: configuration and wiring, so whole-program tests
//! can run the server in-process.

pub mod admin;
pub mod auth;
pub mod config;
pub mod control;
pub mod fleet;
#[doc(hidden)]
pub mod fuzzing;
pub mod managed;
pub mod metrics;
pub mod record;
pub mod redis_conn;
pub mod server;
