//! The EC2 instance role through the Instance Metadata Service, IMDSv2 only:
//!
//! 1. `PUT /latest/api/token` with `x-aws-ec2-metadata-token-ttl-seconds` → a session token
//!    (kept and reused until shortly before its TTL runs out);
//! 2. `GET /latest/meta-data/iam/security-credentials/` with `x-aws-ec2-metadata-token` →
//!    the instance profile's role name (kept);
//! 3. `GET /latest/meta-data/iam/security-credentials/<role>` → the credentials JSON
//!    ([`crate::credentials::ambient::parse_credentials_json`]).
//!
//! [`ImdsClient`] is the state machine of one fetch: [`ImdsClient::start`] gives the first
//! request, [`ImdsClient::on_answer`] the next request or the outcome. A 401 (the session
//! token expired or was revoked) renews the token and retries once; a 404 for a kept role
//! name (the instance profile changed) asks for the role name again once. Times are epoch
//! milliseconds from the caller.

use std::time::Duration;

use crate::credentials::ambient::{parse_credentials_json, AmbientError, Failure};
use crate::credentials::sts::TemporaryCredentials;
use crate::http::OutboundRequest;
use crate::secret::Secret;

pub const TOKEN_PATH: &str = "/latest/api/token";
pub const ROLE_PATH: &str = "/latest/meta-data/iam/security-credentials/";
pub(crate) const TTL_HEADER: &str = "x-aws-ec2-metadata-token-ttl-seconds";
pub const TOKEN_HEADER: &str = "x-aws-ec2-metadata-token";
pub(crate) const DEFAULT_ENDPOINT: &str = "169.254.169.254";
/// The AWS SDKs' token TTL; IMDS accepts 1-21600 s.
pub(crate) const DEFAULT_TOKEN_TTL_SECONDS: u32 = 21_600;
pub(crate) const MAX_TOKEN_TTL_SECONDS: u32 = 21_600;
/// A kept session token is renewed when it has less than this left.
pub(crate) const TOKEN_RENEW_MARGIN_MS: u64 = 60_000;
/// Calls one fetch may make at most (token, role, credentials, and one retry of each of
/// the first two): the fetch lease covers this many timeouts.
pub const MAX_CALLS_PER_FETCH: u32 = 5;

/// Validated `credentials` settings of the `imds` source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImdsSettings {
    /// The Envoy cluster that reaches 169.254.169.254:80.
    pub cluster: String,
    /// The Host sent (`169.254.169.254`).
    pub endpoint: String,
    pub token_ttl_seconds: u32,
    /// Timeout of one call.
    pub timeout: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Token,
    RoleName,
    Credentials,
}

/// What to do after an answer.
#[derive(Debug, PartialEq, Eq)]
pub enum ImdsProgress {
    /// Dispatch this request next.
    Next(OutboundRequest),
    /// The fetch is over.
    Done(Result<TemporaryCredentials, AmbientError>),
}

/// One VM's IMDS client: its kept session token and role name, and the fetch in progress.
/// `Debug` redacts the token.
#[derive(Clone, Debug)]
pub struct ImdsClient {
    settings: ImdsSettings,
    /// The session token and when it expires (epoch ms).
    token: Option<(Secret, u64)>,
    role: Option<String>,
    step: Option<Step>,
    token_retried: bool,
    role_retried: bool,
}

impl ImdsClient {
    pub fn new(settings: ImdsSettings) -> Self {
        ImdsClient {
            settings,
            token: None,
            role: None,
            step: None,
            token_retried: false,
            role_retried: false,
        }
    }

    pub fn settings(&self) -> &ImdsSettings {
        &self.settings
    }

    /// Whether a fetch is in progress.
    pub fn in_progress(&self) -> bool {
        self.step.is_some()
    }

    /// The kept role name, if any (not secret).
    pub fn role(&self) -> Option<&str> {
        self.role.as_deref()
    }

    /// The kept session token and role name, to share with the other VMs (whichever VM
    /// holds the next fetch lease reuses them): JSON, holding the token in clear.
    pub fn export_session(&self) -> Vec<u8> {
        let mut object = serde_json::Map::new();
        if let Some((token, until_ms)) = &self.token {
            object.insert("token".into(), token.expose().into());
            object.insert("until_ms".into(), (*until_ms).into());
        }
        if let Some(role) = &self.role {
            object.insert("role".into(), role.as_str().into());
        }
        serde_json::to_vec(&serde_json::Value::Object(object)).unwrap_or_default()
    }

    /// Takes over a session another VM exported; anything unreadable is ignored (the next
    /// fetch then starts with a new token).
    pub fn import_session(&mut self, bytes: &[u8]) {
        let Ok(serde_json::Value::Object(object)) = serde_json::from_slice(bytes) else {
            return;
        };
        let token = object.get("token").and_then(serde_json::Value::as_str);
        let until_ms = object.get("until_ms").and_then(serde_json::Value::as_u64);
        if let (Some(token), Some(until_ms)) = (token, until_ms) {
            if !token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic()) {
                self.token = Some((Secret::new(token), until_ms));
            }
        }
        if let Some(role) = object.get("role").and_then(serde_json::Value::as_str) {
            if parse_role_name(role.as_bytes()).is_ok_and(|r| r == role) {
                self.role = Some(role.to_string());
            }
        }
    }

    /// Starts a fetch: the first request to dispatch.
    pub fn start(&mut self, now_ms: u64) -> OutboundRequest {
        self.token_retried = false;
        self.role_retried = false;
        let token_fresh = self
            .token
            .as_ref()
            .is_some_and(|(_, until)| until.saturating_sub(now_ms) > TOKEN_RENEW_MARGIN_MS);
        if !token_fresh {
            self.token = None;
        }
        self.next_request()
    }

    /// Abandons the fetch in progress (the call could not be dispatched).
    pub fn abort(&mut self) {
        self.step = None;
    }

    /// The request for the first missing piece: token, role name, credentials.
    fn next_request(&mut self) -> OutboundRequest {
        let (step, request) = match (&self.token, &self.role) {
            (None, _) => (Step::Token, self.token_request()),
            (Some((token, _)), None) => (Step::RoleName, self.get(ROLE_PATH.to_string(), token)),
            (Some((token, _)), Some(role)) => (
                Step::Credentials,
                self.get(format!("{ROLE_PATH}{role}"), token),
            ),
        };
        self.step = Some(step);
        request
    }

    fn token_request(&self) -> OutboundRequest {
        OutboundRequest {
            cluster: self.settings.cluster.clone(),
            headers: vec![
                (":method".to_string(), "PUT".to_string()),
                (":path".to_string(), TOKEN_PATH.to_string()),
                (":authority".to_string(), self.settings.endpoint.clone()),
                (
                    TTL_HEADER.to_string(),
                    self.settings.token_ttl_seconds.to_string(),
                ),
                ("content-length".to_string(), "0".to_string()),
            ]
            .into(),
            body: Vec::new(),
            timeout: self.settings.timeout,
        }
    }

    fn get(&self, path: String, token: &Secret) -> OutboundRequest {
        OutboundRequest {
            cluster: self.settings.cluster.clone(),
            headers: vec![
                (":method".to_string(), "GET".to_string()),
                (":path".to_string(), path),
                (":authority".to_string(), self.settings.endpoint.clone()),
                (TOKEN_HEADER.to_string(), token.expose().to_string()),
            ]
            .into(),
            body: Vec::new(),
            timeout: self.settings.timeout,
        }
    }

    /// The answer to the request in flight: `status` is `:status` (None: no answer),
    /// `ttl_header` the answer's `x-aws-ec2-metadata-token-ttl-seconds`.
    pub fn on_answer(
        &mut self,
        status: Option<u16>,
        ttl_header: Option<&str>,
        body: &[u8],
        now_ms: u64,
    ) -> ImdsProgress {
        let Some(step) = self.step.take() else {
            return ImdsProgress::Done(Err(AmbientError::new(
                Failure::BadResponse,
                "IMDS answer without a request in flight",
            )));
        };
        match (step, status) {
            (Step::Token, Some(200)) => match parse_token(body, ttl_header, &self.settings) {
                Ok((token, ttl_ms)) => {
                    self.token = Some((token, now_ms.saturating_add(ttl_ms)));
                    ImdsProgress::Next(self.next_request())
                }
                Err(e) => ImdsProgress::Done(Err(e)),
            },
            (Step::Token, _) => ImdsProgress::Done(Err(token_failure(status, body))),
            (Step::RoleName | Step::Credentials, Some(401)) => {
                // The token expired or was revoked: a new one, once per fetch.
                self.token = None;
                if std::mem::replace(&mut self.token_retried, true) {
                    ImdsProgress::Done(Err(AmbientError::new(
                        Failure::InvalidCredentials,
                        "IMDS refused a fresh session token (HTTP 401)",
                    )))
                } else {
                    ImdsProgress::Next(self.next_request())
                }
            }
            (Step::RoleName, Some(200)) => match parse_role_name(body) {
                Ok(role) => {
                    self.role = Some(role);
                    ImdsProgress::Next(self.next_request())
                }
                Err(e) => ImdsProgress::Done(Err(e)),
            },
            (Step::RoleName, Some(404)) => ImdsProgress::Done(Err(AmbientError::new(
                Failure::Rejected,
                "IMDS has no IAM role for this instance (HTTP 404 for \
                 /latest/meta-data/iam/security-credentials/): attach an instance profile",
            ))),
            (Step::Credentials, Some(200)) => {
                ImdsProgress::Done(parse_credentials_json("IMDS", body))
            }
            (Step::Credentials, Some(404)) if !self.role_retried => {
                // The instance profile changed: look the role name up again, once.
                self.role_retried = true;
                self.role = None;
                ImdsProgress::Next(self.next_request())
            }
            (Step::RoleName, _) => ImdsProgress::Done(Err(AmbientError::of_answer(
                "IMDS GET security-credentials/",
                status,
                body,
            ))),
            (Step::Credentials, _) => ImdsProgress::Done(Err(AmbientError::of_answer(
                "IMDS GET security-credentials/<role>",
                status,
                body,
            ))),
        }
    }
}

fn token_failure(status: Option<u16>, body: &[u8]) -> AmbientError {
    match status {
        Some(403) => AmbientError::new(
            Failure::AccessDenied,
            "IMDS refused a session token (HTTP 403): the instance metadata service is \
             disabled, or the request was forwarded (X-Forwarded-For)",
        ),
        Some(404 | 405) => AmbientError::new(
            Failure::Rejected,
            format!(
                "IMDS answered HTTP {} to PUT /latest/api/token: IMDSv2 is not available there",
                status.unwrap_or_default()
            ),
        ),
        _ => AmbientError::of_answer("IMDS PUT /latest/api/token", status, body),
    }
}

/// The token body and its TTL in ms: the answer's TTL header when it is a number of at most
/// the requested TTL, else the requested TTL.
fn parse_token(
    body: &[u8],
    ttl_header: Option<&str>,
    settings: &ImdsSettings,
) -> Result<(Secret, u64), AmbientError> {
    let bad = |reason: &str| AmbientError::new(Failure::BadResponse, reason);
    let token = std::str::from_utf8(body)
        .map_err(|_| bad("IMDS session token is not text"))?
        .trim();
    if token.is_empty() || token.len() > 1024 || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad(
            "IMDS session token is empty, too long or not printable ASCII",
        ));
    }
    let requested = u64::from(settings.token_ttl_seconds);
    let ttl = ttl_header
        .and_then(|h| h.trim().parse::<u64>().ok())
        .filter(|t| (1..=requested).contains(t))
        .unwrap_or(requested);
    Ok((Secret::new(token), ttl.saturating_mul(1000)))
}

/// The first line of the role list: an IAM role name (`[\w+=,.@-]{1,64}`), which becomes a
/// path segment.
pub(crate) fn parse_role_name(body: &[u8]) -> Result<String, AmbientError> {
    let bad = |reason: String| AmbientError::new(Failure::BadResponse, reason);
    let text =
        std::str::from_utf8(body).map_err(|_| bad("IMDS role list is not text".to_string()))?;
    let role = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .ok_or_else(|| {
            AmbientError::new(
                Failure::Rejected,
                "IMDS lists no IAM role for this instance: attach an instance profile",
            )
        })?;
    let valid = (1..=64).contains(&role.len())
        && role
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b));
    if !valid {
        return Err(bad(format!(
            "IMDS role name '{}' is not an IAM role name",
            role.chars().take(80).collect::<String>()
        )));
    }
    Ok(role.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    const T0: u64 = 1_795_428_000_000;
    const CREDS: &str = r#"{"Code":"Success","LastUpdated":"2026-11-23T04:00:00Z","Type":"AWS-HMAC","AccessKeyId":"ASIAIMDSEXAMPLE001","SecretAccessKey":"imds-secret-key","Token":"imds-session-token","Expiration":"2026-11-23T10:00:00Z"}"#;

    fn settings() -> ImdsSettings {
        ImdsSettings {
            cluster: "imds".into(),
            endpoint: DEFAULT_ENDPOINT.into(),
            token_ttl_seconds: 21_600,
            timeout: Duration::from_secs(1),
        }
    }

    fn next(progress: ImdsProgress) -> OutboundRequest {
        match progress {
            ImdsProgress::Next(request) => request,
            ImdsProgress::Done(outcome) => panic!("expected a next request, got {outcome:?}"),
        }
    }

    fn done(progress: ImdsProgress) -> Result<TemporaryCredentials, AmbientError> {
        match progress {
            ImdsProgress::Done(outcome) => outcome,
            ImdsProgress::Next(request) => panic!("expected the end, got {request:?}"),
        }
    }

    fn line(request: &OutboundRequest) -> (String, String) {
        (
            request.header(":method").unwrap_or_default().to_string(),
            request.header(":path").unwrap_or_default().to_string(),
        )
    }

    #[test]
    fn first_fetch_makes_three_calls_in_order() {
        let mut client = ImdsClient::new(settings());
        let put = client.start(T0);
        assert_eq!(put.cluster, "imds");
        assert_eq!(
            line(&put),
            ("PUT".to_string(), "/latest/api/token".to_string())
        );
        assert_eq!(put.header(":authority"), Some("169.254.169.254"));
        assert_eq!(put.header(TTL_HEADER), Some("21600"));
        assert_eq!(put.header(TOKEN_HEADER), None);
        assert!(put.body.is_empty());

        let list = next(client.on_answer(Some(200), Some("21600"), b"AQAEAtoken==", T0));
        assert_eq!(
            line(&list),
            (
                "GET".to_string(),
                "/latest/meta-data/iam/security-credentials/".to_string()
            )
        );
        assert_eq!(list.header(TOKEN_HEADER), Some("AQAEAtoken=="));
        assert_eq!(list.header(TTL_HEADER), None);

        let get = next(client.on_answer(Some(200), None, b"my-instance-role\n", T0));
        assert_eq!(
            line(&get).1,
            "/latest/meta-data/iam/security-credentials/my-instance-role"
        );
        assert_eq!(get.header(TOKEN_HEADER), Some("AQAEAtoken=="));

        let t = done(client.on_answer(Some(200), None, CREDS.as_bytes(), T0)).unwrap();
        assert_eq!(t.credentials.access_key_id, "ASIAIMDSEXAMPLE001");
        assert!(t.expiration > SystemTime::UNIX_EPOCH);
        assert!(!client.in_progress());
        assert!(!format!("{client:?}").contains("AQAEAtoken"));
    }

    #[test]
    fn token_and_role_are_kept_until_the_token_nears_its_ttl() {
        let mut client = ImdsClient::new(settings());
        client.start(T0);
        next(client.on_answer(Some(200), Some("600"), b"tok-1", T0));
        next(client.on_answer(Some(200), None, b"role", T0));
        done(client.on_answer(Some(200), None, CREDS.as_bytes(), T0)).unwrap();
        // The answer's TTL (600 s, under the 21600 asked) decides: reused until 60 s before.
        let again = client.start(T0 + 539_000);
        assert_eq!(line(&again).1, format!("{ROLE_PATH}role"));
        assert_eq!(again.header(TOKEN_HEADER), Some("tok-1"));
        done(client.on_answer(Some(200), None, CREDS.as_bytes(), T0 + 539_000)).unwrap();
        let renewed = client.start(T0 + 540_000);
        assert_eq!(line(&renewed).1, TOKEN_PATH);
        // The role name is still known: the token is followed by the credentials.
        let get = next(client.on_answer(Some(200), None, b"tok-2", T0 + 540_000));
        assert_eq!(line(&get).1, format!("{ROLE_PATH}role"));
        assert_eq!(get.header(TOKEN_HEADER), Some("tok-2"));
    }

    #[test]
    fn another_vm_takes_over_the_session() {
        let mut first = ImdsClient::new(settings());
        first.start(T0);
        next(first.on_answer(Some(200), Some("21600"), b"tok-shared", T0));
        next(first.on_answer(Some(200), None, b"role", T0));
        done(first.on_answer(Some(200), None, CREDS.as_bytes(), T0)).unwrap();
        let session = first.export_session();
        let mut second = ImdsClient::new(settings());
        second.import_session(&session);
        assert!(!format!("{second:?}").contains("tok-shared"));
        let get = second.start(T0 + 60_000);
        assert_eq!(line(&get).1, format!("{ROLE_PATH}role"));
        assert_eq!(get.header(TOKEN_HEADER), Some("tok-shared"));
        // Garbage or hostile values are ignored: a new token, the role list.
        for bad in [
            &b"not json"[..],
            br#"{"token":"a b","until_ms":99999999999999,"role":"../x"}"#,
            br#"{"token":"t","until_ms":"soon"}"#,
        ] {
            let mut third = ImdsClient::new(settings());
            third.import_session(bad);
            assert_eq!(line(&third.start(T0)).1, TOKEN_PATH, "{bad:?}");
            next(third.on_answer(Some(200), None, b"tok", T0));
            assert_eq!(third.role(), None);
        }
        assert_eq!(ImdsClient::new(settings()).export_session(), b"{}");
    }

    #[test]
    fn ttl_header_over_the_request_or_garbage_is_ignored() {
        for header in [Some("99999"), Some("soon"), Some("0"), None] {
            let mut client = ImdsClient::new(ImdsSettings {
                token_ttl_seconds: 300,
                ..settings()
            });
            client.start(T0);
            next(client.on_answer(Some(200), header, b"tok", T0));
            next(client.on_answer(Some(200), None, b"role", T0));
            done(client.on_answer(Some(200), None, CREDS.as_bytes(), T0)).unwrap();
            assert_eq!(
                line(&client.start(T0 + 239_999)).1,
                format!("{ROLE_PATH}role")
            );
            client.abort();
            assert_eq!(
                line(&client.start(T0 + 240_000)).1,
                TOKEN_PATH,
                "{header:?}"
            );
        }
    }

    #[test]
    fn a_401_renews_the_token_once() {
        let mut client = ImdsClient::new(settings());
        client.start(T0);
        next(client.on_answer(Some(200), None, b"tok-1", T0));
        next(client.on_answer(Some(200), None, b"role", T0));
        // Revoked token: a new one, then the credentials again.
        let put = next(client.on_answer(Some(401), None, b"", T0));
        assert_eq!(line(&put).1, TOKEN_PATH);
        let get = next(client.on_answer(Some(200), None, b"tok-2", T0));
        assert_eq!(get.header(TOKEN_HEADER), Some("tok-2"));
        // A second 401 in the same fetch is the end.
        let e = done(client.on_answer(Some(401), None, b"", T0)).unwrap_err();
        assert_eq!(e.class(), "sts_invalid_credentials");
        // The next fetch starts over with a new token.
        assert_eq!(line(&client.start(T0 + 1000)).1, TOKEN_PATH);
    }

    #[test]
    fn a_404_for_a_kept_role_looks_it_up_again_once() {
        let mut client = ImdsClient::new(settings());
        client.start(T0);
        next(client.on_answer(Some(200), None, b"tok", T0));
        next(client.on_answer(Some(200), None, b"old-role", T0));
        let list = next(client.on_answer(Some(404), None, b"", T0));
        assert_eq!(line(&list).1, ROLE_PATH);
        let get = next(client.on_answer(Some(200), None, b"new-role", T0));
        assert_eq!(line(&get).1, format!("{ROLE_PATH}new-role"));
        let e = done(client.on_answer(Some(404), None, b"", T0)).unwrap_err();
        assert_eq!(e.class(), "sts_rejected");
    }

    #[test]
    fn failures_map_to_sts_classes() {
        let token_cases = [
            (None, "sts_unavailable"),
            (Some(403), "sts_access_denied"),
            (Some(404), "sts_rejected"),
            (Some(405), "sts_rejected"),
            (Some(400), "sts_rejected"),
            (Some(429), "sts_throttled"),
            (Some(500), "sts_unavailable"),
            (Some(503), "sts_unavailable"),
        ];
        for (status, class) in token_cases {
            let mut client = ImdsClient::new(settings());
            client.start(T0);
            let e = done(client.on_answer(status, None, b"", T0)).unwrap_err();
            assert_eq!(e.class(), class, "{status:?}");
        }
        let mut client = ImdsClient::new(settings());
        client.start(T0);
        next(client.on_answer(Some(200), None, b"tok", T0));
        let e = done(client.on_answer(Some(404), None, b"", T0)).unwrap_err();
        assert_eq!(e.class(), "sts_rejected");
        assert!(e.reason.contains("instance profile"), "{e}");
        client.start(T0);
        let e = done(client.on_answer(None, None, b"", T0)).unwrap_err();
        assert_eq!(e.class(), "sts_unavailable");
    }

    #[test]
    fn bad_tokens_and_role_names_are_refused() {
        for body in [&b""[..], b"  \n", b"tok en", b"tok\x01", &[0xff, 0xfe]] {
            let mut client = ImdsClient::new(settings());
            client.start(T0);
            let e = done(client.on_answer(Some(200), None, body, T0)).unwrap_err();
            assert_eq!(e.class(), "sts_bad_response", "{body:?}");
        }
        for body in [&b"../../user-data"[..], b"role/x", b"r?x", &[b'a'; 65]] {
            let e = parse_role_name(body).unwrap_err();
            assert_eq!(e.class(), "sts_bad_response", "{body:?}");
        }
        assert_eq!(parse_role_name(b"\n  r1 \nr2\n").unwrap(), "r1");
        assert_eq!(parse_role_name(b"").unwrap_err().class(), "sts_rejected");
    }

    #[test]
    fn answer_without_a_request_is_refused() {
        let mut client = ImdsClient::new(settings());
        let e = done(client.on_answer(Some(200), None, b"x", T0)).unwrap_err();
        assert_eq!(e.class(), "sts_bad_response");
    }
}
