//! `credentials.assume_role` into the [`AssumeRoleSettings`] the AssumeRole provider
//! uses. The ExternalId is a [`Secret`]: no error, `Debug` or `Display` prints it.

use super::*;
use crate::credentials::sts::AssumeRoleSettings;
pub(crate) const DEFAULT_SESSION_NAME: &str = "proxy-wasm-lambda";

pub(super) const DEFAULT_DURATION_SECONDS: u64 = 3600;
pub(super) const MIN_DURATION_SECONDS: u64 = 900;
pub(super) const MAX_DURATION_SECONDS: u64 = 43_200;
pub(super) const DEFAULT_TIMEOUT_MS: u64 = 2000;
pub(super) const DEFAULT_MAX_WAIT_MS: u64 = 3000;
pub(super) const MAX_TIMEOUT_MS: u64 = 60_000;
/// The global endpoint only accepts signatures for us-east-1.
pub(super) const GLOBAL_ENDPOINT: &str = "sts.amazonaws.com";
pub(super) const GLOBAL_SIGNING_REGION: &str = "us-east-1";
/// `credentials.assume_role` as written in the plugin configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct RawAssumeRole {
    pub role_arn: Option<String>,
    pub external_id: Option<Secret>,
    /// The name of a VM environment variable that holds the ExternalId.
    pub external_id_env: Option<String>,
    pub session_name: Option<String>,
    pub duration_seconds: Option<u64>,
    pub sts_cluster: Option<String>,
    pub sts_endpoint: Option<String>,
    pub timeout_ms: Option<u64>,
    /// How long a request may wait for credentials.
    pub max_wait_ms: Option<u64>,
}

/// The keys of `credentials.assume_role`.
pub(crate) const ASSUME_ROLE_KEYS: &[&str] = &[
    "role_arn",
    "external_id",
    "external_id_env",
    "session_name",
    "duration_seconds",
    "sts_cluster",
    "sts_endpoint",
    "timeout_ms",
    "max_wait_ms",
];

impl RawAssumeRole {
    /// Reads the members of `credentials.assume_role`.
    pub(crate) fn read(fields: &mut Fields) -> RawAssumeRole {
        RawAssumeRole {
            role_arn: fields.string("role_arn"),
            external_id: fields.secret("external_id"),
            external_id_env: fields.string("external_id_env"),
            session_name: fields.string("session_name"),
            duration_seconds: fields.u64("duration_seconds"),
            sts_cluster: fields.string("sts_cluster"),
            sts_endpoint: fields.string("sts_endpoint"),
            timeout_ms: fields.u64("timeout_ms"),
            max_wait_ms: fields.u64("max_wait_ms"),
        }
    }
}

pub(super) fn field(name: &str) -> String {
    format!("credentials.assume_role.{name}")
}

pub(super) fn error(name: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::new(&field(name), message)
}

/// Validates `credentials.assume_role`. `region` is the (validated) Lambda region, `env`
/// reads the VM environment.
pub(crate) fn validate_assume_role(
    raw: RawAssumeRole,
    region: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<AssumeRoleSettings, ConfigError> {
    if !is_valid_region(region) {
        return Err(ConfigError::new(
            "region",
            format!("'{region}' is not an AWS region name (like us-east-1)"),
        ));
    }

    let role_arn = role_arn(raw.role_arn)?;

    let session_name = raw
        .session_name
        .unwrap_or_else(|| DEFAULT_SESSION_NAME.to_string());
    if !is_valid_session_name(&session_name) {
        return Err(error(
            "session_name",
            format!("'{session_name}' must be 2-64 characters of [A-Za-z0-9_+=,.@-]"),
        ));
    }

    let external_id = external_id(raw.external_id, raw.external_id_env, env)?;

    let duration_seconds = raw.duration_seconds.unwrap_or(DEFAULT_DURATION_SECONDS);
    if !(MIN_DURATION_SECONDS..=MAX_DURATION_SECONDS).contains(&duration_seconds) {
        return Err(error(
            "duration_seconds",
            format!(
                "{duration_seconds} must be between {MIN_DURATION_SECONDS} and {MAX_DURATION_SECONDS}"
            ),
        ));
    }

    let sts_cluster = raw.sts_cluster.ok_or_else(|| {
        error(
            "sts_cluster",
            "is required: the Envoy cluster that reaches the STS endpoint",
        )
    })?;
    if sts_cluster.is_empty()
        || sts_cluster.len() > 255
        || sts_cluster.chars().any(char::is_control)
    {
        return Err(error(
            "sts_cluster",
            "must be a non-empty Envoy cluster name",
        ));
    }

    let sts_endpoint = match raw.sts_endpoint {
        Some(endpoint) => validate_host(
            &endpoint,
            &field("sts_endpoint"),
            "sts.us-east-1.amazonaws.com",
        )?,
        None => default_sts_endpoint(region),
    };
    let signing_region = if sts_endpoint == GLOBAL_ENDPOINT {
        GLOBAL_SIGNING_REGION.to_string()
    } else {
        region.to_string()
    };

    let timeout_ms = bounded_ms(raw.timeout_ms, DEFAULT_TIMEOUT_MS, "timeout_ms")?;
    let max_wait_ms = bounded_ms(raw.max_wait_ms, DEFAULT_MAX_WAIT_MS, "max_wait_ms")?;

    Ok(AssumeRoleSettings {
        role_arn,
        external_id,
        session_name,
        // In range by the check above.
        duration_seconds: u32::try_from(duration_seconds).unwrap_or(u32::MAX),
        region: signing_region,
        sts_cluster,
        sts_endpoint,
        timeout: Duration::from_millis(timeout_ms),
        max_wait: Duration::from_millis(max_wait_ms),
    })
}

/// The ExternalId, inline or from the named VM environment variable (preferred: the
/// configuration is printed in Envoy's config dumps).
fn external_id(
    inline: Option<Secret>,
    from_env: Option<String>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Secret>, ConfigError> {
    match (inline, from_env) {
        (Some(_), Some(_)) => Err(error(
            "external_id",
            "conflicts with credentials.assume_role.external_id_env: give one or the other",
        )),
        (Some(id), None) => {
            if !is_valid_external_id(id.expose()) {
                return Err(error("external_id", EXTERNAL_ID_RULE));
            }
            Ok(Some(id))
        }
        (None, Some(name)) => {
            if name.is_empty() {
                return Err(error(
                    "external_id_env",
                    "must name a VM environment variable",
                ));
            }
            let value = env(&name).filter(|v| !v.is_empty()).ok_or_else(|| {
            error(
                "external_id_env",
                format!(
                    "names the environment variable '{name}', which is not set or empty in vm_config.environment_variables"
                ),
            )
        })?;
            if !is_valid_external_id(&value) {
                return Err(error(
                    "external_id_env",
                    format!("the value of the environment variable '{name}' {EXTERNAL_ID_RULE}"),
                ));
            }
            Ok(Some(Secret::new(value)))
        }
        (None, None) => Ok(None),
    }
}

fn role_arn(role_arn: Option<String>) -> Result<String, ConfigError> {
    let role_arn = role_arn.ok_or_else(|| {
        error(
            "role_arn",
            "is required (arn:aws:iam::<account>:role/<name>)",
        )
    })?;
    if !is_valid_role_arn(&role_arn) {
        let shown = if role_arn.len() <= 2048 {
            format!("'{role_arn}'")
        } else {
            "the value".to_string()
        };
        return Err(error(
            "role_arn",
            format!(
                "{shown} is not an IAM role ARN (arn:<partition>:iam::<12-digit account>:role/<path/name>, 20-2048 characters)"
            ),
        ));
    }
    Ok(role_arn)
}

pub(super) const EXTERNAL_ID_RULE: &str = "must be 2-1224 characters of [A-Za-z0-9_+=,.@:/-]";

pub(super) fn bounded_ms(value: Option<u64>, default: u64, name: &str) -> Result<u64, ConfigError> {
    let ms = value.unwrap_or(default);
    if (1..=MAX_TIMEOUT_MS).contains(&ms) {
        Ok(ms)
    } else {
        Err(error(
            name,
            format!("{ms} must be between 1 and {MAX_TIMEOUT_MS}"),
        ))
    }
}

pub(super) fn default_sts_endpoint(region: &str) -> String {
    if region.starts_with("cn-") {
        format!("sts.{region}.amazonaws.com.cn")
    } else {
        format!("sts.{region}.amazonaws.com")
    }
}

/// `[A-Za-z0-9_]` plus `extra`: the character classes of IAM's `[\w...]` patterns.
pub(super) fn word_or(b: u8, extra: &[u8]) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || extra.contains(&b)
}

pub(super) fn is_valid_session_name(name: &str) -> bool {
    (2..=64).contains(&name.len()) && name.bytes().all(|b| word_or(b, b"+=,.@-"))
}

pub(super) fn is_valid_external_id(id: &str) -> bool {
    (2..=1224).contains(&id.len()) && id.bytes().all(|b| word_or(b, b"+=,.@:/-"))
}

/// `arn:<partition>:iam::<12 digits>:role/<path/><name>`, 20-2048 characters.
pub(super) fn is_valid_role_arn(arn: &str) -> bool {
    if !(20..=2048).contains(&arn.len()) {
        return false;
    }
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(partition), Some("iam"), Some(""), Some(account), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    let partition_ok = partition.starts_with("aws")
        && partition.len() <= 32
        && partition
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !partition.ends_with('-');
    let account_ok = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
    let Some(path_and_name) = resource.strip_prefix("role/") else {
        return false;
    };
    let (path, name) = path_and_name
        .rsplit_once('/')
        .unwrap_or(("", path_and_name));
    let name_ok = (1..=64).contains(&name.len()) && name.bytes().all(|b| word_or(b, b"+=,.@-"));
    // IAM paths are `/` or `/segment/.../` of printable ASCII; the ARN drops the leading `/`.
    let path_ok = path.len() <= 510
        && (path.is_empty()
            || path
                .split('/')
                .all(|s| !s.is_empty() && s.bytes().all(|b| (0x21..=0x7e).contains(&b))));
    partition_ok && account_ok && name_ok && path_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROLE: &str = "arn:aws:iam::123456789012:role/service/lambda-invoker";

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn raw(role_arn: &str) -> RawAssumeRole {
        RawAssumeRole {
            role_arn: Some(role_arn.to_string()),
            sts_cluster: Some("sts".to_string()),
            ..Default::default()
        }
    }

    fn validate(raw: RawAssumeRole) -> Result<AssumeRoleSettings, ConfigError> {
        validate_assume_role(raw, "us-east-1", &no_env)
    }

    fn parse(json: &str) -> Result<RawAssumeRole, ConfigError> {
        let value = serde_json::from_str(json).unwrap();
        let mut fields = Fields::new(
            "credentials.assume_role",
            value,
            "struct RawAssumeRole",
            ASSUME_ROLE_KEYS,
        )?;
        let raw = RawAssumeRole::read(&mut fields);
        fields.finish().map(|()| raw)
    }

    fn from_json(json: &str) -> Result<AssumeRoleSettings, ConfigError> {
        let raw = parse(json).unwrap();
        validate(raw)
    }

    #[test]
    fn defaults() {
        let s = validate(raw(ROLE)).unwrap();
        assert_eq!(s.role_arn, ROLE);
        assert_eq!(s.external_id, None);
        assert_eq!(s.session_name, "proxy-wasm-lambda");
        assert_eq!(s.duration_seconds, 3600);
        assert_eq!(s.region, "us-east-1");
        assert_eq!(s.sts_cluster, "sts");
        assert_eq!(s.sts_endpoint, "sts.us-east-1.amazonaws.com");
        assert_eq!(s.timeout, Duration::from_millis(2000));
        assert_eq!(s.max_wait, Duration::from_millis(3000));
    }

    #[test]
    fn all_fields_from_json() {
        let s = from_json(
            r#"{"role_arn":"arn:aws:iam::123456789012:role/r","external_id":"ext-1:a/b",
                "session_name":"my.session@x","duration_seconds":900,"sts_cluster":"sts_c",
                "sts_endpoint":"STS-FIPS.us-east-1.amazonaws.com:8443","timeout_ms":500,
                "max_wait_ms":60000}"#,
        )
        .unwrap();
        assert_eq!(
            s.external_id.as_ref().map(Secret::expose),
            Some("ext-1:a/b")
        );
        assert_eq!(s.session_name, "my.session@x");
        assert_eq!(s.duration_seconds, 900);
        assert_eq!(s.sts_cluster, "sts_c");
        assert_eq!(s.sts_endpoint, "sts-fips.us-east-1.amazonaws.com:8443");
        assert_eq!(s.timeout, Duration::from_millis(500));
        assert_eq!(s.max_wait, Duration::from_millis(60_000));
    }

    #[test]
    fn unknown_keys_are_rejected() {
        assert!(parse(r#"{"role":"x"}"#).is_err());
    }

    #[test]
    fn china_and_global_endpoints() {
        let s = validate_assume_role(
            raw("arn:aws-cn:iam::123456789012:role/r"),
            "cn-north-1",
            &no_env,
        )
        .unwrap();
        assert_eq!(s.sts_endpoint, "sts.cn-north-1.amazonaws.com.cn");
        assert_eq!(s.region, "cn-north-1");
        let s = validate_assume_role(
            RawAssumeRole {
                sts_endpoint: Some("sts.amazonaws.com".into()),
                ..raw(ROLE)
            },
            "eu-west-1",
            &no_env,
        )
        .unwrap();
        assert_eq!(
            s.region, "us-east-1",
            "the global endpoint signs for us-east-1"
        );
    }

    #[test]
    fn role_arns() {
        for good in [
            "arn:aws:iam::123456789012:role/r",
            "arn:aws-us-gov:iam::123456789012:role/a/b/c/name_with+=,.@-",
            "arn:aws-iso-b:iam::123456789012:role/service-role/x",
        ] {
            assert!(validate(raw(good)).is_ok(), "{good}");
        }
        let long_name = format!("arn:aws:iam::123456789012:role/{}", "n".repeat(65));
        let too_long = format!("arn:aws:iam::123456789012:role/{}/n", "p".repeat(2048));
        for bad in [
            "",
            "role/r",
            "arn:aws:iam::123456789012:user/r",
            "arn:aws:iam::12345678901:role/r",
            "arn:aws:iam::1234567890123:role/r",
            "arn:aws:iam:us-east-1:123456789012:role/r",
            "arn:aws:sts::123456789012:role/r",
            "arn:gcp:iam::123456789012:role/r",
            "arn:aws:iam::123456789012:role/",
            "arn:aws:iam::123456789012:role/a//r",
            "arn:aws:iam::123456789012:role/a b",
            "arn:aws:iam::123456789012:role/r:x",
            long_name.as_str(),
            too_long.as_str(),
        ] {
            let err = validate(raw(bad)).unwrap_err();
            assert_eq!(err.field, "credentials.assume_role.role_arn", "{bad}");
        }
        let err = validate(RawAssumeRole {
            role_arn: None,
            ..raw(ROLE)
        })
        .unwrap_err();
        assert_eq!(err.field, "credentials.assume_role.role_arn");
    }

    #[test]
    fn each_error_names_its_field() {
        let cases = [
            (r#""session_name":"x""#, "session_name"),
            (r#""session_name":"has space""#, "session_name"),
            (r#""session_name":"a/b""#, "session_name"),
            (r#""duration_seconds":899"#, "duration_seconds"),
            (r#""duration_seconds":43201"#, "duration_seconds"),
            (
                r#""sts_endpoint":"https://sts.amazonaws.com/""#,
                "sts_endpoint",
            ),
            (r#""sts_endpoint":"sts.amazonaws.com:0""#, "sts_endpoint"),
            (r#""sts_endpoint":"-bad.example""#, "sts_endpoint"),
            (r#""timeout_ms":0"#, "timeout_ms"),
            (r#""timeout_ms":60001"#, "timeout_ms"),
            (r#""max_wait_ms":0"#, "max_wait_ms"),
            (r#""max_wait_ms":60001"#, "max_wait_ms"),
            (r#""sts_cluster":"""#, "sts_cluster"),
            (r#""external_id":"x""#, "external_id"),
            (r#""external_id_env":"""#, "external_id_env"),
        ];
        for (extra, name) in cases {
            let cluster = if name == "sts_cluster" {
                ""
            } else {
                r#""sts_cluster":"sts","#
            };
            let json = format!(r#"{{"role_arn":"{ROLE}",{cluster}{extra}}}"#);
            let err = from_json(&json).unwrap_err();
            assert_eq!(err.field, field(name), "{json}");
        }
        let err = from_json(&format!(r#"{{"role_arn":"{ROLE}"}}"#)).unwrap_err();
        assert_eq!(err.field, "credentials.assume_role.sts_cluster");
        let err = validate_assume_role(raw(ROLE), "moon", &no_env).unwrap_err();
        assert_eq!(err.field, "region");
    }

    #[test]
    fn external_id_rules_never_print_the_value() {
        for bad in [
            "s3cretValue with space",
            "s3cretValue#",
            &"s3cretValue".repeat(112),
        ] {
            let err = validate(RawAssumeRole {
                external_id: Some(Secret::new(bad)),
                ..raw(ROLE)
            })
            .unwrap_err();
            assert_eq!(err.field, "credentials.assume_role.external_id");
            assert!(!err.to_string().contains("s3cretValue"), "{err}");
            assert!(!format!("{err:?}").contains("s3cretValue"));
        }
        let ok = "a".repeat(1224);
        assert!(validate(RawAssumeRole {
            external_id: Some(Secret::new(ok)),
            ..raw(ROLE)
        })
        .is_ok());
    }

    #[test]
    fn external_id_from_environment() {
        let env = |name: &str| match name {
            "EXT_ID" => Some("s3cret-ext:id".to_string()),
            "BAD_EXT_ID" => Some("s3cret bad".to_string()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        let with_env = |name: &str| {
            validate_assume_role(
                RawAssumeRole {
                    external_id_env: Some(name.to_string()),
                    ..raw(ROLE)
                },
                "us-east-1",
                &env,
            )
        };
        let s = with_env("EXT_ID").unwrap();
        assert_eq!(
            s.external_id.as_ref().map(Secret::expose),
            Some("s3cret-ext:id")
        );
        assert!(
            !format!("{s:?}").contains("s3cret"),
            "Debug redacts the ExternalId"
        );
        for name in ["MISSING", "EMPTY", "BAD_EXT_ID"] {
            let err = with_env(name).unwrap_err();
            assert_eq!(err.field, "credentials.assume_role.external_id_env");
            assert!(err.message.contains(name));
            assert!(!err.to_string().contains("s3cret"), "{err}");
        }
    }

    #[test]
    fn external_id_and_env_are_exclusive() {
        let err = validate(RawAssumeRole {
            external_id: Some(Secret::new("s3cret-ext")),
            external_id_env: Some("EXT_ID".into()),
            ..raw(ROLE)
        })
        .unwrap_err();
        assert_eq!(err.field, "credentials.assume_role.external_id");
        assert!(!err.to_string().contains("s3cret"));
    }
}
