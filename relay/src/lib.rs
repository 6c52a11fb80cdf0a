//! Glasscast relay: RTMP ingest, media parsing, the per-stream registry and fan-out,
//! restreaming to RTMP/RTMPS destinations, and the control-plane client.
//!
//! The protocol and media logic here is sans-IO (no sockets, clocks or tasks): FLV/H.264/AAC
//! parsing, the hub, the restream supervisor and forwarder, the cloud outbox. The tokio shells
//! are [`ingest`], the grace timers of [`registry`], [`restream::pusher`] and
//! [`cloud::client`].

pub mod aac;
pub mod auth;
mod bits;
pub mod cloud;
pub mod flv;
#[doc(hidden)]
pub mod fuzzing;
pub mod h264;
pub mod hub;
pub mod ingest;
pub mod limits;
pub mod media;
pub mod net;
pub mod path;
pub mod rate;
pub mod registry;
pub mod restream;
pub mod rtmp;
