//! The whole HTTP handler on arbitrary method, path, headers and body: it always answers,
//! never panics, answers errors in BioT's format, and leaves the store consistent.
#![no_main]

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use async_trait::async_trait;
use biot_notifications::api::{AllowEveryone, Api};
use biot_notifications::notification::PreparedNotification;
use biot_notifications::notifier::{DeliveryError, Notifier};
use biot_notifications::{Dispatcher, Endpoint, InMemoryStore};
use bytes::Bytes;
use futures_util::FutureExt;
use libfuzzer_sys::fuzz_target;

#[derive(Debug)]
struct Accepting;

#[async_trait]
impl Notifier for Accepting {
    async fn notify(&self, _: &Endpoint, _: &PreparedNotification) -> Result<(), DeliveryError> {
        Ok(())
    }
}

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    method: u8,
    path: u8,
    query: &'a str,
    headers: Vec<(&'a str, &'a [u8])>,
    body: &'a [u8],
}

const METHODS: &[&str] = &[
    "GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS", "BREW",
];
const PATHS: &[&str] = &[
    "/dispatcher/v1/hooks/notifications/subscribe",
    "/dispatcher/v1/hooks/notifications/unsubscribe",
    "/dispatcher/v1/hooks/notifications",
    "/dispatcher/system/healthCheck",
    "/dispatcher/v1/hooks/interceptions",
    "/",
];

fn api() -> &'static Api {
    static API: OnceLock<Api> = OnceLock::new();
    API.get_or_init(|| {
        Api::builder(Dispatcher::new(InMemoryStore::new(), Accepting))
            .authorizer(AllowEveryone)
            .max_body_bytes(4096)
            .build()
            .expect("valid options")
    })
}

fuzz_target!(|input: Input<'_>| {
    let path = PATHS[usize::from(input.path) % PATHS.len()];
    let uri = if input.query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", input.query)
    };
    let method = METHODS[usize::from(input.method) % METHODS.len()];
    let mut builder = http::Request::builder().method(method).uri(uri.as_str());
    for (name, value) in &input.headers {
        builder = builder.header(*name, *value);
    }
    // Requests `http` itself refuses (bad URI, header) never reach a handler.
    let Ok(request) = builder.body(http_body_util::Full::new(Bytes::copy_from_slice(
        input.body,
    ))) else {
        return;
    };
    let response = api()
        .handle(request)
        .now_or_never()
        .expect("the in-memory handler never waits");
    let status = response.status();
    // A HEAD answer carries the GET's headers and no body.
    if method == "HEAD" {
        assert!(response.body().is_empty(), "HEAD answers have no body");
    } else if status.is_client_error() || status.is_server_error() {
        let body: serde_json::Value =
            serde_json::from_slice(response.body()).expect("errors are JSON ErrorResponses");
        assert!(body["code"].is_string() && body["message"].is_string());
    }
    assert!(
        !status.is_server_error(),
        "the in-memory store never fails: {status}"
    );
});
