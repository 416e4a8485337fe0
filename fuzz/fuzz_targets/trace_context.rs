//! `invoke_trace_id` on arbitrary client headers. Never panics; what it returns is a header
//! value of at most 256 bytes that names an X-Ray root, the client's own `X-Amzn-Trace-Id`
//! unchanged when that is valid, else the exact mapping of the traceparent.
//!
//! Input: the `X-Amzn-Trace-Id` and the `traceparent` values, separated by the first 0 byte
//! (no 0 byte: only a traceparent).
#![no_main]

use libfuzzer_sys::fuzz_target;
use proxy_wasm_lambda::invoke_trace_id;

fuzz_target!(|data: &[u8]| {
    let (amzn, traceparent) = match data.iter().position(|&b| b == 0) {
        Some(i) => (Some(&data[..i]), &data[i + 1..]),
        None => (None, data),
    };
    let Ok(traceparent) = std::str::from_utf8(traceparent) else {
        return;
    };
    let amzn = match amzn.map(std::str::from_utf8) {
        Some(Ok(amzn)) => Some(amzn),
        Some(Err(_)) => return,
        None => None,
    };
    let Some(trace_id) = invoke_trace_id(amzn, Some(traceparent)) else {
        return;
    };
    assert!(trace_id.len() <= 256);
    assert!(trace_id.bytes().all(|b| b.is_ascii_graphic() || b == b' '));
    assert!(trace_id.contains("Root=1-"), "{trace_id}");
    if Some(trace_id.as_str()) != amzn {
        // Mapped from the traceparent: its ids, in X-Ray's shape.
        let mut fields = traceparent.trim().split('-');
        let (_, id, parent) = (
            fields.next(),
            fields.next().unwrap(),
            fields.next().unwrap(),
        );
        assert!(trace_id.starts_with(&format!(
            "Root=1-{}-{};Parent={parent};Sampled=",
            &id[..8],
            &id[8..]
        )));
        assert_eq!(
            invoke_trace_id(None, Some(traceparent)).as_deref(),
            Some(trace_id.as_str())
        );
    }
});
