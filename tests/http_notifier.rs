//! `HttpNotifier` against real receivers on loopback: what a plugin gets, how failures
//! are reported, and that the endpoint policy holds for every address it connects to.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use biot_notifications::notification::{Event, PreparedNotification};
use biot_notifications::notifier::http_notifier::{AddressResolver, HttpNotifier};
use biot_notifications::notifier::{DeliveryError, Notifier};
use biot_notifications::{
    Action, AddressRange, Endpoint, EndpointPolicy, EndpointRejection, EntityType, EventType,
};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

mod common;
use common::assert_send_sync;

/// One request as a receiver read it off the wire.
#[derive(Debug)]
struct Received {
    method: String,
    target: String,
    /// Names lower-cased, in the order sent.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// How a receiver answers.
#[derive(Clone, Debug)]
enum Reply {
    /// This status, with these extra headers and an empty body.
    Status(u16, Vec<(&'static str, String)>),
    /// Reads the request and never answers.
    Silence,
}

/// A minimal HTTP/1.1 plugin on a loopback port: records every connection and request.
struct Receiver {
    address: SocketAddr,
    connections: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    async fn start(reply: Reply) -> Receiver {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        Receiver::serve(listener, reply)
    }

    fn serve(listener: TcpListener, reply: Reply) -> Receiver {
        let address = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (count, log) = (Arc::clone(&connections), Arc::clone(&requests));
        // Ends with the test's runtime.
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(answer(stream, reply.clone(), Arc::clone(&log)));
            }
        });
        Receiver {
            address,
            connections,
            requests,
        }
    }

    fn port(&self) -> u16 {
        self.address.port()
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    fn take_requests(&self) -> Vec<Received> {
        std::mem::take(&mut *self.requests.lock().unwrap())
    }

    /// Asserts nothing ever connected, after giving a stray connection time to be
    /// accepted: a refusal must come before any connection, not just before a request.
    async fn assert_untouched(&self) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            self.connections(),
            0,
            "the receiver at {} was contacted",
            self.address
        );
    }
}

async fn answer(mut stream: TcpStream, reply: Reply, log: Arc<Mutex<Vec<Received>>>) {
    let Some(received) = read_request(&mut stream).await else {
        return;
    };
    log.lock().unwrap().push(received);
    match reply {
        Reply::Status(status, headers) => {
            let mut head =
                format!("HTTP/1.1 {status} Test\r\ncontent-length: 0\r\nconnection: close\r\n");
            for (name, value) in headers {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
            head.push_str("\r\n");
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.shutdown().await;
        }
        Reply::Silence => {
            // Holds the connection open until the test's runtime goes away.
            std::future::pending::<()>().await;
        }
    }
}

/// Reads one request with a `content-length` body (all our client sends).
async fn read_request(stream: &mut TcpStream) -> Option<Received> {
    let mut buffer = Vec::new();
    let mut chunk = [0; 4096];
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8(buffer[..head_end].to_vec()).ok()?;
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_owned();
    let target = request_line.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .map_or(0, |(_, value)| value.parse().unwrap());
    let mut body = buffer[head_end + 4..].to_vec();
    while body.len() < length {
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..read]);
    }
    Some(Received {
        method,
        target,
        headers,
        body,
    })
}

/// Answers from a fixed table, so tests can give names any address without DNS.
#[derive(Debug, Default)]
struct FakeResolver {
    names: HashMap<&'static str, Vec<IpAddr>>,
    lookups: Arc<AtomicUsize>,
}

impl FakeResolver {
    fn with(mut self, name: &'static str, addresses: &[&str]) -> Self {
        let addresses = addresses.iter().map(|a| a.parse().unwrap()).collect();
        self.names.insert(name, addresses);
        self
    }
}

#[async_trait]
impl AddressResolver for FakeResolver {
    async fn resolve(&self, host: &str) -> io::Result<Vec<IpAddr>> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        let host = host.strip_suffix('.').unwrap_or(host);
        self.names.get(host).cloned().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{host} is not in the table"),
            )
        })
    }
}

fn prepared() -> PreparedNotification {
    Event::new(
        EventType::new(EntityType::Patient, Action::Update).unwrap(),
        json!({"_id": "8f6b1c62-3d7e-4f0a-9a51-0c2f2f3b7d10", "_template": {"name": "adultPatient"}}),
    )
    .with_old_entity(json!({"weight": 71}))
    .prepare(Some("<service token>".to_owned()))
}

fn endpoint(url: &str) -> Endpoint {
    Endpoint::parse(url).unwrap()
}

fn notifier(policy: EndpointPolicy, resolver: FakeResolver) -> HttpNotifier {
    HttpNotifier::builder()
        .endpoint_policy(policy)
        .resolver(resolver)
        .build()
        .unwrap()
}

fn is_lower_hex(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[track_caller]
fn assert_refused(result: Result<(), DeliveryError>, expected: EndpointRejection) {
    match result {
        Err(DeliveryError::Refused { reason }) => assert_eq!(reason, expected),
        other => panic!("expected a refusal ({expected}), got {other:?}"),
    }
}

fn loopback_refusal(address: &str) -> EndpointRejection {
    EndpointRejection::NonPublicAddress {
        address: address.parse().unwrap(),
        range: AddressRange::Loopback,
    }
}

#[tokio::test]
async fn a_healthy_receiver_gets_exactly_the_prepared_request() {
    let receiver = Receiver::start(Reply::Status(200, vec![])).await;
    let notifier = HttpNotifier::builder()
        .endpoint_policy(EndpointPolicy::local_development())
        .build()
        .unwrap();
    let notification = prepared();
    let url = format!(
        "http://127.0.0.1:{}/hooks/patient?tenant=7",
        receiver.port()
    );

    notifier
        .notify(&endpoint(&url), &notification)
        .await
        .unwrap();

    let requests = receiver.take_requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.target, "/hooks/patient?tenant=7");
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("hooktype"), Some("NOTIFICATION"));
    assert_eq!(
        request.header("user-agent"),
        Some(concat!("biot-notifications/", env!("CARGO_PKG_VERSION")))
    );
    assert_eq!(request.header("authorization"), None);
    assert_eq!(request.body, notification.body().as_ref());

    let traceparent = request.header("traceparent").expect("a traceparent header");
    assert_eq!(traceparent, notification.traceparent().to_string());
    let fields: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(fields.len(), 4, "{traceparent}");
    assert_eq!(fields[0], "00", "{traceparent}");
    assert!(is_lower_hex(fields[1], 32), "{traceparent}");
    assert!(is_lower_hex(fields[2], 16), "{traceparent}");
    assert!(is_lower_hex(fields[3], 2), "{traceparent}");
}

#[tokio::test]
async fn host_names_are_resolved_with_the_configured_resolver() {
    let receiver = Receiver::start(Reply::Status(204, vec![])).await;
    let resolver = FakeResolver::default().with("plugin.test.example", &["127.0.0.1"]);
    let lookups = Arc::clone(&resolver.lookups);
    let notifier = notifier(EndpointPolicy::local_development(), resolver);
    let url = format!("http://plugin.test.example:{}/hook", receiver.port());

    notifier.notify(&endpoint(&url), &prepared()).await.unwrap();

    assert_eq!(lookups.load(Ordering::SeqCst), 1);
    let requests = receiver.take_requests();
    assert_eq!(requests.len(), 1);
    let host = format!("plugin.test.example:{}", receiver.port());
    assert_eq!(requests[0].header("host"), Some(host.as_str()));
}

#[tokio::test]
async fn an_answer_other_than_2xx_is_a_status_failure() {
    let notifier = HttpNotifier::builder()
        .endpoint_policy(EndpointPolicy::local_development())
        .build()
        .unwrap();
    for status in [400, 404, 500, 503] {
        let receiver = Receiver::start(Reply::Status(status, vec![])).await;
        let url = format!("http://127.0.0.1:{}/", receiver.port());
        match notifier.notify(&endpoint(&url), &prepared()).await {
            Err(DeliveryError::Status { status: got }) => assert_eq!(got.as_u16(), status),
            other => panic!("{status}: expected a status failure, got {other:?}"),
        }
        assert_eq!(
            receiver.take_requests().len(),
            1,
            "{status}: delivered once, not retried"
        );
    }
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let healthy = Receiver::start(Reply::Status(200, vec![])).await;
    let notifier = HttpNotifier::builder()
        .endpoint_policy(EndpointPolicy::local_development())
        .build()
        .unwrap();
    for status in [301, 302, 303, 307, 308] {
        let location = format!("http://127.0.0.1:{}/elsewhere", healthy.port());
        let redirector = Receiver::start(Reply::Status(status, vec![("location", location)])).await;
        let url = format!("http://127.0.0.1:{}/", redirector.port());
        match notifier.notify(&endpoint(&url), &prepared()).await {
            Err(DeliveryError::Status { status: got }) => assert_eq!(got.as_u16(), status),
            other => panic!("{status}: expected a status failure, got {other:?}"),
        }
    }
    healthy.assert_untouched().await;
}

#[tokio::test]
async fn a_receiver_that_never_answers_times_out() {
    let silent = Receiver::start(Reply::Silence).await;
    let notifier = HttpNotifier::builder()
        .endpoint_policy(EndpointPolicy::local_development())
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let url = format!("http://127.0.0.1:{}/", silent.port());

    let started = Instant::now();
    let result = notifier.notify(&endpoint(&url), &prepared()).await;
    let took = started.elapsed();

    assert!(matches!(result, Err(DeliveryError::Timeout)), "{result:?}");
    assert!(took >= Duration::from_millis(300), "gave up after {took:?}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert_eq!(silent.take_requests().len(), 1);
}

#[tokio::test]
async fn names_resolving_to_non_public_addresses_are_refused_before_connecting() {
    let receiver = Receiver::start(Reply::Status(200, vec![])).await;
    let resolver = FakeResolver::default()
        .with("plugin.test.example", &["127.0.0.1"])
        .with("metadata.test.example", &["169.254.169.254"])
        .with("mapped.test.example", &["::ffff:127.0.0.1"]);
    // Strict, as in production: the names themselves pass `check`, their addresses not.
    let notifier = notifier(EndpointPolicy::default(), resolver);
    let cases = [
        ("plugin.test.example", loopback_refusal("127.0.0.1")),
        ("mapped.test.example", loopback_refusal("::ffff:127.0.0.1")),
        (
            "metadata.test.example",
            EndpointRejection::NonPublicAddress {
                address: "169.254.169.254".parse().unwrap(),
                range: AddressRange::CloudMetadata,
            },
        ),
    ];
    for (name, expected) in cases {
        // https: refusal comes at resolution, before any TLS handshake could.
        let url = format!("https://{name}:{}/hook", receiver.port());
        let target = endpoint(&url);
        assert!(notifier.policy().check(&target).is_ok(), "{name}");
        assert_refused(notifier.notify(&target, &prepared()).await, expected);
    }
    receiver.assert_untouched().await;
}

#[tokio::test]
async fn an_allowed_host_is_still_vetted_at_delivery() {
    // `allow_host` exempts the name's form, not what it resolves to (see its docs).
    let receiver = Receiver::start(Reply::Status(200, vec![])).await;
    let resolver = FakeResolver::default().with("plugin.test.example", &["127.0.0.1"]);
    let policy = EndpointPolicy::default().allow_host("plugin.test.example");
    let notifier = notifier(policy, resolver);
    let url = format!("https://plugin.test.example:{}/", receiver.port());

    let result = notifier.notify(&endpoint(&url), &prepared()).await;

    assert_refused(result, loopback_refusal("127.0.0.1"));
    receiver.assert_untouched().await;
}

#[tokio::test]
async fn only_vetted_addresses_are_connected_to() {
    // Two receivers on one port, on two loopback addresses; the name resolves to both,
    // the refused one first. Loopback covers all of 127/8 on Linux.
    let (allowed, refused) = loop {
        let allowed = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let port = allowed.local_addr().unwrap().port();
        if let Ok(refused) = TcpListener::bind((Ipv4Addr::new(127, 0, 0, 2), port)).await {
            break (
                Receiver::serve(allowed, Reply::Status(200, vec![])),
                Receiver::serve(refused, Reply::Status(200, vec![])),
            );
        }
    };
    let resolver = FakeResolver::default().with("plugin.test.example", &["127.0.0.2", "127.0.0.1"]);
    let policy = EndpointPolicy::default()
        .allow_http(true)
        .allow_network("127.0.0.1/32".parse().unwrap());
    let notifier = notifier(policy, resolver);
    let url = format!("http://plugin.test.example:{}/", allowed.port());

    notifier.notify(&endpoint(&url), &prepared()).await.unwrap();

    assert_eq!(allowed.take_requests().len(), 1);
    refused.assert_untouched().await;
}

#[tokio::test]
async fn localhost_names_are_refused_up_front() {
    let receiver = Receiver::start(Reply::Status(200, vec![])).await;
    // The system resolver would find these; the policy must stop them before it is asked.
    let notifier = HttpNotifier::builder()
        .endpoint_policy(EndpointPolicy::default())
        .build()
        .unwrap();
    for host in ["localhost", "localhost.", "plugin.localhost"] {
        let url = format!("https://{host}:{}/", receiver.port());
        assert_refused(
            notifier.notify(&endpoint(&url), &prepared()).await,
            EndpointRejection::LocalhostName {
                host: host.to_owned(),
            },
        );
    }
    receiver.assert_untouched().await;
}

#[tokio::test]
async fn literal_non_public_addresses_are_refused_up_front() {
    let receiver = Receiver::start(Reply::Status(200, vec![])).await;
    let resolver = FakeResolver::default();
    let lookups = Arc::clone(&resolver.lookups);
    let notifier = notifier(EndpointPolicy::default(), resolver);
    let port = receiver.port();
    let cases = [
        (
            format!("https://127.0.0.1:{port}/"),
            loopback_refusal("127.0.0.1"),
        ),
        // The same address in disguise, normalised by `Endpoint::parse`.
        (
            format!("https://0x7f.1:{port}/"),
            loopback_refusal("127.0.0.1"),
        ),
        (format!("https://[::1]:{port}/"), loopback_refusal("::1")),
        (
            format!("http://127.0.0.1:{port}/"),
            EndpointRejection::InsecureScheme,
        ),
    ];
    for (url, expected) in cases {
        assert_refused(
            notifier.notify(&endpoint(&url), &prepared()).await,
            expected,
        );
    }
    assert_eq!(
        lookups.load(Ordering::SeqCst),
        0,
        "addresses are never resolved"
    );
    receiver.assert_untouched().await;
}

#[tokio::test]
async fn a_name_that_does_not_resolve_is_a_transport_failure() {
    let notifier = notifier(EndpointPolicy::local_development(), FakeResolver::default());
    let result = notifier
        .notify(&endpoint("http://unknown.test.example/"), &prepared())
        .await;
    assert!(
        matches!(result, Err(DeliveryError::Transport { .. })),
        "{result:?}"
    );
}

#[test]
fn the_notifier_is_shareable_across_tasks() {
    assert_send_sync::<HttpNotifier>();
    let _: &dyn Notifier = &HttpNotifier::builder()
        .endpoint_policy(EndpointPolicy::default())
        .build()
        .unwrap();
}

/// A keep-alive plugin (hyper) that answers `200` with `body`, counting the connections it
/// accepts.
async fn keep_alive_receiver(body: &'static str) -> (SocketAddr, Arc<AtomicUsize>) {
    use hyper_util::rt::TokioIo;

    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let address = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&connections);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_request| async move {
                    Ok::<_, std::convert::Infallible>(http::Response::new(
                        http_body_util::Full::new(bytes::Bytes::from_static(body.as_bytes())),
                    ))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (address, connections)
}

/// The notifier never reads a plugin's answer; a short one (here 0 and 17 bytes) arrives
/// with the headers, so dropping it unread still leaves the connection reusable.
#[tokio::test]
async fn deliveries_to_a_plugin_that_answers_with_a_short_body_reuse_their_connection() {
    for body in ["", "{\"received\":true}"] {
        let (address, connections) = keep_alive_receiver(body).await;
        let notifier = HttpNotifier::builder()
            .endpoint_policy(EndpointPolicy::local_development())
            .build()
            .unwrap();
        let endpoint = endpoint(&format!("http://{address}/hook"));
        for _ in 0..20 {
            notifier.notify(&endpoint, &prepared()).await.unwrap();
        }
        // One, but for a connection that goes back to the pool a moment after the next
        // delivery already opened another; a body that closed each would make 20.
        let opened = connections.load(Ordering::SeqCst);
        assert!(
            opened <= 3,
            "20 deliveries, one after the other, to a plugin answering {body:?}, opened \
             {opened} connections"
        );
    }
}
