//! The shared-data key of a credential layer: a digest of every input that decides which
//! credentials come back.
//!
//! Shared data is shared by every plugin configuration with the same `vm_id`, so a key made
//! of non-secret fields alone (role ARN, access key id) lets one configuration sign with
//! credentials another one fetched: a wrong ExternalId, a wrong secret or another container
//! token would be bypassed. Every input, secrets included, goes into a SHA-256 digest
//! (secrets only through it, one-way), so two configurations share a record only when all
//! their inputs are equal, and the key shows nothing of them.

use sha2::{Digest, Sha256};

use crate::credentials::container::ContainerSettings;
use crate::credentials::imds::ImdsSettings;
use crate::credentials::sts::AssumeRoleSettings;
use crate::credentials::web_identity::WebIdentitySettings;
use crate::credentials::Credentials;
use crate::secret::Secret;

/// The prefix of every credential record's key; bumped when the record or the key changes.
const KEY_PREFIX: &str = "proxy-wasm-lambda/credentials/v2";

/// Builds a key from labelled inputs. Each input is length-prefixed, so no two different
/// input lists give the same byte stream.
pub(crate) struct CacheKey {
    kind: &'static str,
    digest: Sha256,
}

impl CacheKey {
    pub(crate) fn new(kind: &'static str) -> Self {
        let mut key = CacheKey {
            kind,
            digest: Sha256::new(),
        };
        key.put("kind", kind.as_bytes());
        key
    }

    fn put(&mut self, label: &str, value: &[u8]) {
        for piece in [label.as_bytes(), value] {
            self.digest.update((piece.len() as u64).to_be_bytes());
            self.digest.update(piece);
        }
    }

    pub(crate) fn text(mut self, label: &str, value: &str) -> Self {
        self.put(label, value.as_bytes());
        self
    }

    /// A secret input: it only ever reaches the digest.
    pub(crate) fn secret(self, label: &str, value: &Secret) -> Self {
        self.text(label, value.expose())
    }

    /// An optional input: absent and present-but-empty differ.
    pub(crate) fn optional_secret(mut self, label: &str, value: Option<&Secret>) -> Self {
        match value {
            Some(value) => self.put(label, &[&[1u8][..], value.expose().as_bytes()].concat()),
            None => self.put(label, &[0]),
        }
        self
    }

    /// The identity of static keys: all three parts.
    pub(crate) fn keys(self, label: &str, keys: &Credentials) -> Self {
        self.text(&format!("{label}.access_key_id"), &keys.access_key_id)
            .secret(
                &format!("{label}.secret_access_key"),
                &keys.secret_access_key,
            )
            .optional_secret(
                &format!("{label}.session_token"),
                keys.session_token.as_ref(),
            )
    }

    /// `proxy-wasm-lambda/credentials/v2/<kind>/<64 hex digits>`.
    pub(crate) fn finish(self) -> String {
        let hash = self.digest.finalize();
        let mut key = String::with_capacity(KEY_PREFIX.len() + self.kind.len() + 66);
        key.push_str(KEY_PREFIX);
        key.push('/');
        key.push_str(self.kind);
        key.push('/');
        crate::hex::push_hex(&mut key, &hash);
        key
    }
}

/// The key of the instance role's credentials: which IMDS is asked.
pub(crate) fn imds_key(settings: &ImdsSettings) -> String {
    CacheKey::new("imds")
        .text("cluster", &settings.cluster)
        .text("endpoint", &settings.endpoint)
        .finish()
}

/// The key of the container endpoint's credentials: on EKS Pod Identity the URI is the same
/// for every pod, and only the authorization token selects the role.
pub(crate) fn container_key(settings: &ContainerSettings) -> String {
    CacheKey::new("container")
        .text("cluster", &settings.cluster)
        .text("authority", &settings.authority)
        .text("path", &settings.path)
        .optional_secret("authorization", settings.authorization.as_ref())
        .finish()
}

/// The key of IRSA's credentials: the token is the one the cluster adds, so the cluster
/// names it; the role and session are what is asked for.
pub(crate) fn web_identity_key(settings: &WebIdentitySettings) -> String {
    CacheKey::new("web_identity")
        .text("cluster", &settings.cluster)
        .text("endpoint", &settings.endpoint)
        .text("role_arn", &settings.role_arn)
        .text("session_name", &settings.session_name)
        .finish()
}

/// What an AssumeRole is signed with: static keys, or the layer under it (role chaining),
/// named by that layer's own key.
pub(crate) enum AssumeRoleSource<'a> {
    Keys(&'a Credentials),
    Layer(&'a str),
}

/// The key of an AssumeRole's credentials: the source identity, and everything sent to STS
/// or deciding where it goes.
pub(crate) fn assume_role_key(
    settings: &AssumeRoleSettings,
    source: AssumeRoleSource<'_>,
) -> String {
    let key = CacheKey::new("sts");
    let key = match source {
        AssumeRoleSource::Keys(keys) => key.text("source", "keys").keys("source", keys),
        AssumeRoleSource::Layer(layer) => key.text("source", "layer").text("source.key", layer),
    };
    key.text("role_arn", &settings.role_arn)
        .optional_secret("external_id", settings.external_id.as_ref())
        .text("session_name", &settings.session_name)
        .text("duration_seconds", &settings.duration_seconds.to_string())
        .text("region", &settings.region)
        .text("sts_endpoint", &settings.sts_endpoint)
        .text("sts_cluster", &settings.sts_cluster)
        .finish()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn keys(id: &str, secret: &str, token: Option<&str>) -> Credentials {
        Credentials {
            access_key_id: id.into(),
            secret_access_key: Secret::new(secret),
            session_token: token.map(Secret::new),
        }
    }

    fn settings() -> AssumeRoleSettings {
        AssumeRoleSettings {
            role_arn: "arn:aws:iam::123456789012:role/invoker".into(),
            external_id: Some(Secret::new("tenant-a-external-id")),
            session_name: "proxy-wasm-lambda".into(),
            duration_seconds: 3600,
            region: "us-east-1".into(),
            sts_cluster: "sts".into(),
            sts_endpoint: "sts.us-east-1.amazonaws.com".into(),
            timeout: Duration::from_secs(2),
            max_wait: Duration::from_secs(3),
        }
    }

    fn source() -> Credentials {
        keys("AKIDSOURCE000001", "source-secret-key", None)
    }

    fn sts_key(settings: &AssumeRoleSettings, source: &Credentials) -> String {
        assume_role_key(settings, AssumeRoleSource::Keys(source))
    }

    #[test]
    fn equal_inputs_share_a_key() {
        assert_eq!(
            sts_key(&settings(), &source()),
            sts_key(&settings(), &source())
        );
    }

    #[test]
    fn every_assume_role_input_changes_the_key() {
        let base = sts_key(&settings(), &source());
        let changed: Vec<(&str, AssumeRoleSettings)> = vec![
            (
                "role_arn",
                AssumeRoleSettings {
                    role_arn: "arn:aws:iam::123456789012:role/other".into(),
                    ..settings()
                },
            ),
            (
                "external_id",
                AssumeRoleSettings {
                    external_id: Some(Secret::new("tenant-b-external-id")),
                    ..settings()
                },
            ),
            (
                "no external_id",
                AssumeRoleSettings {
                    external_id: None,
                    ..settings()
                },
            ),
            (
                "empty external_id",
                AssumeRoleSettings {
                    external_id: Some(Secret::new("")),
                    ..settings()
                },
            ),
            (
                "session_name",
                AssumeRoleSettings {
                    session_name: "other".into(),
                    ..settings()
                },
            ),
            (
                "duration_seconds",
                AssumeRoleSettings {
                    duration_seconds: 900,
                    ..settings()
                },
            ),
            (
                "region",
                AssumeRoleSettings {
                    region: "eu-west-1".into(),
                    ..settings()
                },
            ),
            (
                "sts_endpoint",
                AssumeRoleSettings {
                    sts_endpoint: "sts.amazonaws.com".into(),
                    ..settings()
                },
            ),
            (
                "sts_cluster",
                AssumeRoleSettings {
                    sts_cluster: "sts-b".into(),
                    ..settings()
                },
            ),
        ];
        for (what, settings) in changed {
            assert_ne!(sts_key(&settings, &source()), base, "{what}");
        }
        for (what, other) in [
            (
                "access key id",
                keys("AKIDSOURCE000002", "source-secret-key", None),
            ),
            ("secret", keys("AKIDSOURCE000001", "wrong-secret-key", None)),
            (
                "token",
                keys("AKIDSOURCE000001", "source-secret-key", Some("t")),
            ),
        ] {
            assert_ne!(sts_key(&settings(), &other), base, "{what}");
        }
        let chained = assume_role_key(&settings(), AssumeRoleSource::Layer("some-layer"));
        assert_ne!(chained, base);
        assert_ne!(
            chained,
            assume_role_key(&settings(), AssumeRoleSource::Layer("another-layer"))
        );
    }

    #[test]
    fn timeouts_do_not_split_the_cache() {
        let other = AssumeRoleSettings {
            timeout: Duration::from_secs(9),
            max_wait: Duration::from_secs(9),
            ..settings()
        };
        assert_eq!(sts_key(&other, &source()), sts_key(&settings(), &source()));
    }

    #[test]
    fn container_token_selects_the_record() {
        let settings = |token: Option<&str>| ContainerSettings {
            cluster: "pod-identity".into(),
            uri: "http://169.254.170.23/v1/credentials".into(),
            authority: "169.254.170.23".into(),
            path: "/v1/credentials".into(),
            authorization: token.map(Secret::new),
            timeout: Duration::from_secs(1),
        };
        let a = container_key(&settings(Some("token-a")));
        assert_ne!(a, container_key(&settings(Some("token-b"))));
        assert_ne!(a, container_key(&settings(None)));
        assert_eq!(a, container_key(&settings(Some("token-a"))));
        let other_cluster = ContainerSettings {
            cluster: "other".into(),
            ..settings(Some("token-a"))
        };
        assert_ne!(a, container_key(&other_cluster));
    }

    #[test]
    fn imds_key_follows_cluster_and_endpoint() {
        let settings = |cluster: &str, endpoint: &str| ImdsSettings {
            cluster: cluster.into(),
            endpoint: endpoint.into(),
            token_ttl_seconds: 21_600,
            timeout: Duration::from_secs(1),
        };
        let base = imds_key(&settings("imds", "169.254.169.254"));
        assert_ne!(base, imds_key(&settings("imds-b", "169.254.169.254")));
        assert_ne!(base, imds_key(&settings("imds", "[fd00:ec2::254]")));
    }

    #[test]
    fn keys_show_no_input() {
        let key = sts_key(&settings(), &source());
        for input in [
            "source-secret-key",
            "tenant-a-external-id",
            "AKIDSOURCE000001",
            "invoker",
        ] {
            assert!(!key.contains(input), "{key} shows {input}");
        }
        assert!(key.starts_with("proxy-wasm-lambda/credentials/v2/sts/"));
        assert_eq!(
            key.len(),
            "proxy-wasm-lambda/credentials/v2/sts/".len() + 64
        );
    }

    #[test]
    fn labels_keep_fields_apart() {
        // The same bytes moved from one field to the next give another key.
        let a = CacheKey::new("t").text("a", "xy").text("b", "").finish();
        let b = CacheKey::new("t").text("a", "x").text("b", "y").finish();
        assert_ne!(a, b);
    }
}
