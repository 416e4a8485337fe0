//! `FunctionId::parse` on arbitrary text: never panics, and what it accepts is well formed
//! and parses back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proxy_wasm_lambda::{is_valid_function_name, is_valid_qualifier, is_valid_region, FunctionId};

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let id = match FunctionId::parse(input) {
        Ok(id) => id,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    assert!(input.len() <= 256);
    assert!(is_valid_function_name(&id.name), "{id:?}");
    assert!(id.identifier.ends_with(&id.name), "{id:?}");
    assert!(id.identifier.is_ascii() && !id.identifier.contains(['/', '?', '#', ' ', '%']));
    if let Some(qualifier) = &id.qualifier {
        assert!(is_valid_qualifier(qualifier), "{id:?}");
    }
    if let Some(region) = &id.region {
        assert!(is_valid_region(region), "{id:?}");
        assert!(id
            .partition
            .as_deref()
            .is_some_and(|p| p.starts_with("aws")));
    }
    // The identifier (with the qualifier, if any) is the canonical spelling of the input.
    let spelled = match &id.qualifier {
        Some(q) => format!("{}:{q}", id.identifier),
        None => id.identifier.clone(),
    };
    assert_eq!(spelled, input);
    assert_eq!(FunctionId::parse(&spelled).as_ref(), Ok(&id));
});
