//! Observability: subscribe, unsubscribe, search and dispatch emit spans and events
//! (per delivery: endpoint, outcome, duration), and none of them carries a request
//! body, an entity or a token.

use std::sync::Arc;

use async_trait::async_trait;
use biot_notifications::notification::PreparedNotification;
use biot_notifications::notifier::{DeliveryError, Notifier};
use biot_notifications::{
    Action, BoxError, Dispatcher, Endpoint, EntityType, Event, EventType, InMemoryStore,
    SearchRequest, SubscribeRequest, TokenProvider,
};
use serde_json::json;

mod common;

use common::Captured;

#[derive(Debug)]
struct HalfBroken;

#[async_trait]
impl Notifier for HalfBroken {
    async fn notify(
        &self,
        endpoint: &Endpoint,
        _: &PreparedNotification,
    ) -> Result<(), DeliveryError> {
        if endpoint.as_str().contains("broken") {
            Err(DeliveryError::Status {
                status: http::StatusCode::BAD_GATEWAY,
            })
        } else {
            Ok(())
        }
    }
}

#[derive(Debug)]
struct SecretToken;

#[async_trait]
impl TokenProvider for SecretToken {
    async fn token(&self, _: &Event) -> Result<String, BoxError> {
        Ok("SECRET-PLATFORM-TOKEN".to_owned())
    }
}

#[test]
fn operations_are_traced_without_bodies_or_tokens() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .finish();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();

    tracing::subscriber::with_default(subscriber, || {
        runtime.block_on(async {
            let dispatcher = Dispatcher::builder(InMemoryStore::new(), HalfBroken)
                .token_provider(SecretToken)
                .build()
                .unwrap();
            for endpoint in [
                "https://ok.example.com/hook",
                "https://broken.example.com/hook",
            ] {
                dispatcher
                    .subscribe(&SubscribeRequest::new("patient", "_create", endpoint))
                    .await
                    .unwrap();
            }
            // A refused request whose body carries something that must not be logged.
            let _ = dispatcher
                .subscribe(
                    &SubscribeRequest::new("patient", "_create", "https://ok.example.com/")
                        .with_template("BODY-MARKER\n"),
                )
                .await
                .unwrap_err();
            let event = Event::new(
                EventType::new(EntityType::Patient, Action::Create).unwrap(),
                json!({"_id": "p-1", "_name": "ENTITY-MARKER"}),
            );
            let report = dispatcher.dispatch(&event).await.unwrap();
            assert_eq!(report.delivered(), 1);
            dispatcher.search(&SearchRequest::new()).await.unwrap();
            dispatcher
                .unsubscribe(&SubscribeRequest::new(
                    "patient",
                    "_create",
                    "https://ok.example.com/hook",
                ))
                .await
                .unwrap();
        });
    });

    let log = captured.text();
    for expected in [
        "subscribe: ",
        "subscribed",
        "subscribe refused",
        "code=\"INVALID_ATTRIBUTE\"",
        "dispatch{event=patient/_create",
        "delivered endpoint=\"https://ok.example.com/hook\"",
        "delivery failed endpoint=\"https://broken.example.com/hook\"",
        "duration_ms=",
        "outcome=\"failed\"",
        "dispatched matched=2 delivered=1",
        "search{page=0 limit=100}",
        "unsubscribed",
    ] {
        assert!(log.contains(expected), "missing `{expected}` in:\n{log}");
    }
    for secret in ["SECRET-PLATFORM-TOKEN", "ENTITY-MARKER", "BODY-MARKER"] {
        assert!(!log.contains(secret), "`{secret}` leaked into:\n{log}");
    }
}

/// A request's span carries the trace id its caller can quote: the caller's own from a
/// valid `traceparent`, or for a request without one, the fresh id its error reports.
/// (Both requests here are refused by the dispatcher, whose event is logged in the span.)
#[test]
fn request_spans_carry_the_trace_id_the_caller_sees() {
    use biot_notifications::api::{AllowEveryone, Api};

    let captured = Captured::default();
    // With the span's creation logged too: layers that read a span's fields only when
    // it is created must see the id as well.
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_ansi(false)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::NEW)
        .finish();
    let api = Api::builder(Dispatcher::new(InMemoryStore::new(), HalfBroken))
        .authorizer(AllowEveryone)
        .build()
        .unwrap();
    let subscribe = |traceparent: Option<&str>, body: &str| {
        let mut request = http::Request::post("/dispatcher/v1/hooks/notifications/subscribe")
            .header("content-type", "application/json");
        if let Some(traceparent) = traceparent {
            request = request.header("traceparent", traceparent);
        }
        request.body(body.to_owned()).unwrap()
    };
    let (caller_trace_id, fresh_trace_id) = tracing::subscriber::with_default(subscriber, || {
        futures_util::FutureExt::now_or_never(async {
            let traced = api
                .handle(subscribe(
                    Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
                    r#"{"entityTypeName":"patient","actionName":"_read","endpoint":"https://ok.example.com/"}"#,
                ))
                .await;
            let untraced = api
                .handle(subscribe(
                    None,
                    r#"{"entityTypeName":"patient","actionName":"_read","endpoint":"https://ok.example.com/"}"#,
                ))
                .await;
            let trace_id = |response: http::Response<bytes::Bytes>| {
                let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
                body["traceId"].as_str().unwrap().to_owned()
            };
            (trace_id(traced), trace_id(untraced))
        })
        .expect("the in-memory store never waits")
    });
    assert_eq!(caller_trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(fresh_trace_id.len(), 32);
    let log = captured.text();
    for trace_id in [caller_trace_id, fresh_trace_id] {
        assert!(
            log.contains(&format!("trace_id={trace_id}")),
            "missing `{trace_id}` in:\n{log}"
        );
        assert!(
            log.lines().any(|line| line.contains(&format!(
                "trace_id={trace_id}}}: biot_notifications::api: new"
            ))),
            "no span created with `{trace_id}` in:\n{log}"
        );
    }
}

/// What `build` logs at warning level and above while it runs.
fn warnings_while(build: impl FnOnce()) -> String {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, build);
    captured.text()
}

#[test]
fn a_dispatcher_without_a_token_provider_warns_when_built_and_one_with_does_not() {
    let with = warnings_while(|| {
        let _ = Dispatcher::builder(Arc::new(InMemoryStore::new()), Arc::new(HalfBroken))
            .token_provider(Arc::new(SecretToken))
            .build();
    });
    assert_eq!(with, "");
    let without = warnings_while(|| {
        let _ = Dispatcher::new(InMemoryStore::new(), HalfBroken);
    });
    assert!(
        without.contains("WARN") && without.contains("no token provider"),
        "{without}"
    );
}
