//! The container credentials endpoint as the AWS SDKs locate it, from the VM environment
//! (`AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`, `…_FULL_URI`, `AWS_CONTAINER_AUTHORIZATION_TOKEN`):
//! see [`crate::credentials::container`] for the rules.

use super::*;
use crate::credentials::container::{
    ContainerSettings, ECS_HOST, ENV_AUTHORIZATION_TOKEN, ENV_AUTHORIZATION_TOKEN_FILE,
    ENV_FULL_URI, ENV_RELATIVE_URI,
};
/// Hosts allowed over plain `http` besides loopback: ECS, and EKS Pod Identity (v4, v6).
pub(super) const LINK_LOCAL_HOSTS: [&str; 3] = [ECS_HOST, "169.254.170.23", "[fd00:ec2::23]"];

/// The endpoint named by the environment, before the cluster and timeout are known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ContainerEndpoint {
    /// The variable it came from (for logs).
    pub variable: &'static str,
    pub uri: String,
    pub authority: String,
    pub path: String,
    pub authorization: Option<Secret>,
}

impl ContainerEndpoint {
    pub(crate) fn with(self, cluster: String, timeout: Duration) -> ContainerSettings {
        ContainerSettings {
            cluster,
            uri: self.uri,
            authority: self.authority,
            path: self.path,
            authorization: self.authorization,
            timeout,
        }
    }
}

/// The endpoint of the VM environment; `None` when neither URI variable is set.
/// `token_from_cluster`: the cluster's upstream filters add the `Authorization` token from
/// `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` (`credentials.container_token_from_cluster`).
pub(crate) fn endpoint_from_env(
    env: &dyn Fn(&str) -> Option<String>,
    token_from_cluster: bool,
) -> Result<Option<ContainerEndpoint>, ConfigError> {
    let var = |name: &str| env(name).filter(|v| !v.is_empty());
    let (variable, uri, authority, path) = if let Some(relative) = var(ENV_RELATIVE_URI) {
        if !relative.starts_with('/') || !is_path(&relative) {
            return Err(ConfigError::new(
                ENV_RELATIVE_URI,
                format!("'{}' must be a path starting with /", shown(&relative)),
            ));
        }
        let uri = format!("http://{ECS_HOST}{relative}");
        (ENV_RELATIVE_URI, uri, ECS_HOST.to_string(), relative)
    } else if let Some(full) = var(ENV_FULL_URI) {
        let (authority, path) = parse_full_uri(&full)
            .map_err(|why| ConfigError::new(ENV_FULL_URI, format!("'{}' {why}", shown(&full))))?;
        (ENV_FULL_URI, full, authority, path)
    } else {
        return Ok(None);
    };
    let authorization = match var(ENV_AUTHORIZATION_TOKEN) {
        Some(_) if token_from_cluster => {
            return Err(ConfigError::new(
                "credentials.container_token_from_cluster",
                format!(
                    "is true, but {ENV_AUTHORIZATION_TOKEN} is set too: the cluster's token \
                     would replace it; remove one"
                ),
            ));
        }
        None if token_from_cluster => None,
        Some(token) => {
            if !is_header_value(&token) || token.trim() != token {
                return Err(ConfigError::new(
                    ENV_AUTHORIZATION_TOKEN,
                    "has control characters or surrounding white space (it is sent as the \
                     Authorization header)",
                ));
            }
            Some(Secret::new(token))
        }
        None if var(ENV_AUTHORIZATION_TOKEN_FILE).is_some() => {
            return Err(ConfigError::new(
                ENV_AUTHORIZATION_TOKEN_FILE,
                format!(
                    "is set, but the Wasm VM cannot read files: let the container cluster's \
                     upstream filters add the token (credential_injector from a file-watched SDS \
                     secret) and set credentials.container_token_from_cluster to true, or give \
                     the file's content as {ENV_AUTHORIZATION_TOKEN} (see examples/eks, \
                     docs/ambient-credentials.md)"
                ),
            ));
        }
        None => None,
    };
    Ok(Some(ContainerEndpoint {
        variable,
        uri,
        authority,
        path,
        authorization,
    }))
}

pub(super) fn shown(value: &str) -> String {
    value.chars().take(200).collect()
}

/// Printable ASCII without spaces: what may go into `:path` unchanged.
pub(super) fn is_path(path: &str) -> bool {
    path.len() <= 2048 && path.bytes().all(|b| b.is_ascii_graphic())
}

/// `http(s)://host[:port][/path]` → (authority, path). Over `http` the host must be a
/// loopback address or one of the ECS/EKS link-local endpoints, as the AWS SDKs require.
pub(super) fn parse_full_uri(uri: &str) -> Result<(String, String), String> {
    let (https, rest) = if let Some(rest) = uri.strip_prefix("http://") {
        (false, rest)
    } else if let Some(rest) = uri.strip_prefix("https://") {
        (true, rest)
    } else {
        return Err("must be an http:// or https:// URI".to_string());
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if !is_path(path) || path.contains('#') {
        return Err("has a path with spaces, control characters or a fragment".to_string());
    }
    let (host, port) = if authority.starts_with('[') {
        match authority.find(']') {
            Some(end) => (&authority[..=end], &authority[end + 1..]),
            None => return Err("has an unclosed [IPv6] host".to_string()),
        }
    } else {
        match authority.find(':') {
            Some(i) => (&authority[..i], &authority[i..]),
            None => (authority, ""),
        }
    };
    if let Some(port) = port.strip_prefix(':') {
        if !super::fields::is_port(port) {
            return Err("has a bad port".to_string());
        }
    } else if !port.is_empty() {
        return Err("has a bad host".to_string());
    }
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
    if !host_ok {
        return Err("has a bad host (no user info, letters, digits, - and . only)".to_string());
    }
    let host_lower = host.to_ascii_lowercase();
    if !https && !is_loopback(&host_lower) && !LINK_LOCAL_HOSTS.contains(&host_lower.as_str()) {
        return Err(format!(
            "over http must name a loopback address or one of {}, as the AWS SDKs require \
             (use https for other hosts)",
            LINK_LOCAL_HOSTS.join(", ")
        ));
    }
    Ok((authority.to_ascii_lowercase(), path.to_string()))
}

pub(super) fn is_loopback(host: &str) -> bool {
    if host == "localhost" || host == "[::1]" {
        return true;
    }
    let octets: Vec<&str> = host.split('.').collect();
    octets.len() == 4
        && octets[0] == "127"
        && octets
            .iter()
            .all(|o| !o.is_empty() && o.len() <= 3 && o.parse::<u8>().is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    fn endpoint(vars: &[(&str, &str)]) -> Result<Option<ContainerEndpoint>, ConfigError> {
        endpoint_from_env(&env_of(vars), false)
    }

    #[test]
    fn relative_uri_is_the_ecs_endpoint_and_wins() {
        let e = endpoint(&[
            (ENV_RELATIVE_URI, "/v2/credentials/5f3a-task"),
            (ENV_FULL_URI, "http://169.254.170.23/v1/credentials"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(e.variable, ENV_RELATIVE_URI);
        assert_eq!(e.authority, "169.254.170.2");
        assert_eq!(e.path, "/v2/credentials/5f3a-task");
        assert_eq!(e.uri, "http://169.254.170.2/v2/credentials/5f3a-task");
        assert_eq!(e.authorization, None);
    }

    #[test]
    fn pod_identity_full_uri_with_token() {
        let e = endpoint(&[
            (ENV_FULL_URI, "http://169.254.170.23/v1/credentials"),
            (ENV_AUTHORIZATION_TOKEN, "eyJhbGciOiJSUzI1NiJ9.pod-token"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(e.authority, "169.254.170.23");
        assert_eq!(e.path, "/v1/credentials");
        let settings = e.with("container".into(), Duration::from_secs(1));
        assert!(!format!("{settings:?}").contains("pod-token"));
        let request = crate::credentials::container::build_request(&settings);
        assert_eq!(request.cluster, "container");
        assert_eq!(request.header(":method"), Some("GET"));
        assert_eq!(request.header(":path"), Some("/v1/credentials"));
        assert_eq!(request.header(":authority"), Some("169.254.170.23"));
        assert_eq!(
            request.header("authorization"),
            Some("eyJhbGciOiJSUzI1NiJ9.pod-token")
        );
        assert!(request.body.is_empty());
    }

    #[test]
    fn allowed_and_refused_full_uris() {
        let good = [
            (
                "http://127.0.0.1:8080/creds?x=1",
                "127.0.0.1:8080",
                "/creds?x=1",
            ),
            ("http://localhost/", "localhost", "/"),
            ("http://[::1]:9/c", "[::1]:9", "/c"),
            (
                "http://[fd00:ec2::23]/v1/credentials",
                "[fd00:ec2::23]",
                "/v1/credentials",
            ),
            ("https://creds.example.com", "creds.example.com", "/"),
            ("http://169.254.170.2/v2/x", "169.254.170.2", "/v2/x"),
        ];
        for (uri, authority, path) in good {
            let e = endpoint(&[(ENV_FULL_URI, uri)]).unwrap().unwrap();
            assert_eq!(
                (e.authority.as_str(), e.path.as_str()),
                (authority, path),
                "{uri}"
            );
        }
        let bad = [
            "http://creds.example.com/",
            "http://169.254.169.254/latest",
            "ftp://127.0.0.1/",
            "127.0.0.1/creds",
            "http://user@127.0.0.1/",
            "http://127.0.0.1:0/",
            "http://127.0.0.1:99999/",
            "http://127.0.0.1:+80/",
            "http://127.0.0.1/a b",
            "http://127.1.1/",
            "http://[::1/",
        ];
        for uri in bad {
            let e = endpoint(&[(ENV_FULL_URI, uri)]).unwrap_err();
            assert_eq!(e.field, ENV_FULL_URI, "{uri}");
        }
        let e = endpoint(&[(ENV_RELATIVE_URI, "v2/credentials")]).unwrap_err();
        assert_eq!(e.field, ENV_RELATIVE_URI);
    }

    #[test]
    fn nothing_set_is_none_and_a_token_file_alone_is_refused() {
        assert_eq!(endpoint(&[]).unwrap(), None);
        assert_eq!(endpoint(&[(ENV_AUTHORIZATION_TOKEN, "t")]).unwrap(), None);
        let e = endpoint(&[
            (ENV_FULL_URI, "http://169.254.170.23/v1/credentials"),
            (
                ENV_AUTHORIZATION_TOKEN_FILE,
                "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount/eks-pod-identity-token",
            ),
        ])
        .unwrap_err();
        assert_eq!(e.field, ENV_AUTHORIZATION_TOKEN_FILE);
        assert!(e.message.contains("docs/ambient-credentials.md"), "{e}");
        // With both, the token is used.
        assert!(endpoint(&[
            (ENV_FULL_URI, "http://169.254.170.23/v1/credentials"),
            (ENV_AUTHORIZATION_TOKEN_FILE, "/f"),
            (ENV_AUTHORIZATION_TOKEN, "tok"),
        ])
        .unwrap()
        .unwrap()
        .authorization
        .is_some());
    }

    #[test]
    fn token_from_the_cluster_takes_the_token_file_and_refuses_a_token_too() {
        let pod_identity = [
            (ENV_FULL_URI, "http://169.254.170.23/v1/credentials"),
            (
                ENV_AUTHORIZATION_TOKEN_FILE,
                "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount/eks-pod-identity-token",
            ),
        ];
        let e = endpoint_from_env(&env_of(&pod_identity), true)
            .unwrap()
            .unwrap();
        assert_eq!(e.authorization, None);
        let request = crate::credentials::container::build_request(
            &e.with("pod_identity_agent".into(), Duration::from_secs(1)),
        );
        assert_eq!(request.header("authorization"), None);
        let mut both = pod_identity.to_vec();
        both.push((ENV_AUTHORIZATION_TOKEN, "tok"));
        let e = endpoint_from_env(&env_of(&both), true).unwrap_err();
        assert_eq!(e.field, "credentials.container_token_from_cluster");
        assert!(!e.to_string().contains("tok'"), "{e}");
    }

    #[test]
    fn token_with_control_characters_is_refused_unprinted() {
        let e = endpoint(&[
            (ENV_FULL_URI, "http://127.0.0.1/c"),
            (ENV_AUTHORIZATION_TOKEN, "SECRETTOKEN\r\nX: y"),
        ])
        .unwrap_err();
        assert_eq!(e.field, ENV_AUTHORIZATION_TOKEN);
        assert!(!e.to_string().contains("SECRETTOKEN"));
    }
}
