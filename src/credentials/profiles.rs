//! Every profile's credentials in one VM: each profile's layers (the cache of
//! [`super::cache`]), the requests waiting for them, and which call belongs to which.

use std::time::{Duration, SystemTime};

use crate::credentials::ambient::Failure;
use crate::credentials::assume_role::AssumeRoleProvider;
use crate::credentials::cache::{
    CachedLayer, CallOwner, DispatchRefusal, Entropy, Layer, LayerOwner, NoCredentials,
    SharedStore, Work,
};
use crate::credentials::container_provider::ContainerProvider;
use crate::credentials::identity::{
    assume_role_key, container_key, imds_key, web_identity_key, AssumeRoleSource,
};
use crate::credentials::imds::ImdsClient;
use crate::credentials::imds_provider::ImdsProvider;
use crate::credentials::source::{AmbientProvider, CredentialSource, ProfileId};
use crate::credentials::state::{epoch_ms, ms, usable_credentials, waiting_failure, Waiters};
use crate::credentials::web_identity_provider::WebIdentityProvider;
use crate::credentials::Credentials;
use crate::http::CallAnswer;

/// One profile's credentials: static keys, or one or two fetched layers and the requests
/// waiting for them.
pub(crate) enum ProfileCredentials {
    Static(Credentials),
    Fetched(Box<FetchedLayers>),
}

pub(crate) struct FetchedLayers {
    top: CachedLayer,
    source: Option<CachedLayer>,
    max_wait: Duration,
    waiters: Waiters,
}

impl ProfileCredentials {
    fn new(owner: &LayerOwner, source: &CredentialSource, entropy: &mut dyn Entropy) -> Self {
        let (top, source, max_wait) = match source {
            CredentialSource::Static(credentials) => {
                return ProfileCredentials::Static(credentials.clone())
            }
            CredentialSource::AssumeRole { source, settings } => (
                CachedLayer::new(
                    owner,
                    Layer::Top,
                    Box::new(AssumeRoleProvider::new(
                        settings.clone(),
                        Some(source.clone()),
                    )),
                    assume_role_key(settings, AssumeRoleSource::Keys(source)),
                    entropy,
                ),
                None,
                settings.max_wait,
            ),
            CredentialSource::Ambient {
                provider,
                assume_role,
                max_wait,
            } => match assume_role {
                None => (
                    ambient_layer(owner, Layer::Top, provider, entropy),
                    None,
                    *max_wait,
                ),
                Some(settings) => {
                    let ambient = ambient_layer(owner, Layer::Source, provider, entropy);
                    (
                        CachedLayer::new(
                            owner,
                            Layer::Top,
                            Box::new(AssumeRoleProvider::new(settings.clone(), None)),
                            assume_role_key(settings, AssumeRoleSource::Layer(&ambient.key)),
                            entropy,
                        ),
                        Some(ambient),
                        *max_wait,
                    )
                }
            },
        };
        ProfileCredentials::Fetched(Box::new(FetchedLayers {
            top,
            source,
            max_wait,
            waiters: Waiters::default(),
        }))
    }

    /// The shared-data keys of its layers (top first).
    #[cfg(test)]
    fn keys(&self) -> Vec<&str> {
        match self {
            ProfileCredentials::Static(_) => Vec::new(),
            ProfileCredentials::Fetched(layers) => std::iter::once(layers.top.key.as_str())
                .chain(layers.source.as_ref().map(|s| s.key.as_str()))
                .collect(),
        }
    }
}

fn ambient_layer(
    owner: &LayerOwner,
    layer: Layer,
    provider: &AmbientProvider,
    entropy: &mut dyn Entropy,
) -> CachedLayer {
    match provider {
        AmbientProvider::Imds(settings) => CachedLayer::new(
            owner,
            layer,
            Box::new(ImdsProvider::new(ImdsClient::new(settings.clone()))),
            imds_key(settings),
            entropy,
        ),
        AmbientProvider::Container(settings) => CachedLayer::new(
            owner,
            layer,
            Box::new(ContainerProvider::new(settings.clone())),
            container_key(settings),
            entropy,
        ),
        AmbientProvider::WebIdentity(settings) => CachedLayer::new(
            owner,
            layer,
            Box::new(WebIdentityProvider::new(settings.clone())),
            web_identity_key(settings),
            entropy,
        ),
    }
}

/// A named profile's credentials in this VM.
struct Profile {
    name: String,
    credentials: ProfileCredentials,
}

/// Every profile's credentials in this VM, by [`ProfileId`]; a profile that the
/// configuration does not have is `None`.
#[derive(Default)]
pub(crate) struct CredentialProfiles {
    profiles: Vec<Option<Profile>>,
}

impl CredentialProfiles {
    /// `sources`: each profile's name and source, by id (`None`: no such profile).
    pub(crate) fn new<'a>(
        sources: impl IntoIterator<Item = Option<(&'a str, &'a CredentialSource)>>,
        entropy: &mut dyn Entropy,
    ) -> Self {
        let mut profiles = Vec::new();
        for (id, source) in sources.into_iter().enumerate() {
            profiles.push(source.map(|(name, source)| {
                let owner = LayerOwner {
                    profile: ProfileId(id),
                    prefix: format!("credentials profile '{name}': ").into(),
                };
                Profile {
                    name: name.to_string(),
                    credentials: ProfileCredentials::new(&owner, source, entropy),
                }
            }));
        }
        CredentialProfiles { profiles }
    }

    fn credentials(&self, id: ProfileId) -> Option<&ProfileCredentials> {
        self.profiles
            .get(id.0)
            .and_then(Option::as_ref)
            .map(|p| &p.credentials)
    }

    fn fetched_mut(&mut self, id: ProfileId) -> Option<&mut FetchedLayers> {
        match self.profiles.get_mut(id.0).and_then(Option::as_mut) {
            Some(Profile {
                credentials: ProfileCredentials::Fetched(layers),
                ..
            }) => Some(layers),
            _ => None,
        }
    }

    /// Every profile that exists: id and name (for the metrics).
    pub(crate) fn names(&self) -> impl Iterator<Item = (ProfileId, &str)> {
        self.profiles
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.as_ref().map(|p| (ProfileId(i), p.name.as_str())))
    }

    /// The shared-data keys of a profile's layers.
    #[cfg(test)]
    pub(crate) fn keys(&self, id: ProfileId) -> Vec<&str> {
        self.credentials(id)
            .map(ProfileCredentials::keys)
            .unwrap_or_default()
    }

    pub(crate) fn needs_ticks(&self) -> bool {
        self.profiles
            .iter()
            .flatten()
            .any(|p| matches!(p.credentials, ProfileCredentials::Fetched(_)))
    }

    /// Credentials to sign with now for this profile, if any are usable.
    pub(crate) fn usable(
        &mut self,
        store: &dyn SharedStore,
        id: ProfileId,
        now: SystemTime,
    ) -> Option<Credentials> {
        match &mut self.profiles.get_mut(id.0)?.as_mut()?.credentials {
            ProfileCredentials::Static(credentials) => Some(credentials.clone()),
            ProfileCredentials::Fetched(layers) => layers.top.usable(store, epoch_ms(now)),
        }
    }

    /// How long a request of this profile may wait for credentials.
    pub(crate) fn max_wait(&self, id: ProfileId) -> Duration {
        match self.credentials(id) {
            Some(ProfileCredentials::Fetched(layers)) => layers.max_wait,
            _ => Duration::ZERO,
        }
    }

    pub(crate) fn park(&mut self, id: ProfileId, context_id: u32, deadline: SystemTime) {
        if let Some(layers) = self.fetched_mut(id) {
            layers.waiters.add(context_id, epoch_ms(deadline));
        }
    }

    /// Forgets a request wherever it waits.
    pub(crate) fn unpark(&mut self, context_id: u32) {
        for layers in self.all_fetched_mut() {
            layers.waiters.remove(context_id);
        }
    }

    fn all_fetched_mut(&mut self) -> impl Iterator<Item = &mut FetchedLayers> {
        self.profiles
            .iter_mut()
            .flatten()
            .filter_map(|p| match &mut p.credentials {
                ProfileCredentials::Fetched(layers) => Some(layers.as_mut()),
                ProfileCredentials::Static(_) => None,
            })
    }

    fn all_fetched(&self) -> impl Iterator<Item = &FetchedLayers> {
        self.profiles
            .iter()
            .flatten()
            .filter_map(|p| match &p.credentials {
                ProfileCredentials::Fetched(layers) => Some(layers.as_ref()),
                ProfileCredentials::Static(_) => None,
            })
    }

    /// Creates the shared records no VM has created yet (at configure time, on the main
    /// thread, before worker VMs start, so creation never races a lease).
    pub(crate) fn init_shared(&self, store: &dyn SharedStore) {
        for layers in self.all_fetched() {
            layers.top.init_shared(store);
            if let Some(source) = &layers.source {
                source.init_shared(store);
            }
        }
    }

    /// Which layer of which profile this call token is, if any.
    pub(crate) fn owner_of(&self, token: u32) -> Option<CallOwner> {
        for layers in self.all_fetched() {
            if layers.top.token == Some(token) {
                return Some(layers.top.owner());
            }
            if let Some(source) = layers.source.as_ref().filter(|s| s.token == Some(token)) {
                return Some(source.owner());
            }
        }
        None
    }

    /// How much of an answer to this call is read into the VM.
    pub(crate) fn answer_limit(&self, owner: CallOwner) -> usize {
        match self.credentials(owner.profile) {
            Some(ProfileCredentials::Fetched(layers)) => layers
                .layer(owner.layer)
                .map_or(0, |l| l.provider.answer_limit()),
            _ => 0,
        }
    }

    /// Periodic work: start fetches when due, wake or fail parked requests.
    pub(crate) fn tick(&mut self, store: &dyn SharedStore, now: SystemTime) -> Work {
        let mut work = Work::default();
        for layers in self.all_fetched_mut() {
            layers.tick(store, now, &mut work);
        }
        work
    }

    pub(crate) fn dispatched(
        &mut self,
        store: &dyn SharedStore,
        owner: CallOwner,
        result: Result<u32, DispatchRefusal>,
        now: SystemTime,
    ) -> Work {
        let mut work = Work::default();
        let Some(layers) = self.fetched_mut(owner.profile) else {
            return work;
        };
        if let Some(layer) = layers.layer_mut(owner.layer) {
            layer.dispatched(store, result, now, &mut work);
        }
        if !work.refreshed.is_empty() {
            layers.settle_waiters(epoch_ms(now), &mut work);
        }
        work
    }

    /// The answer to a credentials call: store the credentials (or the failure) for every
    /// VM, or go on with the next call of the fetch.
    pub(crate) fn on_answer(
        &mut self,
        store: &dyn SharedStore,
        owner: CallOwner,
        answer: &CallAnswer,
        now: SystemTime,
    ) -> Work {
        let mut work = Work::default();
        let Some(layers) = self.fetched_mut(owner.profile) else {
            return work;
        };
        if let Some(layer) = layers.layer_mut(owner.layer) {
            layer.on_answer(store, answer, now, &mut work);
        }
        // Fresh source credentials: the AssumeRole on top may start now rather than at the
        // next tick.
        if owner.layer == Layer::Source && work.refreshed.iter().any(|r| r.ok) {
            layers.tick_top(store, now, &mut work);
        }
        layers.settle_waiters(epoch_ms(now), &mut work);
        work
    }
}

impl FetchedLayers {
    fn layer(&self, layer: Layer) -> Option<&CachedLayer> {
        match layer {
            Layer::Top => Some(&self.top),
            Layer::Source => self.source.as_ref(),
        }
    }

    fn layer_mut(&mut self, layer: Layer) -> Option<&mut CachedLayer> {
        match layer {
            Layer::Top => Some(&mut self.top),
            Layer::Source => self.source.as_mut(),
        }
    }

    fn tick(&mut self, store: &dyn SharedStore, now: SystemTime, work: &mut Work) {
        if let Some(source) = &mut self.source {
            if let Some(request) = source.tick(store, None, now, work) {
                work.fetch.push((source.owner(), request));
            }
        }
        self.tick_top(store, now, work);
        self.settle_waiters(epoch_ms(now), work);
    }

    /// Starts the top layer's fetch when due, signed by the source layer when there is one.
    fn tick_top(&mut self, store: &dyn SharedStore, now: SystemTime, work: &mut Work) {
        let signer = match &mut self.source {
            Some(source) => match source.usable(store, epoch_ms(now)) {
                Some(signer) => Some(signer),
                // Nothing to sign the AssumeRole with yet.
                None => return,
            },
            None => None,
        };
        if let Some(request) = self.top.tick(store, signer.as_ref(), now, work) {
            work.fetch.push((self.top.owner(), request));
        }
    }
    /// Wakes parked requests when credentials are usable; fails those past their deadline.
    fn settle_waiters(&mut self, now_ms: u64, work: &mut Work) {
        if self.waiters.is_empty() {
            return;
        }
        let prefix = &self.top.prefix;
        if usable_credentials(&self.top.record, now_ms, &self.top.policy).is_some() {
            work.wake.extend(self.waiters.take_all());
            return;
        }
        let source_record = self.source.as_ref().map(|s| &s.record);
        let last = waiting_failure(&self.top.record, source_record);
        let failed = match &self.source {
            Some(source) if self.top.record.failures == 0 && last.is_some() => {
                source.provider.describe()
            }
            _ => self.top.provider.describe(),
        };
        if let Some(class) = last.filter(|c| !c.is_retryable()) {
            // Any VM's failure that waiting cannot fix (access denied, bad source keys):
            // answer now rather than at the deadline.
            let message = format!(
                "no AWS credentials ({prefix}the last {failed} failed with {class}, which needs \
                 a change in IAM or the configuration)"
            );
            for context_id in self.waiters.take_all() {
                work.fail.push((
                    context_id,
                    NoCredentials {
                        class,
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
        let class = last.unwrap_or(Failure::Unavailable);
        let message = format!(
            "no AWS credentials within {} ms ({prefix}last {failed} failure: {class})",
            ms(self.max_wait)
        );
        for context_id in expired {
            work.fail.push((
                context_id,
                NoCredentials {
                    class,
                    message: message.clone(),
                },
            ));
        }
    }
}

#[cfg(test)]
mod tests;
