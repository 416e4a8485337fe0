//! `credential_profiles` and the route's choice of profile.

use super::*;

fn env_from(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
    move |name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    }
}

fn tenant(external_id_env: &str) -> serde_json::Value {
    serde_json::json!({
        "access_key_id": "AKIDSOURCE000001",
        "secret_access_key": "source-secret",
        "assume_role": {
            "role_arn": "arn:aws:iam::123456789012:role/invoker",
            "external_id_env": external_id_env,
            "sts_cluster": "sts"
        }
    })
}

const ENV: &[(&str, &str)] = &[
    ("TENANT_A_EXTERNAL_ID", "ext-a"),
    ("TENANT_B_EXTERNAL_ID", "ext-b"),
];

fn load_json(json: serde_json::Value) -> Result<FilterConfig, ConfigError> {
    FilterConfig::load(json.to_string().as_bytes(), &env_from(ENV))
}

fn with_profiles(credentials: Option<serde_json::Value>) -> serde_json::Value {
    let mut json = serde_json::json!({
        "function": "f",
        "region": "us-east-1",
        "credential_profiles": {
            "tenant-b": tenant("TENANT_B_EXTERNAL_ID"),
            "tenant-a": tenant("TENANT_A_EXTERNAL_ID"),
        }
    });
    if let Some(credentials) = credentials {
        json["credentials"] = credentials;
    }
    json
}

fn route_naming(name: &str) -> RouteOverride {
    RouteOverride {
        credentials: Some(name.to_string()),
        ..Default::default()
    }
}

#[test]
fn profiles_are_validated_and_named_in_order() {
    let config = load_json(with_profiles(Some(serde_json::json!({
        "access_key_id": "AKIDDEFAULT00001",
        "secret_access_key": "default-secret"
    }))))
    .unwrap();
    let names: Vec<&str> = config
        .profiles
        .iter()
        .flatten()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(names, ["default", "tenant-a", "tenant-b"]);
    assert_eq!(config.profile_id("tenant-a"), Some(ProfileId(1)));
    assert_eq!(config.profile_id("default"), Some(ProfileId::DEFAULT));
    let Some(CredentialProfile {
        source: CredentialSource::AssumeRole { settings, .. },
        ..
    }) = config.profile(ProfileId(2))
    else {
        panic!("expected AssumeRole");
    };
    assert_eq!(settings.external_id.as_ref().unwrap().expose(), "ext-b");
}

#[test]
fn routes_pick_their_profile() {
    let config = load_json(with_profiles(Some(serde_json::json!({
        "access_key_id": "AKIDDEFAULT00001",
        "secret_access_key": "default-secret"
    }))))
    .unwrap();
    let target = config.resolve_route(&route_naming("tenant-b")).unwrap();
    assert_eq!(target.credentials_profile, Some(ProfileId(2)));
    let target = config.resolve_route(&RouteOverride::default()).unwrap();
    assert_eq!(target.credentials_profile, Some(ProfileId::DEFAULT));
    let target = config.resolve_route(&route_naming("default")).unwrap();
    assert_eq!(target.credentials_profile, Some(ProfileId::DEFAULT));
    // With other overrides too.
    let route = RouteOverride {
        settings: TargetSettings {
            function: Some("other-fn".into()),
            ..Default::default()
        },
        credentials: Some("tenant-a".into()),
        ..Default::default()
    };
    let target = config.resolve_route(&route).unwrap();
    assert_eq!(target.credentials_profile, Some(ProfileId(1)));
    assert_eq!(target.function.identifier, "other-fn");
}

#[test]
fn unknown_profiles_are_refused_not_defaulted() {
    let config = load_json(with_profiles(Some(serde_json::json!({
        "access_key_id": "AKIDDEFAULT00001",
        "secret_access_key": "default-secret"
    }))))
    .unwrap();
    let err = config.resolve_route(&route_naming("tenant-z")).unwrap_err();
    assert_eq!(err.field, "credentials");
    assert!(err.message.contains("'tenant-z'"), "{err}");
    assert!(err.message.contains("default, tenant-a, tenant-b"), "{err}");
    // Not a name (an object arrives as protobuf bytes): never echoed.
    let err = config
        .resolve_route(&route_naming("\n\x0fsecret_access_key\x12\x08TOPSECRET"))
        .unwrap_err();
    assert_eq!(err.field, "credentials");
    assert!(!err.to_string().contains("TOPSECRET"), "{err}");
    assert!(
        err.message.contains("not a credentials profile name"),
        "{err}"
    );
}

#[test]
fn profiles_alone_leave_routes_without_a_profile_refused() {
    let config = load_json(with_profiles(None)).unwrap();
    assert!(config.profiles[0].is_none());
    assert_eq!(config.target.credentials_profile, None);
    let err = config.resolve_route(&RouteOverride::default()).unwrap_err();
    assert_eq!(err.field, "credentials");
    assert!(err.message.contains("tenant-a, tenant-b"), "{err}");
    let err = config.resolve_route(&route_naming("default")).unwrap_err();
    assert_eq!(err.field, "credentials");
    assert!(config.resolve_route(&route_naming("tenant-a")).is_ok());
}

#[test]
fn profiles_alone_use_the_environment_keys_as_default() {
    let json = with_profiles(None);
    let env = env_from(&[
        ("TENANT_A_EXTERNAL_ID", "ext-a"),
        ("TENANT_B_EXTERNAL_ID", "ext-b"),
        ("AWS_ACCESS_KEY_ID", "AKIDFROMENVIRON1"),
        ("AWS_SECRET_ACCESS_KEY", "env-secret"),
    ]);
    let config = FilterConfig::load(json.to_string().as_bytes(), &env).unwrap();
    assert!(matches!(
        config.profile(ProfileId::DEFAULT).map(|p| &p.source),
        Some(CredentialSource::Static(c)) if c.access_key_id == "AKIDFROMENVIRON1"
    ));
}

#[test]
fn profile_errors_name_the_profile_field() {
    let mut json = with_profiles(None);
    json["credential_profiles"]["tenant-a"]["assume_role"]["role_arn"] = "nope".into();
    let err = load_json(json).unwrap_err();
    assert_eq!(
        err.field,
        "credential_profiles.tenant-a.assume_role.role_arn"
    );

    let mut json = with_profiles(None);
    json["credential_profiles"]["tenant-b"]["assume_role"]["external_id_env"] = "UNSET".into();
    let err = load_json(json).unwrap_err();
    assert_eq!(
        err.field,
        "credential_profiles.tenant-b.assume_role.external_id_env"
    );

    let mut json = with_profiles(None);
    json["credential_profiles"]["tenant-a"]["secret"] = "x".into();
    let err = load_json(json).unwrap_err();
    assert_eq!(err.field, "credential_profiles.tenant-a.secret");

    let mut json = with_profiles(None);
    json["credential_profiles"]["tenant-a"] = serde_json::json!({"source": "imds"});
    let err = load_json(json).unwrap_err();
    assert_eq!(err.field, "credential_profiles.tenant-a.imds_cluster");

    let mut json = with_profiles(None);
    json["credential_profiles"]["tenant-a"] = serde_json::json!({});
    let err = load_json(json).unwrap_err();
    assert_eq!(err.field, "credential_profiles.tenant-a");
    assert!(
        err.message
            .contains("credential_profiles.tenant-a.access_key_id"),
        "{err}"
    );
}

#[test]
fn profile_names_are_checked() {
    for (name, field) in [
        ("default", "credential_profiles.default"),
        ("has.dot", "credential_profiles"),
        ("", "credential_profiles"),
        ("white space", "credential_profiles"),
    ] {
        let mut json = with_profiles(None);
        json["credential_profiles"][name] = tenant("TENANT_A_EXTERNAL_ID");
        let err = load_json(json).unwrap_err();
        assert_eq!(err.field, field, "{name:?}: {err}");
    }
    let json =
        serde_json::json!({"function": "f", "region": "us-east-1", "credential_profiles": ["a"]});
    assert_eq!(load_json(json).unwrap_err().field, "credential_profiles");
}

#[test]
fn profile_errors_never_print_secrets() {
    let mut json = with_profiles(None);
    json["credential_profiles"]["tenant-a"]["secret_access_key"] = 5.into();
    json["credential_profiles"]["tenant-b"]["access_key_id"] = "bad key".into();
    json["credential_profiles"]["tenant-b"]["secret_access_key"] = "TOPSECRETVALUE".into();
    let err = load_json(json).unwrap_err();
    assert!(!err.to_string().contains("TOPSECRETVALUE"));
    let config = load_json(with_profiles(None)).unwrap();
    let printed = format!("{config:?}");
    for secret in ["source-secret", "ext-a", "ext-b"] {
        assert!(!printed.contains(secret), "{secret} in {printed}");
    }
}

#[test]
fn local_stand_in_keys_are_accepted_with_a_warning() {
    let json = serde_json::json!({
        "function": "f",
        "region": "us-east-1",
        "credentials": {"access_key_id": "test", "secret_access_key": "test"}
    });
    let config = load_json(json).unwrap();
    assert!(matches!(
        config.profile(ProfileId::DEFAULT).map(|p| &p.source),
        Some(CredentialSource::Static(c)) if c.access_key_id == "test"
    ));
    assert_eq!(config.warnings.len(), 1);
    assert!(config.warnings[0].contains("'test' does not look like an AWS access key id"));
    let json = serde_json::json!({
        "function": "f",
        "region": "us-east-1",
        "credentials": {"access_key_id": "AKIAIOSFODNN7EXAMPLE", "secret_access_key": "s"}
    });
    assert!(load_json(json).unwrap().warnings.is_empty());
    let mut json = with_profiles(None);
    json["credential_profiles"]["tenant-a"]["access_key_id"] = "test".into();
    let config = load_json(json).unwrap();
    assert!(
        config.warnings[0].starts_with("credential_profiles.tenant-a.access_key_id 'test'"),
        "{:?}",
        config.warnings
    );
}
