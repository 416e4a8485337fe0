//! Route metadata: `decode_route_override` on arbitrary property bytes for any of the route
//! keys, then `resolve_route` against a plugin configuration. Never panics; errors name a
//! route key; resolved targets are within bounds.
//!
//! Input: records of `[key index][length][value bytes]`; a key may come more than once (the
//! first wins), an index past the key list is ignored.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use proxy_wasm_lambda::config::FilterConfig;
use proxy_wasm_lambda::route::{decode_route_override, RouteCache, RouteTarget, ROUTE_KEYS};

fn configs() -> &'static [FilterConfig; 3] {
    static CONFIGS: OnceLock<[FilterConfig; 3]> = OnceLock::new();
    CONFIGS.get_or_init(|| {
        let load = |json: &str| FilterConfig::load(json.as_bytes(), &|_| None).unwrap();
        [
            load(
                r#"{"function":"f","qualifier":"live","region":"us-east-1","payload":"apigw_v2","credentials":{"access_key_id":"AKIDEXAMPLE12345","secret_access_key":"x"}}"#,
            ),
            load(
                r#"{"function":"arn:aws:lambda:eu-west-1:123456789012:function:g:7","cluster":"lambda","custom_parameters":{"a":"b"},"credentials":{"access_key_id":"AKIDEXAMPLE12345","secret_access_key":"x"}}"#,
            ),
            // Profiles only: a route must name one.
            load(
                r#"{"function":"f","region":"us-east-1","credential_profiles":{"a":{"access_key_id":"test","secret_access_key":"test"},"b-2":{"access_key_id":"AKIDEXAMPLE12345","secret_access_key":"x"}}}"#,
            ),
        ]
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, mut rest)) = data.split_first() else {
        return;
    };
    let mut values: Vec<(&str, Vec<u8>)> = Vec::new();
    while let [key, len, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (value, next) = tail.split_at(len);
        if let Some(name) = ROUTE_KEYS.get(usize::from(*key)) {
            if !values.iter().any(|(n, _)| n == name) {
                values.push((name, value.to_vec()));
            }
        }
        rest = next;
    }
    let lookup = |key: &str| {
        assert!(ROUTE_KEYS.contains(&key), "looked up {key}");
        values
            .iter()
            .find(|(n, _)| *n == key)
            .map(|(_, v)| v.clone())
    };
    let route = match decode_route_override(lookup) {
        Ok(route) => route,
        Err(e) => {
            assert!(ROUTE_KEYS.contains(&e.field.as_str()), "{e:?}");
            return;
        }
    };
    let config = &configs()[usize::from(which % 3)];
    match config.resolve_route(&route) {
        Ok(target) => {
            // Signed with the profile the route names, else the top-level credentials:
            // never another.
            let expected = match &route.credentials {
                Some(name) => config.profile_id(name),
                None => config.target.credentials_profile,
            };
            assert!(expected.is_some());
            assert_eq!(target.credentials_profile, expected);
            if route.is_empty() {
                assert_eq!(&target, &config.target);
            }
            assert!((200..=599).contains(&target.function_error_status));
            assert!(target.timeout >= Duration::from_millis(1));
            assert!(target.timeout <= Duration::from_secs(900));
            assert!(target.invoke_path.bytes().all(|b| b.is_ascii_graphic()));
        }
        Err(e) => assert!(ROUTE_KEYS.contains(&e.field.as_str()), "{e:?}"),
    }
    // The cache gives the same answer as resolving directly, twice.
    let mut cache = RouteCache::default();
    let first = cache.resolve(config, data, || Ok(route.clone()));
    let second = cache.resolve(config, data, || unreachable!("resolved twice"));
    assert_eq!(first, second);
    if route.disabled {
        assert_eq!(first, Ok(RouteTarget::Disabled));
    }
});
