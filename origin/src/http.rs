//! The HTTP origin: LL-HLS and DASH over hyper 1 (HTTP/1.1, h2c, and h2 over TLS via ALPN).
//!
//! Routes (everything else is 404 with `Cache-Control: no-store`; no request path ever
//! reaches a filesystem — all media lives in memory):
//! - `GET /healthz` (this listener faces the CDN: metrics and the management API are on the
//!   admin listener)
//! - `GET /live/{userId}/{streamId}/index.m3u8` (multivariant), `media.m3u8` (LL-HLS media
//!   playlist with `_HLS_msn`/`_HLS_part`/`_HLS_skip`), `index.mpd` (DASH)
//! - `GET /live/{userId}/{streamId}/{prefix}-init{n}.mp4 | -p{n}.m4s | -s{n}.m4s`
//! - a stream held by another node of a fleet: answered by that node, through
//!   [`crate::elsewhere::Elsewhere`]
//! - `GET /recordings/{userId}/{streamId}/{recordingId}/{file}` when recording is on: served by
//!   the binary's [`crate::recording::RecordingFiles`] (the one route that may read storage)
//! - with the player page on ([`HttpState::player`]): `GET /live/{userId}/{streamId}/` (the
//!   page, for any well-formed path, live or not) and hls.js at [`crate::player::HLS_JS_PATH`]

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body::Body as HttpBody;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use relay::path::StreamPath;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info_span};

pub use crate::body::Body;
pub use crate::limits::HttpLimits;
use crate::limits::{OffenderLog, is_header_timeout};
use crate::packager::Origin;
use crate::recording::Served;

#[path = "http_media.rs"]
mod media;
use media::media;
#[path = "http_playlist.rs"]
mod playlists;
use playlists::{media_playlist, multivariant, text_response};

/// The media playlist's name next to `index.m3u8`.
pub const MEDIA_PLAYLIST: &str = "media.m3u8";
/// The origin's clock, for DASH players (`UTCTiming`).
pub const TIME_PATH: &str = "/time";

const CACHE_IMMUTABLE: &str = "public, max-age=31536000, immutable";
const CACHE_NONE: &str = "no-cache";
/// The player page is the same for every stream and changes only with the binary.
const CACHE_PAGE: &str = "public, max-age=300";
/// Playlist URLs with `_HLS_` directives are unique per update: a cache may keep them briefly.
const CACHE_DIRECTIVE: &str = "public, max-age=2";
const CACHE_ERROR: &str = "no-store";

/// What the HTTP handlers need.
pub struct HttpState {
    pub origin: Arc<Origin>,
    pub limits: HttpLimits,
    /// Serve the public player page (`http.player`).
    pub player: bool,
    offenders: OffenderLog,
}

impl HttpState {
    pub fn new(origin: Arc<Origin>, limits: HttpLimits) -> Self {
        Self {
            origin,
            limits,
            player: false,
            offenders: OffenderLog::default(),
        }
    }

    /// Counts a limit hit and logs it, once a minute per client address at most.
    fn limit_hit(&self, limit: &'static str, peer: std::net::SocketAddr) {
        self.origin.metrics.limit_hit(limit);
        self.offenders.report(limit, peer);
    }
}

/// Serves HTTP on `listener` until `shutdown`, then drains open connections (bounded wait).
pub async fn serve(
    listener: TcpListener,
    state: Arc<HttpState>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: CancellationToken,
) {
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(state.limits.header_timeout);
    let limiter = relay::limits::ConnLimiter::new(state.limits.max_connections, 0);
    let mut log_gate = relay::limits::LogGate::new(Duration::from_secs(60), 1);
    loop {
        let Some((socket, peer)) = relay::net::accept(&listener, &shutdown, "http").await else {
            break;
        };
        let permit = match limiter.try_open(peer.ip()) {
            Ok(p) => p,
            Err(_) => {
                state.origin.metrics.limit_hit("max_connections");
                if let Some(held) = log_gate.check(&(), std::time::Instant::now()) {
                    tracing::warn!(
                        max = state.limits.max_connections,
                        refused_since_last_report = held,
                        "refusing HTTP connections: at the connection cap (http.max_connections)"
                    );
                }
                drop(socket);
                continue;
            }
        };
        let state_for_errors = state.clone();
        let state = state.clone();
        let secure = tls.is_some();
        let service = service_fn(move |req| {
            let state = state.clone();
            async move { Ok::<_, Infallible>(handle(&state, req, peer, secure).await) }
        });
        let span = info_span!("http", peer = %peer);
        match &tls {
            None => {
                let conn = builder.serve_connection(TokioIo::new(socket), service);
                let fut = graceful.watch(conn.into_owned());
                let state = state_for_errors.clone();
                tokio::spawn(
                    async move {
                        let _permit = permit;
                        if let Err(e) = fut.await {
                            note_conn_error(&state, peer, &*e);
                        }
                    }
                    .instrument(span),
                );
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let builder = builder.clone();
                let watcher = graceful.watcher();
                let state = state_for_errors.clone();
                tokio::spawn(
                    async move {
                        let _permit = permit;
                        let tls = match tokio::time::timeout(
                            Duration::from_secs(10),
                            acceptor.accept(socket),
                        )
                        .await
                        {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => return debug!(error = %e, "tls handshake failed"),
                            Err(_) => return debug!("tls handshake timed out"),
                        };
                        let conn = builder.serve_connection(TokioIo::new(tls), service);
                        if let Err(e) = watcher.watch(conn.into_owned()).await {
                            note_conn_error(&state, peer, &*e);
                        }
                    }
                    .instrument(span),
                );
            }
        }
    }
    // Held requests are answered when playlists end; give in-flight responses a moment.
    let _ = tokio::time::timeout(Duration::from_secs(5), graceful.shutdown()).await;
}

/// Counts a connection that ended in a header timeout (slowloris).
fn note_conn_error(
    state: &HttpState,
    peer: std::net::SocketAddr,
    e: &(dyn std::error::Error + 'static),
) {
    if is_header_timeout(e) {
        state.limit_hit("header_timeout", peer);
    }
    debug!(error = %e, "http connection ended");
}

fn with_common(mut resp: Response<Body>) -> Response<Body> {
    let h = resp.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Content-Length, Content-Range, Age, Date"),
    );
    resp
}

fn simple(status: StatusCode, cache: &'static str, body: impl Into<Body>) -> Response<Body> {
    let mut r = Response::new(body.into());
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn asset(cache: &'static str, content_type: &'static str, bytes: Bytes) -> Response<Body> {
    let mut r = simple(StatusCode::OK, cache, bytes);
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn not_found() -> Response<Body> {
    simple(StatusCode::NOT_FOUND, CACHE_ERROR, "not found\n")
}

async fn handle(
    state: &HttpState,
    req: Request<Incoming>,
    peer: std::net::SocketAddr,
    secure: bool,
) -> Response<Body> {
    let head = req.method() == Method::HEAD;
    let target_len = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    let resp = match *req.method() {
        _ if target_len > state.limits.max_url_bytes => {
            state.limit_hit("url_too_long", peer);
            simple(
                StatusCode::URI_TOO_LONG,
                CACHE_ERROR,
                "request target too long\n",
            )
        }
        Method::GET | Method::HEAD => route(state, &req, peer, secure).await,
        Method::OPTIONS => {
            let mut r = simple(StatusCode::NO_CONTENT, CACHE_NONE, Body::empty());
            let h = r.headers_mut();
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, HEAD, OPTIONS"),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("Range, Accept-Encoding, Origin, Accept"),
            );
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("86400"),
            );
            r
        }
        _ => {
            let mut r = simple(
                StatusCode::METHOD_NOT_ALLOWED,
                CACHE_ERROR,
                "method not allowed\n",
            );
            r.headers_mut().insert(
                header::ALLOW,
                HeaderValue::from_static("GET, HEAD, OPTIONS"),
            );
            r
        }
    };
    let mut resp = with_common(resp);
    if head {
        // Keep Content-Length, drop the body.
        let len = resp.body().size_hint().exact();
        *resp.body_mut() = Body::empty();
        if let Some(len) = len {
            resp.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        }
    }
    resp
}

/// A viewer session: the client (first `X-Forwarded-For` hop behind a CDN, else the peer
/// address) and its user agent.
fn viewer_session(req: &Request<Incoming>, peer: std::net::SocketAddr) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let forwarded = req
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(str::trim);
    match forwarded {
        Some(f) => f.hash(&mut h),
        None => peer.ip().hash(&mut h),
    }
    req.headers()
        .get(header::USER_AGENT)
        .map(HeaderValue::as_bytes)
        .hash(&mut h);
    h.finish()
}

async fn route(
    state: &HttpState,
    req: &Request<Incoming>,
    peer: std::net::SocketAddr,
    secure: bool,
) -> Response<Body> {
    let path = req.uri().path();
    if path == "/healthz" {
        return simple(StatusCode::OK, CACHE_ERROR, "ok\n");
    }
    if path == TIME_PATH {
        // The clock DASH players synchronise with (UTCTiming http-iso): never cached.
        let now = crate::playlist::format_pdt(crate::playlist::epoch_ms(SystemTime::now()));
        return simple(StatusCode::OK, CACHE_ERROR, now);
    }
    if state.player && path == crate::player::HLS_JS_PATH {
        return asset(
            CACHE_IMMUTABLE,
            "text/javascript; charset=utf-8",
            Bytes::from_static(crate::player::HLS_JS),
        );
    }
    let segs: Vec<&str> = path.split('/').collect();
    if let ["", "recordings", user, stream, id, file] = segs.as_slice() {
        let range = req.headers().get(header::RANGE);
        return recording(state, (user, stream, id, file), range).await;
    }
    let ["", app, user, stream, file] = segs.as_slice() else {
        return not_found();
    };
    let Ok(sp) = StreamPath::from_url_segments(app, user, stream) else {
        return not_found();
    };
    if file.is_empty() {
        // The page waits for a stream that is not live yet, so it is served either way.
        return match state.player {
            true => asset(
                CACHE_PAGE,
                "text/html; charset=utf-8",
                Bytes::from_static(crate::player::PAGE.as_bytes()),
            ),
            false => not_found(),
        };
    }
    let Some(os) = state.origin.get(&sp) else {
        if let Some(e) = state.origin.elsewhere()
            && let Some(resp) = e.forward(&sp, req.uri(), req.headers()).await
        {
            state
                .origin
                .metrics
                .request("proxied", resp.status().as_str());
            return resp;
        }
        state.origin.metrics.request("other", "not_found");
        return not_found();
    };
    os.saw_viewer(viewer_session(req, peer), std::time::Instant::now());
    let gzip = accepts_gzip(req);
    match *file {
        "index.m3u8" => multivariant(state, &os, gzip).await,
        MEDIA_PLAYLIST => media_playlist(state, &os, req.uri().query(), gzip).await,
        "index.mpd" => {
            let Some(mpd) = os.mpd(SystemTime::now(), time_url(req, secure)) else {
                state.origin.metrics.request("mpd", "not_found");
                return not_found();
            };
            state.origin.metrics.request("mpd", "ok");
            text_response(&mpd, "application/dash+xml", CACHE_NONE, gzip)
        }
        name => media(state, &os, name, req).await,
    }
}

/// A file of a recording.
async fn recording(
    state: &HttpState,
    (user, stream, id, file): (&str, &str, &str, &str),
    range: Option<&HeaderValue>,
) -> Response<Body> {
    let Some(files) = state.origin.recording_files() else {
        return not_found();
    };
    let Ok(sp) = StreamPath::from_url_segments("live", user, stream) else {
        return not_found();
    };
    let safe = |s: &str| !s.is_empty() && s != "." && s != ".." && !s.contains('\\');
    if !safe(id) || !safe(file) {
        return not_found();
    }
    let Some(f) = files.get(&sp, id, file, range).await else {
        state.origin.metrics.request("recording", "not_found");
        return not_found();
    };
    state.origin.metrics.request("recording", "ok");
    let mut r = Response::new(f.body);
    let cache = match f.range {
        Some(Served::Partial { start, end, len }) => {
            *r.status_mut() = StatusCode::PARTIAL_CONTENT;
            if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{len}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            if f.immutable {
                CACHE_IMMUTABLE
            } else {
                CACHE_NONE
            }
        }
        Some(Served::Unsatisfiable { len }) => {
            *r.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            CACHE_ERROR
        }
        None if f.immutable => CACHE_IMMUTABLE,
        None => CACHE_NONE,
    };
    let h = r.headers_mut();
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(f.content_type),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    r
}

/// The time endpoint's absolute URL as this client reaches the origin (through a CDN, its
/// host and `X-Forwarded-Proto`).
fn time_url(req: &Request<Incoming>, secure: bool) -> Option<String> {
    let host = req
        .uri()
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            req.headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        })?;
    if !host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b))
    {
        return None;
    }
    let forwarded = req
        .headers()
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(',')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    let scheme = match forwarded.as_deref() {
        Some("https") => "https",
        Some("http") => "http",
        _ if secure || req.uri().scheme_str() == Some("https") => "https",
        _ => "http",
    };
    Some(format!("{scheme}://{host}{TIME_PATH}"))
}

fn accepts_gzip(req: &Request<Incoming>) -> bool {
    req.headers()
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|enc| {
            let mut it = enc.trim().split(';');
            let name = it.next().unwrap_or("").trim();
            let q_zero = it.any(|p| p.trim().replace(' ', "") == "q=0");
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !q_zero
        })
}
