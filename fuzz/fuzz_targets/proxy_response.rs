//! `decode_proxy_response` on arbitrary function answers, in every event format. Never
//! panics; a decoded reply has a status in 200-599, lower-case token header names, no
//! pseudo- or hop-by-hop headers, no header value with CR, LF, NUL or another control
//! character, at most the documented count and bytes of headers, and no body on 204/304;
//! written as HTTP/1.1 it reads back as exactly one response, whatever follows it on the
//! connection. Byte 0 picks the format, the rest is the function's payload.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proxy_wasm_lambda::{
    decode_proxy_response, is_bodyless_status, ClientReply, EventFormat, MAX_RESPONSE_HEADERS,
    MAX_RESPONSE_HEADER_BYTES,
};

const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "transfer-encoding",
    "upgrade",
    "proxy-connection",
    "te",
    "trailer",
    "content-length",
];

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, payload)) = data.split_first() else {
        return;
    };
    let format = match selector & 0x03 {
        0 => EventFormat::ApigwV2,
        1 => EventFormat::ApigwV1,
        2 => EventFormat::Alb,
        _ => EventFormat::Envoy,
    };
    let reply = match decode_proxy_response(format, payload) {
        Ok(reply) => reply,
        Err(error) => {
            assert_eq!(error.class(), "bad_response");
            let message = error.message();
            assert!(!message.is_empty());
            assert!(message.chars().count() < 400, "{message}");
            return;
        }
    };
    assert!((200..=599).contains(&reply.status), "{reply:?}");
    for (name, value) in &reply.headers {
        assert!(!name.is_empty(), "{reply:?}");
        assert!(name.bytes().all(is_token_byte), "{name:?}");
        assert!(!name.bytes().any(|b| b.is_ascii_uppercase()), "{name:?}");
        assert!(!HOP_BY_HOP.contains(&name.as_str()), "{name:?}");
        assert!(!name.starts_with("x-envoy-"), "{name:?}");
        assert!(
            !value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f),
            "{name}: {value:?}"
        );
    }
    let set_cookies: Vec<&String> = reply
        .headers
        .iter()
        .filter(|(n, _)| n == "set-cookie")
        .map(|(_, v)| v)
        .collect();
    for (i, cookie) in set_cookies.iter().enumerate() {
        assert!(
            !set_cookies[..i].contains(cookie),
            "repeated set-cookie {cookie:?}"
        );
    }
    if format == EventFormat::ApigwV2
        && serde_json::from_slice::<serde_json::Value>(payload)
            .is_ok_and(|v| v.get("statusCode").is_none())
    {
        assert_eq!(reply.status, 200);
    }
    if format == EventFormat::ApigwV2 {
        assert!(serde_json::from_slice::<serde_json::Value>(payload).is_ok());
    }
    assert!(reply.headers.len() <= MAX_RESPONSE_HEADERS);
    let bytes: usize = reply.headers.iter().map(|(n, v)| n.len() + v.len()).sum();
    assert!(bytes <= MAX_RESPONSE_HEADER_BYTES);
    if is_bodyless_status(reply.status) {
        assert!(reply.body.is_empty(), "{reply:?}");
    }
    one_response_on_the_wire(&reply);
});

/// Writes the reply as an HTTP/1.1 response (as Envoy frames it: content-length except for
/// body-less statuses) followed by a second response, and reads the bytes back: the first
/// response ends exactly where the second begins.
fn one_response_on_the_wire(reply: &ClientReply) {
    let mut wire = format!("HTTP/1.1 {} X\r\n", reply.status).into_bytes();
    for (name, value) in &reply.headers {
        wire.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    if !is_bodyless_status(reply.status) {
        wire.extend_from_slice(format!("content-length: {}\r\n", reply.body.len()).as_bytes());
    }
    wire.extend_from_slice(b"\r\n");
    wire.extend_from_slice(&reply.body);
    let first_len = wire.len();
    wire.extend_from_slice(b"HTTP/1.1 200 NEXT\r\ncontent-length: 0\r\n\r\n");
    // Read back: the head ends at the first empty line; the body is content-length bytes.
    let head_end = wire
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head")
        + 4;
    let head = std::str::from_utf8(&wire[..head_end]).expect("a text head");
    let lines: Vec<&str> = head.trim_end().split("\r\n").collect();
    assert_eq!(
        lines.len(),
        1 + reply.headers.len() + usize::from(!is_bodyless_status(reply.status))
    );
    let length = lines
        .iter()
        .find_map(|l| l.strip_prefix("content-length: "))
        .map_or(0, |v| v.parse::<usize>().expect("a length"));
    assert_eq!(head_end + length, first_len, "{reply:?}");
    assert!(wire[first_len..].starts_with(b"HTTP/1.1 200 NEXT\r\n"));
}
