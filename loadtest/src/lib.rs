//! Glasscast load generator: RTMP publishers replaying an FLV in real time, LL-HLS viewers
//! that behave like hls.js, and reports of publish-to-viewer latency (JSON, Markdown, SVG).

/// The clip publishers replay (looped) when no `--flv` is given: the 4 s 720p30 H.264 + AAC
/// fixture shaped like the glasses' stream, compiled in so the tool runs from any directory.
pub const BUILTIN_FLV: &[u8] = include_bytes!("../../origin/benches/fixtures/glasses-720p30.flv");

pub mod compare;
pub mod playlist;
pub mod publisher;
pub mod report;
pub mod run;
pub mod stats;
pub mod viewer;
