//! What the load generator's tests share.

use glasscast::config::{Overrides, load};
use glasscast::server::Server;

/// The in-process server on loopback ports chosen by the OS.
pub async fn start_server() -> Server {
    let env = [
        "GLASSCAST_RTMP_LISTEN",
        "GLASSCAST_HTTP_LISTEN",
        "GLASSCAST_ADMIN_LISTEN",
    ]
    .map(|k| (k.to_string(), "127.0.0.1:0".to_string()))
    .to_vec();
    let cfg = load(None, env, &Overrides::default()).expect("config");
    Server::start(&cfg).await.expect("server")
}
