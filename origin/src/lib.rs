//! Glasscast origin: CMAF packaging, LL-HLS and DASH models, and the HTTP origin.

pub mod body;
pub mod cmaf;
pub mod dash;
pub mod elsewhere;
pub mod fragment;
pub mod fragmenter;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod naming;
pub mod packager;
mod part_builder;
pub mod player;
pub mod playlist;
pub mod progressive;
pub mod recording;
pub mod request;
pub mod store;
pub mod stream;
pub mod stream_core;
pub mod text;
mod timeline;
