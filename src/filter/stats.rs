//! Defines the metrics with the host once per VM and moves them; host errors are ignored
//! (a stat must never fail a request).

use std::collections::HashMap;

use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;

use crate::metrics::{Kind, Metric};

#[derive(Default)]
pub struct Stats {
    ids: HashMap<Metric, u32>,
}

impl Stats {
    pub fn define() -> Self {
        let mut ids = HashMap::new();
        for metric in Metric::ALL {
            let kind = match metric.kind() {
                Kind::Counter => MetricType::Counter,
                Kind::Gauge => MetricType::Gauge,
                Kind::Histogram => MetricType::Histogram,
            };
            if let Ok(id) = hostcalls::define_metric(kind, metric.name()) {
                ids.insert(metric, id);
            }
        }
        Stats { ids }
    }

    pub fn increment(&self, metric: Metric) {
        if let Some(id) = self.ids.get(&metric) {
            let _ = hostcalls::increment_metric(*id, 1);
        }
    }

    /// Adds `delta` to a gauge.
    pub fn add(&self, metric: Metric, delta: i64) {
        if let Some(id) = self.ids.get(&metric) {
            let _ = hostcalls::increment_metric(*id, delta);
        }
    }

    /// Records a histogram value.
    pub fn record(&self, metric: Metric, value: u64) {
        if let Some(id) = self.ids.get(&metric) {
            let _ = hostcalls::record_metric(*id, value);
        }
    }
}
