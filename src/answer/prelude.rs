//! The HTTP prelude of a response-streaming function (the Lambda Function URL format).
//!
//! A function that sets its status and headers (Node's `awslambda.HttpResponseStream.from`,
//! the other runtimes' equivalents) sets its stream's content type to
//! `application/vnd.awslambda.http-integration-response` and writes first a JSON object
//! `{"statusCode":…,"headers":{…},"cookies":[…]}`, then eight NUL bytes, then the body.
//! Lambda returns that content type as `InvokeWithResponseStream`'s `Content-Type`
//! (`ResponseStreamContentType`). A Function URL answers other streams with 200 and the
//! function's content type, the bytes untouched.
//!
//! [`PreludeSplitter`] is fed the decoded payload bytes in any pieces and yields once the
//! [`StreamHead`] (status and headers, checked under the rules of `proxy_response`), then
//! body bytes. With [`PreludeMode::Expected`] a missing or bad prelude is an error; with
//! [`PreludeMode::Detect`] (no content type to go by) a stream is taken as prelude only if
//! its first non-whitespace byte is `{`, the JSON object closes and eight NUL bytes follow
//! within `max_prelude_bytes`; anything else is body, sent as soon as that is known (an
//! NDJSON stream is held only until its first object closes).

use std::fmt;

use crate::answer::proxy_response::{stream_prelude, ProxyResponseError};

/// The content type of a stream that starts with an HTTP prelude.
pub(crate) const HTTP_INTEGRATION_CONTENT_TYPE: &str =
    "application/vnd.awslambda.http-integration-response";

/// The content type of an event stream (not the function's own).
pub(crate) const EVENTSTREAM_CONTENT_TYPE: &str = "application/vnd.amazon.eventstream";

/// Content type sent when neither the function nor its prelude names one (Lambda's default
/// for a response stream).
pub(crate) const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// Bound on the prelude (JSON and delimiter): status and headers fit in far less; the bytes
/// are held until the delimiter, so this bounds that memory and the first byte's delay.
pub(crate) const DEFAULT_MAX_PRELUDE_BYTES: usize = 64 * 1024;

/// Bytes of the delimiter between the prelude and the body (all NUL).
pub(crate) const DELIMITER_BYTES: usize = 8;

/// Whether the stream is expected to start with a prelude.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreludeMode {
    /// It must (the content type says so): a stream without one is an error.
    Expected,
    /// It may: the bytes decide.
    Detect,
    /// It does not: every byte is body.
    Absent,
}

impl PreludeMode {
    /// The mode for the `Content-Type` of Lambda's `InvokeWithResponseStream` answer (the
    /// function's stream content type): `Expected` for the HTTP-integration type, `Detect`
    /// when there is none or it is the event stream's own type, else `Absent`.
    pub fn for_content_type(content_type: Option<&str>) -> Self {
        match content_type.map(media_type) {
            Some(t) if t.eq_ignore_ascii_case(HTTP_INTEGRATION_CONTENT_TYPE) => Self::Expected,
            None => Self::Detect,
            Some(t) if t.is_empty() || t.eq_ignore_ascii_case(EVENTSTREAM_CONTENT_TYPE) => {
                Self::Detect
            }
            Some(_) => Self::Absent,
        }
    }
}

/// The type/subtype of a content type, without parameters.
fn media_type(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or("").trim()
}

/// Status and headers for the client's response, sent before the first body byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamHead {
    pub status: u16,
    /// Lower-case names; `set-cookie` once per cookie; always a `content-type`.
    pub headers: Vec<(String, String)>,
    /// Whether they come from the function's prelude.
    pub from_prelude: bool,
}

/// What one call yields: the head (once, the first time it is known), then body bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Split {
    pub head: Option<StreamHead>,
    pub body: Vec<u8>,
}

/// The prelude cannot be used. Display names the problem, never quotes the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PreludeError {
    /// Expected, but the stream does not start with a JSON object and the delimiter.
    Missing,
    /// Expected, but the stream ended before the delimiter.
    Truncated,
    /// No delimiter within the bound.
    TooLarge { max: usize },
    /// The prelude's status or headers break the response rules.
    Invalid(ProxyResponseError),
}

impl PreludeError {
    /// A description for the client's error body.
    pub fn message(&self) -> String {
        match self {
            Self::Missing => "the function's stream is marked as starting with an HTTP prelude \
                              but does not start with a JSON object and 8 NUL bytes"
                .to_string(),
            Self::Truncated => "the function's stream ended inside its HTTP prelude".to_string(),
            Self::TooLarge { max } => {
                format!("the function's HTTP prelude is not delimited within {max} bytes")
            }
            Self::Invalid(error) => format!("HTTP prelude: {}", error.message()),
        }
    }
}

impl fmt::Display for PreludeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad_response: {}", self.message())
    }
}

impl std::error::Error for PreludeError {}

/// Where the structural scan of the held bytes is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scan {
    /// Whitespace so far.
    Leading,
    /// Inside the JSON object.
    Object {
        depth: usize,
        in_string: bool,
        escaped: bool,
    },
    /// The object closed at `json_end`; `nuls` delimiter bytes seen since.
    Delimiter { json_end: usize, nuls: usize },
}

/// Splits the prelude off the function's stream. See the module documentation.
#[derive(Debug)]
pub struct PreludeSplitter {
    mode: PreludeMode,
    max_prelude_bytes: usize,
    content_type: String,
    /// Bytes held while undecided.
    held: Vec<u8>,
    /// How many of `held` the scan has read.
    scanned: usize,
    scan: Scan,
    decided: bool,
    failed: Option<PreludeError>,
}

impl PreludeSplitter {
    /// For Lambda's `Content-Type` (the function's stream content type), with the default
    /// bound.
    pub fn new(function_content_type: Option<&str>) -> Self {
        Self::with_mode(
            PreludeMode::for_content_type(function_content_type),
            function_content_type,
            DEFAULT_MAX_PRELUDE_BYTES,
        )
    }

    pub fn with_mode(
        mode: PreludeMode,
        function_content_type: Option<&str>,
        max_prelude_bytes: usize,
    ) -> Self {
        // The content type for a stream without prelude: the function's own, if it is one.
        let content_type = match function_content_type {
            Some(t)
                if !media_type(t).is_empty()
                    && PreludeMode::for_content_type(Some(t)) == PreludeMode::Absent
                    && !t.bytes().any(|b| b < 0x20 || b == 0x7f) =>
            {
                t.to_string()
            }
            _ => DEFAULT_CONTENT_TYPE.to_string(),
        };
        Self {
            mode,
            max_prelude_bytes: max_prelude_bytes.max(DELIMITER_BYTES + 2),
            content_type,
            held: Vec::new(),
            scanned: 0,
            scan: Scan::Leading,
            decided: false,
            failed: None,
        }
    }

    /// Whether the head was yielded (body bytes pass straight through from then on).
    pub fn decided(&self) -> bool {
        self.decided
    }

    /// Bytes held while undecided.
    pub fn buffered(&self) -> usize {
        self.held.len()
    }

    /// The next payload bytes of the stream.
    pub fn push(&mut self, bytes: Vec<u8>) -> Result<Split, PreludeError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        if self.decided {
            return Ok(Split {
                head: None,
                body: bytes,
            });
        }
        if self.mode == PreludeMode::Absent {
            return Ok(self.no_prelude(bytes));
        }
        if self.held.is_empty() {
            self.held = bytes;
        } else {
            self.held.extend_from_slice(&bytes);
        }
        let result = self.advance();
        self.fail_on_error(result)
    }

    /// The end of the stream: yields what was held (and the head, if not yet yielded).
    pub fn finish(&mut self) -> Result<Split, PreludeError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        if self.decided {
            return Ok(Split::default());
        }
        let result = match self.mode {
            PreludeMode::Expected => Err(if self.held.iter().all(u8::is_ascii_whitespace) {
                PreludeError::Missing
            } else {
                PreludeError::Truncated
            }),
            _ => {
                let held = std::mem::take(&mut self.held);
                Ok(self.no_prelude(held))
            }
        };
        self.fail_on_error(result)
    }

    fn fail_on_error(
        &mut self,
        result: Result<Split, PreludeError>,
    ) -> Result<Split, PreludeError> {
        if let Err(error) = &result {
            self.held = Vec::new();
            self.failed = Some(error.clone());
        }
        result
    }

    fn no_prelude(&mut self, body: Vec<u8>) -> Split {
        self.decided = true;
        self.held = Vec::new();
        Split {
            head: Some(StreamHead {
                status: 200,
                headers: vec![("content-type".to_string(), self.content_type.clone())],
                from_prelude: false,
            }),
            body,
        }
    }

    /// Scans the new held bytes; decides when it can.
    fn advance(&mut self) -> Result<Split, PreludeError> {
        let limit = self.held.len().min(self.max_prelude_bytes);
        while self.scanned < limit {
            let byte = self.held[self.scanned];
            let at = self.scanned;
            self.scanned += 1;
            self.scan = match self.scan {
                Scan::Leading if byte.is_ascii_whitespace() => Scan::Leading,
                Scan::Leading if byte == b'{' => Scan::Object {
                    depth: 1,
                    in_string: false,
                    escaped: false,
                },
                Scan::Leading => return self.not_a_prelude(),
                Scan::Object {
                    depth,
                    in_string,
                    escaped,
                } => {
                    if byte < 0x20 && (in_string || !byte.is_ascii_whitespace()) {
                        // Raw control bytes (NUL included) are not JSON.
                        return self.not_a_prelude();
                    }
                    match (in_string, escaped, byte) {
                        (true, true, _) => Scan::Object {
                            depth,
                            in_string,
                            escaped: false,
                        },
                        (true, false, b'\\') => Scan::Object {
                            depth,
                            in_string,
                            escaped: true,
                        },
                        (true, false, b'"') | (false, _, b'"') => Scan::Object {
                            depth,
                            in_string: !in_string,
                            escaped: false,
                        },
                        (false, _, b'{' | b'[') => Scan::Object {
                            depth: depth + 1,
                            in_string,
                            escaped,
                        },
                        (false, _, b'}' | b']') if depth == 1 => Scan::Delimiter {
                            json_end: at + 1,
                            nuls: 0,
                        },
                        (false, _, b'}' | b']') => Scan::Object {
                            depth: depth - 1,
                            in_string,
                            escaped,
                        },
                        _ => Scan::Object {
                            depth,
                            in_string,
                            escaped,
                        },
                    }
                }
                Scan::Delimiter { json_end, nuls } if byte == 0 => {
                    if nuls + 1 == DELIMITER_BYTES {
                        return self.prelude(json_end, at + 1);
                    }
                    Scan::Delimiter {
                        json_end,
                        nuls: nuls + 1,
                    }
                }
                Scan::Delimiter { .. } => return self.not_a_prelude(),
            };
        }
        if self.scanned >= self.max_prelude_bytes {
            return match self.mode {
                PreludeMode::Expected => Err(PreludeError::TooLarge {
                    max: self.max_prelude_bytes,
                }),
                _ => self.not_a_prelude(),
            };
        }
        Ok(Split::default())
    }

    fn not_a_prelude(&mut self) -> Result<Split, PreludeError> {
        match self.mode {
            PreludeMode::Expected => Err(PreludeError::Missing),
            _ => {
                let held = std::mem::take(&mut self.held);
                Ok(self.no_prelude(held))
            }
        }
    }

    /// The prelude is `held[..json_end]`, the body starts at `body_start`.
    fn prelude(&mut self, json_end: usize, body_start: usize) -> Result<Split, PreludeError> {
        let mut held = std::mem::take(&mut self.held);
        let (status, mut headers) = match stream_prelude(held.get(..json_end).unwrap_or(&[])) {
            Ok(parsed) => parsed,
            // Not JSON after all (e.g. `{x}`): for Detect, plain body.
            Err(ProxyResponseError::NotJson) if self.mode == PreludeMode::Detect => {
                self.held = held;
                return self.not_a_prelude();
            }
            Err(ProxyResponseError::NotJson) => return Err(PreludeError::Missing),
            Err(error) => return Err(PreludeError::Invalid(error)),
        };
        if !headers.iter().any(|(name, _)| name == "content-type") {
            headers.push(("content-type".to_string(), DEFAULT_CONTENT_TYPE.to_string()));
        }
        self.decided = true;
        let body = held.split_off(body_start.min(held.len()));
        Ok(Split {
            head: Some(StreamHead {
                status,
                headers,
                from_prelude: true,
            }),
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRELUDE: &[u8] = br#"{"statusCode":201,"headers":{"Content-Type":"text/html","X-Custom":"a","Connection":"close"},"cookies":["a=1","b=2"]}"#;

    fn with_delimiter(json: &[u8], body: &[u8]) -> Vec<u8> {
        let mut out = json.to_vec();
        out.extend([0u8; DELIMITER_BYTES]);
        out.extend(body);
        out
    }

    /// Feeds `stream` in pieces of `size`, then finishes; the head and the whole body.
    fn run(
        splitter: &mut PreludeSplitter,
        stream: &[u8],
        size: usize,
    ) -> Result<(StreamHead, Vec<u8>), PreludeError> {
        let mut head = None;
        let mut body = Vec::new();
        let mut take = |split: Split| {
            if let Some(h) = split.head {
                assert!(head.is_none(), "head yielded twice");
                head = Some(h);
            }
            body.extend(split.body);
        };
        for piece in stream.chunks(size.max(1)) {
            take(splitter.push(piece.to_vec())?);
        }
        take(splitter.finish()?);
        Ok((head.expect("a head"), body))
    }

    fn expected_prelude_head() -> StreamHead {
        StreamHead {
            status: 201,
            headers: vec![
                ("content-type".into(), "text/html".into()),
                ("x-custom".into(), "a".into()),
                ("set-cookie".into(), "a=1".into()),
                ("set-cookie".into(), "b=2".into()),
            ],
            from_prelude: true,
        }
    }

    #[test]
    fn mode_follows_the_content_type() {
        use PreludeMode::*;
        for (content_type, mode) in [
            (Some(HTTP_INTEGRATION_CONTENT_TYPE), Expected),
            (
                Some("Application/Vnd.AwsLambda.Http-Integration-Response; x=1"),
                Expected,
            ),
            (None, Detect),
            (Some(""), Detect),
            (Some(EVENTSTREAM_CONTENT_TYPE), Detect),
            (Some("text/event-stream"), Absent),
            (Some("application/octet-stream"), Absent),
        ] {
            assert_eq!(
                PreludeMode::for_content_type(content_type),
                mode,
                "{content_type:?}"
            );
        }
    }

    #[test]
    fn prelude_in_every_split_and_mode() {
        let body = b"<html>\x00\x00 body with NULs {\"x\":1}\x00\x00\x00\x00\x00\x00\x00\x00 end";
        let stream = with_delimiter(PRELUDE, body);
        for content_type in [Some(HTTP_INTEGRATION_CONTENT_TYPE), None] {
            for size in 1..=stream.len() {
                let mut splitter = PreludeSplitter::new(content_type);
                let (head, got) = run(&mut splitter, &stream, size).unwrap();
                assert_eq!(head, expected_prelude_head(), "{size}");
                assert_eq!(got, body, "{size}");
                assert!(splitter.decided());
            }
        }
    }

    #[test]
    fn body_passes_through_after_the_head() {
        let mut splitter = PreludeSplitter::new(Some(HTTP_INTEGRATION_CONTENT_TYPE));
        let first = splitter.push(with_delimiter(PRELUDE, b"ab")).unwrap();
        assert_eq!(first.head, Some(expected_prelude_head()));
        assert_eq!(first.body, b"ab");
        let next = splitter.push(b"cd".to_vec()).unwrap();
        assert_eq!(
            next,
            Split {
                head: None,
                body: b"cd".to_vec()
            }
        );
        assert_eq!(splitter.buffered(), 0);
        assert_eq!(splitter.finish().unwrap(), Split::default());
    }

    #[test]
    fn prelude_defaults() {
        let stream = with_delimiter(b" \n{}", b"x");
        let mut splitter = PreludeSplitter::new(Some(HTTP_INTEGRATION_CONTENT_TYPE));
        let (head, body) = run(&mut splitter, &stream, 3).unwrap();
        assert_eq!(
            head,
            StreamHead {
                status: 200,
                headers: vec![("content-type".into(), DEFAULT_CONTENT_TYPE.into())],
                from_prelude: true,
            }
        );
        assert_eq!(body, b"x");
        // Only the delimiter and nothing after it: an empty body.
        let mut splitter = PreludeSplitter::new(None);
        let (head, body) = run(
            &mut splitter,
            &with_delimiter(br#"{"statusCode":"404"}"#, b""),
            100,
        )
        .unwrap();
        assert_eq!(head.status, 404);
        assert!(body.is_empty());
    }

    #[test]
    fn streams_without_prelude_are_body_with_the_functions_type() {
        let cases: [(Option<&str>, &[u8], &str); 8] = [
            (Some("text/plain"), b"plain text", "text/plain"),
            // Absent: even a prelude-looking stream is body.
            (
                Some("text/plain"),
                &[b"{}" as &[u8], &[0; 8]].concat(),
                "text/plain",
            ),
            (None, b"hello", DEFAULT_CONTENT_TYPE),
            (None, b"  [1,2]", DEFAULT_CONTENT_TYPE),
            (
                Some(EVENTSTREAM_CONTENT_TYPE),
                b"{\"token\":\"a\"}\n{\"token\":\"b\"}\n",
                DEFAULT_CONTENT_TYPE,
            ),
            (None, b"{\"a\":1}\x00\x00\x00x", DEFAULT_CONTENT_TYPE),
            (
                None,
                b"{not json}\x00\x00\x00\x00\x00\x00\x00\x00",
                DEFAULT_CONTENT_TYPE,
            ),
            (None, b"", DEFAULT_CONTENT_TYPE),
        ];
        for (content_type, stream, expected_type) in cases {
            for size in [1, 2, 5, 1000] {
                let mut splitter = PreludeSplitter::new(content_type);
                let (head, body) = run(&mut splitter, stream, size).unwrap();
                assert_eq!(
                    head,
                    StreamHead {
                        status: 200,
                        headers: vec![("content-type".into(), expected_type.into())],
                        from_prelude: false,
                    },
                    "{content_type:?} {stream:?}"
                );
                assert_eq!(body, stream);
            }
        }
    }

    #[test]
    fn detection_decides_early() {
        // Not `{`: decided on the first byte.
        let mut splitter = PreludeSplitter::new(None);
        let split = splitter.push(b"data: x\n\n".to_vec()).unwrap();
        assert!(split.head.is_some());
        assert_eq!(split.body, b"data: x\n\n");
        // An NDJSON line: decided on the first byte after its object closes.
        let mut splitter = PreludeSplitter::new(None);
        assert_eq!(
            splitter.push(br#"{"t":"}\"{"}"#.to_vec()).unwrap(),
            Split::default()
        );
        let split = splitter.push(b"\n".to_vec()).unwrap();
        assert!(!split.head.unwrap().from_prelude);
        assert_eq!(split.body, b"{\"t\":\"}\\\"{\"}\n");
        // Too long without a delimiter: body.
        let mut splitter = PreludeSplitter::with_mode(PreludeMode::Detect, None, 64);
        let mut long = b"{\"k\":\"".to_vec();
        long.extend([b'v'; 100]);
        let split = splitter.push(long.clone()).unwrap();
        assert!(!split.head.unwrap().from_prelude);
        assert_eq!(split.body, long);
    }

    #[test]
    fn expected_prelude_errors() {
        let expected = |stream: &[u8], max: usize, size: usize| {
            let mut splitter = PreludeSplitter::with_mode(PreludeMode::Expected, None, max);
            let error = run(&mut splitter, stream, size).unwrap_err();
            // Stays failed.
            assert_eq!(splitter.push(b"x".to_vec()), Err(error.clone()));
            assert_eq!(splitter.finish(), Err(error.clone()));
            error
        };
        for size in [1, 1000] {
            assert_eq!(expected(b"hello", 1024, size), PreludeError::Missing);
            assert_eq!(expected(b"", 1024, size), PreludeError::Missing);
            assert_eq!(expected(b"{\"a\":1}xyz", 1024, size), PreludeError::Missing);
            assert_eq!(
                expected(b"{\"a\":1}\x00\x00", 1024, size),
                PreludeError::Truncated
            );
            assert_eq!(expected(b"{\"a\":", 1024, size), PreludeError::Truncated);
            assert_eq!(
                expected(&with_delimiter(b"{x}", b""), 1024, size),
                PreludeError::Missing
            );
            assert_eq!(
                expected(&with_delimiter(&[b'{'; 100], b""), 64, size),
                PreludeError::TooLarge { max: 64 }
            );
        }
    }

    #[test]
    fn invalid_preludes_are_refused_in_both_modes() {
        use ProxyResponseError::*;
        let cases: [(&[u8], ProxyResponseError); 5] = [
            (br#"{"statusCode":99}"#, InvalidStatusCode("99".into())),
            (
                br#"{"statusCode":"abc"}"#,
                InvalidStatusCode("\"abc\"".into()),
            ),
            (
                br#"{"headers":{"x-a":"1\r\nx-b: 2"}}"#,
                InvalidHeaderValue { name: "x-a".into() },
            ),
            (
                br#"{"headers":{"bad name":"1"}}"#,
                InvalidHeaderName("\"bad name\"".into()),
            ),
            (
                br#"{"cookies":"a=1"}"#,
                InvalidField {
                    field: "cookies".into(),
                    expected: "an array of strings",
                },
            ),
        ];
        for content_type in [Some(HTTP_INTEGRATION_CONTENT_TYPE), None] {
            for (json, error) in &cases {
                let mut splitter = PreludeSplitter::new(content_type);
                let got = splitter.push(with_delimiter(json, b"body")).unwrap_err();
                assert_eq!(got, PreludeError::Invalid(error.clone()));
                assert!(!got.to_string().contains("x-b: 2"));
            }
        }
    }

    #[test]
    fn pseudo_hop_by_hop_and_length_headers_are_dropped() {
        let json = br#"{"headers":{":status":"500","transfer-encoding":"chunked","content-length":"5","keep-alive":"x","x-ok":"1"}}"#;
        let mut splitter = PreludeSplitter::new(None);
        let split = splitter.push(with_delimiter(json, b"")).unwrap();
        assert_eq!(
            split.head.unwrap().headers,
            vec![
                ("x-ok".to_string(), "1".to_string()),
                ("content-type".to_string(), DEFAULT_CONTENT_TYPE.to_string())
            ]
        );
    }

    #[test]
    fn function_content_type_with_control_characters_is_not_used() {
        let mut splitter = PreludeSplitter::new(Some("text/plain\r\nx: y"));
        let split = splitter.push(b"a".to_vec()).unwrap();
        assert_eq!(
            split.head.unwrap().headers,
            vec![("content-type".to_string(), DEFAULT_CONTENT_TYPE.to_string())]
        );
    }
}
