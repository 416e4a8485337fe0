//! Defines the metrics with the host once per VM and moves them; host errors are ignored
//! (a stat must never fail a request).

use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;

use crate::metrics::{Kind, Metric};

/// Host metric ids, indexed by `Metric as usize`.
#[derive(Default)]
pub struct Stats {
    ids: [Option<u32>; Metric::ALL.len()],
}

impl Stats {
    pub fn define() -> Self {
        let mut stats = Stats::default();
        for metric in Metric::ALL {
            let kind = match metric.kind() {
                Kind::Counter => MetricType::Counter,
                Kind::Gauge => MetricType::Gauge,
                Kind::Histogram => MetricType::Histogram,
            };
            if let (Ok(id), Some(slot)) = (
                hostcalls::define_metric(kind, metric.name()),
                stats.ids.get_mut(metric as usize),
            ) {
                *slot = Some(id);
            }
        }
        stats
    }

    fn id(&self, metric: Metric) -> Option<u32> {
        self.ids.get(metric as usize).copied().flatten()
    }

    pub fn increment(&self, metric: Metric) {
        if let Some(id) = self.id(metric) {
            let _ = hostcalls::increment_metric(id, 1);
        }
    }

    /// Adds `delta` to a gauge.
    pub fn add(&self, metric: Metric, delta: i64) {
        if let Some(id) = self.id(metric) {
            let _ = hostcalls::increment_metric(id, delta);
        }
    }

    /// Records a histogram value.
    pub fn record(&self, metric: Metric, value: u64) {
        if let Some(id) = self.id(metric) {
            let _ = hostcalls::record_metric(id, value);
        }
    }
}
