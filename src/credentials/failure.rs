//! How a credentials fetch failed: one class for every provider (STS AssumeRole, IMDS, the
//! container endpoint), which is also the error class of the 503 a waiting request gets.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureClass {
    /// No answer, a 5xx, or an Envoy local reply: retried with backoff.
    Unavailable,
    /// Throttling, RequestLimitExceeded, or HTTP 429.
    Throttled,
    /// The caller may not have the credentials (a wrong ExternalId, IMDS disabled).
    AccessDenied,
    /// The caller's own credential is not accepted (bad source keys, a wrong container
    /// authorization token).
    InvalidCredentials,
    /// The source credentials' session token has expired.
    ExpiredToken,
    /// STS is not activated in the region.
    RegionDisabled,
    /// Any other 4xx: needs a change in the configuration or the deployment.
    Rejected,
    /// An answer that is not credentials.
    BadResponse,
}

impl FailureClass {
    pub const ALL: [FailureClass; 8] = [
        FailureClass::Unavailable,
        FailureClass::Throttled,
        FailureClass::AccessDenied,
        FailureClass::InvalidCredentials,
        FailureClass::ExpiredToken,
        FailureClass::RegionDisabled,
        FailureClass::Rejected,
        FailureClass::BadResponse,
    ];

    /// The class's name in logs, error bodies and the shared record (the `sts_` names clients
    /// already handle, whichever provider failed).
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::Unavailable => "sts_unavailable",
            FailureClass::Throttled => "sts_throttled",
            FailureClass::AccessDenied => "sts_access_denied",
            FailureClass::InvalidCredentials => "sts_invalid_credentials",
            FailureClass::ExpiredToken => "sts_expired_token",
            FailureClass::RegionDisabled => "sts_region_disabled",
            FailureClass::Rejected => "sts_rejected",
            FailureClass::BadResponse => "sts_bad_response",
        }
    }

    pub fn parse(name: &str) -> Option<FailureClass> {
        FailureClass::ALL.into_iter().find(|c| c.as_str() == name)
    }

    /// Transient failures, which a retry soon may fix. The others need a change in IAM or
    /// the configuration (retrying them with backoff is still harmless).
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            FailureClass::Throttled | FailureClass::Unavailable | FailureClass::BadResponse
        )
    }

    /// The failure of an HTTP status that is not success, by the usual rules.
    pub fn of_status(status: Option<u16>) -> FailureClass {
        match status {
            None => FailureClass::Unavailable,
            Some(429) => FailureClass::Throttled,
            Some(401) => FailureClass::InvalidCredentials,
            Some(403) => FailureClass::AccessDenied,
            Some(400..=499) => FailureClass::Rejected,
            Some(500..=599) => FailureClass::Unavailable,
            Some(_) => FailureClass::BadResponse,
        }
    }
}

impl fmt::Display for FailureClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Compares with a class's name (tests and logs speak in names).
impl PartialEq<&str> for FailureClass {
    fn eq(&self, name: &&str) -> bool {
        self.as_str() == *name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for class in FailureClass::ALL {
            assert_eq!(FailureClass::parse(class.as_str()), Some(class));
        }
        assert_eq!(FailureClass::parse("sts_other"), None);
    }
}
