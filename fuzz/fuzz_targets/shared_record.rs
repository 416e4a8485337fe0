//! `SharedRecord::decode` on arbitrary shared-data bytes (another VM's, an older or newer
//! writer's, or garbage), then the refresh decisions on the record. Never panics; decoding
//! is total and `encode` round-trips what it gives; the decisions keep their bounds.
//!
//! Input: bytes 0-7 the clock (epoch ms, little-endian), 8-15 the jitter (f64 bits), then
//! the record.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proxy_wasm_lambda::{
    holds_lease, lease_is_live, record_failure, refresh_at_ms, should_fetch, take_lease,
    usable_credentials, RefreshPolicy, SharedRecord, StsError,
};

fuzz_target!(|data: &[u8]| {
    let (now_ms, jitter, bytes) = if data.len() < 16 {
        (1_795_428_000_000, 0.5, data)
    } else {
        let (head, bytes) = data.split_at(16);
        let now = u64::from_le_bytes(head[..8].try_into().unwrap());
        let jitter = f64::from_bits(u64::from_le_bytes(head[8..].try_into().unwrap()));
        (now, jitter, bytes)
    };
    let record = SharedRecord::decode(bytes);
    let encoded = record.encode();
    assert_eq!(SharedRecord::decode(&encoded), record);
    assert_eq!(SharedRecord::decode(&encoded).encode(), encoded);

    let policy = RefreshPolicy::default();
    let usable = usable_credentials(&record, now_ms, &policy);
    if let Some(credentials) = &record.credentials {
        let refresh = refresh_at_ms(credentials, &policy, jitter);
        assert!(refresh <= credentials.expiration_ms);
        if usable.is_some() {
            assert!(credentials.expiration_ms > now_ms);
        }
    } else {
        assert!(usable.is_none());
    }
    let fetch = should_fetch(&record, now_ms, &policy, jitter);
    if fetch {
        assert!(!lease_is_live(&record, now_ms));
        let leased = take_lease(&record, "vm-1", now_ms, &policy);
        assert!(holds_lease(&leased, "vm-1", now_ms) || now_ms == u64::MAX);
        assert_eq!(SharedRecord::decode(&leased.encode()), leased);
    }
    let failed = record_failure(
        &record,
        &StsError::Unavailable { status: Some(503) },
        now_ms,
        &policy,
    );
    assert!(failed.failures >= record.failures);
    assert!(failed.next_attempt_at_ms >= now_ms);
    assert!(failed.lease.is_none());
    assert!(failed
        .credentials
        .as_ref()
        .is_none_or(|c| c.expiration_ms > now_ms));
    assert_eq!(SharedRecord::decode(&failed.encode()), failed);
});
