//! Glasscast load generator: RTMP publishers replaying an FLV in real time, LL-HLS viewers
//! that behave like hls.js, and reports of publish-to-viewer latency (JSON, Markdown, SVG).

pub mod compare;
pub mod playlist;
pub mod publisher;
pub mod report;
pub mod run;
pub mod stats;
pub mod viewer;
