//! `credentials` and `credential_profiles` (and the VM environment) into the
//! [`CredentialSource`] of each profile, in the AWS SDKs' chain order.

use super::*;
pub(super) const CREDENTIALS_KEYS: &[&str] = &[
    "access_key_id",
    "secret_access_key",
    "session_token",
    "assume_role",
    "source",
    "imds_cluster",
    "imds_endpoint",
    "imds_token_ttl_seconds",
    "container_cluster",
    "container_token_from_cluster",
    "web_identity_cluster",
    "web_identity_role_arn",
    "web_identity_session_name",
    "web_identity_endpoint",
    "timeout_ms",
    "max_wait_ms",
];

/// `credentials` as written in the plugin configuration.
#[derive(Default)]
pub(super) struct RawCredentials {
    access_key_id: Option<String>,
    secret_access_key: Option<Secret>,
    session_token: Option<Secret>,
    assume_role: Option<RawAssumeRole>,
    source: Option<String>,
    imds_cluster: Option<String>,
    imds_endpoint: Option<String>,
    imds_token_ttl_seconds: Option<u64>,
    container_cluster: Option<String>,
    container_token_from_cluster: Option<bool>,
    pub(super) web_identity_cluster: Option<String>,
    pub(super) web_identity_role_arn: Option<String>,
    pub(super) web_identity_session_name: Option<String>,
    pub(super) web_identity_endpoint: Option<String>,
    timeout_ms: Option<u64>,
    max_wait_ms: Option<u64>,
}

impl RawCredentials {
    pub(super) fn read(f: &mut Fields) -> RawCredentials {
        RawCredentials {
            access_key_id: f.string("access_key_id"),
            secret_access_key: f.secret("secret_access_key"),
            session_token: f.secret("session_token"),
            assume_role: f.object(
                "assume_role",
                "struct RawAssumeRole",
                ASSUME_ROLE_KEYS,
                RawAssumeRole::read,
            ),
            source: f.string("source"),
            imds_cluster: f.string("imds_cluster"),
            imds_endpoint: f.string("imds_endpoint"),
            imds_token_ttl_seconds: f.u64("imds_token_ttl_seconds"),
            container_cluster: f.string("container_cluster"),
            container_token_from_cluster: f.bool("container_token_from_cluster"),
            web_identity_cluster: f.string("web_identity_cluster"),
            web_identity_role_arn: f.string("web_identity_role_arn"),
            web_identity_session_name: f.string("web_identity_session_name"),
            web_identity_endpoint: f.string("web_identity_endpoint"),
            timeout_ms: f.u64("timeout_ms"),
            max_wait_ms: f.u64("max_wait_ms"),
        }
    }
}

/// A profile name: it appears in route metadata, logs and metric names (so no dots).
pub(crate) fn is_profile_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `credential_profiles`: each member validated as `credentials` is, in name order.
pub(super) fn read_profiles(
    value: Value,
    region: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(CredentialProfile, Option<String>)>, ConfigError> {
    const FIELD: &str = "credential_profiles";
    let Value::Object(members) = value else {
        return Err(ConfigError::new(
            FIELD,
            format!(
                "{}: a map of profile name to credentials object",
                invalid_type(&value, "a map")
            ),
        ));
    };
    if members.len() > MAX_CREDENTIAL_PROFILES {
        return Err(ConfigError::new(
            FIELD,
            format!(
                "has {} profiles, more than {MAX_CREDENTIAL_PROFILES}",
                members.len()
            ),
        ));
    }
    let mut profiles = Vec::with_capacity(members.len());
    for (name, value) in members {
        if !is_profile_name(&name) {
            let shown = if name.len() <= 64 && !name.chars().any(char::is_control) {
                format!("'{name}'")
            } else {
                "a name".to_string()
            };
            return Err(ConfigError::new(
                FIELD,
                format!("{shown} is not a profile name (1-64 characters of [A-Za-z0-9_-])"),
            ));
        }
        if name == DEFAULT_PROFILE {
            return Err(ConfigError::new(
                &format!("{FIELD}.{name}"),
                "'default' is the name of the top-level credentials: give them as \
                 credentials, or choose another name",
            ));
        }
        let path = format!("{FIELD}.{name}");
        let mut fields = Fields::new(&path, value, "struct RawCredentials", CREDENTIALS_KEYS)?;
        let raw = RawCredentials::read(&mut fields);
        fields.finish()?;
        // Validated as `credentials` is; the errors then name the profile's fields.
        let loaded = load_credentials(Some(raw), region, env).map_err(|e| within(e, &path))?;
        profiles.push((
            CredentialProfile {
                name,
                source: loaded.source,
                origin: loaded.origin,
            },
            loaded.warning.map(|w| within_text(&w, &path)),
        ));
    }
    Ok(profiles)
}

/// An error of `credentials` as the same error of the profile at `path`.
pub(super) fn within(error: ConfigError, path: &str) -> ConfigError {
    let field = if error.field == "credentials" {
        path.to_string()
    } else {
        within_text(&error.field, path)
    };
    ConfigError {
        field,
        message: within_text(&error.message, path),
    }
}

pub(super) fn within_text(text: &str, path: &str) -> String {
    text.replace("credentials.", &format!("{path}."))
}

/// One validated credentials profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialProfile {
    /// `default` for the top-level `credentials`.
    pub name: String,
    pub source: CredentialSource,
    /// Where the credentials come from, for the one log line at start (no secret):
    /// e.g. `chain: container (AWS_CONTAINER_CREDENTIALS_FULL_URI http://…)`.
    pub origin: String,
}

/// The most `credential_profiles` one configuration may have.
pub(crate) const MAX_CREDENTIAL_PROFILES: usize = 256;

/// The source names `credentials.source` accepts.
pub(super) const SOURCES: &str = "imds, container, web_identity, chain";
pub(super) const DEFAULT_AMBIENT_TIMEOUT_MS: u64 = 1000;
pub(super) const DEFAULT_AMBIENT_MAX_WAIT_MS: u64 = 3000;
pub(super) const MAX_AMBIENT_MS: u64 = 60_000;

/// The base credentials `credentials.source` (or its absence) chose, before `assume_role`.
pub(super) enum Base {
    Static(Credentials),
    Ambient(AmbientProvider),
}

/// Validated credentials, where they come from, and what to warn about once.
pub(super) struct LoadedCredentials {
    pub(super) source: CredentialSource,
    pub(super) origin: String,
    pub(super) warning: Option<String>,
}

pub(super) fn load_credentials(
    raw: Option<RawCredentials>,
    region: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<LoadedCredentials, ConfigError> {
    let mut raw = raw.unwrap_or_default();
    let inline = raw.access_key_id.is_some()
        || raw.secret_access_key.is_some()
        || raw.session_token.is_some();
    let keys = || {
        inline.then(|| {
            (
                raw.access_key_id.clone(),
                raw.secret_access_key.clone(),
                raw.session_token.clone(),
            )
        })
    };
    let source = raw.source.take();
    check_source_keys(&raw, source.as_deref())?;
    let timeout = Duration::from_millis(ambient_ms(
        raw.timeout_ms,
        DEFAULT_AMBIENT_TIMEOUT_MS,
        "timeout_ms",
    )?);
    let max_wait = Duration::from_millis(ambient_ms(
        raw.max_wait_ms,
        DEFAULT_AMBIENT_MAX_WAIT_MS,
        "max_wait_ms",
    )?);
    let (base, origin) = match source.as_deref() {
        None => {
            let from_config = inline;
            let credentials = static_credentials(keys(), env)?;
            let origin = static_origin(from_config, &credentials);
            (Base::Static(credentials), origin)
        }
        Some(named @ ("imds" | "container" | "web_identity")) => {
            if inline {
                return Err(ConfigError::new(
                    "credentials.access_key_id",
                    format!(
                        "inline keys conflict with credentials.source '{named}': remove one or \
                         the other"
                    ),
                ));
            }
            let provider = match named {
                "imds" => AmbientProvider::Imds(imds_settings(&raw, timeout)?),
                "container" => container_provider(&raw, timeout, env, "'container'")?,
                _ => {
                    AmbientProvider::WebIdentity(web_identity_settings(&raw, region, timeout, env)?)
                }
            };
            let origin = ambient_origin(&provider);
            (Base::Ambient(provider), origin)
        }
        Some("chain") => chain(&raw, inline, keys(), region, timeout, env)?,
        Some(other) => {
            return Err(ConfigError::new(
                "credentials.source",
                format!("'{other}' must be one of {SOURCES}"),
            ))
        }
    };
    let assume_role = raw
        .assume_role
        .take()
        .map(|raw| validate_assume_role(raw, region, env))
        .transpose()?;
    let origin = match &assume_role {
        Some(settings) => format!("{origin}, then AssumeRole {}", settings.role_arn),
        None => origin,
    };
    let source = match (base, assume_role) {
        (Base::Static(credentials), None) => CredentialSource::Static(credentials),
        (Base::Static(source), Some(settings)) => CredentialSource::AssumeRole { source, settings },
        (Base::Ambient(provider), assume_role) => CredentialSource::Ambient {
            max_wait: assume_role.as_ref().map_or(max_wait, |s| s.max_wait),
            provider,
            assume_role,
        },
    };
    let warning = match &source {
        CredentialSource::Static(keys) | CredentialSource::AssumeRole { source: keys, .. } => {
            unusual_key_id(keys, inline)
        }
        CredentialSource::Ambient { .. } => None,
    };
    Ok(LoadedCredentials {
        source,
        origin,
        warning,
    })
}

/// Keys that only some sources use are errors with the others.
fn check_source_keys(raw: &RawCredentials, source: Option<&str>) -> Result<(), ConfigError> {
    let uses_imds = matches!(source, Some("imds" | "chain"));
    let uses_container = matches!(source, Some("container" | "chain"));
    let uses_web_identity = matches!(source, Some("web_identity" | "chain"));
    let ambient = matches!(
        source,
        Some("imds" | "container" | "web_identity" | "chain")
    );
    let unused = [
        ("imds_cluster", raw.imds_cluster.is_some() && !uses_imds),
        ("imds_endpoint", raw.imds_endpoint.is_some() && !uses_imds),
        (
            "imds_token_ttl_seconds",
            raw.imds_token_ttl_seconds.is_some() && !uses_imds,
        ),
        (
            "container_cluster",
            raw.container_cluster.is_some() && !uses_container,
        ),
        (
            "container_token_from_cluster",
            raw.container_token_from_cluster.is_some() && !uses_container,
        ),
        (
            "web_identity_cluster",
            raw.web_identity_cluster.is_some() && !uses_web_identity,
        ),
        (
            "web_identity_role_arn",
            raw.web_identity_role_arn.is_some() && !uses_web_identity,
        ),
        (
            "web_identity_session_name",
            raw.web_identity_session_name.is_some() && !uses_web_identity,
        ),
        (
            "web_identity_endpoint",
            raw.web_identity_endpoint.is_some() && !uses_web_identity,
        ),
        ("timeout_ms", raw.timeout_ms.is_some() && !ambient),
        ("max_wait_ms", raw.max_wait_ms.is_some() && !ambient),
    ];
    match unused.iter().find(|(_, unused)| *unused) {
        Some((key, _)) => Err(ConfigError::new(
            &format!("credentials.{key}"),
            match source {
                None => {
                    format!("applies only with credentials.source ({SOURCES})")
                }
                Some(source) => format!("does not apply to credentials.source '{source}'"),
            },
        )),
        None => Ok(()),
    }
}

/// A warning for a key id that AWS would not have issued (fine for a local stand-in such
/// as LocalStack, whose default keys are `test`/`test`).
pub(super) fn unusual_key_id(keys: &Credentials, inline: bool) -> Option<String> {
    let id = &keys.access_key_id;
    let aws_like = (16..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    (!aws_like).then(|| {
        format!(
            "{} '{id}' does not look like an AWS access key id (16-128 upper-case letters and \
             digits); it is used as given (fine for a local stand-in such as LocalStack)",
            if inline {
                "credentials.access_key_id"
            } else {
                ENV_ACCESS_KEY_ID
            }
        )
    })
}

pub(super) fn ambient_ms(value: Option<u64>, default: u64, name: &str) -> Result<u64, ConfigError> {
    let ms = value.unwrap_or(default);
    if (1..=MAX_AMBIENT_MS).contains(&ms) {
        Ok(ms)
    } else {
        Err(ConfigError::new(
            &format!("credentials.{name}"),
            format!("{ms} must be between 1 and {MAX_AMBIENT_MS}"),
        ))
    }
}

pub(super) fn static_origin(from_config: bool, credentials: &Credentials) -> String {
    if from_config {
        format!("inline keys {}", credentials.access_key_id)
    } else {
        format!(
            "environment {ENV_ACCESS_KEY_ID} {}",
            credentials.access_key_id
        )
    }
}

pub(super) fn ambient_origin(provider: &AmbientProvider) -> String {
    match provider {
        AmbientProvider::Imds(s) => format!(
            "imds (IMDSv2 through cluster '{}', Host {})",
            s.cluster, s.endpoint
        ),
        AmbientProvider::Container(s) => {
            format!("container ({} through cluster '{}')", s.uri, s.cluster)
        }
        AmbientProvider::WebIdentity(s) => format!(
            "web_identity (AssumeRoleWithWebIdentity {} through cluster '{}', Host {})",
            s.role_arn, s.cluster, s.endpoint
        ),
    }
}

/// The AWS SDKs' order: inline keys, the environment's keys, web identity (when the
/// environment has `AWS_ROLE_ARN` and `AWS_WEB_IDENTITY_TOKEN_FILE`), the container endpoint
/// (when the environment names one), the instance role.
pub(super) fn chain(
    raw: &RawCredentials,
    inline: bool,
    keys: Option<InlineKeys>,
    region: &str,
    timeout: Duration,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Base, String), ConfigError> {
    let set = |name: &str| env(name).is_some_and(|v| !v.is_empty());
    let chosen = |base: Base, origin: String| Ok((base, format!("chain: {origin}")));
    if inline || set(ENV_ACCESS_KEY_ID) || set(ENV_SECRET_ACCESS_KEY) {
        let credentials = static_credentials(keys, env)?;
        let origin = static_origin(inline, &credentials);
        return chosen(Base::Static(credentials), origin);
    }
    if web_identity_in_env(env) {
        let settings = web_identity_settings(raw, region, timeout, env).map_err(|e| {
            if e.field == "credentials.web_identity_cluster" && raw.web_identity_cluster.is_none() {
                ConfigError::new(
                    "credentials.web_identity_cluster",
                    "is required: credentials.source 'chain' found AWS_ROLE_ARN and \
                     AWS_WEB_IDENTITY_TOKEN_FILE in the environment (IRSA), so it uses web \
                     identity: name the cluster that reaches STS and adds the token (examples/eks)",
                )
            } else {
                e
            }
        })?;
        let provider = AmbientProvider::WebIdentity(settings);
        let origin = ambient_origin(&provider);
        return chosen(Base::Ambient(provider), origin);
    }
    if set(ENV_RELATIVE_URI) || set(ENV_FULL_URI) {
        let provider = container_provider(raw, timeout, env, "'chain' (it chose container)")?;
        let origin = ambient_origin(&provider);
        return chosen(Base::Ambient(provider), origin);
    }
    let provider = AmbientProvider::Imds(imds_settings(raw, timeout).map_err(|e| {
        if e.field == "credentials.imds_cluster" && raw.imds_cluster.is_none() {
            ConfigError::new(
                "credentials.imds_cluster",
                "is required: credentials.source 'chain' found no keys and no container \
                 endpoint in the environment, so it uses the instance role (IMDS)",
            )
        } else {
            e
        }
    })?);
    let origin = ambient_origin(&provider);
    chosen(Base::Ambient(provider), origin)
}

pub(super) fn imds_settings(
    raw: &RawCredentials,
    timeout: Duration,
) -> Result<ImdsSettings, ConfigError> {
    let cluster = cluster_name(
        raw.imds_cluster.as_ref(),
        "credentials.imds_cluster",
        "the instance metadata service (169.254.169.254:80)",
    )?;
    let endpoint = match &raw.imds_endpoint {
        Some(endpoint) => validate_host(endpoint, "credentials.imds_endpoint", IMDS_ENDPOINT)?,
        None => IMDS_ENDPOINT.to_string(),
    };
    let ttl = raw
        .imds_token_ttl_seconds
        .unwrap_or(u64::from(DEFAULT_TOKEN_TTL_SECONDS));
    let token_ttl_seconds = u32::try_from(ttl)
        .ok()
        .filter(|t| (1..=MAX_TOKEN_TTL_SECONDS).contains(t))
        .ok_or_else(|| {
            ConfigError::new(
                "credentials.imds_token_ttl_seconds",
                format!("{ttl} must be between 1 and {MAX_TOKEN_TTL_SECONDS}"),
            )
        })?;
    Ok(ImdsSettings {
        cluster,
        endpoint,
        token_ttl_seconds,
        timeout,
    })
}

pub(super) fn container_provider(
    raw: &RawCredentials,
    timeout: Duration,
    env: &dyn Fn(&str) -> Option<String>,
    source: &str,
) -> Result<AmbientProvider, ConfigError> {
    let token_from_cluster = raw.container_token_from_cluster.unwrap_or(false);
    let endpoint = endpoint_from_env(env, token_from_cluster)?.ok_or_else(|| {
        ConfigError::new(
            "credentials.source",
            format!(
                "{source} needs {ENV_RELATIVE_URI} or {ENV_FULL_URI} in \
                 vm_config.environment_variables, and neither is set"
            ),
        )
    })?;
    let cluster = cluster_name(
        raw.container_cluster.as_ref(),
        "credentials.container_cluster",
        &format!("the container credentials endpoint ({})", endpoint.uri),
    )?;
    Ok(AmbientProvider::Container(endpoint.with(cluster, timeout)))
}

pub(super) type InlineKeys = (Option<String>, Option<Secret>, Option<Secret>);

/// Inline keys when given, else the VM environment.
pub(super) fn static_credentials(
    inline: Option<InlineKeys>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Credentials, ConfigError> {
    let non_empty = |v: Option<String>| v.filter(|s| !s.is_empty());
    let from_config = inline.is_some();
    let (access_key_id, secret_access_key, session_token) = match inline {
        Some(keys) => keys,
        None => (
            non_empty(env(ENV_ACCESS_KEY_ID)),
            non_empty(env(ENV_SECRET_ACCESS_KEY)).map(Secret::new),
            non_empty(env(ENV_SESSION_TOKEN)).map(Secret::new),
        ),
    };
    let missing = || {
        ConfigError::new(
            "credentials",
            "no credentials: set credentials.access_key_id and credentials.secret_access_key, or \
             AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in vm_config.environment_variables, or \
             choose credentials.source (imds, container, web_identity, chain)",
        )
    };
    let access_key_id = access_key_id.ok_or_else(missing)?;
    let secret_access_key = secret_access_key.ok_or_else(missing)?;
    // Any key id the signature can carry: the AWS SDKs accept any string, and local
    // stand-ins use their own (LocalStack: `test`). It goes into the Authorization header's
    // `Credential=<id>/<date>/…`, so no `/`, `,`, space or control character.
    let key_id_ok = (1..=128).contains(&access_key_id.len())
        && access_key_id
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b',');
    if !key_id_ok {
        let shown = if access_key_id.len() <= 128 && is_header_value(&access_key_id) {
            format!("'{access_key_id}'")
        } else {
            "the value".to_string()
        };
        // The key id is not secret; printing it helps find the wrong one.
        return Err(ConfigError::new(
            if from_config {
                "credentials.access_key_id"
            } else {
                ENV_ACCESS_KEY_ID
            },
            format!(
                "{shown} is not an access key id (1-128 printable ASCII characters, no '/', ',' \
                 or space)"
            ),
        ));
    }
    if secret_access_key.is_empty() {
        return Err(ConfigError::new(
            "credentials.secret_access_key",
            "is empty",
        ));
    }
    if session_token
        .as_ref()
        .is_some_and(|t| !is_header_value(t.expose()))
    {
        // The token is secret: the message names the problem, not the value.
        return Err(ConfigError::new(
            if from_config {
                "credentials.session_token"
            } else {
                ENV_SESSION_TOKEN
            },
            "has control characters (it is sent as the x-amz-security-token header)",
        ));
    }
    Ok(Credentials {
        access_key_id,
        secret_access_key,
        session_token: session_token.filter(|t| !t.is_empty()),
    })
}
