//! `/v1/streams/{userId}/{streamId}/outputs`: restream outputs that apps add and remove, with
//! the rules of `seeds/000_*`: at most 10 outputs per stream and 10 per app on a stream, no
//! duplicate URL, only rtmp/rtmps, and only the app that added an output may remove it.
//! Outputs are merged with the static rules and the cloud's list by the restreamer; the list
//! shows all of them (`addedBy` is the app, `cloud` or `config`). URLs always come back with
//! the stream key masked.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use relay::path::StreamPath;
use relay::registry::Registry;
use relay::restream::destination::Destination;
use relay::restream::restreamer::DestinationSpec;
use serde::{Deserialize, Serialize};

use super::Shared;
use super::error::{ApiError, ApiResult};
use super::streams::{find, params};

pub const MAX_PER_STREAM: usize = 10;
pub const MAX_PER_APP: usize = 10;

/// An output added through the API.
#[derive(Debug, Clone)]
struct ApiOutput {
    output_id: String,
    spec: DestinationSpec,
    added_by: String,
}

/// The API's outputs of every live stream. Forgotten when the stream ends.
#[derive(Debug, Default)]
pub struct ApiOutputs {
    by_stream: Mutex<HashMap<StreamPath, Vec<ApiOutput>>>,
}

impl ApiOutputs {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<StreamPath, Vec<ApiOutput>>> {
        self.by_stream.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets a stream's outputs when it ends.
    pub fn attach(self: &std::sync::Arc<Self>, registry: &Registry) {
        let me = std::sync::Arc::downgrade(self);
        registry.on_stream_ended(move |s| {
            if let Some(me) = me.upgrade() {
                me.lock().remove(&s.path);
            }
        });
    }
}

/// One output in a list (key masked).
#[derive(Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct OutputView {
    output_id: String,
    url: String,
    name: String,
    added_by: String,
    status: String,
    error: Option<String>,
    /// Bytes written to the destination, over every connection.
    bytes_sent: u64,
    /// Media messages dropped because the destination was slower than the stream.
    dropped: u64,
    reconnects: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputList {
    stream_id: String,
    outputs: Vec<OutputView>,
    total: usize,
    max_per_stream: usize,
    max_per_app: usize,
}

#[derive(Deserialize)]
struct AddBody {
    url: String,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Added {
    output_id: String,
}

/// Every destination of `path` with its status and who added it.
pub fn outputs_of(state: &Shared, path: &StreamPath) -> Vec<OutputView> {
    let api = state.outputs.lock().get(path).cloned().unwrap_or_default();
    let config: Vec<String> = state
        .restreamer
        .static_for(path)
        .iter()
        .filter_map(|d| Destination::parse(&d.url).ok().map(|d| d.id()))
        .collect();
    state
        .restreamer
        .statuses(path)
        .into_iter()
        .map(|s| {
            let added_by = match api.iter().find(|o| o.output_id == s.id) {
                Some(o) => o.added_by.clone(),
                None if config.contains(&s.id) => "config".into(),
                None => "cloud".into(),
            };
            OutputView {
                output_id: s.id.clone(),
                url: s.masked_url.clone(),
                name: s.name.clone(),
                added_by,
                status: s.state.status().into(),
                error: s.last_error.clone(),
                bytes_sent: s.bytes_sent,
                dropped: s.dropped,
                reconnects: s.reconnects,
            }
        })
        .collect()
}

/// True when `host` is in `allowed` (an entry `.example.com` matches its subdomains), or
/// `allowed` is empty. Keeps apps from pointing the relay at internal addresses.
fn host_allowed(allowed: &[String], host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    allowed.is_empty()
        || allowed.iter().any(|a| match a.strip_prefix('.') {
            Some(suffix) => host.ends_with(&format!(".{suffix}")),
            None => *a == host,
        })
}

/// The app named by `X-Package-Name`.
fn package(headers: &HeaderMap) -> ApiResult<String> {
    headers
        .get("x-package-name")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= 256)
        .map(String::from)
        .ok_or_else(|| ApiError::invalid("the X-Package-Name header names the app"))
}

pub async fn list(
    State(state): State<Shared>,
    p: Result<Path<(String, String)>, PathRejection>,
) -> ApiResult<Json<OutputList>> {
    let s = find(&state, params(p)?)?;
    let outputs = outputs_of(&state, &s.path);
    Ok(Json(OutputList {
        stream_id: s.path.stream_id.clone(),
        total: outputs.len(),
        outputs,
        max_per_stream: MAX_PER_STREAM,
        max_per_app: MAX_PER_APP,
    }))
}

pub async fn add(
    State(state): State<Shared>,
    p: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Added>)> {
    let stream = find(&state, params(p)?)?;
    let app = package(&headers)?;
    let body: AddBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid(format!("body must be {{\"url\",\"name\"}}: {e}")))?;
    let dest = Destination::parse(&body.url).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_URL",
            format!("{e} (must be rtmp:// or rtmps://)"),
        )
    })?;
    if !host_allowed(&state.allowed_hosts, &dest.host) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_URL",
            "this relay does not restream to that host (restream.allowed_hosts)",
        ));
    }
    let name = body
        .name
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| dest.host.clone());
    if name.len() > 200 {
        return Err(ApiError::invalid("name is longer than 200 bytes"));
    }
    let output_id = dest.id();
    let mut all = state.outputs.lock();
    let mine = all.entry(stream.path.clone()).or_default();
    let wanted = state.restreamer.wanted(&stream.path);
    if wanted.iter().any(|d| d.url == body.url) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "DUPLICATE_URL",
            "this RTMP URL is already an output of the stream",
        ));
    }
    // The app's own limit first, so both limits can be met even though they are equal.
    if mine.iter().filter(|o| o.added_by == app).count() >= MAX_PER_APP {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "MAX_APP_OUTPUTS_REACHED",
            format!("your app has reached the maximum of {MAX_PER_APP} outputs on this stream"),
        ));
    }
    if wanted.len() >= MAX_PER_STREAM {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "MAX_OUTPUTS_REACHED",
            format!("the stream has reached the maximum of {MAX_PER_STREAM} outputs"),
        ));
    }
    mine.push(ApiOutput {
        output_id: output_id.clone(),
        spec: DestinationSpec {
            name: name.clone(),
            url: body.url,
        },
        added_by: app.clone(),
    });
    let specs: Vec<DestinationSpec> = mine.iter().map(|o| o.spec.clone()).collect();
    // Applied under the lock so two concurrent adds cannot both pass the limits.
    state.restreamer.set_extra_destinations(&stream, specs);
    drop(all);
    tracing::info!(stream = %stream.path, app = %app, destination = %name, output = %output_id, "output added");
    Ok((StatusCode::CREATED, Json(Added { output_id })))
}

pub async fn remove(
    State(state): State<Shared>,
    p: Result<Path<(String, String, String)>, PathRejection>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    let (user_id, stream_id, output_id) = params(p)?;
    let stream = find(&state, (user_id, stream_id))?;
    let app = package(&headers)?;
    let mut all = state.outputs.lock();
    let mine = all.entry(stream.path.clone()).or_default();
    let Some(i) = mine.iter().position(|o| o.output_id == output_id) else {
        drop(all);
        let exists = state
            .restreamer
            .statuses(&stream.path)
            .iter()
            .any(|s| s.id == output_id);
        return Err(if exists {
            ApiError::new(
                StatusCode::FORBIDDEN,
                "NOT_AUTHORIZED",
                "this output comes from the relay's configuration or the cloud, not from an app",
            )
        } else {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "OUTPUT_NOT_FOUND",
                "the stream has no output with this id",
            )
        });
    };
    if mine[i].added_by != app {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "NOT_AUTHORIZED",
            "you can only remove outputs that your app added",
        ));
    }
    mine.remove(i);
    let specs: Vec<DestinationSpec> = mine.iter().map(|o| o.spec.clone()).collect();
    state.restreamer.set_extra_destinations(&stream, specs);
    drop(all);
    tracing::info!(stream = %stream.path, app = %app, output = %output_id, "output removed");
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    #[test]
    fn allowed_hosts() {
        let a = vec![".youtube.com".to_string(), "live.twitch.tv".to_string()];
        assert!(super::host_allowed(&a, "a.rtmp.YouTube.com"));
        assert!(super::host_allowed(&a, "live.twitch.tv"));
        assert!(!super::host_allowed(&a, "youtube.com.evil.example"));
        assert!(!super::host_allowed(&a, "10.0.0.1"));
        assert!(super::host_allowed(&[], "anything"));
    }
}
