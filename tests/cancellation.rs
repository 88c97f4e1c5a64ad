//! Cancellation: dropping a `dispatch` future mid-flight cancels the deliveries it has
//! not finished, runs none it has not started, and releases everything it held; a host
//! can bound a dispatch whose notifier hangs with a timeout and keep using the dispatcher.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use biot_notifications::notification::{Event, PreparedNotification};
use biot_notifications::notifier::{DeliveryError, Notifier};
use biot_notifications::store::SubscriptionStore;
use biot_notifications::{
    Dispatcher, Endpoint, EventType, InMemoryStore, SubscribeRequest, Subscription,
};
use serde_json::json;

/// How long a `/slow` delivery takes; long enough to drop a dispatch in the middle of it.
const SLOW: Duration = Duration::from_millis(150);

/// Counts notify futures as they start, live (not yet dropped) and complete.
#[derive(Debug, Default)]
struct Deliveries {
    started: AtomicUsize,
    live: AtomicUsize,
    completed: AtomicUsize,
}

impl Deliveries {
    fn started(&self) -> usize {
        self.started.load(Ordering::SeqCst)
    }

    fn live(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }

    fn completed(&self) -> usize {
        self.completed.load(Ordering::SeqCst)
    }
}

/// Held by each notify future for as long as it exists; dropping the future drops it.
struct LiveGuard(Arc<Deliveries>);

impl LiveGuard {
    fn new(deliveries: &Arc<Deliveries>) -> Self {
        deliveries.started.fetch_add(1, Ordering::SeqCst);
        deliveries.live.fetch_add(1, Ordering::SeqCst);
        LiveGuard(Arc::clone(deliveries))
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Delivers by the endpoint's path: `/fast` at once, `/slow` after [`SLOW`], `/park`
/// never. Each delivery holds a [`LiveGuard`] for as long as its future lives.
#[derive(Debug, Default)]
struct GuardedNotifier {
    deliveries: Arc<Deliveries>,
}

#[async_trait]
impl Notifier for GuardedNotifier {
    async fn notify(
        &self,
        endpoint: &Endpoint,
        _: &PreparedNotification,
    ) -> Result<(), DeliveryError> {
        let _guard = LiveGuard::new(&self.deliveries);
        match endpoint.url().path() {
            "/park" => std::future::pending::<()>().await,
            "/slow" => tokio::time::sleep(SLOW).await,
            _ => {}
        }
        self.deliveries.completed.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

struct Setup {
    dispatcher: Dispatcher,
    notifier: Arc<GuardedNotifier>,
    deliveries: Arc<Deliveries>,
}

/// A dispatcher whose subscriptions to `patient/_create` are `(host, path)` pairs.
async fn setup(endpoints: &[(&str, &str)], max_in_flight: usize) -> Setup {
    let notifier = Arc::new(GuardedNotifier::default());
    let deliveries = Arc::clone(&notifier.deliveries);
    let dispatcher = Dispatcher::builder(InMemoryStore::new(), notifier.clone())
        .max_in_flight(max_in_flight)
        .build()
        .unwrap();
    for (host, path) in endpoints {
        let url = format!("https://{host}.example.com{path}");
        dispatcher
            .subscribe(&SubscribeRequest::new("patient", "_create", url))
            .await
            .unwrap();
    }
    Setup {
        dispatcher,
        notifier,
        deliveries,
    }
}

fn patient_created() -> Event {
    Event::new(
        EventType::parse("patient", "_create").unwrap(),
        json!({"_id": "p-1"}),
    )
}

/// Endpoints `slow-0.example.com/slow`... and `park-0.example.com/park`...
fn endpoints(slow: usize, park: usize) -> Vec<(String, &'static str)> {
    (0..slow)
        .map(|i| (format!("slow-{i}"), "/slow"))
        .chain((0..park).map(|i| (format!("park-{i}"), "/park")))
        .collect()
}

fn as_refs<'a>(endpoints: &'a [(String, &'static str)]) -> Vec<(&'a str, &'static str)> {
    endpoints.iter().map(|(h, p)| (h.as_str(), *p)).collect()
}

/// Waits (polling, at most two seconds) until `condition` holds.
async fn until(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// The subscriptions' shared handles, to watch their reference counts.
async fn subscription_handles(dispatcher: &Dispatcher) -> Vec<Arc<Subscription>> {
    dispatcher
        .store()
        .matching(EventType::parse("patient", "_create").unwrap(), None)
        .await
        .unwrap()
}

fn strong_counts(handles: &[Arc<Subscription>]) -> Vec<usize> {
    handles.iter().map(Arc::strong_count).collect()
}

#[tokio::test]
async fn dropping_a_dispatch_mid_flight_cancels_every_pending_delivery_and_leaks_nothing() {
    let endpoints = endpoints(6, 2);
    let Setup {
        dispatcher,
        notifier,
        deliveries,
    } = setup(&as_refs(&endpoints), 64).await;
    let handles = subscription_handles(&dispatcher).await;
    let baseline = (
        Arc::strong_count(&notifier),
        Arc::strong_count(dispatcher.store()),
        strong_counts(&handles),
    );

    let event = patient_created();
    let mut dispatch = Box::pin(dispatcher.dispatch(&event));
    tokio::select! {
        biased;
        report = &mut dispatch => panic!("the dispatch cannot finish, it has parked deliveries: {report:?}"),
        () = until("every delivery is in flight", || deliveries.live() == 8) => {}
    }
    assert_eq!(
        deliveries.completed(),
        0,
        "nothing finished before the drop"
    );
    // While in flight, the dispatch holds the subscriptions it is delivering to.
    assert!(strong_counts(&handles)
        .iter()
        .zip(&baseline.2)
        .all(|(now, before)| now > before));

    drop(dispatch);

    // Dropping is synchronous: every delivery future is gone at once.
    assert_eq!(
        deliveries.live(),
        0,
        "delivery futures outlived their dispatch"
    );
    // Past the time the slow deliveries would have taken: none of them ran on.
    tokio::time::sleep(SLOW * 2).await;
    assert_eq!(
        deliveries.completed(),
        0,
        "a delivery completed after the drop"
    );
    assert_eq!(deliveries.started(), 8);
    assert_eq!(deliveries.live(), 0);
    // Nothing the dispatch held is still referenced.
    assert_eq!(
        (
            Arc::strong_count(&notifier),
            Arc::strong_count(dispatcher.store()),
            strong_counts(&handles),
        ),
        baseline
    );
}

#[tokio::test]
async fn dropping_a_dispatch_runs_none_of_the_deliveries_it_had_not_started() {
    // Two at a time: six deliveries are still queued when the dispatch is dropped.
    let endpoints = endpoints(8, 0);
    let Setup {
        dispatcher,
        deliveries,
        ..
    } = setup(&as_refs(&endpoints), 2).await;

    let event = patient_created();
    let mut dispatch = Box::pin(dispatcher.dispatch(&event));
    tokio::select! {
        biased;
        report = &mut dispatch => panic!("the dispatch finished too soon: {report:?}"),
        () = until("two deliveries are in flight", || deliveries.live() == 2) => {}
    }
    drop(dispatch);

    assert_eq!(deliveries.live(), 0);
    tokio::time::sleep(SLOW * 2).await;
    assert_eq!(
        deliveries.started(),
        2,
        "a queued delivery started after the drop"
    );
    assert_eq!(deliveries.completed(), 0);
}

#[tokio::test]
async fn aborting_a_spawned_dispatch_releases_the_dispatcher_and_every_delivery() {
    let endpoints = endpoints(3, 3);
    let Setup {
        dispatcher,
        notifier,
        deliveries,
    } = setup(&as_refs(&endpoints), 64).await;
    let dispatcher = Arc::new(dispatcher);
    let notifier_baseline = Arc::strong_count(&notifier);

    // The host's way of firing and forgetting: the future must be `Send + 'static`.
    let task = tokio::spawn({
        let dispatcher = Arc::clone(&dispatcher);
        async move { dispatcher.dispatch(&patient_created()).await }
    });
    until("every delivery is in flight", || deliveries.live() == 6).await;
    assert_eq!(Arc::strong_count(&dispatcher), 2, "the task holds a handle");

    task.abort();
    let cancelled = task.await.expect_err("an aborted task has no output");
    assert!(cancelled.is_cancelled());

    assert_eq!(deliveries.live(), 0);
    assert_eq!(
        Arc::strong_count(&dispatcher),
        1,
        "the task's handle was released"
    );
    assert_eq!(Arc::strong_count(&notifier), notifier_baseline);
    tokio::time::sleep(SLOW * 2).await;
    assert_eq!(deliveries.completed(), 0);
}

#[tokio::test]
async fn a_host_timeout_bounds_a_dispatch_whose_notifier_hangs_and_the_dispatcher_stays_usable() {
    let Setup {
        dispatcher,
        deliveries,
        ..
    } = setup(&[("fast", "/fast"), ("hang", "/park")], 64).await;
    let event = patient_created();

    let bound = Duration::from_millis(100);
    let started = Instant::now();
    let outcome = tokio::time::timeout(bound, dispatcher.dispatch(&event)).await;
    let took = started.elapsed();
    assert!(outcome.is_err(), "the dispatch cannot finish: {outcome:?}");
    assert!(took >= bound, "gave up after {took:?}");
    assert!(took < Duration::from_secs(2), "the timeout took {took:?}");
    assert_eq!(
        deliveries.live(),
        0,
        "the hanging delivery outlived the timeout"
    );

    // While one dispatch hangs, another event's dispatch is not held up by it.
    dispatcher
        .subscribe(&SubscribeRequest::new(
            "device",
            "_create",
            "https://fast.example.com/fast",
        ))
        .await
        .unwrap();
    let hanging = tokio::spawn({
        let dispatcher = dispatcher.clone();
        async move { dispatcher.dispatch(&patient_created()).await }
    });
    let device_created = Event::new(EventType::parse("device", "_create").unwrap(), json!({}));
    let report = tokio::time::timeout(Duration::from_secs(2), dispatcher.dispatch(&device_created))
        .await
        .expect("an unrelated dispatch completes")
        .unwrap();
    assert_eq!(report.delivered(), 1);
    hanging.abort();
    assert!(hanging.await.unwrap_err().is_cancelled());

    // The dispatcher is as good as new: the hanging plugin can be removed and the
    // event dispatched to completion.
    dispatcher
        .unsubscribe(&SubscribeRequest::new(
            "patient",
            "_create",
            "https://hang.example.com/park",
        ))
        .await
        .unwrap();
    let report = tokio::time::timeout(Duration::from_secs(2), dispatcher.dispatch(&event))
        .await
        .expect("nothing hangs any more")
        .unwrap();
    assert_eq!((report.matched(), report.delivered()), (1, 1));
    assert_eq!(dispatcher.store().count().await.unwrap(), 2);
    assert_eq!(deliveries.live(), 0);
}
