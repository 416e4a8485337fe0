//! [`SigningKeyCache`]: the per-request signer.

use std::cell::Cell;
use std::fmt;
use std::time::SystemTime;

use crate::aws::credentials::Credentials;
use crate::secret::Secret;

use super::canonical::*;
use super::key::*;
use super::request::*;

/// Signs requests, keeping the signing key of the last (credentials, day, region, service)
/// it signed for. Single-threaded (one per Wasm VM); used through `&self`.
#[derive(Default)]
pub struct SigningKeyCache {
    // Boxed: taken out of and put back in its cell on every signature.
    pub(super) entry: Cell<Option<Box<CachedKey>>>,
    pub(super) template: Cell<Option<Box<CanonicalTemplate>>>,
    pub(super) derivations: Cell<u64>,
}

impl fmt::Debug for SigningKeyCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKeyCache")
            .field("derivations", &self.derivations.get())
            .finish_non_exhaustive()
    }
}

impl SigningKeyCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many signing keys were derived (cache misses) so far.
    pub fn derivations(&self) -> u64 {
        self.derivations.get()
    }

    /// Forgets the cached signing key.
    pub fn clear(&self) {
        self.entry.set(None);
    }

    /// Same inputs and output as [`sign_request`]: the headers to add (`x-amz-date`,
    /// `authorization`, `x-amz-content-sha256` when asked, `x-amz-security-token` with a
    /// session token).
    pub fn sign(
        &self,
        request: &RequestToSign<'_>,
        credentials: &Credentials,
        region: &str,
        service: &str,
        now: SystemTime,
    ) -> Result<Vec<(&'static str, String)>, SigningError> {
        let payload_hash = payload_sha256(request.body);
        self.sign_hashed(request, &payload_hash, credentials, region, service, now)
    }

    /// As [`SigningKeyCache::sign`], with the payload's SHA-256 (64 lower-case hex digits,
    /// e.g. from [`PayloadHasher`]) computed by the caller: `request.body` is not read.
    pub fn sign_with_payload_hash(
        &self,
        request: &RequestToSign<'_>,
        payload_sha256: &str,
        credentials: &Credentials,
        region: &str,
        service: &str,
        now: SystemTime,
    ) -> Result<Vec<(&'static str, String)>, SigningError> {
        if payload_sha256.len() != 64
            || !payload_sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(SigningError::new(
                "payload hash is not 64 lower-case hex digits",
            ));
        }
        self.sign_hashed(request, payload_sha256, credentials, region, service, now)
    }

    pub(super) fn sign_hashed(
        &self,
        request: &RequestToSign<'_>,
        payload_hash: &str,
        credentials: &Credentials,
        region: &str,
        service: &str,
        now: SystemTime,
    ) -> Result<Vec<(&'static str, String)>, SigningError> {
        let (day, second_of_day) = split_time(now)?;
        let date_time = format_date_time(day, second_of_day);
        let date_time = date_time.as_str();
        let token = credentials.session_token.as_ref().map(Secret::expose);
        let template = match self.template.take() {
            Some(template) if template.made_from(request, token.is_some()) => {
                if let Some(token) = token {
                    check_header_value(token)?;
                }
                template
            }
            _ => Box::new(CanonicalParts::new(request, token)?.template(request)),
        };

        let entry = match self.entry.take() {
            Some(entry) if entry.matches(credentials, day, region, service) => entry,
            _ => {
                self.derivations.set(self.derivations.get().wrapping_add(1));
                let date = date_time.get(..8).unwrap_or_default();
                match CachedKey::derive(credentials, day, date, region, service) {
                    Ok(entry) => Box::new(entry),
                    Err(error) => {
                        self.template.set(Some(template));
                        return Err(error);
                    }
                }
            }
        };
        let result = template.sign(&entry, payload_hash, date_time, token);
        self.template.set(Some(template));
        self.entry.set(Some(entry));
        Ok(result)
    }
}
