//! STS AssumeRole: the validated settings, the signed request, and the answer.
//!
//! The ExternalId is a [`Secret`]: it goes into the request body and nowhere else (no error,
//! `Debug` or `Display` prints it).

use std::fmt;
use std::time::{Duration, SystemTime};

use crate::time::parse_expiration;

use crate::aws::sigv4::{RequestToSign, SigningError, SigningKeyCache};
use crate::aws::xml::XmlElements;
use crate::credentials::failure::FailureClass;
use crate::credentials::Credentials;
use crate::http::is_header_value;
use crate::http::OutboundRequest;
use crate::secret::Secret;

/// The XML namespace of STS answers.
pub(crate) const STS_NAMESPACE: &str = "https://sts.amazonaws.com/doc/2011-06-15/";
pub(crate) const STS_CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";
pub(crate) const STS_API_VERSION: &str = "2011-06-15";
/// AWS error messages are kept for logs, cut to this many characters.
const MAX_MESSAGE_CHARS: usize = 512;

/// Validated AssumeRole settings. `Debug` redacts the ExternalId (it is a [`Secret`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssumeRoleSettings {
    pub role_arn: String,
    pub external_id: Option<Secret>,
    pub session_name: String,
    pub duration_seconds: u32,
    /// The region the AssumeRole request is signed for: the configured region, or us-east-1
    /// for the global endpoint sts.amazonaws.com.
    pub region: String,
    pub sts_cluster: String,
    /// The Host that is signed and sent.
    pub sts_endpoint: String,
    /// The AssumeRole call's timeout.
    pub timeout: Duration,
    /// How long a request may wait for credentials before it is answered 503.
    pub max_wait: Duration,
}

/// The form body, in the order and encoding of the AWS SDKs' query serializer
/// (`:` becomes `%3A`, `/` becomes `%2F`).
fn assume_role_body(settings: &AssumeRoleSettings) -> String {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("Action", "AssumeRole")
        .append_pair("Version", STS_API_VERSION)
        .append_pair("RoleArn", &settings.role_arn)
        .append_pair("RoleSessionName", &settings.session_name)
        .append_pair("DurationSeconds", &settings.duration_seconds.to_string());
    if let Some(external_id) = &settings.external_id {
        form.append_pair("ExternalId", external_id.expose());
    }
    form.finish()
}

/// The signed `POST /` AssumeRole request, for the host to dispatch to `sts_cluster`.
/// `source` are the credentials that call AssumeRole.
pub fn build_assume_role_request(
    settings: &AssumeRoleSettings,
    source: &Credentials,
    now: SystemTime,
) -> Result<OutboundRequest, SigningError> {
    let body = assume_role_body(settings).into_bytes();
    let to_sign = [("content-type", STS_CONTENT_TYPE)];
    // Once an hour or so: a fresh cache (the key is derived for this request only).
    let signature_headers = SigningKeyCache::new().sign(
        &RequestToSign {
            method: "POST",
            host: &settings.sts_endpoint,
            path_and_query: "/",
            headers: &to_sign,
            body: &body,
            content_sha256_header: true,
        },
        source,
        &settings.region,
        "sts",
        now,
    )?;
    let mut headers = Vec::with_capacity(5 + signature_headers.len());
    headers.push((":method".to_string(), "POST".to_string()));
    headers.push((":path".to_string(), "/".to_string()));
    headers.push((":authority".to_string(), settings.sts_endpoint.clone()));
    for (name, value) in to_sign {
        headers.push((name.to_string(), value.to_string()));
    }
    headers.push(("content-length".to_string(), body.len().to_string()));
    for (name, value) in signature_headers {
        headers.push((name.to_string(), value));
    }
    Ok(OutboundRequest {
        cluster: settings.sts_cluster.clone(),
        headers: headers.into(),
        body,
        timeout: settings.timeout,
    })
}

/// Credentials from AssumeRole and when they expire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemporaryCredentials {
    pub credentials: Credentials,
    pub expiration: SystemTime,
}

/// Why AssumeRole gave no credentials. `Display` may carry the AWS message, never a secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StsError {
    /// The source identity may not assume the role (or the ExternalId is wrong).
    AccessDenied { message: Option<String> },
    /// The source credentials' session token has expired.
    ExpiredToken { message: Option<String> },
    /// STS is not activated in the region.
    RegionDisabled { message: Option<String> },
    /// Throttling, RequestLimitExceeded, or HTTP 429.
    Throttled { message: Option<String> },
    /// STS does not accept the source credentials (InvalidClientTokenId,
    /// SignatureDoesNotMatch, IncompleteSignature).
    InvalidCredentials {
        code: String,
        message: Option<String>,
    },
    /// Any other 4xx error code (e.g. MalformedPolicyDocument, ValidationError).
    Rejected {
        code: String,
        message: Option<String>,
    },
    /// No answer (`status: None`), a 5xx, or an Envoy local reply.
    Unavailable { status: Option<u16> },
    /// An answer that is neither credentials nor an STS error.
    BadResponse { reason: String },
}

impl StsError {
    /// The error class, for logs and the 503 given to requests that waited in vain.
    pub fn class(&self) -> FailureClass {
        match self {
            StsError::AccessDenied { .. } => FailureClass::AccessDenied,
            StsError::ExpiredToken { .. } => FailureClass::ExpiredToken,
            StsError::RegionDisabled { .. } => FailureClass::RegionDisabled,
            StsError::Throttled { .. } => FailureClass::Throttled,
            StsError::InvalidCredentials { .. } => FailureClass::InvalidCredentials,
            StsError::Rejected { .. } => FailureClass::Rejected,
            StsError::Unavailable { .. } => FailureClass::Unavailable,
            StsError::BadResponse { .. } => FailureClass::BadResponse,
        }
    }

    /// Transient failures, which a retry soon may fix ([`FailureClass::is_retryable`]).
    pub fn is_retryable(&self) -> bool {
        self.class().is_retryable()
    }
}

impl fmt::Display for StsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let with_message =
            |f: &mut fmt::Formatter<'_>, what: &str, message: &Option<String>| match message {
                Some(message) => write!(f, "{}: {what}: {message}", self.class()),
                None => write!(f, "{}: {what}", self.class()),
            };
        match self {
            StsError::AccessDenied { message } => with_message(f, "AssumeRole was denied", message),
            StsError::ExpiredToken { message } => {
                with_message(f, "the source session token has expired", message)
            }
            StsError::RegionDisabled { message } => {
                with_message(f, "STS is not activated in the region", message)
            }
            StsError::Throttled { message } => with_message(f, "STS throttled AssumeRole", message),
            StsError::InvalidCredentials { code, message } => with_message(
                f,
                &format!("STS does not accept the source credentials ({code})"),
                message,
            ),
            StsError::Rejected { code, message } => {
                with_message(f, &format!("STS rejected AssumeRole ({code})"), message)
            }
            StsError::Unavailable {
                status: Some(status),
            } => {
                write!(f, "{}: STS answered HTTP {status}", self.class())
            }
            StsError::Unavailable { status: None } => {
                write!(f, "{}: no answer from STS", self.class())
            }
            StsError::BadResponse { reason } => write!(f, "{}: {reason}", self.class()),
        }
    }
}

fn bad(reason: impl Into<String>) -> StsError {
    StsError::BadResponse {
        reason: reason.into(),
    }
}

/// Decodes the host's answer to AssumeRole. `status` is the `:status` (None when there was
/// no answer: timeout, reset, no cluster).
pub fn parse_assume_role_answer(
    status: Option<u16>,
    body: &[u8],
) -> Result<TemporaryCredentials, StsError> {
    parse_sts_answer("AssumeRole", status, body)
}

/// Decodes the answer to the STS `action` (`AssumeRole`, `AssumeRoleWithWebIdentity`): its
/// `<action>Response/<action>Result/Credentials`, or the STS error.
pub(crate) fn parse_sts_answer(
    action: &str,
    status: Option<u16>,
    body: &[u8],
) -> Result<TemporaryCredentials, StsError> {
    let Some(status) = status else {
        return Err(StsError::Unavailable { status: None });
    };
    let document = std::str::from_utf8(body)
        .ok()
        .and_then(|text| XmlElements::parse(text, STS_NAMESPACE));

    if let Some(error) = document.as_ref().and_then(|d| error_of(d, status)) {
        return Err(error);
    }
    match status {
        200..=299 => match &document {
            Some(d) if d.is_named(d.root(), &format!("{action}Response")) => {
                credentials_of(d, action)
            }
            Some(_) => Err(bad(format!(
                "HTTP {status} answer is not an {action}Response"
            ))),
            None if body.is_empty() => Err(bad(format!("HTTP {status} answer is empty"))),
            None => Err(bad(format!("HTTP {status} answer is not XML"))),
        },
        429 => Err(StsError::Throttled { message: None }),
        500..=599 => Err(StsError::Unavailable {
            status: Some(status),
        }),
        _ => Err(bad(format!(
            "HTTP {status} answer without an STS error code"
        ))),
    }
}

/// The error of an `<ErrorResponse>`, or None when the document is not one (or has no code).
fn error_of(d: &XmlElements, status: u16) -> Option<StsError> {
    let root = d.root();
    if !d.is_named(root, "ErrorResponse") {
        return None;
    }
    // AWS: ErrorResponse/Error; moto: ErrorResponse/Errors/Error.
    let error = d
        .child(root, "Error")
        .or_else(|| d.child(root, "Errors").and_then(|e| d.child(e, "Error")))?;
    let code = d.trimmed_text(d.child(error, "Code"))?.to_string();
    let message = d.trimmed_text(d.child(error, "Message")).map(clean_message);
    Some(classify(status, code, message))
}

fn clean_message(message: &str) -> String {
    message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_MESSAGE_CHARS)
        .collect()
}

fn classify(status: u16, code: String, message: Option<String>) -> StsError {
    match code.as_str() {
        // IDPRejectedClaim: the web identity token's claims do not meet the trust policy.
        "AccessDenied" | "AccessDeniedException" | "IDPRejectedClaim" => {
            StsError::AccessDenied { message }
        }
        "ExpiredToken" | "ExpiredTokenException" => StsError::ExpiredToken { message },
        "RegionDisabledException" => StsError::RegionDisabled { message },
        "Throttling" | "ThrottlingException" | "RequestLimitExceeded" => {
            StsError::Throttled { message }
        }
        // InvalidIdentityToken: no web identity token, or one the provider did not sign.
        "InvalidClientTokenId"
        | "SignatureDoesNotMatch"
        | "IncompleteSignature"
        | "InvalidIdentityToken" => StsError::InvalidCredentials { code, message },
        // The identity provider (OIDC) could not be reached: worth a retry.
        "IDPCommunicationError" => StsError::Unavailable {
            status: Some(status),
        },
        _ if status == 429 => StsError::Throttled { message },
        _ if (500..=599).contains(&status) => StsError::Unavailable {
            status: Some(status),
        },
        _ => StsError::Rejected { code, message },
    }
}

fn credentials_of(d: &XmlElements, action: &str) -> Result<TemporaryCredentials, StsError> {
    let credentials = d
        .child(d.root(), &format!("{action}Result"))
        .and_then(|r| d.child(r, "Credentials"))
        .ok_or_else(|| {
            bad(format!(
                "{action}Response has no {action}Result/Credentials"
            ))
        })?;
    let field = |name: &'static str| {
        d.trimmed_text(d.child(credentials, name))
            .ok_or_else(|| bad(format!("{action} credentials have no {name}")))
    };
    temporary_credentials(action, "SessionToken", field, bad)
}

/// The temporary credentials of an answer, from the four fields every AWS credential source
/// sends; `token` names the session token's field (`SessionToken` from STS, `Token` from
/// IMDS and container endpoints) and `what` the answer in errors.
pub(crate) fn temporary_credentials<'a, E>(
    what: &str,
    token: &'static str,
    field: impl Fn(&'static str) -> Result<&'a str, E>,
    bad: impl Fn(String) -> E,
) -> Result<TemporaryCredentials, E> {
    // Both are sent in headers: with a control character no request could be signed.
    let sendable = |name: &'static str| {
        field(name).and_then(|text| {
            if is_header_value(text) {
                Ok(text)
            } else {
                Err(bad(format!("{what} {name} has control characters")))
            }
        })
    };
    let access_key_id = sendable("AccessKeyId")?.to_string();
    let secret_access_key = Secret::new(field("SecretAccessKey")?);
    let session_token = Secret::new(sendable(token)?);
    let expiration_text = field("Expiration")?;
    let expiration = parse_expiration(expiration_text).ok_or_else(|| {
        bad(format!(
            "{what} Expiration '{}' is not an RFC 3339 UTC time",
            clean_message(expiration_text)
        ))
    })?;
    Ok(TemporaryCredentials {
        credentials: Credentials {
            access_key_id,
            secret_access_key,
            session_token: Some(session_token),
        },
        expiration,
    })
}

#[cfg(test)]
mod tests;
