//! One HTTP request's state in the shell: its flow and what the host told about it.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::SystemTime;

use crate::flow::RequestFlow;

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
}

pub(super) type SharedRequest = Rc<RefCell<Request>>;
