//! `FilterConfig::load` on arbitrary bytes (seeded with valid configurations): never panics;
//! an accepted configuration is within its documented bounds, resolves to itself as a
//! route, signs an Invoke (and an AssumeRole request), and no error quotes a secret.
#![no_main]

use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use proxy_wasm_lambda::{
    build_assume_role_request, build_invoke, is_valid_region, CredentialSource, FilterConfig,
    RouteOverride, CLIENT_CONTEXT_LIMIT,
};

use serde_json::Value;

/// The VM environment: source keys and an ExternalId, so that configurations without inline
/// keys get as far as those with them.
fn env(name: &str) -> Option<String> {
    match name {
        "AWS_ACCESS_KEY_ID" => Some("AKIDFROMENVIRON1".to_string()),
        "AWS_SECRET_ACCESS_KEY" => Some("envsecret".to_string()),
        "LAMBDA_EXTERNAL_ID" => Some("ext-id-from-env".to_string()),
        _ => None,
    }
}

const MARKER: &str = "FUZZSECRETMARKERq7Zx";

/// Replaces the secret members (non-empty strings) with `MARKER`; true when any was.
fn mark_secrets(value: &mut Value) -> bool {
    let Some(credentials) = value.get_mut("credentials").and_then(Value::as_object_mut) else {
        return false;
    };
    let mut marked = false;
    for key in ["secret_access_key", "session_token"] {
        if let Some(Value::String(s)) = credentials.get_mut(key) {
            if !s.is_empty() {
                *s = MARKER.to_string();
                marked = true;
            }
        }
    }
    if let Some(Value::String(s)) = credentials
        .get_mut("assume_role")
        .and_then(|a| a.get_mut("external_id"))
    {
        if !s.is_empty() {
            *s = MARKER.to_string();
            marked = true;
        }
    }
    marked
}

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_428_000)
}

fuzz_target!(|data: &[u8]| {
    let result = FilterConfig::load(data, &env);

    // Errors never print a secret: the same configuration with the secrets replaced by a
    // marker fails without the marker in its message.
    if data.len() < 4096 && !data.windows(MARKER.len()).any(|w| w == MARKER.as_bytes()) {
        if let Ok(mut value) = serde_json::from_slice::<Value>(data) {
            if mark_secrets(&mut value) {
                let marked = serde_json::to_vec(&value).unwrap();
                if let Err(e) = FilterConfig::load(&marked, &env) {
                    assert!(!e.to_string().contains(MARKER), "{e}");
                    assert!(!format!("{e:?}").contains(MARKER), "{e:?}");
                }
            }
        }
    }

    let config = match result {
        Ok(config) => config,
        Err(e) => {
            assert!(!e.message.is_empty(), "{e:?}");
            return;
        }
    };
    let t = &config.target;
    assert!((200..=599).contains(&t.function_error_status), "{t:?}");
    assert!(t.timeout >= Duration::from_millis(1) && t.timeout <= Duration::from_secs(900));
    assert!(is_valid_region(&t.region), "{t:?}");
    assert!(t.invoke_path.starts_with("/2015-03-31/functions/"), "{t:?}");
    assert!(t.invoke_path.bytes().all(|b| b.is_ascii_graphic()), "{t:?}");
    assert!(
        t.endpoint
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:".contains(&b)),
        "{t:?}"
    );
    assert!(t
        .client_context
        .as_ref()
        .is_none_or(|c| c.len() <= CLIENT_CONTEXT_LIMIT));
    if let Some(cluster) = &t.cluster {
        assert!(!cluster.is_empty() && !cluster.chars().any(char::is_control));
    }

    // A route without overrides, or one that repeats the plugin's own settings, is the
    // plugin's target; without top-level credentials such a route is refused.
    let plain = config.resolve_route(&RouteOverride::default());
    match t.credentials_profile {
        Some(_) => assert_eq!(plain.as_ref(), Ok(t)),
        None => assert_eq!(plain.map_err(|e| e.field), Err("credentials".to_string())),
    }
    let same = RouteOverride {
        settings: config.settings.clone(),
        disabled: false,
        credentials: None,
    };
    if t.credentials_profile.is_some() {
        assert_eq!(config.resolve_route(&same).as_ref(), Ok(t));
    }

    // What the configuration accepted can be signed, whichever profile a route names.
    let mut static_keys = None;
    for profile in config.profiles.iter().flatten() {
        let named = RouteOverride {
            credentials: Some(profile.name.clone()),
            ..Default::default()
        };
        assert!(config.resolve_route(&named).is_ok());
        match &profile.source {
            CredentialSource::Static(credentials) => static_keys = Some(credentials),
            CredentialSource::AssumeRole { source, settings } => {
                assert!(settings.timeout >= Duration::from_millis(1));
                if let Err(e) = build_assume_role_request(settings, source, now()) {
                    panic!("accepted assume_role settings do not sign: {e}");
                }
                static_keys = Some(source);
            }
            // Ambient credentials are fetched later: the configuration must only locate them.
            CredentialSource::Ambient { max_wait, .. } => {
                assert!(*max_wait >= Duration::from_millis(1));
            }
        }
    }
    let Some(source) = static_keys else {
        return;
    };
    if let Err(e) = build_invoke(t, "lambda", source, b"{}".to_vec(), now()) {
        panic!("accepted configuration does not sign: {e}");
    }
});
