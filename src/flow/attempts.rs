//! Requests rewritten in place can be retried by Envoy's router, which then gives the
//! upstream filter the request's header map as the previous attempt left it: the map is the
//! request's own, so the client's headers are gone and the Invoke's (signature included) are
//! there instead. An event built from that map would carry the signature to the function.
//! So the client's request, as an event needs it, is kept for retries under a random key that
//! travels on the rewritten request in [`ATTEMPT_HEADER`] (unsigned; Lambda ignores it).
//! Random keys, not request ids: a client cannot pick another request's key.

use std::collections::VecDeque;

use crate::flow::RequestMeta;

/// Carries the key of the kept request on the rewritten request.
pub(crate) const ATTEMPT_HEADER: &str = "x-proxy-wasm-lambda-attempt";

/// How many requests are kept per VM: a retry follows its attempt within the route's
/// timeout, while many other requests pass; a few KB each.
pub(crate) const KEPT_REQUESTS: usize = 256;

/// The last [`KEPT_REQUESTS`] client requests with event payloads, oldest first out.
#[derive(Debug, Default)]
pub(crate) struct AttemptStash {
    entries: VecDeque<(String, RequestMeta)>,
}

impl AttemptStash {
    pub(crate) fn keep(&mut self, key: String, meta: RequestMeta) {
        if self.entries.len() >= KEPT_REQUESTS {
            self.entries.pop_front();
        }
        self.entries.push_back((key, meta));
    }

    /// The request kept under `key` (it stays: a request can be retried more than once).
    pub(crate) fn get(&self, key: &str) -> Option<RequestMeta> {
        self.entries
            .iter()
            .rev()
            .find(|(kept, _)| kept == key)
            .map(|(_, meta)| meta.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(path: &str) -> RequestMeta {
        RequestMeta {
            method: "POST".into(),
            path: path.into(),
            ..RequestMeta::default()
        }
    }

    #[test]
    fn kept_requests_are_found_by_key_and_stay_for_further_retries() {
        let mut stash = AttemptStash::default();
        stash.keep("k1".into(), meta("/a"));
        stash.keep("k2".into(), meta("/b"));
        assert_eq!(stash.get("k1").map(|m| m.path), Some("/a".to_string()));
        assert_eq!(stash.get("k1").map(|m| m.path), Some("/a".to_string()));
        assert_eq!(stash.get("k2").map(|m| m.path), Some("/b".to_string()));
        assert_eq!(stash.get("unknown"), None);
    }

    #[test]
    fn the_oldest_request_goes_first() {
        let mut stash = AttemptStash::default();
        for n in 0..=KEPT_REQUESTS {
            stash.keep(format!("k{n}"), meta(&format!("/{n}")));
        }
        assert_eq!(stash.get("k0"), None);
        assert!(stash.get("k1").is_some());
        assert!(stash.get(&format!("k{KEPT_REQUESTS}")).is_some());
    }
}
