//! Defines the metrics with the host once per VM and moves them; host errors are ignored
//! (a stat must never fail a request).

use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;

use crate::config::ProfileId;
use crate::metrics::{profile_refresh_name, Kind, Metric};

/// Host metric ids, indexed by `Metric as usize`.
#[derive(Default)]
pub(super) struct Stats {
    ids: [Option<u32>; Metric::ALL.len()],
    /// Per profile (by id): the refresh_ok and refresh_failed counters.
    profile_ids: Vec<Option<(u32, u32)>>,
}

impl Stats {
    pub(super) fn define<'a>(profiles: impl Iterator<Item = (ProfileId, &'a str)>) -> Self {
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
        for (id, name) in profiles {
            let define = |ok| {
                hostcalls::define_metric(MetricType::Counter, &profile_refresh_name(name, ok)).ok()
            };
            if let (Some(ok), Some(failed)) = (define(true), define(false)) {
                if stats.profile_ids.len() <= id.0 {
                    stats.profile_ids.resize(id.0 + 1, None);
                }
                if let Some(slot) = stats.profile_ids.get_mut(id.0) {
                    *slot = Some((ok, failed));
                }
            }
        }
        stats
    }

    /// Counts one ended refresh of a profile's credentials.
    pub(super) fn profile_refresh(&self, profile: ProfileId, ok: bool) {
        if let Some(Some((ok_id, failed_id))) = self.profile_ids.get(profile.0) {
            let _ = hostcalls::increment_metric(if ok { *ok_id } else { *failed_id }, 1);
        }
    }

    fn id(&self, metric: Metric) -> Option<u32> {
        self.ids.get(metric as usize).copied().flatten()
    }

    pub(super) fn increment(&self, metric: Metric) {
        if let Some(id) = self.id(metric) {
            let _ = hostcalls::increment_metric(id, 1);
        }
    }

    /// Adds `delta` to a gauge.
    pub(super) fn add(&self, metric: Metric, delta: i64) {
        if let Some(id) = self.id(metric) {
            let _ = hostcalls::increment_metric(id, delta);
        }
    }

    /// Records a histogram value.
    pub(super) fn record(&self, metric: Metric, value: u64) {
        if let Some(id) = self.id(metric) {
            let _ = hostcalls::record_metric(id, value);
        }
    }
}
