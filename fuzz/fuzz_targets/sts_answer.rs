//! `parse_assume_role_answer` on arbitrary STS answers. Never panics; credentials it accepts
//! are non-empty and trimmed, and go through the shared record unchanged; its error classes
//! are the documented ones.
//!
//! Input: byte 0 picks the mode and status: high bit clear → bytes 1-2 are the status
//! (0xFFFF: no answer) and the rest is the body; high bit set → the rest is the text of
//! `<Expiration>` in an otherwise valid answer, and the parsed time must agree with
//! `aws_smithy_types`' RFC 3339 parser.
#![no_main]

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use aws_smithy_types::date_time::{DateTime, Format};
use libfuzzer_sys::fuzz_target;
use proxy_wasm_lambda::{
    build_invoke, epoch_ms, parse_assume_role_answer, record_success, FilterConfig, InvokeTarget,
    RefreshPolicy, Secret, SharedRecord, StsError,
};

const CLASSES: [&str; 8] = [
    "sts_access_denied",
    "sts_expired_token",
    "sts_region_disabled",
    "sts_throttled",
    "sts_invalid_credentials",
    "sts_rejected",
    "sts_unavailable",
    "sts_bad_response",
];

fn answer(expiration: &str) -> String {
    format!(
        r#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult><Credentials><AccessKeyId>ASIAIOSFODNN7EXAMPLE</AccessKeyId><SecretAccessKey>wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY</SecretAccessKey><SessionToken>AQoDYXdzEPT//////////wEXAMPLE</SessionToken><Expiration>{expiration}</Expiration></Credentials></AssumeRoleResult></AssumeRoleResponse>"#
    )
}

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

fn now_time() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_428_000)
}

fn check_error(error: &StsError) {
    assert!(CLASSES.contains(&error.class().as_str()), "{error:?}");
    assert_eq!(error.is_retryable(), error.class().is_retryable());
    let shown = error.to_string();
    assert!(shown.starts_with(error.class().as_str()), "{shown}");
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 0x80 != 0 {
        let Ok(expiration) = std::str::from_utf8(rest) else {
            return;
        };
        // Markup would change the document rather than the text.
        if expiration.contains(['<', '&', '>']) {
            return;
        }
        let body = answer(expiration);
        let result = parse_assume_role_answer(Some(200), body.as_bytes());
        let trimmed = expiration.trim();
        let smithy = DateTime::from_str(trimmed, Format::DateTime)
            .ok()
            .and_then(|t| SystemTime::try_from(t).ok());
        match (&result, smithy) {
            (Ok(t), Some(expected)) => assert_eq!(t.expiration, expected, "{expiration:?}"),
            (Ok(t), None) => panic!("accepted {expiration:?} as {:?}", t.expiration),
            (Err(e), Some(_)) => {
                // Only text XML forbids (control characters) or an empty text may differ.
                assert!(
                    trimmed.is_empty() || expiration.chars().any(|c| c < ' '),
                    "rejected {expiration:?}: {e}"
                );
            }
            (Err(e), None) => check_error(e),
        }
        if let Err(e) = &result {
            // The secret of the answer is never shown.
            assert!(
                expiration.contains("wJalr") || !e.to_string().contains("wJalr"),
                "{e}"
            );
        }
        return;
    }
    let [s1, s2, body @ ..] = rest else {
        return;
    };
    let status = match u16::from_le_bytes([*s1, *s2]) {
        0xffff => None,
        s => Some(s),
    };
    match parse_assume_role_answer(status, body) {
        Ok(t) => {
            assert!(status.is_some_and(|s| (200..=299).contains(&s)));
            let c = &t.credentials;
            for text in [
                c.access_key_id.as_str(),
                c.secret_access_key.expose(),
                c.session_token.as_ref().expect("session token").expose(),
            ] {
                assert!(!text.is_empty() && text.trim() == text, "{text:?}");
            }
            // Credentials STS gave can sign an Invoke.
            if let Err(e) = build_invoke(target(), "lambda", c, b"{}".to_vec(), now_time()) {
                panic!("accepted credentials do not sign: {e}");
            }
            // Debug does not depend on the secrets.
            let mut redacted = t.clone();
            redacted.credentials.secret_access_key = Secret::new("x");
            redacted.credentials.session_token = Some(Secret::new("x"));
            assert_eq!(format!("{t:?}"), format!("{redacted:?}"));
            // Stored in the shared record and read back by another VM: the same credentials.
            let now = 1_795_428_000_000;
            let policy = RefreshPolicy::default();
            let record = record_success(&SharedRecord::default(), t.clone(), now, &policy);
            let decoded = SharedRecord::decode(&record.encode());
            assert_eq!(decoded, record);
            match decoded.credentials {
                Some(stored) => {
                    assert_eq!(stored.credentials(), t.credentials);
                    assert_eq!(stored.expiration_ms, epoch_ms(t.expiration));
                }
                // Too close to expiry to use: recorded as a failure.
                None => assert_eq!(decoded.failures, 1),
            }
        }
        Err(e) => check_error(&e),
    }
});
