//! `credentials.source: web_identity` (IRSA): the role and session as the AWS SDKs take them
//! (`AWS_ROLE_ARN`, `AWS_ROLE_SESSION_NAME`; the keys in the configuration win), and the
//! cluster whose upstream filters add the token of `AWS_WEB_IDENTITY_TOKEN_FILE`.

use super::*;
use crate::credentials::web_identity::{
    WebIdentitySettings, ENV_ROLE_ARN, ENV_SESSION_NAME, ENV_TOKEN_FILE,
};

/// The settings of `source: web_identity` (or of `chain` when it chose web identity).
pub(super) fn web_identity_settings(
    raw: &RawCredentials,
    region: &str,
    timeout: Duration,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<WebIdentitySettings, ConfigError> {
    let var = |name: &str| env(name).filter(|v| !v.is_empty());
    let cluster = cluster_name(
        raw.web_identity_cluster.as_ref(),
        "credentials.web_identity_cluster",
        &format!(
            "STS and adds the token of {ENV_TOKEN_FILE} (credential_injector and \
             header_mutation: examples/eks)"
        ),
    )?;
    let (role_arn, role_field) = match (&raw.web_identity_role_arn, var(ENV_ROLE_ARN)) {
        (Some(arn), _) => (arn.clone(), "credentials.web_identity_role_arn"),
        (None, Some(arn)) => (arn, ENV_ROLE_ARN),
        (None, None) => {
            return Err(ConfigError::new(
                "credentials.web_identity_role_arn",
                format!(
                    "is required: set it, or give {ENV_ROLE_ARN} (which EKS sets in the pod) in \
                     vm_config.environment_variables"
                ),
            ))
        }
    };
    if !is_valid_role_arn(&role_arn) {
        return Err(ConfigError::new(
            role_field,
            format!(
                "'{}' is not an IAM role ARN (arn:<partition>:iam::<12-digit account>:role/<name>)",
                shown(&role_arn)
            ),
        ));
    }
    let (session_name, session_field) =
        match (&raw.web_identity_session_name, var(ENV_SESSION_NAME)) {
            (Some(name), _) => (name.clone(), "credentials.web_identity_session_name"),
            (None, Some(name)) => (name, ENV_SESSION_NAME),
            (None, None) => (DEFAULT_SESSION_NAME.to_string(), ""),
        };
    if !is_valid_session_name(&session_name) {
        return Err(ConfigError::new(
            session_field,
            format!(
                "'{}' must be 2-64 characters of [A-Za-z0-9_+=,.@-]",
                shown(&session_name)
            ),
        ));
    }
    for (value, field) in [(&role_arn, role_field), (&session_name, session_field)] {
        if let Some(c) = value.chars().find(|c| !is_query_safe(*c)) {
            return Err(ConfigError::new(
                field,
                format!(
                    "'{}' has '{c}': the STS call's query passes Envoy's header_mutation, which \
                     sends its values decoded, so only letters, digits and _,.@:/- arrive as written",
                    shown(value)
                ),
            ));
        }
    }
    let endpoint = match &raw.web_identity_endpoint {
        Some(endpoint) => validate_host(
            endpoint,
            "credentials.web_identity_endpoint",
            "sts.us-east-1.amazonaws.com",
        )?,
        None => default_sts_endpoint(region),
    };
    Ok(WebIdentitySettings {
        cluster,
        endpoint,
        role_arn,
        session_name,
        timeout,
    })
}

/// What a query value may hold to reach STS as written after Envoy's query mutation, which
/// re-serializes every value of the query decoded (`%2B` becomes `+`, read by STS as a space).
fn is_query_safe(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_,.@:/-".contains(c)
}

/// Whether the environment names IRSA as the SDKs detect it: a role and a token file.
pub(super) fn web_identity_in_env(env: &dyn Fn(&str) -> Option<String>) -> bool {
    let set = |name: &str| env(name).is_some_and(|v| !v.is_empty());
    set(ENV_ROLE_ARN) && set(ENV_TOKEN_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    const IRSA: &[(&str, &str)] = &[
        (ENV_ROLE_ARN, "arn:aws:iam::111122223333:role/gateway-irsa"),
        (
            ENV_TOKEN_FILE,
            "/var/run/secrets/eks.amazonaws.com/serviceaccount/token",
        ),
    ];
    const POD_IDENTITY_FILE: &[(&str, &str)] = &[
        (ENV_FULL_URI, "http://169.254.170.23/v1/credentials"),
        (
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
            "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount/eks-pod-identity-token",
        ),
    ];

    fn load(credentials: &str, vars: &[(&str, &str)]) -> Result<FilterConfig, ConfigError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let env = move |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let json =
            format!(r#"{{"function":"f","region":"eu-west-1","credentials":{credentials}}}"#);
        FilterConfig::load(json.as_bytes(), &env)
    }

    fn web_identity(config: &FilterConfig) -> &WebIdentitySettings {
        match config.default_source() {
            CredentialSource::Ambient {
                provider: AmbientProvider::WebIdentity(settings),
                ..
            } => settings,
            other => panic!("expected web identity, got {other:?}"),
        }
    }

    #[test]
    fn role_and_session_from_the_environment_as_the_sdks_take_them() {
        let config = load(
            r#"{"source":"web_identity","web_identity_cluster":"sts_web_identity"}"#,
            IRSA,
        )
        .unwrap();
        let settings = web_identity(&config);
        assert_eq!(settings.cluster, "sts_web_identity");
        assert_eq!(
            settings.role_arn,
            "arn:aws:iam::111122223333:role/gateway-irsa"
        );
        assert_eq!(settings.session_name, DEFAULT_SESSION_NAME);
        assert_eq!(settings.endpoint, "sts.eu-west-1.amazonaws.com");
        assert_eq!(settings.timeout, Duration::from_millis(1000));
        assert_eq!(
            config.default_origin(),
            "web_identity (AssumeRoleWithWebIdentity arn:aws:iam::111122223333:role/gateway-irsa \
             through cluster 'sts_web_identity', Host sts.eu-west-1.amazonaws.com)"
        );
        let mut with_session = IRSA.to_vec();
        with_session.push((ENV_SESSION_NAME, "envoy-pod-7"));
        let config = load(
            r#"{"source":"web_identity","web_identity_cluster":"c"}"#,
            &with_session,
        )
        .unwrap();
        assert_eq!(web_identity(&config).session_name, "envoy-pod-7");
    }

    #[test]
    fn the_configuration_wins_over_the_environment() {
        let config = load(
            r#"{"source":"web_identity","web_identity_cluster":"c",
                "web_identity_role_arn":"arn:aws:iam::444455556666:role/other",
                "web_identity_session_name":"tenant-a","web_identity_endpoint":"STS.eu-west-1.amazonaws.com:8443",
                "timeout_ms":500}"#,
            IRSA,
        )
        .unwrap();
        let settings = web_identity(&config);
        assert_eq!(settings.role_arn, "arn:aws:iam::444455556666:role/other");
        assert_eq!(settings.session_name, "tenant-a");
        assert_eq!(settings.endpoint, "sts.eu-west-1.amazonaws.com:8443");
        assert_eq!(settings.timeout, Duration::from_millis(500));
    }

    #[test]
    fn each_mistake_names_its_field() {
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
        let cases: [Case; 10] = [
            (
                r#"{"source":"web_identity"}"#,
                IRSA,
                "credentials.web_identity_cluster",
            ),
            (
                r#"{"source":"web_identity","web_identity_cluster":"c"}"#,
                &[],
                "credentials.web_identity_role_arn",
            ),
            (
                r#"{"source":"web_identity","web_identity_cluster":"c"}"#,
                &[(ENV_ROLE_ARN, "arn:aws:iam::1:role/x")],
                ENV_ROLE_ARN,
            ),
            (
                r#"{"source":"web_identity","web_identity_cluster":"c","web_identity_role_arn":"role/x"}"#,
                IRSA,
                "credentials.web_identity_role_arn",
            ),
            (
                r#"{"source":"web_identity","web_identity_cluster":"c"}"#,
                &[
                    (ENV_ROLE_ARN, "arn:aws:iam::111122223333:role/x"),
                    (ENV_SESSION_NAME, "has space"),
                ],
                ENV_SESSION_NAME,
            ),
            (
                r#"{"source":"web_identity","web_identity_cluster":"c","web_identity_session_name":"a+b"}"#,
                IRSA,
                "credentials.web_identity_session_name",
            ),
            (
                r#"{"source":"web_identity","web_identity_cluster":"c"}"#,
                &[(ENV_ROLE_ARN, "arn:aws:iam::111122223333:role/team+a")],
                ENV_ROLE_ARN,
            ),
            (
                r#"{"source":"web_identity","web_identity_cluster":"c","web_identity_endpoint":"https://sts/"}"#,
                IRSA,
                "credentials.web_identity_endpoint",
            ),
            (
                r#"{"source":"imds","imds_cluster":"i","web_identity_cluster":"c"}"#,
                IRSA,
                "credentials.web_identity_cluster",
            ),
            (
                r#"{"source":"imds","imds_cluster":"i","container_token_from_cluster":true}"#,
                &[],
                "credentials.container_token_from_cluster",
            ),
        ];
        for (credentials, env, field) in cases {
            let err = load(credentials, env).unwrap_err();
            assert_eq!(err.field, field, "{credentials}: {err}");
        }
    }

    #[test]
    fn chain_order_is_environment_keys_web_identity_container_imds() {
        let all = r#"{"source":"chain","web_identity_cluster":"w","container_cluster":"c",
            "container_token_from_cluster":true,"imds_cluster":"i"}"#;
        let name = |vars: &[(&str, &str)]| match load(all, vars).unwrap().default_source() {
            CredentialSource::Static(_) => "static",
            CredentialSource::Ambient { provider, .. } => provider.name(),
            CredentialSource::AssumeRole { .. } => "assume_role",
        };
        let mut everything = IRSA.to_vec();
        everything.extend_from_slice(POD_IDENTITY_FILE);
        let mut with_keys = everything.clone();
        with_keys.push((crate::credentials::ENV_ACCESS_KEY_ID, "AKIDFROMENVIRON1"));
        with_keys.push((crate::credentials::ENV_SECRET_ACCESS_KEY, "s"));
        assert_eq!(name(&with_keys), "static");
        assert_eq!(name(&everything), "web_identity");
        assert_eq!(name(POD_IDENTITY_FILE), "container");
        // A role without a token file is not IRSA.
        assert_eq!(name(&IRSA[..1]), "imds");
        assert_eq!(name(&[]), "imds");
        let err = load(r#"{"source":"chain","imds_cluster":"i"}"#, IRSA).unwrap_err();
        assert_eq!(err.field, "credentials.web_identity_cluster");
        assert!(
            err.message.contains("chain") && err.message.contains("IRSA"),
            "{err}"
        );
    }

    #[test]
    fn web_identity_is_the_source_of_an_assume_role_with_external_id() {
        let config = load(
            r#"{"source":"web_identity","web_identity_cluster":"sts_web_identity",
                "assume_role":{"role_arn":"arn:aws:iam::444455556666:role/tenant-a",
                "external_id":"tenant-a-ext-4711","sts_cluster":"sts"}}"#,
            IRSA,
        )
        .unwrap();
        let CredentialSource::Ambient {
            provider: AmbientProvider::WebIdentity(_),
            assume_role: Some(settings),
            ..
        } = config.default_source()
        else {
            panic!("expected web identity then AssumeRole");
        };
        assert_eq!(settings.role_arn, "arn:aws:iam::444455556666:role/tenant-a");
        assert!(config
            .default_origin()
            .ends_with("then AssumeRole arn:aws:iam::444455556666:role/tenant-a"));
        assert!(!format!("{config:?}").contains("tenant-a-ext-4711"));
    }

    #[test]
    fn pod_identity_token_file_needs_the_cluster_to_carry_it() {
        let err = load(
            r#"{"source":"container","container_cluster":"pod_identity_agent"}"#,
            POD_IDENTITY_FILE,
        )
        .unwrap_err();
        assert_eq!(err.field, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
        assert!(
            err.message.contains("container_token_from_cluster"),
            "{err}"
        );
        let config = load(
            r#"{"source":"container","container_cluster":"pod_identity_agent","container_token_from_cluster":true}"#,
            POD_IDENTITY_FILE,
        )
        .unwrap();
        let CredentialSource::Ambient {
            provider: AmbientProvider::Container(settings),
            ..
        } = config.default_source()
        else {
            panic!("expected container");
        };
        assert_eq!(settings.authorization, None);
    }

    #[test]
    fn cache_keys_differ_by_role_cluster_and_session() {
        use crate::credentials::identity::web_identity_key;
        let settings = |cluster: &str, role: &str, session: &str| WebIdentitySettings {
            cluster: cluster.into(),
            endpoint: "sts.eu-west-1.amazonaws.com".into(),
            role_arn: role.into(),
            session_name: session.into(),
            timeout: Duration::from_secs(1),
        };
        let base = web_identity_key(&settings("w", "arn:aws:iam::1:role/a", "s"));
        for other in [
            settings("w2", "arn:aws:iam::1:role/a", "s"),
            settings("w", "arn:aws:iam::1:role/b", "s"),
            settings("w", "arn:aws:iam::1:role/a", "s2"),
        ] {
            assert_ne!(web_identity_key(&other), base);
        }
        assert_eq!(
            web_identity_key(&settings("w", "arn:aws:iam::1:role/a", "s")),
            base
        );
    }
}
