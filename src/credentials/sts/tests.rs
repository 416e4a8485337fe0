use super::*;
// ---- the request ----

use crate::test_support::{example_credentials as source, fixed_time};

/// What the configuration makes of this role, ExternalId and cluster, with defaults.
fn golden_settings() -> AssumeRoleSettings {
    AssumeRoleSettings {
        role_arn: "arn:aws:iam::123456789012:role/service/lambda-invoker".into(),
        external_id: Some(Secret::new("ext:id/42")),
        session_name: "proxy-wasm-lambda".into(),
        duration_seconds: 3600,
        region: "us-east-1".into(),
        sts_cluster: "sts_cluster".into(),
        sts_endpoint: "sts.us-east-1.amazonaws.com".into(),
        timeout: Duration::from_millis(2000),
        max_wait: Duration::from_millis(3000),
    }
}

#[test]
fn request_shape_and_body_encoding() {
    let request =
        build_assume_role_request(&golden_settings(), &source(None), fixed_time()).unwrap();
    let body = "Action=AssumeRole&Version=2011-06-15\
        &RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fservice%2Flambda-invoker\
        &RoleSessionName=proxy-wasm-lambda&DurationSeconds=3600&ExternalId=ext%3Aid%2F42";
    assert_eq!(String::from_utf8(request.body.clone()).unwrap(), body);
    assert_eq!(request.cluster, "sts_cluster");
    assert_eq!(request.timeout, Duration::from_millis(2000));
    assert_eq!(request.header(":method"), Some("POST"));
    assert_eq!(request.header(":path"), Some("/"));
    assert_eq!(
        request.header(":authority"),
        Some("sts.us-east-1.amazonaws.com")
    );
    assert_eq!(
        request.header("content-type"),
        Some("application/x-www-form-urlencoded; charset=utf-8")
    );
    assert_eq!(
        request.header("content-length"),
        Some(body.len().to_string().as_str())
    );
    assert_eq!(request.header("x-amz-date"), Some("20261123T100000Z"));
    assert!(request.header("x-amz-content-sha256").is_some());
    assert_eq!(request.header("x-amz-security-token"), None);
    // The ExternalId is in the body only.
    assert!(request.headers.iter().all(|(_, v)| !v.contains("ext:id")));
    assert!(!format!("{:?}", request.headers).contains("ext%3Aid"));
}

#[test]
fn request_without_external_id() {
    let settings = AssumeRoleSettings {
        external_id: None,
        ..golden_settings()
    };
    let request = build_assume_role_request(&settings, &source(None), fixed_time()).unwrap();
    let body = String::from_utf8(request.body).unwrap();
    assert!(body.ends_with("&RoleSessionName=proxy-wasm-lambda&DurationSeconds=3600"));
    assert!(!body.contains("ExternalId"));
}

/// Pinned signature at a fixed time, cross-checked with botocore's SigV4Auth over the
/// same request by tests/integration/test_sts_golden_signature.py (which reads the
/// value from here).
#[test]
fn golden_signature() {
    let request = build_assume_role_request(
        &golden_settings(),
        &source(Some("source-session-token")),
        fixed_time(),
    )
    .unwrap();
    assert_eq!(
        request.header("x-amz-security-token"),
        Some("source-session-token")
    );
    assert_eq!(
        request.header("authorization"),
        Some(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261123/us-east-1/sts/aws4_request, \
             SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;x-amz-security-token, \
             Signature=dac9698a71990554625a216d7d641a4c341c15601f387fcc27143d8d6eefea6b"
        )
    );
}

// ---- the answer ----

fn good_answer(expiration: &str) -> String {
    format!(
        r#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
<SourceIdentity>Alice</SourceIdentity>
<AssumedRoleUser>
  <Arn>arn:aws:sts::123456789012:assumed-role/demo/TestAR</Arn>
  <AssumedRoleId>ARO123EXAMPLE123:TestAR</AssumedRoleId>
</AssumedRoleUser>
<Credentials>
  <AccessKeyId>ASIAIOSFODNN7EXAMPLE</AccessKeyId>
  <SecretAccessKey>wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY</SecretAccessKey>
  <SessionToken>AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI</SessionToken>
  <Expiration>{expiration}</Expiration>
</Credentials>
<PackedPolicySize>6</PackedPolicySize>
  </AssumeRoleResult>
  <ResponseMetadata>
<RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId>
  </ResponseMetadata>
</AssumeRoleResponse>"#
    )
}

fn error_answer(code: &str, message: &str) -> String {
    format!(
        r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <Error>
<Type>Sender</Type>
<Code>{code}</Code>
<Message>{message}</Message>
  </Error>
  <RequestId>0f1e2d3c-aaaa-bbbb-cccc-111122223333</RequestId>
</ErrorResponse>"#
    )
}

fn moto_error_answer(code: &str, message: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<ErrorResponse><Errors><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestId>7a62c49f-347e-4fc4-9331-6e8eEXAMPLE</RequestId></ErrorResponse>"#
    )
}

#[test]
fn good_answer_is_parsed() {
    let t = parse_assume_role_answer(Some(200), good_answer("2026-11-23T10:00:00Z").as_bytes())
        .unwrap();
    assert_eq!(t.credentials.access_key_id, "ASIAIOSFODNN7EXAMPLE");
    assert_eq!(
        t.credentials.secret_access_key.expose(),
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY"
    );
    assert!(t
        .credentials
        .session_token
        .as_ref()
        .is_some_and(|s| s.expose().starts_with("AQoDYXdzEPT//")));
    assert_eq!(t.expiration, fixed_time());
    let printed = format!("{t:?}");
    assert!(!printed.contains("wJalr") && !printed.contains("AQoDYX"));
}

#[test]
fn fractional_seconds_and_no_namespace() {
    let t = parse_assume_role_answer(
        Some(200),
        good_answer("2026-11-23T10:00:00.123Z").as_bytes(),
    )
    .unwrap();
    assert_eq!(t.expiration, fixed_time() + Duration::from_millis(123));
    let bare = good_answer("2026-11-23T10:00:00Z")
        .replace(r#" xmlns="https://sts.amazonaws.com/doc/2011-06-15/""#, "");
    assert!(parse_assume_role_answer(Some(200), bare.as_bytes()).is_ok());
}

#[test]
fn wrong_namespace_is_bad() {
    let other = good_answer("2026-11-23T10:00:00Z")
        .replace("https://sts.amazonaws.com/doc/2011-06-15/", "urn:other");
    let err = parse_assume_role_answer(Some(200), other.as_bytes()).unwrap_err();
    assert_eq!(err.class(), "sts_bad_response");
}

#[test]
fn error_codes_map_to_classes() {
    let cases = [
        (403, "AccessDenied", "sts_access_denied", false),
        (400, "ExpiredToken", "sts_expired_token", false),
        (403, "RegionDisabledException", "sts_region_disabled", false),
        (400, "Throttling", "sts_throttled", true),
        (400, "RequestLimitExceeded", "sts_throttled", true),
        (429, "SomethingElse", "sts_throttled", true),
        (
            403,
            "InvalidClientTokenId",
            "sts_invalid_credentials",
            false,
        ),
        (
            403,
            "SignatureDoesNotMatch",
            "sts_invalid_credentials",
            false,
        ),
        (403, "IncompleteSignature", "sts_invalid_credentials", false),
        (400, "MalformedPolicyDocument", "sts_rejected", false),
        (400, "ValidationError", "sts_rejected", false),
        (500, "InternalFailure", "sts_unavailable", true),
        (503, "ServiceUnavailable", "sts_unavailable", true),
    ];
    for (status, code, class, retryable) in cases {
        for body in [
            error_answer(code, "the message"),
            moto_error_answer(code, "the message"),
        ] {
            let err = parse_assume_role_answer(Some(status), body.as_bytes()).unwrap_err();
            assert_eq!(err.class(), class, "{status} {code}");
            assert_eq!(err.is_retryable(), retryable, "{code}");
        }
    }
}

#[test]
fn error_details_are_kept() {
    let body = error_answer(
        "AccessDenied",
        "User: arn:aws:iam::123456789012:user/u is not authorized to perform: sts:AssumeRole",
    );
    let err = parse_assume_role_answer(Some(403), body.as_bytes()).unwrap_err();
    assert_eq!(
        err,
        StsError::AccessDenied {
            message: Some(
                "User: arn:aws:iam::123456789012:user/u is not authorized to perform: sts:AssumeRole".into()
            )
        }
    );
    assert!(err
        .to_string()
        .starts_with("sts_access_denied: AssumeRole was denied: User:"));
    let err = parse_assume_role_answer(
        Some(403),
        moto_error_answer("SignatureDoesNotMatch", "").as_bytes(),
    )
    .unwrap_err();
    assert_eq!(
        err,
        StsError::InvalidCredentials {
            code: "SignatureDoesNotMatch".into(),
            message: None
        }
    );
    let err =
        parse_assume_role_answer(Some(400), error_answer("ValidationError", "bad").as_bytes())
            .unwrap_err();
    assert_eq!(
        err,
        StsError::Rejected {
            code: "ValidationError".into(),
            message: Some("bad".into())
        }
    );
    assert!(err.to_string().contains("ValidationError"));
}

#[test]
fn long_messages_are_cut() {
    let body = error_answer("AccessDenied", &"x".repeat(5000));
    let err = parse_assume_role_answer(Some(403), body.as_bytes()).unwrap_err();
    assert!(err.to_string().len() < 600);
}

#[test]
fn no_answer_and_envoy_local_replies() {
    assert_eq!(
        parse_assume_role_answer(None, b"").unwrap_err(),
        StsError::Unavailable { status: None }
    );
    assert_eq!(
        parse_assume_role_answer(None, good_answer("2026-11-23T10:00:00Z").as_bytes()).unwrap_err(),
        StsError::Unavailable { status: None }
    );
    for (status, body) in [
        (503, "no healthy upstream"),
        (504, "upstream request timeout"),
        (
            503,
            "upstream connect error or disconnect/reset before headers",
        ),
        (502, ""),
    ] {
        assert_eq!(
            parse_assume_role_answer(Some(status), body.as_bytes()).unwrap_err(),
            StsError::Unavailable {
                status: Some(status)
            }
        );
    }
    assert_eq!(
        parse_assume_role_answer(Some(429), b"slow down")
            .unwrap_err()
            .class(),
        "sts_throttled"
    );
}

#[test]
fn garbage_is_a_bad_response() {
    let good = good_answer("2026-11-23T10:00:00Z");
    let truncated = &good[..good.len() / 2];
    let html = "<!DOCTYPE html><html><body><h1>Welcome</h1></body></html>";
    let cases: Vec<(u16, Vec<u8>)> = vec![
        (200, b"".to_vec()),
        (200, b"not xml at all".to_vec()),
        (200, html.as_bytes().to_vec()),
        (200, b"<html><body>hi</body></html>".to_vec()),
        (200, truncated.as_bytes().to_vec()),
        (200, vec![0xff, 0xfe, 0x00]),
        (200, br#"{"Credentials":{}}"#.to_vec()),
        (403, html.as_bytes().to_vec()),
        (404, b"".to_vec()),
        (302, b"".to_vec()),
        (
            400,
            b"<ErrorResponse><Error><Code></Code></Error></ErrorResponse>".to_vec(),
        ),
    ];
    for (status, body) in cases {
        let err = parse_assume_role_answer(Some(status), &body).unwrap_err();
        assert_eq!(err.class(), "sts_bad_response", "{status} {body:?}");
        assert!(err.is_retryable());
    }
}

#[test]
fn missing_or_empty_fields_are_bad_responses() {
    let good = good_answer("2026-11-23T10:00:00Z");
    let without = |tag: &str| {
        let start = good.find(&format!("<{tag}>")).unwrap();
        let end_tag = format!("</{tag}>");
        let end = good.find(&end_tag).unwrap() + end_tag.len();
        format!("{}{}", &good[..start], &good[end..])
    };
    let emptied = |tag: &str| {
        let start = good.find(&format!("<{tag}>")).unwrap() + tag.len() + 2;
        let end = good.find(&format!("</{tag}>")).unwrap();
        format!("{}{}", &good[..start], &good[end..])
    };
    for tag in [
        "AccessKeyId",
        "SecretAccessKey",
        "SessionToken",
        "Expiration",
    ] {
        for body in [without(tag), emptied(tag)] {
            let err = parse_assume_role_answer(Some(200), body.as_bytes()).unwrap_err();
            assert_eq!(err.class(), "sts_bad_response", "{tag}");
            assert!(err.to_string().contains(tag), "{err}");
            assert!(!err.to_string().contains("wJalr"), "{err}");
        }
    }
    let err = parse_assume_role_answer(Some(200), without("Credentials").as_bytes()).unwrap_err();
    assert_eq!(err.class(), "sts_bad_response");
    let err =
        parse_assume_role_answer(Some(200), without("AssumeRoleResult").as_bytes()).unwrap_err();
    assert_eq!(err.class(), "sts_bad_response");
    for bad_time in ["tomorrow", "2026-11-23", "2026-13-23T10:00:00Z"] {
        let err =
            parse_assume_role_answer(Some(200), good_answer(bad_time).as_bytes()).unwrap_err();
        assert_eq!(err.class(), "sts_bad_response", "{bad_time}");
    }
}

#[test]
fn bad_response_never_prints_the_secret() {
    let body = good_answer("never").replace("<Expiration>never", "<Expiration>");
    let err = parse_assume_role_answer(Some(200), body.as_bytes()).unwrap_err();
    let printed = format!("{err} {err:?}");
    assert!(
        !printed.contains("wJalr") && !printed.contains("AQoDYX"),
        "{printed}"
    );
}

#[test]
fn class_retryability_matches_the_errors() {
    let errors = [
        StsError::AccessDenied { message: None },
        StsError::Throttled { message: None },
        StsError::Unavailable { status: None },
        StsError::BadResponse { reason: "x".into() },
        StsError::Rejected {
            code: "ValidationError".into(),
            message: None,
        },
    ];
    for error in errors {
        assert_eq!(
            error.class().is_retryable(),
            error.is_retryable(),
            "{error}"
        );
    }
}

#[test]
fn fuzz_regression_credentials_with_control_characters() {
    // Taken as credentials, then every Invoke failed to sign until they expired.
    for (field, value) in [("SessionToken", "t\u{7f}t"), ("AccessKeyId", "A\u{7f}B")] {
        let answer = good_answer("2026-11-23T10:00:00Z")
            .replace(&format!("<{field}>"), &format!("<{field}>{value}"));
        let err = parse_assume_role_answer(Some(200), answer.as_bytes()).unwrap_err();
        assert_eq!(err.class(), "sts_bad_response", "{field}");
        assert!(err.to_string().contains(field));
    }
    let minimized = "<AssumeRoleResponse><AssumeRoleResult><Credentials><AccessKeyId>A\u{7f}B</AccessKeyId><SecretAccessKey>s</SecretAccessKey><SessionToken>t\u{7f}t</SessionToken><Expiration>2030-01-01T00:00:00Z</Expiration></Credentials></AssumeRoleResult></AssumeRoleResponse>";
    let err = parse_assume_role_answer(Some(200), minimized.as_bytes()).unwrap_err();
    assert_eq!(err.class(), "sts_bad_response");
    assert!(!err.to_string().contains("t\u{7f}t"));
}
