//! The stream's destinations as a platform's simulcast outputs (Cloudflare): one sync makes
//! the platform's list match the cloud's.

use std::collections::HashMap;
use std::sync::Arc;

use relay::cloud::client::OutputStatus;
use relay::restream::destination::Destination;
use relay::restream::restreamer::DestinationSpec;
use tracing::warn;

use super::{Platform, PlatformError};

/// The platform's outputs after a sync: URL -> output id, and their statuses.
pub struct OutputSync {
    pub outputs: HashMap<String, String>,
    pub statuses: Vec<OutputStatus>,
}

/// Makes the platform's outputs of `id` match `want`: removes those no longer wanted, adds the
/// new ones. A failed add is reported in its status and tried again at the next change.
pub async fn sync_outputs(
    p: Arc<dyn Platform>,
    id: String,
    want: Vec<DestinationSpec>,
    mut have: HashMap<String, String>,
) -> Result<OutputSync, PlatformError> {
    let gone: Vec<String> = have
        .keys()
        .filter(|url| !want.iter().any(|w| &w.url == *url))
        .cloned()
        .collect();
    for url in gone {
        if let Some(out) = have.remove(&url) {
            match p.remove_output(&id, &out).await {
                Ok(()) | Err(PlatformError::NotFound { .. }) => {}
                Err(e) => {
                    warn!(error = %e, "could not remove a platform output");
                    have.insert(url, out);
                }
            }
        }
    }
    let mut statuses = Vec::new();
    for w in &want {
        let parsed = Destination::parse(&w.url);
        let (oid, masked) = match &parsed {
            Ok(d) => (d.id(), d.masked_url()),
            Err(_) => (String::from("invalid"), String::from("***")),
        };
        let error = match (&parsed, have.contains_key(&w.url)) {
            (Err(e), _) => Some(e.to_string()),
            (Ok(_), true) => None,
            (Ok(_), false) => match p.add_output(&id, &w.url).await {
                Ok(o) => {
                    have.insert(w.url.clone(), o.id);
                    None
                }
                Err(e) => Some(e.to_string()),
            },
        };
        statuses.push(OutputStatus {
            id: oid,
            name: w.name.clone(),
            url: masked,
            status: if error.is_some() { "error" } else { "active" }.into(),
            error,
        });
    }
    Ok(OutputSync {
        outputs: have,
        statuses,
    })
}
