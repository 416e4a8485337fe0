//! Failure lines that stay readable during an outage: per error class, the first failure of
//! each interval is logged, the rest of that interval only counted, and a summary line with
//! the count follows when the interval ends (on the root's tick). So a burst of identical
//! failures writes at most two lines per class, interval and worker.

/// The interval of one class: at most one failure line, then one summary, per interval.
pub(crate) const LOG_INTERVAL_MS: u64 = 10_000;

/// Whether a failure line is written.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Admit {
    Write,
    /// Counted, for the interval's summary.
    Counted,
}

#[derive(Debug)]
struct ClassWindow {
    class: String,
    started_ms: u64,
    suppressed: u64,
}

/// The failure classes seen by one VM and their current intervals.
#[derive(Debug, Default)]
pub(crate) struct LogLimiter {
    windows: Vec<ClassWindow>,
}

impl LogLimiter {
    /// A failure of `class` at `now_ms`: written if it is its class's first in the interval.
    pub(crate) fn admit(&mut self, class: &str, now_ms: u64) -> Admit {
        match self.windows.iter_mut().find(|w| w.class == class) {
            Some(window) if now_ms < window.started_ms.saturating_add(LOG_INTERVAL_MS) => {
                window.suppressed += 1;
                Admit::Counted
            }
            Some(window) => {
                // A summary still due goes out first (from `due`, on the next tick).
                if window.suppressed == 0 {
                    window.started_ms = now_ms;
                    Admit::Write
                } else {
                    window.suppressed += 1;
                    Admit::Counted
                }
            }
            None => {
                self.windows.push(ClassWindow {
                    class: class.to_string(),
                    started_ms: now_ms,
                    suppressed: 0,
                });
                Admit::Write
            }
        }
    }

    /// The summaries due at `now_ms`: each class whose interval is over with failures that
    /// were only counted, and how many. Its next failure is written again.
    pub(crate) fn due(&mut self, now_ms: u64) -> Vec<(String, u64)> {
        let mut due = Vec::new();
        for window in &mut self.windows {
            let over = now_ms >= window.started_ms.saturating_add(LOG_INTERVAL_MS);
            if over && window.suppressed > 0 {
                due.push((window.class.clone(), window.suppressed));
                window.suppressed = 0;
            }
        }
        // Classes quiet for a whole interval are forgotten (the list stays short).
        self.windows.retain(|w| {
            w.suppressed > 0 || now_ms < w.started_ms.saturating_add(2 * LOG_INTERVAL_MS)
        });
        due
    }
}

/// The summary line of `count` failures of `class` that were not written one by one.
pub(crate) fn summary_line(class: &str, count: u64) -> String {
    format!(
        "{count} more {class} failures in the last {} s (one line per class and interval; \
         the counters have them all)",
        LOG_INTERVAL_MS / 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_writes_one_line_then_one_summary_per_interval() {
        let mut limiter = LogLimiter::default();
        assert_eq!(limiter.admit("throttled", 0), Admit::Write);
        for t in 1..1000 {
            assert_eq!(limiter.admit("throttled", t), Admit::Counted);
        }
        // Another class has its own interval.
        assert_eq!(limiter.admit("upstream_timeout", 5), Admit::Write);
        assert!(limiter.due(9_999).is_empty());
        assert_eq!(limiter.due(10_000), vec![("throttled".to_string(), 999)]);
        assert!(limiter.due(10_001).is_empty());
        // After the summary, the next failure is written again and opens a new interval.
        assert_eq!(limiter.admit("throttled", 10_002), Admit::Write);
        assert_eq!(limiter.admit("throttled", 10_003), Admit::Counted);
        assert_eq!(limiter.due(20_002), vec![("throttled".to_string(), 1)]);
    }

    #[test]
    fn a_failure_after_a_quiet_interval_is_written_and_old_classes_are_forgotten() {
        let mut limiter = LogLimiter::default();
        assert_eq!(limiter.admit("throttled", 0), Admit::Write);
        assert!(limiter.due(15_000).is_empty());
        assert_eq!(limiter.admit("throttled", 15_000), Admit::Write);
        assert!(limiter.due(40_000).is_empty());
        assert!(limiter.windows.is_empty());
        // A failure whose interval ended before the tick summarized it is counted into it.
        assert_eq!(limiter.admit("bad_response", 50_000), Admit::Write);
        assert_eq!(limiter.admit("bad_response", 50_001), Admit::Counted);
        assert_eq!(limiter.admit("bad_response", 61_000), Admit::Counted);
        assert_eq!(limiter.due(61_000), vec![("bad_response".to_string(), 2)]);
        assert_eq!(limiter.admit("bad_response", 61_001), Admit::Write);
    }

    #[test]
    fn the_summary_names_class_count_and_interval() {
        assert_eq!(
            summary_line("throttled", 42),
            "42 more throttled failures in the last 10 s (one line per class and interval; \
             the counters have them all)"
        );
    }
}
