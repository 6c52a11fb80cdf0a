//! Serving media files: complete ones from memory (with byte ranges), and parts or segments
//! still being made, streamed chunk by chunk as the fragmenter makes them.

use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body::Body as HttpBody;
use hyper::body::Incoming;
use tracing::Instrument;

use super::{Body, CACHE_ERROR, CACHE_IMMUTABLE, HttpState, not_found, simple};
use crate::naming::MediaName;
use crate::request::{RangeReq, parse_live_range, parse_range, slice_chunks};
use crate::store::Progress;
use crate::stream::{MediaBytes, OriginStream};

pub(super) async fn media(
    state: &HttpState,
    os: &Arc<OriginStream>,
    name: &str,
    req: &Request<Incoming>,
) -> Response<Body> {
    let m = &state.origin.metrics;
    let Some(kind) = MediaName::parse(&os.prefix, name) else {
        m.request("media", "not_found");
        return not_found();
    };
    if let Some(media) = os.media(kind) {
        m.request("media", "ok");
        return complete_media(state, media, req);
    }
    in_progress(state, os, kind, req).await
}

fn complete_media(state: &HttpState, media: MediaBytes, req: &Request<Incoming>) -> Response<Body> {
    let resp = media_response(media, req.headers().get(header::RANGE));
    if let Some(len) = resp.body().size_hint().exact() {
        state.origin.metrics.media_bytes_out.inc_by(len);
    }
    resp
}

/// Chunks queued for one response streaming media being made: a slow client holds at most
/// this many (they are shared buffers, not copies); the feeding task waits beyond that.
const STREAM_QUEUE: usize = 16;

/// A part or segment that is not complete: once its first bytes exist (the preload-hinted
/// part starts one frame after the previous part closed), the response starts and sends each
/// chunk as the fragmenter makes it, ending when the part or segment is complete. What a
/// player receives is byte for byte the complete file served later.
async fn in_progress(
    state: &HttpState,
    os: &Arc<OriginStream>,
    name: MediaName,
    req: &Request<Incoming>,
) -> Response<Body> {
    let m = &state.origin.metrics;
    // A byte range of the segment being made (byte-range-addressed parts): its first byte may
    // not exist yet, and its end may lie beyond what will exist (RFC 8673).
    let range = parse_live_range(req.headers().get(header::RANGE));
    let start = range.map_or(0, |r| r.0);
    let mut rx = os.watch_progress();
    let deadline = tokio::time::Instant::now() + os.hold_limit();
    let first = loop {
        rx.borrow_and_update();
        match os.progress(name) {
            Progress::Complete(chunks) => {
                m.request("media", "ok");
                return complete_media(state, MediaBytes { chunks, kind: name }, req);
            }
            Progress::Partial(pieces) if total(&pieces) > start => break pieces,
            Progress::Partial(_) => {}
            Progress::Absent => {
                m.request("media", "not_found");
                return not_found();
            }
        }
        match tokio::time::timeout_at(deadline, rx.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => {
                m.request("media", "not_found");
                return not_found();
            }
            Err(_) => {
                m.request("media", "timeout");
                return simple(
                    StatusCode::SERVICE_UNAVAILABLE,
                    CACHE_ERROR,
                    "media not ready\n",
                );
            }
        }
    };
    m.request("media", "streamed");
    let range_header = match range {
        // `bytes=N-`: what exists now, and the length is not known (RFC 8673 2.1).
        Some((_, None)) => {
            let now = total(&first);
            let body = crate::store::after(&first, start);
            let mut r = Response::new(Body::from_chunks(body));
            *r.status_mut() = StatusCode::PARTIAL_CONTENT;
            let h = r.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("video/mp4"));
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static(CACHE_ERROR));
            if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/*", now - 1)) {
                h.insert(header::CONTENT_RANGE, v);
            }
            return r;
        }
        Some((_, Some(end))) => HeaderValue::from_str(&format!("bytes {start}-{end}/*")).ok(),
        None => None,
    };
    // One past the last byte asked for.
    let stop = range
        .and_then(|r| r.1)
        .map_or(u64::MAX, |e| e.saturating_add(1));
    let (tx, body_rx) = tokio::sync::mpsc::channel(STREAM_QUEUE);
    let stream = os.clone();
    let metrics = state.origin.metrics.clone();
    tokio::spawn(
        async move {
            let mut sent = start;
            let mut pieces = first;
            loop {
                for piece in crate::store::after(&pieces, sent) {
                    let piece = piece.slice(..piece.len().min((stop - sent) as usize));
                    sent += piece.len() as u64;
                    metrics.media_bytes_out.inc_by(piece.len() as u64);
                    if tx.send(Ok(piece)).await.is_err() {
                        return; // the client went away
                    }
                    if sent >= stop {
                        return; // the range asked for is complete
                    }
                }
                let next = match rx.changed().await {
                    Ok(()) => {
                        rx.borrow_and_update();
                        stream.progress(name)
                    }
                    Err(_) => Progress::Absent,
                };
                pieces = match next {
                    Progress::Complete(p) => {
                        for piece in crate::store::after(&p, sent) {
                            let piece = piece.slice(..piece.len().min((stop - sent) as usize));
                            sent += piece.len() as u64;
                            if piece.is_empty() {
                                return;
                            }
                            metrics.media_bytes_out.inc_by(piece.len() as u64);
                            if tx.send(Ok(piece)).await.is_err() {
                                return;
                            }
                        }
                        return;
                    }
                    Progress::Partial(p) => p,
                    // Not expected (a stream completes what it was making when it ends), but
                    // a short body must not pass for the file: cut the response off.
                    Progress::Absent => {
                        let _ = tx.send(Err(crate::body::Aborted)).await;
                        return;
                    }
                };
            }
        }
        .in_current_span(),
    );
    let mut r = Response::new(Body::streaming(body_rx));
    let ranged = range_header.is_some();
    if let Some(v) = range_header {
        *r.status_mut() = StatusCode::PARTIAL_CONTENT;
        r.headers_mut().insert(header::CONTENT_RANGE, v);
    }
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("video/mp4"));
    // The bytes are final (the complete file is the same), so caches keep them like any
    // media. (No `X-Accel-Buffering: no`: nginx would then neither cache the response nor
    // collapse the crowd waiting on it onto this one request.) A range of a file of unknown
    // length is not stored: a cache could not tell it from the file.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if ranged { CACHE_ERROR } else { CACHE_IMMUTABLE }),
    );
    r
}

fn media_response(media: MediaBytes, range: Option<&HeaderValue>) -> Response<Body> {
    let len = media.len();
    let mut r = Response::new(Body::empty());
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("video/mp4"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_IMMUTABLE),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    match parse_range(range, len) {
        RangeReq::Full => *r.body_mut() = Body::from_chunks(media.chunks),
        RangeReq::Partial(start, end) => {
            *r.status_mut() = StatusCode::PARTIAL_CONTENT;
            if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{len}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            *r.body_mut() = Body::from_chunks(slice_chunks(&media.chunks, start, end));
        }
        RangeReq::Unsatisfiable => {
            *r.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static(CACHE_ERROR));
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
        }
    }
    r
}

fn total(pieces: &[bytes::Bytes]) -> u64 {
    pieces.iter().map(|p| p.len() as u64).sum()
}
