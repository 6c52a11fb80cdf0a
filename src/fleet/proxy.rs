//! Viewers of a stream held by another node: the request goes to the owner's origin, and the
//! owner's answer (status, cache headers, body) comes back unchanged. Identical requests that
//! arrive together (the same blocking reload from many viewers) make one request to the owner
//! and share its answer, so a blocking reload blocks once, on the owner.
//!
//! A forwarded request carries `X-Glasscast-Forwarded`; a node never forwards such a request
//! again (a stale directory cannot make two nodes bounce a request between them).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared};
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode, Uri, header};
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use origin::elsewhere::{Elsewhere, Forwarded};
use origin::http::Body;
use relay::path::StreamPath;

use super::Fleet;

/// Marks a request one node sent another.
pub const FORWARDED: HeaderName = HeaderName::from_static("x-glasscast-forwarded");
/// Longer than the owner holds a blocking request (three target durations).
const TIMEOUT: Duration = Duration::from_secs(15);
/// The largest answer passed through (a segment is a few MB).
const MAX_BODY: usize = 64 << 20;

/// An owner's answer, kept whole so that every request waiting for it gets it.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

type Fetch = Shared<BoxFuture<'static, Arc<Result<Answer, String>>>>;

/// Answers requests for streams other nodes hold.
pub struct Proxy {
    fleet: Arc<Fleet>,
    client: Client<HttpConnector, Empty<Bytes>>,
    inflight: Arc<Mutex<HashMap<String, Fetch>>>,
}

impl Proxy {
    pub fn new(fleet: Arc<Fleet>) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        Self {
            fleet,
            client: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .build(connector),
            inflight: Arc::default(),
        }
    }

    /// The owner's answer to `url` with these request headers, shared with every identical
    /// request made meanwhile.
    async fn fetch(
        &self,
        url: String,
        pass: Vec<(HeaderName, HeaderValue)>,
    ) -> Arc<Result<Answer, String>> {
        let key = format!(
            "{url}\n{}",
            pass.iter()
                .map(|(k, v)| format!("{k}:{}", v.to_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join("\n")
        );
        let fetch = {
            let mut map = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
            match map.get(&key) {
                Some(f) => f.clone(),
                None => {
                    let (client, inflight, k) =
                        (self.client.clone(), self.inflight.clone(), key.clone());
                    let me = self.fleet.node_id();
                    let f = async move {
                        let r = request(&client, &url, &pass, &me).await;
                        inflight
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .remove(&k);
                        Arc::new(r)
                    }
                    .boxed()
                    .shared();
                    map.insert(key, f.clone());
                    f
                }
            }
        };
        fetch.await
    }
}

async fn request(
    client: &Client<HttpConnector, Empty<Bytes>>,
    url: &str,
    pass: &[(HeaderName, HeaderValue)],
    me: &str,
) -> Result<Answer, String> {
    let mut req = http::Request::get(url);
    for (k, v) in pass {
        req = req.header(k, v);
    }
    let req = req
        .header(&FORWARDED, me)
        .body(Empty::new())
        .map_err(|e| format!("{url}: {e}"))?;
    let resp = tokio::time::timeout(TIMEOUT, client.request(req))
        .await
        .map_err(|_| format!("{url}: no answer within {TIMEOUT:?}"))?
        .map_err(|e| format!("{url}: {e}"))?;
    let (parts, body) = resp.into_parts();
    let body = tokio::time::timeout(TIMEOUT, Limited::new(body, MAX_BODY).collect())
        .await
        .map_err(|_| format!("{url}: body not complete within {TIMEOUT:?}"))?
        .map_err(|e| format!("{url}: {e}"))?
        .to_bytes();
    Ok(Answer {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

/// Headers that describe one connection, not the answer: never passed on.
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
            | "content-length"
    )
}

impl Elsewhere for Proxy {
    fn forward<'a>(
        &'a self,
        path: &'a StreamPath,
        uri: &'a Uri,
        headers: &'a HeaderMap,
    ) -> Forwarded<'a> {
        Box::pin(async move {
            if headers.contains_key(&FORWARDED) {
                return None;
            }
            let owner = self.fleet.owner(path).await?;
            if owner.node_id == self.fleet.node_id() {
                // The directory still names this node for a stream it no longer has.
                return None;
            }
            let url = format!(
                "{}{}",
                owner.http_url,
                uri.path_and_query().map_or(uri.path(), |p| p.as_str())
            );
            let pass: Vec<(HeaderName, HeaderValue)> = [header::ACCEPT_ENCODING, header::RANGE]
                .into_iter()
                .filter_map(|h| headers.get(&h).map(|v| (h, v.clone())))
                .collect();
            let answer = self.fetch(url, pass).await;
            let mut resp = match answer.as_ref() {
                Ok(a) => {
                    let mut r = Response::new(Body::from_chunks([a.body.clone()]));
                    *r.status_mut() = a.status;
                    for (k, v) in a.headers.iter().filter(|(k, _)| !hop_by_hop(k)) {
                        r.headers_mut().append(k, v.clone());
                    }
                    r
                }
                Err(e) => {
                    tracing::warn!(stream = %path, owner = %owner.node_id, error = %e, "the stream's owner did not answer");
                    let mut r = Response::new(Body::from_chunks([Bytes::from_static(
                        b"the node holding this stream did not answer\n",
                    )]));
                    *r.status_mut() = StatusCode::BAD_GATEWAY;
                    r.headers_mut()
                        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                    r
                }
            };
            resp.headers_mut().insert(
                HeaderName::from_static("x-glasscast-node"),
                HeaderValue::from_str(&owner.node_id).unwrap_or(HeaderValue::from_static("?")),
            );
            Some(resp)
        })
    }

    fn continuation<'a>(
        &'a self,
        path: &'a StreamPath,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Option<origin::elsewhere::Continuation>> + Send + 'a>,
    > {
        Box::pin(self.fleet.continuation(path))
    }
}
