//! Restreaming to RTMP/RTMPS destinations (YouTube, Twitch, any relay).

pub mod supervisor;
