//! AWS building blocks without request logic: the keys, ARNs, SigV4 signing.

pub(crate) mod arn;
pub(crate) mod credentials;
pub(crate) mod sigv4;
pub(crate) mod xml;
