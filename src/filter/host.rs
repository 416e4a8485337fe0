//! Host calls that can fail in normal operation, without the SDK's panic. The proxy-wasm
//! SDK panics on any status it does not expect (a panic stops the VM for every request on
//! the worker); Envoy answers `BadArgument` when, for example, a body is set on a stream
//! that has none. These wrappers return every non-Ok status as an error.

use std::ptr::null_mut;
use std::time::{Duration, SystemTime};

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, LogLevel, MapType, Status, StreamType};

use crate::http::{header_map, HeaderList};

#[allow(clashing_extern_declarations)]
#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_set_buffer_bytes(
        buffer_type: BufferType,
        start: usize,
        size: usize,
        buffer_data: *const u8,
        buffer_size: usize,
    ) -> u32;
    fn proxy_set_header_map_pairs(map_type: MapType, map_data: *const u8, map_size: usize) -> u32;
    fn proxy_close_stream(stream_type: StreamType) -> u32;
    fn proxy_continue_stream(stream_type: StreamType) -> u32;
    fn proxy_get_header_map_pairs(
        map_type: MapType,
        return_map_data: *mut *mut u8,
        return_map_size: *mut usize,
    ) -> u32;
    fn proxy_get_property(
        path_data: *const u8,
        path_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
}

fn status(code: u32) -> Result<(), u32> {
    if code == Status::Ok as u32 {
        Ok(())
    } else {
        Err(code)
    }
}

/// Replaces `size` bytes from `start` of the buffer with `value`.
pub(super) fn set_buffer(
    buffer: BufferType,
    start: usize,
    size: usize,
    value: &[u8],
) -> Result<(), u32> {
    // SAFETY: the pointer and length describe `value`, which outlives the call; the host
    // copies the bytes before returning.
    status(unsafe { proxy_set_buffer_bytes(buffer, start, size, value.as_ptr(), value.len()) })
}

/// Sets the filter state `wasm.<key>` (a one-segment property path), which access logs print
/// with `%FILTER_STATE(wasm.<key>:PLAIN)%`.
pub(super) fn set_filter_state(key: &str, value: &[u8]) -> Result<(), Status> {
    hostcalls::set_property(vec![key], Some(value))
}

/// The cluster Envoy picked for the request's route.
pub(super) fn route_cluster() -> Option<String> {
    property(b"xds\0cluster_name").and_then(|bytes| String::from_utf8(bytes).ok())
}

/// A property by its path already serialized (segments joined by NUL, e.g.
/// `b"xds\0cluster_name"`): what the SDK's `get_property` does without building the path
/// on every call. `None` when the host has no value (or refuses).
pub(super) fn property(path: &[u8]) -> Option<Vec<u8>> {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    // SAFETY: the path outlives the call; on success the host wrote a buffer it allocated
    // with `proxy_on_memory_allocate` (the global allocator), which the Vec now owns.
    unsafe {
        if proxy_get_property(path.as_ptr(), path.len(), &mut data, &mut size) != Status::Ok as u32
            || data.is_null()
        {
            return None;
        }
        Some(Vec::from_raw_parts(data, size, size))
    }
}

/// The whole header map, in order (empty when the host refuses). The SDK's `get_map` panics
/// on a value that is not UTF-8 (bytes 0x80-0xFF are valid in an HTTP header value): here
/// such a value is taken with U+FFFD in place of the invalid bytes.
pub(super) fn map(map: MapType) -> HeaderList {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    // SAFETY: as above.
    let bytes = unsafe {
        if proxy_get_header_map_pairs(map, &mut data, &mut size) != Status::Ok as u32
            || data.is_null()
        {
            return HeaderList::default();
        }
        Vec::from_raw_parts(data, size, size)
    };
    header_map::deserialize(&bytes)
}

/// Replaces the whole header map.
pub(super) fn set_map<'a, I>(map: MapType, pairs: I) -> Result<(), u32>
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
    I::IntoIter: Clone,
{
    let serialized = header_map::serialize(pairs);
    // SAFETY: as above, `serialized` outlives the call.
    status(unsafe { proxy_set_header_map_pairs(map, serialized.as_ptr(), serialized.len()) })
}

/// Ends the stream abnormally (Envoy resets it: `proxy_close_stream`, what the SDK's
/// `reset_http_response` calls, without its panic).
pub(super) fn close_stream(stream: StreamType) -> Result<(), u32> {
    // SAFETY: no pointers are passed.
    status(unsafe { proxy_close_stream(stream) })
}

/// Resumes a paused stream (what the SDK's `resume_http_request` calls, without its panic).
pub(super) fn continue_stream(stream: StreamType) -> Result<(), u32> {
    // SAFETY: no pointers are passed.
    status(unsafe { proxy_continue_stream(stream) })
}

/// The host's clock (the VM's own, should the host not answer).
pub(super) fn now() -> SystemTime {
    hostcalls::get_current_time().unwrap_or_else(|_| wasi_now())
}

#[link(wasm_import_module = "wasi_snapshot_preview1")]
extern "C" {
    fn clock_time_get(clock: u32, precision: u64, time: *mut u64) -> u32;
    fn random_get(buffer: *mut u8, size: usize) -> u32;
}

/// WASI's realtime clock, what `SystemTime::now` reads, without its unwrap: that unwrap
/// links std's `io::Error` formatting and libc's error strings (5 KB of .wasm).
fn wasi_now() -> SystemTime {
    const REALTIME: u32 = 0;
    let mut nanos = 0u64;
    // SAFETY: the host writes one u64 to `nanos`, which outlives the call.
    let errno = unsafe { clock_time_get(REALTIME, 1, &mut nanos) };
    if errno != 0 {
        stop("clock_time_get", errno);
    }
    SystemTime::UNIX_EPOCH + Duration::from_nanos(nanos)
}

/// `N` bytes of the host's entropy (the retry tag and the attempt keys' seed must not be
/// guessable): WASI `random_get`, what std seeds `RandomState` from (which links 4.5 KB of
/// .wasm).
pub(super) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // SAFETY: the host writes `bytes.len()` bytes to `bytes`, which outlives the call.
    let errno = unsafe { random_get(bytes.as_mut_ptr(), bytes.len()) };
    if errno != 0 {
        stop("random_get", errno);
    }
    bytes
}

pub(super) fn random_u64() -> u64 {
    u64::from_le_bytes(random_bytes())
}

/// A WASI call std would have unwrapped failed: the VM stops, logged as std's panic was.
fn stop(call: &str, errno: u32) -> ! {
    let _ = hostcalls::log(
        LogLevel::Critical,
        &format!("proxy_wasm_lambda: WASI {call} failed (errno {errno}), this VM stops serving"),
    );
    std::process::abort()
}
