//! The operator console: a small web UI served on the admin listener at `/` (never on the
//! viewer-facing listener). It is static files compiled into the binary, plus the vendored
//! hls.js, and it talks only to the documented `/v1` API with the operator's bearer token, so
//! every action it offers is also one curl call. The files hold no secret, so they are served
//! without the token; the API calls they make need it.

use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

const INDEX: &str = include_str!("index.html");
const SCRIPT: &str = include_str!("console.js");
const STYLE: &str = include_str!("console.css");

/// The page may load only its own files and play media from wherever the playback URLs point
/// (the public URL is usually another host); hls.js runs its demuxer in a blob worker.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self' http: https:; media-src 'self' blob: http: https:; worker-src blob:; \
    frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

fn asset(content_type: &'static str, body: &'static [u8]) -> Response {
    let headers: [(HeaderName, HeaderValue); 5] = [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        // The files change with the binary: revalidate rather than run a stale console.
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
    ];
    (headers, body).into_response()
}

/// The console's routes: `/` and `/console/*`.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX.as_bytes()) }),
        )
        .route(
            "/console/console.js",
            get(|| async { asset("text/javascript; charset=utf-8", SCRIPT.as_bytes()) }),
        )
        .route(
            "/console/console.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE.as_bytes()) }),
        )
        .route(
            "/console/hls.light.min.js",
            get(|| async { asset("text/javascript; charset=utf-8", origin::player::HLS_JS) }),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_console_loads_only_its_own_files() {
        for src in [
            "/console/console.css",
            "/console/hls.light.min.js",
            "/console/console.js",
        ] {
            assert!(INDEX.contains(src), "{src}");
        }
        for text in [INDEX, SCRIPT, STYLE] {
            assert!(!text.contains("http://") && !text.contains("https://"));
        }
        // Every API call goes through one function, to /v1.
        assert_eq!(SCRIPT.matches("fetch(").count(), 1);
        assert!(SCRIPT.contains("fetch(\"/v1\" + path"));
        // Text from the API is never parsed as HTML.
        assert!(!SCRIPT.contains("innerHTML"));
    }
}
