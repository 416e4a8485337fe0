//! AWS credentials: the keys that sign, and the providers that fetch temporary ones
//! (STS AssumeRole and AssumeRoleWithWebIdentity, IMDSv2, the container endpoint) with the cache every worker VM shares.

pub(crate) mod ambient;
pub(crate) mod assume_role;
pub(crate) mod cache;
pub(crate) mod container;
pub(crate) mod container_provider;
pub(crate) mod failure;
pub(crate) mod identity;
pub(crate) mod imds;
pub(crate) mod imds_provider;
pub(crate) mod profiles;
pub(crate) mod provider;
pub(crate) mod source;
pub(crate) mod state;
pub(crate) mod sts;
pub(crate) mod web_identity;
pub(crate) mod web_identity_provider;

pub(crate) use crate::aws::credentials::{
    Credentials, ENV_ACCESS_KEY_ID, ENV_SECRET_ACCESS_KEY, ENV_SESSION_TOKEN,
};
