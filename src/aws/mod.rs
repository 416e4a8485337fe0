//! AWS building blocks without request logic: the keys, ARNs, SigV4 signing.

pub mod arn;
pub mod credentials;
pub mod sigv4;
pub mod xml;
