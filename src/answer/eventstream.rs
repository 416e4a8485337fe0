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
mod tests;
