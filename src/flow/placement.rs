//! Where the filter sits, told per request from what the host shows.

use std::cell::Cell;

/// Where the filter sits in Envoy's filter chains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placement {
    /// In the HTTP connection manager's `http_filters`: the Invoke is a call the filter
    /// dispatches, and the client gets a local reply.
    Downstream,
    /// In the router's `upstream_http_filters`: the request itself is rewritten into the
    /// Invoke and the answer comes back through the router, so the route's timeout, retry
    /// policy and connection pool apply and no second stream is opened.
    Upstream,
    /// In the HCM with the same filter also upstream (`split_placement`): takes only the
    /// requests that cannot be rewritten in place, so that the upstream twin never has to
    /// dispatch (a local reply there ends the upstream request, and Envoy closes its
    /// HTTP/1 connection).
    DownstreamSplit,
}

/// Tells one plugin's placement. Only an upstream filter sees its upstream host
/// (`upstream.address`) while the request's headers pass. Without `split_placement` a plugin
/// sits in one chain, so once a request has shown the host every later one is upstream too,
/// without the property read (a host call that returns data, about 1.4 µs in Envoy 1.40).
/// With `split_placement` the two chains' filters share one root context in a VM when their
/// `root_id` and configuration are the same (Envoy keys root contexts by both), so there
/// every request is asked. "Not upstream" is never remembered: asking again costs only time.
#[derive(Debug, Default)]
pub(crate) struct PlacementLatch {
    upstream: Cell<bool>,
}

impl PlacementLatch {
    /// `sees_upstream_host` reads the property; `split` is the plugin's `split_placement`.
    pub(crate) fn placement(
        &self,
        sees_upstream_host: impl FnOnce() -> bool,
        split: bool,
    ) -> Placement {
        if self.upstream.get() || sees_upstream_host() {
            self.upstream.set(!split);
            Placement::Upstream
        } else if split {
            Placement::DownstreamSplit
        } else {
            Placement::Downstream
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_once_seen_is_remembered_without_asking_again() {
        let latch = PlacementLatch::default();
        assert_eq!(latch.placement(|| true, false), Placement::Upstream);
        let asked = Cell::new(0);
        let ask = || {
            asked.set(asked.get() + 1);
            false
        };
        assert_eq!(latch.placement(ask, false), Placement::Upstream);
        assert_eq!(latch.placement(ask, false), Placement::Upstream);
        assert_eq!(asked.get(), 0);
    }

    #[test]
    fn with_split_placement_every_request_is_asked() {
        // Both chains' filters may share the root context: its twin's requests must not be
        // taken for upstream ones.
        let latch = PlacementLatch::default();
        assert_eq!(latch.placement(|| true, true), Placement::Upstream);
        assert_eq!(latch.placement(|| false, true), Placement::DownstreamSplit);
        assert_eq!(latch.placement(|| true, true), Placement::Upstream);
        assert_eq!(latch.placement(|| false, true), Placement::DownstreamSplit);
    }

    #[test]
    fn downstream_is_asked_every_time_and_never_remembered() {
        let latch = PlacementLatch::default();
        let asked = Cell::new(0);
        let not_upstream = || {
            asked.set(asked.get() + 1);
            false
        };
        assert_eq!(latch.placement(not_upstream, false), Placement::Downstream);
        assert_eq!(latch.placement(not_upstream, false), Placement::Downstream);
        assert_eq!(asked.get(), 2);
        // A later request that shows the host is upstream.
        assert_eq!(latch.placement(|| true, false), Placement::Upstream);
    }
}
