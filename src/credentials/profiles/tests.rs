//! The cache over an in-memory store with Envoy's shared-data semantics: several
//! `CredentialProfiles` over one store are several worker VMs (or several plugin
//! configurations with the same `vm_id`) of one Envoy process.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;
use crate::credentials::cache::{Refresh, StoreError};
use crate::credentials::container::ContainerSettings;
use crate::credentials::provider::CredentialFetcher;
use crate::credentials::sts::AssumeRoleSettings;
use crate::http::{HeaderList, OutboundRequest};
use crate::secret::Secret;

/// Envoy's shared data: `cas` is a per-key version that every write bumps; a write with a
/// stale version fails; `None` writes unconditionally.
#[derive(Default)]
struct MemoryStore {
    entries: RefCell<HashMap<String, (Vec<u8>, u32)>>,
    /// The next this many conditional writes fail as if another VM wrote first.
    lose_races: Cell<u32>,
    writes: Cell<u32>,
}

impl SharedStore for MemoryStore {
    fn get(&self, key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), StoreError> {
        Ok(match self.entries.borrow().get(key) {
            Some((value, cas)) => (Some(value.clone()), Some(*cas)),
            None => (None, None),
        })
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        let mut entries = self.entries.borrow_mut();
        let current = entries.get(key).map(|(_, cas)| *cas);
        if let Some(cas) = cas {
            if self.lose_races.get() > 0 {
                self.lose_races.set(self.lose_races.get() - 1);
                // Another VM's write: the version moves on.
                if let Some(entry) = entries.get_mut(key) {
                    entry.1 += 1;
                }
                return Err(StoreError::CasMismatch);
            }
            if cas != 0 && Some(cas) != current {
                return Err(StoreError::CasMismatch);
            }
        }
        self.writes.set(self.writes.get() + 1);
        entries.insert(key.to_string(), (value.to_vec(), current.unwrap_or(0) + 1));
        Ok(())
    }
}

fn t(seconds: u64) -> SystemTime {
    // 2026-11-23T10:00:00Z + seconds
    UNIX_EPOCH + Duration::from_secs(1_795_428_000 + seconds)
}

fn entropy() -> impl FnMut() -> u64 {
    let mut next = 0x1234_5678_u64;
    move || {
        next = next.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        next
    }
}

fn keys(id: &str, secret: &str) -> Credentials {
    Credentials {
        access_key_id: id.into(),
        secret_access_key: Secret::new(secret),
        session_token: None,
    }
}

const SOURCE_SECRET: &str = "source-secret-key-0001";
const EXTERNAL_ID_A: &str = "tenant-a-external-id";

fn assume_role(external_id: &str, cluster: &str) -> AssumeRoleSettings {
    AssumeRoleSettings {
        role_arn: "arn:aws:iam::123456789012:role/invoker".into(),
        external_id: Some(Secret::new(external_id)),
        session_name: "proxy-wasm-lambda".into(),
        duration_seconds: 3600,
        region: "us-east-1".into(),
        sts_cluster: cluster.into(),
        sts_endpoint: "sts.us-east-1.amazonaws.com".into(),
        timeout: Duration::from_secs(2),
        max_wait: Duration::from_secs(3),
    }
}

fn assume_role_source(external_id: &str, secret: &str, cluster: &str) -> CredentialSource {
    CredentialSource::AssumeRole {
        source: keys("AKIDSOURCE000001", secret),
        settings: assume_role(external_id, cluster),
    }
}

/// One VM with one profile, `default`.
fn vm(source: &CredentialSource) -> CredentialProfiles {
    CredentialProfiles::new([Some((DEFAULT, source))], &mut entropy())
}

const DEFAULT: &str = "default";
const P0: ProfileId = ProfileId::DEFAULT;

fn sts_answer(access_key_id: &str, expiration: &str) -> CallAnswer {
    let body = format!(
        r#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult><Credentials>
    <AccessKeyId>{access_key_id}</AccessKeyId>
    <SecretAccessKey>assumed-secret-{access_key_id}</SecretAccessKey>
    <SessionToken>assumed-token-{access_key_id}</SessionToken>
    <Expiration>{expiration}</Expiration>
  </Credentials></AssumeRoleResult>
</AssumeRoleResponse>"#
    );
    answer(200, body.into_bytes())
}

fn answer(status: u16, body: Vec<u8>) -> CallAnswer {
    CallAnswer {
        status: Some(status),
        headers: HeaderList::default(),
        body,
        unread_body_bytes: None,
    }
}

fn denied() -> CallAnswer {
    answer(
        403,
        br#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>not authorized</Message></Error></ErrorResponse>"#.to_vec(),
    )
}

/// Ticks and dispatches every fetch (tokens from `next_token`); returns what was dispatched.
fn tick_and_dispatch(
    vm: &mut CredentialProfiles,
    store: &MemoryStore,
    now: SystemTime,
    next_token: &Cell<u32>,
) -> Vec<(u32, CallOwner, OutboundRequest)> {
    let work = vm.tick(store, now);
    dispatch_all(vm, store, now, next_token, work)
}

fn dispatch_all(
    vm: &mut CredentialProfiles,
    store: &MemoryStore,
    now: SystemTime,
    next_token: &Cell<u32>,
    work: Work,
) -> Vec<(u32, CallOwner, OutboundRequest)> {
    let mut sent = Vec::new();
    for (owner, request) in work.fetch {
        let token = next_token.get();
        next_token.set(token + 1);
        let more = vm.dispatched(store, owner, Ok(token), now);
        assert!(more.fetch.is_empty());
        sent.push((token, owner, request));
    }
    sent
}

fn header<'a>(request: &'a OutboundRequest, name: &str) -> Option<&'a str> {
    request.headers.get(name)
}

#[test]
fn workers_share_one_assume_role() {
    let store = MemoryStore::default();
    let source = assume_role_source(EXTERNAL_ID_A, SOURCE_SECRET, "sts");
    let mut vms: Vec<CredentialProfiles> = (0..4).map(|_| vm(&source)).collect();
    vms[0].init_shared(&store);
    let tokens = Cell::new(1);
    let mut sent = Vec::new();
    for vm in &mut vms {
        sent.push(tick_and_dispatch(vm, &store, t(0), &tokens));
    }
    let total: usize = sent.iter().map(Vec::len).sum();
    assert_eq!(total, 1, "exactly one VM takes the lease and calls STS");
    let (token, owner, request) = sent[0].pop().unwrap();
    assert_eq!(request.cluster, "sts");
    assert_eq!(vms[0].owner_of(token), Some(owner));
    for vm in &mut vms {
        assert!(vm.usable(&store, P0, t(1)).is_none());
    }
    let work = vms[0].on_answer(
        &store,
        owner,
        &sts_answer("ASIAA", "2026-11-23T11:00:00Z"),
        t(1),
    );
    assert_eq!(
        work.refreshed,
        vec![Refresh {
            profile: P0,
            fetcher: CredentialFetcher::Sts,
            ok: true
        }]
    );
    for vm in &mut vms {
        let credentials = vm.usable(&store, P0, t(2)).unwrap();
        assert_eq!(credentials.access_key_id, "ASIAA");
    }
    // Nothing more to fetch until the refresh window.
    for vm in &mut vms {
        assert!(tick_and_dispatch(vm, &store, t(60), &tokens).is_empty());
    }
}

/// Case 1 of the confused-deputy bypass: the same role and source keys, another ExternalId.
#[test]
fn another_external_id_never_gets_the_credentials() {
    let store = MemoryStore::default();
    let right = assume_role_source(EXTERNAL_ID_A, SOURCE_SECRET, "sts");
    let wrong = assume_role_source("wrong-external-id", SOURCE_SECRET, "sts");
    let (mut a, mut b) = (vm(&right), vm(&wrong));
    a.init_shared(&store);
    b.init_shared(&store);
    let tokens = Cell::new(1);
    let (_, owner, _) = tick_and_dispatch(&mut a, &store, t(0), &tokens)
        .pop()
        .unwrap();
    a.on_answer(
        &store,
        owner,
        &sts_answer("ASIAA", "2026-11-23T11:00:00Z"),
        t(1),
    );
    assert!(a.usable(&store, P0, t(2)).is_some());
    assert!(
        b.usable(&store, P0, t(2)).is_none(),
        "B must not sign with A's credentials"
    );
    // B asks STS itself, with its own ExternalId, and is refused.
    let (_, owner, request) = tick_and_dispatch(&mut b, &store, t(2), &tokens)
        .pop()
        .unwrap();
    assert!(String::from_utf8_lossy(&request.body).contains("ExternalId=wrong-external-id"));
    b.park(P0, 7, t(5));
    let work = b.on_answer(&store, owner, &denied(), t(3));
    assert_eq!(work.fail.len(), 1);
    let (context, error) = &work.fail[0];
    assert_eq!(*context, 7);
    assert_eq!(error.class, "sts_access_denied");
    assert!(b.usable(&store, P0, t(4)).is_none());
    assert!(
        a.usable(&store, P0, t(4)).is_some(),
        "A keeps its credentials"
    );
}

/// Case 2: the same access key id with another secret and its own STS cluster.
#[test]
fn another_secret_asks_its_own_sts_cluster() {
    let store = MemoryStore::default();
    let a_source = assume_role_source(EXTERNAL_ID_A, SOURCE_SECRET, "sts");
    let b_source = assume_role_source(EXTERNAL_ID_A, "wrong-secret", "sts-b");
    let (mut a, mut b) = (vm(&a_source), vm(&b_source));
    let tokens = Cell::new(1);
    let (_, owner, _) = tick_and_dispatch(&mut a, &store, t(0), &tokens)
        .pop()
        .unwrap();
    a.on_answer(
        &store,
        owner,
        &sts_answer("ASIAA", "2026-11-23T11:00:00Z"),
        t(1),
    );
    assert!(b.usable(&store, P0, t(2)).is_none());
    let sent = tick_and_dispatch(&mut b, &store, t(2), &tokens);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].2.cluster, "sts-b");
}

/// Case 3: EKS Pod Identity, one URI, the token selects the role.
#[test]
fn another_container_token_fetches_its_own_credentials() {
    let container = |token: &str| CredentialSource::Ambient {
        provider: AmbientProvider::Container(ContainerSettings {
            cluster: "pod-identity".into(),
            uri: "http://169.254.170.23/v1/credentials".into(),
            authority: "169.254.170.23".into(),
            path: "/v1/credentials".into(),
            authorization: Some(Secret::new(token)),
            timeout: Duration::from_secs(1),
        }),
        assume_role: None,
        max_wait: Duration::from_secs(3),
    };
    let store = MemoryStore::default();
    let (mut a, mut b) = (vm(&container("token-a")), vm(&container("token-b")));
    let tokens = Cell::new(1);
    let (_, owner, request) = tick_and_dispatch(&mut a, &store, t(0), &tokens)
        .pop()
        .unwrap();
    assert_eq!(header(&request, "authorization"), Some("token-a"));
    let body = br#"{"AccessKeyId":"ASIAPODA","SecretAccessKey":"s","Token":"t","Expiration":"2026-11-23T11:00:00Z"}"#;
    a.on_answer(&store, owner, &answer(200, body.to_vec()), t(1));
    assert_eq!(
        a.usable(&store, P0, t(2)).unwrap().access_key_id,
        "ASIAPODA"
    );
    assert!(b.usable(&store, P0, t(2)).is_none());
    let (_, _, request) = tick_and_dispatch(&mut b, &store, t(2), &tokens)
        .pop()
        .unwrap();
    assert_eq!(header(&request, "authorization"), Some("token-b"));
}

#[test]
fn profiles_fetch_wait_and_fail_apart() {
    let store = MemoryStore::default();
    let a = assume_role_source(EXTERNAL_ID_A, SOURCE_SECRET, "sts");
    let c = assume_role_source("tenant-c-wrong-id", SOURCE_SECRET, "sts");
    let static_keys = CredentialSource::Static(keys("AKIDSTATIC000001", "static-secret"));
    let profiles = |entropy: &mut dyn Entropy| {
        CredentialProfiles::new(
            [
                Some((DEFAULT, &static_keys)),
                Some(("tenant-a", &a)),
                Some(("tenant-c", &c)),
            ],
            entropy,
        )
    };
    let (pa, pc) = (ProfileId(1), ProfileId(2));
    // Four workers: one AssumeRole per profile.
    let mut vms: Vec<CredentialProfiles> = (0..4).map(|_| profiles(&mut entropy())).collect();
    let tokens = Cell::new(1);
    let mut sent = Vec::new();
    for vm in &mut vms {
        sent.extend(
            tick_and_dispatch(vm, &store, t(0), &tokens)
                .into_iter()
                .map(|s| (s.1, s.2)),
        );
    }
    let owners: Vec<ProfileId> = sent.iter().map(|(owner, _)| owner.profile).collect();
    assert_eq!(
        owners,
        vec![pa, pc],
        "one fetch per profile, none for static keys"
    );
    assert_eq!(
        vms[0].usable(&store, P0, t(0)).unwrap().access_key_id,
        "AKIDSTATIC000001"
    );
    // Requests wait on their own profile.
    vms[0].park(pa, 1, t(3));
    vms[0].park(pc, 2, t(3));
    let work = vms[0].on_answer(
        &store,
        CallOwner {
            profile: pc,
            layer: Layer::Top,
        },
        &denied(),
        t(1),
    );
    assert_eq!(
        work.fail.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        vec![2]
    );
    assert!(work.wake.is_empty());
    assert_eq!(
        work.refreshed,
        vec![Refresh {
            profile: pc,
            fetcher: CredentialFetcher::Sts,
            ok: false
        }]
    );
    let NoCredentials { message, .. } = &work.fail[0].1;
    assert!(
        message.contains("credentials profile 'tenant-c'"),
        "{message}"
    );
    let logs: Vec<&str> = work.logs.iter().map(|(_, line)| line.as_str()).collect();
    assert!(
        logs.iter()
            .any(|l| l.starts_with("credentials profile 'tenant-c': AssumeRole")),
        "{logs:?}"
    );
    let work = vms[0].on_answer(
        &store,
        CallOwner {
            profile: pa,
            layer: Layer::Top,
        },
        &sts_answer("ASIAA", "2026-11-23T11:00:00Z"),
        t(1),
    );
    assert_eq!(work.wake, vec![1]);
    assert!(work.fail.is_empty());
    for vm in &mut vms {
        assert_eq!(vm.usable(&store, pa, t(2)).unwrap().access_key_id, "ASIAA");
        assert!(
            vm.usable(&store, pc, t(2)).is_none(),
            "tenant-c never gets tenant-a's credentials"
        );
    }
    for (_, line) in &work.logs {
        for secret in [
            SOURCE_SECRET,
            EXTERNAL_ID_A,
            "tenant-c-wrong-id",
            "assumed-secret",
            "assumed-token",
        ] {
            assert!(!line.contains(secret), "{line}");
        }
    }
}

#[test]
fn requests_wait_until_the_deadline_while_fetches_fail_transiently() {
    let store = MemoryStore::default();
    let mut vm = vm(&assume_role_source(EXTERNAL_ID_A, SOURCE_SECRET, "sts"));
    let tokens = Cell::new(1);
    let (_, owner, _) = tick_and_dispatch(&mut vm, &store, t(0), &tokens)
        .pop()
        .unwrap();
    vm.park(P0, 9, t(3));
    let work = vm.on_answer(&store, owner, &answer(503, Vec::new()), t(1));
    assert!(
        work.fail.is_empty(),
        "a transient failure keeps the request waiting"
    );
    let work = vm.tick(&store, t(2));
    assert!(work.fail.is_empty());
    let work = vm.tick(&store, t(3));
    assert_eq!(work.fail.len(), 1);
    assert_eq!(work.fail[0].1.class, "sts_unavailable");
}

#[test]
fn unknown_cluster_is_named_in_the_log() {
    let store = MemoryStore::default();
    let mut vm = vm(&assume_role_source(EXTERNAL_ID_A, SOURCE_SECRET, "nope"));
    let work = vm.tick(&store, t(0));
    let (owner, _) = work.fetch.into_iter().next().unwrap();
    let work = vm.dispatched(&store, owner, Err(DispatchRefusal::UnknownCluster), t(0));
    assert_eq!(work.refreshed.len(), 1);
    assert!(!work.refreshed[0].ok);
    assert!(
        work.logs
            .iter()
            .any(|(_, l)| l.contains("no cluster named 'nope'")),
        "{:?}",
        work.logs
    );
    // Back-off: no new attempt at once, one after it.
    assert!(vm.tick(&store, t(0)).fetch.is_empty());
    assert_eq!(vm.tick(&store, t(2)).fetch.len(), 1);
}

#[test]
fn a_far_expiration_is_cut_to_the_role_duration() {
    let store = MemoryStore::default();
    let mut vm = vm(&assume_role_source(EXTERNAL_ID_A, SOURCE_SECRET, "sts"));
    let tokens = Cell::new(1);
    let (_, owner, _) = tick_and_dispatch(&mut vm, &store, t(0), &tokens)
        .pop()
        .unwrap();
    vm.on_answer(
        &store,
        owner,
        &sts_answer("ASIAA", "9999-12-31T23:59:59Z"),
        t(0),
    );
    // Used for the role's 3600 s at most, then refreshed like any other.
    assert!(vm.usable(&store, P0, t(3500)).is_some());
    assert!(vm.usable(&store, P0, t(3600)).is_none());
    assert_eq!(
        tick_and_dispatch(&mut vm, &store, t(3400), &tokens).len(),
        1
    );
}

#[test]
fn a_far_ambient_expiration_is_cut_to_twelve_hours() {
    let store = MemoryStore::default();
    let source = CredentialSource::Ambient {
        provider: AmbientProvider::Container(ContainerSettings {
            cluster: "ecs".into(),
            uri: "http://169.254.170.2/v2/credentials/x".into(),
            authority: "169.254.170.2".into(),
            path: "/v2/credentials/x".into(),
            authorization: None,
            timeout: Duration::from_secs(1),
        }),
        assume_role: None,
        max_wait: Duration::from_secs(3),
    };
    let mut vm = vm(&source);
    let tokens = Cell::new(1);
    let (_, owner, _) = tick_and_dispatch(&mut vm, &store, t(0), &tokens)
        .pop()
        .unwrap();
    let body = br#"{"AccessKeyId":"ASIATASK","SecretAccessKey":"s","Token":"t","Expiration":"9999-12-31T23:59:59Z"}"#;
    vm.on_answer(&store, owner, &answer(200, body.to_vec()), t(0));
    assert!(vm.usable(&store, P0, t(12 * 3600 - 60)).is_some());
    assert!(vm.usable(&store, P0, t(12 * 3600)).is_none());
}

#[test]
fn lost_races_are_retried() {
    let store = MemoryStore::default();
    let mut vm = vm(&assume_role_source(EXTERNAL_ID_A, SOURCE_SECRET, "sts"));
    let tokens = Cell::new(1);
    let (_, owner, _) = tick_and_dispatch(&mut vm, &store, t(0), &tokens)
        .pop()
        .unwrap();
    store.lose_races.set(3);
    vm.on_answer(
        &store,
        owner,
        &sts_answer("ASIAA", "2026-11-23T11:00:00Z"),
        t(1),
    );
    assert_eq!(vm.usable(&store, P0, t(2)).unwrap().access_key_id, "ASIAA");
}

#[test]
fn a_lost_lease_race_sends_nothing() {
    let store = MemoryStore::default();
    let mut vm = vm(&assume_role_source(EXTERNAL_ID_A, SOURCE_SECRET, "sts"));
    vm.init_shared(&store);
    store.lose_races.set(1);
    assert!(vm.tick(&store, t(0)).fetch.is_empty());
}

#[test]
fn role_chaining_signs_the_assume_role_with_the_source_layer() {
    let store = MemoryStore::default();
    let chained = |external_id: &str| CredentialSource::Ambient {
        provider: AmbientProvider::Container(ContainerSettings {
            cluster: "ecs".into(),
            uri: "http://169.254.170.2/v2/credentials/x".into(),
            authority: "169.254.170.2".into(),
            path: "/v2/credentials/x".into(),
            authorization: None,
            timeout: Duration::from_secs(1),
        }),
        assume_role: Some(assume_role(external_id, "sts")),
        max_wait: Duration::from_secs(3),
    };
    let (mut a, mut b) = (vm(&chained(EXTERNAL_ID_A)), vm(&chained("other-id")));
    assert_eq!(a.keys(P0)[1], b.keys(P0)[1], "the ambient layer is shared");
    assert_ne!(
        a.keys(P0)[0],
        b.keys(P0)[0],
        "the AssumeRole layers are not"
    );
    let tokens = Cell::new(1);
    let sent = tick_and_dispatch(&mut a, &store, t(0), &tokens);
    assert_eq!(sent.len(), 1, "only the source layer can start");
    let (_, owner, request) = &sent[0];
    assert_eq!(owner.layer, Layer::Source);
    assert_eq!(request.cluster, "ecs");
    let body = br#"{"AccessKeyId":"ASIATASK","SecretAccessKey":"task-secret","Token":"task-token","Expiration":"2026-11-23T16:00:00Z"}"#;
    let work = a.on_answer(&store, *owner, &answer(200, body.to_vec()), t(1));
    let sent = dispatch_all(&mut a, &store, t(1), &tokens, work);
    assert_eq!(
        sent.len(),
        1,
        "the AssumeRole starts as soon as the source is there"
    );
    let (_, owner, request) = &sent[0];
    assert_eq!(owner.layer, Layer::Top);
    assert!(header(request, "authorization")
        .unwrap()
        .contains("Credential=ASIATASK/"));
    assert_eq!(header(request, "x-amz-security-token"), Some("task-token"));
    // B reuses the task credentials but makes its own AssumeRole.
    let sent = tick_and_dispatch(&mut b, &store, t(2), &tokens);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].1.layer, Layer::Top);
    assert!(String::from_utf8_lossy(&sent[0].2.body).contains("ExternalId=other-id"));
}

#[test]
fn oversized_answers_are_bad_responses() {
    let store = MemoryStore::default();
    let mut vm = vm(&assume_role_source(EXTERNAL_ID_A, SOURCE_SECRET, "sts"));
    let tokens = Cell::new(1);
    let (_, owner, _) = tick_and_dispatch(&mut vm, &store, t(0), &tokens)
        .pop()
        .unwrap();
    vm.park(P0, 4, t(3));
    let big = CallAnswer {
        unread_body_bytes: Some(1 << 20),
        ..answer(200, Vec::new())
    };
    let work = vm.on_answer(&store, owner, &big, t(1));
    assert!(work
        .logs
        .iter()
        .any(|(_, l)| l.contains("larger than 65536")));
    assert!(
        work.fail.is_empty(),
        "a bad response is retried while the request waits"
    );
    assert_eq!(vm.tick(&store, t(3)).fail[0].1.class, "sts_bad_response");
}

#[test]
fn forgotten_requests_are_not_woken() {
    let store = MemoryStore::default();
    let mut vm = vm(&assume_role_source(EXTERNAL_ID_A, SOURCE_SECRET, "sts"));
    let tokens = Cell::new(1);
    let (_, owner, _) = tick_and_dispatch(&mut vm, &store, t(0), &tokens)
        .pop()
        .unwrap();
    vm.park(P0, 5, t(3));
    vm.park(P0, 6, t(3));
    vm.unpark(5);
    let work = vm.on_answer(
        &store,
        owner,
        &sts_answer("ASIAA", "2026-11-23T11:00:00Z"),
        t(1),
    );
    assert_eq!(work.wake, vec![6]);
}
