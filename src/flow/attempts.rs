//! Requests rewritten in place can be retried by Envoy's router, which then gives the
//! upstream filter the request's header map as the previous attempt left it: the map is the
//! request's own, so the client's headers are gone and the Invoke's (signature included) are
//! there instead. An event built from that map would carry the signature to the function.
//! So the client's request, as an event needs it, is kept for retries under a random key that
//! travels on the rewritten request in [`ATTEMPT_HEADER`] (unsigned; Lambda ignores it).
//! Unguessable keys, not request ids: a client cannot pick another request's key.

use std::collections::VecDeque;
use std::fmt;
use std::rc::Rc;

use sha2::{Digest, Sha256};

use crate::flow::RequestMeta;

/// Carries the key of the kept request on the rewritten request.
pub(crate) const ATTEMPT_HEADER: &str = "x-proxy-wasm-lambda-attempt";

/// How many requests are kept per VM: a retry follows its attempt within the route's
/// timeout, while many other requests pass; a few KB each.
pub(crate) const KEPT_REQUESTS: usize = 256;

/// The last [`KEPT_REQUESTS`] client requests with event payloads, oldest first out.
#[derive(Debug)]
pub(crate) struct AttemptStash {
    entries: VecDeque<(String, Rc<RequestMeta>)>,
    keys: AttemptKeys,
}

impl AttemptStash {
    /// `seed`: random bytes from the host, once per VM (the keys' secret).
    pub(crate) fn new(seed: [u8; 32]) -> Self {
        AttemptStash {
            entries: VecDeque::new(),
            keys: AttemptKeys { seed, issued: 0 },
        }
    }

    /// Keeps the request under a new key, and returns the key.
    pub(crate) fn keep(&mut self, meta: Rc<RequestMeta>) -> String {
        let key = self.keys.next();
        if self.entries.len() >= KEPT_REQUESTS {
            self.entries.pop_front();
        }
        self.entries.push_back((key.clone(), meta));
        key
    }

    /// The request kept under `key` (it stays: a request can be retried more than once).
    pub(crate) fn get(&self, key: &str) -> Option<Rc<RequestMeta>> {
        self.entries
            .iter()
            .rev()
            .find(|(kept, _)| kept == key)
            .map(|(_, meta)| Rc::clone(meta))
    }
}

/// The first 128 bits of SHA-256(seed ‖ counter), in hex: as hard to guess as random keys
/// while the seed stays in the VM, at one hash block per key instead of host calls for
/// randomness on every request.
struct AttemptKeys {
    seed: [u8; 32],
    issued: u64,
}

impl AttemptKeys {
    fn next(&mut self) -> String {
        self.issued = self.issued.wrapping_add(1);
        let digest = Sha256::new()
            .chain_update(self.seed)
            .chain_update(self.issued.to_le_bytes())
            .finalize();
        let mut key = String::with_capacity(32);
        crate::hex::push_hex(&mut key, digest.get(..16).unwrap_or_default());
        key
    }
}

/// The seed is the keys' secret: never printed.
impl fmt::Debug for AttemptKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AttemptKeys")
            .field("seed", &"<redacted>")
            .field("issued", &self.issued)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(path: &str) -> Rc<RequestMeta> {
        Rc::new(RequestMeta {
            method: "POST".into(),
            path: path.into(),
            ..RequestMeta::default()
        })
    }

    #[test]
    fn kept_requests_are_found_by_key_and_stay_for_further_retries() {
        let mut stash = AttemptStash::new([7; 32]);
        let k1 = stash.keep(meta("/a"));
        let k2 = stash.keep(meta("/b"));
        assert_ne!(k1, k2);
        assert_eq!(
            stash.get(&k1).map(|m| m.path.clone()),
            Some("/a".to_string())
        );
        assert_eq!(
            stash.get(&k1).map(|m| m.path.clone()),
            Some("/a".to_string())
        );
        assert_eq!(
            stash.get(&k2).map(|m| m.path.clone()),
            Some("/b".to_string())
        );
        assert_eq!(stash.get("unknown"), None);
    }

    #[test]
    fn the_oldest_request_goes_first() {
        let mut stash = AttemptStash::new([7; 32]);
        let keys: Vec<String> = (0..=KEPT_REQUESTS)
            .map(|n| stash.keep(meta(&format!("/{n}"))))
            .collect();
        assert_eq!(stash.get(&keys[0]), None);
        assert!(stash.get(&keys[1]).is_some());
        assert!(stash.get(&keys[KEPT_REQUESTS]).is_some());
    }

    /// 128-bit hex keys, all different, that depend on the seed (another VM's keys, or keys
    /// from a known seed, do not find this VM's requests), and a seed never printed.
    #[test]
    fn keys_are_distinct_128_bit_hex_from_the_seed() {
        let mut stash = AttemptStash::new([1; 32]);
        let mut other = AttemptStash::new([2; 32]);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let key = stash.keep(Rc::default());
            assert_eq!(key.len(), 32);
            assert!(key
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
            assert!(seen.insert(key));
        }
        let theirs = other.keep(Rc::default());
        assert!(!seen.contains(&theirs));
        let printed = format!("{stash:?}");
        assert!(
            printed.contains("<redacted>") && !printed.contains("[1, 1"),
            "{printed}"
        );
    }
}
