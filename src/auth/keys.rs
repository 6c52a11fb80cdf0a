//! `auth.mode = "keys"`: a publish needs a stream key (or its alias) from the key store, as
//! `?key=` on `live/{userId}/{streamId}` or as the stream name itself (`live/{key-or-alias}`,
//! the path then comes from the key's metadata, as the seed's `handlePrePublish` does).

use std::sync::Arc;

use relay::auth::key::{KeyRecord, key_id};
use relay::auth::{
    Decision, DecisionFuture, DenyReason, PublishName, PublishPolicy, PublishRequest,
};
use relay::path::Credential;
use tracing::warn;

use super::store::{KeyStore, StoreError, now_s};

/// Checks publishes against a [`KeyStore`].
pub struct KeysPolicy {
    store: Arc<dyn KeyStore>,
}

impl KeysPolicy {
    pub fn new(store: Arc<dyn KeyStore>) -> Self {
        Self { store }
    }

    /// The record for something a client sent, as a key or as an alias; `alias_first` for
    /// the bare-name form (the seed's order), key first for `?key=` (almost always a key, so
    /// one store lookup). The flag is true when the client sent the key itself.
    async fn lookup(
        &self,
        sent: &str,
        alias_first: bool,
    ) -> Result<Option<(KeyRecord, bool)>, StoreError> {
        let as_key =
            async { Ok::<_, StoreError>(self.store.get(&key_id(sent)).await?.map(|r| (r, true))) };
        let as_alias = async {
            if !relay::auth::key::valid_alias(sent) {
                return Ok(None);
            }
            match self.store.alias(sent).await? {
                Some(id) => Ok(self.store.get(&id).await?.map(|r| (r, false))),
                None => Ok(None),
            }
        };
        if alias_first {
            match as_alias.await? {
                Some(found) => Ok(Some(found)),
                None => as_key.await,
            }
        } else {
            match as_key.await? {
                Some(found) => Ok(Some(found)),
                None => as_alias.await,
            }
        }
    }

    async fn decide(&self, req: &PublishRequest) -> Decision {
        let (sent, requested) = match (&req.name, &req.credential) {
            (PublishName::Stream(p), Some(Credential::Key(k))) => (k.as_str(), Some(p)),
            (PublishName::Stream(_), _) => return Decision::Deny(DenyReason::MissingCredential),
            (PublishName::Bare(b), _) => (b.0.as_str(), None),
        };
        match self.lookup(sent, requested.is_none()).await {
            Ok(Some((record, is_key))) => {
                let presented = is_key.then_some(sent);
                match record.check(presented, requested, req.client_ip, now_s()) {
                    Ok(path) => Decision::Allow(path),
                    Err(r) => Decision::Deny(r),
                }
            }
            Ok(None) => Decision::Deny(DenyReason::UnknownKey),
            Err(e) => {
                warn!(store = %self.store.describe(), error = %e, "cannot check a stream key; refusing the publish");
                Decision::Deny(DenyReason::StoreUnavailable)
            }
        }
    }
}

impl PublishPolicy for KeysPolicy {
    fn mode(&self) -> &'static str {
        "keys"
    }

    fn authorize<'a>(&'a self, req: &'a PublishRequest) -> DecisionFuture<'a> {
        Box::pin(self.decide(req))
    }
}
