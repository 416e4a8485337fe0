//! Root context: validates the plugin configuration once, keeps the credentials fresh on a
//! tick, and resumes (or fails) requests that waited for credentials.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use log::{error, info, warn, Level};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType};

use super::credentials::{log_line, log_once, refusal, HostStore};
use super::driver::{Actor, Vm};
use super::host::now;
use super::host::{random_bytes, random_u64};
use super::http::LambdaHttp;
use super::io::{dispatch, read_call_answer};
use super::logger;
use super::stats::Stats;
use crate::config::{FilterConfig, DEFAULT_PROFILE};
use crate::credentials::cache::Work;
use crate::credentials::failure::FailureClass;
use crate::credentials::profiles::CredentialProfiles;
use crate::error::RequestError;
use crate::flow::attempts::AttemptStash;
use crate::flow::PlacementLatch;
use crate::metrics::Metric;
use crate::route::RouteCache;

/// How often the root polls the shared credentials (cross-VM wake-up latency for waiters).
const CREDENTIALS_TICK: Duration = Duration::from_millis(100);
/// How often the root ticks without credentials to fetch: it answers request bodies that
/// never came (within a second of `flow::body_watch::BODY_WAIT`) and hands the buffered
/// metrics to the host, so `/stats` lags by at most this.
const QUIET_TICK: Duration = Duration::from_millis(250);

pub(super) struct LambdaRoot {
    context_id: u32,
    vm: Option<Rc<Vm>>,
}

impl LambdaRoot {
    pub(super) fn new(context_id: u32) -> Self {
        LambdaRoot {
            context_id,
            vm: None,
        }
    }

    fn carry_out(&self, vm: &Vm, work: Work) {
        for (level, line) in &work.logs {
            log_line(*level, line);
        }
        for refresh in work.refreshed {
            vm.stats.increment(if refresh.ok {
                Metric::CredentialRefreshOk
            } else {
                Metric::CredentialRefreshFailed
            });
            vm.stats
                .increment(Metric::for_refresh(refresh.fetcher, refresh.ok));
            vm.stats.profile_refresh(refresh.profile, refresh.ok);
        }
        for (owner, request) in work.fetch {
            let result = dispatch(&request).map_err(refusal);
            let more = vm
                .credentials
                .borrow_mut()
                .dispatched(&HostStore, owner, result, now());
            self.carry_out(vm, more);
        }
        for context_id in work.wake {
            self.wake(vm, context_id);
        }
        for (context_id, failure) in work.fail {
            let Some(request) = vm.parked.borrow_mut().remove(context_id) else {
                continue;
            };
            vm.unparked(&request);
            if hostcalls::set_effective_context(context_id).is_ok() {
                let step = request
                    .borrow_mut()
                    .flow
                    .on_credentials_timeout(failure.into());
                vm.drive(&request, step, Actor::Root);
            }
            let _ = hostcalls::set_effective_context(self.context_id);
        }
    }

    /// Resumes a parked request: sign, dispatch its Invoke as the request's context.
    fn wake(&self, vm: &Vm, context_id: u32) {
        let Some(request) = vm.parked.borrow_mut().remove(context_id) else {
            return;
        };
        vm.unparked(&request);
        let now = now();
        let profile = request.borrow().flow.credentials_profile();
        let credentials = profile
            .and_then(|profile| vm.credentials.borrow_mut().usable(&HostStore, profile, now));
        if hostcalls::set_effective_context(context_id).is_ok() {
            let step = match credentials {
                Some(credentials) => request
                    .borrow_mut()
                    .flow
                    .on_credentials_ready(&credentials, now),
                // Woken, yet nothing usable (they expired in between): answered, never
                // left waiting.
                None => request.borrow_mut().flow.on_credentials_timeout(
                    RequestError::CredentialsUnavailable {
                        class: FailureClass::Unavailable,
                        message: "no AWS credentials: they expired before the request was \
                                  signed"
                            .to_string(),
                    },
                ),
            };
            vm.drive(&request, step, Actor::Root);
        }
        let _ = hostcalls::set_effective_context(self.context_id);
    }
}

impl Context for LambdaRoot {
    fn on_http_call_response(
        &mut self,
        token_id: u32,
        _num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        let Some(vm) = self.vm.clone() else {
            return;
        };
        let owner = vm.credentials.borrow().owner_of(token_id);
        if let Some(owner) = owner {
            let limit = vm.credentials.borrow().answer_limit(owner);
            let answer = read_call_answer(body_size, limit);
            let work = vm
                .credentials
                .borrow_mut()
                .on_answer(&HostStore, owner, &answer, now());
            self.carry_out(&vm, work);
            return;
        }
        let request = vm.root_invokes.borrow_mut().remove(token_id);
        match request {
            Some(request) => {
                // Envoy keeps the call's answer on the request's context.
                let context_id = request.borrow().context_id;
                if hostcalls::set_effective_context(context_id).is_ok() {
                    vm.on_invoke_answer(&request, token_id, body_size);
                }
                let _ = hostcalls::set_effective_context(self.context_id);
            }
            None => warn!("answer for unknown call token {token_id} dropped"),
        }
    }
}

impl RootContext for LambdaRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        logger::follow_host_level();
        let bytes = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)
            .ok()
            .flatten()
            .unwrap_or_default();
        let env = |name: &str| std::env::var(name).ok();
        let config = match FilterConfig::load(&bytes, &env) {
            Ok(config) => config,
            Err(e) => {
                error!("invalid configuration: {e}");
                return false;
            }
        };
        info!(
            "configured: function {} region {} endpoint {} invocation_type {}",
            config.target.function.identifier,
            config.target.region,
            config.target.endpoint,
            config.target.invocation_type.header_value()
        );
        let mut once: Vec<(Level, String)> = config
            .profiles
            .iter()
            .flatten()
            .map(|p| {
                let line = if p.name == DEFAULT_PROFILE {
                    format!("credentials: {}", p.origin)
                } else {
                    format!("credentials profile '{}': {}", p.name, p.origin)
                };
                (Level::Info, line)
            })
            .collect();
        once.extend(config.warnings.iter().map(|w| (Level::Warn, w.clone())));
        log_once(&once);
        let mut entropy = random_u64;
        let credentials = CredentialProfiles::new(
            config
                .profiles
                .iter()
                .map(|p| p.as_ref().map(|p| (p.name.as_str(), &p.source))),
            &mut entropy,
        );
        credentials.init_shared(&HostStore);
        let needs_ticks = credentials.needs_ticks();
        let stats = Stats::define(credentials.names(), config.invoke_histograms);
        self.vm = Some(Rc::new(Vm {
            config: Rc::new(config),
            routes: RefCell::new(RouteCache::default()),
            placement: PlacementLatch::default(),
            attempts: RefCell::new(AttemptStash::new(random_bytes())),
            credentials: RefCell::new(credentials),
            parked: RefCell::default(),
            body_watch: RefCell::default(),
            awaiting_body: RefCell::default(),
            root_invokes: RefCell::default(),
            stats,
            log_limiter: RefCell::default(),
            timing: Default::default(),
            stream_fallbacks_logged: RefCell::default(),
            retry_tag: format!("{:016x}{:016x}", random_u64(), random_u64()),
        }));
        // The first tick fetches credentials, so the first request rarely waits; without
        // credentials to fetch, the tick answers requests whose body never comes and flushes
        // the metrics.
        let _ = hostcalls::set_tick_period(if needs_ticks {
            CREDENTIALS_TICK
        } else {
            QUIET_TICK
        });
        true
    }

    fn on_tick(&mut self) {
        if let Some(vm) = self.vm.clone() {
            let work = vm.credentials.borrow_mut().tick(&HostStore, now());
            self.carry_out(&vm, work);
            vm.answer_overdue_bodies(self.context_id);
            vm.log_summaries();
            vm.stats.flush();
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(LambdaHttp::new(context_id, self.vm.clone())))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
