use super::*;

const CREDS: &str =
    r#""credentials":{"access_key_id":"AKIDEXAMPLE12345","secret_access_key":"s3cr3t"}"#;

fn no_env(_: &str) -> Option<String> {
    None
}

fn load(json: &str) -> Result<FilterConfig, ConfigError> {
    FilterConfig::load(json.as_bytes(), &no_env)
}

fn load_with_creds(fields: &str) -> Result<FilterConfig, ConfigError> {
    load(&format!("{{{fields},{CREDS}}}"))
}

fn field_of(json: &str) -> String {
    load_with_creds(json).unwrap_err().field
}

#[test]
fn minimal_config_gets_defaults() {
    let config = load_with_creds(r#""function":"my-fn","region":"us-east-1""#).unwrap();
    let t = &config.target;
    assert_eq!(t.endpoint, "lambda.us-east-1.amazonaws.com");
    assert_eq!(t.invocation_type, InvocationType::RequestResponse);
    assert_eq!(t.payload, PayloadFormat::Passthrough);
    assert_eq!(t.function_error_status, 502);
    assert_eq!(t.timeout, Duration::from_millis(15_000));
    assert_eq!(t.invoke_path, "/2015-03-31/functions/my-fn/invocations");
    assert_eq!(t.cluster, None);
}

#[test]
fn arn_gives_region_and_qualifier() {
    let config =
        load_with_creds(r#""function":"arn:aws:lambda:eu-west-1:123456789012:function:f:live""#)
            .unwrap();
    assert_eq!(config.target.region, "eu-west-1");
    assert_eq!(config.target.endpoint, "lambda.eu-west-1.amazonaws.com");
    assert_eq!(
        config.target.invoke_path,
        "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aeu-west-1%3A123456789012%3Afunction%3Af/invocations?Qualifier=live"
    );
}

#[test]
fn latest_qualifier_is_encoded() {
    let config =
        load_with_creds(r#""function":"f","qualifier":"$LATEST","region":"us-east-1""#).unwrap();
    assert!(config.target.invoke_path.ends_with("?Qualifier=%24LATEST"));
}

#[test]
fn response_stream_precomputes_the_streaming_path() {
    let buffered = load_with_creds(r#""function":"f","region":"us-east-1""#).unwrap();
    assert_eq!(buffered.target.stream_path, None);
    let explicit =
        load_with_creds(r#""function":"f","region":"us-east-1","invoke_mode":"buffered""#).unwrap();
    assert_eq!(explicit.target.stream_path, None);
    let streaming = load_with_creds(
        r#""function":"arn:aws:lambda:us-east-1:123456789012:function:f:live","invoke_mode":"response_stream","log_type":"Tail""#,
    )
    .unwrap();
    assert_eq!(
        streaming.target.stream_path.as_deref(),
        Some("/2021-11-15/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Af/response-streaming-invocations?Qualifier=live")
    );
    assert_eq!(
        streaming.target.invoke_path,
        "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Af/invocations?Qualifier=live"
    );
    // Per route, like every other key.
    let target = buffered
        .resolve_route(&route(TargetSettings {
            invoke_mode: Some("response_stream".into()),
            ..TargetSettings::default()
        }))
        .unwrap();
    assert_eq!(
        target.stream_path.as_deref(),
        Some("/2021-11-15/functions/f/response-streaming-invocations")
    );
    let err = buffered
        .resolve_route(&route(TargetSettings {
            invoke_mode: Some("chunked".into()),
            ..TargetSettings::default()
        }))
        .unwrap_err();
    assert_eq!(err.field, "invoke_mode");
}

#[test]
fn china_region_default_endpoint() {
    let config = load_with_creds(r#""function":"f","region":"cn-north-1""#).unwrap();
    assert_eq!(config.target.endpoint, "lambda.cn-north-1.amazonaws.com.cn");
}

#[test]
fn vpc_endpoint_is_accepted() {
    let config = load_with_creds(
        r#""function":"f","region":"us-east-1","endpoint":"vpce-0a1b2c3d4e5f-abcdefgh.lambda.us-east-1.vpce.amazonaws.com""#,
    )
    .unwrap();
    assert_eq!(
        config.target.endpoint,
        "vpce-0a1b2c3d4e5f-abcdefgh.lambda.us-east-1.vpce.amazonaws.com"
    );
}

#[test]
fn each_error_names_its_field() {
    let cases = [
        (
            r#""function":"f","region":"us-east-1","colour":"red""#,
            "colour",
        ),
        (r#""region":"us-east-1""#, "function"),
        (r#""function":"arn:aws:lambda:bad""#, "function"),
        (r#""function":"f""#, "region"),
        (r#""function":"f","region":"moon""#, "region"),
        (
            r#""function":"arn:aws:lambda:eu-west-1:123456789012:function:f","region":"us-east-1""#,
            "region",
        ),
        (
            r#""function":"arn:aws:lambda:eu-west-1:123456789012:function:f:v1","qualifier":"v2""#,
            "qualifier",
        ),
        (
            r#""function":"f","region":"us-east-1","qualifier":"a/b""#,
            "qualifier",
        ),
        (
            r#""function":"f","region":"us-east-1","invocation_type":"Sync""#,
            "invocation_type",
        ),
        (
            r#""function":"f","region":"us-east-1","payload":"xml""#,
            "payload",
        ),
        (
            r#""function":"f","region":"us-east-1","invoke_mode":"streaming""#,
            "invoke_mode",
        ),
        (
            r#""function":"f","region":"us-east-1","invoke_mode":"response_stream","invocation_type":"Event""#,
            "invoke_mode",
        ),
        (
            r#""function":"f","region":"us-east-1","function_error_status":99"#,
            "function_error_status",
        ),
        (
            r#""function":"f","region":"us-east-1","function_error_status":"x""#,
            "function_error_status",
        ),
        (
            r#""function":"f","region":"us-east-1","timeout_ms":0"#,
            "timeout_ms",
        ),
        (
            r#""function":"f","region":"us-east-1","timeout_ms":-5"#,
            "timeout_ms",
        ),
        (
            r#""function":"f","region":"us-east-1","timeout_ms":900001"#,
            "timeout_ms",
        ),
        (
            r#""function":"f","region":"us-east-1","endpoint":"https://x.com/""#,
            "endpoint",
        ),
        (
            r#""function":"f","region":"us-east-1","endpoint":"host:0""#,
            "endpoint",
        ),
        // A port is digits only (Rust's integer parser alone accepts a leading '+').
        (
            r#""function":"f","region":"us-east-1","endpoint":"host:+443""#,
            "endpoint",
        ),
        (
            r#""function":"f","region":"us-east-1","cluster":"""#,
            "cluster",
        ),
    ];
    for (json, field) in cases {
        assert_eq!(field_of(json), field, "{json}");
    }
}

#[test]
fn credentials_errors_name_their_field() {
    let err = load(r#"{"function":"f","region":"us-east-1"}"#).unwrap_err();
    assert_eq!(err.field, "credentials");
    let err = load(
        r#"{"function":"f","region":"us-east-1","credentials":{"access_key_id":"AKIDEXAMPLE12345","secret":"x"}}"#,
    )
    .unwrap_err();
    assert_eq!(err.field, "credentials.secret");
    let err = load(
        r#"{"function":"f","region":"us-east-1","credentials":{"access_key_id":"AKID/short","secret_access_key":"x"}}"#,
    )
    .unwrap_err();
    assert_eq!(err.field, "credentials.access_key_id");
    let err = load(
        r#"{"function":"f","region":"us-east-1","credentials":{"access_key_id":"AKIDEXAMPLE12345","secret_access_key":""}}"#,
    )
    .unwrap_err();
    assert_eq!(err.field, "credentials.secret_access_key");
}

#[test]
fn errors_never_print_the_secret() {
    let err = load(
        r#"{"function":"f","region":"us-east-1","credentials":{"access_key_id":"bad key","secret_access_key":"TOPSECRETVALUE"}}"#,
    )
    .unwrap_err();
    assert!(!err.to_string().contains("TOPSECRETVALUE"));
    let err = load(
        r#"{"function":"f","region":"us-east-1","credentials":{"access_key_id":"AKIDEXAMPLE12345","secret_access_key":5}}"#,
    )
    .unwrap_err();
    assert_eq!(err.field, "credentials.secret_access_key");
}

#[test]
fn not_json_is_rejected() {
    assert_eq!(load("function=f").unwrap_err().field, "configuration");
    assert_eq!(load("[1]").unwrap_err().field, "configuration");
}

#[test]
fn credentials_from_environment() {
    let env = |name: &str| match name {
        "AWS_ACCESS_KEY_ID" => Some("AKIDFROMENVIRON1".to_string()),
        "AWS_SECRET_ACCESS_KEY" => Some("envsecret".to_string()),
        "AWS_SESSION_TOKEN" => Some("envtoken".to_string()),
        _ => None,
    };
    let config = FilterConfig::load(br#"{"function":"f","region":"us-east-1"}"#, &env).unwrap();
    let CredentialSource::Static(credentials) = config.default_source().clone() else {
        panic!("expected static credentials");
    };
    assert_eq!(credentials.access_key_id, "AKIDFROMENVIRON1");
    assert_eq!(credentials.secret_access_key.expose(), "envsecret");
    assert_eq!(
        credentials.session_token.as_ref().map(|t| t.expose()),
        Some("envtoken")
    );
}

#[test]
fn assume_role_with_source_keys_from_the_environment() {
    let env = |name: &str| match name {
        "AWS_ACCESS_KEY_ID" => Some("AKIDFROMENVIRON1".to_string()),
        "AWS_SECRET_ACCESS_KEY" => Some("envsecret".to_string()),
        "LAMBDA_EXTERNAL_ID" => Some("ext-id-from-env".to_string()),
        _ => None,
    };
    let config = FilterConfig::load(
        br#"{"function":"f","region":"eu-west-1","credentials":{"assume_role":{
            "role_arn":"arn:aws:iam::123456789012:role/invoker",
            "external_id_env":"LAMBDA_EXTERNAL_ID","sts_cluster":"sts"}}}"#,
        &env,
    )
    .unwrap();
    let CredentialSource::AssumeRole { source, settings } = config.default_source() else {
        panic!("expected assume_role");
    };
    assert_eq!(source.access_key_id, "AKIDFROMENVIRON1");
    assert_eq!(settings.sts_endpoint, "sts.eu-west-1.amazonaws.com");
    assert_eq!(
        settings.external_id.as_ref().map(|e| e.expose()),
        Some("ext-id-from-env")
    );
    assert!(!format!("{config:?}").contains("ext-id-from-env"));
    assert!(!format!("{config:?}").contains("envsecret"));
}

#[test]
fn assume_role_errors_name_their_field() {
    let err = load(
        r#"{"function":"f","region":"us-east-1","credentials":{"access_key_id":"AKIDEXAMPLE12345","secret_access_key":"x","assume_role":{"role_arn":"arn:aws:iam::123456789012:role/r"}}}"#,
    )
    .unwrap_err();
    assert_eq!(err.field, "credentials.assume_role.sts_cluster");
    let err = load(
        r#"{"function":"f","region":"us-east-1","credentials":{"access_key_id":"AKIDEXAMPLE12345","secret_access_key":"x","assume_role":{"role_arn":"arn:aws:iam::123456789012:role/r","sts_cluster":"sts","duration":5}}}"#,
    )
    .unwrap_err();
    assert_eq!(err.field, "credentials.assume_role.duration");
}

fn route(settings: TargetSettings) -> RouteOverride {
    RouteOverride {
        settings,
        disabled: false,
        credentials: None,
    }
}

#[test]
fn route_override_replaces_function_and_drops_plugin_qualifier() {
    let config =
        load_with_creds(r#""function":"f","qualifier":"live","region":"us-east-1""#).unwrap();
    let target = config
        .resolve_route(&route(TargetSettings {
            function: Some("other".into()),
            ..Default::default()
        }))
        .unwrap();
    assert_eq!(
        target.invoke_path,
        "/2015-03-31/functions/other/invocations"
    );
    assert_eq!(target.region, "us-east-1");
}

#[test]
fn route_arn_in_another_region_replaces_plugin_region() {
    let config = load_with_creds(r#""function":"f","region":"us-east-1""#).unwrap();
    let target = config
        .resolve_route(&route(TargetSettings {
            function: Some("arn:aws:lambda:eu-west-1:123456789012:function:g".into()),
            timeout_ms: Some(1000),
            invocation_type: Some("Event".into()),
            ..Default::default()
        }))
        .unwrap();
    assert_eq!(target.region, "eu-west-1");
    assert_eq!(target.timeout, Duration::from_millis(1000));
    assert_eq!(target.invocation_type, InvocationType::Event);
}

#[test]
fn invalid_route_override_names_the_field() {
    let config = load_with_creds(r#""function":"f","region":"us-east-1""#).unwrap();
    let err = config
        .resolve_route(&route(TargetSettings {
            invocation_type: Some("Bogus".into()),
            ..Default::default()
        }))
        .unwrap_err();
    assert_eq!(err.field, "invocation_type");
}

#[test]
fn empty_route_override_is_the_plugin_target() {
    let config = load_with_creds(r#""function":"f","region":"us-east-1""#).unwrap();
    assert_eq!(
        config.resolve_route(&RouteOverride::default()).unwrap(),
        config.target
    );
}

#[test]
fn client_context_is_base64_json_and_size_checked() {
    let config = load_with_creds(
        r#""function":"f","region":"us-east-1","log_type":"Tail","client_context":{"custom":{"app":"shop"}}"#,
    )
    .unwrap();
    assert!(config.target.log_tail);
    assert_eq!(
        config.target.client_context.as_deref(),
        Some("eyJjdXN0b20iOnsiYXBwIjoic2hvcCJ9fQ==")
    );
    let big = format!(
        r#""function":"f","region":"us-east-1","client_context":{{"custom":{{"k":"{}"}}}}"#,
        "x".repeat(3000)
    );
    assert_eq!(load_with_creds(&big).unwrap_err().field, "client_context");
}

#[test]
fn fuzz_regression_session_token_with_control_characters() {
    // Accepted, then every request failed to sign ("failed to create canonical request").
    let err = load(
        "{\"function\":\"1\",\"region\":\"c-r-1\",\"credentials\":{\"access_key_id\":\"AKIDEXAMPLE12344\",\"secret_access_key\":\"3\",\"session_token\":\"\u{7f}\"}}",
    )
    .unwrap_err();
    assert_eq!(err.field, "credentials.session_token");
    assert!(load_with_creds_token("tokUUU\r\nx").is_err_and(|e| !e.to_string().contains("tokUUU")));
    let env = |name: &str| match name {
        "AWS_ACCESS_KEY_ID" => Some("AKIDFROMENVIRON1".to_string()),
        "AWS_SECRET_ACCESS_KEY" => Some("envsecret".to_string()),
        "AWS_SESSION_TOKEN" => Some("envtoken\n".to_string()),
        _ => None,
    };
    let err = FilterConfig::load(br#"{"function":"f","region":"us-east-1"}"#, &env).unwrap_err();
    assert_eq!(err.field, "AWS_SESSION_TOKEN");
    // Tabs and non-ASCII text sign.
    assert!(load_with_creds_token("a\tb\u{e9}").is_ok());
}

fn env_from(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
    move |name: &str| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    }
}

fn load_env(
    credentials: &str,
    vars: &'static [(&'static str, &'static str)],
) -> Result<FilterConfig, ConfigError> {
    let json = format!(r#"{{"function":"f","region":"us-east-1","credentials":{credentials}}}"#);
    FilterConfig::load(json.as_bytes(), &env_from(vars))
}

const POD_IDENTITY: &[(&str, &str)] = &[
    (ENV_FULL_URI, "http://169.254.170.23/v1/credentials"),
    (
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
        "pod-identity-token-value",
    ),
];

#[test]
fn imds_source_with_defaults_and_limits() {
    let config = load_env(r#"{"source":"imds","imds_cluster":"imds"}"#, &[]).unwrap();
    let CredentialSource::Ambient {
        provider: AmbientProvider::Imds(imds),
        assume_role: None,
        max_wait,
    } = config.default_source()
    else {
        panic!("expected imds: {:?}", config.default_source());
    };
    assert_eq!(imds.cluster, "imds");
    assert_eq!(imds.endpoint, "169.254.169.254");
    assert_eq!(imds.token_ttl_seconds, 21_600);
    assert_eq!(imds.timeout, Duration::from_millis(1000));
    assert_eq!(*max_wait, Duration::from_millis(3000));
    assert!(
        config.default_origin().starts_with("imds"),
        "{}",
        config.default_origin()
    );
    let cases = [
        (r#"{"source":"imds"}"#, "credentials.imds_cluster"),
        (
            r#"{"source":"imds","imds_cluster":""}"#,
            "credentials.imds_cluster",
        ),
        (
            r#"{"source":"imds","imds_cluster":"i","imds_token_ttl_seconds":21601}"#,
            "credentials.imds_token_ttl_seconds",
        ),
        (
            r#"{"source":"imds","imds_cluster":"i","imds_token_ttl_seconds":0}"#,
            "credentials.imds_token_ttl_seconds",
        ),
        (
            r#"{"source":"imds","imds_cluster":"i","imds_endpoint":"http://x/"}"#,
            "credentials.imds_endpoint",
        ),
        (
            r#"{"source":"imds","imds_cluster":"i","timeout_ms":0}"#,
            "credentials.timeout_ms",
        ),
        (
            r#"{"source":"imds","imds_cluster":"i","max_wait_ms":60001}"#,
            "credentials.max_wait_ms",
        ),
        (
            r#"{"source":"imds","imds_cluster":"i","container_cluster":"c"}"#,
            "credentials.container_cluster",
        ),
        (
            r#"{"source":"imds","imds_cluster":"i","access_key_id":"AKIDEXAMPLE12345","secret_access_key":"s"}"#,
            "credentials.access_key_id",
        ),
        (r#"{"source":"ec2"}"#, "credentials.source"),
        (r#"{"source":5}"#, "credentials.source"),
        (
            r#"{"access_key_id":"AKIDEXAMPLE12345","secret_access_key":"s","imds_cluster":"i"}"#,
            "credentials.imds_cluster",
        ),
        (
            r#"{"access_key_id":"AKIDEXAMPLE12345","secret_access_key":"s","timeout_ms":5}"#,
            "credentials.timeout_ms",
        ),
    ];
    for (credentials, field) in cases {
        assert_eq!(
            load_env(credentials, &[]).unwrap_err().field,
            field,
            "{credentials}"
        );
    }
}

#[test]
fn container_source_from_the_environment() {
    let config = load_env(
        r#"{"source":"container","container_cluster":"pod_identity","timeout_ms":500}"#,
        POD_IDENTITY,
    )
    .unwrap();
    let CredentialSource::Ambient {
        provider: AmbientProvider::Container(container),
        ..
    } = config.default_source()
    else {
        panic!("expected container");
    };
    assert_eq!(container.cluster, "pod_identity");
    assert_eq!(container.authority, "169.254.170.23");
    assert_eq!(container.timeout, Duration::from_millis(500));
    assert!(!format!("{config:?}").contains("pod-identity-token-value"));
    assert!(!config.default_origin().contains("pod-identity-token-value"));
    let err = load_env(r#"{"source":"container","container_cluster":"c"}"#, &[]).unwrap_err();
    assert_eq!(err.field, "credentials.source");
    assert!(err.message.contains(ENV_FULL_URI), "{err}");
    let err = load_env(r#"{"source":"container"}"#, POD_IDENTITY).unwrap_err();
    assert_eq!(err.field, "credentials.container_cluster");
    let err = load_env(
        r#"{"source":"container","container_cluster":"c","imds_cluster":"i"}"#,
        POD_IDENTITY,
    )
    .unwrap_err();
    assert_eq!(err.field, "credentials.imds_cluster");
}

#[test]
fn chain_takes_the_first_source_that_is_there() {
    let both = r#"{"source":"chain","imds_cluster":"imds","container_cluster":"container"}"#;
    // Inline keys first.
    let config = load_env(
        r#"{"source":"chain","access_key_id":"AKIDINLINE000001","secret_access_key":"s","imds_cluster":"imds"}"#,
        &[("AWS_ACCESS_KEY_ID", "AKIDFROMENVIRON1"), ("AWS_SECRET_ACCESS_KEY", "e")],
    )
    .unwrap();
    assert!(
        matches!(config.default_source(), CredentialSource::Static(c) if c.access_key_id == "AKIDINLINE000001")
    );
    assert_eq!(
        config.default_origin(),
        "chain: inline keys AKIDINLINE000001"
    );
    // Then the environment's keys, before a container endpoint.
    const ENV_AND_CONTAINER: &[(&str, &str)] = &[
        ("AWS_ACCESS_KEY_ID", "AKIDFROMENVIRON1"),
        ("AWS_SECRET_ACCESS_KEY", "e"),
        (ENV_FULL_URI, "http://169.254.170.23/v1/credentials"),
    ];
    let config = load_env(both, ENV_AND_CONTAINER).unwrap();
    assert!(
        matches!(config.default_source(), CredentialSource::Static(c) if c.access_key_id == "AKIDFROMENVIRON1")
    );
    assert_eq!(
        config.default_origin(),
        "chain: environment AWS_ACCESS_KEY_ID AKIDFROMENVIRON1"
    );
    // Half the environment's keys is an error, as in the SDKs.
    let err = load_env(both, &[("AWS_ACCESS_KEY_ID", "AKIDFROMENVIRON1")]).unwrap_err();
    assert_eq!(err.field, "credentials");
    // Then the container endpoint.
    let config = load_env(both, POD_IDENTITY).unwrap();
    assert!(matches!(
        config.default_source(),
        CredentialSource::Ambient {
            provider: AmbientProvider::Container(_),
            ..
        }
    ));
    assert!(
        config
            .default_origin()
            .starts_with("chain: container (http://169.254.170.23/v1/credentials"),
        "{}",
        config.default_origin()
    );
    // Then the instance role.
    let config = load_env(both, &[]).unwrap();
    assert!(matches!(
        config.default_source(),
        CredentialSource::Ambient {
            provider: AmbientProvider::Imds(_),
            ..
        }
    ));
    assert!(config.default_origin().starts_with("chain: imds"));
    // A source the chain chose must have its cluster.
    let err = load_env(r#"{"source":"chain","imds_cluster":"imds"}"#, POD_IDENTITY).unwrap_err();
    assert_eq!(err.field, "credentials.container_cluster");
    let err = load_env(r#"{"source":"chain","container_cluster":"c"}"#, &[]).unwrap_err();
    assert_eq!(err.field, "credentials.imds_cluster");
    assert!(err.message.contains("chain"), "{err}");
}

#[test]
fn any_source_can_chain_into_assume_role() {
    let config = load_env(
        r#"{"source":"imds","imds_cluster":"imds","max_wait_ms":100,"assume_role":{
            "role_arn":"arn:aws:iam::444455556666:role/invoker","external_id":"ext-id-4711",
            "sts_cluster":"sts","max_wait_ms":2500}}"#,
        &[],
    )
    .unwrap();
    let CredentialSource::Ambient {
        provider: AmbientProvider::Imds(_),
        assume_role: Some(settings),
        max_wait,
    } = config.default_source()
    else {
        panic!("expected imds + assume_role");
    };
    assert_eq!(settings.role_arn, "arn:aws:iam::444455556666:role/invoker");
    assert_eq!(*max_wait, Duration::from_millis(2500));
    assert!(config
        .default_origin()
        .ends_with("then AssumeRole arn:aws:iam::444455556666:role/invoker"));
    assert!(!format!("{config:?}").contains("ext-id-4711"));
    let config = load_env(
        r#"{"source":"container","container_cluster":"c","assume_role":{
            "role_arn":"arn:aws:iam::444455556666:role/invoker","sts_cluster":"sts"}}"#,
        POD_IDENTITY,
    )
    .unwrap();
    assert!(matches!(
        config.default_source(),
        CredentialSource::Ambient {
            provider: AmbientProvider::Container(_),
            assume_role: Some(_),
            ..
        }
    ));
    let err = load_env(
        r#"{"source":"container","container_cluster":"c","assume_role":{"role_arn":"x","sts_cluster":"sts"}}"#,
        POD_IDENTITY,
    )
    .unwrap_err();
    assert_eq!(err.field, "credentials.assume_role.role_arn");
}

#[test]
fn ambient_shared_data_keys_locate_the_endpoint_without_secrets() {
    let config = load_env(
        r#"{"source":"container","container_cluster":"c"}"#,
        POD_IDENTITY,
    )
    .unwrap();
    let CredentialSource::Ambient { provider, .. } = config.default_source() else {
        panic!("expected container");
    };
    let AmbientProvider::Container(settings) = provider else {
        panic!("expected container");
    };
    let key = crate::credentials::identity::container_key(settings);
    assert!(key.starts_with("proxy-wasm-lambda/credentials/v2/container/"));
    assert!(!key.contains("169.254.170.23"));
    assert_eq!(provider.name(), "container");
}

fn load_with_creds_token(token: &str) -> Result<FilterConfig, ConfigError> {
    let json = serde_json::json!({
        "function": "f",
        "region": "us-east-1",
        "credentials": {
            "access_key_id": "AKIDEXAMPLE12345",
            "secret_access_key": "s",
            "session_token": token
        }
    });
    load(&json.to_string())
}

#[test]
fn invoke_histograms_are_opt_in() {
    let base = r#""function":"f","region":"us-east-1""#;
    assert!(!load_with_creds(base).unwrap().invoke_histograms);
    let on = load_with_creds(&format!(r#"{base},"invoke_histograms":true"#)).unwrap();
    assert!(on.invoke_histograms);
    assert_eq!(
        field_of(&format!(r#"{base},"invoke_histograms":"yes""#)),
        "invoke_histograms"
    );
}
