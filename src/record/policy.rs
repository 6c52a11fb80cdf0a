//! Which broadcasts are recorded.

use std::collections::HashMap;
use std::sync::Mutex;

use relay::path::StreamPath;

use crate::config::record::RecordSettings;

/// Which broadcasts are recorded: the cloud's word for a stream (`"record"` in its
/// destinations answer) over the configuration's prefixes over `record.enabled`. Decided once
/// per broadcast, at its first segment.
pub struct Policy {
    settings: RecordSettings,
    cloud: Mutex<HashMap<StreamPath, bool>>,
}

impl Policy {
    pub fn new(settings: RecordSettings) -> Self {
        Self {
            settings,
            cloud: Mutex::new(HashMap::new()),
        }
    }

    /// The cloud's answer for `path` (`None`: it leaves it to the configuration).
    pub fn handle_cloud(&self, path: &StreamPath, record: Option<bool>) {
        let mut cloud = self.cloud.lock().unwrap_or_else(|e| e.into_inner());
        match record {
            Some(on) => cloud.insert(path.clone(), on),
            None => cloud.remove(path),
        };
    }

    /// The stream ended: the cloud's word for it is forgotten.
    pub fn handle_ended(&self, path: &StreamPath) {
        self.cloud
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(path);
    }

    pub fn decide(&self, path: &StreamPath) -> bool {
        let cloud = self.cloud.lock().unwrap_or_else(|e| e.into_inner());
        cloud
            .get(path)
            .copied()
            .unwrap_or_else(|| self.settings.for_path(path))
    }
}
