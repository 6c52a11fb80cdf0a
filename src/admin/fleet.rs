//! `/v1/placement/{userId}/{streamId}` (where a publisher should connect), `/v1/nodes` (the
//! fleet as this node last read it) and `POST /v1/node/drain`. Without a fleet, placement
//! answers with this node and the fleet is this node alone.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use relay::path::StreamPath;
use serde::Serialize;

use super::Shared;
use super::error::{ApiError, ApiResult};
use super::streams::params;
use crate::fleet::placement::NodeInfo;

/// The contract's placement answer.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    node_id: String,
    rtmp_url: String,
    rtmps_url: Option<String>,
}

pub async fn placement(
    State(state): State<Shared>,
    p: Result<Path<(String, String)>, PathRejection>,
) -> ApiResult<Json<Placement>> {
    let (user_id, stream_id) = params(p)?;
    let path = StreamPath { user_id, stream_id };
    let node = match &state.fleet {
        Some(f) => f.place(&path).await,
        None => {
            Some(state.node.clone()).filter(|n| n.takes_streams() && !state.drain.is_requested())
        }
    }
    .ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "NO_NODE_AVAILABLE",
            "no node takes new streams now (all draining or full)",
        )
    })?;
    let tail = path.url_path();
    Ok(Json(Placement {
        node_id: node.id,
        rtmp_url: format!("{}/{tail}", node.rtmp_url),
        rtmps_url: node.rtmps_url.map(|u| format!("{u}/{tail}")),
    }))
}

#[derive(Serialize)]
pub struct Nodes {
    nodes: Vec<NodeInfo>,
}

pub async fn nodes(State(state): State<Shared>) -> Json<Nodes> {
    let mut nodes = match &state.fleet {
        Some(f) => f.nodes(),
        None => vec![state.node.clone()],
    };
    nodes.sort_by(|a, b| a.id.cmp(&b.id));
    Json(Nodes { nodes })
}

pub async fn drain(State(state): State<Shared>) -> StatusCode {
    state.drain.request(state.fleet.as_ref());
    StatusCode::ACCEPTED
}
