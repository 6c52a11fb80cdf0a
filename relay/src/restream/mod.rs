//! Restreaming to RTMP/RTMPS destinations (YouTube, Twitch, any relay).

pub mod destination;
pub mod forwarder;
pub mod pusher;
pub mod restreamer;
pub mod supervisor;
