//! AWS credentials: the keys that sign, and the providers that fetch temporary ones
//! (STS AssumeRole, IMDSv2, the container endpoint) with the cache every worker VM shares.

pub mod ambient;
pub mod assume_role;
pub mod cache;
pub mod container;
pub mod container_provider;
pub mod failure;
pub mod identity;
pub mod imds;
pub mod imds_provider;
pub mod profiles;
pub mod provider;
pub mod source;
pub mod state;
pub mod sts;

pub use crate::aws::credentials::{
    Credentials, ENV_ACCESS_KEY_ID, ENV_SECRET_ACCESS_KEY, ENV_SESSION_TOKEN,
};
