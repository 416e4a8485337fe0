//! The host calls that carry out a request's steps: dispatching a call, reading answers
//! and bodies, rewriting the request into the Invoke, and writing the client's reply. Every
//! write's status goes back to the caller.

use log::error;
use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, MapType, Status, StreamType};

use super::host;
use super::request::Request;
use crate::answer::proxy_response::is_bodyless_status;
use crate::error::RequestError;
use crate::flow::attempts::ATTEMPT_HEADER;
use crate::http::CallAnswer;
use crate::http::ClientReply;
use crate::http::OutboundRequest;

/// Sends a built request to its cluster; the answer comes to `on_http_call_response`.
pub(super) fn dispatch(outbound: &OutboundRequest) -> Result<u32, Status> {
    let headers: Vec<(&str, &str)> = outbound.headers.iter().collect();
    hostcalls::dispatch_http_call(
        &outbound.cluster,
        headers,
        Some(&outbound.body),
        Vec::new(),
        outbound.timeout,
    )
}

/// The answer to a dispatched call: `:status`, headers and body. A body over `max_body`
/// bytes is left in the host (Envoy frees it with the call) and only its size reported, so
/// an oversized answer never grows the VM's memory.
pub(super) fn read_call_answer(body_size: usize, max_body: usize) -> CallAnswer {
    let headers = host::map(MapType::HttpCallResponseHeaders);
    let status = headers
        .get(":status")
        .and_then(|value| value.parse::<u16>().ok());
    let oversized = body_size > max_body;
    let body = if body_size == 0 || oversized {
        Vec::new()
    } else {
        hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
            .ok()
            .flatten()
            .unwrap_or_default()
    };
    CallAnswer {
        status,
        headers,
        body,
        unread_body_bytes: oversized.then_some(body_size),
    }
}

pub(super) fn read_body(body_size: usize) -> Vec<u8> {
    read_buffer(BufferType::HttpRequestBody, body_size)
}

pub(super) fn read_buffer(buffer: BufferType, size: usize) -> Vec<u8> {
    read_range(buffer, 0, size)
}

pub(super) fn read_range(buffer: BufferType, start: usize, size: usize) -> Vec<u8> {
    if size == 0 {
        return Vec::new();
    }
    hostcalls::get_buffer(buffer, start, size)
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Replaces the answer's body buffered in this callback (`answer_size` bytes) with `body`
/// (with nothing, for a HEAD).
pub(super) fn replace_answer_body(request: &Request, body: &[u8]) -> Result<(), u32> {
    let body = if request.flow.is_head_request() {
        &[]
    } else {
        body
    };
    if request.answer_size == 0 && body.is_empty() {
        return Ok(());
    }
    host::set_buffer(BufferType::HttpResponseBody, 0, request.answer_size, body)
}

/// The function's answer could not be written whole: a 502 `bad_response` instead (never a
/// response missing part of what the function meant).
pub(super) fn unwritable(what: &str, status: impl std::fmt::Debug) -> RequestError {
    RequestError::BadResponse {
        message: format!(
            "the function's {what} could not be written to the response (host status \
             {status:?}): see the documented response limits"
        ),
    }
}

/// Resets the response: the last way out when not even an error reply can be written.
pub(super) fn reset_answer(context_id: u32, what: &str, status: impl std::fmt::Debug) {
    error!("#{context_id} could not write {what} ({status:?}): resetting the stream");
    if let Err(status) = host::close_stream(StreamType::HttpResponse) {
        error!("#{context_id} could not reset the response stream: {status}");
    }
}

/// Rewrites the request into the Invoke: one call replaces the whole header map (so nothing
/// the client sent goes on), one more replaces the body when the payload is not the client's
/// body. The router's header map is the request's own, which access logs and the router's
/// local replies read after the rewrite, so a few headers are set for them (unsigned; Lambda
/// ignores them): `:scheme`, set by the router for the upstream; `x-request-id`;
/// `x-envoy-original-path`, the client's path, as Envoy's own path rewrites keep it (Envoy's
/// default access log format prints it); and the attempt header that marks the rewrite as
/// ours: the request's attempt key (event payloads) or the VM's `retry_tag`, neither known
/// to clients.
pub(super) fn forward(
    invoke: &OutboundRequest,
    replace_body: bool,
    request: &Request,
    retry_tag: &str,
) -> Result<(), u32> {
    let current = |name: &str| request.header(name);
    let scheme = current(":scheme");
    let attempt = request.attempt_key.as_deref().unwrap_or(retry_tag);
    // A retry sees the map the first attempt rewrote: its original path is the client's.
    // Only a map this filter rewrote (it carries the attempt header's secret value) is a
    // retry; a client that sends the Invoke's path never chooses the logged path.
    let client_path = match current(":path") {
        Some(path)
            if Some(path) == invoke.header(":path") && current(ATTEMPT_HEADER) == Some(attempt) =>
        {
            current(ORIGINAL_PATH_HEADER)
        }
        path => path,
    };
    let kept = [
        scheme.map(|scheme| (":scheme", scheme)),
        request.request_id.as_deref().map(|id| ("x-request-id", id)),
        client_path.map(|path| (ORIGINAL_PATH_HEADER, path)),
        Some((ATTEMPT_HEADER, attempt)),
    ];
    let headers = invoke.headers.iter().chain(kept.into_iter().flatten());
    host::set_map(MapType::HttpRequestHeaders, headers)?;
    if replace_body {
        host::set_buffer(
            BufferType::HttpRequestBody,
            0,
            request.body_size,
            &invoke.body,
        )?;
    }
    Ok(())
}

pub(super) const ORIGINAL_PATH_HEADER: &str = "x-envoy-original-path";

/// The answer's status and headers become the reply's (with its body's length, except for
/// the statuses that carry no body, which carry no content-length either).
pub(super) fn rewrite_answer_headers(reply: &ClientReply) -> Result<(), u32> {
    let mut headers = Vec::with_capacity(reply.headers.len() + 2);
    headers.push((":status".to_string(), reply.status.to_string()));
    headers.extend(reply.headers.iter().cloned());
    if !is_bodyless_status(reply.status) {
        headers.push(("content-length".to_string(), reply.body.len().to_string()));
    }
    set_response_headers(&headers)
}

pub(super) fn set_response_headers(headers: &[(String, String)]) -> Result<(), u32> {
    let headers = headers.iter().map(|(n, v)| (n.as_str(), v.as_str()));
    host::set_map(MapType::HttpResponseHeaders, headers)
}

/// Replaces the answer with `reply`: status and headers, and the body read so far
/// (`answer_size` bytes; for a HEAD, nothing, under the content-length a GET would get). An
/// answer that ended with its headers has no body to replace, so its replacement goes out
/// as a local reply (whose body Envoy drops for a HEAD itself).
pub(super) fn rewrite_answer(
    reply: &ClientReply,
    answer_size: usize,
    head: bool,
) -> Result<(), u32> {
    if answer_size == 0 && !reply.body.is_empty() {
        return send(reply).map_err(|status| status as u32);
    }
    rewrite_answer_headers(reply)?;
    let body: &[u8] = if head { &[] } else { &reply.body };
    if answer_size == 0 && body.is_empty() {
        return Ok(());
    }
    host::set_buffer(BufferType::HttpResponseBody, 0, answer_size, body)
}

/// Answers the client with `reply` as a local reply (a body-less status goes without body).
pub(super) fn send(reply: &ClientReply) -> Result<(), Status> {
    let headers: Vec<(&str, &str)> = reply
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let body = (!reply.body.is_empty() && !is_bodyless_status(reply.status))
        .then_some(reply.body.as_slice());
    hostcalls::send_http_response(u32::from(reply.status), headers, body)
}
