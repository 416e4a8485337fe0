//! HTTP values every stage shares: the request the shell dispatches, the answer it reads
//! back, the reply it sends, and the header-map bytes of the proxy-wasm ABI.

use std::time::Duration;

mod header_list;
pub(crate) mod header_map;

pub use header_list::HeaderList;

/// A request for the host to dispatch to an Envoy cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundRequest {
    pub cluster: String,
    /// Pseudo-headers (`:method`, `:path`, `:authority`) first, then the signed headers.
    pub headers: HeaderList,
    pub body: Vec<u8>,
    pub timeout: Duration,
}

impl OutboundRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }
}

/// What a cluster answered a dispatched call (the Invoke, STS, IMDS, the container
/// endpoint), or the Invoke forwarded in place. `status` is `None` when the host had no response at
/// all (reset, or timeout reported without headers).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallAnswer {
    pub status: Option<u16>,
    pub headers: HeaderList,
    pub body: Vec<u8>,
    /// The body's size when it was larger than the reader's bound and left unread (`body`
    /// is then empty).
    pub unread_body_bytes: Option<usize>,
}

impl CallAnswer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get_ignore_case(name)
    }
}

/// A reply sent to the client instead of proxying the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl ClientReply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Whether `value` can be sent (and signed) as an HTTP header value: no control characters
/// but tab.
pub(crate) fn is_header_value(value: &str) -> bool {
    !value.chars().any(|c| c.is_control() && c != '\t')
}
