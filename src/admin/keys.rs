//! `/v1/keys`: create (the key is shown once, in the answer), list (never a secret), revoke
//! (at once, on every relay sharing the store).

use std::time::{Duration, UNIX_EPOCH};

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use relay::auth::key::{KeyRecord, KeySpec};
use serde::{Deserialize, Serialize};

use super::Shared;
use super::error::{ApiError, ApiResult};
use super::streams::{params, rfc3339};
use crate::auth::store::{self, StoreError};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateBody {
    user_id: String,
    #[serde(default)]
    stream_id: Option<String>,
    #[serde(default)]
    ttl_seconds: Option<u64>,
    #[serde(default)]
    allow_ips: Vec<String>,
    #[serde(default)]
    alias: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Created {
    key_id: String,
    key: String,
    expires_at: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyView {
    key_id: String,
    user_id: String,
    stream_id: Option<String>,
    alias: Option<String>,
    created_at: String,
    expires_at: String,
    allow_ips: Vec<String>,
}

#[derive(Serialize)]
pub struct KeyList {
    keys: Vec<KeyView>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListQuery {
    #[serde(default)]
    user_id: Option<String>,
}

fn at(secs: u64) -> String {
    rfc3339(UNIX_EPOCH + Duration::from_secs(secs))
}

impl From<KeyRecord> for KeyView {
    fn from(r: KeyRecord) -> Self {
        Self {
            key_id: r.key_id,
            user_id: r.user_id,
            stream_id: r.stream_id,
            alias: r.alias,
            created_at: at(r.created_at),
            expires_at: at(r.expires_at),
            allow_ips: r.allow_ips,
        }
    }
}

fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Invalid(e) => ApiError::invalid(e.to_string()),
        StoreError::AliasTaken(a) => {
            ApiError::invalid(format!("alias {a:?} is already used by another key"))
        }
        StoreError::NotFound => {
            ApiError::new(StatusCode::NOT_FOUND, "KEY_NOT_FOUND", "no such key")
        }
        e @ StoreError::Unavailable(_) => ApiError::store(&e),
    }
}

pub async fn create(
    State(state): State<Shared>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Created>)> {
    let b: CreateBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::invalid(format!(
            "body must be {{\"userId\",\"streamId\"?,\"ttlSeconds\"?,\"allowIps\"?,\"alias\"?}}: {e}"
        ))
    })?;
    let spec = KeySpec {
        user_id: b.user_id,
        stream_id: b.stream_id,
        ttl_s: b.ttl_seconds,
        allow_ips: b.allow_ips,
        alias: b.alias,
    };
    let new = store::create(state.keys.as_ref(), &spec)
        .await
        .map_err(store_error)?;
    tracing::info!(key = %new.record.key_id, user = %new.record.user_id, "stream key created");
    Ok((
        StatusCode::CREATED,
        Json(Created {
            key_id: new.record.key_id,
            key: new.key,
            expires_at: at(new.record.expires_at),
        }),
    ))
}

pub async fn list(
    State(state): State<Shared>,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<KeyList>> {
    let Query(q) = q.map_err(|e| ApiError::invalid(e.to_string()))?;
    let keys = state.keys.list().await.map_err(store_error)?;
    Ok(Json(KeyList {
        keys: keys
            .into_iter()
            .filter(|k| q.user_id.as_ref().is_none_or(|u| *u == k.user_id))
            .map(KeyView::from)
            .collect(),
    }))
}

pub async fn revoke(
    State(state): State<Shared>,
    p: Result<Path<String>, PathRejection>,
) -> ApiResult<StatusCode> {
    let key_id = params(p)?;
    state.keys.revoke(&key_id).await.map_err(store_error)?;
    tracing::info!(key = %key_id, "stream key revoked");
    Ok(StatusCode::NO_CONTENT)
}
