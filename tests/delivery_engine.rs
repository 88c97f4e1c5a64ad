//! The delivery engine against real loopback plugins (a minimal HTTP/1.1 server on a
//! `TcpListener`, so the tests see exactly how many requests are open at once) through
//! the crate's `HttpNotifier`, and against scripted notifiers where exact counts matter.
//!
//! Time-based assertions are lower bounds or generous upper bounds: the machine is shared.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use biot_notifications::delivery::{
    CircuitBreakerPolicy, DeliveryEngine, EngineBuildError, Jitter, RetryPolicy, SubmitError,
};
use biot_notifications::notification::{Event, PreparedNotification};
use biot_notifications::notifier::http_notifier::HttpNotifier;
use biot_notifications::notifier::{DeliveryError, Notifier};
use biot_notifications::{
    Action, BoxError, Dispatcher, Endpoint, EndpointPolicy, EntityType, Error, EventType,
    InMemoryStore, SubscribeRequest, TokenProvider,
};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

// --- A loopback plugin -------------------------------------------------------------

/// What a plugin does with a request.
#[derive(Clone, Debug)]
enum Reply {
    /// Answers this status (with this `Retry-After`, if any) after this delay.
    Status(u16, Option<&'static str>, Duration),
    /// Never answers; the request stays open until the client gives up.
    Hang,
}

impl Reply {
    fn ok() -> Self {
        Reply::Status(200, None, Duration::ZERO)
    }
    fn status(status: u16) -> Self {
        Reply::Status(status, None, Duration::ZERO)
    }
}

/// A plugin: answers `default` unless `script` has a reply queued; counts requests,
/// open requests (and the most at once), and when each arrived.
#[derive(Debug)]
struct Plugin {
    default: Mutex<Reply>,
    script: Mutex<VecDeque<Reply>>,
    received: AtomicUsize,
    open: AtomicUsize,
    max_open: AtomicUsize,
    arrivals: Mutex<Vec<Instant>>,
    url: Mutex<String>,
}

impl Plugin {
    async fn start(default: Reply) -> Arc<Plugin> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let plugin = Arc::new(Plugin {
            default: Mutex::new(default),
            script: Mutex::new(VecDeque::new()),
            received: AtomicUsize::new(0),
            open: AtomicUsize::new(0),
            max_open: AtomicUsize::new(0),
            arrivals: Mutex::new(Vec::new()),
            url: Mutex::new(format!("http://{}/hook", listener.local_addr().unwrap())),
        });
        let serving = Arc::clone(&plugin);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(Arc::clone(&serving).serve(stream));
            }
        });
        plugin
    }

    fn url(&self) -> String {
        self.url.lock().unwrap().clone()
    }

    fn set_default(&self, reply: Reply) {
        *self.default.lock().unwrap() = reply;
    }

    fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.script.lock().unwrap().extend(replies);
    }

    fn received(&self) -> usize {
        self.received.load(Ordering::SeqCst)
    }

    fn max_open(&self) -> usize {
        self.max_open.load(Ordering::SeqCst)
    }

    fn arrivals(&self) -> Vec<Instant> {
        self.arrivals.lock().unwrap().clone()
    }

    /// One connection: requests one after another (the client keeps connections alive).
    async fn serve(self: Arc<Self>, mut stream: TcpStream) {
        let mut buffer = Vec::new();
        loop {
            let Some(request_len) = read_request(&mut stream, &mut buffer).await else {
                return;
            };
            buffer.drain(..request_len);
            let open = OpenRequest::enter(&self);
            let reply = self
                .script
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or_else(|| self.default.lock().unwrap().clone());
            match reply {
                Reply::Hang => {
                    // Open until the client closes the connection (its timeout, or a
                    // cancelled delivery).
                    let mut scratch = [0u8; 512];
                    while matches!(stream.read(&mut scratch).await, Ok(n) if n > 0) {}
                    return;
                }
                Reply::Status(status, retry_after, delay) => {
                    tokio::time::sleep(delay).await;
                    let retry_after = retry_after
                        .map(|value| format!("retry-after: {value}\r\n"))
                        .unwrap_or_default();
                    let response = format!(
                        "HTTP/1.1 {status} Scripted\r\ncontent-length: 0\r\n{retry_after}\r\n"
                    );
                    drop(open);
                    if stream.write_all(response.as_bytes()).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// Counts an open request for as long as it lives.
struct OpenRequest<'a>(&'a Plugin);

impl<'a> OpenRequest<'a> {
    fn enter(plugin: &'a Plugin) -> Self {
        plugin.received.fetch_add(1, Ordering::SeqCst);
        plugin.arrivals.lock().unwrap().push(Instant::now());
        let open = plugin.open.fetch_add(1, Ordering::SeqCst) + 1;
        plugin.max_open.fetch_max(open, Ordering::SeqCst);
        OpenRequest(plugin)
    }
}

impl Drop for OpenRequest<'_> {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Reads one request (head and `content-length` body) into `buffer`; its length, or
/// `None` when the connection closed.
async fn read_request(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<usize> {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(head_end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..head_end]).to_ascii_lowercase();
            let body_len = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .map_or(0, |value| value.trim().parse::<usize>().unwrap());
            let total = head_end + 4 + body_len;
            if buffer.len() >= total {
                return Some(total);
            }
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
}

// --- Set-up ------------------------------------------------------------------------

fn patient_created() -> Event {
    Event::new(
        EventType::new(EntityType::Patient, Action::Create).unwrap(),
        json!({"_id": "p-1"}),
    )
}

fn device_created() -> Event {
    Event::new(
        EventType::new(EntityType::Device, Action::Create).unwrap(),
        json!({"_id": "d-1"}),
    )
}

fn http_dispatcher(timeout: Duration) -> Dispatcher {
    // The policy is given once, to the notifier; the dispatcher takes it from there.
    let notifier = HttpNotifier::builder()
        .endpoint_policy(EndpointPolicy::local_development())
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    Dispatcher::new(InMemoryStore::new(), notifier)
}

async fn subscribe(dispatcher: &Dispatcher, entity: &str, endpoint: &str) {
    dispatcher
        .subscribe(&SubscribeRequest::new(entity, "_create", endpoint))
        .await
        .unwrap();
}

/// Polls `condition` every 20 ms until it holds or `limit` passes.
async fn eventually(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    condition()
}

// --- Isolation, caps, circuit breaker ----------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_bad_plugin_costs_the_others_nothing_and_its_circuit_opens_then_closes() {
    let hanging = Plugin::start(Reply::Hang).await;
    let failing = Plugin::start(Reply::status(500)).await;
    let slow = Plugin::start(Reply::Status(200, None, Duration::from_millis(150))).await;
    let healthy = Plugin::start(Reply::ok()).await;
    let dispatcher = http_dispatcher(Duration::from_millis(400));
    for plugin in [&hanging, &failing, &slow, &healthy] {
        subscribe(&dispatcher, "patient", &plugin.url()).await;
    }
    let engine = DeliveryEngine::builder(dispatcher)
        .deliveries_in_flight(16)
        .deliveries_in_flight_per_endpoint(2)
        .circuit_breaker(
            CircuitBreakerPolicy::new(3)
                .cool_down(Duration::from_millis(300))
                .max_cool_down(Duration::from_secs(1)),
        )
        .build()
        .unwrap();
    let hanging_endpoint = Endpoint::parse(&hanging.url()).unwrap().as_str().to_owned();

    let events = 40;
    let mut saw_hanging_open = false;
    for _ in 0..events {
        engine.try_submit(patient_created()).unwrap();
        saw_hanging_open |= engine.stats().open_circuits.contains(&hanging_endpoint);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        eventually(Duration::from_secs(20), || healthy.received() == events).await,
        "the healthy plugin got {} of {events}",
        healthy.received()
    );
    saw_hanging_open |= eventually(Duration::from_secs(10), || {
        engine.stats().open_circuits.contains(&hanging_endpoint)
    })
    .await;
    assert!(saw_hanging_open, "the hanging endpoint's circuit opened");
    assert!(
        hanging.received() < events,
        "an open circuit sheds instead of sending: {} sent",
        hanging.received()
    );
    for (name, plugin) in [
        ("hanging", &hanging),
        ("failing", &failing),
        ("slow", &slow),
        ("healthy", &healthy),
    ] {
        assert!(
            plugin.max_open() <= 2,
            "{name}: {} requests open at once, over the per-endpoint cap",
            plugin.max_open()
        );
    }
    assert_eq!(slow.max_open(), 2, "the slow plugin used its cap");

    // The plugin recovers: the next probe after the cool-down succeeds and closes it.
    hanging.set_default(Reply::ok());
    let closed = eventually(Duration::from_secs(15), || {
        let _ = engine.try_submit(patient_created());
        !engine.stats().open_circuits.contains(&hanging_endpoint)
    })
    .await;
    assert!(closed, "the circuit closes once a probe succeeds");
    let before = hanging.received();
    engine.try_submit(patient_created()).unwrap();
    assert!(eventually(Duration::from_secs(10), || hanging.received() > before).await);

    let report = engine.shutdown(Duration::from_secs(5)).await;
    assert_eq!(
        report.matched,
        report.delivered + report.failed + report.shed + report.abandoned
    );
    assert!(report.outcomes.shed_circuit_open > 0, "{report:?}");
    assert!(report.outcomes.status_5xx > 0, "{report:?}");
}

// --- Overload ------------------------------------------------------------------------

/// A token provider that waits until the test opens the gate: a blocked worker.
#[derive(Debug)]
struct GatedToken(Arc<Semaphore>);

#[async_trait]
impl TokenProvider for GatedToken {
    async fn token(&self, _: &Event) -> Result<String, BoxError> {
        let _pass = self.0.acquire().await?;
        Ok("token".to_owned())
    }
}

/// Records every delivery; never fails.
#[derive(Debug, Default)]
struct CountingNotifier(AtomicUsize);

#[async_trait]
impl Notifier for CountingNotifier {
    async fn notify(&self, _: &Endpoint, _: &PreparedNotification) -> Result<(), DeliveryError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

#[tokio::test]
async fn overload_is_an_immediate_error_not_growth() {
    let gate = Arc::new(Semaphore::new(0));
    let notifier = Arc::new(CountingNotifier::default());
    let dispatcher = Dispatcher::builder(InMemoryStore::new(), notifier.clone())
        .token_provider(Arc::new(GatedToken(gate.clone())))
        .build()
        .unwrap();
    subscribe(&dispatcher, "patient", "https://plugin.example.com/hook").await;
    let engine = DeliveryEngine::builder(dispatcher)
        .events_queued(4)
        .events_prepared_at_once(1)
        .build()
        .unwrap();

    // The one worker takes the first event and blocks on its token.
    engine.try_submit(patient_created()).unwrap();
    assert!(eventually(Duration::from_secs(5), || engine.stats().events_queued == 0).await);
    for _ in 0..4 {
        engine.try_submit(patient_created()).unwrap();
    }
    for _ in 0..100 {
        let started = Instant::now();
        let err = engine.try_submit(patient_created()).unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "it does not wait"
        );
        assert!(
            matches!(
                err,
                SubmitError::Overloaded {
                    queue_capacity: 4,
                    ..
                }
            ),
            "{err}"
        );
    }
    let stats = engine.stats();
    assert_eq!(stats.events_queued, 4, "the queue does not grow");
    assert_eq!(stats.events_accepted, 5);
    assert_eq!(stats.events_overloaded, 100);

    // The host answers BioT's 503.
    let err = Error::from(engine.try_submit(patient_created()).unwrap_err());
    assert_eq!(err.status(), http::StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(err.code(), "SERVICE_UNAVAILABLE");
    assert_eq!(err.details()["reason"], "overloaded");

    gate.add_permits(1_000);
    let report = engine.shutdown(Duration::from_secs(10)).await;
    assert!(report.drained, "{report:?}");
    assert_eq!(report.delivered, 5);
    assert_eq!(notifier.0.load(Ordering::SeqCst), 5);

    let err = engine.try_submit(patient_created()).unwrap_err();
    assert!(matches!(err, SubmitError::ShuttingDown { .. }), "{err}");
    assert_eq!(Error::from(err).details()["reason"], "shuttingDown");
}

// --- Shutdown --------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_abandons_what_the_deadline_does_not_allow_and_cancels_open_requests() {
    let hanging = Plugin::start(Reply::Hang).await;
    let dispatcher = http_dispatcher(Duration::from_secs(60));
    subscribe(&dispatcher, "patient", &hanging.url()).await;
    let engine = DeliveryEngine::builder(dispatcher)
        .deliveries_in_flight_per_endpoint(2)
        .build()
        .unwrap();
    for _ in 0..10 {
        engine.try_submit(patient_created()).unwrap();
    }
    assert!(
        eventually(Duration::from_secs(10), || hanging
            .open
            .load(Ordering::SeqCst)
            == 2)
        .await
    );

    let deadline = Duration::from_millis(500);
    let started = Instant::now();
    let report = engine.shutdown(deadline).await;
    let took = started.elapsed();
    assert!(took >= deadline, "it waited for the deadline: {took:?}");
    assert!(
        took < deadline + Duration::from_secs(3),
        "it returned by the deadline (plus slack): {took:?}"
    );
    assert!(!report.drained);
    assert_eq!(report.matched, 10);
    assert_eq!(
        report.abandoned, 10,
        "2 cancelled in flight, 8 never started: {report:?}"
    );
    assert_eq!(report.delivered + report.failed + report.shed, 0);
    assert!(
        eventually(Duration::from_secs(10), || hanging
            .open
            .load(Ordering::SeqCst)
            == 0)
        .await,
        "the cancelled requests' connections were closed"
    );
    // A second call answers the same report.
    assert_eq!(engine.shutdown(Duration::ZERO).await, report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_queued_work_finish_within_the_deadline() {
    let healthy = Plugin::start(Reply::Status(200, None, Duration::from_millis(20))).await;
    let dispatcher = http_dispatcher(Duration::from_secs(5));
    subscribe(&dispatcher, "patient", &healthy.url()).await;
    let engine = DeliveryEngine::builder(dispatcher).build().unwrap();
    for _ in 0..30 {
        engine.try_submit(patient_created()).unwrap();
    }
    let report = engine.shutdown(Duration::from_secs(30)).await;
    assert!(report.drained, "{report:?}");
    assert_eq!(report.delivered, 30);
    assert_eq!(report.abandoned + report.events_abandoned, 0);
    assert_eq!(healthy.received(), 30);
}

#[tokio::test]
async fn dropping_the_engine_stops_it_and_cancels_its_deliveries() {
    let hanging = Plugin::start(Reply::Hang).await;
    let dispatcher = http_dispatcher(Duration::from_secs(60));
    subscribe(&dispatcher, "patient", &hanging.url()).await;
    let engine = DeliveryEngine::builder(dispatcher).build().unwrap();
    engine.try_submit(patient_created()).unwrap();
    assert!(
        eventually(Duration::from_secs(10), || hanging
            .open
            .load(Ordering::SeqCst)
            == 1)
        .await
    );
    drop(engine);
    assert!(
        eventually(Duration::from_secs(10), || hanging
            .open
            .load(Ordering::SeqCst)
            == 0)
        .await,
        "the open request was cancelled"
    );
}

// --- Retries -------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_honours_retry_after_and_waits_without_holding_a_slot() {
    let throttled = Plugin::start(Reply::ok()).await;
    throttled.script([Reply::Status(503, Some("1"), Duration::ZERO)]);
    let other = Plugin::start(Reply::ok()).await;
    let dispatcher = http_dispatcher(Duration::from_secs(5));
    subscribe(&dispatcher, "patient", &throttled.url()).await;
    subscribe(&dispatcher, "device", &other.url()).await;
    // One slot in all: were the waiting retry holding it, nothing else could be sent.
    let engine = DeliveryEngine::builder(dispatcher)
        .deliveries_in_flight(1)
        .deliveries_in_flight_per_endpoint(1)
        .retry_policy(
            RetryPolicy::new(3)
                .base_backoff(Duration::from_millis(10))
                .max_backoff(Duration::from_secs(10)),
        )
        .build()
        .unwrap();

    engine.try_submit(patient_created()).unwrap();
    assert!(eventually(Duration::from_secs(5), || throttled.received() == 1).await);
    for _ in 0..5 {
        engine.try_submit(device_created()).unwrap();
    }
    assert!(eventually(Duration::from_secs(5), || other.received() == 5).await);
    assert_eq!(
        throttled.received(),
        1,
        "the other endpoint was served while the retry waited"
    );
    assert!(eventually(Duration::from_secs(10), || throttled.received() == 2).await);
    let arrivals = throttled.arrivals();
    let waited = arrivals[1] - arrivals[0];
    assert!(
        waited >= Duration::from_millis(900),
        "Retry-After: 1 was honoured: {waited:?}"
    );
    let report = engine.shutdown(Duration::from_secs(5)).await;
    assert_eq!(report.delivered, 6, "{report:?}");
    assert_eq!(engine.stats().retries, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_back_off_exponentially_and_give_up_after_the_last_attempt() {
    let failing = Plugin::start(Reply::status(502)).await;
    let dispatcher = http_dispatcher(Duration::from_secs(5));
    subscribe(&dispatcher, "patient", &failing.url()).await;
    let engine = DeliveryEngine::builder(dispatcher)
        .retry_policy(
            RetryPolicy::new(3)
                .base_backoff(Duration::from_millis(200))
                .max_backoff(Duration::from_secs(5))
                .jitter(Jitter::None),
        )
        .build()
        .unwrap();
    engine.try_submit(patient_created()).unwrap();
    assert!(
        eventually(Duration::from_secs(10), || engine.stats().outcomes.total()
            == 1)
        .await
    );
    let arrivals = failing.arrivals();
    assert_eq!(arrivals.len(), 3, "three attempts in all");
    assert!(arrivals[1] - arrivals[0] >= Duration::from_millis(190));
    assert!(arrivals[2] - arrivals[1] >= Duration::from_millis(390));
    let stats = engine.stats();
    assert_eq!(stats.outcomes.status_5xx, 1, "one outcome for the delivery");
    assert_eq!(stats.retries, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_is_its_own_outcome_and_redirects_fail_without_retry() {
    let gone = Plugin::start(Reply::status(410)).await;
    let redirect = Plugin::start(Reply::status(302)).await;
    let dispatcher = http_dispatcher(Duration::from_secs(5));
    subscribe(&dispatcher, "patient", &gone.url()).await;
    subscribe(&dispatcher, "patient", &redirect.url()).await;
    let engine = DeliveryEngine::builder(dispatcher)
        .retry_policy(RetryPolicy::new(5).base_backoff(Duration::from_millis(10)))
        .build()
        .unwrap();
    engine.try_submit(patient_created()).unwrap();
    let report = engine.shutdown(Duration::from_secs(10)).await;
    assert!(report.drained);
    assert_eq!(report.outcomes.gone, 1, "{report:?}");
    assert_eq!(report.outcomes.status_3xx, 1, "{report:?}");
    assert_eq!(report.failed, 2);
    assert_eq!(engine.stats().retries, 0, "neither is retried");
    assert_eq!((gone.received(), redirect.received()), (1, 1));
}

// --- Accounting under concurrency -------------------------------------------------------

/// Answers by the endpoint's path: `ok`, `fail`, `gone`, `timeout`, `panic`, `hang`.
#[derive(Debug)]
struct ScriptedNotifier;

#[async_trait]
impl Notifier for ScriptedNotifier {
    async fn notify(
        &self,
        endpoint: &Endpoint,
        _: &PreparedNotification,
    ) -> Result<(), DeliveryError> {
        tokio::time::sleep(Duration::from_millis(1)).await;
        match endpoint.url().path() {
            "/ok" => Ok(()),
            "/fail" => Err(DeliveryError::from_status(http::StatusCode::BAD_GATEWAY)),
            "/gone" => Err(DeliveryError::from_status(http::StatusCode::GONE)),
            "/timeout" => Err(DeliveryError::Timeout),
            "/panic" => panic!("scripted panic"),
            _ => std::future::pending().await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_matched_delivery_ends_in_exactly_one_outcome_under_concurrency() {
    let dispatcher = Dispatcher::builder(InMemoryStore::new(), ScriptedNotifier)
        .build()
        .unwrap();
    let kinds = ["ok", "fail", "gone", "timeout", "panic", "hang"];
    for i in 0..24 {
        let endpoint = format!("https://p{i}.example.com/{}", kinds[i % kinds.len()]);
        subscribe(&dispatcher, "patient", &endpoint).await;
    }
    // 4 endpoints hang for ever and hold 2 slots each: the global cap must leave room.
    let engine = DeliveryEngine::builder(dispatcher)
        .deliveries_in_flight(16)
        .deliveries_in_flight_per_endpoint(2)
        .deliveries_waiting_per_endpoint(30)
        .circuit_breaker(CircuitBreakerPolicy::new(3).cool_down(Duration::from_millis(20)))
        .retry_policy(RetryPolicy::new(2).base_backoff(Duration::from_millis(5)))
        .build()
        .unwrap();

    let submitters: Vec<_> = (0..4)
        .map(|_| {
            let engine = engine.clone();
            tokio::spawn(async move {
                let mut accepted = 0u64;
                for n in 0..150 {
                    if engine.try_submit(patient_created()).is_ok() {
                        accepted += 1;
                    }
                    if n % 10 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                accepted
            })
        })
        .collect();
    let mut accepted = 0;
    for submitter in submitters {
        accepted += submitter.await.unwrap();
    }
    assert_eq!(accepted, 600);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let report = engine.shutdown(Duration::from_millis(500)).await;
    let stats = engine.stats();
    assert_eq!(stats.events_accepted, 600);
    assert_eq!(
        stats.events_accepted,
        stats.events_expanded + stats.events_failed + stats.events_abandoned
    );
    assert_eq!(report.matched, stats.events_expanded * 24);
    assert_eq!(
        report.matched,
        report.outcomes.total(),
        "every matched delivery has exactly one outcome: {report:?}"
    );
    assert_eq!(
        report.matched,
        report.delivered + report.failed + report.shed + report.abandoned
    );
    let outcomes = report.outcomes;
    assert!(outcomes.delivered > 0, "{outcomes:?}");
    assert!(outcomes.gone > 0, "{outcomes:?}");
    assert!(outcomes.panicked > 0, "{outcomes:?}");
    // The failing endpoints' circuits open after 3 failures, so their retries are shed.
    assert!(outcomes.shed_circuit_open > 0, "{outcomes:?}");
    assert!(outcomes.shed_backlog_full > 0, "{outcomes:?}");
    assert!(
        outcomes.abandoned > 0,
        "the hanging endpoints: {outcomes:?}"
    );
    assert_eq!(stats.deliveries_in_flight, 0);
    assert_eq!(stats.deliveries_waiting, 0);
}

// --- Builder and the dispatcher -------------------------------------------------------

#[tokio::test]
async fn the_builder_rejects_bad_values_by_name() {
    let dispatcher = Dispatcher::new(InMemoryStore::new(), CountingNotifier::default());
    let zero = |builder: biot_notifications::delivery::DeliveryEngineBuilder| match builder.build()
    {
        Err(EngineBuildError::Zero { option }) => option,
        other => panic!("expected a zero error, got {other:?}"),
    };
    let b = || DeliveryEngine::builder(dispatcher.clone());
    assert_eq!(zero(b().events_queued(0)), "events_queued");
    assert_eq!(
        zero(b().events_prepared_at_once(0)),
        "events_prepared_at_once"
    );
    assert_eq!(zero(b().deliveries_in_flight(0)), "deliveries_in_flight");
    assert_eq!(
        zero(b().deliveries_in_flight_per_endpoint(0)),
        "deliveries_in_flight_per_endpoint"
    );
    assert_eq!(
        zero(b().deliveries_waiting_per_endpoint(0)),
        "deliveries_waiting_per_endpoint"
    );
    assert_eq!(
        zero(b().circuit_breaker(CircuitBreakerPolicy::new(0))),
        "circuit_breaker.failure_threshold"
    );
    assert_eq!(
        zero(b().retry_policy(RetryPolicy::new(0))),
        "retry_policy.max_attempts"
    );
    let err = b()
        .retry_policy(
            RetryPolicy::new(3)
                .base_backoff(Duration::from_secs(5))
                .max_backoff(Duration::from_secs(1)),
        )
        .build()
        .unwrap_err();
    assert!(matches!(
        err,
        EngineBuildError::Invalid {
            option: "retry_policy.base_backoff",
            ..
        }
    ));
    assert_eq!(
        err.to_string(),
        "the delivery engine option `retry_policy.base_backoff` is invalid: the base backoff (5s) is longer than the max backoff (1s)"
    );
    assert!(b().build().is_ok());
}

#[test]
fn building_outside_a_runtime_is_a_clear_error() {
    let dispatcher = Dispatcher::new(InMemoryStore::new(), CountingNotifier::default());
    let err = DeliveryEngine::builder(dispatcher).build().unwrap_err();
    assert!(matches!(err, EngineBuildError::NoRuntime));
    assert!(err.to_string().contains("inside a tokio runtime"), "{err}");
}

#[tokio::test]
async fn dispatch_still_awaits_a_full_report_beside_the_engine() {
    let notifier = Arc::new(CountingNotifier::default());
    let dispatcher = Dispatcher::builder(InMemoryStore::new(), notifier.clone())
        .build()
        .unwrap();
    subscribe(&dispatcher, "patient", "https://a.example.com/hook").await;
    let engine = DeliveryEngine::builder(dispatcher.clone()).build().unwrap();
    let report = dispatcher.dispatch(&patient_created()).await.unwrap();
    assert_eq!(report.delivered(), 1);
    let submitted = engine.try_submit(patient_created()).unwrap();
    assert_eq!(submitted.trace_id_hex().len(), 32);
    let report = engine.shutdown(Duration::from_secs(5)).await;
    assert_eq!(report.delivered, 1);
    assert_eq!(notifier.0.load(Ordering::SeqCst), 2);
}

// --- Metrics ---------------------------------------------------------------------------

#[cfg(feature = "metrics")]
#[test]
fn outcomes_events_and_gauges_reach_the_metrics_recorder() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let prometheus = recorder.handle();
    // A current-thread runtime runs every engine task on this thread, where the
    // recorder is installed.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || {
        runtime.block_on(async {
            let dispatcher = Dispatcher::builder(InMemoryStore::new(), ScriptedNotifier)
                .build()
                .unwrap();
            subscribe(&dispatcher, "patient", "https://a.example.com/ok").await;
            subscribe(&dispatcher, "patient", "https://b.example.com/gone").await;
            let engine = DeliveryEngine::builder(dispatcher)
                .events_queued(1)
                .events_prepared_at_once(1)
                .build()
                .unwrap();
            engine.try_submit(patient_created()).unwrap();
            // Nothing has run yet on this thread: the queue of one is full.
            assert!(engine.try_submit(patient_created()).is_err());
            engine.shutdown(Duration::from_secs(5)).await;
        });
    });
    let text = prometheus.render();
    for expected in [
        "biot_notifications_deliveries_total{outcome=\"delivered\"} 1",
        "biot_notifications_deliveries_total{outcome=\"gone\"} 1",
        "biot_notifications_events_total{result=\"accepted\"} 1",
        "biot_notifications_events_total{result=\"overloaded\"} 1",
        "biot_notifications_delivery_duration_seconds",
        "biot_notifications_queue_depth 0",
        "biot_notifications_deliveries_in_flight 0",
    ] {
        assert!(text.contains(expected), "missing `{expected}` in:\n{text}");
    }
}
