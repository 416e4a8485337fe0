//! Defines the metrics with the host once per VM and moves them: the moves are kept in the
//! VM ([`MetricBuffer`]) and handed to the host on the root's tick, so a request's path makes
//! no host call for its stats. Counter moves are summed there; each histogram value still
//! costs one host call at the flush. Host errors are ignored (a stat must never fail a
//! request).

use std::cell::RefCell;
use std::sync::Arc;

use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;

use crate::config::ProfileId;
use crate::metrics::{
    latency_name, outcome_name, profile_refresh_name, total_name, Kind, Metric, MetricBuffer,
    Outcome, MAX_FUNCTION_LABELS, OTHER_FUNCTIONS,
};

/// Host metric ids, indexed by `Metric as usize`.
#[derive(Default)]
pub(super) struct Stats {
    ids: [Option<u32>; Metric::ALL.len()],
    /// Per profile (by id): the refresh_ok and refresh_failed counters.
    profile_ids: Vec<Option<(u32, u32)>>,
    /// Per function label, defined on its first request (at most `MAX_FUNCTION_LABELS`).
    functions: RefCell<Vec<FunctionIds>>,
    /// Moves not yet handed to the host ([`Stats::flush`], on the root's tick).
    buffer: RefCell<MetricBuffer>,
}

/// One function label's metric ids (`None`: not defined yet, or the host refused).
struct FunctionIds {
    label: Arc<str>,
    total: Option<u32>,
    latency: Option<u32>,
    outcomes: [Option<u32>; Outcome::COUNT],
}

impl FunctionIds {
    fn new(label: Arc<str>) -> Self {
        FunctionIds {
            total: hostcalls::define_metric(MetricType::Counter, &total_name(&label)).ok(),
            latency: hostcalls::define_metric(MetricType::Histogram, &latency_name(&label)).ok(),
            outcomes: [None; Outcome::COUNT],
            label,
        }
    }
}

impl Stats {
    /// Defines every metric; the opt-in invoke histograms only with `invoke_histograms`
    /// (undefined, they are never recorded).
    pub(super) fn define<'a>(
        profiles: impl Iterator<Item = (ProfileId, &'a str)>,
        invoke_histograms: bool,
    ) -> Self {
        let mut stats = Stats::default();
        for metric in Metric::ALL {
            if metric.is_opt_in_histogram() && !invoke_histograms {
                continue;
            }
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
            self.buffer
                .borrow_mut()
                .add(if ok { *ok_id } else { *failed_id }, 1);
        }
    }

    /// Counts a request's outcome: the class counter, and with a function label its
    /// labelled class counter and total.
    pub(super) fn outcome(&self, label: Option<&Arc<str>>, metric: Metric, outcome: Outcome) {
        self.increment(metric);
        let Some(label) = label else { return };
        self.with_function(label, |ids| {
            let slot = ids.outcomes.get_mut(outcome as usize)?;
            if slot.is_none() {
                *slot = hostcalls::define_metric(
                    MetricType::Counter,
                    &outcome_name(&ids.label, outcome),
                )
                .ok();
            }
            let mut buffer = self.buffer.borrow_mut();
            buffer.add((*slot)?, 1);
            buffer.add(ids.total?, 1);
            Some(())
        });
    }

    /// Records an Invoke's latency, and with a function label its labelled histogram.
    pub(super) fn latency(&self, label: Option<&Arc<str>>, ms: u64) {
        self.record(Metric::InvokeLatencyMs, ms);
        if let Some(label) = label {
            let mut full = false;
            self.with_function(label, |ids| {
                full = self.buffer.borrow_mut().record(ids.latency?, ms);
                Some(())
            });
            if full {
                self.flush();
            }
        }
    }

    /// Runs `f` on the ids of `label` (defined on first use), or of `_other` past the cap.
    fn with_function(&self, label: &Arc<str>, f: impl FnOnce(&mut FunctionIds) -> Option<()>) {
        let mut functions = self.functions.borrow_mut();
        // Requests of a route share its target's label: pointer equality finds it at once.
        let index = match functions
            .iter()
            .position(|ids| Arc::ptr_eq(&ids.label, label) || ids.label == *label)
        {
            Some(index) => index,
            None if functions.len() < MAX_FUNCTION_LABELS => {
                functions.push(FunctionIds::new(label.clone()));
                functions.len() - 1
            }
            None => match functions
                .iter()
                .position(|ids| &*ids.label == OTHER_FUNCTIONS)
            {
                Some(index) => index,
                None => {
                    functions.push(FunctionIds::new(OTHER_FUNCTIONS.into()));
                    functions.len() - 1
                }
            },
        };
        if let Some(ids) = functions.get_mut(index) {
            let _ = f(ids);
        }
    }

    fn id(&self, metric: Metric) -> Option<u32> {
        self.ids.get(metric as usize).copied().flatten()
    }

    pub(super) fn increment(&self, metric: Metric) {
        self.add(metric, 1);
    }

    /// Adds `delta` to a counter or gauge.
    pub(super) fn add(&self, metric: Metric, delta: i64) {
        if let Some(id) = self.id(metric) {
            self.buffer.borrow_mut().add(id, delta);
        }
    }

    /// Records a histogram value.
    pub(super) fn record(&self, metric: Metric, value: u64) {
        if let Some(id) = self.id(metric) {
            let full = self.buffer.borrow_mut().record(id, value);
            if full {
                self.flush();
            }
        }
    }

    /// Hands the buffered moves to the host (the root's tick; or at once when the buffer of
    /// histogram values is full).
    pub(super) fn flush(&self) {
        let flush = self.buffer.borrow_mut().take();
        for (id, delta) in flush.deltas {
            let _ = hostcalls::increment_metric(id, delta);
        }
        for (id, value) in flush.values {
            let _ = hostcalls::record_metric(id, value);
        }
    }
}
