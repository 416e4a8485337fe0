//! The request's way in: headers, body, waiting for credentials, signing, and the
//! Invoke dispatched or forwarded in place.

use super::*;

impl RequestFlow {
    /// Request headers arrived. `route` is the route's resolved target, `route_cluster` reads
    /// the cluster Envoy picked for the route (None for routes without one): called only
    /// when the decision needs it, and at most once (a host call saved on the common
    /// upstream case, where the Invoke goes where the router already sends it).
    /// `content_length` reads the request's announced length (None without a body): called
    /// only for a request this filter takes, so that one it leaves alone costs no header read.
    /// `placement` tells where the filter sits, asked likewise only for a request it takes.
    pub(crate) fn on_request_headers(
        &mut self,
        route: Result<RouteTarget, ConfigError>,
        route_cluster: impl FnOnce() -> Option<String>,
        content_length: impl FnOnce() -> Option<u64>,
        end_of_stream: bool,
        placement: impl FnOnce() -> Placement,
    ) -> Step {
        if !matches!(self.phase, Phase::Start) {
            return Step::Continue;
        }
        let target = match route {
            Err(e) => return self.fail(RequestError::RouteConfigInvalid(e)),
            Ok(RouteTarget::Disabled) => {
                self.phase = Phase::Finished;
                return Step::Continue;
            }
            Ok(RouteTarget::Invoke(target)) => target,
        };
        self.metric_label = Some(target.metric_label.clone());
        self.profile = target.credentials_profile;
        if target.credentials_profile.is_none() {
            // Never signed with some other credentials: refused, as route resolution does.
            return self.fail(RequestError::RouteConfigInvalid(ConfigError::new(
                "credentials",
                "names no credentials profile, and the configuration has no top-level \
                 credentials",
            )));
        }
        // In place only to the cluster the router already picked, and only with somewhere to
        // put the payload: a passthrough body, or an event that replaces the request's body.
        let mut read_cluster = Some(route_cluster);
        let mut route_cluster_read = None;
        let mut route_cluster = || {
            route_cluster_read
                .get_or_insert_with(|| read_cluster.take().and_then(|read| read()))
                .clone()
        };
        let placement = placement();
        let can_go_in_place = (target.cluster.is_none() || target.cluster == route_cluster())
            && (!end_of_stream || target.payload == PayloadFormat::Passthrough);
        if placement == Placement::DownstreamSplit && can_go_in_place {
            self.phase = Phase::Finished;
            return Step::Continue;
        }
        let in_place = placement == Placement::Upstream && can_go_in_place;
        let delivery = if in_place {
            Delivery::InPlace
        } else {
            Delivery::Dispatch
        };
        if !in_place && target.stream_path.is_some() {
            self.stream_fallback = Some(if can_go_in_place {
                "the filter is not in the router's upstream_http_filters"
            } else if target.cluster.is_some() && target.cluster != route_cluster() {
                "the Invoke goes to another cluster than the route's"
            } else {
                "a request without a body cannot carry the event payload"
            });
        }
        let cluster = match (&target.cluster, in_place) {
            (Some(cluster), _) => cluster.clone(),
            (None, true) => UNREAD_ROUTE_CLUSTER.to_string(),
            (None, false) => match route_cluster() {
                Some(cluster) => cluster,
                None => return self.fail(RequestError::NoCluster),
            },
        };
        let limit = target.invocation_type.payload_limit();
        if content_length().is_some_and(|length| length > limit) {
            return self.fail(RequestError::PayloadTooLarge { limit });
        }
        self.phase = Phase::ReceivingBody {
            target,
            cluster,
            delivery,
        };
        if end_of_stream {
            Step::ReadBody
        } else {
            Step::Pause
        }
    }

    /// A body chunk arrived; `buffered_size` is the size buffered so far.
    pub(crate) fn on_request_body(&mut self, buffered_size: usize, end_of_stream: bool) -> Step {
        let Phase::ReceivingBody { target, .. } = &self.phase else {
            return Step::Continue;
        };
        let limit = target.invocation_type.payload_limit();
        if buffered_size as u64 > limit {
            return self.fail(RequestError::PayloadTooLarge { limit });
        }
        if end_of_stream {
            Step::ReadBody
        } else {
            Step::Pause
        }
    }

    /// Whether the request waits for its body to begin (paused in its headers).
    pub(crate) fn awaits_body(&self) -> bool {
        matches!(self.phase, Phase::ReceivingBody { .. })
    }

    /// The body never began (see `body_watch`): answered with the error naming the setting.
    pub(crate) fn on_body_overdue(&mut self) -> Step {
        match self.phase {
            Phase::ReceivingBody { .. } => self.fail(RequestError::BodyNotReceived),
            _ => Step::Continue,
        }
    }

    /// Trailers end the request like a last empty body chunk. The Invoke carries none, and
    /// a request forwarded in place would take them along, so such a request is dispatched.
    pub(crate) fn on_request_trailers(&mut self) -> Step {
        match &mut self.phase {
            Phase::ReceivingBody {
                delivery, target, ..
            } => {
                if *delivery == Delivery::InPlace && target.stream_path.is_some() {
                    self.stream_fallback = Some("the request has trailers");
                }
                *delivery = Delivery::Dispatch;
                Step::ReadBody
            }
            _ => Step::Continue,
        }
    }

    /// The credentials profile that signs this request's Invoke, while it is to be signed.
    pub(crate) fn credentials_profile(&self) -> Option<ProfileId> {
        match &self.phase {
            Phase::ReceivingBody { target, .. } | Phase::AwaitingCredentials { target, .. } => {
                target.credentials_profile
            }
            _ => None,
        }
    }

    /// The whole body, read from the host: sign and build the Invoke, or wait (at most
    /// `max_wait`) when there are no usable credentials.
    pub(crate) fn on_body_complete(
        &mut self,
        body: Vec<u8>,
        credentials: Option<&Credentials>,
        now: SystemTime,
        max_wait: Duration,
    ) -> Step {
        let Phase::ReceivingBody {
            target,
            cluster,
            delivery,
        } = &self.phase
        else {
            return Step::Continue;
        };
        let limit = target.invocation_type.payload_limit();
        if body.len() as u64 > limit {
            return self.fail(RequestError::PayloadTooLarge { limit });
        }
        match credentials {
            Some(credentials) => self.sign(body, credentials, now),
            None => {
                let deadline = now + max_wait;
                self.phase = Phase::AwaitingCredentials {
                    target: Rc::clone(target),
                    cluster: cluster.clone(),
                    delivery: *delivery,
                    body,
                    deadline,
                };
                Step::WaitForCredentials { deadline }
            }
        }
    }

    /// Credentials arrived for a request waiting on them.
    pub(crate) fn on_credentials_ready(
        &mut self,
        credentials: &Credentials,
        now: SystemTime,
    ) -> Step {
        let Phase::AwaitingCredentials {
            target,
            cluster,
            delivery,
            body,
            ..
        } = std::mem::replace(&mut self.phase, Phase::Finished)
        else {
            return Step::Continue;
        };
        self.phase = Phase::ReceivingBody {
            target,
            cluster,
            delivery,
        };
        self.sign(body, credentials, now)
    }

    /// The wait for credentials is over without any: `error` says why.
    pub(crate) fn on_credentials_timeout(&mut self, error: RequestError) -> Step {
        match self.phase {
            Phase::AwaitingCredentials { .. } => self.fail(error),
            _ => Step::Continue,
        }
    }

    fn sign(&mut self, body: Vec<u8>, credentials: &Credentials, now: SystemTime) -> Step {
        let Phase::ReceivingBody {
            target,
            cluster,
            delivery,
        } = &self.phase
        else {
            return Step::Continue;
        };
        let passthrough_unchanged =
            target.payload == PayloadFormat::Passthrough && target.custom_parameters.is_empty();
        let payload = match target.payload {
            PayloadFormat::Passthrough if !target.custom_parameters.is_empty() => {
                merge_custom_parameters(&body, CUSTOM_PARAMETERS_FIELD, &target.custom_parameters)
                    .unwrap_or(body)
            }
            PayloadFormat::Passthrough => body,
            PayloadFormat::Event(format) => {
                let meta = self.meta.take().unwrap_or_default();
                build_event(
                    format,
                    &target.event,
                    &RequestInfo {
                        method: &meta.method,
                        path: &meta.path,
                        raw_query: &meta.raw_query,
                        headers: &meta.headers,
                        body: &body,
                        source_ip: meta.source_ip.as_deref(),
                        request_id: meta.request_id.as_deref(),
                        protocol: &meta.protocol,
                        host: meta.host.as_deref(),
                        now,
                    },
                )
            }
        };
        if payload.len() as u64 > target.invocation_type.payload_limit() {
            let limit = target.invocation_type.payload_limit();
            return self.fail(RequestError::PayloadTooLarge { limit });
        }
        // Only a request forwarded in place can stream (its answer flows through the router).
        let streaming = *delivery == Delivery::InPlace && target.stream_path.is_some();
        let built = if streaming {
            build_stream_invoke(target, cluster, credentials, payload, now)
        } else {
            build_invoke(target, cluster, credentials, payload, now)
        };
        let mut invoke = match built {
            Ok(invoke) => invoke,
            Err(e) => return self.fail(RequestError::Signing(e)),
        };
        if let Some(trace_id) = &self.trace_id {
            // Unsigned, as the AWS SDKs send it.
            invoke.headers.push("x-amzn-trace-id", trace_id);
        }
        match delivery {
            Delivery::Dispatch => Step::Dispatch(invoke),
            Delivery::InPlace => {
                let replace_body = !passthrough_unchanged;
                self.phase = Phase::Forwarded {
                    target: Rc::clone(target),
                    sent_at: now,
                    streaming,
                };
                Step::Forward {
                    invoke,
                    replace_body,
                }
            }
        }
    }

    /// The host's answer to the dispatch: a call token, or the name of the cluster it
    /// could not dispatch to.
    pub(crate) fn on_dispatched(&mut self, result: Result<u32, String>, now: SystemTime) -> Step {
        let Phase::ReceivingBody { target, .. } = &self.phase else {
            return Step::Continue;
        };
        match result {
            Ok(token) => {
                self.phase = Phase::AwaitingInvoke {
                    token,
                    target: Rc::clone(target),
                    sent_at: now,
                };
                Step::Pause
            }
            Err(cluster) => self.fail(RequestError::DispatchFailed { cluster }),
        }
    }
}
