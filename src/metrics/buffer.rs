//! Metric moves kept in the VM and handed to the host on the root's tick, so that a request
//! costs no host call per counter: `/stats` lags by at most one tick. Counter and gauge
//! moves are summed per metric; histogram values are kept one by one (up to
//! [`MAX_PENDING_VALUES`], after which the shell flushes at once).

/// Histogram values kept before a flush is due regardless of the tick.
pub(crate) const MAX_PENDING_VALUES: usize = 1024;

/// The moves not yet given to the host, by host metric id.
#[derive(Debug, Default)]
pub(crate) struct MetricBuffer {
    deltas: Vec<(u32, i64)>,
    values: Vec<(u32, u64)>,
}

/// What a flush hands to the host.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Flush {
    /// `increment_metric(id, delta)`, one per metric that moved (never a zero delta).
    pub deltas: Vec<(u32, i64)>,
    /// `record_metric(id, value)`, in the order they were recorded.
    pub values: Vec<(u32, u64)>,
}

impl MetricBuffer {
    /// Adds `delta` to a counter or gauge.
    pub(crate) fn add(&mut self, id: u32, delta: i64) {
        match self.deltas.iter_mut().find(|(i, _)| *i == id) {
            Some((_, sum)) => *sum = sum.saturating_add(delta),
            None => self.deltas.push((id, delta)),
        }
    }

    /// Keeps a histogram value; true when the buffer is full and should be flushed now.
    pub(crate) fn record(&mut self, id: u32, value: u64) -> bool {
        self.values.push((id, value));
        self.values.len() >= MAX_PENDING_VALUES
    }

    /// Everything pending, leaving the buffer empty.
    pub(crate) fn take(&mut self) -> Flush {
        let mut deltas = std::mem::take(&mut self.deltas);
        deltas.retain(|(_, delta)| *delta != 0);
        Flush {
            deltas,
            values: std::mem::take(&mut self.values),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_summed_per_metric_and_values_kept_in_order() {
        let mut buffer = MetricBuffer::default();
        for _ in 0..3 {
            buffer.add(7, 1);
        }
        buffer.add(9, 1);
        buffer.add(4, 1);
        buffer.add(4, -1);
        assert!(!buffer.record(12, 30));
        assert!(!buffer.record(12, 10));
        assert_eq!(
            buffer.take(),
            Flush {
                deltas: vec![(7, 3), (9, 1)],
                values: vec![(12, 30), (12, 10)],
            }
        );
        assert_eq!(buffer.take(), Flush::default());
    }

    #[test]
    fn a_full_buffer_asks_for_a_flush() {
        let mut buffer = MetricBuffer::default();
        for value in 1..MAX_PENDING_VALUES as u64 {
            assert!(!buffer.record(1, value));
        }
        assert!(buffer.record(1, 0));
        assert_eq!(buffer.take().values.len(), MAX_PENDING_VALUES);
    }
}
