//! Host calls that can fail in normal operation, without the SDK's panic. The proxy-wasm
//! SDK panics on any status it does not expect (a panic stops the VM for every request on
//! the worker); Envoy answers `BadArgument` when, for example, a body is set on a stream
//! that has none. These wrappers return every non-Ok status as an error.

use std::ptr::null_mut;

use proxy_wasm::types::{BufferType, MapType, Status, StreamType};

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
pub fn set_buffer(buffer: BufferType, start: usize, size: usize, value: &[u8]) -> Result<(), u32> {
    // SAFETY: the pointer and length describe `value`, which outlives the call; the host
    // copies the bytes before returning.
    status(unsafe { proxy_set_buffer_bytes(buffer, start, size, value.as_ptr(), value.len()) })
}

/// A property by its path already serialized (segments joined by NUL, e.g.
/// `b"xds\0cluster_name"`): what the SDK's `get_property` does without building the path
/// on every call. `None` when the host has no value (or refuses).
pub fn property(path: &[u8]) -> Option<Vec<u8>> {
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

/// Replaces the whole header map.
pub fn set_map(map: MapType, pairs: &[(&str, &str)]) -> Result<(), u32> {
    let serialized = serialize_map(pairs);
    // SAFETY: as above, `serialized` outlives the call.
    status(unsafe { proxy_set_header_map_pairs(map, serialized.as_ptr(), serialized.len()) })
}

/// Ends the stream abnormally (Envoy resets it: `proxy_close_stream`, what the SDK's
/// `reset_http_response` calls, without its panic).
pub fn close_stream(stream: StreamType) -> Result<(), u32> {
    // SAFETY: no pointers are passed.
    status(unsafe { proxy_close_stream(stream) })
}

/// Resumes a paused stream (what the SDK's `resume_http_request` calls, without its panic).
pub fn continue_stream(stream: StreamType) -> Result<(), u32> {
    // SAFETY: no pointers are passed.
    status(unsafe { proxy_continue_stream(stream) })
}

/// The proxy-wasm map encoding: pair count, then each name and value length (u32 LE),
/// then each name and value followed by a NUL.
fn serialize_map(pairs: &[(&str, &str)]) -> Vec<u8> {
    let size = 4 + pairs
        .iter()
        .map(|(name, value)| name.len() + value.len() + 10)
        .sum::<usize>();
    // Zeroed (the NULs) and written in place: `extend_from_slice` per piece stays a chain
    // of calls in the size-optimised build.
    let mut bytes = vec![0u8; size];
    let mut lengths = 4;
    let mut strings = 4 + 8 * pairs.len();
    put(&mut bytes, 0, &(pairs.len() as u32).to_le_bytes());
    for (name, value) in pairs {
        put(&mut bytes, lengths, &(name.len() as u32).to_le_bytes());
        put(&mut bytes, lengths + 4, &(value.len() as u32).to_le_bytes());
        lengths += 8;
        put(&mut bytes, strings, name.as_bytes());
        strings += name.len() + 1;
        put(&mut bytes, strings, value.as_bytes());
        strings += value.len() + 1;
    }
    bytes
}

/// Copies `piece` into `bytes` at `at` (always in bounds: the map's size is computed first).
fn put(bytes: &mut [u8], at: usize, piece: &[u8]) {
    if let Some(target) = bytes.get_mut(at..at + piece.len()) {
        target.copy_from_slice(piece);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_serialization() {
        assert_eq!(serialize_map(&[]), vec![0, 0, 0, 0]);
        let bytes = serialize_map(&[(":path", "/x"), ("a", "")]);
        let mut expected = vec![2, 0, 0, 0, 5, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0];
        expected.extend_from_slice(b":path\0/x\0a\0\0");
        assert_eq!(bytes, expected);
    }
}
