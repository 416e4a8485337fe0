//! SigV4 signing. Time is passed in (the host clock).
//!
//! [`SigningKeyCache::sign`] is the per-request signer: it writes the canonical request for
//! our known header set and hashes it (the leading blocks shared with the last request to
//! the same function are not hashed again), and reuses the day's signing key (four HMACs)
//! while the credentials, day, region and service stay the same. Key derivation is held to
//! `aws-sigv4`'s `generate_signing_key` by a test; the final HMAC-SHA256 starts from the
//! key's inner and outer hash states, kept with the key.
//!
//! [`sign_request`] is the reference: `aws-sigv4`'s full signer with its default settings.
//! The tests hold the two to byte-identical output (the AWS SigV4 test suite, and thousands
//! of generated requests).

mod canonical;
mod key;
mod reference;
mod request;
mod signer;
#[cfg(test)]
mod tests;

pub use reference::sign_request;
pub use request::RequestToSign;
pub(crate) use request::SigningError;
pub use signer::SigningKeyCache;

#[cfg(test)]
#[allow(unused_imports)]
use {canonical::*, key::*, reference::*, request::*, signer::*};
