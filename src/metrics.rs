//! Every Prometheus metric of the process, registered here and nowhere else (one registry
//! per server, so in-process tests do not share counters). Label sets are bounded: no keys,
//! no user ids, no stream paths unless `metrics.per_stream_labels` is set.

use std::sync::Arc;

use origin::metrics::{OriginCollector, OriginMetrics};
use origin::packager::Origin;
use prometheus_client::registry::Registry;
use relay::cloud::client::CloudMetrics;
use relay::ingest::IngestMetrics;
use relay::restream::restreamer::{RestreamCollector, Restreamer};

/// The metric handles the parts of the server update.
#[derive(Clone, Default)]
pub struct Metrics {
    pub ingest: IngestMetrics,
    pub origin: OriginMetrics,
    pub cloud: CloudMetrics,
    pub record: crate::record::RecordMetrics,
}

impl Metrics {
    /// The registry with every metric: the handles above and the scrape-time collectors of
    /// the origin and the restreamer.
    pub fn registry(
        &self,
        origin: &Arc<Origin>,
        restreamer: &Arc<Restreamer>,
        per_stream_labels: bool,
    ) -> Registry {
        let mut reg = Registry::default();
        self.ingest.register(&mut reg);
        self.origin.register(&mut reg);
        reg.register(
            "cloud_requests",
            "Requests to the control plane by endpoint and result",
            self.cloud.clone(),
        );
        self.record.register(&mut reg);
        reg.register_collector(Box::new(OriginCollector(origin.clone())));
        reg.register_collector(Box::new(RestreamCollector {
            restreamer: restreamer.clone(),
            per_stream: per_stream_labels,
        }));
        reg
    }
}
