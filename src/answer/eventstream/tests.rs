use super::*;
use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use aws_smithy_types::DateTime;

const MAX: usize = DEFAULT_MAX_FRAME_BYTES;

/// A frame built by aws-smithy-eventstream's encoder.
fn encode(headers: Vec<Header>, payload: &[u8]) -> Vec<u8> {
    let message = Message::new_from_parts(headers, payload.to_vec());
    let mut out = Vec::new();
    write_message_to(&message, &mut out).unwrap();
    out
}

fn string(name: &'static str, value: &'static str) -> Header {
    Header::new(name, HeaderValue::String(value.into()))
}

fn event(event_type: &'static str, payload: &[u8]) -> Vec<u8> {
    encode(
        vec![
            string(":event-type", event_type),
            string(":content-type", "application/octet-stream"),
            string(":message-type", "event"),
        ],
        payload,
    )
}

fn chunk(payload: &[u8]) -> Vec<u8> {
    event("PayloadChunk", payload)
}

fn complete(json: &str) -> Vec<u8> {
    event("InvokeComplete", json.as_bytes())
}

fn ok_complete() -> StreamEvent {
    StreamEvent::Complete {
        error_code: None,
        error_details: None,
        log_result: None,
    }
}

/// A stream of several chunks (sizes 0 to 70 000, binary) and a complete.
fn sample_stream() -> (Vec<u8>, Vec<StreamEvent>) {
    let mut stream = Vec::new();
    let mut expected = Vec::new();
    for (i, size) in [1usize, 7, 0, 300, 70_000, 16, 4096]
        .into_iter()
        .enumerate()
    {
        let payload: Vec<u8> = (0..size).map(|b| (b * 31 + i) as u8).collect();
        stream.extend(chunk(&payload));
        if size > 0 {
            expected.push(StreamEvent::Payload(payload));
        }
    }
    stream.extend(complete(
        r#"{"ErrorCode":"","ErrorDetails":"","LogResult":"bG9n"}"#,
    ));
    expected.push(StreamEvent::Complete {
        error_code: None,
        error_details: None,
        log_result: Some("bG9n".into()),
    });
    (stream, expected)
}

fn decode_in_pieces(stream: &[u8], sizes: &mut dyn FnMut() -> usize) -> Vec<StreamEvent> {
    let mut decoder = StreamDecoder::new(MAX);
    let mut events = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        let (piece, tail) = rest.split_at(sizes().clamp(1, rest.len()));
        events.extend(decoder.push(piece).unwrap());
        assert!(
            decoder.buffered() <= 70_000 + 200,
            "holds one frame at most"
        );
        rest = tail;
    }
    decoder.finish().unwrap();
    assert!(decoder.ended());
    events
}

/// Payload events merged (a split may not change the bytes, only the events' count).
fn merged(events: Vec<StreamEvent>) -> Vec<StreamEvent> {
    let mut out: Vec<StreamEvent> = Vec::new();
    for event in events {
        match (out.last_mut(), event) {
            (Some(StreamEvent::Payload(last)), StreamEvent::Payload(more)) => last.extend(more),
            (_, event) => out.push(event),
        }
    }
    out
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn crc32_matches_crc32fast() {
    let data: Vec<u8> = (0..5000u32).map(|i| (i * 7 + i / 13) as u8).collect();
    for len in (0..64).chain([999, 4096, 5000]) {
        assert_eq!(
            crc32::hash(&data[..len]),
            crc32fast::hash(&data[..len]),
            "{len}"
        );
    }
    assert_eq!(crc32::hash(b"123456789"), 0xCBF4_3926);
}

#[test]
fn whole_stream_in_one_push() {
    let (stream, expected) = sample_stream();
    let mut decoder = StreamDecoder::new(MAX);
    assert_eq!(decoder.push(&stream).unwrap(), expected);
    assert_eq!(decoder.buffered(), 0);
    decoder.finish().unwrap();
}

#[test]
fn byte_by_byte() {
    let (stream, expected) = sample_stream();
    assert_eq!(decode_in_pieces(&stream, &mut || 1), expected);
}

#[test]
fn every_split_point_of_a_small_stream() {
    let mut stream = chunk(b"hello");
    stream.extend(chunk(b", world"));
    stream.extend(complete("{}"));
    let expected = vec![
        StreamEvent::Payload(b"hello".to_vec()),
        StreamEvent::Payload(b", world".to_vec()),
        ok_complete(),
    ];
    for a in 0..=stream.len() {
        for b in a..=stream.len() {
            let mut decoder = StreamDecoder::new(MAX);
            let mut events = decoder.push(&stream[..a]).unwrap();
            events.extend(decoder.push(&stream[a..b]).unwrap());
            events.extend(decoder.push(&stream[b..]).unwrap());
            decoder.finish().unwrap();
            assert_eq!(events, expected, "split at {a}, {b}");
        }
    }
}

#[test]
fn random_splits() {
    let (stream, expected) = sample_stream();
    for seed in 1..200u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let bound = [3u64, 17, 100, 5000, 100_000][seed as usize % 5];
        let events = decode_in_pieces(&stream, &mut || (rng.next() % bound) as usize + 1);
        assert_eq!(merged(events), merged(expected.clone()), "seed {seed}");
    }
}

#[test]
fn invoke_complete_with_and_without_error() {
    let cases = [
        (
            r#"{"ErrorCode":"Unhandled","ErrorDetails":"boom","LogResult":"TE9H"}"#,
            StreamEvent::Complete {
                error_code: Some("Unhandled".into()),
                error_details: Some("boom".into()),
                log_result: Some("TE9H".into()),
            },
        ),
        (
            r#"{"ErrorCode":"Function.ResponseSizeTooLarge","ErrorDetails":null}"#,
            StreamEvent::Complete {
                error_code: Some("Function.ResponseSizeTooLarge".into()),
                error_details: None,
                log_result: None,
            },
        ),
        (r#"{}"#, ok_complete()),
        ("", ok_complete()),
        (r#"{"LogResult":null,"Other":1}"#, ok_complete()),
    ];
    for (json, expected) in cases {
        let mut decoder = StreamDecoder::new(MAX);
        assert_eq!(
            decoder.push(&complete(json)).unwrap(),
            vec![expected],
            "{json}"
        );
        decoder.finish().unwrap();
    }
    for bad in ["[1]", "not json", r#"{"ErrorCode":5}"#] {
        let mut decoder = StreamDecoder::new(MAX);
        assert_eq!(
            decoder.push(&complete(bad)),
            Err(StreamError::InvalidComplete),
            "{bad}"
        );
    }
}

#[test]
fn exception_and_error_frames_end_the_stream() {
    let exception = encode(
        vec![
            string(":message-type", "exception"),
            string(":exception-type", "ServiceException"),
            string(":content-type", "application/json"),
        ],
        br#"{"message":"internal"}"#,
    );
    let mut decoder = StreamDecoder::new(MAX);
    let mut stream = chunk(b"a");
    stream.extend(&exception);
    assert_eq!(
        decoder.push(&stream).unwrap(),
        vec![
            StreamEvent::Payload(b"a".to_vec()),
            StreamEvent::Exception {
                error_type: "ServiceException".into(),
                message: Some("internal".into()),
            }
        ]
    );
    assert!(decoder.ended());
    decoder.finish().unwrap();

    let error = encode(
        vec![
            string(":message-type", "error"),
            string(":error-code", "InternalError"),
            string(":error-message", "try again"),
        ],
        b"",
    );
    let mut decoder = StreamDecoder::new(MAX);
    assert_eq!(
        decoder.push(&error).unwrap(),
        vec![StreamEvent::Exception {
            error_type: "InternalError".into(),
            message: Some("try again".into()),
        }]
    );
}

#[test]
fn headers_of_every_type_are_parsed_and_unknown_events_skipped() {
    let frame = encode(
        vec![
            Header::new("b1", HeaderValue::Bool(true)),
            Header::new("b0", HeaderValue::Bool(false)),
            Header::new("i8", HeaderValue::Byte(-3)),
            Header::new("i16", HeaderValue::Int16(300)),
            Header::new("i32", HeaderValue::Int32(70_000)),
            Header::new("i64", HeaderValue::Int64(1 << 40)),
            Header::new("bytes", HeaderValue::ByteArray(vec![0u8, 1, 2].into())),
            Header::new("ts", HeaderValue::Timestamp(DateTime::from_secs(5))),
            Header::new("id", HeaderValue::Uuid(u128::MAX)),
            string(":message-type", "event"),
            string(":event-type", "PayloadChunk"),
        ],
        b"typed",
    );
    let mut stream = event("SomethingNew", b"ignored");
    stream.extend(frame);
    stream.extend(complete("{}"));
    let mut decoder = StreamDecoder::new(MAX);
    assert_eq!(
        decoder.push(&stream).unwrap(),
        vec![StreamEvent::Payload(b"typed".to_vec()), ok_complete()]
    );
}

fn set_u32(frame: &mut [u8], at: usize, value: u32) {
    frame[at..at + 4].copy_from_slice(&value.to_be_bytes());
}

/// Rewrites both CRCs after a change.
fn reseal(frame: &mut [u8]) {
    let prelude_crc = crc32::hash(&frame[..8]);
    set_u32(frame, 8, prelude_crc);
    let end = frame.len() - 4;
    let message_crc = crc32::hash(&frame[..end]);
    set_u32(frame, end, message_crc);
}

fn first_error(stream: &[u8], max: usize) -> StreamError {
    // Whole and byte by byte: the same error.
    let mut whole = StreamDecoder::new(max);
    let error = match whole.push(stream) {
        Err(error) => error,
        Ok(_) => whole.finish().unwrap_err(),
    };
    let mut bytewise = StreamDecoder::new(max);
    let mut found = None;
    for byte in stream {
        if let Err(e) = bytewise.push(std::slice::from_ref(byte)) {
            found = Some(e);
            break;
        }
    }
    let found = found.unwrap_or_else(|| bytewise.finish().unwrap_err());
    assert_eq!(found, error);
    // The decoder stays failed.
    assert_eq!(whole.push(&chunk(b"x")), Err(error.clone()));
    assert_eq!(whole.finish(), Err(error.clone()));
    error
}

#[test]
fn corrupt_frames_are_refused() {
    let good = chunk(b"payload bytes");

    let mut prelude_crc = good.clone();
    prelude_crc[9] ^= 1;
    assert_eq!(
        first_error(&prelude_crc, MAX),
        StreamError::PreludeCrcMismatch
    );

    let mut length = good.clone();
    length[3] ^= 1; // total length changed, prelude CRC now wrong
    assert_eq!(first_error(&length, MAX), StreamError::PreludeCrcMismatch);

    for at in [12, 20, good.len() - 5, good.len() - 1] {
        let mut flipped = good.clone();
        flipped[at] ^= 0x40;
        assert_eq!(
            first_error(&flipped, MAX),
            StreamError::MessageCrcMismatch,
            "byte {at}"
        );
    }

    // Lengths that do not fit together, CRCs right.
    let mut short = good.clone();
    set_u32(&mut short, 0, 15);
    reseal(&mut short);
    assert_eq!(
        first_error(&short, MAX),
        StreamError::InvalidLengths {
            total: 15,
            headers: u32::from_be_bytes([good[4], good[5], good[6], good[7]])
        }
    );
    let mut headers = good.clone();
    set_u32(&mut headers, 4, good.len() as u32 - 15);
    reseal(&mut headers);
    assert!(matches!(
        first_error(&headers, MAX),
        StreamError::InvalidLengths { .. }
    ));
    // Headers length inside the frame but cutting a header: malformed headers.
    let mut cut = good.clone();
    set_u32(&mut cut, 4, 5);
    reseal(&mut cut);
    assert!(matches!(
        first_error(&cut, MAX),
        StreamError::InvalidHeaders { .. }
    ));
}

#[test]
fn malformed_headers_are_refused() {
    let frame = |block: &[u8]| {
        let total = (16 + block.len()) as u32;
        let mut f = total.to_be_bytes().to_vec();
        f.extend((block.len() as u32).to_be_bytes());
        f.extend([0; 4]);
        f.extend(block);
        f.extend([0; 4]);
        reseal(&mut f);
        f
    };
    let cases: [(&[u8], StreamError); 6] = [
        (
            b"\x00\x07",
            StreamError::InvalidHeaders {
                reason: "empty header name",
            },
        ),
        (
            b"\x05ab",
            StreamError::InvalidHeaders {
                reason: "header name runs past the header block",
            },
        ),
        (
            b"\x01a",
            StreamError::InvalidHeaders {
                reason: "header value type missing",
            },
        ),
        (
            b"\x01a\x0a",
            StreamError::InvalidHeaders {
                reason: "unknown header value type",
            },
        ),
        (
            b"\x01a\x07\x00\x05ab",
            StreamError::InvalidHeaders {
                reason: "header value runs past the header block",
            },
        ),
        (
            b"\x01a\x07\x00\x01\xff",
            StreamError::InvalidHeaders {
                reason: "header string is not UTF-8",
            },
        ),
    ];
    for (block, expected) in cases {
        assert_eq!(first_error(&frame(block), MAX), expected, "{block:?}");
    }
    // Well-formed headers, but not what Lambda sends.
    assert_eq!(
        first_error(&frame(b""), MAX),
        StreamError::MissingHeader(":message-type")
    );
    assert_eq!(
        first_error(&frame(b"\x0d:message-type\x07\x00\x05event"), MAX),
        StreamError::MissingHeader(":event-type")
    );
    // Not a string: as missing.
    assert_eq!(
        first_error(&frame(b"\x0d:message-type\x00"), MAX),
        StreamError::MissingHeader(":message-type")
    );
    let odd = first_error(&frame(b"\x0d:message-type\x07\x00\x04wh\r\n"), MAX);
    assert_eq!(odd, StreamError::UnknownMessageType("wh\\r\\n".into()));
}

#[test]
fn oversized_frames_are_refused_from_their_prelude() {
    let big = chunk(&vec![7u8; 2000]);
    let size = big.len() as u32;
    // Refused as soon as the 12 prelude bytes are in, before the rest is buffered.
    let mut decoder = StreamDecoder::new(1000);
    assert_eq!(
        decoder.push(&big[..12]),
        Err(StreamError::FrameTooLarge { size, max: 1000 })
    );
    assert_eq!(decoder.buffered(), 0);
    // Exactly the limit passes.
    let mut decoder = StreamDecoder::new(big.len());
    assert_eq!(decoder.push(&big).unwrap().len(), 1);
    // A 4 GiB announcement with a valid prelude CRC.
    let mut huge = vec![0u8; 12];
    set_u32(&mut huge, 0, u32::MAX);
    set_u32(&mut huge, 4, 0);
    let crc = crc32::hash(&huge[..8]);
    set_u32(&mut huge, 8, crc);
    assert_eq!(
        first_error(&huge, MAX),
        StreamError::FrameTooLarge {
            size: u32::MAX,
            max: MAX
        }
    );
}

#[test]
fn truncated_streams_fail_at_finish() {
    let (stream, _) = sample_stream();
    let first = chunk(b"x").len();
    for cut in [1, 11, 12, first - 1, stream.len() - 1] {
        let mut decoder = StreamDecoder::new(MAX);
        let _ = decoder.push(&stream[..cut]).unwrap();
        assert!(matches!(
            decoder.finish(),
            Err(StreamError::Truncated { .. })
        ));
    }
    // On a frame boundary, but no InvokeComplete.
    let mut decoder = StreamDecoder::new(MAX);
    decoder.push(&chunk(b"x")).unwrap();
    assert_eq!(decoder.finish(), Err(StreamError::MissingComplete));
    assert_eq!(
        StreamDecoder::new(MAX).finish(),
        Err(StreamError::MissingComplete)
    );
}

#[test]
fn data_after_the_last_event_is_refused() {
    let mut stream = complete("{}");
    stream.extend(chunk(b"late"));
    assert_eq!(first_error(&stream, MAX), StreamError::DataAfterEnd);
}

#[test]
fn messages_never_carry_payload_bytes() {
    let secret = b"SECRET-PAYLOAD";
    let mut corrupt = chunk(secret);
    let end = corrupt.len() - 1;
    corrupt[end] ^= 1;
    let mut truncated = chunk(secret);
    truncated.pop();
    for stream in [corrupt, truncated, complete("SECRET-PAYLOAD")] {
        let error = first_error(&stream, MAX);
        for text in [error.to_string(), format!("{error:?}")] {
            assert!(!text.contains("SECRET"), "{text}");
        }
        assert!(!error.class().is_empty());
    }
}
