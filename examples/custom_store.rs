//! A subscription store written outside the crate: subscriptions kept in a JSON file,
//! rewritten atomically on every change. It passes the crate's conformance suite.
//!
//! Run it with `cargo run --example custom_store --features testkit`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

// Everything a store needs, from the crate root in one line.
use biot_notifications::prelude::*;
use uuid::Uuid;

/// Every subscription in memory, mirrored to one JSON file.
#[derive(Debug)]
struct JsonFileStore {
    path: PathBuf,
    subscriptions: Mutex<Vec<Arc<Subscription>>>,
}

impl JsonFileStore {
    const NAME: &'static str = "json-file";

    /// Opens the store, loading the file when it exists. Loading validates every
    /// subscription: `Subscription` cannot be deserialised otherwise.
    fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_owned();
        let subscriptions: Vec<Subscription> = match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| StoreError::backend(Self::NAME, e))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(StoreError::backend(Self::NAME, e)),
        };
        Ok(JsonFileStore {
            path,
            subscriptions: Mutex::new(subscriptions.into_iter().map(Arc::new).collect()),
        })
    }

    fn lock(&self) -> Result<MutexGuard<'_, Vec<Arc<Subscription>>>, StoreError> {
        self.subscriptions
            .lock()
            .map_err(|_| StoreError::backend(Self::NAME, "a writer panicked"))
    }

    /// Writes the whole list to a temporary file and renames it over the old one, so
    /// a crash leaves either the old or the new file, never half of one.
    fn persist(&self, subscriptions: &[Arc<Subscription>]) -> Result<(), StoreError> {
        let plain: Vec<&Subscription> = subscriptions.iter().map(|s| &**s).collect();
        let json =
            serde_json::to_vec_pretty(&plain).map_err(|e| StoreError::backend(Self::NAME, e))?;
        let temporary = self.path.with_extension("tmp");
        std::fs::write(&temporary, json).map_err(|e| StoreError::backend(Self::NAME, e))?;
        std::fs::rename(&temporary, &self.path).map_err(|e| StoreError::backend(Self::NAME, e))
    }
}

#[async_trait]
impl SubscriptionStore for JsonFileStore {
    async fn insert(&self, subscription: Subscription) -> Result<(), StoreError> {
        let mut subscriptions = self.lock()?;
        if subscriptions.iter().any(|s| s.key() == subscription.key()) {
            return Err(StoreError::already_exists(subscription.key()));
        }
        subscriptions.push(Arc::new(subscription));
        if let Err(e) = self.persist(&subscriptions) {
            // Keep memory and file in step: undo what could not be written.
            subscriptions.pop();
            return Err(e);
        }
        Ok(())
    }

    async fn remove(&self, key: &SubscriptionKey) -> Result<Subscription, StoreError> {
        let mut subscriptions = self.lock()?;
        let position = subscriptions
            .iter()
            .position(|s| s.key() == key)
            .ok_or_else(|| StoreError::not_found(key))?;
        let removed = subscriptions.remove(position);
        if let Err(e) = self.persist(&subscriptions) {
            subscriptions.insert(position, removed);
            return Err(e);
        }
        Ok(Arc::unwrap_or_clone(removed))
    }

    async fn get(&self, id: Uuid) -> Result<Option<Subscription>, StoreError> {
        Ok(self
            .lock()?
            .iter()
            .find(|s| s.id() == id)
            .map(|s| Subscription::clone(s)))
    }

    async fn matching(
        &self,
        event_type: EventType,
        template: Option<&str>,
    ) -> Result<Vec<Arc<Subscription>>, StoreError> {
        Ok(self
            .lock()?
            .iter()
            .filter(|s| s.matches(event_type, template))
            .cloned()
            .collect())
    }

    async fn search(&self, request: &SearchRequest) -> Result<Page<Subscription>, StoreError> {
        // The crate's shared evaluator: search in one line.
        Ok(request.evaluate(self.lock()?.iter().map(|s| &**s)))
    }

    async fn count(&self) -> Result<u64, StoreError> {
        Ok(self.lock()?.len() as u64)
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let directory =
        std::env::temp_dir().join(format!("biot-custom-store-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&directory)?;
    let path = directory.join("subscriptions.json");

    let store = JsonFileStore::open(&path)?;
    println!("running the conformance suite against {}", path.display());
    biot_notifications::testkit::run_all(&store).await;
    println!("passed");

    // What the file holds survives a reopen, validated on the way in.
    let key = biot_notifications::SubscribeRequest::new(
        "patient",
        "_create",
        "https://plugin.example.com/hook",
    )
    .key()?;
    store.insert(Subscription::new(key)).await?;
    let reopened = JsonFileStore::open(&path)?;
    println!(
        "reopened: {} subscription(s) on disk",
        reopened.count().await?
    );
    assert_eq!(reopened.count().await?, 1);

    std::fs::remove_dir_all(&directory)?;
    Ok(())
}
