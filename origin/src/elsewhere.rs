//! Streams held by another node of a fleet. When a request names a stream this origin does
//! not have, it asks the binary's [`Elsewhere`] (the fleet's stream directory and proxy) to
//! answer it from the node that does; with no fleet, or a stream that exists nowhere, the
//! answer stays 404.

use std::future::Future;
use std::pin::Pin;

use http::{HeaderMap, Response, Uri};
use relay::path::StreamPath;

use crate::body::Body;

/// A future answering a forwarded request.
pub type Forwarded<'a> = Pin<Box<dyn Future<Output = Option<Response<Body>>> + Send + 'a>>;

/// Where a stream's playlist left off on the node it came from: the new playlist numbers its
/// segments and parts on from here, on a new timeline (see
/// [`crate::playlist::Playlist::continue_from`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Continuation {
    pub next_msn: u64,
    pub next_part: u64,
    pub discontinuity_sequence: u64,
}

/// Answers requests for streams held elsewhere.
pub trait Elsewhere: Send + Sync {
    /// The owner's answer to this request (status, headers and body passed through), or
    /// `None` when no other node holds `path` (or the request already came from one: a
    /// forwarded request is never forwarded again).
    fn forward<'a>(
        &'a self,
        path: &'a StreamPath,
        uri: &'a Uri,
        headers: &'a HeaderMap,
    ) -> Forwarded<'a>;

    /// For a stream that just started here: where its playlist left off on another node, if
    /// it came from one (a publisher that moved). Asked once, before the first segment.
    fn continuation<'a>(
        &'a self,
        path: &'a StreamPath,
    ) -> Pin<Box<dyn Future<Output = Option<Continuation>> + Send + 'a>>;
}
