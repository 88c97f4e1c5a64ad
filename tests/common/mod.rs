//! Scaffolding the integration tests share: a notifier that records instead of sending,
//! a store whose backend is down, compile-time trait checks, and the PostgreSQL
//! environment of the ignored tests.
//!
//! Each test file is its own crate and uses only part of this module, so what one file
//! leaves unused is not dead code.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use biot_notifications::notification::{Notification, PreparedNotification};
use biot_notifications::notifier::{DeliveryError, Notifier};
use biot_notifications::search::{Page, SearchRequest};
use biot_notifications::store::SubscriptionStore;
use biot_notifications::{
    Endpoint, EventType, StoreError, SubscribeRequest, Subscription, SubscriptionKey,
};
use uuid::Uuid;

// ---------------------------------------------------------------------------------
// Compile-time trait checks: each compiles only if `T` has the traits.

/// `T` can be shared between threads and outlives any borrow.
pub fn assert_send_sync<T: Send + Sync + 'static>() {}

/// `value` (typically a future) can move to another thread, as `tokio::spawn` needs.
pub fn assert_send<T: Send>(_value: &T) {}

/// `T` is `Clone`.
pub fn assert_clone<T: Clone>() {}

/// `T` is `Copy`.
pub fn assert_copy<T: Copy>() {}

// ---------------------------------------------------------------------------------
// A notifier that records.

/// One delivery a [`RecordingNotifier`] accepted.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The normalised endpoint it was for.
    pub endpoint: String,
    /// The notification, as the dispatcher prepared it.
    pub notification: Notification,
    /// The exact body bytes a real notifier would have sent.
    pub body: Vec<u8>,
}

/// How a [`RecordingNotifier`] paces each delivery.
#[derive(Debug, Default, Clone, Copy)]
enum Pace {
    /// Records at once.
    #[default]
    Immediate,
    /// Lets other tasks run once mid-delivery, so deliveries overlap with other work.
    Yield,
    /// Sleeps this long mid-delivery, so concurrent deliveries can be observed.
    Sleep(Duration),
}

/// Records every delivery instead of sending it, like a healthy plugin, except for
/// endpoints whose path names a misbehaviour: `fail` answers 502, `panic` panics and
/// `hang` never answers (those are not recorded).
#[derive(Debug, Default)]
pub struct RecordingNotifier {
    received: Mutex<Vec<Delivery>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    pace: Pace,
}

impl RecordingNotifier {
    /// One that takes `delay` over every delivery.
    pub fn slowed_by(delay: Duration) -> Self {
        RecordingNotifier {
            pace: Pace::Sleep(delay),
            ..Self::default()
        }
    }

    /// One that lets other tasks run in the middle of every delivery.
    pub fn yielding() -> Self {
        RecordingNotifier {
            pace: Pace::Yield,
            ..Self::default()
        }
    }

    /// The deliveries so far, in the order they completed.
    pub fn received(&self) -> MutexGuard<'_, Vec<Delivery>> {
        self.received.lock().unwrap()
    }

    /// The endpoints delivered to so far, in order, repeats included.
    pub fn endpoint_list(&self) -> Vec<String> {
        self.received().iter().map(|d| d.endpoint.clone()).collect()
    }

    /// The distinct endpoints delivered to so far.
    pub fn endpoints(&self) -> BTreeSet<String> {
        self.received().iter().map(|d| d.endpoint.clone()).collect()
    }

    /// Forgets the deliveries so far.
    pub fn clear(&self) {
        self.received().clear();
    }

    /// The most deliveries that were ever in progress at once.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Notifier for RecordingNotifier {
    async fn notify(
        &self,
        endpoint: &Endpoint,
        notification: &PreparedNotification,
    ) -> Result<(), DeliveryError> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        match self.pace {
            Pace::Immediate => {}
            Pace::Yield => tokio::task::yield_now().await,
            Pace::Sleep(delay) => tokio::time::sleep(delay).await,
        }
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        let url = endpoint.url();
        let path = url.path();
        if path.contains("panic") {
            panic!("plugin client exploded");
        }
        if path.contains("fail") {
            return Err(DeliveryError::Status {
                status: http::StatusCode::BAD_GATEWAY,
            });
        }
        if path.contains("hang") {
            std::future::pending::<()>().await;
        }
        self.received().push(Delivery {
            endpoint: endpoint.as_str().to_owned(),
            notification: notification.notification().clone(),
            body: notification.body().to_vec(),
        });
        Ok(())
    }
}

// ---------------------------------------------------------------------------------
// A store whose backend is down.

/// Fails every call as a database backend that cannot be reached would, with a cause
/// full of details (`SECRET`, an internal address) that must reach the host's logs and
/// never a caller.
#[derive(Debug)]
pub struct FailingStore;

impl FailingStore {
    /// The error every call returns.
    pub fn outage() -> StoreError {
        StoreError::backend(
            "secret-backend",
            std::io::Error::other("SECRET: connection to 10.1.2.3:5432 refused"),
        )
    }
}

#[async_trait]
impl SubscriptionStore for FailingStore {
    async fn insert(&self, _: Subscription) -> Result<(), StoreError> {
        Err(Self::outage())
    }
    async fn remove(&self, _: &SubscriptionKey) -> Result<Subscription, StoreError> {
        Err(Self::outage())
    }
    async fn get(&self, _: Uuid) -> Result<Option<Subscription>, StoreError> {
        Err(Self::outage())
    }
    async fn matching(
        &self,
        _: EventType,
        _: Option<&str>,
    ) -> Result<Vec<Arc<Subscription>>, StoreError> {
        Err(Self::outage())
    }
    async fn search(&self, _: &SearchRequest) -> Result<Page<Subscription>, StoreError> {
        Err(Self::outage())
    }
    async fn count(&self) -> Result<u64, StoreError> {
        Err(Self::outage())
    }
}

// ---------------------------------------------------------------------------------
// A store someone else writes to.

/// A store shared with another writer: before each call it passes on to `inner`, the
/// other writer subscribes one more endpoint of its own (on `other-writer.example.com`)
/// through `writer`, so every step of the caller sees the store change under it.
#[derive(Debug)]
pub struct StoreWithAnotherWriter {
    inner: Arc<dyn SubscriptionStore>,
    writer: Arc<dyn SubscriptionStore>,
    writes: AtomicUsize,
}

impl StoreWithAnotherWriter {
    /// Calls go to `inner`, the other writer's inserts to `writer` (the same store, or
    /// another instance on the same data).
    pub fn new(inner: Arc<dyn SubscriptionStore>, writer: Arc<dyn SubscriptionStore>) -> Self {
        StoreWithAnotherWriter {
            inner,
            writer,
            writes: AtomicUsize::new(0),
        }
    }

    /// How many subscriptions the other writer has added.
    pub fn writes(&self) -> usize {
        self.writes.load(Ordering::SeqCst)
    }

    async fn write_another(&self) {
        let n = self.writes.fetch_add(1, Ordering::SeqCst);
        let key = SubscribeRequest::new(
            "patient",
            "_update",
            format!("https://other-writer.example.com/{n}"),
        )
        .key()
        .expect("a valid subscription");
        self.writer
            .insert(Subscription::new(key))
            .await
            .expect("the other writer's insert");
    }
}

#[async_trait]
impl SubscriptionStore for StoreWithAnotherWriter {
    async fn insert(&self, subscription: Subscription) -> Result<(), StoreError> {
        self.write_another().await;
        self.inner.insert(subscription).await
    }
    async fn remove(&self, key: &SubscriptionKey) -> Result<Subscription, StoreError> {
        self.write_another().await;
        self.inner.remove(key).await
    }
    async fn get(&self, id: Uuid) -> Result<Option<Subscription>, StoreError> {
        self.write_another().await;
        self.inner.get(id).await
    }
    async fn matching(
        &self,
        event_type: EventType,
        template: Option<&str>,
    ) -> Result<Vec<Arc<Subscription>>, StoreError> {
        self.write_another().await;
        self.inner.matching(event_type, template).await
    }
    async fn search(&self, request: &SearchRequest) -> Result<Page<Subscription>, StoreError> {
        self.write_another().await;
        self.inner.search(request).await
    }
    async fn count(&self) -> Result<u64, StoreError> {
        self.write_another().await;
        self.inner.count().await
    }
}

// ---------------------------------------------------------------------------------
// The PostgreSQL environment of the ignored tests.

/// How to provide what the PostgreSQL tests need, for their failure messages.
pub const POSTGRES_SETUP: &str = "`source .ci/postgres.sh` starts a throwaway server and \
                                  exports DATABASE_URL, BIOT_PG_CTL, BIOT_PGDATA and BIOT_PG_LOG";

/// The environment variable `name`; a test that is run without it fails (it is
/// `#[ignore]`d, so it runs only when asked for, and then a missing environment is an
/// error to report, not a reason to pass).
#[track_caller]
pub fn required_env(name: &str, needed_for: &str) -> String {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => value,
        _ => panic!("this test needs {name} ({needed_for}), which is not set: {POSTGRES_SETUP}"),
    }
}

/// `DATABASE_URL`: a PostgreSQL database the test may create schemas in.
#[track_caller]
pub fn database_url() -> String {
    required_env(
        "DATABASE_URL",
        "a PostgreSQL database the test may create schemas in",
    )
}

/// The test server's `pg_ctl`, from `.ci/postgres.sh`, for tests that stop and restart
/// the server; starts the server again if a test stopped it and then failed.
pub struct ServerControl {
    pg_ctl: String,
    data: String,
    log: Option<String>,
    stopped: bool,
}

impl ServerControl {
    /// Panics, failing the test, when the environment does not say how.
    pub fn from_env() -> Self {
        let pg_ctl = required_env("BIOT_PG_CTL", "a pg_ctl that may stop the server");
        assert!(
            std::path::Path::new(&pg_ctl).is_file(),
            "BIOT_PG_CTL is {pg_ctl}, which is not a file: {}",
            POSTGRES_SETUP
        );
        ServerControl {
            pg_ctl,
            data: required_env("BIOT_PGDATA", "the server's data directory"),
            log: std::env::var("BIOT_PG_LOG").ok(),
            stopped: false,
        }
    }

    fn run(&self, args: &[&str]) -> bool {
        let mut command = Command::new(&self.pg_ctl);
        command.args(["-D", &self.data, "-w", "-t", "60"]);
        if let Some(log) = &self.log {
            command.args(["-l", log]);
        }
        // The server inherits pg_ctl's output; keep it off the test's pipes.
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    }

    pub fn stop(&mut self) {
        assert!(self.run(&["-m", "fast", "stop"]), "pg_ctl stop failed");
        self.stopped = true;
    }

    pub fn start(&mut self) {
        assert!(self.run(&["start"]), "pg_ctl start failed");
        self.stopped = false;
    }
}

impl Drop for ServerControl {
    fn drop(&mut self) {
        if self.stopped {
            self.run(&["start"]);
        }
    }
}

// ---------------------------------------------------------------------------------
// Tracing output, captured for assertions.

/// Everything a `tracing_subscriber::fmt` subscriber writes, in one buffer.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// What was written so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}
