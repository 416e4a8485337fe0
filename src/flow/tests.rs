use super::*;
use crate::config::FilterConfig;
use crate::secret::Secret;

fn config(extra: &str) -> FilterConfig {
    let json = format!(
        r#"{{"function":"f","region":"us-east-1","timeout_ms":1000{extra},"credentials":{{"access_key_id":"AKIDEXAMPLE12345","secret_access_key":"x"}}}}"#
    );
    FilterConfig::load(json.as_bytes(), &|_| None).unwrap()
}

fn route(config: &FilterConfig) -> Result<RouteTarget, ConfigError> {
    Ok(RouteTarget::Invoke(Rc::new(config.target.clone())))
}

fn creds() -> Credentials {
    Credentials {
        access_key_id: "AKIDEXAMPLE".into(),
        secret_access_key: Secret::new("secret"),
        session_token: None,
    }
}

const WAIT: Duration = Duration::from_millis(3000);

fn t(ms: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_428_000) + Duration::from_millis(ms)
}

/// Drives a POST with a body up to the dispatched Invoke (token 7 at t=0).
fn dispatched(config: &FilterConfig) -> RequestFlow {
    let mut flow = RequestFlow::default();
    assert_eq!(
        flow.on_request_headers(
            route(config),
            || Some("lambda".into()),
            || Some(2),
            false,
            || Placement::Downstream
        ),
        Step::Pause
    );
    assert_eq!(flow.on_request_body(2, true), Step::ReadBody);
    match flow.on_body_complete(b"{}".to_vec(), Some(&creds()), t(0), WAIT) {
        Step::Dispatch(request) => {
            assert_eq!(request.cluster, "lambda");
            assert_eq!(request.body, b"{}");
        }
        other => panic!("expected dispatch, got {other:?}"),
    }
    assert_eq!(flow.on_dispatched(Ok(7), t(0)), Step::Pause);
    flow
}

use crate::test_support::call_answer as lambda_answer;

#[test]
fn success_way_out() {
    let config = config("");
    let mut flow = dispatched(&config);
    let step = flow
        .on_invoke_answer(
            7,
            lambda_answer(200, &[("x-amzn-requestid", "r")], "[1]"),
            t(30),
        )
        .unwrap();
    match step {
        Step::Reply(reply) => assert_eq!((reply.status, reply.body), (200, b"[1]".to_vec())),
        other => panic!("{other:?}"),
    }
    assert_eq!(flow.phase(), &Phase::Finished);
}

#[test]
fn error_way_out() {
    let config = config("");
    let mut flow = dispatched(&config);
    let step = flow
        .on_invoke_answer(
            7,
            lambda_answer(403, &[("x-amzn-errortype", "AccessDeniedException")], "{}"),
            t(30),
        )
        .unwrap();
    assert!(matches!(
        step,
        Step::Fail(RequestError::LambdaApi { status: 403, .. })
    ));
    assert_eq!(flow.phase(), &Phase::Finished);
}

#[test]
fn timeout_way_out() {
    let config = config("");
    let mut flow = dispatched(&config);
    let step = flow
        .on_invoke_answer(7, CallAnswer::default(), t(1000))
        .unwrap();
    assert_eq!(step, Step::Fail(RequestError::UpstreamTimeout));
    assert_eq!(flow.phase(), &Phase::Finished);
}

#[test]
fn reset_before_timeout_is_unavailable() {
    let config = config("");
    let mut flow = dispatched(&config);
    let step = flow
        .on_invoke_answer(7, CallAnswer::default(), t(100))
        .unwrap();
    assert_eq!(
        step,
        Step::Fail(RequestError::UpstreamUnavailable { status: 503 })
    );
}

#[test]
fn dispatch_failure_way_out() {
    let config = config("");
    let mut flow = RequestFlow::default();
    assert_eq!(
        flow.on_request_headers(
            route(&config),
            || Some("lambda".into()),
            || None,
            true,
            || Placement::Downstream
        ),
        Step::ReadBody
    );
    assert!(matches!(
        flow.on_body_complete(Vec::new(), Some(&creds()), t(0), WAIT),
        Step::Dispatch(_)
    ));
    assert_eq!(
        flow.on_dispatched(Err("lambda".into()), t(0)),
        Step::Fail(RequestError::DispatchFailed {
            cluster: "lambda".into()
        })
    );
    assert_eq!(flow.phase(), &Phase::Finished);
}

#[test]
fn unknown_or_late_tokens_are_ignored() {
    let config = config("");
    let mut flow = dispatched(&config);
    assert_eq!(flow.on_invoke_answer(8, CallAnswer::default(), t(5)), None);
    assert!(flow
        .on_invoke_answer(7, lambda_answer(200, &[], "{}"), t(5))
        .is_some());
    assert_eq!(flow.on_invoke_answer(7, CallAnswer::default(), t(6)), None);
}

#[test]
fn content_length_over_the_limit_fails_before_buffering() {
    let sync = config("");
    let mut flow = RequestFlow::default();
    let step = flow.on_request_headers(
        route(&sync),
        || Some("c".into()),
        || Some(7_000_000),
        false,
        || Placement::Downstream,
    );
    assert_eq!(
        step,
        Step::Fail(RequestError::PayloadTooLarge { limit: 6_291_456 })
    );
    let event = config(r#","invocation_type":"Event""#);
    let mut flow = RequestFlow::default();
    let step = flow.on_request_headers(
        route(&event),
        || Some("c".into()),
        || Some(1_100_000),
        false,
        || Placement::Downstream,
    );
    assert_eq!(
        step,
        Step::Fail(RequestError::PayloadTooLarge { limit: 1_048_576 })
    );
}

#[test]
fn chunked_body_over_the_limit_fails_while_buffering() {
    let config = config(r#","invocation_type":"Event""#);
    let mut flow = RequestFlow::default();
    assert_eq!(
        flow.on_request_headers(
            route(&config),
            || Some("c".into()),
            || None,
            false,
            || Placement::Downstream
        ),
        Step::Pause
    );
    assert_eq!(flow.on_request_body(1_000_000, false), Step::Pause);
    assert_eq!(
        flow.on_request_body(1_048_577, false),
        Step::Fail(RequestError::PayloadTooLarge { limit: 1_048_576 })
    );
    assert_eq!(flow.on_request_body(2_000_000, true), Step::Continue);
}

#[test]
fn disabled_route_and_invalid_route() {
    let mut flow = RequestFlow::default();
    assert_eq!(
        flow.on_request_headers(
            Ok(RouteTarget::Disabled),
            || None,
            || None,
            true,
            || Placement::Downstream
        ),
        Step::Continue
    );
    let mut flow = RequestFlow::default();
    let step = flow.on_request_headers(
        Err(ConfigError::new("invocation_type", "bad")),
        || Some("c".into()),
        || None,
        true,
        || Placement::Downstream,
    );
    assert!(matches!(
        step,
        Step::Fail(RequestError::RouteConfigInvalid(_))
    ));
}

#[test]
fn no_cluster_fails_unless_configured() {
    let plain = config("");
    let mut flow = RequestFlow::default();
    assert_eq!(
        flow.on_request_headers(
            route(&plain),
            || None,
            || None,
            true,
            || Placement::Downstream
        ),
        Step::Fail(RequestError::NoCluster)
    );
    let with_cluster = config(r#","cluster":"lambda_api""#);
    let mut flow = RequestFlow::default();
    assert_eq!(
        flow.on_request_headers(
            route(&with_cluster),
            || None,
            || None,
            true,
            || Placement::Downstream
        ),
        Step::ReadBody
    );
    match flow.on_body_complete(Vec::new(), Some(&creds()), t(0), WAIT) {
        Step::Dispatch(request) => assert_eq!(request.cluster, "lambda_api"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn trailers_complete_the_body() {
    let config = config("");
    let mut flow = RequestFlow::default();
    flow.on_request_headers(
        route(&config),
        || Some("c".into()),
        || None,
        false,
        || Placement::Downstream,
    );
    assert_eq!(flow.on_request_body(3, false), Step::Pause);
    assert_eq!(flow.on_request_trailers(), Step::ReadBody);
}

fn waiting(config: &FilterConfig) -> RequestFlow {
    let mut flow = RequestFlow::default();
    flow.on_request_headers(
        route(config),
        || Some("lambda".into()),
        || Some(2),
        false,
        || Placement::Downstream,
    );
    flow.on_request_body(2, true);
    assert_eq!(
        flow.on_body_complete(b"{}".to_vec(), None, t(0), WAIT),
        Step::WaitForCredentials { deadline: t(3000) }
    );
    flow
}

#[test]
fn waiting_for_credentials_then_they_arrive() {
    let config = config("");
    let mut flow = waiting(&config);
    match flow.on_credentials_ready(&creds(), t(150)) {
        Step::Dispatch(request) => {
            assert_eq!(request.body, b"{}");
            assert!(request.header("authorization").is_some());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(flow.on_dispatched(Ok(3), t(150)), Step::Pause);
    assert!(flow
        .on_invoke_answer(3, lambda_answer(200, &[], "{}"), t(200))
        .is_some());
}

#[test]
fn waiting_for_credentials_times_out() {
    let config = config("");
    let mut flow = waiting(&config);
    let error = RequestError::CredentialsUnavailable {
        class: crate::credentials::failure::FailureClass::parse("sts_access_denied").unwrap(),
        message: "AssumeRole was denied".into(),
    };
    assert_eq!(
        flow.on_credentials_timeout(error.clone()),
        Step::Fail(error.clone())
    );
    assert_eq!(flow.phase(), &Phase::Finished);
    // A late wake-up finds nothing to do.
    assert_eq!(flow.on_credentials_ready(&creds(), t(5000)), Step::Continue);
    assert_eq!(flow.on_credentials_timeout(error), Step::Continue);
}

// ---- In place (upstream filter) ----

fn forwarded(config: &FilterConfig, end_of_stream: bool) -> (RequestFlow, OutboundRequest, bool) {
    let mut flow = RequestFlow::default();
    let first = flow.on_request_headers(
        route(config),
        || Some("lambda".into()),
        || None,
        end_of_stream,
        || Placement::Upstream,
    );
    let body = if end_of_stream {
        assert_eq!(first, Step::ReadBody);
        Vec::new()
    } else {
        assert_eq!(first, Step::Pause);
        assert_eq!(flow.on_request_body(7, true), Step::ReadBody);
        br#"{"a":1}"#.to_vec()
    };
    match flow.on_body_complete(body, Some(&creds()), t(0), WAIT) {
        Step::Forward {
            invoke,
            replace_body,
        } => {
            assert!(matches!(flow.phase(), Phase::Forwarded { .. }));
            assert!(flow.awaits_answer_in_place());
            assert_eq!(flow.invoke_sent_at(), Some(t(0)));
            (flow, invoke, replace_body)
        }
        other => panic!("expected forward, got {other:?}"),
    }
}

fn answer_headers(status: &str, extra: &[(&str, &str)]) -> HeaderList {
    let mut headers = HeaderList::default();
    headers.push(":status", status);
    for (name, value) in extra {
        headers.push(name, value);
    }
    headers
}

#[test]
fn in_place_passthrough_keeps_the_body_and_relays_the_answer() {
    let config = config("");
    let (mut flow, invoke, replace_body) = forwarded(&config, false);
    assert!(!replace_body);
    assert_eq!(invoke.body, br#"{"a":1}"#);
    assert_eq!(invoke.header(":method"), Some("POST"));
    assert!(invoke.header("authorization").is_some());
    let step = flow.on_answer_headers(
        answer_headers(
            "200",
            &[
                ("content-length", "3"),
                ("x-amzn-requestid", "r"),
                ("content-type", "text/plain"),
            ],
        ),
        false,
    );
    assert_eq!(
        step,
        Step::RelayAnswer(vec![
            (":status".into(), "200".into()),
            ("content-type".into(), "application/json".into()),
            ("content-length".into(), "3".into()),
        ])
    );
    assert!(flow.awaits_answer_in_place());
    assert_eq!(flow.on_answer_body(3, true), Step::AnswerRelayed);
    assert_eq!(flow.on_stream_done(), None);
}

#[test]
fn in_place_get_without_body_is_forwarded_with_an_empty_payload() {
    let config = config("");
    let (_, invoke, replace_body) = forwarded(&config, true);
    assert!(!replace_body);
    assert!(invoke.body.is_empty());
    assert_eq!(invoke.header("content-length"), Some("0"));
}

#[test]
fn event_without_body_is_dispatched_even_upstream() {
    let config = config(r#","payload":"apigw_v2""#);
    let mut flow = RequestFlow::default();
    assert_eq!(
        flow.on_request_headers(
            route(&config),
            || Some("lambda".into()),
            || None,
            true,
            || Placement::Upstream
        ),
        Step::ReadBody
    );
    assert!(matches!(
        flow.on_body_complete(Vec::new(), Some(&creds()), t(0), WAIT),
        Step::Dispatch(_)
    ));
}

#[test]
fn a_configured_cluster_other_than_the_routes_is_dispatched() {
    let config = config(r#","cluster":"elsewhere""#);
    let mut flow = RequestFlow::default();
    flow.on_request_headers(
        route(&config),
        || Some("lambda".into()),
        || None,
        true,
        || Placement::Upstream,
    );
    match flow.on_body_complete(Vec::new(), Some(&creds()), t(0), WAIT) {
        Step::Dispatch(invoke) => assert_eq!(invoke.cluster, "elsewhere"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn trailers_switch_an_in_place_request_to_dispatch() {
    let config = config("");
    let mut flow = RequestFlow::default();
    flow.on_request_headers(
        route(&config),
        || Some("lambda".into()),
        || None,
        false,
        || Placement::Upstream,
    );
    assert_eq!(flow.on_request_trailers(), Step::ReadBody);
    assert!(matches!(
        flow.on_body_complete(b"{}".to_vec(), Some(&creds()), t(0), WAIT),
        Step::Dispatch(_)
    ));
}

#[test]
fn in_place_event_replaces_the_body_and_decodes_the_whole_answer() {
    let config = config(r#","payload":"apigw_v2""#);
    let (mut flow, invoke, replace_body) = forwarded(&config, false);
    assert!(replace_body);
    let event: serde_json::Value = serde_json::from_slice(&invoke.body).unwrap();
    assert_eq!(event["version"], "2.0");
    assert_eq!(
        flow.on_answer_headers(answer_headers("200", &[("x-amzn-requestid", "r")]), false),
        Step::Pause
    );
    assert_eq!(flow.on_answer_body(10, false), Step::Pause);
    assert_eq!(flow.on_answer_body(60, true), Step::ReadAnswerBody);
    let step = flow.on_answer_complete(
        br#"{"statusCode":201,"headers":{"x-app":"1"},"body":"made"}"#.to_vec(),
    );
    match step {
        Step::RewriteAnswer(reply) => {
            assert_eq!(reply.status, 201);
            assert_eq!(reply.header("x-app"), Some("1"));
            assert_eq!(reply.body, b"made");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(flow.phase(), &Phase::Finished);
    assert_eq!(flow.on_stream_done(), None);
}

#[test]
fn in_place_function_error_is_rewritten_to_the_error_reply() {
    let config = config("");
    let (mut flow, _, _) = forwarded(&config, false);
    let headers = answer_headers(
        "200",
        &[
            ("x-amz-function-error", "Unhandled"),
            ("x-amzn-requestid", "r"),
        ],
    );
    assert_eq!(flow.on_answer_headers(headers, false), Step::Pause);
    assert_eq!(flow.on_answer_body(40, true), Step::ReadAnswerBody);
    match flow.on_answer_complete(br#"{"errorMessage":"boom"}"#.to_vec()) {
        Step::RewriteAnswerWithError(RequestError::FunctionError {
            status, message, ..
        }) => {
            assert_eq!(status, 502);
            assert_eq!(message.as_deref(), Some("boom"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn in_place_api_error_without_body_is_rewritten_at_the_headers() {
    let config = config("");
    let (mut flow, _, _) = forwarded(&config, false);
    let headers = answer_headers(
        "429",
        &[
            ("x-amzn-errortype", "TooManyRequestsException"),
            ("retry-after", "3"),
        ],
    );
    match flow.on_answer_headers(headers, true) {
        Step::RewriteAnswerWithError(RequestError::Throttled { retry_after, .. }) => {
            assert_eq!(retry_after.as_deref(), Some("3"))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(flow.phase(), &Phase::Finished);
}

#[test]
fn in_place_answer_over_the_limit_while_buffering_is_replaced_and_the_rest_dropped() {
    let config = config("");
    let (mut flow, _, _) = forwarded(&config, false);
    let headers = answer_headers("200", &[("x-amz-function-error", "Unhandled")]);
    assert_eq!(flow.on_answer_headers(headers, false), Step::Pause);
    assert_eq!(flow.on_answer_body(MAX_ANSWER_BYTES, false), Step::Pause);
    assert_eq!(
        flow.on_answer_body(MAX_ANSWER_BYTES + 1, false),
        Step::RewriteAnswerWithError(RequestError::ResponseTooLarge {
            size: MAX_ANSWER_BYTES + 1,
            limit: MAX_ANSWER_BYTES
        })
    );
    assert!(flow.awaits_answer_in_place());
    assert_eq!(
        flow.on_answer_body(100, false),
        Step::ReplaceAnswerBody(Vec::new())
    );
    assert_eq!(
        flow.on_answer_body(100, true),
        Step::ReplaceAnswerBody(Vec::new())
    );
    assert_eq!(flow.phase(), &Phase::Finished);
    assert_eq!(flow.on_answer_body(100, true), Step::Continue);
}

#[test]
fn in_place_answer_announced_over_the_limit_is_refused_at_its_headers() {
    let config = config("");
    let (mut flow, _, _) = forwarded(&config, false);
    let headers = answer_headers("200", &[("content-length", "99999999")]);
    assert_eq!(
        flow.on_answer_headers(headers, false),
        Step::RewriteAnswerWithError(RequestError::ResponseTooLarge {
            size: 99_999_999,
            limit: MAX_ANSWER_BYTES
        })
    );
    flow.set_refusal_body(b"{\"error\"}".to_vec());
    assert_eq!(
        flow.on_answer_body(65536, false),
        Step::ReplaceAnswerBody(b"{\"error\"}".to_vec())
    );
    assert_eq!(
        flow.on_answer_body(65536, false),
        Step::ReplaceAnswerBody(Vec::new())
    );
    assert_eq!(
        flow.on_answer_body(10, true),
        Step::ReplaceAnswerBody(Vec::new())
    );
    assert_eq!(flow.on_stream_done(), None);
}

#[test]
fn in_place_relayed_answer_counts_when_complete_and_a_cut_one_is_an_error() {
    let config = config("");
    let (mut flow, _, _) = forwarded(&config, false);
    assert!(matches!(
        flow.on_answer_headers(answer_headers("200", &[("content-length", "20")]), false),
        Step::RelayAnswer(_)
    ));
    assert_eq!(flow.on_answer_body(10, false), Step::Continue);
    assert_eq!(flow.on_answer_body(10, true), Step::AnswerRelayed);
    assert_eq!(flow.on_stream_done(), None);

    let (mut cut, _, _) = forwarded(&config, false);
    assert!(matches!(
        cut.on_answer_headers(answer_headers("200", &[("content-length", "20")]), false),
        Step::RelayAnswer(_)
    ));
    assert_eq!(cut.on_answer_body(10, false), Step::Continue);
    assert_eq!(cut.on_stream_done(), Some(RequestError::EndedByRouter));

    // Without a content-length the answer is read whole, so the bound applies first.
    let (mut unannounced, _, _) = forwarded(&config, false);
    assert_eq!(
        unannounced.on_answer_headers(answer_headers("200", &[]), false),
        Step::Pause
    );
}

#[test]
fn a_head_answer_is_read_whole_not_relayed() {
    let config = config("");
    let (mut flow, _, _) = forwarded(&config, false);
    flow.set_head_request();
    assert!(flow.is_head_request());
    assert_eq!(
        flow.on_answer_headers(answer_headers("200", &[("content-length", "20")]), false),
        Step::Pause
    );
    assert_eq!(flow.on_answer_body(20, true), Step::ReadAnswerBody);
}

#[test]
fn in_place_timeout_or_reset_way_out_is_the_end_of_the_stream() {
    let config = config("");
    let (mut flow, _, _) = forwarded(&config, false);
    assert_eq!(flow.on_stream_done(), Some(RequestError::EndedByRouter));
    assert_eq!(flow.on_stream_done(), None);
    assert_eq!(
        flow.on_answer_headers(answer_headers("200", &[]), false),
        Step::Continue
    );
}

#[test]
fn in_place_request_waits_for_credentials_then_is_forwarded() {
    let config = config("");
    let mut flow = RequestFlow::default();
    flow.on_request_headers(
        route(&config),
        || Some("lambda".into()),
        || Some(2),
        false,
        || Placement::Upstream,
    );
    flow.on_request_body(2, true);
    assert_eq!(
        flow.on_body_complete(b"{}".to_vec(), None, t(0), WAIT),
        Step::WaitForCredentials { deadline: t(3000) }
    );
    assert!(matches!(
        flow.on_credentials_ready(&creds(), t(100)),
        Step::Forward { .. }
    ));
    assert_eq!(flow.invoke_sent_at(), Some(t(100)));
}

// ---- Response streaming (invoke_mode: response_stream) ----

mod streaming {
    use super::*;
    use aws_smithy_eventstream::frame::write_message_to;
    use aws_smithy_types::event_stream::{Header, HeaderValue, Message};

    fn frame(event_type: &'static str, payload: &[u8]) -> Vec<u8> {
        let message = Message::new_from_parts(
            vec![
                Header::new(":event-type", HeaderValue::String(event_type.into())),
                Header::new(
                    ":content-type",
                    HeaderValue::String("application/octet-stream".into()),
                ),
                Header::new(":message-type", HeaderValue::String("event".into())),
            ],
            payload.to_vec(),
        );
        let mut out = Vec::new();
        write_message_to(&message, &mut out).unwrap();
        out
    }

    fn chunk(payload: &[u8]) -> Vec<u8> {
        frame("PayloadChunk", payload)
    }

    fn complete(json: &str) -> Vec<u8> {
        frame("InvokeComplete", json.as_bytes())
    }

    const PRELUDE_TYPE: &str = "application/vnd.awslambda.http-integration-response";

    fn stream_config(extra: &str) -> FilterConfig {
        config(&format!(r#","invoke_mode":"response_stream"{extra}"#))
    }

    /// Forwarded in place as InvokeWithResponseStream, the answer's 200 headers seen.
    fn streaming(config: &FilterConfig, function_content_type: &str) -> RequestFlow {
        let (mut flow, invoke, _) = forwarded(config, false);
        assert_eq!(
            invoke.header(":path"),
            Some("/2021-11-15/functions/f/response-streaming-invocations")
        );
        assert_eq!(flow.take_stream_fallback(), None);
        let headers = answer_headers(
            "200",
            &[
                ("content-type", function_content_type),
                ("x-amzn-requestid", "r"),
                ("transfer-encoding", "chunked"),
            ],
        );
        assert_eq!(flow.on_answer_headers(headers, false), Step::Pause);
        assert_eq!(flow.phase(), &Phase::StreamingAnswer);
        assert!(flow.awaits_answer_in_place());
        flow
    }

    /// Envoy's side: buffers the body while the filter pauses, hands over each chunk
    /// once it continues, and collects what the client gets.
    #[derive(Default)]
    struct Envoy {
        buffered: Vec<u8>,
        holding: bool,
        head: Option<Vec<(String, String)>>,
        client: Vec<u8>,
    }

    impl Envoy {
        fn new() -> Self {
            Envoy {
                holding: true,
                ..Envoy::default()
            }
        }

        /// One body chunk through the filter: the step it ended with.
        fn chunk(&mut self, flow: &mut RequestFlow, bytes: &[u8], end: bool) -> Step {
            if !self.holding {
                self.buffered.clear();
            }
            self.buffered.extend_from_slice(bytes);
            let mut step = flow.on_answer_body(self.buffered.len(), end);
            if let Step::ReadStream {
                start,
                size,
                end_of_stream,
            } = step
            {
                assert_eq!(end_of_stream, end);
                assert!(
                    start + size <= self.buffered.len(),
                    "{start}+{size} of {}",
                    self.buffered.len()
                );
                let range = self.buffered[start..start + size].to_vec();
                step = flow.on_stream_bytes(&range, end);
            }
            match &step {
                Step::Pause => {
                    assert!(self.holding, "only the head is held");
                }
                Step::StreamHead { headers, body, .. } => {
                    assert!(self.holding && self.head.is_none());
                    self.head = Some(headers.clone());
                    self.client.extend_from_slice(body);
                    self.holding = false;
                }
                Step::StreamChunk { body, .. } => {
                    assert!(!self.holding);
                    self.client.extend_from_slice(body);
                }
                _ => {}
            }
            step
        }

        fn header(&self, name: &str) -> Vec<&str> {
            self.head
                .iter()
                .flatten()
                .filter(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
                .collect()
        }
    }

    #[test]
    fn prelude_split_across_frames_and_chunks_sets_the_head_then_bytes_flow() {
        let config = stream_config("");
        let mut flow = streaming(&config, PRELUDE_TYPE);
        let prelude = br#"{"statusCode":201,"headers":{"content-type":"text/event-stream","x-app":"1","content-length":"99"},"cookies":["a=1","b=2; Path=/"]}"#;
        let mut first = prelude.to_vec();
        first.extend_from_slice(&[0; 8]);
        let (p1, p2) = first.split_at(40);
        let mut stream = chunk(p1);
        stream.extend(chunk(p2));
        stream.extend(chunk(b"data: one\n\n"));
        let mut envoy = Envoy::new();
        // The first frame arrives in two pieces: nothing decided yet.
        let (a, rest) = stream.split_at(10);
        assert_eq!(envoy.chunk(&mut flow, a, false), Step::Pause);
        assert!(matches!(
            envoy.chunk(&mut flow, rest, false),
            Step::StreamHead {
                complete: false,
                ..
            }
        ));
        let head = envoy.head.clone().unwrap();
        assert_eq!(head[0], (":status".to_string(), "201".to_string()));
        assert_eq!(envoy.header("content-type"), vec!["text/event-stream"]);
        assert_eq!(envoy.header("x-app"), vec!["1"]);
        assert_eq!(envoy.header("set-cookie"), vec!["a=1", "b=2; Path=/"]);
        assert!(envoy.header("content-length").is_empty());
        assert!(envoy.header("x-amzn-requestid").is_empty());
        assert_eq!(envoy.client, b"data: one\n\n");
        // Afterwards each chunk becomes its payload bytes, a frame split across chunks
        // included.
        let two = chunk(b"data: two\n\n");
        let (x, y) = two.split_at(5);
        assert_eq!(
            envoy.chunk(&mut flow, x, false),
            Step::StreamChunk {
                body: Vec::new(),
                complete: false
            }
        );
        assert_eq!(
            envoy.chunk(&mut flow, y, false),
            Step::StreamChunk {
                body: b"data: two\n\n".to_vec(),
                complete: false
            }
        );
        assert_eq!(
            envoy.chunk(&mut flow, &complete("{}"), true),
            Step::StreamChunk {
                body: Vec::new(),
                complete: true
            }
        );
        assert_eq!(envoy.client, b"data: one\n\ndata: two\n\n");
        assert_eq!(flow.phase(), &Phase::Finished);
        assert_eq!(flow.on_stream_done(), None);
    }

    #[test]
    fn bodyless_status_drops_the_streamed_bytes() {
        for status in [204, 304] {
            let config = stream_config("");
            let mut flow = streaming(&config, PRELUDE_TYPE);
            let prelude = format!(r#"{{"statusCode":{status}}}"#);
            let mut first = prelude.into_bytes();
            first.extend_from_slice(&[0; 8]);
            first.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsmugl!");
            let mut envoy = Envoy::new();
            assert!(matches!(
                envoy.chunk(&mut flow, &chunk(&first), false),
                Step::StreamHead { .. }
            ));
            assert_eq!(envoy.head.as_ref().unwrap()[0].1, status.to_string());
            let mut end = chunk(b"more");
            end.extend(complete("{}"));
            assert!(matches!(
                envoy.chunk(&mut flow, &end, true),
                Step::StreamChunk { complete: true, .. }
            ));
            assert!(envoy.client.is_empty(), "{status}: {:?}", envoy.client);
        }
    }

    #[test]
    fn stream_without_prelude_is_200_with_the_functions_content_type() {
        let config = stream_config("");
        let mut flow = streaming(&config, "text/plain");
        let mut envoy = Envoy::new();
        assert!(matches!(
            envoy.chunk(&mut flow, &chunk(b"hello "), false),
            Step::StreamHead { .. }
        ));
        assert_eq!(envoy.head.as_ref().unwrap()[0].1, "200");
        assert_eq!(envoy.header("content-type"), vec!["text/plain"]);
        let mut end = chunk(b"world");
        end.extend(complete(r#"{"ErrorCode":"","LogResult":"bG9n"}"#));
        assert!(matches!(
            envoy.chunk(&mut flow, &end, true),
            Step::StreamChunk { complete: true, .. }
        ));
        assert_eq!(envoy.client, b"hello world");
    }

    #[test]
    fn whole_stream_in_one_chunk_is_head_body_and_success() {
        let config = stream_config("");
        let mut flow = streaming(&config, "application/octet-stream");
        let mut all = chunk(b"ab");
        all.extend(chunk(b"cd"));
        all.extend(complete("{}"));
        let mut envoy = Envoy::new();
        assert!(matches!(
            envoy.chunk(&mut flow, &all, true),
            Step::StreamHead { complete: true, .. }
        ));
        assert_eq!(envoy.client, b"abcd");
    }

    #[test]
    fn function_error_before_the_first_byte_is_the_json_error() {
        let config = stream_config(r#","function_error_status":500"#);
        let mut flow = streaming(&config, PRELUDE_TYPE);
        let mut envoy = Envoy::new();
        // Part of the prelude, held.
        assert_eq!(
            envoy.chunk(&mut flow, &chunk(br#"{"statusCode":20"#), false),
            Step::Pause
        );
        let step = envoy.chunk(
            &mut flow,
            &complete(r#"{"ErrorCode":"Unhandled","ErrorDetails":"{\"errorMessage\":\"boom\"}"}"#),
            false,
        );
        match step {
            Step::RewriteAnswerWithError(RequestError::FunctionError {
                status,
                kind,
                message,
            }) => {
                assert_eq!((status, kind.as_str()), (500, "Unhandled"));
                assert_eq!(message.as_deref(), Some("boom"));
            }
            other => panic!("{other:?}"),
        }
        // The rest of the answer is dropped.
        assert_eq!(
            flow.on_answer_body(10, true),
            Step::ReplaceAnswerBody(Vec::new())
        );
        assert_eq!(flow.phase(), &Phase::Finished);
        assert_eq!(flow.on_stream_done(), None);
    }

    #[test]
    fn function_error_after_the_first_byte_aborts_the_stream() {
        let config = stream_config("");
        let mut flow = streaming(&config, "text/plain");
        let mut envoy = Envoy::new();
        envoy.chunk(&mut flow, &chunk(b"partial"), false);
        assert!(envoy.head.is_some());
        let step = envoy.chunk(
            &mut flow,
            &complete(r#"{"ErrorCode":"Unhandled","ErrorDetails":"late"}"#),
            false,
        );
        assert!(
            matches!(step, Step::AbortStream(RequestError::FunctionError { .. })),
            "{step:?}"
        );
        assert_eq!(flow.phase(), &Phase::Finished);
        assert_eq!(flow.on_answer_body(5, true), Step::Continue);
        assert_eq!(flow.on_stream_done(), None, "counted once, at the abort");
    }

    #[test]
    fn corrupt_frame_before_and_after_the_first_byte() {
        let config = stream_config("");
        let mut corrupt = chunk(b"x");
        let last = corrupt.len() - 1;
        corrupt[last] ^= 0xff;

        let mut flow = streaming(&config, "text/plain");
        let mut envoy = Envoy::new();
        match envoy.chunk(&mut flow, &corrupt, false) {
            Step::RewriteAnswerWithError(RequestError::StreamFailed { reason, .. }) => {
                assert_eq!(reason, "crc_mismatch")
            }
            other => panic!("{other:?}"),
        }

        let mut flow = streaming(&config, "text/plain");
        let mut envoy = Envoy::new();
        envoy.chunk(&mut flow, &chunk(b"ok"), false);
        match envoy.chunk(&mut flow, &corrupt, false) {
            Step::AbortStream(RequestError::StreamFailed { reason, .. }) => {
                assert_eq!(reason, "crc_mismatch")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn exception_frame_after_the_first_byte_aborts() {
        let config = stream_config("");
        let mut flow = streaming(&config, "text/plain");
        let mut envoy = Envoy::new();
        envoy.chunk(&mut flow, &chunk(b"ok"), false);
        let message = Message::new_from_parts(
            vec![
                Header::new(
                    ":exception-type",
                    HeaderValue::String("ServiceException".into()),
                ),
                Header::new(":message-type", HeaderValue::String("exception".into())),
            ],
            br#"{"message":"gone"}"#.to_vec(),
        );
        let mut bytes = Vec::new();
        write_message_to(&message, &mut bytes).unwrap();
        match envoy.chunk(&mut flow, &bytes, false) {
            Step::AbortStream(RequestError::StreamFailed { reason, message }) => {
                assert_eq!(reason, "exception");
                assert!(message.contains("ServiceException"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn end_without_invoke_complete_is_a_truncated_stream() {
        let config = stream_config("");
        // After bytes were sent: aborted.
        let mut flow = streaming(&config, "text/plain");
        let mut envoy = Envoy::new();
        envoy.chunk(&mut flow, &chunk(b"ok"), false);
        match envoy.chunk(&mut flow, &[], true) {
            Step::AbortStream(RequestError::StreamFailed { reason, .. }) => {
                assert_eq!(reason, "truncated")
            }
            other => panic!("{other:?}"),
        }
        // Cut inside a frame before any byte: the JSON error.
        let mut flow = streaming(&config, "text/plain");
        let mut envoy = Envoy::new();
        let frame = chunk(b"never whole");
        match envoy.chunk(&mut flow, &frame[..7], true) {
            Step::RewriteAnswerWithError(RequestError::StreamFailed { reason, .. }) => {
                assert_eq!(reason, "truncated")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(flow.phase(), &Phase::Finished);
        // A 200 with no body at all.
        let (mut flow, _, _) = forwarded(&config, false);
        assert!(matches!(
            flow.on_answer_headers(answer_headers("200", &[]), true),
            Step::RewriteAnswerWithError(RequestError::StreamFailed { .. })
        ));
    }

    #[test]
    fn bad_prelude_before_the_first_byte_is_a_bad_response() {
        let config = stream_config("");
        let mut flow = streaming(&config, PRELUDE_TYPE);
        let mut envoy = Envoy::new();
        assert!(matches!(
            envoy.chunk(&mut flow, &chunk(b"no prelude here"), false),
            Step::RewriteAnswerWithError(RequestError::BadResponse { .. })
        ));
    }

    #[test]
    fn route_timeout_while_streaming_is_the_end_of_the_stream() {
        let config = stream_config("");
        let mut flow = streaming(&config, "text/plain");
        assert_eq!(flow.on_stream_done(), Some(RequestError::EndedByRouter));
        let mut flow = streaming(&config, "text/plain");
        let mut envoy = Envoy::new();
        envoy.chunk(&mut flow, &chunk(b"ok"), false);
        assert_eq!(flow.on_stream_done(), Some(RequestError::EndedByRouter));
        assert_eq!(flow.on_stream_done(), None);
    }

    #[test]
    fn api_errors_and_function_errors_are_decoded_as_in_buffered_mode() {
        let config = stream_config("");
        let (mut flow, _, _) = forwarded(&config, false);
        let headers = answer_headers(
            "429",
            &[
                ("x-amzn-errortype", "TooManyRequestsException"),
                ("content-type", "application/json"),
            ],
        );
        assert_eq!(flow.on_answer_headers(headers, false), Step::Pause);
        assert_eq!(flow.on_answer_body(20, true), Step::ReadAnswerBody);
        assert!(matches!(
            flow.on_answer_complete(br#"{"message":"slow down"}"#.to_vec()),
            Step::RewriteAnswerWithError(RequestError::Throttled { .. })
        ));

        let (mut flow, _, _) = forwarded(&config, false);
        let headers = answer_headers("200", &[("x-amz-function-error", "Unhandled")]);
        assert_eq!(flow.on_answer_headers(headers, false), Step::Pause);
        assert!(matches!(flow.phase(), Phase::BufferingAnswer { .. }));
    }

    #[test]
    fn requests_that_cannot_stream_fall_back_to_the_buffered_invoke_with_a_reason() {
        let config = stream_config("");
        // Downstream placement.
        let mut flow = RequestFlow::default();
        flow.on_request_headers(
            route(&config),
            || Some("lambda".into()),
            || None,
            true,
            || Placement::Downstream,
        );
        match flow.on_body_complete(Vec::new(), Some(&creds()), t(0), WAIT) {
            Step::Dispatch(invoke) => assert_eq!(
                invoke.header(":path"),
                Some("/2015-03-31/functions/f/invocations")
            ),
            other => panic!("{other:?}"),
        }
        let fallback = flow.take_stream_fallback().unwrap();
        assert_eq!(
            fallback.route,
            "/2021-11-15/functions/f/response-streaming-invocations"
        );
        assert!(fallback.reason.contains("upstream_http_filters"));
        assert_eq!(flow.take_stream_fallback(), None);

        // Upstream, a body-less request with an event payload.
        let event = stream_config(r#","payload":"apigw_v2""#);
        let mut flow = RequestFlow::default();
        flow.on_request_headers(
            route(&event),
            || Some("lambda".into()),
            || None,
            true,
            || Placement::Upstream,
        );
        assert!(matches!(
            flow.on_body_complete(Vec::new(), Some(&creds()), t(0), WAIT),
            Step::Dispatch(_)
        ));
        assert!(flow
            .take_stream_fallback()
            .unwrap()
            .reason
            .contains("without a body"));

        // Upstream, trailers.
        let mut flow = RequestFlow::default();
        flow.on_request_headers(
            route(&config),
            || Some("lambda".into()),
            || None,
            false,
            || Placement::Upstream,
        );
        flow.on_request_trailers();
        assert!(matches!(
            flow.on_body_complete(b"{}".to_vec(), Some(&creds()), t(0), WAIT),
            Step::Dispatch(_)
        ));
        assert_eq!(
            flow.take_stream_fallback().unwrap().reason,
            "the request has trailers"
        );

        // A buffered route never reports a fallback.
        let buffered = super::config("");
        let mut flow = RequestFlow::default();
        flow.on_request_headers(
            route(&buffered),
            || Some("lambda".into()),
            || None,
            true,
            || Placement::Downstream,
        );
        flow.on_body_complete(Vec::new(), Some(&creds()), t(0), WAIT);
        assert_eq!(flow.take_stream_fallback(), None);
    }

    #[test]
    fn memory_stays_bounded_over_a_long_stream() {
        let config = stream_config("");
        let mut flow = streaming(&config, "application/octet-stream");
        let mut envoy = Envoy::new();
        let piece = vec![7u8; 65536];
        let frame = chunk(&piece);
        let mut total = 0usize;
        for i in 0..200 {
            // Frames cut at shifting offsets across chunks.
            let cut = (i * 977) % frame.len();
            envoy.chunk(&mut flow, &frame[..cut], false);
            envoy.chunk(&mut flow, &frame[cut..], false);
            total += piece.len();
            let held = flow
                .stream
                .as_ref()
                .map_or(0, |s| s.decoder.buffered() + s.splitter.buffered());
            assert!(held <= frame.len(), "holds {held} bytes");
            assert_eq!(envoy.client.len(), total);
            envoy.client.clear();
            total = 0;
        }
        assert!(matches!(
            envoy.chunk(&mut flow, &complete("{}"), true),
            Step::StreamChunk { complete: true, .. }
        ));
    }
}

#[test]
fn split_placement_downstream_takes_only_what_cannot_go_in_place() {
    let v2 = config(r#","payload":"apigw_v2""#);
    let mut get = RequestFlow::default();
    let step = get.on_request_headers(
        route(&v2),
        || Some("lambda".into()),
        || None,
        true,
        || Placement::DownstreamSplit,
    );
    assert_eq!(step, Step::ReadBody);
    assert!(matches!(
        get.on_body_complete(Vec::new(), Some(&creds()), t(0), WAIT),
        Step::Dispatch(_)
    ));
    let mut post = RequestFlow::default();
    let step = post.on_request_headers(
        route(&v2),
        || Some("lambda".into()),
        || Some(2),
        false,
        || Placement::DownstreamSplit,
    );
    assert_eq!(step, Step::Continue);
    assert_eq!(post.phase(), &Phase::Finished);
    let passthrough = config("");
    let mut get = RequestFlow::default();
    let step = get.on_request_headers(
        route(&passthrough),
        || Some("lambda".into()),
        || None,
        true,
        || Placement::DownstreamSplit,
    );
    assert_eq!(step, Step::Continue);
    let elsewhere = config(r#","cluster":"other""#);
    let mut post = RequestFlow::default();
    let step = post.on_request_headers(
        route(&elsewhere),
        || Some("lambda".into()),
        || Some(2),
        false,
        || Placement::DownstreamSplit,
    );
    assert_eq!(step, Step::Pause);
}

#[test]
fn a_failure_after_lambda_answered_carries_lambdas_request_id() {
    let config = config("");
    let mut flow = dispatched(&config);
    assert_eq!(flow.lambda_request_id(), None);
    let throttled = lambda_answer(
        429,
        &[
            ("x-amzn-requestid", "3e4f5a6b-lambda-request"),
            ("x-amzn-errortype", "TooManyRequestsException"),
        ],
        r#"{"Reason":"ReservedFunctionConcurrentInvocationLimitExceeded","message":"Rate exceeded"}"#,
    );
    let Some(Step::Fail(failure)) = flow.on_invoke_answer(7, throttled, t(1)) else {
        panic!("expected a failure");
    };
    assert_eq!(flow.lambda_request_id(), Some("3e4f5a6b-lambda-request"));
    let reply = failure.to_reply_after(Some("client-id"), flow.lambda_request_id());
    let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(body["error"], "throttled");
    assert_eq!(body["lambda_request_id"], "3e4f5a6b-lambda-request");
    assert_eq!(body["request_id"], "client-id");
    // Before Lambda answers there is none, and a forged-looking id is not copied.
    let mut flow = dispatched(&config);
    let odd = lambda_answer(502, &[("x-amzn-requestid", "a b\u{7f}")], "");
    let _ = flow.on_invoke_answer(7, odd, t(1));
    assert_eq!(flow.lambda_request_id(), None);
}

/// The Invoke dispatched for a POST whose client sent `traceparent` (or none).
fn dispatched_with_trace(config: &FilterConfig, traceparent: Option<&str>) -> OutboundRequest {
    let mut flow = RequestFlow::default();
    flow.on_request_headers(
        route(config),
        || Some("lambda".into()),
        || Some(2),
        false,
        || Placement::Downstream,
    );
    assert!(flow.wants_trace_context());
    flow.set_trace_context(None, traceparent);
    flow.on_request_body(2, true);
    match flow.on_body_complete(b"{}".to_vec(), Some(&creds()), t(0), WAIT) {
        Step::Dispatch(request) => request,
        other => panic!("expected dispatch, got {other:?}"),
    }
}

#[test]
fn the_invoke_carries_the_clients_trace_unsigned() {
    let config = config("");
    let request = dispatched_with_trace(
        &config,
        Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    );
    assert_eq!(
        request.header("x-amzn-trace-id"),
        Some("Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent=00f067aa0ba902b7;Sampled=1")
    );
    let signed = request
        .header("authorization")
        .and_then(|a| a.split("SignedHeaders=").nth(1))
        .unwrap();
    assert!(!signed.contains("x-amzn-trace-id"), "{signed}");
    // Without a trace, no header.
    let request = dispatched_with_trace(&config, None);
    assert_eq!(request.header("x-amzn-trace-id"), None);
}

/// The route's cluster is a host call: asked only when the decision needs it, at most once.
#[test]
fn the_route_cluster_is_read_only_when_needed() {
    let reads = std::cell::Cell::new(0);
    let read = || {
        reads.set(reads.get() + 1);
        Some("lambda".to_string())
    };
    let plain = config("");
    let with_cluster = config(r#","cluster":"lambda""#);
    let other_cluster = config(r#","cluster":"other""#);
    let cases = [
        // Upstream, in place to where the router already goes: never read.
        (
            &plain,
            Placement::Upstream,
            false,
            0,
            UNREAD_ROUTE_CLUSTER,
            Delivery::InPlace,
        ),
        // A named cluster is compared with the route's: read once.
        (
            &with_cluster,
            Placement::Upstream,
            false,
            1,
            "lambda",
            Delivery::InPlace,
        ),
        (
            &other_cluster,
            Placement::Upstream,
            false,
            1,
            "other",
            Delivery::Dispatch,
        ),
        // Dispatched without a named cluster: the route's is where it goes.
        (
            &plain,
            Placement::Downstream,
            false,
            1,
            "lambda",
            Delivery::Dispatch,
        ),
        // A GET with an event cannot go in place: dispatched to the route's cluster.
        (
            &plain,
            Placement::Upstream,
            true,
            1,
            "lambda",
            Delivery::Dispatch,
        ),
    ];
    for (config, placement, get_with_event, expected_reads, cluster, delivery) in cases {
        let mut config = config.clone();
        if get_with_event {
            config.target.payload = PayloadFormat::parse("apigw_v2").unwrap();
        }
        reads.set(0);
        let mut flow = RequestFlow::default();
        flow.on_request_headers(
            route(&config),
            read,
            || None,
            get_with_event,
            move || placement,
        );
        assert_eq!(reads.get(), expected_reads, "{placement:?} {cluster}");
        match &flow.phase {
            Phase::ReceivingBody {
                cluster: c,
                delivery: d,
                ..
            } => {
                assert_eq!(c, cluster);
                assert_eq!(*d, delivery, "{placement:?} {cluster}");
            }
            other => panic!("{other:?}"),
        }
    }
}
