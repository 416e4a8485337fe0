//! In-VM timer for profiling (build feature `vm-timing`): wall time spent inside the filter per
//! phase, summed and logged at info every `REPORT_EVERY` requests. Compiled out by default.

use std::cell::Cell;
use std::time::SystemTime;

use log::warn;

#[derive(Clone, Copy)]
pub(super) enum Phase {
    /// on_http_request_headers: route resolution, header reads.
    Headers,
    /// Reading the body, building the payload and signing.
    BuildAndSign,
    /// dispatch_http_call.
    Dispatch,
    /// Reading the answer, decoding it, sending the reply.
    Answer,
}

const PHASES: [&str; 4] = ["headers", "build_and_sign", "dispatch", "answer"];
const REPORT_EVERY: u64 = 500;

#[derive(Default)]
pub(super) struct Timing {
    total_ns: [Cell<u64>; 4],
    count: [Cell<u64>; 4],
}

/// Start of a timed phase; `None` (and no host call) unless built with `vm-timing`.
pub(super) fn start() -> Option<SystemTime> {
    if cfg!(feature = "vm-timing") {
        Some(super::host::now())
    } else {
        None
    }
}

impl Timing {
    pub(super) fn record(&self, phase: Phase, started: Option<SystemTime>) {
        let Some(started) = started else {
            return;
        };
        let elapsed = super::host::now()
            .duration_since(started)
            .unwrap_or_default()
            .as_nanos() as u64;
        let index = phase as usize;
        if let (Some(total), Some(count)) = (self.total_ns.get(index), self.count.get(index)) {
            total.set(total.get() + elapsed);
            count.set(count.get() + 1);
        }
        if matches!(phase, Phase::Answer)
            && self
                .count
                .get(index)
                .map_or(0, Cell::get)
                .is_multiple_of(REPORT_EVERY)
        {
            self.report();
        }
    }

    fn report(&self) {
        let mut line = String::from("vm-timing (mean µs over all requests):");
        for (index, name) in PHASES.iter().enumerate() {
            let total = self.total_ns.get(index).map_or(0, Cell::get);
            let count = self.count.get(index).map_or(0, Cell::get).max(1);
            // Tenths of a µs in integers: float formatting would add ~15 KB to the .wasm.
            let tenths = total / count / 100;
            line.push_str(&format!(" {name}={}.{}", tenths / 10, tenths % 10));
        }
        // warn: profiling builds run with Envoy at its usual warn level.
        warn!("{line}");
    }
}
