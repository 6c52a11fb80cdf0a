//! Where stream keys live: the [`KeyStore`] trait, and key creation on top of it.
//!
//! A store holds [`KeyRecord`]s by key id (the key's SHA-256) and aliases pointing at key ids.
//! It never holds a key itself.

use std::future::Future;
use std::pin::Pin;

use relay::auth::key::{KeyError, KeyRecord, KeySpec, NewKey};

/// A store's failure. The message never contains a key.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("key store unavailable: {0}")]
    Unavailable(String),
    #[error("alias {0:?} is already in use")]
    AliasTaken(String),
    #[error("no such key")]
    NotFound,
    #[error(transparent)]
    Invalid(#[from] KeyError),
}

pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A key store shared by the publish policy, the management API and the CLI.
pub trait KeyStore: Send + Sync + 'static {
    /// The record of `key_id`, if it exists and has not expired from the store.
    fn get(&self, key_id: &str) -> StoreFuture<'_, Option<KeyRecord>>;
    /// The key id `alias` stands for.
    fn alias(&self, alias: &str) -> StoreFuture<'_, Option<String>>;
    /// Stores a new record (and its alias, refused when taken by another key).
    fn insert(&self, record: KeyRecord) -> StoreFuture<'_, ()>;
    /// Every stored record (no secrets in them).
    fn list(&self) -> StoreFuture<'_, Vec<KeyRecord>>;
    /// Deletes a key and its alias; [`StoreError::NotFound`] when there is none.
    fn revoke(&self, key_id: &str) -> StoreFuture<'_, ()>;
    /// Points `alias` at `key_id` (replacing the key's previous alias).
    fn set_alias(&self, key_id: &str, alias: &str) -> StoreFuture<'_, ()>;
    /// Which store this is, for logs.
    fn describe(&self) -> String;
}

/// Unix seconds now.
pub fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Makes a key from a CSPRNG and stores it. The key is returned exactly once, here.
pub async fn create(store: &dyn KeyStore, spec: &KeySpec) -> Result<NewKey, StoreError> {
    let mut random = [0u8; 32];
    getrandom::fill(&mut random)
        .map_err(|e| StoreError::Unavailable(format!("no system randomness: {e}")))?;
    let new = spec.make(random, now_s())?;
    store.insert(new.record.clone()).await?;
    Ok(new)
}
