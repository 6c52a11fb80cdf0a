//! One Redis connection as the key store and the fleet use it: made on first use (so a node
//! whose Redis is down at start still starts), re-established by the `redis`
//! ConnectionManager after an outage, and every command bounded by a short timeout so a dead
//! Redis is an error quickly instead of a hang.

use std::time::Duration;

use redis::aio::ConnectionManager;

/// Redis did not answer, or answered with an error.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct Unavailable(pub String);

/// A lazily made, self-healing connection to one Redis.
pub struct RedisConn {
    client: redis::Client,
    conn: tokio::sync::OnceCell<ConnectionManager>,
    /// For logs: `redis host:port`, never the password.
    display: String,
    timeout: Duration,
}

/// The error as one line: the `redis` crate's parse errors span several (a server that is not
/// Redis), and log lines and CLI errors must not.
fn one_line(e: &impl std::fmt::Display) -> String {
    e.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// `redis host:port` of a Redis URL, without user or password.
pub fn display_url(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host = rest.split('/').next().unwrap_or(rest);
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    format!("redis {host}")
}

impl RedisConn {
    /// A connection to `url` (checked now, connected on first use).
    pub fn new(url: &str, timeout: Duration) -> Result<Self, Unavailable> {
        let client = redis::Client::open(url)
            .map_err(|e| Unavailable(format!("redis: {}", one_line(&e))))?;
        Ok(Self {
            client,
            conn: tokio::sync::OnceCell::new(),
            display: display_url(url),
            timeout,
        })
    }

    /// `redis host:port`, for logs and errors.
    pub fn display(&self) -> &str {
        &self.display
    }

    async fn connection(&self) -> Result<ConnectionManager, Unavailable> {
        let cfg = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1);
        self.conn
            .get_or_try_init(|| async {
                tokio::time::timeout(
                    self.timeout,
                    ConnectionManager::new_with_config(self.client.clone(), cfg),
                )
                .await
                .map_err(|_| {
                    Unavailable(format!("redis: no connection within {:?}", self.timeout))
                })?
                .map_err(|e| Unavailable(format!("redis: {}", one_line(&e))))
            })
            .await
            .cloned()
    }

    /// Runs `f` on the connection within the timeout.
    pub async fn run<T>(
        &self,
        f: impl AsyncFnOnce(&mut ConnectionManager) -> redis::RedisResult<T>,
    ) -> Result<T, Unavailable> {
        let mut c = self.connection().await?;
        tokio::time::timeout(self.timeout, f(&mut c))
            .await
            .map_err(|_| Unavailable(format!("redis: no answer within {:?}", self.timeout)))?
            .map_err(|e| Unavailable(format!("redis: {}", one_line(&e))))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_not_displayed() {
        assert_eq!(
            super::display_url("redis://:hunter2@127.0.0.1:6379/0"),
            "redis 127.0.0.1:6379"
        );
        assert_eq!(super::display_url("redis://r:1"), "redis r:1");
    }

    #[test]
    fn errors_are_one_line() {
        assert_eq!(
            super::one_line(&"Parse error at 1\nUnexpected `84`\n\n"),
            "Parse error at 1 Unexpected `84`"
        );
    }
}
