//! `/v1/streams`: the live streams (and those in their reconnect grace period), the recently
//! ended ones on request, one stream, and kicking a publisher.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use relay::path::StreamPath;
use relay::registry::{Registry, Stream};
use serde::{Deserialize, Serialize};

use super::Shared;
use super::error::{ApiError, ApiResult};
use super::outputs::{OutputView, outputs_of};

/// One stream as the API shows it.
#[derive(Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct StreamView {
    user_id: String,
    stream_id: String,
    /// `live` (a publisher is connected), `reconnecting` (grace period) or `ended`.
    state: &'static str,
    started_at: String,
    /// When the stream ended (only for `ended`).
    ended_at: Option<String>,
    client_ip: Option<String>,
    /// Publisher reconnects within this stream.
    reconnects: u64,
    bytes_in: u64,
    /// Ingest bits per second over about the last five seconds.
    bitrate: u64,
    video: Option<VideoView>,
    audio: Option<AudioView>,
    parts: Option<PartsView>,
    viewers: u64,
    hls_url: String,
    dash_url: String,
    outputs: Vec<OutputView>,
    delivery: DeliveryInfo,
}

/// The video track as published.
#[derive(Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct VideoView {
    /// RFC 6381 (`avc1.64001f`).
    codec: String,
    width: u32,
    height: u32,
    /// Measured over the playlist's segments.
    frame_rate: Option<f64>,
}

/// The audio track as published.
#[derive(Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct AudioView {
    codec: String,
    sample_rate: u32,
    channels: u8,
}

/// How the LL-HLS parts come: the configured target and the recent parts' mean and longest.
#[derive(Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct PartsView {
    target_ms: u64,
    mean_ms: Option<f64>,
    max_ms: Option<f64>,
}

/// Who serves the stream's viewers, and the managed platform's side when one is involved.
#[derive(Serialize, Clone)]
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

fn media_of(state: &Shared, path: &StreamPath) -> MediaViews {
    let Some(sum) = state.origin.get(path).map(|os| os.summary()) else {
        return (None, None, None);
    };
    let ms = |d: Duration| (d.as_secs_f64() * 10_000.0).round() / 10.0;
    (
        sum.video.map(|v| VideoView {
            codec: v.codec_string(),
            width: v.width,
            height: v.height,
            frame_rate: sum.frame_rate.map(|f| (f * 100.0).round() / 100.0),
        }),
        sum.audio.map(|a| AudioView {
            codec: a.codec_string(),
            sample_rate: a.sample_rate,
            channels: a.channels,
        }),
        Some(PartsView {
            target_ms: sum.part_target.as_millis() as u64,
            mean_ms: sum.part_mean.map(ms),
            max_ms: sum.part_max.map(ms),
        }),
    )
}

type MediaViews = (Option<VideoView>, Option<AudioView>, Option<PartsView>);

fn view(state: &Shared, s: &Stream) -> StreamView {
    let base = format!("{}/{}", state.public_url, s.path.url_path());
    let (video, audio, parts) = media_of(state, &s.path);
    StreamView {
        user_id: s.path.user_id.clone(),
        stream_id: s.path.stream_id.clone(),
        state: if s.is_publishing() {
            "live"
        } else {
            "reconnecting"
        },
        started_at: rfc3339(s.started_at),
        ended_at: None,
        client_ip: s.client_ip().map(|ip| ip.to_string()),
        reconnects: s.publishes().saturating_sub(1),
        bytes_in: s.bytes_in(),
        bitrate: s.ingest_bitrate(Instant::now()),
        video,
        audio,
        parts,
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

/// Streams that ended in the last hour (at most [`ENDED_KEPT`]), newest first, as they were
/// when they ended.
#[derive(Default)]
pub struct EndedStreams {
    views: Mutex<VecDeque<(Instant, StreamView)>>,
}

/// How many ended streams `?ended=true` lists at most, and for how long.
pub const ENDED_KEPT: usize = 100;
const ENDED_FOR: Duration = Duration::from_secs(3600);

impl EndedStreams {
    /// Remembers every stream of `registry` as it ends.
    pub fn attach(state: &Shared, registry: &Registry) {
        let weak = Arc::downgrade(state);
        registry.on_stream_ended(move |s| {
            let Some(state) = weak.upgrade() else { return };
            let mut v = view(&state, s);
            v.state = "ended";
            v.ended_at = Some(rfc3339(SystemTime::now()));
            (v.bitrate, v.viewers) = (0, 0);
            let mut views = state.ended.lock();
            views.push_front((Instant::now(), v));
            views.truncate(ENDED_KEPT);
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(Instant, StreamView)>> {
        self.views.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn recent(&self, now: Instant) -> Vec<StreamView> {
        let mut views = self.lock();
        views.retain(|(t, _)| now.saturating_duration_since(*t) < ENDED_FOR);
        views.iter().map(|(_, v)| v.clone()).collect()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Also list the streams that ended recently.
    #[serde(default)]
    ended: bool,
}

pub async fn list(
    State(state): State<Shared>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult<Json<StreamList>> {
    let Query(q) = q.map_err(|e| ApiError::invalid(format!("bad query: {e}")))?;
    let mut streams: Vec<StreamView> = state
        .registry
        .list()
        .iter()
        .map(|s| view(&state, s))
        .collect();
    if q.ended {
        streams.extend(state.ended.recent(Instant::now()));
    }
    Ok(Json(StreamList { streams }))
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
