//! `/v1/recordings`: list (optionally of a user or a stream), get and delete recordings
//! (locally and in object storage). A live recording cannot be deleted.

use std::time::{Duration, UNIX_EPOCH};

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::Shared;
use super::error::{ApiError, ApiResult};
use super::streams::{params, rfc3339};
use crate::record::catalog::{Info, State as RecState};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordingView {
    recording_id: String,
    user_id: String,
    stream_id: String,
    started_at: String,
    duration_s: f64,
    state: &'static str,
    hls_url: String,
    dash_url: String,
    mp4_url: String,
}

#[derive(Serialize)]
pub struct RecordingList {
    recordings: Vec<RecordingView>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListQuery {
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    stream_id: Option<String>,
}

fn view(state: &Shared, i: Info) -> RecordingView {
    let urls = i.urls(&state.public_url);
    RecordingView {
        started_at: rfc3339(UNIX_EPOCH + Duration::from_millis(i.started_ms.max(0) as u64)),
        duration_s: (i.duration_s * 1000.0).round() / 1000.0,
        state: i.state.as_str(),
        hls_url: urls.hls,
        dash_url: urls.dash,
        mp4_url: urls.mp4,
        recording_id: i.id,
        user_id: i.path.user_id,
        stream_id: i.path.stream_id,
    }
}

fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "RECORDING_NOT_FOUND",
        "no such recording",
    )
}

pub async fn list(
    State(state): State<Shared>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult<Json<RecordingList>> {
    let Query(q) = q.map_err(|e| ApiError::invalid(e.to_string()))?;
    let recordings = match &state.recordings {
        Some(r) => r
            .catalog
            .list(q.user_id.as_deref(), q.stream_id.as_deref())
            .into_iter()
            .map(|i| view(&state, i))
            .collect(),
        None => Vec::new(),
    };
    Ok(Json(RecordingList { recordings }))
}

pub async fn get_one(
    State(state): State<Shared>,
    p: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<RecordingView>> {
    let id = params(p)?;
    let info = state
        .recordings
        .as_ref()
        .and_then(|r| r.catalog.get(&id))
        .ok_or_else(not_found)?;
    Ok(Json(view(&state, info)))
}

pub async fn delete(
    State(state): State<Shared>,
    p: Result<Path<String>, PathRejection>,
) -> ApiResult<StatusCode> {
    let id = params(p)?;
    let r = state.recordings.as_ref().ok_or_else(not_found)?;
    let info = r.catalog.get(&id).ok_or_else(not_found)?;
    if info.state == RecState::Recording {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "RECORDING_LIVE",
            "the recording's broadcast is live: end it first",
        ));
    }
    match r.store.delete(&r.catalog, &id).await {
        Ok(true) => {
            tracing::info!(recording = %id, stream = %info.path, "recording deleted");
            Ok(StatusCode::NO_CONTENT)
        }
        Ok(false) => Err(not_found()),
        Err(e) => {
            tracing::warn!(recording = %id, error = format!("{e:#}"), "deleting a recording failed");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "STORE_UNAVAILABLE",
                format!("the recording could not be deleted everywhere: {e:#}"),
            ))
        }
    }
}
