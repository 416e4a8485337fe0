//! `header_map::deserialize` on arbitrary bytes (what a host hands back for a header map):
//! never panics, and pairs it returns serialize back to a map that reads the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proxy_wasm_lambda::{deserialize_header_map as deserialize, serialize_header_map as serialize};

fuzz_target!(|data: &[u8]| {
    let pairs = deserialize(data);
    assert_eq!(deserialize(&serialize(pairs.iter())), pairs);
});
