//! `/v1/streams`: the live streams (and those in their reconnect grace period), one stream,
//! and kicking a publisher.

use std::time::{Duration, Instant, SystemTime};

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use relay::path::StreamPath;
use relay::registry::Stream;
use serde::Serialize;

use super::Shared;
use super::error::{ApiError, ApiResult};
use super::outputs::{OutputView, outputs_of};

/// One stream as the API shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamView {
    user_id: String,
    stream_id: String,
    /// `live` (a publisher is connected) or `reconnecting` (grace period).
    state: &'static str,
    started_at: String,
    client_ip: Option<String>,
    /// Publisher reconnects within this stream.
    reconnects: u64,
    bytes_in: u64,
    viewers: u64,
    hls_url: String,
    dash_url: String,
    outputs: Vec<OutputView>,
    delivery: DeliveryInfo,
}

/// Who serves the stream's viewers, and the managed platform's side when one is involved.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryInfo {
    /// `self`, `cloudflare`, `ivs` or `ab`.
    mode: &'static str,
    /// What serves viewers now: `self`, a platform, `ab`, or `none`.
    serving: &'static str,
    platform: Option<&'static str>,
    /// `connecting`, `active`, `error` or `stopped`.
    platform_status: Option<&'static str>,
    platform_hls_url: Option<String>,
    platform_dash_url: Option<String>,
    platform_viewers: Option<u64>,
    /// The pusher forwarding to the platform's ingest (`connecting`, `active`, …).
    forward_status: Option<String>,
    error: Option<String>,
}

fn delivery_of(state: &Shared, path: &StreamPath) -> DeliveryInfo {
    let v = state.deliveries.view(path);
    let platform = v.as_ref().and_then(|v| v.platform);
    let playback = v.as_ref().and_then(|v| v.playback.clone());
    DeliveryInfo {
        mode: v.as_ref().map_or("self", |v| v.mode.word()),
        serving: v.as_ref().map_or("self", |v| v.serving()),
        platform: platform.map(|p| p.word()),
        platform_status: v
            .as_ref()
            .filter(|_| platform.is_some())
            .map(|v| v.platform_status()),
        platform_hls_url: playback.as_ref().map(|p| p.hls.clone()),
        platform_dash_url: playback.and_then(|p| p.dash),
        platform_viewers: v.as_ref().and_then(|v| v.viewers),
        forward_status: state
            .restreamer
            .forward_status(path)
            .map(|s| s.state.status().to_string()),
        error: v.and_then(|v| v.error),
    }
}

#[derive(Serialize)]
pub struct StreamList {
    streams: Vec<StreamView>,
}

pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Turns a path-extraction failure into the contract's error.
pub fn params<T>(p: Result<Path<T>, PathRejection>) -> ApiResult<T> {
    p.map(|Path(t)| t)
        .map_err(|e| ApiError::invalid(format!("bad path: {e}")))
}

fn view(state: &Shared, s: &Stream) -> StreamView {
    let base = format!("{}/{}", state.public_url, s.path.url_path());
    StreamView {
        user_id: s.path.user_id.clone(),
        stream_id: s.path.stream_id.clone(),
        state: if s.is_publishing() {
            "live"
        } else {
            "reconnecting"
        },
        started_at: rfc3339(s.started_at),
        client_ip: s.client_ip().map(|ip| ip.to_string()),
        reconnects: s.publishes().saturating_sub(1),
        bytes_in: s.bytes_in(),
        viewers: state
            .origin
            .get(&s.path)
            .map_or(0, |os| os.viewers(Instant::now(), Duration::from_secs(30))),
        hls_url: format!("{base}/index.m3u8"),
        dash_url: format!("{base}/index.mpd"),
        outputs: outputs_of(state, &s.path),
        delivery: delivery_of(state, &s.path),
    }
}

/// The live stream at `user_id`/`stream_id`.
pub fn find(
    state: &Shared,
    (user_id, stream_id): (String, String),
) -> ApiResult<std::sync::Arc<Stream>> {
    state
        .registry
        .get(&StreamPath { user_id, stream_id })
        .ok_or_else(ApiError::stream_not_found)
}

pub async fn list(State(state): State<Shared>) -> Json<StreamList> {
    let streams = state
        .registry
        .list()
        .iter()
        .map(|s| view(&state, s))
        .collect();
    Json(StreamList { streams })
}

pub async fn get_one(
    State(state): State<Shared>,
    p: Result<Path<(String, String)>, PathRejection>,
) -> ApiResult<Json<StreamView>> {
    let s = find(&state, params(p)?)?;
    Ok(Json(view(&state, &s)))
}

/// Ends the stream now: the publisher is disconnected and the playlists end.
pub async fn kick(
    State(state): State<Shared>,
    p: Result<Path<(String, String)>, PathRejection>,
) -> ApiResult<StatusCode> {
    let s = find(&state, params(p)?)?;
    tracing::info!(stream = %s.path, "stream ended through the management API");
    state.registry.end(&s);
    Ok(StatusCode::NO_CONTENT)
}
