//! Ambient credentials: what the EC2 instance role (IMDSv2, [`crate::credentials::imds`]) and the
//! container credentials endpoint (ECS, EKS Pod Identity, [`crate::credentials::container`])
//! hand out, their shared JSON answer, and the failures of fetching them.
//!
//! Failures use the same classes as STS AssumeRole (`sts_unavailable`, `sts_access_denied`,
//! …: the 503 classes clients already handle); the message says which endpoint failed.

use std::fmt;

use serde_json::Value;

use crate::credentials::sts::{temporary_credentials, TemporaryCredentials};

/// Ambient answers are read up to this many bytes (real ones are under 2 KB).
pub(crate) const MAX_AMBIENT_ANSWER_BYTES: usize = 16 * 1024;
/// Error messages from an endpoint are kept for logs, cut to this many characters.
const MAX_MESSAGE_CHARS: usize = 256;

/// How a fetch failed: the class every provider shares.
pub(crate) use crate::credentials::failure::FailureClass as Failure;

/// A failed ambient fetch. `Display` never shows a secret: reasons are written by this
/// crate, with at most an endpoint's (cleaned, cut) error message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AmbientError {
    pub failure: Failure,
    pub reason: String,
}

impl AmbientError {
    pub fn new(failure: Failure, reason: impl Into<String>) -> Self {
        AmbientError {
            failure,
            reason: reason.into(),
        }
    }

    pub fn class(&self) -> Failure {
        self.failure
    }

    /// The failure of a non-success answer from `what` (e.g. "IMDS GET /latest/…").
    pub fn of_answer(what: &str, status: Option<u16>, body: &[u8]) -> Self {
        let failure = Failure::of_status(status);
        let reason = match status {
            None => format!("no answer from {what}"),
            Some(status) => match error_message(body) {
                Some(message) => format!("{what} answered HTTP {status}: {message}"),
                None => format!("{what} answered HTTP {status}"),
            },
        };
        AmbientError::new(failure, reason)
    }
}

impl fmt::Display for AmbientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.class(), self.reason)
    }
}

fn clean(message: &str) -> String {
    message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_MESSAGE_CHARS)
        .collect()
}

/// The message of an error answer: ECS writes `{"code": …, "message": …}`, IMDS a `Code`
/// and `Message`; anything else is not shown (it might echo what was sent).
fn error_message(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let object = value.as_object()?;
    let pick = |keys: [&str; 2]| {
        keys.iter()
            .find_map(|k| object.get(*k).and_then(Value::as_str))
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    match (pick(["code", "Code"]), pick(["message", "Message"])) {
        (Some(code), Some(message)) => Some(clean(&format!("{code}: {message}"))),
        (Some(text), None) | (None, Some(text)) => Some(clean(text)),
        (None, None) => None,
    }
}

/// The credentials JSON of IMDS (`security-credentials/<role>`) and of the container
/// endpoint: `AccessKeyId`, `SecretAccessKey`, `Token`, `Expiration` (RFC 3339, UTC). IMDS
/// adds `Code` (`Success` or why not), `LastUpdated` and `Type`; ECS adds `RoleArn`, EKS Pod
/// Identity `AccountId`; other members are ignored. `what` names the endpoint in errors.
pub(crate) fn parse_credentials_json(
    what: &str,
    body: &[u8],
) -> Result<TemporaryCredentials, AmbientError> {
    let bad = |reason: String| AmbientError::new(Failure::BadResponse, reason);
    let value: Value =
        serde_json::from_slice(body).map_err(|_| bad(format!("{what} answer is not JSON")))?;
    let object = value
        .as_object()
        .ok_or_else(|| bad(format!("{what} answer is not a JSON object")))?;
    if let Some(code) = object.get("Code") {
        let code = code.as_str().unwrap_or_default();
        if code != "Success" {
            // e.g. AssumeRoleUnauthorizedAccess: the instance profile's role cannot be used.
            let message = object
                .get("Message")
                .and_then(Value::as_str)
                .map(|m| format!(": {}", clean(m)))
                .unwrap_or_default();
            return Err(AmbientError::new(
                Failure::AccessDenied,
                format!("{what} answered Code '{}'{message}", clean(code)),
            ));
        }
    }
    let field = |name: &'static str| -> Result<&str, AmbientError> {
        object
            .get(name)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| bad(format!("{what} credentials have no {name}")))
    };
    temporary_credentials(what, "Token", field, bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use std::time::{Duration, SystemTime};

    /// The example of the EC2 user guide ("Retrieve security credentials from instance
    /// metadata").
    pub(crate) const IMDS_EXAMPLE: &str = r#"{
  "Code" : "Success",
  "LastUpdated" : "2012-04-26T16:39:16Z",
  "Type" : "AWS-HMAC",
  "AccessKeyId" : "ASIAIOSFODNN7EXAMPLE",
  "SecretAccessKey" : "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
  "Token" : "IQoJb3JpZ2luX2VjEMPLE-token",
  "Expiration" : "2017-05-17T15:09:54Z"
}"#;

    #[test]
    fn imds_example_is_parsed() {
        let t = parse_credentials_json("IMDS", IMDS_EXAMPLE.as_bytes()).unwrap();
        assert_eq!(t.credentials.access_key_id, "ASIAIOSFODNN7EXAMPLE");
        assert_eq!(
            t.credentials.secret_access_key.expose(),
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
        );
        assert_eq!(
            t.credentials.session_token.as_ref().map(Secret::expose),
            Some("IQoJb3JpZ2luX2VjEMPLE-token")
        );
        assert_eq!(
            t.expiration,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_495_033_794)
        );
        assert!(!format!("{t:?}").contains("wJalr"));
        assert!(!format!("{t:?}").contains("IQoJ"));
    }

    #[test]
    fn ecs_and_pod_identity_answers_are_parsed() {
        let ecs = br#"{"AccessKeyId":"ASIAECSEXAMPLE0001","Expiration":"2026-11-23T10:00:00Z","RoleArn":"arn:aws:iam::123456789012:role/task","SecretAccessKey":"ecs-secret","Token":"ecs-token"}"#;
        let t = parse_credentials_json("container", ecs).unwrap();
        assert_eq!(t.credentials.access_key_id, "ASIAECSEXAMPLE0001");
        let eks = br#"{"AccessKeyId":"ASIAEKSEXAMPLE0001","SecretAccessKey":"eks-secret","Token":"eks-token","AccountId":"123456789012","Expiration":"2026-11-23T10:00:00.5Z"}"#;
        let t = parse_credentials_json("container", eks).unwrap();
        assert_eq!(
            t.expiration,
            SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_428_000_500)
        );
    }

    #[test]
    fn code_other_than_success_is_access_denied() {
        let body = br#"{"Code":"AssumeRoleUnauthorizedAccess","Message":"EC2 cannot assume the role","LastUpdated":"2024-01-01T00:00:00Z"}"#;
        let e = parse_credentials_json("IMDS", body).unwrap_err();
        assert_eq!(e.class(), "sts_access_denied");
        assert!(
            e.to_string().contains("AssumeRoleUnauthorizedAccess"),
            "{e}"
        );
    }

    #[test]
    fn broken_answers_are_bad_responses_without_secrets() {
        let cases: [&[u8]; 9] = [
            b"",
            b"not json",
            b"[1]",
            br#"{"AccessKeyId":"A","SecretAccessKey":"topsecretvalue","Token":"t"}"#,
            br#"{"AccessKeyId":"A","SecretAccessKey":"topsecretvalue","Token":"t","Expiration":"tomorrow"}"#,
            br#"{"AccessKeyId":"A","SecretAccessKey":"topsecretvalue","Token":"t","Expiration":"2017-05-17T15:09:54+00:00"}"#,
            br#"{"AccessKeyId":"A\nB","SecretAccessKey":"topsecretvalue","Token":"t","Expiration":"2017-05-17T15:09:54Z"}"#,
            br#"{"AccessKeyId":"A","SecretAccessKey":"topsecretvalue","Token":"t\u0000","Expiration":"2017-05-17T15:09:54Z"}"#,
            br#"{"AccessKeyId":5,"SecretAccessKey":"topsecretvalue","Token":"t","Expiration":"2017-05-17T15:09:54Z"}"#,
        ];
        for body in cases {
            let e = parse_credentials_json("IMDS", body).unwrap_err();
            assert_eq!(e.class(), "sts_bad_response", "{body:?}");
            assert!(!e.to_string().contains("topsecretvalue"), "{e}");
        }
    }

    #[test]
    fn statuses_map_to_classes() {
        let cases = [
            (None, "sts_unavailable"),
            (Some(500), "sts_unavailable"),
            (Some(503), "sts_unavailable"),
            (Some(429), "sts_throttled"),
            (Some(401), "sts_invalid_credentials"),
            (Some(403), "sts_access_denied"),
            (Some(404), "sts_rejected"),
            (Some(400), "sts_rejected"),
            (Some(302), "sts_bad_response"),
        ];
        for (status, class) in cases {
            assert_eq!(
                AmbientError::of_answer("x", status, b"").class(),
                class,
                "{status:?}"
            );
        }
    }

    #[test]
    fn error_messages_are_kept_only_from_json() {
        let e = AmbientError::of_answer(
            "container endpoint",
            Some(400),
            br#"{"code":"InvalidIdentityToken","message":"The token is expired"}"#,
        );
        assert_eq!(
            e.to_string(),
            "sts_rejected: container endpoint answered HTTP 400: InvalidIdentityToken: The token is expired"
        );
        let e = AmbientError::of_answer("IMDS", Some(401), b"<html>secret-ish echo</html>");
        assert!(!e.to_string().contains("echo"), "{e}");
    }
}
