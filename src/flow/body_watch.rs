//! Requests whose body never reaches the filter. The filter pauses a request in its headers
//! until its body has come; Envoy hands a filter the body of such a request only when its
//! Wasm configuration has `allow_on_headers_stop_iteration: true`, which Istio's WasmPlugin
//! and Envoy Gateway's EnvoyExtensionPolicy cannot set. Without it the body never comes and
//! the client would wait for the route's timeout. So, until one body has arrived after a
//! pause (which shows the setting is on, for good), every paused request is watched, and one
//! whose body has not begun within [`BODY_WAIT`] is answered with an error naming the
//! setting.

use std::time::Duration;

use crate::credentials::state::Waiters;

/// How long a paused request's body may take to begin before it is taken as never coming.
pub(crate) const BODY_WAIT: Duration = Duration::from_secs(3);

/// The watch of one VM. Times are epoch milliseconds.
#[derive(Debug, Default)]
pub(crate) struct BodyWatch {
    /// A body arrived after a pause in the headers: the setting is on, nothing to watch.
    confirmed: bool,
    /// Paused requests and when their body is due to have begun.
    waiting: Waiters,
    /// Whether the missing setting was logged (once per VM).
    logged: bool,
}

impl BodyWatch {
    /// A request paused in its headers, waiting for its body. `now_ms` reads the clock: only
    /// while the setting is not yet confirmed (a host call saved on every later request).
    pub(crate) fn paused(&mut self, context_id: u32, now_ms: impl FnOnce() -> u64) {
        if !self.confirmed {
            let due = now_ms().saturating_add(crate::time::ms(BODY_WAIT));
            self.waiting.add(context_id, due);
        }
    }

    /// A body callback arrived: the setting is on.
    pub(crate) fn body_arrived(&mut self) {
        self.confirmed = true;
        self.waiting = Waiters::default();
    }

    /// The request ended (answered, or the client went away).
    pub(crate) fn forget(&mut self, context_id: u32) {
        self.waiting.remove(context_id);
    }

    /// Whether a tick has anything to check.
    pub(crate) fn is_idle(&self) -> bool {
        self.waiting.is_empty()
    }

    /// The requests whose body is overdue, oldest first, and whether this is the first time
    /// (to log the cause once).
    pub(crate) fn overdue(&mut self, now_ms: u64) -> (Vec<u32>, bool) {
        let overdue = self.waiting.take_expired(now_ms);
        let first = !overdue.is_empty() && !self.logged;
        if first {
            self.logged = true;
        }
        (overdue, first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: u64 = 3000;

    #[test]
    fn a_body_that_never_comes_is_overdue_after_the_wait() {
        let mut watch = BodyWatch::default();
        watch.paused(1, || 0);
        watch.paused(2, || 1000);
        assert_eq!(watch.overdue(WAIT - 1), (vec![], false));
        assert_eq!(watch.overdue(WAIT), (vec![1], true));
        assert_eq!(watch.overdue(WAIT + 1000), (vec![2], false));
        assert!(watch.is_idle());
    }

    #[test]
    fn one_body_shows_the_setting_is_on_for_good() {
        let mut watch = BodyWatch::default();
        watch.paused(1, || 0);
        watch.body_arrived();
        assert!(watch.is_idle());
        // Confirmed: the clock is not read any more.
        watch.paused(2, || {
            unreachable!("the clock is read after the setting was confirmed")
        });
        assert!(watch.is_idle());
        assert_eq!(watch.overdue(10 * WAIT), (vec![], false));
    }

    #[test]
    fn ended_requests_are_not_answered_again() {
        let mut watch = BodyWatch::default();
        watch.paused(1, || 0);
        watch.paused(2, || 0);
        watch.forget(1);
        assert_eq!(watch.overdue(WAIT), (vec![2], true));
    }
}
