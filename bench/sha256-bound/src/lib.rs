//! `hash_rounds(n)`: SHA-256 of a 256 KiB buffer, `n` times (exported to the Wasm host).

use sha2::{Digest, Sha256};

pub const BODY_BYTES: usize = 256 * 1024;

/// Hashes a `BODY_BYTES` buffer `rounds` times; returns a byte of the digests so that the
/// work cannot be optimised away.
#[no_mangle]
pub extern "C" fn hash_rounds(rounds: u32) -> u32 {
    let body = vec![7u8; BODY_BYTES];
    let mut fold = 0u32;
    for _ in 0..rounds {
        let digest = Sha256::digest(&body);
        fold = fold.wrapping_add(u32::from(digest[0]));
    }
    fold
}
