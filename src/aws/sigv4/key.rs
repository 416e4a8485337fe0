//! The day's signing key, derived once, and the HMAC states the signatures start from.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::aws::credentials::Credentials;
use crate::secret::Secret;

use super::request::*;

/// A derived signing key and what it was derived for. The key (and the secret kept to
/// recognise the credentials) are never printed.
pub(super) struct CachedKey {
    pub(super) access_key_id: String,
    pub(super) secret: Secret,
    pub(super) day: i64,
    pub(super) region: String,
    pub(super) service: String,
    /// `YYYYMMDD/region/service/aws4_request`.
    pub(super) scope: String,
    /// HMAC-SHA256 (RFC 2104) under the signing key: SHA-256 after the key XOR ipad block,
    /// and after the key XOR opad block. The same for every signature of the day, so each
    /// signature starts from clones rather than hashing the two pad blocks again.
    pub(super) inner_hmac: Sha256,
    pub(super) outer_hmac: Sha256,
}

impl fmt::Debug for CachedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedKey")
            .field("access_key_id", &self.access_key_id)
            .field("scope", &self.scope)
            .field("hmac_key_state", &"*****")
            .finish_non_exhaustive()
    }
}

impl CachedKey {
    pub(super) fn matches(
        &self,
        credentials: &Credentials,
        day: i64,
        region: &str,
        service: &str,
    ) -> bool {
        self.day == day
            && self.region == region
            && self.service == service
            && self.access_key_id == credentials.access_key_id
            && self.secret.expose() == credentials.secret_access_key.expose()
    }

    pub(super) fn derive(
        credentials: &Credentials,
        day: i64,
        date: &str,
        region: &str,
        service: &str,
    ) -> Result<Self, SigningError> {
        let key = signing_key(
            credentials.secret_access_key.expose(),
            date,
            region,
            service,
        );
        let (inner_hmac, outer_hmac) = hmac_key_states(&key);
        Ok(CachedKey {
            access_key_id: credentials.access_key_id.clone(),
            secret: credentials.secret_access_key.clone(),
            day,
            region: region.to_string(),
            service: service.to_string(),
            scope: format!("{date}/{region}/{service}/aws4_request"),
            inner_hmac,
            outer_hmac,
        })
    }

    /// Lower-case hex HMAC-SHA256 under the signing key of `message`, given in pieces.
    pub(super) fn signature(&self, message: &[&[u8]]) -> [u8; 64] {
        let mut inner = self.inner_hmac.clone();
        for piece in message {
            inner.update(piece);
        }
        let mut outer = self.outer_hmac.clone();
        outer.update(inner.finalize());
        hex_digest(&outer.finalize())
    }
}

/// SigV4's signing key: `HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service),
/// "aws4_request")`, as aws-sigv4's `generate_signing_key` derives it (held to it by a test);
/// written here so that the .wasm carries one HMAC, over the one SHA-256 it already has.
pub(super) fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let mut secret_key = Vec::with_capacity(4 + secret.len());
    secret_key.extend_from_slice(b"AWS4");
    secret_key.extend_from_slice(secret.as_bytes());
    let day = hmac_sha256(&secret_key, date.as_bytes());
    let region = hmac_sha256(&day, region.as_bytes());
    let service = hmac_sha256(&region, service.as_bytes());
    hmac_sha256(&service, b"aws4_request")
}

/// HMAC-SHA256 (RFC 2104): a key longer than the 64-byte block is hashed first.
pub(super) fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let hashed;
    let key = if key.len() > 64 {
        hashed = Sha256::digest(key);
        hashed.as_slice()
    } else {
        key
    };
    let mut inner_pad = [0x36u8; 64];
    let mut outer_pad = [0x5cu8; 64];
    for ((inner, outer), k) in inner_pad.iter_mut().zip(outer_pad.iter_mut()).zip(key) {
        *inner ^= k;
        *outer ^= k;
    }
    let mut inner = Sha256::new_with_prefix(inner_pad);
    inner.update(message);
    let mut outer = Sha256::new_with_prefix(outer_pad);
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// The SHA-256 states after one block of `key` XOR ipad, and of `key` XOR opad (RFC 2104;
/// a 32-byte key is shorter than the 64-byte block, so it is zero-padded, not hashed).
pub(super) fn hmac_key_states(key: &[u8; 32]) -> (Sha256, Sha256) {
    let mut inner_pad = [0x36u8; 64];
    let mut outer_pad = [0x5cu8; 64];
    for ((inner, outer), k) in inner_pad.iter_mut().zip(outer_pad.iter_mut()).zip(key) {
        *inner ^= k;
        *outer ^= k;
    }
    (
        Sha256::new_with_prefix(inner_pad),
        Sha256::new_with_prefix(outer_pad),
    )
}
