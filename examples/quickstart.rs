//! The crate end to end, in one process: validate subscriptions, keep them in the
//! in-memory store, fan events out, and read the reports.
//!
//! Run it with `cargo run --example quickstart`.

use async_trait::async_trait;
use biot_notifications::notification::{Event, PreparedNotification};
use biot_notifications::notifier::{DeliveryError, Notifier};
use biot_notifications::store::InMemoryStore;
use biot_notifications::{
    Action, BoxError, Dispatcher, Endpoint, EntityType, EventType, SubscribeRequest, TokenProvider,
};
use serde_json::json;

/// Stands in for HTTP: prints what each plugin would receive.
#[derive(Debug)]
struct PrintingNotifier;

#[async_trait]
impl Notifier for PrintingNotifier {
    async fn notify(
        &self,
        endpoint: &Endpoint,
        notification: &PreparedNotification,
    ) -> Result<(), DeliveryError> {
        if endpoint.as_str().contains("broken") {
            // A plugin that is down: the dispatcher records it and carries on.
            return Err(DeliveryError::Status {
                status: http::StatusCode::SERVICE_UNAVAILABLE,
            });
        }
        let request = notification.to_request(endpoint);
        println!("  -> {} {}", request.method(), request.uri());
        for (name, value) in request.headers() {
            println!("     {name}: {}", value.to_str().unwrap_or("<binary>"));
        }
        println!("     {}", String::from_utf8_lossy(request.body()));
        Ok(())
    }
}

/// Stands in for the platform's service-token issuer.
#[derive(Debug)]
struct StaticToken;

#[async_trait]
impl TokenProvider for StaticToken {
    async fn token(&self, _event: &Event) -> Result<String, BoxError> {
        Ok("eyJhbGciOiJSUzUxMiJ9.example.signature".to_owned())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dispatcher = Dispatcher::builder(InMemoryStore::new(), PrintingNotifier)
        .max_in_flight(8)
        .token_provider(StaticToken)
        .build()?;

    println!("== subscribing");
    let requests = [
        // Every patient creation, whatever its template.
        SubscribeRequest::new(
            "patient",
            "_create",
            "https://audit.plugins.example.com/patients",
        ),
        // Only adult patients; BioT's docs spell actions bare, which is accepted too.
        SubscribeRequest::new(
            "patient",
            "create",
            "https://Adults.Plugins.Example.com:443/welcome",
        )
        .with_template("adultPatient"),
        // A plugin that will be down when the event comes.
        SubscribeRequest::new(
            "patient",
            "_create",
            "https://broken.plugins.example.com/hook",
        ),
        // Mistakes, each rejected with BioT's error code and a reason.
        SubscribeRequest::new(
            "usageSession",
            "_remotePause",
            "https://plugins.example.com/",
        ),
        SubscribeRequest::new("device", "_login", "https://plugins.example.com/"),
        SubscribeRequest::new(
            "patient",
            "_create",
            "https://169.254.169.254/latest/meta-data",
        ),
        SubscribeRequest::new("patient", "_create", "http://plugins.example.com/"),
    ];
    for request in &requests {
        match dispatcher.subscribe(request).await {
            Ok(subscription) => {
                println!("  ok   {} (id {})", subscription.key(), subscription.id())
            }
            Err(err) => println!("  {:<4} {}: {err}", err.status().as_u16(), err.code()),
        }
    }
    // The same subscription twice is a conflict, even spelled differently.
    let again = SubscribeRequest::new(
        "patient",
        "_create",
        "https://AUDIT.plugins.example.com/patients",
    );
    if let Err(err) = dispatcher.subscribe(&again).await {
        println!("  {:<4} {}: {err}", err.status().as_u16(), err.code());
    }

    let patient_created = EventType::new(EntityType::Patient, Action::Create)?;
    let events = [
        Event::new(
            patient_created,
            json!({
                "_id": "1b2c3d4e-0000-4000-8000-000000000001",
                "_template": {"name": "adultPatient", "displayName": "Adult patient"},
                "_name": "Ada",
            }),
        ),
        Event::new(
            patient_created,
            json!({
                "_id": "1b2c3d4e-0000-4000-8000-000000000002",
                "_template": {"name": "childPatient", "displayName": "Child patient"},
                "_name": "Ben",
            }),
        ),
        // Nobody subscribed to device updates: nothing is sent.
        Event::new(
            EventType::new(EntityType::Device, Action::Update)?,
            json!({"_id": "dev-1"}),
        )
        .with_old_entity(json!({"_id": "dev-1", "_status": "offline"})),
    ];
    for event in &events {
        println!(
            "\n== dispatching {} (template {:?})",
            event.event_type(),
            event.template_name()
        );
        let report = dispatcher.dispatch(event).await?;
        println!(
            "  report: {} matched, {} delivered",
            report.matched(),
            report.delivered()
        );
        for failure in report.failures() {
            println!(
                "  {}: {}",
                failure.subscription().endpoint(),
                failure.outcome()
            );
        }
    }

    println!("\n== unsubscribing");
    let removed = dispatcher
        .unsubscribe(&SubscribeRequest::new(
            "patient",
            "_create",
            "https://broken.plugins.example.com/hook",
        ))
        .await?;
    println!("  removed {}", removed.key());
    println!("  {} subscriptions left", dispatcher.store().count().await?);
    Ok(())
}
