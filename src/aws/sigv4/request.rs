//! A request to sign, the payload hash, the SigV4 time stamp, and the signing error.

use std::borrow::Cow;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::time::civil_from_days;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningError(pub(super) String);

impl fmt::Display for SigningError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "signing failed: {}", self.0)
    }
}

impl SigningError {
    pub(super) fn new(reason: &str) -> Self {
        SigningError(reason.to_string())
    }
}

/// One request to sign: `host` is the Host header that will be sent, `path_and_query` is
/// already percent-encoded as it goes on the wire, `headers` are the other headers to sign
/// (lower-case names; never user-agent or hop-by-hop headers).
pub struct RequestToSign<'a> {
    pub method: &'a str,
    pub host: &'a str,
    pub path_and_query: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
    /// Send and sign `x-amz-content-sha256`, so the payload hash is explicit rather than
    /// recomputed by the receiver (some AWS stand-ins hash an empty body wrongly).
    pub content_sha256_header: bool,
}

/// Hex SHA-256 of the empty payload.
pub(crate) const EMPTY_PAYLOAD_SHA256: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

pub(super) const ALGORITHM: &str = "AWS4-HMAC-SHA256";
pub(super) const X_AMZ_DATE: &str = "x-amz-date";
pub(super) const X_AMZ_SECURITY_TOKEN: &str = "x-amz-security-token";
pub(super) const X_AMZ_CONTENT_SHA256: &str = "x-amz-content-sha256";

/// Headers `aws-sigv4` never signs with its default settings.
pub(super) const EXCLUDED_HEADERS: [&str; 4] = [
    "authorization",
    "user-agent",
    "x-amzn-trace-id",
    "transfer-encoding",
];

/// SHA-256 of a payload fed in pieces, for [`SigningKeyCache::sign_with_payload_hash`].
#[cfg(test)]
#[derive(Clone, Default)]
pub(crate) struct PayloadHasher(pub(super) Sha256);

#[cfg(test)]
impl PayloadHasher {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The lower-case hex digest.
    pub(crate) fn finish(self) -> String {
        hex_string(&self.0.finalize())
    }
}

#[cfg(test)]
impl fmt::Debug for PayloadHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PayloadHasher")
    }
}

/// Lower-case hex SHA-256 of a payload, as signed.
pub(crate) fn payload_sha256(body: &[u8]) -> Cow<'static, str> {
    if body.is_empty() {
        Cow::Borrowed(EMPTY_PAYLOAD_SHA256)
    } else {
        Cow::Owned(hex_string(&Sha256::digest(body)))
    }
}

/// Lower-case hex of a SHA-256 digest (32 bytes), on the stack.
pub(super) fn hex_digest(digest: &[u8]) -> [u8; 64] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 64];
    // A plain indexed loop: the release build is optimised for size, which leaves an
    // iterator chain here as calls per byte.
    let mut i = 0;
    while i < 32 && i < digest.len() {
        let b = digest[i];
        out[2 * i] = DIGITS[usize::from(b >> 4)];
        out[2 * i + 1] = DIGITS[usize::from(b & 0x0f)];
        i += 1;
    }
    out
}

/// Hex digits are ASCII: never the empty fallback.
pub(super) fn ascii_str(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap_or_default()
}

pub(super) fn hex_string(digest: &[u8]) -> String {
    ascii_str(&hex_digest(digest)).to_string()
}

/// Days since 1970-01-01 and the second of that day (UTC).
pub(super) fn split_time(now: SystemTime) -> Result<(i64, u32), SigningError> {
    let seconds = match now.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).ok(),
        Err(before) => {
            let before = before.duration();
            i64::try_from(before.as_secs())
                .ok()
                .map(|s| -s - i64::from(before.subsec_nanos() > 0))
        }
    };
    // Years 0000-9999, as `aws-sigv4` formats them.
    const MIN: i64 = -62_167_219_200; // 0000-01-01T00:00:00Z
    const MAX: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    match seconds {
        Some(s) if (MIN..=MAX).contains(&s) => Ok((
            s.div_euclid(86_400),
            u32::try_from(s.rem_euclid(86_400)).unwrap_or(0),
        )),
        _ => Err(SigningError::new("time out of range")),
    }
}

/// `YYYYMMDDTHHMMSSZ`, on the stack.
pub(super) struct DateTime(pub(super) [u8; 16]);

impl DateTime {
    pub(super) fn as_str(&self) -> &str {
        ascii_str(&self.0)
    }
}

/// `YYYYMMDDTHHMMSSZ` (the day within 0000-9999, see [`split_time`]).
pub(super) fn format_date_time(day: i64, second_of_day: u32) -> DateTime {
    let (year, month, dom) = civil_from_days(day);
    let year = u32::try_from(year).unwrap_or(0);
    let mut out = *b"00000000T000000Z";
    for (value, digits) in [
        (year, 0..4),
        (month, 4..6),
        (dom, 6..8),
        (second_of_day / 3600, 9..11),
        (second_of_day / 60 % 60, 11..13),
        (second_of_day % 60, 13..15),
    ] {
        write_digits(&mut out[digits], value);
    }
    DateTime(out)
}

/// `value`'s last `out.len()` decimal digits, zero-padded.
pub(super) fn write_digits(out: &mut [u8], mut value: u32) {
    for digit in out.iter_mut().rev() {
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
}
