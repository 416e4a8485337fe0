//! One HTTP request's state in the shell: its flow and what the host told about it.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::SystemTime;

use crate::flow::RequestFlow;
use crate::http::HeaderList;

/// One HTTP request's state, shared by its context and (while it waits) the root.
pub(super) struct Request {
    pub context_id: u32,
    pub flow: RequestFlow,
    pub request_id: Option<String>,
    pub body_size: usize,
    /// Bytes of the answer's body buffered so far (requests forwarded in place).
    pub answer_size: usize,
    /// The key under which the client's request is kept for the router's retries.
    pub attempt_key: Option<String>,
    /// When the request started waiting for credentials.
    pub parked_at: Option<SystemTime>,
    /// The request's header map as the filter first saw it (one host call), which the rest
    /// of the request reads instead of asking the host header by header.
    pub headers: HeaderList,
}

impl Request {
    /// A request header as first seen (names are lower case in Envoy's maps).
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        header_in(&self.headers, name)
    }
}

/// A header of a map as the host gives it (names lower case).
pub(super) fn header_in<'a>(headers: &'a HeaderList, name: &str) -> Option<&'a str> {
    headers.get(name)
}

pub(super) type SharedRequest = Rc<RefCell<Request>>;
