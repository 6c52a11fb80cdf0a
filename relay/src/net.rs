//! Listener helpers shared by the RTMP and HTTP shells.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// Accepts the next connection (with `TCP_NODELAY` set), or `None` once `shutdown` is
/// cancelled. Accept errors (out of file descriptors and the like) are logged and retried
/// after a short pause instead of spinning.
pub async fn accept(
    listener: &TcpListener,
    shutdown: &CancellationToken,
    what: &'static str,
) -> Option<(TcpStream, SocketAddr)> {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            r = listener.accept() => match r {
                Ok((socket, peer)) => {
                    let _ = socket.set_nodelay(true);
                    return Some((socket, peer));
                }
                Err(e) => {
                    tracing::warn!(error = %e, listener = what, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}

/// `f` within `t`; an error or the timeout as one line naming `what` (`"write: timed out
/// after 5s"`), for the caller to wrap in its own error type.
pub async fn within<T>(
    t: std::time::Duration,
    what: &str,
    f: impl std::future::Future<Output = std::io::Result<T>>,
) -> Result<T, String> {
    match tokio::time::timeout(t, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!("{what}: timed out after {t:?}")),
    }
}
