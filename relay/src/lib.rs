//! Glasscast relay: RTMP ingest, media parsing, and the per-stream registry and fan-out.
//!
//! The protocol and media logic here is sans-IO (no sockets, clocks or tasks); the tokio
//! shells are [`ingest`] and the grace timers of [`registry`].

pub mod aac;
mod bits;
pub mod cloud;
pub mod flv;
pub mod h264;
pub mod hub;
pub mod ingest;
pub mod media;
pub mod net;
pub mod path;
pub mod registry;
pub mod restream;
