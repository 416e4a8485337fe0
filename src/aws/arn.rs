//! Lambda function identifiers: a name, a partial ARN (`123456789012:function:f`) or a
//! full ARN (`arn:aws:lambda:us-east-1:123456789012:function:f`), each with an optional
//! `:qualifier`.

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionId {
    /// What goes into the Invoke path (before percent-encoding), without the qualifier.
    pub identifier: String,
    /// The function's own name.
    pub name: String,
    pub qualifier: Option<String>,
    /// The region named by a full ARN.
    pub region: Option<String>,
    /// The partition named by a full ARN (`aws`, `aws-cn`, …).
    pub partition: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArnError {
    Empty,
    TooLong,
    BadArn(&'static str),
    BadName,
    BadQualifier,
}

impl fmt::Display for ArnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArnError::Empty => f.write_str("is empty"),
            ArnError::TooLong => f.write_str("is longer than 256 characters"),
            ArnError::BadArn(what) => write!(f, "is not a Lambda function ARN: {what}"),
            ArnError::BadName => {
                f.write_str("function name must be 1-64 characters of [A-Za-z0-9_-]")
            }
            ArnError::BadQualifier => f.write_str(
                "qualifier must be $LATEST or 1-128 characters of [A-Za-z0-9_-] (version or alias)",
            ),
        }
    }
}

pub fn is_valid_function_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub fn is_valid_qualifier(qualifier: &str) -> bool {
    qualifier == "$LATEST"
        || qualifier == "$LATEST.PUBLISHED"
        || ((1..=128).contains(&qualifier.len())
            && qualifier
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
}

pub fn is_valid_region(region: &str) -> bool {
    // e.g. us-east-1, us-gov-west-1, cn-north-1, ap-southeast-5, eusc-de-east-1
    let parts: Vec<&str> = region.split('-').collect();
    parts.len() >= 3
        && region.len() <= 32
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
        && parts
            .last()
            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
}

fn is_account_id(account: &str) -> bool {
    account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())
}

fn is_partition(partition: &str) -> bool {
    partition.starts_with("aws")
        && partition
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'-')
}

fn parse_qualifier(qualifier: Option<&str>) -> Result<Option<String>, ArnError> {
    match qualifier {
        None => Ok(None),
        Some(q) if is_valid_qualifier(q) => Ok(Some(q.to_string())),
        Some(_) => Err(ArnError::BadQualifier),
    }
}

impl FunctionId {
    pub fn parse(input: &str) -> Result<FunctionId, ArnError> {
        if input.is_empty() {
            return Err(ArnError::Empty);
        }
        if input.len() > 256 {
            return Err(ArnError::TooLong);
        }
        let parts: Vec<&str> = input.split(':').collect();
        if parts[0] == "arn" {
            // arn:partition:lambda:region:account:function:name[:qualifier]
            if !(7..=8).contains(&parts.len()) {
                return Err(ArnError::BadArn(
                    "expected arn:<partition>:lambda:<region>:<account>:function:<name>[:<qualifier>]",
                ));
            }
            if !is_partition(parts[1]) {
                return Err(ArnError::BadArn("bad partition"));
            }
            if parts[2] != "lambda" {
                return Err(ArnError::BadArn("service is not lambda"));
            }
            if !is_valid_region(parts[3]) {
                return Err(ArnError::BadArn("bad region"));
            }
            if !is_account_id(parts[4]) {
                return Err(ArnError::BadArn("account must be 12 digits"));
            }
            if parts[5] != "function" {
                return Err(ArnError::BadArn("resource type is not function"));
            }
            if !is_valid_function_name(parts[6]) {
                return Err(ArnError::BadName);
            }
            return Ok(FunctionId {
                identifier: parts[..7].join(":"),
                name: parts[6].to_string(),
                qualifier: parse_qualifier(parts.get(7).copied())?,
                region: Some(parts[3].to_string()),
                partition: Some(parts[1].to_string()),
            });
        }
        if parts.len() >= 3 && parts[1] == "function" {
            // account:function:name[:qualifier]
            if parts.len() > 4 || !is_account_id(parts[0]) {
                return Err(ArnError::BadArn(
                    "expected <account>:function:<name>[:<qualifier>]",
                ));
            }
            if !is_valid_function_name(parts[2]) {
                return Err(ArnError::BadName);
            }
            return Ok(FunctionId {
                identifier: parts[..3].join(":"),
                name: parts[2].to_string(),
                qualifier: parse_qualifier(parts.get(3).copied())?,
                region: None,
                partition: None,
            });
        }
        // name[:qualifier]
        if parts.len() > 2 {
            return Err(ArnError::BadArn(
                "expected a name, <account>:function:<name> or a full ARN",
            ));
        }
        if !is_valid_function_name(parts[0]) {
            return Err(ArnError::BadName);
        }
        Ok(FunctionId {
            identifier: parts[0].to_string(),
            name: parts[0].to_string(),
            qualifier: parse_qualifier(parts.get(1).copied())?,
            region: None,
            partition: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_name() {
        let f = FunctionId::parse("my-fn_1").unwrap();
        assert_eq!(f.identifier, "my-fn_1");
        assert_eq!(f.qualifier, None);
        assert_eq!(f.region, None);
    }

    #[test]
    fn name_with_qualifier() {
        let f = FunctionId::parse("my-fn:live").unwrap();
        assert_eq!(f.identifier, "my-fn");
        assert_eq!(f.qualifier.as_deref(), Some("live"));
    }

    #[test]
    fn full_arn_carries_region_and_qualifier() {
        let f =
            FunctionId::parse("arn:aws:lambda:eu-west-1:123456789012:function:f:$LATEST").unwrap();
        assert_eq!(
            f.identifier,
            "arn:aws:lambda:eu-west-1:123456789012:function:f"
        );
        assert_eq!(f.name, "f");
        assert_eq!(f.qualifier.as_deref(), Some("$LATEST"));
        assert_eq!(f.region.as_deref(), Some("eu-west-1"));
        assert_eq!(f.partition.as_deref(), Some("aws"));
    }

    #[test]
    fn govcloud_and_china_arns() {
        assert!(
            FunctionId::parse("arn:aws-us-gov:lambda:us-gov-west-1:123456789012:function:f")
                .is_ok()
        );
        let cn = FunctionId::parse("arn:aws-cn:lambda:cn-north-1:123456789012:function:f").unwrap();
        assert_eq!(cn.partition.as_deref(), Some("aws-cn"));
    }

    #[test]
    fn partial_arn() {
        let f = FunctionId::parse("123456789012:function:f:7").unwrap();
        assert_eq!(f.identifier, "123456789012:function:f");
        assert_eq!(f.qualifier.as_deref(), Some("7"));
        assert_eq!(f.region, None);
    }

    #[test]
    fn malformed_identifiers_are_rejected() {
        for bad in [
            "",
            "arn:aws:lambda:us-east-1:123456789012:function",
            "arn:aws:s3:us-east-1:123456789012:function:f",
            "arn:aws:lambda:useast1:123456789012:function:f",
            "arn:aws:lambda:us-east-1:12345:function:f",
            "arn:aws:lambda:us-east-1:123456789012:layer:f",
            "arn:aws:lambda:us-east-1:123456789012:function:f:v1:extra",
            "arn:aws:lambda:us-east-1:123456789012:function:f:bad/qualifier",
            "arn:xyz:lambda:us-east-1:123456789012:function:f",
            "12345:function:f",
            "123456789012:function:f:q:extra",
            "has space",
            "a:b:c",
            "f:",
            "../etc",
            "f?x=1",
        ] {
            assert!(
                FunctionId::parse(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
        assert_eq!(FunctionId::parse(&"a".repeat(65)), Err(ArnError::BadName));
        assert_eq!(FunctionId::parse(&"a".repeat(300)), Err(ArnError::TooLong));
    }

    #[test]
    fn regions() {
        for good in [
            "us-east-1",
            "us-gov-west-1",
            "cn-northwest-1",
            "eusc-de-east-1",
        ] {
            assert!(is_valid_region(good), "{good}");
        }
        for bad in [
            "",
            "us-east",
            "US-EAST-1",
            "us_east_1",
            "us-east-1a",
            "us--1",
        ] {
            assert!(!is_valid_region(bad), "{bad}");
        }
    }
}
