//! Keys in Redis, shared by a fleet of relays, with the layout of `seeds/003_*`:
//! `stream:key:<keyId>` -> the record as JSON and `stream:alias:<name>` -> keyId, both with a
//! Redis TTL at the key's expiry (the metadata's `expiresAt` is checked as well).
//!
//! The connection is a `redis` ConnectionManager, which reconnects by itself; every command
//! has a short timeout so a dead Redis refuses publishes quickly instead of hanging them.

use std::time::Duration;

use redis::AsyncCommands as _;
use relay::auth::key::KeyRecord;

use super::store::{KeyStore, StoreError, StoreFuture, now_s};
use crate::redis_conn::{RedisConn, Unavailable};

const KEY_PREFIX: &str = "stream:key:";
const ALIAS_PREFIX: &str = "stream:alias:";

/// A Redis-backed key store.
pub struct RedisStore {
    redis: RedisConn,
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("redis: {e}"))
}

impl From<Unavailable> for StoreError {
    fn from(e: Unavailable) -> Self {
        StoreError::Unavailable(e.0)
    }
}

impl RedisStore {
    /// A store for `url` (checked now; the connection is made on first use and, once made,
    /// re-established after outages).
    pub fn new(url: &str, timeout: Duration) -> Result<Self, StoreError> {
        Ok(Self {
            redis: RedisConn::new(url, timeout)?,
        })
    }

    async fn run<T>(
        &self,
        f: impl AsyncFnOnce(&mut redis::aio::ConnectionManager) -> redis::RedisResult<T>,
    ) -> Result<T, StoreError> {
        Ok(self.redis.run(f).await?)
    }

    async fn get_record(&self, key_id: &str) -> Result<Option<KeyRecord>, StoreError> {
        let k = format!("{KEY_PREFIX}{key_id}");
        let json: Option<String> = self.run(async |c| c.get(&k).await).await?;
        match json {
            None => Ok(None),
            Some(j) => serde_json::from_str(&j)
                .map(Some)
                .map_err(|e| unavailable(format!("corrupt record: {e}"))),
        }
    }

    async fn put_alias(&self, alias: &str, record: &KeyRecord) -> Result<(), StoreError> {
        let ak = format!("{ALIAS_PREFIX}{alias}");
        let ttl = record.ttl_at(now_s());
        let id = record.key_id.clone();
        // SET NX: an alias belongs to one key until that key goes.
        let set: bool = self
            .run(async |c| {
                redis::cmd("SET")
                    .arg(&ak)
                    .arg(&id)
                    .arg("NX")
                    .arg("EX")
                    .arg(ttl)
                    .query_async::<Option<String>>(c)
                    .await
                    .map(|r| r.is_some())
            })
            .await?;
        if set {
            return Ok(());
        }
        let owner: Option<String> = self.run(async |c| c.get(&ak).await).await?;
        if owner.as_deref() == Some(record.key_id.as_str()) {
            Ok(())
        } else {
            Err(StoreError::AliasTaken(alias.into()))
        }
    }

    async fn put_record(&self, record: &KeyRecord) -> Result<(), StoreError> {
        let k = format!("{KEY_PREFIX}{}", record.key_id);
        let json = serde_json::to_string(record).map_err(unavailable)?;
        let ttl = record.ttl_at(now_s());
        self.run(async |c| c.set_ex::<_, _, ()>(&k, &json, ttl).await)
            .await
    }
}

impl KeyStore for RedisStore {
    fn get(&self, key_id: &str) -> StoreFuture<'_, Option<KeyRecord>> {
        let key_id = key_id.to_string();
        Box::pin(async move { self.get_record(&key_id).await })
    }

    fn alias(&self, alias: &str) -> StoreFuture<'_, Option<String>> {
        let k = format!("{ALIAS_PREFIX}{alias}");
        Box::pin(async move { self.run(async |c| c.get(&k).await).await })
    }

    fn insert(&self, record: KeyRecord) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            if let Some(a) = &record.alias {
                self.put_alias(a, &record).await?;
            }
            self.put_record(&record).await
        })
    }

    fn list(&self) -> StoreFuture<'_, Vec<KeyRecord>> {
        Box::pin(async move {
            let pattern = format!("{KEY_PREFIX}*");
            let names: Vec<String> = self
                .run(async |c| {
                    let mut it = c.scan_match::<_, String>(&pattern).await?;
                    let mut v = Vec::new();
                    while let Some(item) = it.next_item().await {
                        v.push(item?);
                    }
                    Ok(v)
                })
                .await?;
            let mut out = Vec::new();
            for n in names {
                if let Some(r) = self.get_record(&n[KEY_PREFIX.len()..]).await? {
                    out.push(r);
                }
            }
            out.sort_by(|a, b| {
                a.created_at
                    .cmp(&b.created_at)
                    .then(a.key_id.cmp(&b.key_id))
            });
            Ok(out)
        })
    }

    fn revoke(&self, key_id: &str) -> StoreFuture<'_, ()> {
        let key_id = key_id.to_string();
        Box::pin(async move {
            let record = self
                .get_record(&key_id)
                .await?
                .ok_or(StoreError::NotFound)?;
            let k = format!("{KEY_PREFIX}{key_id}");
            self.run(async |c| c.del::<_, ()>(&k).await).await?;
            if let Some(a) = record.alias {
                let ak = format!("{ALIAS_PREFIX}{a}");
                let owner: Option<String> = self.run(async |c| c.get(&ak).await).await?;
                if owner.as_deref() == Some(key_id.as_str()) {
                    self.run(async |c| c.del::<_, ()>(&ak).await).await?;
                }
            }
            Ok(())
        })
    }

    fn set_alias(&self, key_id: &str, alias: &str) -> StoreFuture<'_, ()> {
        let (key_id, alias) = (key_id.to_string(), alias.to_string());
        Box::pin(async move {
            if !relay::auth::key::valid_alias(&alias) {
                return Err(relay::auth::key::KeyError::BadAlias.into());
            }
            let mut record = self
                .get_record(&key_id)
                .await?
                .ok_or(StoreError::NotFound)?;
            self.put_alias(&alias, &record).await?;
            if let Some(old) = record.alias.replace(alias.clone())
                && old != alias
            {
                let ak = format!("{ALIAS_PREFIX}{old}");
                self.run(async |c| c.del::<_, ()>(&ak).await).await?;
            }
            self.put_record(&record).await
        })
    }

    fn describe(&self) -> String {
        self.redis.display().to_string()
    }
}
