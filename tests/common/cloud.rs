//! A fake MentraOS cloud (the control plane) on a free loopback port.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub auth: Option<String>,
    pub signature: Option<String>,
    pub body: Bytes,
}

/// The MentraOS cloud as CONTRACTS.md describes it: answers destination polls from
/// `destinations` (404 when there are none and no `directives`), records every call.
#[derive(Default)]
pub struct FakeCloud {
    pub calls: Mutex<Vec<Call>>,
    /// `(name, url)`.
    pub destinations: Mutex<Vec<(String, String)>>,
    /// Extra top-level fields of the destinations answer (`{"mode":"cloudflare"}`).
    pub directives: Mutex<serde_json::Map<String, serde_json::Value>>,
    pub fail_posts: AtomicBool,
}

impl FakeCloud {
    pub async fn start() -> (Arc<Self>, String) {
        let me = Arc::new(Self::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let cloud = me.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let cloud = cloud.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let cloud = cloud.clone();
                        async move { Ok::<_, Infallible>(cloud.handle(req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(socket), svc)
                        .await;
                });
            }
        });
        (me, url)
    }

    async fn handle(
        &self,
        req: hyper::Request<hyper::body::Incoming>,
    ) -> hyper::Response<Full<Bytes>> {
        let header = |n: &str| {
            req.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let (method, path) = (req.method().to_string(), req.uri().path().to_string());
        let (auth, signature) = (header("authorization"), header("x-glasscast-signature"));
        let body = req.into_body().collect().await.unwrap().to_bytes();
        self.calls.lock().unwrap().push(Call {
            method: method.clone(),
            path: path.clone(),
            auth,
            signature,
            body,
        });
        let reply = |status: u16, body: String| {
            hyper::Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body)))
                .unwrap()
        };
        if method == "GET" && path.starts_with("/api/rtmp-relay/restream-destinations/") {
            let d = self.destinations.lock().unwrap().clone();
            let mut answer = self.directives.lock().unwrap().clone();
            if d.is_empty() && answer.is_empty() {
                return reply(404, "{}".into());
            }
            let list: Vec<serde_json::Value> = d
                .iter()
                .map(|(name, url)| serde_json::json!({"name": name, "url": url}))
                .collect();
            answer.insert("destinations".into(), list.into());
            return reply(200, serde_json::Value::Object(answer).to_string());
        }
        if self.fail_posts.load(Ordering::Relaxed) {
            return reply(500, "{}".into());
        }
        reply(200, "{}".into())
    }

    /// POSTs to `endpoint` with their JSON bodies.
    pub fn posts(&self, endpoint: &str) -> Vec<(Call, serde_json::Value)> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.method == "POST" && c.path == endpoint)
            .map(|c| (c.clone(), serde_json::from_slice(&c.body).unwrap()))
            .collect()
    }
}
