//! The answer's way back: buffered, relayed and streamed answers, decoded into the
//! client's reply.

use super::*;

/// The decoders of a streamed answer.
#[derive(Debug)]
pub(super) struct AnswerStream {
    pub(super) function_error_status: u16,
    pub(super) decoder: StreamDecoder,
    pub(super) splitter: PreludeSplitter,
    /// While the head is held, how many bytes of Envoy's buffered body were decoded.
    pub(super) fed: usize,
    pub(super) head_sent: bool,
    /// The function's status carries no body (204, 304): its bytes are dropped.
    pub(super) bodyless: bool,
}

impl AnswerStream {
    /// Decodes the next bytes of the answer's body: the head (once) and the function's bytes.
    fn decode(&mut self, bytes: &[u8], end_of_stream: bool) -> Result<Split, RequestError> {
        let mut out = Split::default();
        let events = self
            .decoder
            .push(bytes)
            .map_err(|e| RequestError::from(&e))?;
        for event in events {
            if let Some(error) = RequestError::from_stream_event(&event, self.function_error_status)
            {
                return Err(error);
            }
            if let StreamEvent::Payload(payload) = event {
                let split = self
                    .splitter
                    .push(payload)
                    .map_err(|e| RequestError::from(&e))?;
                merge_split(&mut out, split);
            }
        }
        if end_of_stream {
            self.decoder.finish().map_err(|e| RequestError::from(&e))?;
            let split = self.splitter.finish().map_err(|e| RequestError::from(&e))?;
            merge_split(&mut out, split);
        }
        Ok(out)
    }
}

pub(super) fn merge_split(out: &mut Split, split: Split) {
    if split.head.is_some() {
        out.head = split.head;
    }
    if out.body.is_empty() {
        out.body = split.body;
    } else {
        out.body.extend_from_slice(&split.body);
    }
}

impl RequestFlow {
    /// The Invoke's outcome (the host reports timeouts and resets here too, without a
    /// status). Returns `None` for a token this request is not waiting on.
    pub(crate) fn on_invoke_answer(
        &mut self,
        token: u32,
        answer: CallAnswer,
        now: SystemTime,
    ) -> Option<Step> {
        let Phase::AwaitingInvoke {
            token: expected,
            target,
            sent_at,
        } = &self.phase
        else {
            return None;
        };
        if *expected != token {
            return None;
        }
        let target = Rc::clone(target);
        let sent_at = *sent_at;
        self.note_lambda_request_id(&answer);
        let elapsed = now.duration_since(sent_at).unwrap_or_default();
        let timed_out = elapsed + TIMEOUT_SLACK >= target.timeout;
        let step = match decode_invoke_answer(&target, answer, timed_out) {
            Ok(reply) => Step::Reply(reply),
            Err(error) => Step::Fail(error),
        };
        self.phase = Phase::Finished;
        Some(step)
    }

    /// The answer's headers, for a request forwarded in place. Successful passthrough
    /// answers stream through with their headers rewritten; everything else is read whole
    /// and decoded like a dispatched Invoke's answer.
    pub(crate) fn on_answer_headers(&mut self, headers: HeaderList, end_of_stream: bool) -> Step {
        let Phase::Forwarded {
            target, streaming, ..
        } = &self.phase
        else {
            return Step::Continue;
        };
        let target = Rc::clone(target);
        let streaming = *streaming;
        let status = headers
            .get(":status")
            .and_then(|value| value.parse::<u16>().ok());
        let answer = CallAnswer {
            status,
            headers,
            body: Vec::new(),
            unread_body_bytes: None,
        };
        self.note_lambda_request_id(&answer);
        // A streamed answer that Lambda accepted: decode its event stream. Anything else
        // (an API error, X-Amz-Function-Error) is a plain answer, decoded as in buffered mode.
        if streaming && status == Some(200) && answer.header("x-amz-function-error").is_none() {
            if end_of_stream {
                self.phase = Phase::Finished;
                return Step::RewriteAnswerWithError(RequestError::from(
                    &StreamError::MissingComplete,
                ));
            }
            // The answer's content type is the function's stream content type.
            self.stream = Some(Box::new(AnswerStream {
                function_error_status: target.function_error_status,
                decoder: StreamDecoder::new(DEFAULT_MAX_FRAME_BYTES),
                splitter: PreludeSplitter::new(answer.header("content-type")),
                fed: 0,
                head_sent: false,
                bodyless: false,
            }));
            self.phase = Phase::StreamingAnswer;
            return Step::Pause;
        }
        if end_of_stream {
            self.phase = Phase::Finished;
            return match decode_invoke_answer(&target, answer, false) {
                Ok(reply) => Step::RewriteAnswer(reply),
                Err(error) => Step::RewriteAnswerWithError(error),
            };
        }
        // A HEAD's answer is read whole, so that its body can be dropped in one place.
        if let Some(headers) = relayable_success(&target, &answer).filter(|_| !self.head) {
            self.phase = Phase::RelayingAnswer;
            return Step::RelayAnswer(headers);
        }
        // Known to be over Lambda's limit: refuse it now, before Envoy buffers any of it.
        if let Some(size) = answer
            .header("content-length")
            .and_then(|length| length.trim().parse::<usize>().ok())
            .filter(|size| *size > MAX_ANSWER_BYTES)
        {
            let error = RequestError::ResponseTooLarge {
                size,
                limit: MAX_ANSWER_BYTES,
            };
            self.phase = Phase::DroppingAnswer {
                error_body: Some(Vec::new()),
            };
            return Step::RewriteAnswerWithError(error);
        }
        self.phase = Phase::BufferingAnswer { target, answer };
        Step::Pause
    }

    /// The error reply's body to send in place of the answer's first body chunk, when the
    /// answer was refused at its headers (set by the shell, which renders the reply).
    pub(crate) fn set_refusal_body(&mut self, body: Vec<u8>) {
        if let Phase::DroppingAnswer { error_body } = &mut self.phase {
            *error_body = Some(body);
        }
    }

    /// A chunk of the answer's body arrived; `buffered_size` is the size buffered so far
    /// (the chunk's size once the answer flows).
    pub(crate) fn on_answer_body(&mut self, buffered_size: usize, end_of_stream: bool) -> Step {
        if matches!(self.phase, Phase::StreamingAnswer) {
            return self.on_stream_body(buffered_size, end_of_stream);
        }
        match &mut self.phase {
            Phase::BufferingAnswer { .. } if buffered_size > MAX_ANSWER_BYTES => {
                self.phase = if end_of_stream {
                    Phase::Finished
                } else {
                    Phase::DroppingAnswer { error_body: None }
                };
                Step::RewriteAnswerWithError(RequestError::ResponseTooLarge {
                    size: buffered_size,
                    limit: MAX_ANSWER_BYTES,
                })
            }
            Phase::BufferingAnswer { .. } if end_of_stream => Step::ReadAnswerBody,
            Phase::BufferingAnswer { .. } => Step::Pause,
            Phase::RelayingAnswer if end_of_stream => {
                self.phase = Phase::Finished;
                Step::AnswerRelayed
            }
            Phase::DroppingAnswer { error_body } => {
                let replacement = error_body.take().unwrap_or_default();
                if end_of_stream {
                    self.phase = Phase::Finished;
                }
                Step::ReplaceAnswerBody(replacement)
            }
            _ => Step::Continue,
        }
    }

    /// The answer's whole body, read from the host.
    pub(crate) fn on_answer_complete(&mut self, body: Vec<u8>) -> Step {
        let Phase::BufferingAnswer { target, mut answer } =
            std::mem::replace(&mut self.phase, Phase::Finished)
        else {
            return Step::Continue;
        };
        answer.body = body;
        match decode_invoke_answer(&target, answer, false) {
            Ok(reply) => Step::RewriteAnswer(reply),
            Err(error) => Step::RewriteAnswerWithError(error),
        }
    }

    /// A chunk of a streamed answer: while the head is held, Envoy buffers the body and
    /// `buffered_size` counts it all (only the bytes not yet decoded are read); afterwards
    /// it is the chunk's size.
    fn on_stream_body(&mut self, buffered_size: usize, end_of_stream: bool) -> Step {
        let Some(stream) = self.stream.as_mut() else {
            return Step::Continue;
        };
        let (start, size) = if stream.head_sent {
            (0, buffered_size)
        } else {
            let start = stream.fed.min(buffered_size);
            stream.fed = buffered_size;
            (start, buffered_size - start)
        };
        Step::ReadStream {
            start,
            size,
            end_of_stream,
        }
    }

    /// The bytes asked for with [`Step::ReadStream`].
    pub(crate) fn on_stream_bytes(&mut self, bytes: &[u8], end_of_stream: bool) -> Step {
        if !matches!(self.phase, Phase::StreamingAnswer) {
            return Step::Continue;
        }
        let Some(stream) = self.stream.as_mut() else {
            return Step::Continue;
        };
        let head_sent = stream.head_sent;
        let bodyless = stream.bodyless;
        let decoded = stream.decode(bytes, end_of_stream);
        let done = end_of_stream || decoded.is_err();
        if done {
            self.stream = None;
            self.phase = Phase::Finished;
        }
        match decoded {
            Err(error) if head_sent => Step::AbortStream(error),
            Err(error) => {
                // Nothing reached the client yet: the error replaces the answer, the rest
                // of its body is dropped.
                if !end_of_stream {
                    self.phase = Phase::DroppingAnswer { error_body: None };
                }
                Step::RewriteAnswerWithError(error)
            }
            Ok(Split {
                head: Some(head),
                mut body,
            }) => {
                let bodyless = is_bodyless_status(head.status);
                if let Some(stream) = self.stream.as_mut() {
                    stream.head_sent = true;
                    stream.bodyless = bodyless;
                }
                if bodyless {
                    body.clear();
                }
                let mut headers = Vec::with_capacity(head.headers.len() + 1);
                headers.push((":status".to_string(), head.status.to_string()));
                headers.extend(
                    head.headers
                        .into_iter()
                        .filter(|(name, _)| name != "content-length"),
                );
                Step::StreamHead {
                    headers,
                    body,
                    complete: end_of_stream,
                }
            }
            Ok(Split {
                head: None,
                mut body,
            }) if head_sent => {
                if bodyless {
                    body.clear();
                }
                Step::StreamChunk {
                    body,
                    complete: end_of_stream,
                }
            }
            // The head is still undecided: Envoy keeps buffering.
            Ok(Split { head: None, .. }) => Step::Pause,
        }
    }

    /// The stream ended (Envoy is done with the request). A request forwarded in place whose
    /// answer never came, or never came whole, was ended by Envoy (route timeout, upstream
    /// reset or connect failure), which answered or cut the client's response itself:
    /// returns the error to count and log.
    pub(crate) fn on_stream_done(&mut self) -> Option<RequestError> {
        let unanswered = matches!(
            self.phase,
            Phase::Forwarded { .. }
                | Phase::BufferingAnswer { .. }
                | Phase::RelayingAnswer
                | Phase::StreamingAnswer
        );
        self.phase = Phase::Finished;
        self.stream = None;
        unanswered.then_some(RequestError::EndedByRouter)
    }
}
