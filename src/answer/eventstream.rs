//! Incremental decoder of Lambda's `InvokeWithResponseStream` answer
//! (`application/vnd.amazon.eventstream`).
//!
//! A frame ("message") is, big-endian:
//!
//! ```text
//! total length u32 | headers length u32 | prelude CRC32 (of the 8 bytes before)
//! headers (headers length bytes) | payload | message CRC32 (of every byte before)
//! ```
//!
//! A header is `name length u8 | name | value type u8 | value`, the value's size given by its
//! type (bool true/false: none; byte 1; short 2; int 4; long 8; byte array and string: u16
//! length then bytes; timestamp 8; uuid 16).
//!
//! Lambda sends `:message-type` `event` frames with `:event-type` `PayloadChunk` (payload: the
//! function's bytes) and a last `InvokeComplete` (payload: JSON `ErrorCode`, `ErrorDetails`,
//! `LogResult`); `exception` frames (`:exception-type`) and `error` frames (`:error-code`,
//! `:error-message`) report failures of the stream itself.
//!
//! Both CRCs are checked (CRC32, IEEE, as zlib). The decoder keeps at most one incomplete
//! frame (bounded by `max_frame_bytes`) between calls; complete frames in a chunk are decoded
//! straight from it. Events of other types are skipped (forward compatible, as AWS SDKs do).

use std::fmt;

use serde_json::Value;

/// Bytes of the prelude (two lengths and the prelude CRC).
const PRELUDE_BYTES: usize = 12;
/// Smallest frame: prelude and message CRC, no headers, no payload.
const MIN_FRAME_BYTES: usize = PRELUDE_BYTES + 4;

/// Default bound on one frame. Lambda's frames carry what the function wrote in pieces far
/// below this (its payload chunks are tens of KiB at most); the event stream format allows
/// 16 MiB payloads and 128 KiB of headers, which this filter refuses to buffer. 1 MiB of
/// payload plus the format's maximum header block (128 KiB) plus the frame's fixed 16 bytes.
pub(crate) const DEFAULT_MAX_FRAME_BYTES: usize = (1 << 20) + (128 << 10) + MIN_FRAME_BYTES;

/// Longest header value (a wire string) quoted in an error.
const MAX_QUOTE_CHARS: usize = 64;

/// One decoded event of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// A `PayloadChunk`: bytes the function wrote.
    Payload(Vec<u8>),
    /// `InvokeComplete`: the function finished; `error_code` is set when it failed (e.g.
    /// `Unhandled`), `error_details` then holds Lambda's description, `log_result` the
    /// base64 tail of the log when `X-Amz-Log-Type: Tail` was asked.
    Complete {
        error_code: Option<String>,
        error_details: Option<String>,
        log_result: Option<String>,
    },
    /// An `exception` or `error` frame: Lambda broke off the stream.
    /// `error_type` is the `:exception-type` or `:error-code`; `message` the exception
    /// payload's `message` (or `Message`) member, or the `:error-message` header.
    Exception {
        error_type: String,
        message: Option<String>,
    },
}

/// Why the stream cannot be decoded. Display and Debug never carry payload bytes; header
/// values are quoted (cut and escaped) where named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamError {
    /// The prelude's CRC32 does not match its 8 bytes.
    PreludeCrcMismatch,
    /// The message CRC32 does not match the frame.
    MessageCrcMismatch,
    /// The lengths of the prelude do not fit together (a total below 16 bytes, or headers
    /// longer than the frame leaves room for).
    InvalidLengths { total: u32, headers: u32 },
    /// A frame announces more bytes than the decoder accepts.
    FrameTooLarge { size: u32, max: usize },
    /// The header block does not parse (`reason` names what is wrong).
    InvalidHeaders { reason: &'static str },
    /// A header the frame needs is absent (or not a string).
    MissingHeader(&'static str),
    /// `:message-type` is none of event / exception / error.
    UnknownMessageType(String),
    /// The `InvokeComplete` payload is not the JSON object Lambda sends.
    InvalidComplete,
    /// Bytes came after `InvokeComplete` (or after an exception frame).
    DataAfterEnd,
    /// The stream ended in the middle of a frame (`buffered` bytes of it received).
    Truncated { buffered: usize },
    /// The stream ended on a frame boundary, without `InvokeComplete`.
    MissingComplete,
}

impl StreamError {
    /// A short word for logs and counters.
    pub fn class(&self) -> &'static str {
        match self {
            Self::PreludeCrcMismatch | Self::MessageCrcMismatch => "crc_mismatch",
            Self::InvalidLengths { .. } | Self::InvalidHeaders { .. } => "malformed_frame",
            Self::FrameTooLarge { .. } => "frame_too_large",
            Self::MissingHeader(_) | Self::UnknownMessageType(_) | Self::InvalidComplete => {
                "unexpected_frame"
            }
            Self::DataAfterEnd => "data_after_end",
            Self::Truncated { .. } | Self::MissingComplete => "truncated",
        }
    }
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PreludeCrcMismatch => write!(f, "event stream frame prelude CRC mismatch"),
            Self::MessageCrcMismatch => write!(f, "event stream frame CRC mismatch"),
            Self::InvalidLengths { total, headers } => write!(
                f,
                "event stream frame lengths are inconsistent (total {total}, headers {headers})"
            ),
            Self::FrameTooLarge { size, max } => write!(
                f,
                "event stream frame of {size} bytes is over the limit of {max} bytes"
            ),
            Self::InvalidHeaders { reason } => {
                write!(f, "event stream frame headers are malformed: {reason}")
            }
            Self::MissingHeader(name) => {
                write!(f, "event stream frame has no string header {name}")
            }
            Self::UnknownMessageType(kind) => {
                write!(f, "event stream frame has unknown :message-type {kind}")
            }
            Self::InvalidComplete => {
                write!(
                    f,
                    "event stream InvokeComplete payload is not a JSON object"
                )
            }
            Self::DataAfterEnd => write!(f, "event stream has data after its last event"),
            Self::Truncated { buffered } => write!(
                f,
                "event stream ended inside a frame ({buffered} bytes of it received)"
            ),
            Self::MissingComplete => write!(f, "event stream ended without InvokeComplete"),
        }
    }
}

impl std::error::Error for StreamError {}

/// Incremental decoder: feed body chunks with [`push`](Self::push), then call
/// [`finish`](Self::finish) at the end of the body. After an error the decoder keeps
/// answering that error.
#[derive(Debug)]
pub struct StreamDecoder {
    max_frame_bytes: usize,
    /// The start of a frame not yet complete (never more than one frame).
    partial: Vec<u8>,
    /// Total length of the frame in `partial`, once its prelude is checked.
    partial_total: Option<usize>,
    ended: bool,
    failed: Option<StreamError>,
}

impl StreamDecoder {
    /// A decoder that refuses frames over `max_frame_bytes` (at least 16 is enforced).
    pub fn new(max_frame_bytes: usize) -> Self {
        Self {
            max_frame_bytes: max_frame_bytes.max(MIN_FRAME_BYTES),
            partial: Vec::new(),
            partial_total: None,
            ended: false,
            failed: None,
        }
    }

    /// Whether `InvokeComplete` (or an exception frame) was decoded.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Bytes held for an incomplete frame.
    pub fn buffered(&self) -> usize {
        self.partial.len()
    }

    /// Decodes what `chunk` completes; the events come in stream order.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<StreamEvent>, StreamError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        let mut events = Vec::new();
        match self.decode(chunk, &mut events) {
            Ok(()) => Ok(events),
            Err(error) => {
                self.partial = Vec::new();
                self.failed = Some(error.clone());
                Err(error)
            }
        }
    }

    /// The end of the body: an error when it stopped inside a frame or before
    /// `InvokeComplete`.
    pub fn finish(&mut self) -> Result<(), StreamError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        let error = if !self.partial.is_empty() {
            StreamError::Truncated {
                buffered: self.partial.len(),
            }
        } else if !self.ended {
            StreamError::MissingComplete
        } else {
            return Ok(());
        };
        self.partial = Vec::new();
        self.failed = Some(error.clone());
        Err(error)
    }

    fn decode(
        &mut self,
        mut chunk: &[u8],
        events: &mut Vec<StreamEvent>,
    ) -> Result<(), StreamError> {
        while !chunk.is_empty() {
            if self.ended {
                return Err(StreamError::DataAfterEnd);
            }
            if self.partial.is_empty() {
                // Frames whole in the chunk are decoded in place.
                if chunk.len() >= PRELUDE_BYTES {
                    let total = self.check_prelude(&chunk[..PRELUDE_BYTES])?;
                    if let Some((frame, rest)) = chunk.split_at_checked(total) {
                        self.frame(frame, events)?;
                        chunk = rest;
                        continue;
                    }
                    self.partial_total = Some(total);
                }
                self.partial.extend_from_slice(chunk);
                return Ok(());
            }
            let total = match self.partial_total {
                Some(total) => total,
                None => {
                    let wanted = PRELUDE_BYTES - self.partial.len();
                    let (head, rest) = chunk.split_at(wanted.min(chunk.len()));
                    self.partial.extend_from_slice(head);
                    chunk = rest;
                    if self.partial.len() < PRELUDE_BYTES {
                        return Ok(());
                    }
                    let total = self.check_prelude(&self.partial)?;
                    self.partial_total = Some(total);
                    total
                }
            };
            let wanted = total.saturating_sub(self.partial.len());
            let (body, rest) = chunk.split_at(wanted.min(chunk.len()));
            self.partial.extend_from_slice(body);
            chunk = rest;
            if self.partial.len() < total {
                return Ok(());
            }
            let frame = std::mem::take(&mut self.partial);
            self.partial_total = None;
            self.frame(&frame, events)?;
        }
        Ok(())
    }

    /// Checks the prelude (its CRC first, so that corrupt lengths read as corruption) and
    /// returns the frame's total length.
    fn check_prelude(&self, prelude: &[u8]) -> Result<usize, StreamError> {
        let total = read_u32(prelude, 0)?;
        let headers = read_u32(prelude, 4)?;
        if crc32::hash(&prelude[..8]) != read_u32(prelude, 8)? {
            return Err(StreamError::PreludeCrcMismatch);
        }
        let size = usize::try_from(total).map_err(|_| StreamError::FrameTooLarge {
            size: total,
            max: self.max_frame_bytes,
        })?;
        let headers_len = usize::try_from(headers).unwrap_or(usize::MAX);
        if size < MIN_FRAME_BYTES || headers_len > size - MIN_FRAME_BYTES {
            return Err(StreamError::InvalidLengths { total, headers });
        }
        if size > self.max_frame_bytes {
            return Err(StreamError::FrameTooLarge {
                size: total,
                max: self.max_frame_bytes,
            });
        }
        Ok(size)
    }

    /// Decodes one whole frame (prelude already checked).
    fn frame(&mut self, frame: &[u8], events: &mut Vec<StreamEvent>) -> Result<(), StreamError> {
        let crc_at = frame.len() - 4;
        if crc32::hash(&frame[..crc_at]) != read_u32(frame, crc_at)? {
            return Err(StreamError::MessageCrcMismatch);
        }
        let headers_len = read_u32(frame, 4)? as usize;
        let headers_end = PRELUDE_BYTES + headers_len;
        let headers = parse_headers(&frame[PRELUDE_BYTES..headers_end])?;
        let payload = &frame[headers_end..crc_at];
        let text = |name: &'static str| -> Result<&str, StreamError> {
            headers
                .iter()
                .find_map(|(n, v)| (*n == name).then_some(*v).flatten())
                .ok_or(StreamError::MissingHeader(name))
        };
        let optional = |name: &'static str| text(name).ok().map(str::to_string);
        let message_type = text(":message-type")?;
        match message_type {
            "event" => match text(":event-type")? {
                "PayloadChunk" if !payload.is_empty() => {
                    events.push(StreamEvent::Payload(payload.to_vec()));
                }
                "InvokeComplete" => {
                    events.push(invoke_complete(payload)?);
                    self.ended = true;
                }
                _ => {}
            },
            "exception" => {
                let error_type = text(":exception-type")?.to_string();
                let message = serde_json::from_slice::<Value>(payload).ok().and_then(|v| {
                    ["message", "Message"]
                        .iter()
                        .find_map(|k| v.get(k).and_then(Value::as_str).map(str::to_string))
                });
                events.push(StreamEvent::Exception {
                    error_type,
                    message,
                });
                self.ended = true;
            }
            "error" => {
                events.push(StreamEvent::Exception {
                    error_type: text(":error-code")?.to_string(),
                    message: optional(":error-message"),
                });
                self.ended = true;
            }
            other => return Err(StreamError::UnknownMessageType(quote(other))),
        }
        Ok(())
    }
}

fn invoke_complete(payload: &[u8]) -> Result<StreamEvent, StreamError> {
    let object = match serde_json::from_slice::<Value>(payload) {
        Ok(Value::Object(object)) => object,
        // Lambda always sends an object; an empty payload is read as `{}`.
        _ if payload.iter().all(u8::is_ascii_whitespace) => serde_json::Map::new(),
        _ => return Err(StreamError::InvalidComplete),
    };
    let member = |name: &str| -> Result<Option<String>, StreamError> {
        match object.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(StreamError::InvalidComplete),
        }
    };
    Ok(StreamEvent::Complete {
        error_code: member("ErrorCode")?,
        error_details: member("ErrorDetails")?,
        log_result: member("LogResult")?,
    })
}

/// (name, value when it is a string) for each header; other value types are skipped.
fn parse_headers(mut block: &[u8]) -> Result<Vec<(&str, Option<&str>)>, StreamError> {
    let malformed = |reason| StreamError::InvalidHeaders { reason };
    let mut headers = Vec::new();
    while let Some((&name_len, rest)) = block.split_first() {
        let (name, rest) = rest
            .split_at_checked(usize::from(name_len))
            .ok_or(malformed("header name runs past the header block"))?;
        if name.is_empty() {
            return Err(malformed("empty header name"));
        }
        let name = std::str::from_utf8(name).map_err(|_| malformed("header name is not UTF-8"))?;
        let (&value_type, rest) = rest
            .split_first()
            .ok_or(malformed("header value type missing"))?;
        let fixed = match value_type {
            0 | 1 => Some(0),
            2 => Some(1),
            3 => Some(2),
            4 => Some(4),
            5 | 8 => Some(8),
            9 => Some(16),
            6 | 7 => None,
            _ => return Err(malformed("unknown header value type")),
        };
        let (value, rest) = match fixed {
            Some(size) => rest
                .split_at_checked(size)
                .map(|(_, rest)| (None, rest))
                .ok_or(malformed("header value runs past the header block"))?,
            None => {
                let (len, rest) = rest
                    .split_at_checked(2)
                    .ok_or(malformed("header value length missing"))?;
                let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
                let (bytes, rest) = rest
                    .split_at_checked(len)
                    .ok_or(malformed("header value runs past the header block"))?;
                let value = if value_type == 7 {
                    Some(
                        std::str::from_utf8(bytes)
                            .map_err(|_| malformed("header string is not UTF-8"))?,
                    )
                } else {
                    None
                };
                (value, rest)
            }
        };
        headers.push((name, value));
        block = rest;
    }
    Ok(headers)
}

fn read_u32(bytes: &[u8], at: usize) -> Result<u32, StreamError> {
    bytes
        .get(at..at + 4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_be_bytes)
        .ok_or(StreamError::InvalidHeaders {
            reason: "frame shorter than its fixed fields",
        })
}

/// CRC-32 (IEEE 802.3, reflected, as zlib and the event stream format), slicing by 8.
/// The tables are computed on first use rather than stored in the .wasm: crc32fast's
/// 16 KiB of static tables were most of what a CRC crate added to the module.
mod crc32 {
    use std::sync::OnceLock;

    type Tables = [[u32; 256]; 8];

    static TABLES: OnceLock<Box<Tables>> = OnceLock::new();

    fn tables() -> &'static Tables {
        TABLES.get_or_init(|| {
            let mut t = Box::new([[0u32; 256]; 8]);
            for (i, entry) in (0u32..).zip(t[0].iter_mut()) {
                let mut c = i;
                for _ in 0..8 {
                    c = if c & 1 == 1 {
                        0xEDB8_8320 ^ (c >> 1)
                    } else {
                        c >> 1
                    };
                }
                *entry = c;
            }
            for k in 1..8 {
                for i in 0..256 {
                    let prev = t[k - 1][i];
                    t[k][i] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
                }
            }
            t
        })
    }

    pub(super) fn hash(data: &[u8]) -> u32 {
        let t = tables();
        let mut crc = !0u32;
        let mut blocks = data.chunks_exact(8);
        for b in &mut blocks {
            let lo = crc ^ u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            crc = t[7][(lo & 0xff) as usize]
                ^ t[6][((lo >> 8) & 0xff) as usize]
                ^ t[5][((lo >> 16) & 0xff) as usize]
                ^ t[4][(lo >> 24) as usize]
                ^ t[3][usize::from(b[4])]
                ^ t[2][usize::from(b[5])]
                ^ t[1][usize::from(b[6])]
                ^ t[0][usize::from(b[7])];
        }
        for &byte in blocks.remainder() {
            crc = (crc >> 8) ^ t[0][((crc ^ u32::from(byte)) & 0xff) as usize];
        }
        !crc
    }
}

/// A wire string for an error message: cut, control characters escaped.
fn quote(text: &str) -> String {
    let mut quoted: String = text
        .chars()
        .take(MAX_QUOTE_CHARS)
        .flat_map(char::escape_debug)
        .collect();
    if text.chars().count() > MAX_QUOTE_CHARS {
        quoted.push('…');
    }
    quoted
}

#[cfg(test)]
mod tests {
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
}
