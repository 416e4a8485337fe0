//! `decode_invoke_answer` for every invocation type and payload format on arbitrary Lambda
//! answers (status, headers, body). Never panics; a reply has a real status and clean
//! headers; an error maps to a 4xx/5xx (a function error to the configured status) and to a
//! JSON error body.
//!
//! Input: byte 0 picks the status (high bit: no answer), byte 1 the invocation type, payload
//! format, `expose_log_result` and `timed_out`, bytes 2-3 the `function_error_status`, then
//! `name: value` header lines up to an empty line, then the body.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use proxy_wasm_lambda::{
    decode_invoke_answer, CallAnswer, EventFormat, FilterConfig, InvocationType, InvokeTarget,
    PayloadFormat, RequestError,
};

use serde_json::Value;

const STATUSES: [u16; 16] = [
    200, 202, 204, 400, 403, 404, 413, 429, 500, 502, 503, 504, 201, 299, 301, 0,
];

fn base_target() -> &'static InvokeTarget {
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

fn is_clean_value(value: &str) -> bool {
    !value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f)
}

fuzz_target!(|data: &[u8]| {
    let [status_byte, flags, s1, s2, rest @ ..] = data else {
        return;
    };
    let status = if status_byte & 0x80 != 0 {
        None
    } else {
        match STATUSES[usize::from(status_byte & 0x0f)] {
            0 => Some(u16::from_le_bytes([*s1, *s2])),
            s => Some(s),
        }
    };
    let mut target = base_target().clone();
    target.invocation_type = match flags & 0x03 {
        0 | 3 => InvocationType::RequestResponse,
        1 => InvocationType::Event,
        _ => InvocationType::DryRun,
    };
    target.payload = match (flags >> 2) & 0x07 {
        0 | 5 => PayloadFormat::Passthrough,
        1 | 6 => PayloadFormat::Event(EventFormat::ApigwV2),
        2 | 7 => PayloadFormat::Event(EventFormat::ApigwV1),
        3 => PayloadFormat::Event(EventFormat::Alb),
        _ => PayloadFormat::Event(EventFormat::Envoy),
    };
    target.expose_log_result = flags & 0x20 != 0;
    let timed_out = flags & 0x40 != 0;
    target.function_error_status = 200 + u16::from_le_bytes([*s1, *s2]) % 400;

    let text = String::from_utf8_lossy(rest);
    let (head, body) = match text.find("\n\n") {
        Some(at) => (&text[..at], &rest[rest.len().min(at + 2)..]),
        None => ("", rest),
    };
    // (The body is cut from the raw bytes; when the header part was not UTF-8 the cut is
    // approximate, which is fine for fuzzing.)
    let headers: Vec<(String, String)> = head
        .split('\n')
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let headers_clean = headers.iter().all(|(_, v)| is_clean_value(v));
    let answer = CallAnswer {
        status,
        headers: headers.into(),
        body: body.to_vec(),
        ..CallAnswer::default()
    };
    match decode_invoke_answer(&target, answer, timed_out) {
        Ok(reply) => {
            assert!((200..=599).contains(&reply.status), "{reply:?}");
            for (name, value) in &reply.headers {
                assert!(!name.is_empty() && !name.starts_with(':'), "{name:?}");
                assert!(!name.bytes().any(|b| b.is_ascii_uppercase()), "{name:?}");
                if headers_clean {
                    assert!(is_clean_value(value), "{name}: {value:?}");
                }
            }
        }
        Err(error) => {
            match &error {
                RequestError::FunctionError { status, .. } => {
                    assert_eq!(*status, target.function_error_status)
                }
                other => assert!((400..=599).contains(&other.status()), "{other:?}"),
            }
            let reply = error.to_reply(Some("req-1"));
            assert_eq!(reply.status, error.status());
            let body: Value = serde_json::from_slice(&reply.body).expect("JSON error body");
            assert_eq!(body["error"], error.class());
            assert!(!error.to_string().is_empty());
        }
    }
});
