//! Answering playlist requests: the multivariant playlist (once the stream has tracks), and
//! the LL-HLS media playlist with blocking reloads (`_HLS_msn`/`_HLS_part`), delta updates
//! (`_HLS_skip`) and fresh plain reloads; both gzipped when the client accepts it.

use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use super::{
    Body, CACHE_DIRECTIVE, CACHE_ERROR, CACHE_NONE, HttpState, MEDIA_PLAYLIST, not_found, simple,
};
use crate::playlist::{BlockingRequest, Outcome};
use crate::request::parse_directives;
use crate::stream::{OriginStream, Wait};
use crate::text::Rendered;

pub(super) async fn multivariant(
    state: &HttpState,
    os: &Arc<OriginStream>,
    gzip: bool,
) -> Response<Body> {
    if let Wait::Later(w) = os.block_for_start()
        && w.outcome().await == Outcome::TimedOut
    {
        state.origin.metrics.request("multivariant", "timeout");
        return simple(
            StatusCode::SERVICE_UNAVAILABLE,
            CACHE_ERROR,
            "stream has not started\n",
        );
    }
    match os.multivariant(MEDIA_PLAYLIST) {
        Some(text) => {
            state.origin.metrics.request("multivariant", "ok");
            text_response(&text, "application/vnd.apple.mpegurl", CACHE_NONE, gzip)
        }
        None => {
            state.origin.metrics.request("multivariant", "not_found");
            not_found()
        }
    }
}

pub(super) async fn media_playlist(
    state: &HttpState,
    os: &Arc<OriginStream>,
    query: Option<&str>,
    gzip: bool,
) -> Response<Body> {
    let m = &state.origin.metrics;
    let d = match parse_directives(query) {
        Ok(d) => d,
        Err(reason) => {
            m.request("playlist", "bad_request");
            return simple(StatusCode::BAD_REQUEST, CACHE_ERROR, format!("{reason}\n"));
        }
    };
    let mut cache = if d.msn.is_some() || d.skip {
        CACHE_DIRECTIVE
    } else {
        CACHE_NONE
    };
    // A playlist with no part yet (a stream just started, or continuing here after moving
    // from another node) is never sent empty: players take an empty live playlist for a
    // broken one (hls.js: levelEmptyError, and no recovery). Held until the first part.
    if let Wait::Later(w) = os.block_for_start()
        && w.outcome().await == Outcome::TimedOut
    {
        m.request("playlist", "timeout");
        return simple(
            StatusCode::SERVICE_UNAVAILABLE,
            CACHE_ERROR,
            "stream has not started\n",
        );
    }
    let mut result = "ok";
    let mut decided = None;
    if let Some(msn) = d.msn {
        match os.block_for(BlockingRequest { msn, part: d.part }) {
            Wait::Now => {}
            Wait::Later(w) => match w.outcome_at().await {
                (Outcome::TimedOut, _) => {
                    m.request("playlist", "timeout");
                    return simple(
                        StatusCode::SERVICE_UNAVAILABLE,
                        CACHE_ERROR,
                        "the requested part did not appear in time\n",
                    );
                }
                (Outcome::Ready, at) => {
                    decided = Some(at);
                    result = "blocked_ok";
                }
                (Outcome::Gone, _) => result = "blocked_ok",
            },
            Wait::BadRequest(reason) => {
                m.request("playlist", "bad_request");
                return simple(StatusCode::BAD_REQUEST, CACHE_ERROR, format!("{reason}\n"));
            }
            Wait::NotFound => {
                m.request("playlist", "not_found");
                return not_found();
            }
        }
    }
    // A plain request (a player joining, or one that never blocks) is answered once the
    // part being made completes, at most `fresh_hold` later: players compute where to start
    // from the newest part and never catch up the age it already had (hls.js sat 50-200 ms
    // further behind, BENCHMARKS.md), and a reader that polls gets a fresher playlist too.
    if d.msn.is_none()
        && let Some(limit) = os.fresh_hold()
        && let Wait::Later(w) = os.block_for_next_part()
    {
        result = match tokio::time::timeout(limit, w.outcome_at()).await {
            Ok(_) => "fresh_ok",
            Err(_) => "fresh_late",
        };
    }
    if os.is_ended() {
        cache = CACHE_NONE;
    }
    m.request("playlist", result);
    let resp = text_response(
        &os.media_playlist(d.skip),
        "application/vnd.apple.mpegurl",
        cache,
        gzip,
    );
    if let Some(at) = decided {
        m.blocking_wake.observe(at.elapsed().as_secs_f64());
    }
    resp
}

/// A playlist or manifest: gzip when the client accepts it (never for media).
pub(super) fn text_response(
    text: &Rendered,
    ctype: &'static str,
    cache: &'static str,
    gzip: bool,
) -> Response<Body> {
    let mut r = Response::new(Body::empty());
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    if gzip {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        *r.body_mut() = Body::from(text.gzipped());
    } else {
        *r.body_mut() = Body::from(text.text());
    }
    r
}
