//! The ambient credential parsers on arbitrary answers: the container endpoint's answer,
//! the IMDSv2 client driven through whole fetches, and the IMDS session shared between VMs.
//! Never panics; a fetch makes at most `MAX_CALLS_PER_FETCH` calls; every request stays on
//! the three IMDS paths with a sendable token; accepted credentials are non-empty, redacted
//! in Debug and sign an Invoke; errors carry one of the STS classes.
//!
//! Input: byte 0 picks the mode: 0 → bytes 1-2 are the status (0xFFFF: no answer) and the
//! rest the container endpoint's body; 1 → the rest is a shared IMDS session, then answers;
//! otherwise the rest is IMDS answers. Session and answers are separated by 0 bytes; in each
//! answer, bytes 0-1 are the status (little-endian, 0xFFFF: none), byte 2 the length of the
//! TTL header text that follows, then the body.
#![no_main]

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use proxy_wasm_lambda::{
    build_invoke, parse_container_answer as parse_answer, AmbientError, FilterConfig, ImdsClient,
    ImdsProgress, ImdsSettings, InvokeTarget, OutboundRequest, Secret, TemporaryCredentials,
    MAX_CALLS_PER_FETCH, ROLE_PATH, TOKEN_HEADER, TOKEN_PATH,
};

const CLASSES: [&str; 6] = [
    "sts_unavailable",
    "sts_throttled",
    "sts_access_denied",
    "sts_invalid_credentials",
    "sts_rejected",
    "sts_bad_response",
];
const T0: u64 = 1_795_428_000_000;

fn target() -> &'static InvokeTarget {
    static TARGET: OnceLock<InvokeTarget> = OnceLock::new();
    TARGET.get_or_init(|| {
        FilterConfig::load(
            br#"{"function":"f","region":"us-east-1","credentials":{"access_key_id":"AKIDEXAMPLE12345","secret_access_key":"x"}}"#,
            &|_| None,
        )
        .unwrap()
        .target
    })
}

fn check_error(e: &AmbientError) {
    assert!(CLASSES.contains(&e.class().as_str()), "{e:?}");
    assert!(e.to_string().starts_with(e.class().as_str()));
}

fn check_credentials(t: &TemporaryCredentials) {
    let c = &t.credentials;
    for text in [
        c.access_key_id.as_str(),
        c.secret_access_key.expose(),
        c.session_token.as_ref().expect("token").expose(),
    ] {
        assert!(!text.is_empty() && text.trim() == text, "{text:?}");
    }
    let at = SystemTime::UNIX_EPOCH + Duration::from_millis(T0);
    if let Err(e) = build_invoke(target(), "lambda", c, b"{}".to_vec(), at) {
        panic!("accepted credentials do not sign: {e}");
    }
    let mut redacted = t.clone();
    redacted.credentials.secret_access_key = Secret::new("x");
    redacted.credentials.session_token = Some(Secret::new("x"));
    assert_eq!(format!("{t:?}"), format!("{redacted:?}"));
}

fn check_request(request: &OutboundRequest) {
    assert_eq!(request.cluster, "imds");
    let path = request.header(":path").expect("path");
    match request.header(":method") {
        Some("PUT") => assert_eq!(path, TOKEN_PATH),
        Some("GET") => {
            let role = path.strip_prefix(ROLE_PATH).expect("role path");
            assert!(!role.contains('/') && role.len() <= 64, "{path}");
            let token = request.header(TOKEN_HEADER).expect("token");
            assert!(!token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic()));
        }
        other => panic!("method {other:?}"),
    }
}

fn status(bytes: [u8; 2]) -> Option<u16> {
    match u16::from_le_bytes(bytes) {
        0xffff => None,
        s => Some(s),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode == 0 {
        let [s1, s2, body @ ..] = rest else {
            return;
        };
        match parse_answer(status([*s1, *s2]), body) {
            Ok(t) => check_credentials(&t),
            Err(e) => check_error(&e),
        }
        return;
    }
    let mut parts = rest.split(|&b| b == 0).collect::<Vec<_>>().into_iter();
    let mut client = ImdsClient::new(ImdsSettings {
        cluster: "imds".into(),
        endpoint: "169.254.169.254".into(),
        token_ttl_seconds: 21_600,
        timeout: Duration::from_secs(1),
    });
    if mode == 1 {
        if let Some(session) = parts.next() {
            client.import_session(session);
        }
    }
    let answers: Vec<&[u8]> = parts.collect();
    let mut now = T0;
    let mut calls = 0;
    let mut request = client.start(now);
    for answer in answers {
        check_request(&request);
        calls += 1;
        assert!(calls <= MAX_CALLS_PER_FETCH, "{calls} calls in one fetch");
        let (status, ttl, body) = match answer {
            [s1, s2, len, tail @ ..] => {
                let len = usize::from(*len).min(tail.len());
                let ttl = std::str::from_utf8(&tail[..len]).ok();
                (status([*s1, *s2]), ttl, &tail[len..])
            }
            _ => (None, None, answer),
        };
        now += 1000;
        match client.on_answer(status, ttl, body, now) {
            ImdsProgress::Next(next) => request = next,
            ImdsProgress::Done(outcome) => {
                match outcome {
                    Ok(t) => check_credentials(&t),
                    Err(e) => check_error(&e),
                }
                assert!(!client.in_progress());
                // The kept session is sendable and survives the trip to another VM.
                let session = client.export_session();
                let mut other = client.clone();
                other.import_session(&session);
                assert_eq!(other.export_session(), session);
                calls = 0;
                request = client.start(now);
            }
        }
    }
});
