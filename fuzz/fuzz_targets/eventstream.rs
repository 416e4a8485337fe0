//! `StreamDecoder` and `PreludeSplitter` on arbitrary bytes. Never panics; holds at most
//! one frame; decoding in pieces gives the same bytes, events and error as decoding at once;
//! the prelude splitter yields one head, with clean headers, and passes the body through.
//! Byte 0 seeds the piece sizes, byte 1 picks the prelude mode, the rest is the stream.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proxy_wasm_lambda::{
    PreludeMode, PreludeSplitter, Split, StreamDecoder, StreamError, StreamEvent,
};

const MAX_FRAME: usize = 4096;
const MAX_PRELUDE: usize = 512;

/// Events with adjacent payloads merged, and the first error.
fn decode(
    stream: &[u8],
    sizes: &mut dyn FnMut() -> usize,
) -> (Vec<StreamEvent>, Option<StreamError>) {
    let mut decoder = StreamDecoder::new(MAX_FRAME);
    let mut events: Vec<StreamEvent> = Vec::new();
    let mut rest = stream;
    let mut error = None;
    while !rest.is_empty() && error.is_none() {
        let (piece, tail) = rest.split_at(sizes().clamp(1, rest.len()));
        rest = tail;
        match decoder.push(piece) {
            Ok(new) => {
                for event in new {
                    match (events.last_mut(), event) {
                        (Some(StreamEvent::Payload(last)), StreamEvent::Payload(more)) => {
                            last.extend(more)
                        }
                        (_, event) => events.push(event),
                    }
                }
            }
            Err(e) => error = Some(e),
        }
        assert!(decoder.buffered() <= MAX_FRAME);
    }
    if error.is_none() {
        error = decoder.finish().err();
    }
    if let Some(e) = &error {
        assert!(!e.to_string().is_empty());
        assert!(!e.class().is_empty());
    }
    (events, error)
}

fn check_split(split: &Split, heads: &mut usize, body: &mut Vec<u8>) {
    if let Some(head) = &split.head {
        *heads += 1;
        assert!((200..=599).contains(&head.status));
        assert!(head.headers.iter().any(|(n, _)| n == "content-type"));
        for (name, value) in &head.headers {
            assert!(!name.is_empty() && !name.starts_with(':'));
            assert!(!value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0));
            assert_ne!(name, "content-length");
            assert_ne!(name, "transfer-encoding");
        }
    }
    body.extend_from_slice(&split.body);
}

fuzz_target!(|data: &[u8]| {
    let [seed, mode, stream @ ..] = data else {
        return;
    };
    let mut state = u32::from(*seed) | 0x100;
    let mut sizes = || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        (state % 64) as usize + 1
    };
    let (whole, whole_error) = decode(stream, &mut || usize::MAX);
    let (pieces, pieces_error) = decode(stream, &mut sizes);
    assert_eq!(whole_error, pieces_error);
    if whole_error.is_none() {
        assert_eq!(whole, pieces);
    }

    // The prelude splitter on the raw bytes, in pieces.
    let mode = match mode % 3 {
        0 => PreludeMode::Expected,
        1 => PreludeMode::Detect,
        _ => PreludeMode::Absent,
    };
    let mut splitter = PreludeSplitter::with_mode(mode, Some("text/plain"), MAX_PRELUDE);
    let (mut heads, mut body) = (0, Vec::new());
    let mut rest = stream;
    let mut failed = false;
    while !rest.is_empty() {
        let (piece, tail) = rest.split_at(sizes().clamp(1, rest.len()));
        rest = tail;
        match splitter.push(piece.to_vec()) {
            Ok(split) => check_split(&split, &mut heads, &mut body),
            Err(_) => {
                failed = true;
                break;
            }
        }
        assert!(splitter.buffered() <= MAX_PRELUDE + 64);
    }
    if !failed {
        match splitter.finish() {
            Ok(split) => {
                check_split(&split, &mut heads, &mut body);
                assert_eq!(heads, 1);
                assert!(stream.ends_with(&body));
                if mode == PreludeMode::Absent {
                    assert_eq!(body, stream);
                }
            }
            Err(e) => assert!(!e.message().is_empty()),
        }
    }
});
