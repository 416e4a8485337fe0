//! Fixtures the unit tests of several modules share.

use std::time::{Duration, SystemTime};

use crate::aws::credentials::Credentials;
use crate::http::CallAnswer;
use crate::secret::Secret;

/// The AWS SigV4 test suite's example keys, with an optional session token.
pub(crate) fn example_credentials(token: Option<&str>) -> Credentials {
    Credentials {
        access_key_id: "AKIDEXAMPLE".into(),
        secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
        session_token: token.map(Secret::new),
    }
}

/// 2026-11-23T10:00:00Z, the tests' fixed "now".
pub(crate) fn fixed_time() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_428_000)
}

/// An answer to a dispatched call.
pub(crate) fn call_answer(status: u16, headers: &[(&str, &str)], body: &str) -> CallAnswer {
    CallAnswer {
        status: Some(status),
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        body: body.as_bytes().to_vec(),
        unread_body_bytes: None,
    }
}
