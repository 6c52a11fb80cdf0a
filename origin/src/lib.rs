//! Glasscast origin: CMAF packaging, LL-HLS and DASH models, and the HTTP origin.

pub mod cmaf;
pub mod dash;
pub mod fragmenter;
pub mod http;
pub mod metrics;
pub mod playlist;
pub mod stream;
