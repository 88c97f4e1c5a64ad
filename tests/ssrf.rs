//! Server-side request forgery: endpoint strings an attacker would try, refused by the
//! default policy at subscribe time (through `Api::handle` and `Dispatcher::subscribe`,
//! with the store unchanged), and names resolving to internal addresses refused by
//! `HttpNotifier` at delivery, before any connection is made.
//!
//! Where the line is drawn: an endpoint whose *host is an address* (in any spelling) is
//! judged at subscribe time. An endpoint whose host is a *name* that merely could point
//! inside (`metadata.google.internal`, `127.0.0.1.nip.io`) is accepted at subscribe time,
//! because only resolution can tell, and resolution can change (DNS rebinding): such
//! names are refused at delivery, every time, when they resolve to a non-public address.
//! Names that are internal by definition (`localhost`, single labels) are refused up front.

use std::sync::Arc;

use biot_notifications::api::{AllowEveryone, Api};
use biot_notifications::notification::Event;
use biot_notifications::store::SubscriptionStore;
use biot_notifications::{
    Action, BiotError, Dispatcher, EndpointPolicy, EntityType, Error, EventType, InMemoryStore,
    InvalidEndpoint, SubscribeRequest, ValidationError,
};
use http::{Request, StatusCode};
use serde_json::{json, Value};

mod common;
use common::RecordingNotifier;

const SUBSCRIBE: &str = "/dispatcher/v1/hooks/notifications/subscribe";

/// The one legitimate subscription every test starts with; it must survive untouched.
const LEGITIMATE: &str = "https://plugin.example.com/hook";

/// Endpoint strings an attacker would try, and the reason (`EndpointRejection::reason_code`)
/// the default policy must refuse each with.
const ATTACKS: &[(&str, &str)] = &[
    // IPv4 loopback in every numeric spelling the URL standard reads.
    ("https://127.0.0.1/", "non_public_address"),
    ("https://2130706433/", "non_public_address"),
    ("https://0177.0.0.1/", "non_public_address"),
    ("https://017700000001/", "non_public_address"),
    ("https://0x7f000001/", "non_public_address"),
    ("https://0x7f.1/", "non_public_address"),
    ("https://0X7F.0x00.0x00.0x01/", "non_public_address"),
    ("https://127.1/", "non_public_address"),
    ("https://127.0.1/", "non_public_address"),
    ("https://127.000.000.001/", "non_public_address"),
    ("https://127.0.0.1./", "non_public_address"),
    ("https://127.255.255.254:8443/", "non_public_address"),
    // "This network" / unspecified.
    ("https://0/", "non_public_address"),
    ("https://0.0.0.0/", "non_public_address"),
    ("https://[::]/", "non_public_address"),
    // Cloud metadata services, plainly and in disguise.
    (
        "https://169.254.169.254/latest/meta-data/",
        "non_public_address",
    ),
    ("https://2852039166/", "non_public_address"),
    ("https://0xa9fea9fe/", "non_public_address"),
    ("https://0251.0376.0251.0376/", "non_public_address"),
    ("https://169.254.43518/", "non_public_address"),
    ("https://169.254.170.2/v2/credentials", "non_public_address"),
    (
        "https://[fd00:ec2::254]/latest/meta-data/",
        "non_public_address",
    ),
    (
        "https://100.100.100.200/latest/meta-data/",
        "non_public_address",
    ),
    ("https://[::ffff:169.254.169.254]/", "non_public_address"),
    // Private, shared and link-local networks.
    ("https://10.0.0.1/", "non_public_address"),
    ("https://172.16.0.1/", "non_public_address"),
    ("https://172.31.255.255/", "non_public_address"),
    ("https://192.168.1.1/", "non_public_address"),
    ("https://0300.0250.0.1/", "non_public_address"),
    ("https://100.64.0.1/", "non_public_address"),
    ("https://169.254.1.1/", "non_public_address"),
    ("https://[fe80::1]/", "non_public_address"),
    ("https://[fc00::1]/", "non_public_address"),
    ("https://[fd12:3456::1]/", "non_public_address"),
    // IPv6 loopback, and IPv6 forms that reach IPv4 loopback or metadata.
    ("https://[::1]/", "non_public_address"),
    ("https://[0:0:0:0:0:0:0:1]/", "non_public_address"),
    ("https://[::ffff:127.0.0.1]/", "non_public_address"),
    ("https://[::ffff:7f00:1]/", "non_public_address"),
    ("https://[0:0:0:0:0:ffff:7f00:1]/", "non_public_address"),
    ("https://[::127.0.0.1]/", "non_public_address"),
    ("https://[64:ff9b::7f00:1]/", "non_public_address"),
    ("https://[64:ff9b::127.0.0.1]/", "non_public_address"),
    ("https://[64:ff9b::a9fe:a9fe]/", "non_public_address"),
    ("https://[64:ff9b:1::a00:1]/", "non_public_address"),
    ("https://[2002:7f00:1::1]/", "non_public_address"),
    ("https://[2002:a9fe:a9fe::1]/", "non_public_address"),
    (
        "https://[2001:0:4136:e378:8000:63bf:80ff:fffe]/",
        "non_public_address",
    ),
    // Broadcast and multicast.
    ("https://255.255.255.255/", "non_public_address"),
    ("https://224.0.0.1/", "non_public_address"),
    ("https://[ff02::1]/", "non_public_address"),
    // localhost in any case, with a trailing dot, a port, as a parent, in disguise.
    ("https://localhost/", "localhost_name"),
    ("https://LOCALHOST/", "localhost_name"),
    ("https://LocalHost./", "localhost_name"),
    ("https://localhost:8443/hook", "localhost_name"),
    ("https://plugin.localhost/", "localhost_name"),
    ("https://loc%61lhost/", "localhost_name"),
    ("https://%6c%6f%63%61%6c%68%6f%73%74/", "localhost_name"),
    ("https://localhost%2e/", "localhost_name"),
    (
        "https://\u{24db}\u{24de}\u{24d2}\u{24d0}\u{24db}\u{24d7}\u{24de}\u{24e2}\u{24e3}/",
        "localhost_name",
    ),
    ("https://localhost\u{3002}/", "localhost_name"),
    ("https://local\u{ad}host/", "localhost_name"),
    // Single-label names, which resolve through search domains to internal hosts.
    ("https://intranet/", "not_fully_qualified"),
    (
        "https://metadata/computeMetadata/v1/",
        "not_fully_qualified",
    ),
    ("https://instance-data/", "not_fully_qualified"),
    // User-info and fragment tricks: which host is "the" host must not be ambiguous.
    ("https://good.example@127.0.0.1/", "credentials"),
    ("https://good.example:443@127.0.0.1/", "credentials"),
    ("https://@127.0.0.1/", "credentials"),
    ("https://127.0.0.1%2f@good.example/", "credentials"),
    ("https://127.0.0.1#@good.example/", "fragment"),
    ("https://good.example#@127.0.0.1/", "fragment"),
    // A backslash ends the host for http(s): the host here is 127.0.0.1.
    ("https://127.0.0.1\\@good.example/", "non_public_address"),
    ("https:\\\\127.0.0.1\\hook", "non_public_address"),
    ("https:127.0.0.1/", "non_public_address"),
    ("https://good.example%40127.0.0.1/", "not_a_url"),
    // Percent-encoded and Unicode spellings of loopback.
    ("https://%31%32%37.0.0.1/", "non_public_address"),
    ("https://%31%32%37%2e%30%2e%30%2e%31/", "non_public_address"),
    (
        "https://\u{ff11}\u{ff12}\u{ff17}.\u{ff10}.\u{ff10}.\u{ff11}/",
        "non_public_address",
    ),
    (
        "https://127\u{3002}0\u{3002}0\u{3002}1/",
        "non_public_address",
    ),
    // Zone ids are not part of a URL's host.
    ("https://[fe80::1%25eth0]/", "not_a_url"),
    // Control characters and whitespace the URL parser would silently drop.
    ("https://loc\nalhost/", "invalid_character"),
    ("https://127.0.0.1\t/", "invalid_character"),
    ("https://exa\u{0}mple.com/", "invalid_character"),
    (
        "https://plugin.example.com/\r\nHost: 127.0.0.1",
        "invalid_character",
    ),
    (" https://127.0.0.1/", "invalid_character"),
    ("https://plugin.example.com\u{7f}/", "invalid_character"),
    ("https://plugin.example.com/\u{85}", "invalid_character"),
    // Schemes other than http(s).
    ("file:///etc/passwd", "unsupported_scheme"),
    ("file://localhost/etc/passwd", "unsupported_scheme"),
    ("gopher://127.0.0.1:6379/_FLUSHALL", "unsupported_scheme"),
    ("ftp://plugin.example.com/", "unsupported_scheme"),
    ("data:text/plain,hello", "unsupported_scheme"),
    ("javascript:alert(1)", "unsupported_scheme"),
    ("dict://127.0.0.1:11211/stats", "unsupported_scheme"),
    ("ldap://127.0.0.1/", "unsupported_scheme"),
    ("ws://plugin.example.com/", "unsupported_scheme"),
    ("//plugin.example.com/hook", "not_a_url"),
    // Plain http, even to a public host (and checked before the address).
    ("http://plugin.example.com/hook", "insecure_scheme"),
    ("HTTP://plugin.example.com/hook", "insecure_scheme"),
    (
        "http://169.254.169.254/latest/meta-data/",
        "insecure_scheme",
    ),
];

/// Names that could point anywhere: accepted at subscribe time, judged at delivery.
const NAMES_JUDGED_AT_DELIVERY: &[&str] = &[
    "https://metadata.google.internal/computeMetadata/v1/",
    "https://instance-data.ec2.internal/latest/meta-data/",
    "https://127.0.0.1.nip.io/",
    "https://localhost.localdomain/",
    "https://rebind.plugin.example.com/",
];

fn reason_code(error: &InvalidEndpoint) -> &'static str {
    error.reason().reason_code()
}

/// The endpoint policy's reason, for an error of the dispatcher.
fn dispatcher_reason_code(error: &Error) -> &'static str {
    match error {
        Error::Validation(ValidationError::Endpoint(refused)) => reason_code(refused),
        other => panic!("expected INVALID_ENDPOINT, got {other:?}"),
    }
}

/// A dispatcher with the default (strict) policy, holding [`LEGITIMATE`] already.
async fn dispatcher() -> (Dispatcher, InMemoryStore, Arc<RecordingNotifier>) {
    let store = InMemoryStore::new();
    let notifier = Arc::new(RecordingNotifier::default());
    let dispatcher = Dispatcher::new(store.clone(), Arc::clone(&notifier));
    dispatcher
        .subscribe(&SubscribeRequest::new("patient", "_create", LEGITIMATE))
        .await
        .expect("the legitimate endpoint is accepted");
    (dispatcher, store, notifier)
}

/// The store holds the legitimate subscription and nothing else, and a dispatch reaches
/// only it.
async fn assert_only_the_legitimate_subscription_remains(
    dispatcher: &Dispatcher,
    store: &InMemoryStore,
    notifier: &RecordingNotifier,
) {
    assert_eq!(store.count().await.unwrap(), 1);
    let event = Event::new(
        EventType::new(EntityType::Patient, Action::Create).unwrap(),
        json!({"_id": "p-1"}),
    );
    let report = dispatcher.dispatch(&event).await.unwrap();
    assert_eq!(report.matched(), 1);
    assert_eq!(notifier.endpoint_list(), [LEGITIMATE]);
}

#[test]
fn the_matrix_has_at_least_forty_attacks_and_each_is_refused_by_the_default_policy() {
    assert!(ATTACKS.len() >= 40, "only {} attacks", ATTACKS.len());
    let policy = EndpointPolicy::default();
    let mut wrong = Vec::new();
    for &(input, expected) in ATTACKS {
        match policy.validate(input) {
            Ok(endpoint) => wrong.push(format!("{input:?} was accepted as {endpoint}")),
            Err(error) if reason_code(&error) != expected => wrong.push(format!(
                "{input:?} was refused as {}, expected {expected}: {error}",
                reason_code(&error)
            )),
            Err(_) => {}
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

#[tokio::test]
async fn every_attack_is_a_400_invalid_endpoint_through_the_api_and_the_store_is_unchanged() {
    let (dispatcher, store, notifier) = dispatcher().await;
    let api = Api::builder(dispatcher.clone())
        .authorizer(AllowEveryone)
        .build()
        .unwrap();
    for &(input, expected) in ATTACKS {
        let body = json!({"entityTypeName": "patient", "actionName": "_create", "endpoint": input});
        let request = Request::post(SUBSCRIBE)
            .header("content-type", "application/json")
            .body(body.to_string())
            .unwrap();
        let response = api.handle(request).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{input:?}");
        let error: Value = serde_json::from_slice(response.body()).unwrap();
        assert_eq!(error["code"], "INVALID_ENDPOINT", "{input:?}: {error}");
        assert_eq!(error["details"]["invalidEndpoint"], input, "{input:?}");
        // Refused for the reason the matrix names, as the policy itself says it.
        let refusal = EndpointPolicy::default()
            .validate(input)
            .expect_err("the policy refuses it");
        assert_eq!(reason_code(&refusal), expected, "{input:?}: {refusal}");
        assert_eq!(
            error["details"]["reason"],
            refusal.details()["reason"],
            "{input:?}"
        );
        // The same attempt with a template narrows nothing: still refused.
        let templated = json!({
            "entityTypeName": "patient", "actionName": "_create", "endpoint": input,
            "templateName": "adultPatient",
        });
        let request = Request::post(SUBSCRIBE)
            .header("content-type", "application/json")
            .body(templated.to_string())
            .unwrap();
        assert_eq!(api.handle(request).await.status(), 400, "{input:?}");
    }
    assert_only_the_legitimate_subscription_remains(&dispatcher, &store, &notifier).await;
}

#[tokio::test]
async fn every_attack_is_refused_by_dispatcher_subscribe_and_the_store_is_unchanged() {
    let (dispatcher, store, notifier) = dispatcher().await;
    for &(input, expected) in ATTACKS {
        for action in ["_create", "create"] {
            let request = SubscribeRequest::new("patient", action, input);
            let error = dispatcher
                .subscribe(&request)
                .await
                .expect_err(&format!("{input:?} must be refused"));
            assert_eq!(error.code(), "INVALID_ENDPOINT", "{input:?}");
            assert_eq!(
                dispatcher_reason_code(&error),
                expected,
                "{input:?}: {error}"
            );
            assert_eq!(store.count().await.unwrap(), 1, "{input:?}");
        }
    }
    assert_only_the_legitimate_subscription_remains(&dispatcher, &store, &notifier).await;
}

#[test]
fn names_that_could_point_inside_are_accepted_at_subscribe_and_left_to_delivery() {
    let policy = EndpointPolicy::default();
    for &input in NAMES_JUDGED_AT_DELIVERY {
        let endpoint = policy
            .validate(input)
            .unwrap_or_else(|e| panic!("{input:?} is a name, judged at delivery: {e}"));
        assert!(
            matches!(endpoint.host(), url::Host::Domain(_)),
            "{input:?} has a name for a host"
        );
    }
}

#[test]
fn internal_names_with_several_trailing_dots_are_refused_at_subscribe() {
    let policy = EndpointPolicy::default();
    for input in [
        "https://localhost../",
        "https://localhost.../hook",
        "https://plugin.localhost../",
        "https://intranet../",
    ] {
        let refused = policy.validate(input);
        assert!(
            refused.is_err(),
            "{input:?} was accepted as {}",
            refused.unwrap()
        );
    }
}

/// At delivery: `HttpNotifier` resolves names with a fake resolver and must refuse every
/// internal address before connecting.
#[cfg(feature = "http-notifier")]
mod delivery {
    use std::collections::HashMap;
    use std::io;
    use std::net::{IpAddr, Ipv4Addr};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use async_trait::async_trait;
    use biot_notifications::dispatcher::DeliveryOutcome;
    use biot_notifications::notification::Event;
    use biot_notifications::notifier::http_notifier::{AddressResolver, HttpNotifier};
    use biot_notifications::notifier::{DeliveryError, Notifier};
    use biot_notifications::{
        AddressRange, Dispatcher, Endpoint, EndpointPolicy, EndpointRejection, EventType,
        InMemoryStore, SubscribeRequest,
    };
    use serde_json::json;
    use tokio::net::TcpListener;

    use super::NAMES_JUDGED_AT_DELIVERY;

    /// Each name resolves to these addresses; the first refused one is reported, in the
    /// range given.
    const RESOLUTIONS: &[(&str, &[&str], AddressRange)] = &[
        (
            "loopback.test.example",
            &["127.0.0.1"],
            AddressRange::Loopback,
        ),
        (
            "loopback-high.test.example",
            &["127.1.2.3"],
            AddressRange::Loopback,
        ),
        ("loopback6.test.example", &["::1"], AddressRange::Loopback),
        ("ten.test.example", &["10.1.2.3"], AddressRange::Private),
        (
            "one-seven-two.test.example",
            &["172.16.5.4"],
            AddressRange::Private,
        ),
        (
            "one-seven-two-top.test.example",
            &["172.31.255.254"],
            AddressRange::Private,
        ),
        (
            "one-nine-two.test.example",
            &["192.168.0.10"],
            AddressRange::Private,
        ),
        (
            "metadata.test.example",
            &["169.254.169.254"],
            AddressRange::CloudMetadata,
        ),
        (
            "ecs.test.example",
            &["169.254.170.2"],
            AddressRange::CloudMetadata,
        ),
        (
            "aws6.test.example",
            &["fd00:ec2::254"],
            AddressRange::CloudMetadata,
        ),
        (
            "alibaba.test.example",
            &["100.100.100.200"],
            AddressRange::CloudMetadata,
        ),
        (
            "cgnat.test.example",
            &["100.64.0.1"],
            AddressRange::SharedCgnat,
        ),
        (
            "link-local.test.example",
            &["169.254.1.1"],
            AddressRange::LinkLocal,
        ),
        (
            "link-local6.test.example",
            &["fe80::1"],
            AddressRange::LinkLocal,
        ),
        (
            "mapped.test.example",
            &["::ffff:127.0.0.1"],
            AddressRange::Loopback,
        ),
        (
            "mapped-metadata.test.example",
            &["::ffff:169.254.169.254"],
            AddressRange::CloudMetadata,
        ),
        (
            "nat64.test.example",
            &["64:ff9b::7f00:1"],
            AddressRange::Loopback,
        ),
        (
            "six-to-four.test.example",
            &["2002:7f00:1::1"],
            AddressRange::Loopback,
        ),
        (
            "unique-local.test.example",
            &["fd12:3456::1"],
            AddressRange::UniqueLocal,
        ),
        ("zero.test.example", &["0.0.0.0"], AddressRange::Unspecified),
        ("zero6.test.example", &["::"], AddressRange::Unspecified),
        (
            "multicast.test.example",
            &["224.0.0.1"],
            AddressRange::Multicast,
        ),
        (
            "multicast6.test.example",
            &["ff02::1"],
            AddressRange::Multicast,
        ),
        (
            "broadcast.test.example",
            &["255.255.255.255"],
            AddressRange::Broadcast,
        ),
        // Every address is vetted, not only the first.
        (
            "mixed.test.example",
            &["127.0.0.1", "10.0.0.1", "::1"],
            AddressRange::Loopback,
        ),
        // The names a plugin could register, from the subscribe-time part.
        (
            "metadata.google.internal",
            &["169.254.169.254"],
            AddressRange::CloudMetadata,
        ),
        (
            "instance-data.ec2.internal",
            &["169.254.169.254"],
            AddressRange::CloudMetadata,
        ),
        ("127.0.0.1.nip.io", &["127.0.0.1"], AddressRange::Loopback),
        (
            "localhost.localdomain",
            &["127.0.0.1", "::1"],
            AddressRange::Loopback,
        ),
        (
            "rebind.plugin.example.com",
            &["127.0.0.1"],
            AddressRange::Loopback,
        ),
    ];

    /// Answers from [`RESOLUTIONS`], so no name reaches DNS.
    #[derive(Debug, Default)]
    struct FakeResolver {
        lookups: Arc<AtomicUsize>,
    }

    #[async_trait]
    impl AddressResolver for FakeResolver {
        async fn resolve(&self, host: &str) -> io::Result<Vec<IpAddr>> {
            self.lookups.fetch_add(1, Ordering::SeqCst);
            let host = host.strip_suffix('.').unwrap_or(host);
            RESOLUTIONS
                .iter()
                .find(|(name, _, _)| *name == host)
                .map(|(_, addresses, _)| addresses.iter().map(|a| a.parse().unwrap()).collect())
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{host}: unknown")))
        }
    }

    /// A TCP listener on 127.0.0.1 that counts the connections made to it.
    struct Receiver {
        port: u16,
        connections: Arc<AtomicUsize>,
    }

    impl Receiver {
        async fn start() -> Receiver {
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let connections = Arc::new(AtomicUsize::new(0));
            let count = Arc::clone(&connections);
            // Ends with the test's runtime.
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    count.fetch_add(1, Ordering::SeqCst);
                    drop(stream);
                }
            });
            Receiver { port, connections }
        }

        async fn assert_untouched(&self) {
            // Time for a stray connection to be accepted and counted.
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert_eq!(
                self.connections.load(Ordering::SeqCst),
                0,
                "the receiver was contacted"
            );
        }
    }

    fn notifier() -> (HttpNotifier, Arc<AtomicUsize>) {
        let resolver = FakeResolver::default();
        let lookups = Arc::clone(&resolver.lookups);
        let notifier = HttpNotifier::builder()
            .endpoint_policy(EndpointPolicy::default())
            .resolver(resolver)
            .connect_timeout(Duration::from_secs(1))
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        (notifier, lookups)
    }

    /// The refusal each name must meet: its first non-public address.
    fn expected_refusal(addresses: &[&str], range: AddressRange) -> EndpointRejection {
        let address: IpAddr = addresses[0].parse().unwrap();
        EndpointRejection::NonPublicAddress { address, range }
    }

    /// Before any delivery is attempted: every address in the table is one the policy
    /// refuses. Were one not, the notifier would connect to it, and the test must never
    /// send traffic anywhere but this machine's loopback.
    fn assert_every_resolution_is_refused_by_the_policy() {
        let policy = EndpointPolicy::default();
        for (name, addresses, _) in RESOLUTIONS {
            for address in *addresses {
                let address: IpAddr = address.parse().unwrap();
                assert!(
                    policy.check_address(address).is_err(),
                    "{name} -> {address} is public; it has no place in this table"
                );
            }
        }
    }

    #[tokio::test]
    async fn names_resolving_to_internal_addresses_are_refused_before_any_connection() {
        assert_every_resolution_is_refused_by_the_policy();
        let receiver = Receiver::start().await;
        let (notifier, lookups) = notifier();
        let notification = Event::new(EventType::parse("patient", "_create").unwrap(), json!({}))
            .prepare(Some("<service token>".to_owned()));
        for &(name, addresses, range) in RESOLUTIONS {
            let url = format!("https://{name}:{}/hook", receiver.port);
            let endpoint = Endpoint::parse(&url).unwrap();
            // The name itself passes the policy; only its addresses give it away.
            assert!(notifier.policy().check(&endpoint).is_ok(), "{name}");
            match notifier.notify(&endpoint, &notification).await {
                Err(DeliveryError::Refused { reason }) => {
                    assert_eq!(reason, expected_refusal(addresses, range), "{name}")
                }
                other => panic!("{name}: expected a refusal, got {other:?}"),
            }
        }
        assert_eq!(lookups.load(Ordering::SeqCst), RESOLUTIONS.len());
        receiver.assert_untouched().await;
    }

    #[tokio::test]
    async fn a_dispatch_to_names_resolving_inside_reports_every_delivery_refused() {
        assert_every_resolution_is_refused_by_the_policy();
        let receiver = Receiver::start().await;
        let (notifier, _) = notifier();
        let dispatcher = Dispatcher::new(InMemoryStore::new(), notifier);
        for &(name, _, _) in RESOLUTIONS {
            let url = format!("https://{name}:{}/hook", receiver.port);
            dispatcher
                .subscribe(&SubscribeRequest::new("device", "_create", url))
                .await
                .unwrap_or_else(|e| panic!("{name} is a name, accepted at subscribe: {e}"));
        }
        let event = Event::new(EventType::parse("device", "_create").unwrap(), json!({}));
        let report = dispatcher.dispatch(&event).await.unwrap();
        assert_eq!(report.matched(), RESOLUTIONS.len());
        assert_eq!(report.delivered(), 0);
        for delivery in report.deliveries() {
            assert!(
                matches!(
                    delivery.outcome(),
                    DeliveryOutcome::Failed(DeliveryError::Refused {
                        reason: EndpointRejection::NonPublicAddress { .. }
                    })
                ),
                "{}: {}",
                delivery.subscription().endpoint(),
                delivery.outcome()
            );
        }
        receiver.assert_untouched().await;
    }

    /// Whether an attack row's endpoint is one a test may point at this machine: an
    /// address host on loopback or "this network", or a localhost name. Rows with other
    /// internal addresses are left out, so that even a broken check could not send
    /// traffic off this machine.
    fn aims_at_this_machine(endpoint: &Endpoint) -> bool {
        match endpoint.host() {
            url::Host::Ipv4(v4) => v4.is_loopback() || v4.octets()[0] == 0,
            url::Host::Ipv6(v6) => {
                v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
            }
            url::Host::Domain(name) => {
                let name = name.strip_suffix('.').unwrap_or(name);
                name == "localhost" || name.ends_with(".localhost")
            }
        }
    }

    #[tokio::test]
    async fn stored_endpoints_naming_internal_hosts_are_refused_at_delivery_without_resolving() {
        // E.g. subscribed under a looser policy that was tightened since: the notifier
        // applies the policy itself, to the address as written, before anything else.
        let receiver = Receiver::start().await;
        let (notifier, lookups) = notifier();
        let notification =
            Event::new(EventType::parse("patient", "_create").unwrap(), json!({})).prepare(None);
        let mut refused = 0;
        for &(input, expected) in super::ATTACKS {
            let Ok(endpoint) = Endpoint::parse(input) else {
                continue;
            };
            if !aims_at_this_machine(&endpoint) {
                continue;
            }
            let mut url = endpoint.url();
            url.set_port(Some(receiver.port)).unwrap();
            let endpoint = Endpoint::parse(url.as_str()).unwrap();
            assert!(notifier.policy().check(&endpoint).is_err(), "{input:?}");
            match notifier.notify(&endpoint, &notification).await {
                Err(DeliveryError::Refused { reason }) => {
                    assert_eq!(reason.reason_code(), expected, "{input:?}")
                }
                other => panic!("{input:?}: expected a refusal, got {other:?}"),
            }
            refused += 1;
        }
        assert!(refused >= 25, "only {refused} rows aim at this machine");
        assert_eq!(lookups.load(Ordering::SeqCst), 0, "nothing was resolved");
        receiver.assert_untouched().await;
    }

    #[test]
    fn every_name_judged_at_delivery_has_an_internal_resolution_in_the_table() {
        let table: HashMap<&str, _> = RESOLUTIONS.iter().map(|(n, a, _)| (*n, a)).collect();
        for input in NAMES_JUDGED_AT_DELIVERY {
            let endpoint = Endpoint::parse(input).unwrap();
            assert!(
                table.contains_key(endpoint.host_str()),
                "{input} has no resolution to be refused at"
            );
        }
    }
}
