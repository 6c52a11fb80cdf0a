//! One HTTPS (and plain HTTP) client for talking to services: the control plane and the
//! managed platforms. webpki roots, HTTP/1.1, a timeout on the whole exchange. No retries
//! here: each caller has its own policy.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// A cheap, cloneable client (one connection pool).
#[derive(Clone)]
pub struct Https {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
}

/// A complete answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

/// Why there is no answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HttpsError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("unreachable: {0}")]
    Transport(String),
}

impl Default for Https {
    fn default() -> Self {
        Self::new()
    }
}

impl Https {
    pub fn new() -> Self {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .build();
        Self {
            client: Client::builder(TokioExecutor::new()).build(https),
        }
    }

    /// Sends `req` and reads the whole answer, all within `timeout`.
    pub async fn send(
        &self,
        req: hyper::Request<Full<Bytes>>,
        timeout: Duration,
    ) -> Result<Reply, HttpsError> {
        let fut = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| HttpsError::Transport(e.to_string()))?;
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| HttpsError::Transport(e.to_string()))?
                .to_bytes();
            Ok(Reply {
                status,
                headers,
                body,
            })
        };
        tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| HttpsError::Timeout(timeout))?
    }
}
