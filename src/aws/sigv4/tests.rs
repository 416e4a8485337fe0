//! SigV4: held byte for byte to `aws-sigv4`.

#![allow(unused_imports)]
use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials as AwsCredentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use sha2::{Digest, Sha256};

use super::*;
use crate::aws::credentials::Credentials;
use crate::secret::Secret;
use std::time::Duration;

use crate::test_support::example_credentials;

fn at(epoch_seconds: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(epoch_seconds)
}

fn header<'a>(headers: &'a [(&'static str, String)], name: &str) -> &'a str {
    headers
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.as_str())
        .unwrap()
}

/// The AWS SigV4 test suite's `get-vanilla` case (2015-08-30T12:36:00Z, us-east-1,
/// service "service").
#[test]
fn aws_test_suite_get_vanilla() {
    let request = RequestToSign {
        method: "GET",
        host: "example.amazonaws.com",
        path_and_query: "/",
        headers: &[],
        body: b"",
        content_sha256_header: false,
    };
    let reference = sign_request(
        &request,
        &example_credentials(None),
        "us-east-1",
        "service",
        at(1_440_938_160),
    )
    .unwrap();
    let fast = SigningKeyCache::new()
        .sign(
            &request,
            &example_credentials(None),
            "us-east-1",
            "service",
            at(1_440_938_160),
        )
        .unwrap();
    assert_eq!(fast, reference);
    assert_eq!(header(&fast, "x-amz-date"), "20150830T123600Z");
    assert_eq!(
        header(&fast, "authorization"),
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
         SignedHeaders=host;x-amz-date, \
         Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    );
}

struct SuiteCase {
    name: &'static str,
    method: &'static str,
    path_and_query: &'static str,
    headers: &'static [(&'static str, &'static str)],
    body: &'static [u8],
    sign_body: bool,
    token: Option<&'static str>,
    signature: &'static str,
}

/// Cases of the AWS SigV4 test suite (aws-sigv4's `aws-signing-test-suite/v4`; header
/// signing, 2015-08-30T12:36:00Z, us-east-1, service "service") whose wire form our
/// signer takes, with the suite's signatures.
const SUITE: &[SuiteCase] = &[
    SuiteCase {
        name: "get-vanilla-with-session-token",
        method: "GET",
        path_and_query: "/",
        headers: &[],
        body: b"",
        sign_body: false,
        token: Some("6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267"),
        signature: "07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8",
    },
    SuiteCase {
        name: "get-vanilla-query-order-key-case",
        method: "GET",
        path_and_query: "/?Param2=value2&Param1=value1",
        headers: &[],
        body: b"",
        sign_body: false,
        token: None,
        signature: "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
    },
    SuiteCase {
        name: "get-vanilla-query-unreserved",
        method: "GET",
        path_and_query: "/?-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz=-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
        headers: &[],
        body: b"",
        sign_body: false,
        token: None,
        signature: "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197",
    },
    SuiteCase {
        name: "get-vanilla-utf8-query",
        method: "GET",
        path_and_query: "/?\u{1234}=bar",
        headers: &[],
        body: b"",
        sign_body: false,
        token: None,
        signature: "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04",
    },
    SuiteCase {
        name: "get-utf8",
        method: "GET",
        path_and_query: "/\u{1234}",
        headers: &[],
        body: b"",
        sign_body: false,
        token: None,
        signature: "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85",
    },
    SuiteCase {
        name: "get-unreserved",
        method: "GET",
        path_and_query: "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
        headers: &[],
        body: b"",
        sign_body: false,
        token: None,
        signature: "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f",
    },
    SuiteCase {
        name: "get-slashes-normalized",
        method: "GET",
        path_and_query: "//example//",
        headers: &[],
        body: b"",
        sign_body: false,
        token: None,
        signature: "9a624bd73a37c9a373b5312afbebe7a714a789de108f0bdfe846570885f57e84",
    },
    SuiteCase {
        name: "get-relative-relative-normalized",
        method: "GET",
        path_and_query: "/example1/example2/../..",
        headers: &[],
        body: b"",
        sign_body: false,
        token: None,
        signature: "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
    },
    SuiteCase {
        name: "get-header-value-trim",
        method: "GET",
        path_and_query: "/",
        headers: &[("My-Header1", " value1"), ("My-Header2", " \"a   b   c\"")],
        body: b"",
        sign_body: false,
        token: None,
        signature: "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736",
    },
    SuiteCase {
        name: "get-header-key-duplicate",
        method: "GET",
        path_and_query: "/",
        headers: &[
            ("My-Header1", "value2"),
            ("My-Header1", "value2"),
            ("My-Header1", "value1"),
        ],
        body: b"",
        sign_body: false,
        token: None,
        signature: "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea",
    },
    SuiteCase {
        name: "get-header-value-order",
        method: "GET",
        path_and_query: "/",
        headers: &[
            ("My-Header1", "value4"),
            ("My-Header1", "value1"),
            ("My-Header1", "value3"),
            ("My-Header1", "value2"),
        ],
        body: b"",
        sign_body: false,
        token: None,
        signature: "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01",
    },
    SuiteCase {
        name: "post-vanilla",
        method: "POST",
        path_and_query: "/",
        headers: &[],
        body: b"",
        sign_body: false,
        token: None,
        signature: "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
    },
    SuiteCase {
        name: "post-vanilla-query",
        method: "POST",
        path_and_query: "/?Param1=value1",
        headers: &[],
        body: b"",
        sign_body: false,
        token: None,
        signature: "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11",
    },
    SuiteCase {
        name: "post-header-key-sort",
        method: "POST",
        path_and_query: "/",
        headers: &[("My-Header1", "value1")],
        body: b"",
        sign_body: false,
        token: None,
        signature: "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c",
    },
    SuiteCase {
        name: "post-x-www-form-urlencoded",
        method: "POST",
        path_and_query: "/",
        headers: &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Content-Length", "13"),
        ],
        body: b"Param1=value1",
        sign_body: true,
        token: None,
        signature: "d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b",
    },
    SuiteCase {
        name: "post-x-www-form-urlencoded-parameters",
        method: "POST",
        path_and_query: "/",
        headers: &[
            ("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"),
            ("Content-Length", "13"),
        ],
        body: b"Param1=value1",
        sign_body: true,
        token: None,
        signature: "328d1b9eaadca9f5818ef05e8392801e091653bafec24fcab71e7344e7f51422",
    },
];

#[test]
fn aws_test_suite_cases_match_suite_and_reference() {
    let cache = SigningKeyCache::new();
    for case in SUITE {
        let request = RequestToSign {
            method: case.method,
            host: "example.amazonaws.com",
            path_and_query: case.path_and_query,
            headers: case.headers,
            body: case.body,
            content_sha256_header: case.sign_body,
        };
        let credentials = example_credentials(case.token);
        let now = at(1_440_938_160);
        let fast = cache
            .sign(&request, &credentials, "us-east-1", "service", now)
            .unwrap();
        let reference = sign_request(&request, &credentials, "us-east-1", "service", now).unwrap();
        assert_eq!(fast, reference, "{}", case.name);
        let authorization = header(&fast, "authorization");
        assert!(
            authorization.ends_with(&format!("Signature={}", case.signature)),
            "{}: {authorization}",
            case.name
        );
        if let Some(token) = case.token {
            assert_eq!(header(&fast, "x-amz-security-token"), token);
        }
    }
    assert_eq!(cache.derivations(), 1, "one key for the whole suite");
}

/// xorshift64*: reproducible without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

const METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"];
const HOSTS: &[&str] = &[
    "lambda.us-east-1.amazonaws.com",
    "lambda.eu-west-3.amazonaws.com",
    "sts.amazonaws.com",
    "sts.ap-southeast-2.amazonaws.com",
    "localhost:5000",
    "127.0.0.1:8080",
    "[::1]:3000",
    "Example.AmazonAWS.com",
    "vpce-0123-abcd.lambda.us-east-1.vpce.amazonaws.com",
];
const SEGMENTS: &[&str] = &[
    "2015-03-31",
    "functions",
    "invocations",
    "my-fn",
    "arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Amy-fn",
    "my-fn%3Alive",
    "%2F",
    "%20",
    "%25",
    "%252F",
    "caf%C3%A9",
    "caf\u{e9}",
    "\u{1f600}",
    "\u{1234}",
    ".",
    "..",
    "",
    "a+b",
    "x=y",
    ":",
    "@",
    "!$&'()*,;=",
    "~-._",
    "%7E",
    "{\"json\"}",
    "|",
    "a.b",
    "...",
    "%2e%2E",
];
const QUERY_PARTS: &[&str] = &[
    "Qualifier=live",
    "Qualifier=%24LATEST",
    "Qualifier=$LATEST",
    "a=b",
    "a=",
    "a",
    "A=1",
    "b=%20x",
    "c=a+b",
    "d=%2B",
    "e=\u{e9}",
    "f=%E2%82%AC",
    "=x",
    "g=1",
    "g=0",
    "h=%zz",
    "i=[x]",
    "k=^`{}|",
    "l=/?:@",
    "m=%FF",
    "",
    "n=a=b",
    "Action=AssumeRole",
    "RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fdemo",
];
const HEADER_NAMES: &[&str] = &[
    "content-type",
    "Content-Type",
    "x-amz-invocation-type",
    "x-amz-client-context",
    "x-amz-log-type",
    "My-Header",
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-content-sha256",
    "user-agent",
    "x-amzn-trace-id",
    "authorization",
    "transfer-encoding",
    "host",
    "x-custom_1",
    "content-length",
    "x-a!#$%&'*+-.^_`|~",
];
const HEADER_VALUES: &[&str] = &[
    "application/json",
    "application/x-www-form-urlencoded; charset=utf-8",
    "  a   b  ",
    "\tx\t",
    "caf\u{e9}",
    "a  \t  b",
    "",
    " ",
    "   ",
    "RequestResponse",
    "Event",
    "Tail",
    "eyJhIjoxfQ==",
    "\"quoted   value\"",
    "20150830T123600Z",
    "control\u{1}character",
];
const REGIONS: &[&str] = &["us-east-1", "eu-west-3", "ap-southeast-2", "us-gov-west-1"];
const SERVICES: &[&str] = &["lambda", "sts", "service"];
const SECRETS: &[&str] = &[
    "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEZ",
    "another+secret/with=chars",
];
const TOKENS: &[&str] = &[
    "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267",
    "IQoJb3JpZ2luX2VjEH//////////wEaCXVzLWVhc3QtMSJIMEYCIQD+token/==",
    "",
    "  spaced  token  ",
    "tab\tin-a-token-longer-than-eight-bytes",
    "invalid-\u{7f}-token-longer-than-eight-bytes",
];
/// Midnights UTC (and odd days): 2015-08-31, 2024-02-29 (leap day), 2026-11-23,
/// 2000-03-01, 1970-01-01, 2100-03-01.
const MIDNIGHTS: &[u64] = &[
    1_440_979_200,
    1_709_164_800,
    1_795_392_000,
    951_868_800,
    0,
    4_107_542_400,
];

fn random_path(rng: &mut Rng) -> String {
    let mut path = String::new();
    for _ in 0..=rng.below(5) {
        path.push('/');
        path.push_str(rng.pick(SEGMENTS));
    }
    if rng.chance(15) {
        path.push('/');
    }
    if rng.chance(50) {
        path.push('?');
        for i in 0..rng.below(5) {
            if i > 0 {
                path.push('&');
            }
            path.push_str(rng.pick(QUERY_PARTS));
        }
    }
    if rng.chance(3) {
        path.push_str("#fragment");
    }
    path
}

fn random_time(rng: &mut Rng) -> SystemTime {
    let midnight = rng.pick(MIDNIGHTS);
    let offset = rng.below(7) as i64 - 3; // 3 s either side of midnight
    let seconds = midnight as i64 + offset;
    let nanos = if rng.chance(30) {
        rng.below(1_000_000_000) as u64
    } else {
        0
    };
    if seconds >= 0 {
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds as u64) + Duration::from_nanos(nanos)
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_secs(seconds.unsigned_abs())
            + Duration::from_nanos(nanos)
    }
}

/// Thousands of generated requests through one cache (so keys roll over at midnight
/// and on credential, region and service changes) against `aws-sigv4`'s full signer.
#[test]
fn generated_requests_match_aws_sigv4_byte_for_byte() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let cache = SigningKeyCache::new();
    let mut signed = 0;
    let mut refused = 0;
    for _ in 0..4000 {
        let method = rng.pick(METHODS);
        let host = rng.pick(HOSTS);
        let path = random_path(&mut rng);
        let mut headers: Vec<(&str, &str)> = Vec::new();
        for _ in 0..rng.below(6) {
            headers.push((rng.pick(HEADER_NAMES), rng.pick(HEADER_VALUES)));
        }
        let body: Vec<u8> = if rng.chance(40) {
            Vec::new()
        } else {
            (0..rng.below(300)).map(|_| rng.next() as u8).collect()
        };
        let credentials = Credentials {
            access_key_id: rng.pick(&["AKIDEXAMPLE", "ASIAEXAMPLE2"]).to_string(),
            secret_access_key: Secret::new(rng.pick(SECRETS)),
            session_token: if rng.chance(50) {
                Some(Secret::new(rng.pick(TOKENS)))
            } else {
                None
            },
        };
        let region = rng.pick(REGIONS);
        let service = rng.pick(SERVICES);
        let now = random_time(&mut rng);
        let request = RequestToSign {
            method,
            host,
            path_and_query: &path,
            headers: &headers,
            body: &body,
            content_sha256_header: rng.chance(60),
        };
        let precomputed = rng.chance(30);
        let (fast, reference) = if precomputed {
            let mut hasher = PayloadHasher::new();
            for chunk in body.chunks(37) {
                hasher.update(chunk);
            }
            let hash = hasher.finish();
            (
                cache.sign_with_payload_hash(&request, &hash, &credentials, region, service, now),
                reference_sign(
                    &request,
                    SignableBody::Precomputed(hash.clone()),
                    &credentials,
                    region,
                    service,
                    now,
                ),
            )
        } else {
            (
                cache.sign(&request, &credentials, region, service, now),
                sign_request(&request, &credentials, region, service, now),
            )
        };
        match (&fast, &reference) {
            (Ok(fast), Ok(reference)) => {
                assert_eq!(fast, reference, "{method} {host}{path} {headers:?}");
                signed += 1;
            }
            (Err(_), Err(_)) => refused += 1,
            _ => panic!(
                "fast {fast:?} vs reference {reference:?} for {method} {host}{path} {headers:?}"
            ),
        }
    }
    assert!(
        signed > 3000 && refused > 100,
        "signed {signed}, refused {refused}"
    );
    assert!(cache.derivations() > 100, "{}", cache.derivations());
}

/// Requests `aws-sigv4` refuses are refused too (not signed some other way).
#[test]
fn invalid_requests_are_refused_like_aws_sigv4() {
    let cache = SigningKeyCache::new();
    type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);
    let cases: &[Case<'_>] = &[
        ("example.com", "/a b", &[]),
        ("example.com", "/a\u{7f}", &[]),
        ("example.com", "/?a b", &[]),
        ("example.com", "/?a\"b", &[]),
        ("example.com", "/", &[("x-h", "a\nb")]),
        ("example.com", "/", &[("x-h", "a\u{7f}")]),
        ("example.com", "/", &[("bad name", "v")]),
        ("example.com", "/", &[("bad:name", "v")]),
        ("example.com", "/", &[("", "v")]),
        ("exa mple.com", "/", &[]),
        ("", "/", &[]),
    ];
    for (host, path, headers) in cases {
        let request = RequestToSign {
            method: "GET",
            host,
            path_and_query: path,
            headers,
            body: b"",
            content_sha256_header: true,
        };
        let credentials = example_credentials(None);
        let now = at(1_440_938_160);
        assert!(
            sign_request(&request, &credentials, "us-east-1", "lambda", now).is_err(),
            "reference signs {host} {path} {headers:?}"
        );
        assert!(
            cache
                .sign(&request, &credentials, "us-east-1", "lambda", now)
                .is_err(),
            "{host} {path} {headers:?}"
        );
    }
    // Stricter than aws-sigv4 (refused, never signed some other way): user info in the
    // host, a path not starting with `/`, non-ASCII header names.
    for (host, path, headers) in [
        ("user@example.com", "/", &[][..]),
        ("example.com", "?a=b", &[]),
        ("example.com", "/", &[("\u{212a}-header", "v")]),
    ] {
        let request = RequestToSign {
            method: "GET",
            host,
            path_and_query: path,
            headers,
            body: b"",
            content_sha256_header: true,
        };
        assert!(cache
            .sign(
                &request,
                &example_credentials(None),
                "us-east-1",
                "lambda",
                at(0)
            )
            .is_err());
    }
    let token = Credentials {
        session_token: Some(Secret::new("bad\ntoken")),
        ..example_credentials(None)
    };
    let request = RequestToSign {
        method: "GET",
        host: "example.com",
        path_and_query: "/",
        headers: &[],
        body: b"",
        content_sha256_header: false,
    };
    assert!(sign_request(&request, &token, "us-east-1", "lambda", at(0)).is_err());
    assert!(cache
        .sign(&request, &token, "us-east-1", "lambda", at(0))
        .is_err());
}

fn invoke_request(body: &[u8]) -> RequestToSign<'_> {
    RequestToSign {
        method: "POST",
        host: "lambda.us-east-1.amazonaws.com",
        path_and_query: "/2015-03-31/functions/my-fn/invocations",
        headers: &[
            ("content-type", "application/json"),
            ("x-amz-invocation-type", "RequestResponse"),
        ],
        body,
        content_sha256_header: true,
    }
}

#[test]
fn key_is_derived_again_when_credentials_change() {
    let cache = SigningKeyCache::new();
    let now = at(1_795_428_000);
    let request = invoke_request(b"{}");
    let a = example_credentials(Some("token"));
    let same_id_other_secret = Credentials {
        secret_access_key: Secret::new("a-completely-different-secret"),
        ..a.clone()
    };
    let other_id_same_secret = Credentials {
        access_key_id: "AKIDOTHER".into(),
        ..a.clone()
    };
    let check = |credentials: &Credentials, region: &str, service: &str, now, derivations| {
        let fast = cache
            .sign(&request, credentials, region, service, now)
            .unwrap();
        let reference = sign_request(&request, credentials, region, service, now).unwrap();
        assert_eq!(fast, reference);
        assert_eq!(cache.derivations(), derivations);
    };
    check(&a, "us-east-1", "lambda", now, 1);
    check(&a, "us-east-1", "lambda", now + Duration::from_secs(60), 1);
    // A new session token alone does not change the key.
    check(
        &example_credentials(Some("another-token")),
        "us-east-1",
        "lambda",
        now,
        1,
    );
    check(&same_id_other_secret, "us-east-1", "lambda", now, 2);
    check(&a, "us-east-1", "lambda", now, 3);
    check(&other_id_same_secret, "us-east-1", "lambda", now, 4);
    check(&a, "eu-west-1", "lambda", now, 5);
    check(&a, "eu-west-1", "sts", now, 6);
    // The next day (2026-11-24).
    check(&a, "eu-west-1", "sts", at(1_795_478_400), 7);
    check(&a, "eu-west-1", "sts", at(1_795_478_399), 8);
    cache.clear();
    check(&a, "eu-west-1", "sts", at(1_795_478_399), 9);
}

#[test]
fn signing_keys_are_aws_sigv4_s() {
    // Secrets of every length around the 64-byte HMAC block ("AWS4" + secret).
    for length in [0, 1, 40, 59, 60, 61, 64, 100, 300] {
        let secret: String = (0..length)
            .map(|i| char::from(b'A' + (i % 26) as u8))
            .collect();
        for (now, date) in [(at(1_795_428_000), "20261123"), (at(0), "19700101")] {
            for (region, service) in [("us-east-1", "lambda"), ("cn-north-1", "sts")] {
                let reference = v4::generate_signing_key(&secret, now, region, service);
                assert_eq!(
                    signing_key(&secret, date, region, service).as_slice(),
                    reference.as_ref(),
                    "{length} {date} {region} {service}"
                );
            }
        }
    }
}

#[test]
fn cache_never_prints_the_key_or_secret() {
    let cache = SigningKeyCache::new();
    let credentials = example_credentials(None);
    let now = at(1_440_938_160);
    cache
        .sign(
            &invoke_request(b""),
            &credentials,
            "us-east-1",
            "lambda",
            now,
        )
        .unwrap();
    let entry = cache.entry.take().unwrap();
    let key = v4::generate_signing_key(
        credentials.secret_access_key.expose(),
        now,
        "us-east-1",
        "lambda",
    );
    let key_hex = hex_string(key.as_ref());
    let printed = format!("{cache:?} {entry:?}");
    assert!(!printed.contains(&key_hex), "{printed}");
    assert!(!printed.contains("wJalr"), "{printed}");
    assert!(printed.contains("20150830/us-east-1/lambda/aws4_request"));
}

#[test]
fn precomputed_payload_hash_signs_like_the_body() {
    let cache = SigningKeyCache::new();
    let credentials = example_credentials(Some("t"));
    let now = at(1_795_428_000);
    let body = br#"{"hello":"world"}"#;
    let mut hasher = PayloadHasher::new();
    hasher.update(&body[..5]);
    hasher.update(&body[5..]);
    let hash = hasher.finish();
    assert_eq!(hash, payload_sha256(body));
    let request = invoke_request(body);
    let from_body = cache
        .sign(&request, &credentials, "us-east-1", "lambda", now)
        .unwrap();
    let from_hash = cache
        .sign_with_payload_hash(
            &invoke_request(b"not read"),
            &hash,
            &credentials,
            "us-east-1",
            "lambda",
            now,
        )
        .unwrap();
    assert_eq!(from_body, from_hash);
    assert_eq!(header(&from_body, "x-amz-content-sha256"), hash);
    assert_eq!(payload_sha256(b""), EMPTY_PAYLOAD_SHA256);
    assert_eq!(PayloadHasher::new().finish(), EMPTY_PAYLOAD_SHA256);
    for bad in [
        "",
        "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
        "xyz",
    ] {
        assert!(cache
            .sign_with_payload_hash(&request, bad, &credentials, "us-east-1", "lambda", now)
            .is_err());
    }
}

/// Requests to the same function as the last one (other payloads, times, tokens) fill in
/// its canonical template; any other request (a later difference, another query, header
/// set or token presence) replaces it. All sign as the reference does.
#[test]
fn canonical_template_signs_like_the_reference() {
    let cache = SigningKeyCache::new();
    let function = "f".repeat(200);
    let long = format!("/2015-03-31/functions/{function}/invocations");
    let differs_late = format!("/2015-03-31/functions/{function}g/invocations");
    let paths = [
        "/2015-03-31/functions/my-fn/invocations",
        "/2015-03-31/functions/my-fn/invocations?Qualifier=prod",
        long.as_str(),
        differs_late.as_str(),
    ];
    for round in 0..3u64 {
        for path in paths {
            for body in [&b""[..], b"{}", &[b'x'; 300]] {
                for token in [None, Some("token-a"), Some("token-b")] {
                    let request = RequestToSign {
                        path_and_query: path,
                        content_sha256_header: round != 1,
                        ..invoke_request(body)
                    };
                    let credentials = example_credentials(token);
                    let now = at(1_795_428_000 + round * 7);
                    let fast = cache
                        .sign(&request, &credentials, "us-east-1", "lambda", now)
                        .unwrap();
                    let reference =
                        sign_request(&request, &credentials, "us-east-1", "lambda", now).unwrap();
                    assert_eq!(fast, reference, "{path} {body:?} {token:?}");
                }
            }
        }
    }

    // The same function again: the kept prefix (whole blocks) is used, not replaced.
    let kept = cache.template.take().unwrap();
    assert!(kept.blocks_len >= 3 * 64 && kept.blocks_len.is_multiple_of(64));
    let kept_at: *const CanonicalTemplate = &*kept;
    cache.template.set(Some(kept));
    let request = RequestToSign {
        path_and_query: &differs_late,
        ..invoke_request(b"another body")
    };
    let credentials = example_credentials(Some("token-c"));
    let now = at(1_795_428_999);
    let fast = cache
        .sign(&request, &credentials, "us-east-1", "lambda", now)
        .unwrap();
    assert_eq!(
        fast,
        sign_request(&request, &credentials, "us-east-1", "lambda", now).unwrap()
    );
    let after = cache.template.take().unwrap();
    assert!(std::ptr::eq(kept_at, &*after));
    cache.template.set(Some(after));

    // Another function: a new template.
    let request = RequestToSign {
        path_and_query: &long,
        ..invoke_request(b"another body")
    };
    let fast = cache
        .sign(&request, &credentials, "us-east-1", "lambda", now)
        .unwrap();
    assert_eq!(
        fast,
        sign_request(&request, &credentials, "us-east-1", "lambda", now).unwrap()
    );
    let replaced = cache.template.take().unwrap();
    assert!(!std::ptr::eq(kept_at, &*replaced));
    assert_eq!(replaced.path_and_query, long);
    cache.template.set(Some(replaced));

    // A token that cannot be sent is refused on a template's request too.
    let bad = example_credentials(Some("bad\ntoken"));
    assert!(cache
        .sign(&request, &bad, "us-east-1", "lambda", now)
        .is_err());
    assert!(sign_request(&request, &bad, "us-east-1", "lambda", now).is_err());
}

/// The Invoke golden value pinned in src/invoke.rs (checked with botocore).
#[test]
fn invoke_golden_signature() {
    let headers = SigningKeyCache::new()
        .sign(
            &invoke_request(br#"{"hello":"world"}"#),
            &example_credentials(Some("session-token-value")),
            "us-east-1",
            "lambda",
            at(1_795_428_000),
        )
        .unwrap();
    assert!(header(&headers, "authorization")
        .ends_with("Signature=60934ee0f955c8b07589a6efd94ba147c3c7a70fe9bfcc09180d954021b351ca"));
}

/// The word-at-a-time check agrees with `http`'s rule for every byte at every position.
#[test]
fn path_encoding_matches_percent_encoding() {
    let mut inputs: Vec<String> = (0u8..0x80).map(|b| char::from(b).to_string()).collect();
    inputs.extend(
        [
            "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A1:function:f/invocations",
            "/a b/é/日本/~x_y-z.w/",
            "",
            "%%%",
            "/ünïcödé?#[]",
        ]
        .map(String::from),
    );
    for input in &inputs {
        let mut ours = Vec::new();
        push_path_encoded(&mut ours, input);
        let reference = utf8_percent_encode(input, PATH_ENCODE_SET).to_string();
        assert_eq!(String::from_utf8(ours).unwrap(), reference, "{input:?}");
    }
}

#[test]
fn hex_digest_is_lower_case_hex() {
    let digest: Vec<u8> = (0u8..32).map(|i| i.wrapping_mul(37)).collect();
    let expected: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(ascii_str(&hex_digest(&digest)), expected);
}

#[test]
fn header_value_check_matches_http_for_every_byte() {
    let valid = |b: u8| (b >= 0x20 && b != 0x7f) || b == b'\t';
    for len in [1usize, 7, 8, 9, 16, 23] {
        for position in 0..len {
            for byte in 0u8..=0x7f {
                let mut value = vec![b'a'; len];
                value[position] = byte;
                let value = String::from_utf8(value).unwrap();
                assert_eq!(
                    check_header_value(&value).is_ok(),
                    valid(byte),
                    "{byte:#x} at {position} of {len}"
                );
            }
        }
    }
    assert!(check_header_value("caf\u{e9} \u{1f600}\tvalue with non-ASCII").is_ok());
    assert!(check_header_value("").is_ok());
}

#[test]
fn dates_across_the_calendar() {
    for (seconds, expected) in [
        (0i64, "19700101T000000Z"),
        (-1, "19691231T235959Z"),
        (951_782_400, "20000229T000000Z"),
        (1_440_938_160, "20150830T123600Z"),
        (4_107_542_399, "21000228T235959Z"),
        (253_402_300_799, "99991231T235959Z"),
        (-62_167_219_200, "00000101T000000Z"),
    ] {
        let (day, second) = split_time(if seconds >= 0 {
            at(seconds as u64)
        } else {
            SystemTime::UNIX_EPOCH - Duration::from_secs(seconds.unsigned_abs())
        })
        .unwrap();
        assert_eq!(
            format_date_time(day, second).as_str(),
            expected,
            "{seconds}"
        );
    }
    // Just before the epoch, with a fraction: still the last second of 1969.
    let (day, second) = split_time(SystemTime::UNIX_EPOCH - Duration::from_millis(500)).unwrap();
    assert_eq!(format_date_time(day, second).as_str(), "19691231T235959Z");
    assert!(split_time(at(253_402_300_800)).is_err());
}
