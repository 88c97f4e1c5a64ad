//! End to end on loopback: the API served by axum on an ephemeral port, real plugin
//! receivers on others, a real HTTP client subscribing them, and the HTTP notifier
//! delivering.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use biot_notifications::api::{self, AllowEveryone, Api};
use biot_notifications::notifier::http_notifier::HttpNotifier;
use biot_notifications::{
    Action, Dispatcher, EndpointPolicy, EntityType, Event, EventType, InMemoryStore,
};
use serde_json::{json, Value};

/// What a receiver saw: path, headers, body.
type Seen = Arc<Mutex<Vec<(String, HeaderMap, Bytes)>>>;

/// A plugin receiver: `/ok` answers 200, `/fail` 500, `/slow` never in time, and
/// `/redirect` sends the caller to `/ok`.
async fn receiver() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let app = axum::Router::new().fallback({
        let seen = seen.clone();
        move |request: Request| {
            let seen = seen.clone();
            async move {
                let (parts, body) = request.into_parts();
                let body = axum::body::to_bytes(body, 1 << 20)
                    .await
                    .unwrap_or_default();
                let path = parts.uri.path().to_owned();
                seen.lock()
                    .unwrap()
                    .push((path.clone(), parts.headers, body));
                let response: Response = match path.as_str() {
                    "/fail" => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
                    "/slow" => {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        StatusCode::OK.into_response()
                    }
                    "/redirect" => Redirect::temporary("/ok").into_response(),
                    _ => StatusCode::OK.into_response(),
                };
                response
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, seen)
}

/// The dispatcher's API on an ephemeral port; loopback plugins are allowed, as in
/// local development.
async fn dispatcher_service() -> (String, Dispatcher) {
    // The policy is given once, to the notifier; the dispatcher takes it from there.
    let notifier = HttpNotifier::builder()
        .endpoint_policy(EndpointPolicy::local_development())
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let dispatcher = Dispatcher::new(InMemoryStore::new(), notifier);
    let app = api::router(
        Api::builder(dispatcher.clone())
            .authorizer(AllowEveryone)
            .build()
            .unwrap(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/dispatcher", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, dispatcher)
}

fn subscription(endpoint: &str) -> Value {
    json!({"entityTypeName": "patient", "actionName": "_create", "endpoint": endpoint})
}

fn patient_created() -> Event {
    Event::new(
        EventType::new(EntityType::Patient, Action::Create).unwrap(),
        json!({"_id": "p-1", "_template": {"name": "adultPatient"}}),
    )
}

fn is_traceparent(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    parts.len() == 4
        && [2, 32, 16, 2].iter().zip(&parts).all(|(len, part)| {
            part.len() == *len
                && part
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
        && parts[1] != "0".repeat(32)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscribed_plugin_receives_the_notification_and_nothing_after_unsubscribing() {
    let (plugin, seen) = receiver().await;
    let (service, dispatcher) = dispatcher_service().await;
    let client = reqwest::Client::new();
    let endpoint = format!("{plugin}/ok");

    let response = client
        .post(format!("{service}/v1/hooks/notifications/subscribe"))
        .header("content-type", "application/json")
        .body(subscription(&endpoint).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let created: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(created["endpoint"], endpoint);
    assert!(created["id"].as_str().unwrap().len() == 36);

    let report = dispatcher.dispatch(&patient_created()).await.unwrap();
    assert_eq!(report.delivered(), 1, "{:?}", report);
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        let (path, headers, body) = &seen[0];
        assert_eq!(path, "/ok");
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(headers["hooktype"], "NOTIFICATION");
        assert!(is_traceparent(headers["traceparent"].to_str().unwrap()));
        assert!(headers.get("authorization").is_none());
        let body: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(body["metadata"]["entityTypeName"], "patient");
        assert_eq!(body["metadata"]["actionName"], "_create");
        assert_eq!(body["metadata"]["status"], "SUCCESS");
        assert_eq!(body["data"]["entity"]["_id"], "p-1");
    }

    let response = client
        .post(format!("{service}/v1/hooks/notifications/unsubscribe"))
        .header("content-type", "application/json")
        .body(subscription(&endpoint).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);

    let report = dispatcher.dispatch(&patient_created()).await.unwrap();
    assert_eq!(report.matched(), 0);
    assert_eq!(seen.lock().unwrap().len(), 1, "nothing after unsubscribing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_hanging_and_redirecting_plugins_are_failures_beside_a_healthy_one() {
    let (plugin, seen) = receiver().await;
    let (service, dispatcher) = dispatcher_service().await;
    let client = reqwest::Client::new();
    for path in ["ok", "fail", "slow", "redirect"] {
        let response = client
            .post(format!("{service}/v1/hooks/notifications/subscribe"))
            .header("content-type", "application/json")
            .body(subscription(&format!("{plugin}/{path}")).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
    }
    let report = dispatcher.dispatch(&patient_created()).await.unwrap();
    assert_eq!(report.matched(), 4);
    assert_eq!(report.delivered(), 1);
    let outcomes: std::collections::BTreeMap<String, String> = report
        .deliveries()
        .iter()
        .map(|d| {
            (
                d.subscription().endpoint().url().path().to_owned(),
                d.outcome().to_string(),
            )
        })
        .collect();
    assert_eq!(outcomes["/ok"], "delivered");
    assert!(outcomes["/fail"].contains("500"), "{outcomes:?}");
    assert!(outcomes["/slow"].contains("timed out"), "{outcomes:?}");
    assert!(outcomes["/redirect"].contains("307"), "{outcomes:?}");
    // The redirect was not followed: `/ok` was called once, by its own subscription.
    let ok_calls = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(p, _, _)| p == "/ok")
        .count();
    assert_eq!(ok_calls, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_strict_default_policy_refuses_loopback_plugins_at_subscribe_time() {
    let (plugin, seen) = receiver().await;
    let dispatcher = Dispatcher::new(InMemoryStore::new(), HttpNotifier::new().unwrap());
    let app = api::router(
        Api::builder(dispatcher)
            .authorizer(AllowEveryone)
            .build()
            .unwrap(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let service = format!("http://{}/dispatcher", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let response = reqwest::Client::new()
        .post(format!("{service}/v1/hooks/notifications/subscribe"))
        .header("content-type", "application/json")
        .body(subscription(&format!("{plugin}/ok")).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(body["code"], "INVALID_ENDPOINT");
    assert!(seen.lock().unwrap().is_empty());
}
