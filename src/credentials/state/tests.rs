use super::*;
use std::time::UNIX_EPOCH;

const SECOND: u64 = 1000;
const MINUTE: u64 = 60 * SECOND;
/// 2026-11-23T10:00:00Z
const T0: u64 = 1_795_428_000_000;

fn policy() -> RefreshPolicy {
    RefreshPolicy::default()
}

fn temporary(key: &str, expiration_ms: u64) -> TemporaryCredentials {
    TemporaryCredentials {
        credentials: Credentials {
            access_key_id: key.to_string(),
            secret_access_key: Secret::new("tmp-s3cret-key"),
            session_token: Some(Secret::new("tmp-s3cret-token")),
        },
        expiration: UNIX_EPOCH + Duration::from_millis(expiration_ms),
    }
}

/// A record holding credentials fetched at T0 for one hour.
fn fresh_record() -> SharedRecord {
    record_success(
        &SharedRecord::default(),
        temporary("ASIAFIRST", T0 + 60 * MINUTE),
        T0,
        &policy(),
    )
}

fn unavailable() -> StsError {
    StsError::Unavailable { status: Some(503) }
}

#[test]
fn no_record_means_fetch() {
    let record = SharedRecord::decode(b"");
    assert_eq!(record, SharedRecord::default());
    assert_eq!(usable_credentials(&record, T0, &policy()), None);
    assert!(should_fetch(&record, T0, &policy(), 0.0));
    assert_eq!(last_error(&record), None);
}

#[test]
fn fresh_credentials_are_used_without_fetching() {
    let record = fresh_record();
    let creds = usable_credentials(&record, T0 + MINUTE, &policy()).unwrap();
    assert_eq!(creds.access_key_id, "ASIAFIRST");
    assert_eq!(
        creds.session_token.as_ref().map(Secret::expose),
        Some("tmp-s3cret-token")
    );
    for jitter in [0.0, 0.5, 0.999] {
        assert!(!should_fetch(&record, T0 + MINUTE, &policy(), jitter));
        assert!(!should_fetch(&record, T0 + 53 * MINUTE, &policy(), jitter));
    }
}

#[test]
fn refresh_window_uses_and_fetches() {
    let record = fresh_record();
    let expiry = T0 + 60 * MINUTE;
    // Without jitter the window opens 5 minutes before expiry.
    assert!(!should_fetch(
        &record,
        expiry - 5 * MINUTE - 1,
        &policy(),
        0.0
    ));
    assert!(should_fetch(&record, expiry - 5 * MINUTE, &policy(), 0.0));
    assert!(usable_credentials(&record, expiry - 5 * MINUTE, &policy()).is_some());
    // Jitter opens it up to a minute earlier.
    assert!(should_fetch(
        &record,
        expiry - 5 * MINUTE - 30 * SECOND,
        &policy(),
        0.5
    ));
    assert!(!should_fetch(
        &record,
        expiry - 5 * MINUTE - 31 * SECOND,
        &policy(),
        0.5
    ));
    assert!(should_fetch(
        &record,
        expiry - 6 * MINUTE + 1,
        &policy(),
        0.99999
    ));
    // Out-of-range jitter is clamped.
    assert!(!should_fetch(
        &record,
        expiry - 6 * MINUTE - 1,
        &policy(),
        7.0
    ));
    assert!(!should_fetch(
        &record,
        expiry - 5 * MINUTE - 1,
        &policy(),
        f64::NAN
    ));
}

#[test]
fn expired_and_nearly_expired_credentials_are_not_used() {
    let record = fresh_record();
    let expiry = T0 + 60 * MINUTE;
    assert!(usable_credentials(&record, expiry - 30 * SECOND, &policy()).is_some());
    assert!(usable_credentials(&record, expiry - 30 * SECOND + 1, &policy()).is_none());
    assert!(usable_credentials(&record, expiry, &policy()).is_none());
    assert!(usable_credentials(&record, expiry + MINUTE, &policy()).is_none());
    assert!(should_fetch(&record, expiry + MINUTE, &policy(), 0.0));
}

#[test]
fn window_never_opens_later_than_min_validity() {
    let record = fresh_record();
    let expiry = T0 + 60 * MINUTE;
    let late = RefreshPolicy {
        refresh_before: Duration::from_secs(10),
        jitter: Duration::ZERO,
        ..policy()
    };
    assert_eq!(
        refresh_at_ms(record.credentials.as_ref().unwrap(), &late, 0.0),
        expiry - 30 * SECOND
    );
    assert!(should_fetch(&record, expiry - 30 * SECOND, &late, 0.0));
    assert!(!should_fetch(&record, expiry - 31 * SECOND, &late, 0.0));
}

#[test]
fn short_lived_credentials_do_not_refresh_in_a_loop() {
    // Only 4 minutes left on arrival (short session or skewed clock): refresh at half-life.
    let record = record_success(
        &SharedRecord::default(),
        temporary("ASIASHORT", T0 + 4 * MINUTE),
        T0,
        &policy(),
    );
    assert!(usable_credentials(&record, T0, &policy()).is_some());
    assert!(!should_fetch(&record, T0, &policy(), 0.0));
    assert!(!should_fetch(&record, T0 + 2 * MINUTE - 1, &policy(), 0.0));
    assert!(should_fetch(&record, T0 + 2 * MINUTE, &policy(), 0.0));
}

#[test]
fn live_lease_blocks_others_and_stale_lease_does_not() {
    let record = take_lease(&SharedRecord::default(), "vm-a", T0, &policy());
    assert_eq!(
        record.lease.as_ref().map(|l| l.until_ms),
        Some(T0 + 3 * SECOND)
    );
    assert!(holds_lease(&record, "vm-a", T0 + SECOND));
    assert!(!holds_lease(&record, "vm-b", T0 + SECOND));
    assert!(!should_fetch(&record, T0 + SECOND, &policy(), 0.0));
    assert!(!should_fetch(&record, T0 + 3 * SECOND - 1, &policy(), 0.0));
    // vm-a never came back: the lease runs out and anyone may fetch.
    assert!(!holds_lease(&record, "vm-a", T0 + 3 * SECOND));
    assert!(should_fetch(&record, T0 + 3 * SECOND, &policy(), 0.0));
    // A lease in the refresh window does not hide the still-usable credentials.
    let expiry = T0 + 60 * MINUTE;
    let refreshing = take_lease(&fresh_record(), "vm-a", expiry - 4 * MINUTE, &policy());
    assert!(usable_credentials(&refreshing, expiry - 4 * MINUTE, &policy()).is_some());
    assert!(!should_fetch(
        &refreshing,
        expiry - 4 * MINUTE,
        &policy(),
        0.0
    ));
}

#[test]
fn lease_follows_sts_timeout() {
    let settings = crate::credentials::sts::AssumeRoleSettings {
        role_arn: "arn:aws:iam::123456789012:role/r".into(),
        external_id: None,
        session_name: "s".into(),
        duration_seconds: 3600,
        region: "us-east-1".into(),
        sts_cluster: "sts".into(),
        sts_endpoint: "sts.us-east-1.amazonaws.com".into(),
        timeout: Duration::from_millis(5000),
        max_wait: Duration::from_millis(3000),
    };
    assert_eq!(
        RefreshPolicy::for_settings(&settings).lease,
        Duration::from_secs(6)
    );
}

#[test]
fn failures_back_off_exponentially_up_to_the_cap() {
    let mut record = take_lease(&SharedRecord::default(), "vm-a", T0, &policy());
    let mut now = T0;
    let mut waits = Vec::new();
    for _ in 0..9 {
        record = record_failure(&record, &unavailable(), now, &policy());
        assert_eq!(record.lease, None);
        assert!(!should_fetch(&record, now, &policy(), 0.0));
        assert!(!should_fetch(
            &record,
            record.next_attempt_at_ms - 1,
            &policy(),
            0.0
        ));
        assert!(should_fetch(
            &record,
            record.next_attempt_at_ms,
            &policy(),
            0.0
        ));
        waits.push((record.next_attempt_at_ms - now) / SECOND);
        now = record.next_attempt_at_ms;
        record = take_lease(&record, "vm-a", now, &policy());
    }
    assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    assert_eq!(record.failures, 9);
    assert_eq!(last_error(&record), Some("sts_unavailable"));
    assert_eq!(backoff(u32::MAX, &policy()), Duration::from_secs(60));
}

#[test]
fn ambient_fetches_share_the_failure_and_lease_rules() {
    let policy = RefreshPolicy::for_calls(Duration::from_secs(1), 5);
    assert_eq!(policy.lease, Duration::from_secs(6));
    let record = take_lease(&SharedRecord::default(), "vm-a", T0, &policy);
    assert!(!should_fetch(&record, T0 + 5999, &policy, 0.0));
    let failed = record_failure_class(&record, FailureClass::InvalidCredentials, T0, &policy);
    assert_eq!(failed.failures, 1);
    assert_eq!(failed.lease, None);
    assert_eq!(last_error(&failed), Some("sts_invalid_credentials"));
    assert!(should_fetch(&failed, T0 + SECOND, &policy, 0.0));
}

#[test]
fn waiting_failure_names_the_layer_that_failed() {
    let sts_failed = record_failure(&SharedRecord::default(), &unavailable(), T0, &policy());
    let imds_failed = record_failure_class(
        &SharedRecord::default(),
        FailureClass::AccessDenied,
        T0,
        &policy(),
    );
    let fine = SharedRecord::default();
    assert_eq!(waiting_failure(&fine, None), None);
    assert_eq!(waiting_failure(&fine, Some(&fine)), None);
    assert_eq!(
        waiting_failure(&fine, Some(&imds_failed)),
        Some(FailureClass::AccessDenied)
    );
    // The AssumeRole's own failure comes first.
    assert_eq!(
        waiting_failure(&sts_failed, Some(&imds_failed)),
        Some(FailureClass::Unavailable)
    );
    assert_eq!(
        waiting_failure(&sts_failed, None),
        Some(FailureClass::Unavailable)
    );
}

#[test]
fn failure_keeps_valid_credentials_and_drops_expired_ones() {
    let expiry = T0 + 60 * MINUTE;
    let denied = StsError::AccessDenied { message: None };
    let record = record_failure(&fresh_record(), &denied, expiry - 4 * MINUTE, &policy());
    assert!(record.credentials.is_some());
    assert!(usable_credentials(&record, expiry - 4 * MINUTE, &policy()).is_some());
    assert_eq!(last_error(&record), Some("sts_access_denied"));
    let record = record_failure(&record, &denied, expiry, &policy());
    assert_eq!(record.credentials, None);
    assert_eq!(record.failures, 2);
}

#[test]
fn success_after_failures_resets() {
    let mut record = SharedRecord::default();
    for i in 0..3 {
        record = record_failure(&record, &unavailable(), T0 + i * MINUTE, &policy());
    }
    assert_eq!(record.failures, 3);
    let leased = take_lease(&record, "vm-b", T0 + 5 * MINUTE, &policy());
    let record = record_success(
        &leased,
        temporary("ASIANEW", T0 + 65 * MINUTE),
        T0 + 5 * MINUTE,
        &policy(),
    );
    assert_eq!(record.failures, 0);
    assert_eq!(record.next_attempt_at_ms, 0);
    assert_eq!(record.lease, None);
    assert_eq!(last_error(&record), None);
    assert_eq!(
        usable_credentials(&record, T0 + 5 * MINUTE, &policy()).map(|c| c.access_key_id),
        Some("ASIANEW".to_string())
    );
}

#[test]
fn success_never_replaces_longer_lived_credentials() {
    let record = fresh_record();
    let older = record_success(
        &record,
        temporary("ASIAOLDER", T0 + 30 * MINUTE),
        T0 + MINUTE,
        &policy(),
    );
    assert_eq!(
        older.credentials.as_ref().map(|c| c.access_key_id.as_str()),
        Some("ASIAFIRST")
    );
    let newer = record_success(
        &record,
        temporary("ASIANEWER", T0 + 90 * MINUTE),
        T0 + MINUTE,
        &policy(),
    );
    assert_eq!(
        newer.credentials.as_ref().map(|c| c.access_key_id.as_str()),
        Some("ASIANEWER")
    );
}

#[test]
fn record_round_trips_and_corruption_is_empty() {
    let record = record_failure(
        &take_lease(&fresh_record(), "vm-a", T0 + 56 * MINUTE, &policy()),
        &StsError::Throttled { message: None },
        T0 + 56 * MINUTE,
        &policy(),
    );
    let record = take_lease(&record, "vm-b", T0 + 57 * MINUTE, &policy());
    assert_eq!(SharedRecord::decode(&record.encode()), record);
    let bytes = record.encode();
    for corrupt in [
        &b"not json"[..],
        &bytes[..bytes.len() / 2],
        b"[]",
        b"null",
        br#"{"failures":"many"}"#,
        br#"{"credentials":{"access_key_id":"A"}}"#,
        &[0xff, 0x00, 0x12],
    ] {
        assert_eq!(
            SharedRecord::decode(corrupt),
            SharedRecord::default(),
            "{corrupt:?}"
        );
    }
    // Unknown keys (a newer writer) are ignored, not fatal.
    let newer = br#"{"failures":2,"something_new":true}"#;
    assert_eq!(SharedRecord::decode(newer).failures, 2);
}

#[test]
fn debug_redacts_but_encoding_keeps_the_secrets() {
    let record = fresh_record();
    let printed = format!("{record:?}");
    assert!(printed.contains("ASIAFIRST"));
    assert!(!printed.contains("s3cret"), "{printed}");
    let encoded = String::from_utf8(record.encode()).unwrap();
    assert!(encoded.contains("tmp-s3cret-key") && encoded.contains("tmp-s3cret-token"));
}

/// Envoy's shared data for one key: `get` gives (bytes, cas); `set` with a cas fails on
/// a mismatch, and without one (cas 0) always succeeds.
#[derive(Default)]
struct SharedData {
    value: Option<(Vec<u8>, u32)>,
    next_cas: u32,
}

impl SharedData {
    fn get(&self) -> (Vec<u8>, Option<u32>) {
        match &self.value {
            Some((bytes, cas)) => (bytes.clone(), Some(*cas)),
            None => (Vec::new(), None),
        }
    }

    fn set(&mut self, bytes: Vec<u8>, cas: Option<u32>) -> Result<(), &'static str> {
        if let (Some(cas), Some((_, current))) = (cas, &self.value) {
            if cas != *current {
                return Err("CasMismatch");
            }
        }
        self.next_cas += 1;
        self.value = Some((bytes, self.next_cas));
        Ok(())
    }
}

/// One VM's attempt to become the fetcher: true if it won the lease.
fn try_to_fetch(store: &mut SharedData, owner: &str, now: u64) -> bool {
    let (bytes, cas) = store.get();
    let record = SharedRecord::decode(&bytes);
    should_fetch(&record, now, &policy(), 0.0)
        && store
            .set(take_lease(&record, owner, now, &policy()).encode(), cas)
            .is_ok()
}

#[test]
fn two_vms_race_and_only_one_wins_the_lease() {
    let mut store = SharedData::default();
    store.set(SharedRecord::default().encode(), None).unwrap();

    // Both read the same version and both decide to fetch …
    let (bytes_a, cas_a) = store.get();
    let (bytes_b, cas_b) = store.get();
    let record_a = SharedRecord::decode(&bytes_a);
    let record_b = SharedRecord::decode(&bytes_b);
    assert!(should_fetch(&record_a, T0, &policy(), 0.1));
    assert!(should_fetch(&record_b, T0, &policy(), 0.7));
    // … but only the first CAS write lands.
    assert!(store
        .set(take_lease(&record_a, "vm-a", T0, &policy()).encode(), cas_a)
        .is_ok());
    assert!(store
        .set(take_lease(&record_b, "vm-b", T0, &policy()).encode(), cas_b)
        .is_err());
    // vm-b re-reads, sees vm-a's live lease, and waits.
    assert!(!try_to_fetch(&mut store, "vm-b", T0 + 10));
    let (bytes, _) = store.get();
    assert!(holds_lease(&SharedRecord::decode(&bytes), "vm-a", T0 + 10));

    // vm-a's answer arrives; it applies it to a fresh read and CAS-writes it.
    let (bytes, cas) = store.get();
    let done = record_success(
        &SharedRecord::decode(&bytes),
        temporary("ASIARACE", T0 + 60 * MINUTE),
        T0 + 200,
        &policy(),
    );
    store.set(done.encode(), cas).unwrap();

    // vm-b's waiters find the credentials; nobody fetches again.
    let (bytes, _) = store.get();
    let record = SharedRecord::decode(&bytes);
    assert_eq!(
        usable_credentials(&record, T0 + 250, &policy()).map(|c| c.access_key_id),
        Some("ASIARACE".to_string())
    );
    assert!(!try_to_fetch(&mut store, "vm-a", T0 + 250));
    assert!(!try_to_fetch(&mut store, "vm-b", T0 + 250));
}

#[test]
fn a_vm_that_never_answers_is_replaced_after_its_lease() {
    let mut store = SharedData::default();
    store.set(SharedRecord::default().encode(), None).unwrap();
    assert!(try_to_fetch(&mut store, "vm-a", T0));
    assert!(!try_to_fetch(&mut store, "vm-b", T0 + 2999));
    assert!(try_to_fetch(&mut store, "vm-b", T0 + 3000));
    assert!(!try_to_fetch(&mut store, "vm-a", T0 + 3001));
}

#[test]
fn waiters_expire_and_drain() {
    let mut waiters = Waiters::default();
    assert!(waiters.is_empty());
    assert_eq!(waiters.next_deadline(), None);
    waiters.add(7, T0 + 3000);
    waiters.add(3, T0 + 1000);
    waiters.add(9, T0 + 2000);
    assert_eq!(waiters.len(), 3);
    assert_eq!(waiters.next_deadline(), Some(T0 + 1000));

    assert_eq!(waiters.take_expired(T0 + 999), Vec::<u32>::new());
    assert_eq!(waiters.take_expired(T0 + 2000), vec![3, 9]);
    assert_eq!(waiters.len(), 1);
    assert_eq!(waiters.next_deadline(), Some(T0 + 3000));

    // Adding again moves the deadline instead of duplicating.
    waiters.add(7, T0 + 5000);
    waiters.add(8, T0 + 4000);
    assert_eq!(waiters.len(), 2);
    assert_eq!(waiters.next_deadline(), Some(T0 + 4000));

    assert!(waiters.remove(8));
    assert!(!waiters.remove(8));
    waiters.add(1, T0 + 6000);
    assert_eq!(waiters.take_all(), vec![7, 1]);
    assert!(waiters.is_empty());
    assert_eq!(waiters.take_all(), Vec::<u32>::new());
    assert_eq!(waiters.take_expired(u64::MAX), Vec::<u32>::new());
}

/// Credentials that arrive already expired (or with less than `min_validity` left) are
/// a failed fetch with backoff, not a loop of AssumeRole calls.
#[test]
fn credentials_unusable_on_arrival_back_off() {
    let mut record = SharedRecord::default();
    let mut now = T0;
    let mut fetches = 0;
    while now < T0 + 2 * MINUTE {
        if should_fetch(&record, now, &policy(), 0.0) {
            fetches += 1;
            let expiring = temporary("ASIASTALE", now + 10 * SECOND);
            record = record_success(&record, expiring, now, &policy());
            assert!(usable_credentials(&record, now, &policy()).is_none());
            assert_eq!(last_error(&record), Some("sts_bad_response"));
        }
        now += 100;
    }
    // 1 s, 2 s, 4 s, … backoff: a handful of calls in two minutes, not one per tick.
    assert!((5..=8).contains(&fetches), "{fetches} fetches");
    let fresh = temporary("ASIAFRESH", now + 60 * MINUTE);
    record = record_success(&record, fresh, now, &policy());
    assert!(usable_credentials(&record, now, &policy()).is_some());
    assert_eq!(record.failures, 0);
}
