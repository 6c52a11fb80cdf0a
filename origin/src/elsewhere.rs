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
}
