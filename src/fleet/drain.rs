//! Draining a node for a rolling upgrade.

use std::sync::Arc;
use std::time::Duration;

use relay::registry::Registry;
use tracing::{info, warn};

use super::Fleet;

/// A request to drain (SIGUSR1 or `POST /v1/node/drain`): stop taking new streams, let the
/// live ones end (at most `fleet.drain_timeout_s`), then stop as on SIGTERM.
#[derive(Debug)]
pub struct Drain {
    requested: tokio::sync::watch::Sender<bool>,
}

impl Default for Drain {
    fn default() -> Self {
        Self {
            requested: tokio::sync::watch::Sender::new(false),
        }
    }
}

impl Drain {
    /// Asks for draining (again is harmless); the fleet stops placing streams here at once.
    pub fn request(&self, fleet: Option<&Arc<Fleet>>) {
        if self.requested.send_replace(true) {
            return;
        }
        info!("drain requested: live streams continue, then the node stops");
        if let Some(f) = fleet {
            let f = f.clone();
            tokio::spawn(async move { f.drain().await });
        }
    }

    pub fn is_requested(&self) -> bool {
        *self.requested.borrow()
    }

    /// Resolves once draining was asked for and the node's streams have all ended, or
    /// `timeout` after it was asked for.
    pub async fn finished(&self, registry: &Registry, timeout: Duration) {
        let mut rx = self.requested.subscribe();
        let _ = rx.wait_for(|r| *r).await;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = registry.list().len();
            if left == 0 {
                info!("drained: no stream left");
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                warn!(
                    streams = left,
                    "drain timeout: stopping with streams still live"
                );
                return;
            }
            // Streams end on their own schedule; look again shortly.
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}
