//! `auth.mode = "token"`: a publish needs `?token=` minted by the cloud with the shared secret
//! (format in CONTRACTS.md; the check itself is `relay::auth::token::verify`).

use relay::auth::{
    Decision, DecisionFuture, DenyReason, PublishName, PublishPolicy, PublishRequest,
};
use relay::path::Credential;

use super::store::now_s;

/// Verifies publish tokens with the shared secret.
pub struct TokenPolicy {
    secret: Vec<u8>,
}

impl TokenPolicy {
    pub fn new(secret: &str) -> Self {
        Self {
            secret: secret.as_bytes().to_vec(),
        }
    }

    fn decide(&self, req: &PublishRequest) -> Decision {
        let PublishName::Stream(path) = &req.name else {
            return Decision::Deny(DenyReason::BadPath);
        };
        let Some(Credential::Token(t)) = &req.credential else {
            return Decision::Deny(DenyReason::MissingCredential);
        };
        match relay::auth::token::verify(&self.secret, t, path, req.client_ip, now_s()) {
            Ok(_) => Decision::Allow(path.clone()),
            Err(r) => Decision::Deny(r),
        }
    }
}

impl PublishPolicy for TokenPolicy {
    fn mode(&self) -> &'static str {
        "token"
    }

    fn authorize<'a>(&'a self, req: &'a PublishRequest) -> DecisionFuture<'a> {
        Box::pin(std::future::ready(self.decide(req)))
    }
}
