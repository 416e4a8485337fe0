//! `decode_proxy_response` on arbitrary function answers, in every event format. Never
//! panics; a decoded reply has a status in 200-599, lower-case token header names, no
//! pseudo- or hop-by-hop headers and no header value with CR, LF, NUL or another control
//! character. Byte 0 picks the format, the rest is the function's payload.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proxy_wasm_lambda::event::EventFormat;
use proxy_wasm_lambda::proxy_response::decode_proxy_response;

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
            .map_or(true, |v| v.get("statusCode").is_none())
    {
        assert_eq!(reply.status, 200);
    }
});
