//! Credentials for signing, as the shell sees them: static keys, or AssumeRole credentials
//! shared by all worker VMs through one shared-data record (see `credential_state`, which
//! makes every decision; this module only does the host calls).

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::{Duration, SystemTime};

use log::{debug, info, warn};
use proxy_wasm::hostcalls;
use proxy_wasm::types::Status;

use crate::config::CredentialSource;
use crate::credential_state::{
    epoch_ms, holds_lease, last_error, record_failure, record_success, should_fetch, take_lease,
    usable_credentials, RefreshPolicy, SharedRecord, Waiters,
};
use crate::credentials::Credentials;
use crate::error::RequestError;
use crate::invoke::OutboundRequest;
use crate::response::InvokeAnswer;
use crate::sts::{
    build_assume_role_request, class_is_retryable, parse_assume_role_answer, AssumeRoleSettings,
    StsError,
};

/// Bounded retries of a compare-and-swap write lost to another VM.
const CAS_ATTEMPTS: usize = 8;

/// The largest AssumeRole answer read into the VM (real ones are a few KB); a larger one is
/// a bad response, left unread.
pub const MAX_STS_ANSWER_BYTES: usize = 64 * 1024;

/// A random number from the host's entropy (std seeds `RandomState` from WASI `random_get`).
pub fn random_u64() -> u64 {
    RandomState::new().hash_one(0u8)
}

fn random_fraction() -> f64 {
    (random_u64() >> 11) as f64 / (1u64 << 53) as f64
}

pub enum CredentialShell {
    Static(Credentials),
    AssumeRole(Box<AssumeRoleShell>),
}

pub struct AssumeRoleShell {
    source: Credentials,
    settings: AssumeRoleSettings,
    policy: RefreshPolicy,
    key: String,
    /// Unique per VM: context ids repeat across VMs.
    owner: String,
    record: SharedRecord,
    cas: Option<u32>,
    /// This VM's point in the refresh jitter window, drawn once so that VMs spread out.
    jitter: f64,
    /// The AssumeRole call this VM has in flight.
    sts_token: Option<u32>,
    waiters: Waiters,
}

/// What the root must do after a tick or an STS answer.
#[derive(Default)]
pub struct Work {
    /// Dispatch this AssumeRole and report the token with `sts_dispatched`.
    pub fetch: Option<OutboundRequest>,
    /// Parked requests to resume now that credentials are usable.
    pub wake: Vec<u32>,
    /// Parked requests to fail.
    pub fail: Vec<(u32, RequestError)>,
    /// An AssumeRole call ended: succeeded (true) or failed (false).
    pub refreshed: Option<bool>,
}

impl CredentialShell {
    pub fn new(source: &CredentialSource) -> Self {
        match source {
            CredentialSource::Static(credentials) => CredentialShell::Static(credentials.clone()),
            CredentialSource::AssumeRole { source, settings } => {
                CredentialShell::AssumeRole(Box::new(AssumeRoleShell {
                    source: source.clone(),
                    policy: RefreshPolicy::for_settings(settings),
                    key: settings.shared_data_key(source),
                    settings: settings.clone(),
                    owner: format!("{:016x}", random_u64()),
                    jitter: random_fraction(),
                    record: SharedRecord::default(),
                    cas: None,
                    sts_token: None,
                    waiters: Waiters::default(),
                }))
            }
        }
    }

    pub fn needs_ticks(&self) -> bool {
        matches!(self, CredentialShell::AssumeRole(_))
    }

    /// Credentials to sign with now, if any are usable.
    pub fn usable(&mut self, now: SystemTime) -> Option<Credentials> {
        match self {
            CredentialShell::Static(credentials) => Some(credentials.clone()),
            CredentialShell::AssumeRole(shell) => {
                let now_ms = epoch_ms(now);
                usable_credentials(&shell.record, now_ms, &shell.policy).or_else(|| {
                    shell.read_shared();
                    usable_credentials(&shell.record, now_ms, &shell.policy)
                })
            }
        }
    }

    pub fn max_wait(&self) -> Duration {
        match self {
            CredentialShell::Static(_) => Duration::ZERO,
            CredentialShell::AssumeRole(shell) => shell.settings.max_wait,
        }
    }

    pub fn park(&mut self, context_id: u32, deadline: SystemTime) {
        if let CredentialShell::AssumeRole(shell) = self {
            shell.waiters.add(context_id, epoch_ms(deadline));
        }
    }

    pub fn unpark(&mut self, context_id: u32) {
        if let CredentialShell::AssumeRole(shell) = self {
            shell.waiters.remove(context_id);
        }
    }

    /// Creates the shared record if no VM has yet (done at configure time, on the main
    /// thread, before worker VMs start, so creation never races a lease).
    pub fn init_shared(&mut self) {
        if let CredentialShell::AssumeRole(shell) = self {
            if let Ok((None, _)) = hostcalls::get_shared_data(&shell.key) {
                let _ = hostcalls::set_shared_data(
                    &shell.key,
                    Some(&SharedRecord::default().encode()),
                    None,
                );
            }
        }
    }

    pub fn is_sts_token(&self, token: u32) -> bool {
        matches!(self, CredentialShell::AssumeRole(shell) if shell.sts_token == Some(token))
    }

    /// Periodic work: start a fetch when due, wake or fail parked requests.
    pub fn tick(&mut self, now: SystemTime) -> Work {
        let CredentialShell::AssumeRole(shell) = self else {
            return Work::default();
        };
        let now_ms = epoch_ms(now);
        shell.read_shared();
        let mut work = Work::default();
        if shell.sts_token.is_none()
            && should_fetch(&shell.record, now_ms, &shell.policy, shell.jitter)
            && shell.take_lease(now_ms)
        {
            match build_assume_role_request(&shell.settings, &shell.source, now) {
                Ok(request) => work.fetch = Some(request),
                Err(e) => warn!("proxy_wasm_lambda: could not sign AssumeRole: {e}"),
            }
        }
        shell.settle_waiters(now_ms, &mut work);
        work
    }

    pub fn sts_dispatched(&mut self, result: Result<u32, Status>, now: SystemTime) -> Work {
        let CredentialShell::AssumeRole(shell) = self else {
            return Work::default();
        };
        match result {
            Ok(token) => {
                debug!("proxy_wasm_lambda: AssumeRole dispatched, token {token}");
                shell.sts_token = Some(token);
                Work::default()
            }
            Err(status) => {
                warn!(
                    "proxy_wasm_lambda: AssumeRole dispatch to cluster '{}' refused: {status:?}",
                    shell.settings.sts_cluster
                );
                let error = crate::sts::StsError::Unavailable { status: None };
                shell.write_outcome(
                    |record, now_ms, policy| record_failure(record, &error, now_ms, policy),
                    epoch_ms(now),
                );
                let mut work = Work {
                    refreshed: Some(false),
                    ..Work::default()
                };
                shell.settle_waiters(epoch_ms(now), &mut work);
                work
            }
        }
    }

    /// The AssumeRole answer: store the credentials (or the failure) for every VM.
    pub fn on_sts_answer(&mut self, answer: InvokeAnswer, now: SystemTime) -> Work {
        let CredentialShell::AssumeRole(shell) = self else {
            return Work::default();
        };
        shell.sts_token = None;
        let now_ms = epoch_ms(now);
        let mut work = Work::default();
        let outcome = match answer.unread_body_bytes {
            Some(size) => Err(StsError::BadResponse {
                reason: format!(
                    "the AssumeRole answer of {size} bytes is larger than {MAX_STS_ANSWER_BYTES}"
                ),
            }),
            None => parse_assume_role_answer(answer.status, &answer.body),
        };
        match outcome {
            Ok(fetched) => {
                let valid_for = fetched
                    .expiration
                    .duration_since(now)
                    .unwrap_or_default()
                    .as_secs();
                shell.write_outcome(
                    |record, now_ms, policy| {
                        record_success(record, fetched.clone(), now_ms, policy)
                    },
                    now_ms,
                );
                // record_success refuses credentials too close to expiry (a failure with
                // backoff): count and log what the record says, not the HTTP outcome.
                let accepted = shell.record.failures == 0;
                work.refreshed = Some(accepted);
                if accepted {
                    info!(
                        "proxy_wasm_lambda: AssumeRole {} succeeded; credentials valid for {valid_for} s",
                        shell.settings.role_arn,
                    );
                } else {
                    warn!(
                        "proxy_wasm_lambda: AssumeRole {} failed: {} (its credentials expire in \
                         {valid_for} s, too soon to use them)",
                        shell.settings.role_arn,
                        last_error(&shell.record).unwrap_or_default()
                    );
                }
            }
            Err(error) => {
                work.refreshed = Some(false);
                warn!(
                    "proxy_wasm_lambda: AssumeRole {} failed: {} ({error})",
                    shell.settings.role_arn,
                    error.class()
                );
                shell.write_outcome(
                    |record, now_ms, policy| record_failure(record, &error, now_ms, policy),
                    now_ms,
                );
            }
        }
        shell.settle_waiters(now_ms, &mut work);
        work
    }
}

impl AssumeRoleShell {
    /// Refreshes the local copy of the shared record when another VM changed it.
    fn read_shared(&mut self) {
        match hostcalls::get_shared_data(&self.key) {
            Ok((Some(bytes), cas)) => {
                if cas != self.cas || cas.is_none() {
                    self.record = SharedRecord::decode(&bytes);
                    self.cas = cas;
                }
            }
            Ok((None, _)) => {
                self.record = SharedRecord::default();
                self.cas = None;
            }
            Err(status) => warn!("proxy_wasm_lambda: shared credentials unreadable: {status:?}"),
        }
    }

    /// Takes the fetch lease with a compare-and-swap; false when another VM won it.
    fn take_lease(&mut self, now_ms: u64) -> bool {
        let leased = take_lease(&self.record, &self.owner, now_ms, &self.policy);
        match hostcalls::set_shared_data(&self.key, Some(&leased.encode()), self.cas) {
            Ok(()) => {
                self.read_shared();
                holds_lease(&self.record, &self.owner, now_ms)
            }
            Err(_) => {
                self.read_shared();
                false
            }
        }
    }

    /// Applies `update` to the freshest record and writes it, retrying lost races.
    fn write_outcome(
        &mut self,
        update: impl Fn(&SharedRecord, u64, &RefreshPolicy) -> SharedRecord,
        now_ms: u64,
    ) {
        for _ in 0..CAS_ATTEMPTS {
            self.read_shared();
            let updated = update(&self.record, now_ms, &self.policy);
            match hostcalls::set_shared_data(&self.key, Some(&updated.encode()), self.cas) {
                Ok(()) => {
                    self.read_shared();
                    return;
                }
                Err(Status::CasMismatch) => continue,
                Err(status) => {
                    warn!("proxy_wasm_lambda: shared credentials not written: {status:?}");
                    return;
                }
            }
        }
        warn!("proxy_wasm_lambda: shared credentials not written: too many concurrent writers");
    }

    /// Wakes parked requests when credentials are usable; fails those past their deadline.
    fn settle_waiters(&mut self, now_ms: u64, work: &mut Work) {
        if self.waiters.is_empty() {
            return;
        }
        if usable_credentials(&self.record, now_ms, &self.policy).is_some() {
            work.wake.extend(self.waiters.take_all());
            return;
        }
        let last = last_error(&self.record).filter(|_| self.record.failures > 0);
        if let Some(class) = last.as_ref().filter(|c| !class_is_retryable(c)) {
            // Any VM's failure that waiting cannot fix (access denied, bad source keys):
            // answer now rather than at the deadline.
            let message = format!(
                "no AWS credentials: the last AssumeRole failed with {class}, which needs a \
                 change in IAM or the configuration"
            );
            for context_id in self.waiters.take_all() {
                work.fail.push((
                    context_id,
                    RequestError::CredentialsUnavailable {
                        class: class.clone(),
                        message: message.clone(),
                    },
                ));
            }
            return;
        }
        let expired = self.waiters.take_expired(now_ms);
        if expired.is_empty() {
            return;
        }
        let class = last.unwrap_or_else(|| "sts_unavailable".to_string());
        let message = format!(
            "no AWS credentials within {} ms (last AssumeRole failure: {class})",
            self.settings.max_wait.as_millis()
        );
        for context_id in expired {
            work.fail.push((
                context_id,
                RequestError::CredentialsUnavailable {
                    class: class.clone(),
                    message: message.clone(),
                },
            ));
        }
    }
}
