//! The admin listener (`admin.listen`): `/healthz`, `/metrics`, the console at `/`
//! ([`console`]) and the management API under `/v1` (CONTRACTS.md), never on the
//! viewer-facing listener. The API needs
//! `Authorization: Bearer <admin.token>`; with no token configured it answers only when this
//! listener is on loopback.

mod console;
mod error;
mod fleet;
mod keys;
mod outputs;
mod recordings;
mod streams;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use origin::packager::Origin;
use relay::registry::Registry;
use relay::restream::restreamer::Restreamer;
use subtle::ConstantTimeEq as _;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::auth::store::KeyStore;
use error::ApiError;
pub use outputs::ApiOutputs;
pub use streams::EndedStreams;

/// The OpenAPI 3.1 document of `/v1`, served at `/v1/openapi.json`.
pub const OPENAPI: &str = include_str!("openapi.json");

/// What the admin handlers need.
pub struct AdminState {
    pub registry: Arc<Registry>,
    pub origin: Arc<Origin>,
    pub restreamer: Arc<Restreamer>,
    pub outputs: Arc<ApiOutputs>,
    pub keys: Arc<dyn KeyStore>,
    pub metrics: Arc<prometheus_client::registry::Registry>,
    /// Bearer token of the API.
    pub token: Option<String>,
    /// True when the listener is on a loopback address.
    pub loopback: bool,
    /// Base of playback URLs (no trailing slash).
    pub public_url: String,
    /// Each stream's delivery (mode, platform URLs).
    pub deliveries: Arc<crate::managed::shell::Deliveries>,
    /// The recordings (when recording runs).
    pub recordings: Option<Arc<crate::record::Recording>>,
    /// Hosts apps may add outputs to (`.example.com` matches subdomains); empty = any.
    pub allowed_hosts: Vec<String>,
    /// Streams that ended recently (`GET /v1/streams?ended=true`).
    pub ended: streams::EndedStreams,
    /// What `GET /v1/info` tells.
    pub info: RelayInfo,
    /// This node as placement describes it.
    pub node: crate::fleet::placement::NodeInfo,
    /// The fleet, with `fleet.redis_url`.
    pub fleet: Option<Arc<crate::fleet::Fleet>>,
    /// Where a drain request goes.
    pub drain: Arc<crate::fleet::Drain>,
}

/// What the relay is and which features are on (`GET /v1/info`), for the console and
/// scripts; never a secret.
#[derive(serde::Serialize, Clone, Default)]
#[serde(rename_all = "camelCase")]
pub struct RelayInfo {
    pub version: &'static str,
    /// `open`, `keys`, `token` or `callback`.
    pub auth_mode: &'static str,
    /// Whether recording can happen (configured, or the cloud may ask for it).
    pub recording: bool,
    /// Whether the public player page is served (`http.player`).
    pub player: bool,
    /// Base of playback URLs.
    pub public_url: String,
    /// Where publishers connect (`rtmp://ADDR/live/{userId}/{streamId}`).
    pub rtmp_url: String,
    pub rtmps_url: Option<String>,
}

type Shared = Arc<AdminState>;

/// The admin routes.
pub fn router(state: Shared) -> Router {
    let api = Router::new()
        .route("/streams", get(streams::list))
        .route(
            "/streams/{user_id}/{stream_id}",
            get(streams::get_one).delete(streams::kick),
        )
        .route(
            "/streams/{user_id}/{stream_id}/outputs",
            get(outputs::list).post(outputs::add),
        )
        .route(
            "/streams/{user_id}/{stream_id}/outputs/{output_id}",
            delete(outputs::remove),
        )
        .route("/info", get(info))
        .route("/placement/{user_id}/{stream_id}", get(fleet::placement))
        .route("/nodes", get(fleet::nodes))
        .route("/node/drain", axum::routing::post(fleet::drain))
        .route("/keys", get(keys::list).post(keys::create))
        .route("/keys/{key_id}", delete(keys::revoke))
        .route("/recordings", get(recordings::list))
        .route(
            "/recordings/{recording_id}",
            get(recordings::get_one).delete(recordings::delete),
        )
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "no such API endpoint")
        })
        .route_layer(middleware::from_fn_with_state(state.clone(), bearer));
    console::router()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/v1/openapi.json", get(openapi))
        .nest("/v1", api)
        .with_state(state)
}

/// Serves the admin routes until `shutdown`.
pub async fn serve(listener: TcpListener, state: Shared, shutdown: CancellationToken) {
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
    {
        tracing::warn!(error = %e, "admin listener stopped");
    }
}

async fn bearer(State(state): State<Shared>, req: Request, next: Next) -> Response {
    match &state.token {
        Some(token) => {
            let presented = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or("");
            let ok: bool = presented.as_bytes().ct_eq(token.as_bytes()).into();
            if !ok {
                let mut r = ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "UNAUTHORIZED",
                    "missing or wrong bearer token",
                )
                .into_response();
                r.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                return r;
            }
        }
        None if !state.loopback => {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "NOT_AUTHORIZED",
                "the management API needs admin.token when the admin listener is not on loopback",
            )
            .into_response();
        }
        None => {}
    }
    next.run(req).await
}

async fn metrics(State(state): State<Shared>) -> Response {
    let mut text = String::new();
    if prometheus_client::encoding::text::encode(&mut text, &state.metrics).is_err() {
        return (StatusCode::INTERNAL_SERVER_ERROR, "metrics\n").into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn info(State(state): State<Shared>) -> axum::Json<RelayInfo> {
    axum::Json(state.info.clone())
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use tower::ServiceExt as _;

    fn state(token: Option<&str>, loopback: bool, dir: &std::path::Path) -> Shared {
        let push = relay::restream::pusher::PushConfig::new(&[]).unwrap();
        let origin = Origin::new(Default::default(), Default::default());
        let restreamer = Restreamer::new(push, vec![], tokio_util::task::TaskTracker::new(), 0);
        Arc::new(AdminState {
            registry: Registry::new(std::time::Duration::from_secs(1)),
            deliveries: crate::managed::shell::Deliveries::new(
                Default::default(),
                Default::default(),
                restreamer.clone(),
                origin.clone(),
                "http://127.0.0.1:8888".into(),
                None,
                tokio_util::task::TaskTracker::new(),
            ),
            origin,
            restreamer,
            outputs: Arc::default(),
            keys: Arc::new(crate::auth::file_store::FileStore::open(&dir.join("k.json")).unwrap()),
            metrics: Arc::default(),
            token: token.map(String::from),
            loopback,
            public_url: "http://127.0.0.1:8888".into(),
            allowed_hosts: vec![],
            recordings: None,
            ended: Default::default(),
            info: Default::default(),
            node: crate::fleet::placement::NodeInfo {
                id: "n1".into(),
                rtmp_url: "rtmp://127.0.0.1:1935".into(),
                rtmps_url: None,
                http_url: "http://127.0.0.1:8888".into(),
                state: crate::fleet::placement::NodeState::Active,
                max_streams: 0,
                streams: 0,
                ingest_bps: 0,
                viewers: 0,
            },
            fleet: None,
            drain: Default::default(),
        })
    }

    async fn status(state: Shared, path: &str, auth: Option<&str>) -> (u16, String) {
        let mut req = axum::http::Request::get(path);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let resp = router(state)
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let code = resp.status().as_u16();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (code, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn who_may_use_the_api() {
        let dir = tempfile::tempdir().unwrap();
        // No token on a public listener: the API refuses, metrics and health still answer.
        let open_public = state(None, false, dir.path());
        let (code, body) = status(open_public.clone(), "/v1/streams", None).await;
        assert_eq!(code, 403);
        assert!(body.contains("NOT_AUTHORIZED"), "{body}");
        assert_eq!(status(open_public.clone(), "/metrics", None).await.0, 200);
        assert_eq!(status(open_public, "/healthz", None).await.0, 200);
        // No token on loopback: allowed.
        assert_eq!(
            status(state(None, true, dir.path()), "/v1/streams", None)
                .await
                .0,
            200
        );
        // A token: required everywhere, compared exactly.
        let tok = state(Some("s3cret"), false, dir.path());
        assert_eq!(status(tok.clone(), "/v1/streams", None).await.0, 401);
        assert_eq!(
            status(tok.clone(), "/v1/streams", Some("Bearer s3cre"))
                .await
                .0,
            401
        );
        assert_eq!(
            status(tok.clone(), "/v1/streams", Some("Bearer s3cret!"))
                .await
                .0,
            401
        );
        assert_eq!(
            status(tok.clone(), "/v1/streams", Some("s3cret")).await.0,
            401
        );
        assert_eq!(
            status(tok.clone(), "/v1/streams", Some("Bearer s3cret"))
                .await
                .0,
            200
        );
        // Unknown API paths answer in the API's error shape, after the token check.
        let (code, body) = status(tok, "/v1/nope", Some("Bearer s3cret")).await;
        assert_eq!(code, 404);
        assert!(body.contains("NOT_FOUND"), "{body}");
    }

    #[test]
    fn the_openapi_document_lists_every_route() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        for (path, methods) in [
            ("/v1/streams", &["get"][..]),
            ("/v1/streams/{userId}/{streamId}", &["get", "delete"]),
            ("/v1/streams/{userId}/{streamId}/outputs", &["get", "post"]),
            (
                "/v1/streams/{userId}/{streamId}/outputs/{outputId}",
                &["delete"],
            ),
            ("/v1/info", &["get"]),
            ("/v1/keys", &["get", "post"]),
            ("/v1/keys/{keyId}", &["delete"]),
            ("/v1/recordings", &["get"]),
            ("/v1/recordings/{recordingId}", &["get", "delete"]),
            ("/v1/placement/{userId}/{streamId}", &["get"]),
            ("/v1/nodes", &["get"]),
            ("/v1/node/drain", &["post"]),
        ] {
            for m in methods {
                assert!(doc["paths"][path][m].is_object(), "{m} {path} undocumented");
            }
        }
    }
}
