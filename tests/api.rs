//! BioT's dispatcher HTTP surface, driven through `Api::handle` with an in-memory store
//! and a notifier that sends nothing: every route, every status, and the error format.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use async_trait::async_trait;
use biot_notifications::api::{
    AllowEveryone, Api, ApiBuildError, ApiBuilder, Authorizer, ErrorReport, ErrorResponse,
    Permission,
};
use biot_notifications::notifier::DiscardingNotifier;
use biot_notifications::search::{Page, SearchRequest};
use biot_notifications::store::SubscriptionStore;
use biot_notifications::{
    AuthorizationError, BiotError, Dispatcher, EventType, InMemoryStore, StoreError, Subscription,
    SubscriptionKey,
};
use bytes::Bytes;
use http::header::{ALLOW, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{Full, StreamBody};
use serde_json::{json, Value};
use uuid::Uuid;

mod common;
use common::{assert_clone, assert_send, assert_send_sync, FailingStore};

const SUBSCRIBE: &str = "/dispatcher/v1/hooks/notifications/subscribe";
const UNSUBSCRIBE: &str = "/dispatcher/v1/hooks/notifications/unsubscribe";
const SEARCH: &str = "/dispatcher/v1/hooks/notifications";
const HEALTH_CHECK: &str = "/dispatcher/system/healthCheck";

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

fn api_over(store: impl SubscriptionStore) -> Api {
    Api::builder(Dispatcher::new(store, DiscardingNotifier))
        .authorizer(AllowEveryone)
        .build()
        .unwrap()
}

/// `api`'s dispatcher behind a new API allowing everyone, with `configure`'s options.
fn rebuilt(api: &Api, configure: impl FnOnce(ApiBuilder) -> ApiBuilder) -> Api {
    configure(Api::builder(api.dispatcher().clone()).authorizer(AllowEveryone))
        .build()
        .unwrap()
}

fn api() -> (Api, InMemoryStore) {
    let store = InMemoryStore::new();
    (api_over(store.clone()), store)
}

/// A response, with its body collected.
#[derive(Debug)]
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    report: Option<ErrorReport>,
}

impl Reply {
    fn json(&self) -> Value {
        assert_eq!(
            self.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()),
            Some("application/json"),
            "a JSON body is declared as such"
        );
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("the body is JSON ({e}): {:?}", self.body))
    }

    /// The body as BioT's ErrorResponse, checking every member is there.
    fn error(&self) -> ErrorResponse {
        let json = self.json();
        let members: Vec<&str> = json
            .as_object()
            .expect("an error body is an object")
            .keys()
            .map(String::as_str)
            .collect();
        for member in [
            "code",
            "message",
            "serviceName",
            "traceId",
            "environment",
            "details",
        ] {
            assert!(members.contains(&member), "`{member}` is in {json}");
        }
        assert_eq!(
            members.len(),
            6,
            "nothing but ErrorResponse's members: {json}"
        );
        let error: ErrorResponse = serde_json::from_value(json).expect("an ErrorResponse");
        assert!(!error.message.is_empty());
        error
    }

    /// Asserts an error status and code; returns the error body.
    fn expect_error(&self, status: u16, code: &str) -> ErrorResponse {
        let error = self.error();
        assert_eq!(
            (self.status.as_u16(), error.code.as_str()),
            (status, code),
            "{error:?}"
        );
        error
    }
}

async fn call<B>(api: &Api, request: Request<B>) -> Reply
where
    B: Body + Send,
    B::Data: Send,
    B::Error: Into<biot_notifications::BoxError>,
{
    let response = api.handle(request).await;
    let (parts, body) = response.into_parts();
    Reply {
        status: parts.status,
        report: parts.extensions.get::<ErrorReport>().cloned(),
        headers: parts.headers,
        body,
    }
}

fn post(path: &str, body: impl Into<String>) -> Request<String> {
    Request::post(path)
        .header(CONTENT_TYPE, "application/json")
        .body(body.into())
        .unwrap()
}

fn get(uri: &str) -> Request<String> {
    Request::get(uri).body(String::new()).unwrap()
}

fn subscription_json(entity: &str, action: &str, endpoint: &str) -> Value {
    json!({"entityTypeName": entity, "actionName": action, "endpoint": endpoint})
}

/// `SEARCH?searchRequest=<url-encoded json>`.
fn search_uri(search_request: &str) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("searchRequest", search_request)
        .finish();
    format!("{SEARCH}?{query}")
}

async fn subscribe(api: &Api, body: Value) -> Value {
    let reply = call(api, post(SUBSCRIBE, body.to_string())).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    reply.json()
}

/// Every stored subscription's id, sorted: what "the store is unchanged" compares.
async fn listing(store: &InMemoryStore) -> Vec<Uuid> {
    let page = store
        .search(&SearchRequest::new().with_limit(1000))
        .await
        .unwrap();
    let mut ids: Vec<Uuid> = page.data.iter().map(Subscription::id).collect();
    ids.sort_unstable();
    ids
}

fn is_trace_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

// ---------------------------------------------------------------------------------
// Subscribe

#[tokio::test]
async fn subscribe_answers_201_with_the_subscription_and_its_id() {
    let (api, store) = api();
    let body = json!({
        "entityTypeName": "patient",
        "actionName": "create",
        "endpoint": "https://Plugins.Example.com:443/on-patient",
        "templateName": "adultPatient",
    });
    let reply = call(&api, post(SUBSCRIBE, body.to_string())).await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert!(reply.report.is_none(), "only errors carry a report");
    let created = reply.json();
    let members: Vec<&str> = created
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        members.len(),
        6,
        "entityTypeName, actionName, endpoint, templateName, id, creationTime: {created}"
    );
    assert_eq!(created["entityTypeName"], "patient");
    assert_eq!(
        created["actionName"], "_create",
        "the canonical action name"
    );
    assert_eq!(
        created["endpoint"],
        "https://plugins.example.com/on-patient"
    );
    assert_eq!(created["templateName"], "adultPatient");
    assert!(created["creationTime"].is_string());
    let id = Uuid::parse_str(created["id"].as_str().unwrap()).expect("the id is a UUID");
    assert_eq!(store.count().await.unwrap(), 1);
    assert_eq!(store.get(id).await.unwrap().unwrap().id(), id);
}

#[tokio::test]
async fn subscribe_without_a_template_leaves_template_name_out() {
    let (api, _) = api();
    let created = subscribe(
        &api,
        subscription_json(
            "device",
            "_revokeCertificate",
            "https://plugin.example.com/certs",
        ),
    )
    .await;
    assert!(created.get("templateName").is_none(), "{created}");
}

#[tokio::test]
async fn subscribing_twice_is_a_409_naming_the_subscription() {
    let (api, store) = api();
    let body = json!({
        "entityTypeName": "device",
        "actionName": "_create",
        "endpoint": "https://plugin.example.com/devices",
        "templateName": "bloodPressureCuff",
    });
    subscribe(&api, body.clone()).await;
    // The same identity spelled differently is still the same subscription.
    let again = json!({
        "entityTypeName": "device",
        "actionName": "create",
        "endpoint": "https://PLUGIN.example.com:443/devices",
        "templateName": "bloodPressureCuff",
    });
    let reply = call(&api, post(SUBSCRIBE, again.to_string())).await;
    let error = reply.expect_error(409, "SUBSCRIPTION_ALREADY_EXISTS");
    assert_eq!(Value::Object(error.details), body);
    assert_eq!(store.count().await.unwrap(), 1);
}

// ---------------------------------------------------------------------------------
// Unsubscribe

#[tokio::test]
async fn unsubscribe_answers_204_with_no_body_then_404_with_biots_details() {
    let (api, store) = api();
    let body = json!({
        "entityTypeName": "usage-session",
        "actionName": "_remotePause",
        "endpoint": "https://plugin.example.com/sessions",
        "templateName": "homeSession",
    });
    subscribe(&api, body.clone()).await;

    let reply = call(&api, post(UNSUBSCRIBE, body.to_string())).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert!(reply.body.is_empty());
    assert!(
        reply.headers.get(CONTENT_TYPE).is_none(),
        "no body, no content type"
    );
    assert_eq!(store.count().await.unwrap(), 0);

    let reply = call(&api, post(UNSUBSCRIBE, body.to_string())).await;
    let error = reply.expect_error(404, "SUBSCRIBER_NOT_FOUND");
    let details: Vec<&str> = error.details.keys().map(String::as_str).collect();
    assert_eq!(details.len(), 4, "{details:?}");
    assert_eq!(Value::Object(error.details), body);
}

#[tokio::test]
async fn unsubscribe_without_a_template_reports_all_four_fields_template_null() {
    let (api, _) = api();
    let body = subscription_json("patient", "_login", "https://plugin.example.com/logins");
    let reply = call(&api, post(UNSUBSCRIBE, body.to_string())).await;
    let error = reply.expect_error(404, "SUBSCRIBER_NOT_FOUND");
    let mut expected = body.clone();
    expected["templateName"] = Value::Null;
    assert_eq!(Value::Object(error.details), expected);
}

// ---------------------------------------------------------------------------------
// Search

/// Five subscriptions: four of patients (one templated), one of a device.
async fn search_fixture(api: &Api) -> Vec<Value> {
    let mut created = Vec::new();
    for body in [
        subscription_json("patient", "_create", "https://a.example.com/patients"),
        subscription_json("patient", "_delete", "https://a.example.com/patients"),
        subscription_json("device", "_create", "https://b.example.com/devices"),
        json!({"entityTypeName": "patient", "actionName": "_update",
               "endpoint": "https://a.example.com/patients", "templateName": "adultPatient"}),
        subscription_json("patient", "_login", "https://c.example.com/logins"),
    ] {
        created.push(subscribe(api, body).await);
    }
    created
}

#[tokio::test]
async fn search_with_an_encoded_request_filters_sorts_pages_and_counts() {
    let (api, _) = api();
    search_fixture(&api).await;
    let request = json!({
        "filter": {"entityTypeName": {"eq": "patient"}},
        "sort": [{"prop": "actionName", "order": "ASC"}],
        "limit": 3,
        "page": 0,
    });

    let first = call(&api, get(&search_uri(&request.to_string()))).await;
    assert_eq!(first.status, StatusCode::OK);
    let first = first.json();
    let actions: Vec<&str> = first["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["actionName"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["_create", "_delete", "_login"]);
    assert_eq!(
        first["metadata"],
        json!({
            "sort": [{"prop": "actionName", "order": "ASC"}],
            "filter": {"entityTypeName": {"eq": "patient"}},
            "page": {"totalResults": 4, "page": 0, "limit": 3},
        })
    );

    let mut second_request = request.clone();
    second_request["page"] = json!(1);
    let second = call(&api, get(&search_uri(&second_request.to_string())))
        .await
        .json();
    assert_eq!(second["data"].as_array().unwrap().len(), 1);
    assert_eq!(second["data"][0]["actionName"], "_update");
    assert_eq!(second["data"][0]["templateName"], "adultPatient");
    assert_eq!(
        second["metadata"]["page"],
        json!({"totalResults": 4, "page": 1, "limit": 3})
    );
}

#[tokio::test]
async fn search_echoes_free_text_and_reads_searchrequest_among_other_parameters() {
    let (api, _) = api();
    search_fixture(&api).await;
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("utm", "x")
        .append_pair("searchRequest", r#"{"freeTextSearch": "logins devices"}"#)
        .finish();
    let reply = call(&api, get(&format!("{SEARCH}?{query}"))).await.json();
    assert_eq!(reply["metadata"]["freeTextSearch"], "logins devices");
    assert_eq!(reply["metadata"]["page"]["totalResults"], 2);
}

#[tokio::test]
async fn search_without_a_request_is_the_first_page_of_everything() {
    let (api, _) = api();
    let created = search_fixture(&api).await;
    let mut expected: Vec<&str> = created.iter().map(|s| s["id"].as_str().unwrap()).collect();
    expected.sort_unstable();
    for uri in [
        SEARCH.to_owned(),
        format!("{SEARCH}?"),
        format!("{SEARCH}?searchRequest="),
        format!("{SEARCH}?other=1"),
    ] {
        let reply = call(&api, get(&uri)).await;
        assert_eq!(reply.status, StatusCode::OK, "{uri}");
        let reply = reply.json();
        let mut ids: Vec<&str> = reply["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap())
            .collect();
        ids.sort_unstable();
        assert_eq!(ids, expected, "{uri}");
        assert_eq!(
            reply["metadata"]["page"],
            json!({"totalResults": 5, "page": 0, "limit": 100}),
            "{uri}"
        );
    }
}

// ---------------------------------------------------------------------------------
// Health check, HEAD, 404, 405

#[tokio::test]
async fn health_check_answers_200_with_the_version_and_trace_id() {
    let (api, _) = api();
    let reply = call(&api, get(HEALTH_CHECK)).await;
    assert_eq!(reply.status, StatusCode::OK);
    let body = reply.json();
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert!(is_trace_id(body["traceId"].as_str().unwrap()), "{body}");

    let traced = Request::get(HEALTH_CHECK)
        .header("traceparent", TRACEPARENT)
        .body(String::new())
        .unwrap();
    assert_eq!(call(&api, traced).await.json()["traceId"], TRACE_ID);
}

#[tokio::test]
async fn head_on_get_routes_answers_like_get_without_a_body() {
    let (api, _) = api();
    search_fixture(&api).await;
    for uri in [HEALTH_CHECK, SEARCH] {
        let got = call(&api, get(uri)).await;
        let head = call(&api, Request::head(uri).body(String::new()).unwrap()).await;
        assert_eq!(head.status, got.status, "{uri}");
        assert!(head.body.is_empty(), "{uri}");
        assert_eq!(
            head.headers.get(CONTENT_LENGTH).unwrap().to_str().unwrap(),
            got.body.len().to_string(),
            "{uri}"
        );
        assert_eq!(
            head.headers.get(CONTENT_TYPE),
            got.headers.get(CONTENT_TYPE)
        );
    }
}

#[tokio::test]
async fn wrong_methods_on_known_paths_answer_405_with_an_allow_header() {
    let (api, _) = api();
    for (method, path, allow) in [
        (Method::GET, SUBSCRIBE, "POST"),
        (Method::PUT, SUBSCRIBE, "POST"),
        (Method::DELETE, UNSUBSCRIBE, "POST"),
        (Method::POST, SEARCH, "GET, HEAD"),
        (Method::DELETE, SEARCH, "GET, HEAD"),
        (Method::OPTIONS, HEALTH_CHECK, "GET, HEAD"),
        (Method::POST, HEALTH_CHECK, "GET, HEAD"),
    ] {
        let request = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(CONTENT_TYPE, "application/json")
            .body(String::from("{}"))
            .unwrap();
        let reply = call(&api, request).await;
        let error = reply.expect_error(405, "METHOD_NOT_ALLOWED");
        assert_eq!(reply.headers.get(ALLOW).unwrap(), allow, "{method} {path}");
        assert_eq!(error.details["method"], method.as_str());
    }
    // HEAD where only POST is allowed: 405 too, and (being HEAD) without a body.
    let reply = call(&api, Request::head(SUBSCRIBE).body(String::new()).unwrap()).await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(reply.headers.get(ALLOW).unwrap(), "POST");
    assert!(reply.body.is_empty());
}

#[tokio::test]
async fn unknown_paths_answer_404_not_found() {
    let (api, _) = api();
    for path in [
        "/",
        "/dispatcher",
        "/dispatcher/",
        "/dispatcher/v1/hooks/notifications/",
        "/dispatcher/v1/hooks/notification",
        "/dispatcher/v1/hooks/notifications/subscribe/",
        "/dispatcher/V1/hooks/notifications",
        "/dispatcher/system/healthcheck",
        "/dispatcher/v1/hooks/interceptions",
        "/dispatcherx/system/healthCheck",
        // Right route, outside the base path.
        "/v1/hooks/notifications/subscribe",
        "/system/healthCheck",
        "/other/dispatcher/system/healthCheck",
    ] {
        let reply = call(&api, post(path, "{}")).await;
        let error = reply.expect_error(404, "NOT_FOUND");
        assert_eq!(error.details["path"], path);
    }
}

#[tokio::test]
async fn the_base_path_is_configurable_and_may_be_empty() {
    let (api, _) = api();
    let custom = rebuilt(&api, |b| b.base_path("notifications/"));
    assert_eq!(
        call(&custom, get("/notifications/system/healthCheck"))
            .await
            .status,
        200
    );
    assert_eq!(call(&custom, get(HEALTH_CHECK)).await.status, 404);
    assert_eq!(
        call(&custom, get("/notifications/v1/hooks/notifications"))
            .await
            .status,
        200
    );

    let root = rebuilt(&api, |b| b.base_path(""));
    assert_eq!(call(&root, get("/system/healthCheck")).await.status, 200);
    assert_eq!(call(&root, get(HEALTH_CHECK)).await.status, 404);
    let created = call(
        &root,
        post(
            "/v1/hooks/notifications/subscribe",
            subscription_json("patient", "_create", "https://plugin.example.com/").to_string(),
        ),
    )
    .await;
    assert_eq!(created.status, 201);

    // Configuring a clone leaves the original as it was.
    assert_eq!(call(&api, get(HEALTH_CHECK)).await.status, 200);
}

// ---------------------------------------------------------------------------------
// Bodies: size and content type

/// A body of unknown length that counts how often it is polled.
struct CountingBody {
    polls: Arc<AtomicUsize>,
    data: Option<Bytes>,
}

impl CountingBody {
    fn new(data: &str) -> (Self, Arc<AtomicUsize>) {
        let polls = Arc::new(AtomicUsize::new(0));
        let body = CountingBody {
            polls: Arc::clone(&polls),
            data: Some(Bytes::copy_from_slice(data.as_bytes())),
        };
        (body, polls)
    }
}

impl Body for CountingBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        this.polls.fetch_add(1, Ordering::SeqCst);
        Poll::Ready(this.data.take().map(|data| Ok(Frame::data(data))))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[tokio::test]
async fn a_declared_content_length_over_the_limit_is_refused_without_reading() {
    let (api, store) = api();
    let api = rebuilt(&api, |b| b.max_body_bytes(1024));
    let (body, polls) = CountingBody::new("{}");
    let request = Request::post(SUBSCRIBE)
        .header(CONTENT_TYPE, "application/json")
        .header(CONTENT_LENGTH, "1025")
        .body(body)
        .unwrap();
    let error = call(&api, request)
        .await
        .expect_error(413, "PAYLOAD_TOO_LARGE");
    assert_eq!(error.details["maxBytes"], 1024);
    assert_eq!(polls.load(Ordering::SeqCst), 0, "the body was not read");
    assert_eq!(store.count().await.unwrap(), 0);
}

/// Repeated headers: the first `Content-Type` counts (as `HeaderMap::get` reads it), and
/// any declared `Content-Length` over the limit refuses the body.
#[tokio::test]
async fn repeated_headers_read_the_first_type_and_every_length() {
    let (api, store) = api();
    let api = rebuilt(&api, |b| b.max_body_bytes(1024));
    let body = r#"{"entityTypeName":"patient","actionName":"_create","endpoint":"https://a.example.com/"}"#;
    let request = Request::post(SUBSCRIBE)
        .header(CONTENT_TYPE, "application/json")
        .header(CONTENT_TYPE, "text/plain")
        .body(body.to_owned())
        .unwrap();
    assert_eq!(call(&api, request).await.status, StatusCode::CREATED);
    let request = Request::post(SUBSCRIBE)
        .header(CONTENT_TYPE, "text/plain")
        .header(CONTENT_TYPE, "application/json")
        .body(body.to_owned())
        .unwrap();
    call(&api, request)
        .await
        .expect_error(415, "UNSUPPORTED_MEDIA_TYPE");
    let (counted, polls) = CountingBody::new("{}");
    let request = Request::post(SUBSCRIBE)
        .header(CONTENT_TYPE, "application/json")
        .header(CONTENT_LENGTH, "2")
        .header(CONTENT_LENGTH, "1025")
        .body(counted)
        .unwrap();
    call(&api, request)
        .await
        .expect_error(413, "PAYLOAD_TOO_LARGE");
    assert_eq!(polls.load(Ordering::SeqCst), 0, "the body was not read");
    assert_eq!(store.count().await.unwrap(), 1);
}

#[tokio::test]
async fn a_stream_past_the_limit_is_cut_off_without_reading_it_all() {
    let (api, store) = api();
    let chunks = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&chunks);
    // Endless whitespace: only a reader that stops at the limit ever answers.
    let endless = futures_util::stream::repeat_with(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        Ok::<_, Infallible>(Frame::data(Bytes::from_static(&[b' '; 1024])))
    });
    let request = Request::post(SUBSCRIBE)
        .header(CONTENT_TYPE, "application/json")
        .body(StreamBody::new(endless))
        .unwrap();
    call(&api, request)
        .await
        .expect_error(413, "PAYLOAD_TOO_LARGE");
    assert!(
        chunks.load(Ordering::SeqCst) <= 65,
        "read {} KiB",
        chunks.load(Ordering::SeqCst)
    );
    assert_eq!(store.count().await.unwrap(), 0);
}

/// A body that arrives in pieces (an empty one first, a trailers frame among them) is
/// read whole.
#[tokio::test]
async fn a_body_in_several_frames_is_read_whole() {
    let (api, store) = api();
    let json = subscription_json("patient", "_create", "https://framed.example.com/hook");
    let text = json.to_string();
    let (head, tail) = text.split_at(text.len() / 2);
    let (middle, tail) = tail.split_at(tail.len() / 2);
    let frames = [
        Frame::data(Bytes::new()),
        Frame::data(Bytes::copy_from_slice(head.as_bytes())),
        Frame::data(Bytes::copy_from_slice(middle.as_bytes())),
        Frame::trailers(http::HeaderMap::new()),
        Frame::data(Bytes::copy_from_slice(tail.as_bytes())),
    ];
    let stream = futures_util::stream::iter(frames.map(Ok::<_, Infallible>));
    let request = Request::post(SUBSCRIBE)
        .header(CONTENT_TYPE, "application/json")
        .body(StreamBody::new(stream))
        .unwrap();
    let reply = call(&api, request).await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    let created: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(created["endpoint"], "https://framed.example.com/hook");
    assert_eq!(store.count().await.unwrap(), 1);
}

#[tokio::test]
async fn a_known_size_body_over_the_limit_without_content_length_is_refused() {
    let (api, _) = api();
    let api = rebuilt(&api, |b| b.max_body_bytes(100));
    let mut body =
        subscription_json("patient", "_create", "https://plugin.example.com/").to_string();
    body.push_str(&" ".repeat(100));
    let request = Request::post(SUBSCRIBE)
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    call(&api, request)
        .await
        .expect_error(413, "PAYLOAD_TOO_LARGE");
}

#[tokio::test]
async fn a_body_at_the_limit_is_accepted() {
    let (api, _) = api();
    let body = subscription_json("patient", "_create", "https://plugin.example.com/").to_string();
    let api = rebuilt(&api, |b| b.max_body_bytes(body.len()));
    let (counting, _) = CountingBody::new(&body);
    let request = Request::post(SUBSCRIBE)
        .header(CONTENT_TYPE, "application/json")
        .body(counting)
        .unwrap();
    assert_eq!(call(&api, request).await.status, StatusCode::CREATED);
}

#[tokio::test]
async fn json_content_types_are_accepted_with_parameters_and_in_any_case() {
    let (api, store) = api();
    for (i, content_type) in [
        "application/json",
        "application/json; charset=utf-8",
        "APPLICATION/JSON;CHARSET=UTF-8",
        "application/vnd.biot.subscription+json",
    ]
    .into_iter()
    .enumerate()
    {
        let body = subscription_json(
            "patient",
            "_create",
            &format!("https://plugin.example.com/{i}"),
        );
        let request = Request::post(SUBSCRIBE)
            .header(CONTENT_TYPE, content_type)
            .body(body.to_string())
            .unwrap();
        assert_eq!(
            call(&api, request).await.status,
            StatusCode::CREATED,
            "{content_type}"
        );
    }
    assert_eq!(store.count().await.unwrap(), 4);
}

#[tokio::test]
async fn other_or_missing_content_types_answer_415() {
    let (api, _) = api();
    let body = subscription_json("patient", "_create", "https://plugin.example.com/").to_string();
    for content_type in [
        Some("text/plain"),
        Some("application/xml"),
        Some("multipart/form-data"),
        None,
    ] {
        for path in [SUBSCRIBE, UNSUBSCRIBE] {
            let mut request = Request::post(path);
            if let Some(content_type) = content_type {
                request = request.header(CONTENT_TYPE, content_type);
            }
            let reply = call(&api, request.body(body.clone()).unwrap()).await;
            let error = reply.expect_error(415, "UNSUPPORTED_MEDIA_TYPE");
            assert_eq!(
                error.details.get("contentType").and_then(Value::as_str),
                content_type
            );
        }
    }
}

// ---------------------------------------------------------------------------------
// Trace ids and the error envelope

#[tokio::test]
async fn error_trace_ids_come_from_a_valid_traceparent_or_are_generated() {
    let (api, _) = api();
    let bad_body =
        || subscription_json("patient", "_explode", "https://plugin.example.com/").to_string();
    let traced = Request::post(SUBSCRIBE)
        .header(CONTENT_TYPE, "application/json")
        .header("traceparent", TRACEPARENT)
        .body(bad_body())
        .unwrap();
    assert_eq!(call(&api, traced).await.error().trace_id, TRACE_ID);

    let mut generated = Vec::new();
    for traceparent in [
        None,
        Some("00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01"),
        Some("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
        Some("garbage"),
        Some(""),
    ] {
        let mut request = Request::post(SUBSCRIBE).header(CONTENT_TYPE, "application/json");
        if let Some(traceparent) = traceparent {
            request = request.header("traceparent", traceparent);
        }
        let error = call(&api, request.body(bad_body()).unwrap()).await.error();
        assert!(
            is_trace_id(&error.trace_id),
            "{traceparent:?}: {}",
            error.trace_id
        );
        assert_ne!(error.trace_id, TRACE_ID);
        generated.push(error.trace_id);
    }
    generated.sort_unstable();
    generated.dedup();
    assert_eq!(generated.len(), 5, "every generated trace id is fresh");
}

#[tokio::test]
async fn error_bodies_carry_the_configured_service_name_and_environment() {
    let (api, _) = api();
    let error = call(&api, get("/nowhere")).await.error();
    assert_eq!(error.service_name, "dispatcher");
    assert_eq!(error.environment, "");

    let api = rebuilt(&api, |b| {
        b.service_name("notification-dispatcher")
            .environment("develop")
    });
    let error = call(&api, get("/nowhere")).await.error();
    assert_eq!(error.service_name, "notification-dispatcher");
    assert_eq!(error.environment, "develop");
}

// ---------------------------------------------------------------------------------
// Authorization

/// Tokens: `admin-token-0001` may do anything, `reader-token-0001` may search, a
/// missing header is unauthenticated, `broken-token-0001` makes the authorizer fail,
/// `panicky-token-0001` makes it panic, any other token is echoed in its refusal.
#[derive(Debug, Default)]
struct TokenAuthorizer {
    asked: Mutex<Vec<Permission>>,
}

#[async_trait]
impl Authorizer for TokenAuthorizer {
    async fn authorize(
        &self,
        request: &http::request::Parts,
        permission: Permission,
    ) -> Result<(), AuthorizationError> {
        self.asked.lock().unwrap().push(permission);
        let token = request
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match token {
            None => Err(AuthorizationError::Unauthenticated {
                reason: "no bearer token".into(),
            }),
            Some("admin-token-0001") => Ok(()),
            Some("reader-token-0001") if permission == Permission::Search => Ok(()),
            Some("reader-token-0001") => Err(AuthorizationError::AccessDenied {
                reason: format!("{permission} is missing"),
            }),
            Some("broken-token-0001") => Err(AuthorizationError::failed(
                "token-cache: SECRET cache outage",
            )),
            Some("panicky-token-0001") => panic!("SECRET authorizer panic"),
            // A careless authorizer quoting the token: the API must not pass it on.
            Some(other) => Err(AuthorizationError::Unauthenticated {
                reason: format!("token {other} is not known"),
            }),
        }
    }
}

fn authorized_api() -> (Api, Arc<TokenAuthorizer>, InMemoryStore) {
    let (api, store) = api();
    let authorizer = Arc::new(TokenAuthorizer::default());
    let api = rebuilt(&api, |b| b.authorizer(Arc::clone(&authorizer)));
    (api, authorizer, store)
}

fn with_token(mut request: Request<String>, token: &str) -> Request<String> {
    request
        .headers_mut()
        .insert(AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
    request
}

fn subscribe_request() -> Request<String> {
    post(
        SUBSCRIBE,
        subscription_json("patient", "_create", "https://plugin.example.com/").to_string(),
    )
}

#[tokio::test]
async fn the_authorizer_is_asked_for_the_routes_permission() {
    let (api, authorizer, store) = authorized_api();
    let token = "admin-token-0001";
    assert_eq!(
        call(&api, with_token(subscribe_request(), token))
            .await
            .status,
        201
    );
    assert_eq!(call(&api, with_token(get(SEARCH), token)).await.status, 200);
    let unsubscribe = post(
        UNSUBSCRIBE,
        subscription_json("patient", "_create", "https://plugin.example.com/").to_string(),
    );
    assert_eq!(call(&api, with_token(unsubscribe, token)).await.status, 204);
    assert_eq!(
        *authorizer.asked.lock().unwrap(),
        [
            Permission::Subscribe,
            Permission::Search,
            Permission::Unsubscribe
        ]
    );
    assert_eq!(store.count().await.unwrap(), 0);
}

#[tokio::test]
async fn a_missing_token_is_401_and_a_missing_permission_403() {
    let (api, _, store) = authorized_api();
    let reply = call(&api, subscribe_request()).await;
    let error = reply.expect_error(401, "TOKEN_NOT_VALID");
    assert!(error.details.is_empty());

    let reply = call(&api, with_token(subscribe_request(), "reader-token-0001")).await;
    let error = reply.expect_error(403, "ACCESS_DENIED");
    assert!(
        error.message.contains("DISPATCHER_SUBSCRIPTIONS_SUBSCRIBE"),
        "{}",
        error.message
    );

    assert_eq!(
        call(&api, with_token(get(SEARCH), "reader-token-0001"))
            .await
            .status,
        200
    );
    call(&api, get(SEARCH))
        .await
        .expect_error(401, "TOKEN_NOT_VALID");
    assert_eq!(store.count().await.unwrap(), 0);
}

#[tokio::test]
async fn the_authorizer_runs_before_the_body_is_read_or_its_type_checked() {
    let (api, _, _) = authorized_api();
    let (body, polls) = CountingBody::new("{}");
    let request = Request::post(SUBSCRIBE)
        .header(CONTENT_TYPE, "text/plain")
        .body(body)
        .unwrap();
    call(&api, request)
        .await
        .expect_error(401, "TOKEN_NOT_VALID");
    assert_eq!(polls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn the_health_check_does_not_consult_the_authorizer() {
    let (api, authorizer, _) = authorized_api();
    assert_eq!(call(&api, get(HEALTH_CHECK)).await.status, 200);
    assert!(authorizer.asked.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_api_is_built_only_with_an_authorizer_chosen() {
    let dispatcher = Dispatcher::new(InMemoryStore::new(), DiscardingNotifier);
    let err = Api::builder(dispatcher.clone()).build().unwrap_err();
    assert!(matches!(err, ApiBuildError::NoAuthorizer));
    let message = err.to_string();
    assert!(
        message.contains(".authorizer(") && message.contains("AllowEveryone"),
        "the error names the fix: {message}"
    );

    // The named allow-all lets every call in, without a token.
    let api = Api::builder(dispatcher)
        .authorizer(AllowEveryone)
        .build()
        .unwrap();
    assert_eq!(call(&api, subscribe_request()).await.status, 201);
    assert_eq!(call(&api, get(SEARCH)).await.status, 200);
    let unsubscribe = post(
        UNSUBSCRIBE,
        subscription_json("patient", "_create", "https://plugin.example.com/").to_string(),
    );
    assert_eq!(call(&api, unsubscribe).await.status, 204);
}

#[tokio::test]
async fn a_shared_authorizer_is_used_as_it_is() {
    let dispatcher = Dispatcher::new(InMemoryStore::new(), DiscardingNotifier);
    let shared: Arc<dyn Authorizer> = Arc::new(TokenAuthorizer::default());
    let api = Api::builder(dispatcher)
        .authorizer(Arc::clone(&shared))
        .build()
        .unwrap();
    call(&api, subscribe_request())
        .await
        .expect_error(401, "TOKEN_NOT_VALID");
}

#[test]
fn the_api_builder_refuses_bad_values_by_name() {
    let builder = || {
        Api::builder(Dispatcher::new(InMemoryStore::new(), DiscardingNotifier))
            .authorizer(AllowEveryone)
    };
    let err = builder().max_body_bytes(0).build().unwrap_err();
    assert!(
        matches!(
            err,
            ApiBuildError::Zero {
                option: "max_body_bytes"
            }
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "the API option `max_body_bytes` must be greater than zero"
    );
    for bad in [
        "/dispatcher?x=1",
        "/dis patcher",
        "/a//b",
        "/#top",
        "/dispätcher",
        "/a\n",
    ] {
        let err = builder().base_path(bad).build().unwrap_err();
        assert!(
            matches!(
                err,
                ApiBuildError::Invalid {
                    option: "base_path",
                    ..
                }
            ),
            "{bad}: {err}"
        );
        assert!(err
            .to_string()
            .starts_with("the API option `base_path` is invalid"));
    }
    let err = builder().service_name(" ").build().unwrap_err();
    assert!(
        matches!(
            err,
            ApiBuildError::Invalid {
                option: "service_name",
                ..
            }
        ),
        "{err}"
    );
    let api = builder().base_path("hooks/").build().unwrap();
    assert_eq!(api.base_path(), "/hooks");
}

#[tokio::test]
async fn tokens_are_never_echoed() {
    let (api, _, _) = authorized_api();
    let token = "eyJhbGciOiJSUzUxMiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";
    let reply = call(&api, with_token(subscribe_request(), token)).await;
    reply.expect_error(401, "TOKEN_NOT_VALID");
    let body = String::from_utf8_lossy(&reply.body);
    assert!(!body.contains(token), "{body}");
    assert!(!body.contains("c2lnbmF0dXJl"), "{body}");
    assert!(reply
        .headers
        .values()
        .all(|v| !v.as_bytes().windows(12).any(|w| w == b"c2lnbmF0dXJl")));
}

#[tokio::test]
async fn an_authorizer_that_fails_or_panics_is_a_500_that_leaks_nothing() {
    let (api, _, _) = authorized_api();
    for token in ["broken-token-0001", "panicky-token-0001"] {
        let reply = call(&api, with_token(subscribe_request(), token)).await;
        let error = reply.expect_error(500, "INTERNAL_SERVER_ERROR");
        assert!(error.details.is_empty());
        let body = String::from_utf8_lossy(&reply.body);
        assert!(
            !body.contains("SECRET") && !body.contains("token-cache"),
            "{body}"
        );
        // The host's logs get the authorizer's own error (or the panic's message).
        let report = reply.report.as_ref().expect("an error report");
        let cause = std::error::Error::source(report.error()).map(ToString::to_string);
        assert!(
            cause.is_some_and(|c| c.contains("SECRET")),
            "{token}: {report:?}"
        );
    }
}

// ---------------------------------------------------------------------------------
// Internal failures

/// Panics in every call, as a buggy backend might.
#[derive(Debug)]
struct PanickingStore;

#[async_trait]
impl SubscriptionStore for PanickingStore {
    async fn insert(&self, _: Subscription) -> Result<(), StoreError> {
        panic!("SECRET insert panic at /srv/secret")
    }
    async fn remove(&self, _: &SubscriptionKey) -> Result<Subscription, StoreError> {
        panic!("SECRET remove panic at /srv/secret")
    }
    async fn get(&self, _: Uuid) -> Result<Option<Subscription>, StoreError> {
        panic!("SECRET get panic")
    }
    async fn matching(
        &self,
        _: EventType,
        _: Option<&str>,
    ) -> Result<Vec<Arc<Subscription>>, StoreError> {
        panic!("SECRET matching panic")
    }
    async fn search(&self, _: &SearchRequest) -> Result<Page<Subscription>, StoreError> {
        panic!("SECRET search panic at /srv/secret")
    }
    async fn count(&self) -> Result<u64, StoreError> {
        panic!("SECRET count panic")
    }
}

async fn assert_every_call_is_an_opaque_500(api: &Api) {
    let body = subscription_json("patient", "_create", "https://plugin.example.com/").to_string();
    for request in [
        post(SUBSCRIBE, body.clone()),
        post(UNSUBSCRIBE, body),
        get(SEARCH),
    ] {
        let what = format!("{} {}", request.method(), request.uri());
        let reply = call(api, request).await;
        let error = reply.expect_error(500, "INTERNAL_SERVER_ERROR");
        assert!(error.details.is_empty(), "{what}");
        assert_eq!(error.message, "an internal error occurred", "{what}");
        // The host's logs get the cause, with the trace id the caller was given.
        let report = reply.report.as_ref().expect("an error report");
        assert_eq!(report.trace_id(), error.trace_id);
        let cause = std::error::Error::source(report.error()).map(ToString::to_string);
        assert!(
            cause.is_some_and(|c| c.contains("SECRET")),
            "{what}: {report:?}"
        );
        let text = String::from_utf8_lossy(&reply.body);
        for secret in ["SECRET", "secret", "10.1.2.3", "/srv", "panic"] {
            assert!(!text.contains(secret), "{what} leaks `{secret}`: {text}");
        }
    }
    // The surface is still healthy afterwards.
    assert_eq!(call(api, get(HEALTH_CHECK)).await.status, 200);
}

#[tokio::test]
async fn a_failing_store_is_an_opaque_500() {
    assert_every_call_is_an_opaque_500(&api_over(FailingStore)).await;
}

#[tokio::test]
async fn a_panicking_store_is_an_opaque_500() {
    assert_every_call_is_an_opaque_500(&api_over(PanickingStore)).await;
}

// ---------------------------------------------------------------------------------
// Bad requests, table-driven

struct BadRequest {
    what: &'static str,
    method: Method,
    uri: String,
    content_type: Option<&'static str>,
    body: String,
    status: u16,
    code: &'static str,
}

fn subscribe_case(
    what: &'static str,
    body: impl Into<String>,
    status: u16,
    code: &'static str,
) -> BadRequest {
    BadRequest {
        what,
        method: Method::POST,
        uri: SUBSCRIBE.to_owned(),
        content_type: Some("application/json"),
        body: body.into(),
        status,
        code,
    }
}

fn endpoint_case(what: &'static str, endpoint: &str) -> BadRequest {
    subscribe_case(
        what,
        subscription_json("patient", "_create", endpoint).to_string(),
        400,
        "INVALID_ENDPOINT",
    )
}

fn action_case(what: &'static str, entity: &str, action: &str) -> BadRequest {
    subscribe_case(
        what,
        subscription_json(entity, action, "https://plugin.example.com/").to_string(),
        400,
        "INVALID_ACTION_NAME",
    )
}

fn search_case(what: &'static str, search_request: &str) -> BadRequest {
    BadRequest {
        what,
        method: Method::GET,
        uri: search_uri(search_request),
        content_type: None,
        body: String::new(),
        status: 400,
        code: "INVALID_SEARCH_REQUEST",
    }
}

fn bad_requests() -> Vec<BadRequest> {
    let valid = subscription_json("patient", "_create", "https://plugin.example.com/new");
    let with = |member: &str, value: Value| {
        let mut body = valid.clone();
        body[member] = value;
        body.to_string()
    };
    let without = |member: &str| {
        let mut body = valid.clone();
        body.as_object_mut().unwrap().remove(member);
        body.to_string()
    };
    let mut cases = vec![
        // Not the JSON object a call expects.
        subscribe_case(
            "truncated JSON",
            r#"{"entityTypeName": "patient""#,
            400,
            "MALFORMED_REQUEST_BODY",
        ),
        subscribe_case("empty body", "", 400, "MALFORMED_REQUEST_BODY"),
        subscribe_case(
            "not JSON at all",
            "entityTypeName=patient",
            400,
            "MALFORMED_REQUEST_BODY",
        ),
        subscribe_case(
            "an array of the object",
            format!("[{valid}]"),
            400,
            "MALFORMED_REQUEST_BODY",
        ),
        subscribe_case(
            "a JSON string",
            r#""patient""#,
            400,
            "MALFORMED_REQUEST_BODY",
        ),
        subscribe_case("JSON null", "null", 400, "MALFORMED_REQUEST_BODY"),
        subscribe_case(
            "trailing garbage",
            format!("{valid} x"),
            400,
            "MALFORMED_REQUEST_BODY",
        ),
        // Wrong types, nulls, empty strings.
        subscribe_case(
            "entityTypeName a number",
            with("entityTypeName", json!(42)),
            400,
            "INVALID_ATTRIBUTE",
        ),
        subscribe_case(
            "actionName an array",
            with("actionName", json!(["_create"])),
            400,
            "INVALID_ATTRIBUTE",
        ),
        subscribe_case(
            "endpoint an object",
            with("endpoint", json!({"url": "https://plugin.example.com/"})),
            400,
            "INVALID_ATTRIBUTE",
        ),
        subscribe_case(
            "templateName a boolean",
            with("templateName", json!(true)),
            400,
            "INVALID_ATTRIBUTE",
        ),
        subscribe_case(
            "templateName empty",
            with("templateName", json!("")),
            400,
            "INVALID_ATTRIBUTE",
        ),
        subscribe_case(
            "endpoint missing",
            without("endpoint"),
            400,
            "ATTRIBUTE_IS_MANDATORY",
        ),
        subscribe_case(
            "entityTypeName missing",
            without("entityTypeName"),
            400,
            "ATTRIBUTE_IS_MANDATORY",
        ),
        subscribe_case(
            "actionName null",
            with("actionName", Value::Null),
            400,
            "ATTRIBUTE_IS_MANDATORY",
        ),
        subscribe_case(
            "entityTypeName empty",
            with("entityTypeName", json!("")),
            400,
            "ATTRIBUTE_IS_MANDATORY",
        ),
        subscribe_case(
            "endpoint blank",
            with("endpoint", json!("   ")),
            400,
            "ATTRIBUTE_IS_MANDATORY",
        ),
        subscribe_case("an empty object", "{}", 400, "ATTRIBUTE_IS_MANDATORY"),
        // Names.
        subscribe_case(
            "unknown entity type",
            with("entityTypeName", json!("usageSession")),
            400,
            "INVALID_ENTITY_TYPE_NAME",
        ),
        subscribe_case(
            "entity type in the wrong case",
            with("entityTypeName", json!("Patient")),
            400,
            "INVALID_ENTITY_TYPE_NAME",
        ),
        action_case("unknown action", "patient", "_explode"),
        action_case(
            "an action of another entity type",
            "patient",
            "_revokeCertificate",
        ),
        action_case("permission verb _read", "patient", "_read"),
        action_case("permission verb _list", "device", "_list"),
        action_case("permission verb _manage", "organization", "_manage"),
        action_case("permission verb _view", "usage-session", "_view"),
        // Endpoints.
        endpoint_case("shortened loopback address", "https://127.1/"),
        endpoint_case("IPv4-mapped IPv6 loopback", "https://[::ffff:127.0.0.1]/"),
        endpoint_case("IPv6 loopback", "https://[::1]/hook"),
        endpoint_case("credentials", "https://user@plugin.example.com/"),
        endpoint_case("user and password", "https://user:pw@plugin.example.com/"),
        endpoint_case("plain http", "http://plugin.example.com/hook"),
        endpoint_case("localhost", "https://localhost/hook"),
        endpoint_case(
            "cloud metadata address",
            "https://169.254.169.254/latest/meta-data",
        ),
        endpoint_case("private network", "https://10.0.0.1/hook"),
        endpoint_case("another scheme", "ftp://plugin.example.com/hook"),
        endpoint_case("not a URL", "plugin.example.com/hook"),
        endpoint_case("a fragment", "https://plugin.example.com/hook#x"),
        endpoint_case("whitespace inside", "https://plugin.example.com/a hook"),
        // Sizes and content types.
        subscribe_case(
            "a huge body",
            format!("{{\"pad\": \"{}\"}}", "x".repeat(70 * 1024)),
            413,
            "PAYLOAD_TOO_LARGE",
        ),
        BadRequest {
            content_type: Some("text/plain"),
            ..subscribe_case(
                "text/plain",
                valid.to_string(),
                415,
                "UNSUPPORTED_MEDIA_TYPE",
            )
        },
        BadRequest {
            content_type: None,
            ..subscribe_case(
                "no content type",
                valid.to_string(),
                415,
                "UNSUPPORTED_MEDIA_TYPE",
            )
        },
        BadRequest {
            content_type: Some("application/x-www-form-urlencoded"),
            ..subscribe_case(
                "a form",
                "entityTypeName=patient",
                415,
                "UNSUPPORTED_MEDIA_TYPE",
            )
        },
        BadRequest {
            content_type: Some("application/json; charset=iso-8859-1"),
            ..subscribe_case(
                "JSON in Latin-1",
                valid.to_string(),
                415,
                "UNSUPPORTED_MEDIA_TYPE",
            )
        },
        // Conflicts and unknown subscriptions.
        subscribe_case(
            "a duplicate",
            subscription_json("patient", "_create", "https://existing.example.com/").to_string(),
            409,
            "SUBSCRIPTION_ALREADY_EXISTS",
        ),
        BadRequest {
            uri: UNSUBSCRIBE.to_owned(),
            ..subscribe_case(
                "unsubscribing what does not exist",
                valid.to_string(),
                404,
                "SUBSCRIBER_NOT_FOUND",
            )
        },
        BadRequest {
            uri: UNSUBSCRIBE.to_owned(),
            ..subscribe_case(
                "unsubscribing with bad JSON",
                "{",
                400,
                "MALFORMED_REQUEST_BODY",
            )
        },
        BadRequest {
            uri: UNSUBSCRIBE.to_owned(),
            ..action_case("unsubscribing a permission verb", "patient", "_read")
        },
        BadRequest {
            uri: UNSUBSCRIBE.to_owned(),
            ..subscribe_case(
                "unsubscribing the existing one narrowed to a template",
                json!({"entityTypeName": "patient", "actionName": "_create",
                       "endpoint": "https://existing.example.com/", "templateName": "adultPatient"})
                .to_string(),
                404,
                "SUBSCRIBER_NOT_FOUND",
            )
        },
        // Search requests.
        search_case("search: bad JSON", r#"{"filter": "#),
        search_case("search: an array", "[]"),
        search_case(
            "search: unsupported operator gt",
            r#"{"filter": {"actionName": {"gt": 1}}}"#,
        ),
        search_case(
            "search: logical $OR",
            r#"{"filter": {"$OR": {"filter": {}}}}"#,
        ),
        search_case(
            "search: unknown operator",
            r#"{"filter": {"endpoint": {"startsWith": "https"}}}"#,
        ),
        search_case(
            "search: unknown field",
            r#"{"filter": {"creationTime": {"eq": "x"}}}"#,
        ),
        search_case("search: limit 0", r#"{"limit": 0}"#),
        search_case("search: limit above the maximum", r#"{"limit": 1001}"#),
        search_case("search: negative page", r#"{"page": -1}"#),
        search_case("search: limit a string", r#"{"limit": "10"}"#),
        search_case(
            "search: sort by endpoint",
            r#"{"sort": [{"prop": "endpoint"}]}"#,
        ),
        search_case(
            "search: bad sort direction",
            r#"{"sort": [{"prop": "actionName", "order": "UP"}]}"#,
        ),
        search_case("search: unknown attribute", r#"{"query": "x"}"#),
        BadRequest {
            uri: format!("{SEARCH}?searchRequest=%7B%7D&searchRequest=%7B%7D"),
            ..search_case("search: searchRequest twice", "")
        },
        // Methods and paths.
        BadRequest {
            method: Method::GET,
            ..subscribe_case("GET on subscribe", "", 405, "METHOD_NOT_ALLOWED")
        },
        BadRequest {
            method: Method::PUT,
            uri: SEARCH.to_owned(),
            ..subscribe_case(
                "PUT on search",
                valid.to_string(),
                405,
                "METHOD_NOT_ALLOWED",
            )
        },
        BadRequest {
            uri: "/dispatcher/v1/hooks/notifications/subscribe/".to_owned(),
            ..subscribe_case("a trailing slash", valid.to_string(), 404, "NOT_FOUND")
        },
        BadRequest {
            uri: "/v1/hooks/notifications/subscribe".to_owned(),
            ..subscribe_case("outside the base path", valid.to_string(), 404, "NOT_FOUND")
        },
    ];
    cases.push(BadRequest {
        method: Method::DELETE,
        uri: UNSUBSCRIBE.to_owned(),
        ..subscribe_case(
            "DELETE on unsubscribe",
            valid.to_string(),
            405,
            "METHOD_NOT_ALLOWED",
        )
    });
    cases
}

#[tokio::test]
async fn bad_requests_get_their_exact_status_and_code_and_change_nothing() {
    let (api, store) = api();
    subscribe(
        &api,
        subscription_json("patient", "_create", "https://existing.example.com/"),
    )
    .await;
    subscribe(
        &api,
        json!({"entityTypeName": "device", "actionName": "_delete",
               "endpoint": "https://existing.example.com/devices", "templateName": "cuff"}),
    )
    .await;
    let count = store.count().await.unwrap();
    let before = listing(&store).await;

    let cases = bad_requests();
    assert!(cases.len() >= 30, "{} cases", cases.len());
    for case in cases {
        let mut request = Request::builder()
            .method(case.method.clone())
            .uri(&case.uri);
        if let Some(content_type) = case.content_type {
            request = request.header(CONTENT_TYPE, content_type);
        }
        let reply = call(&api, request.body(case.body).unwrap()).await;
        let error = reply.error();
        assert_eq!(
            (reply.status.as_u16(), error.code.as_str()),
            (case.status, case.code),
            "{}: {error:?}",
            case.what
        );
        assert!(is_trace_id(&error.trace_id), "{}", case.what);
        assert_eq!(
            reply.report.as_ref().map(|r| r.error().code()),
            Some(case.code),
            "{}",
            case.what
        );
        assert_eq!(store.count().await.unwrap(), count, "{}", case.what);
        assert_eq!(listing(&store).await, before, "{}", case.what);
    }
}

// ---------------------------------------------------------------------------------
// Types

#[test]
fn the_api_and_its_futures_can_cross_threads() {
    assert_send_sync::<Api>();
    assert_clone::<Api>();
    let (api, _) = api();
    assert!(!format!("{api:?}").is_empty(), "Api is Debug");
    let future = api.handle(Request::new(String::new()));
    assert_send(&future);
    let streamed = api.handle(Request::new(StreamBody::new(
        futures_util::stream::empty::<Result<Frame<Bytes>, std::io::Error>>(),
    )));
    assert_send(&streamed);
}

#[test]
fn permissions_have_biots_names() {
    let names: Vec<&str> = Permission::ALL.iter().map(|p| p.as_str()).collect();
    assert_eq!(
        names,
        [
            "DISPATCHER_SUBSCRIPTIONS_SUBSCRIBE",
            "DISPATCHER_SUBSCRIPTIONS_UNSUBSCRIBE",
            "DISPATCHER_SUBSCRIPTIONS_SEARCH"
        ]
    );
    for permission in Permission::ALL {
        assert_eq!(permission.to_string(), permission.as_str());
    }
}

// ---------------------------------------------------------------------------------
// axum

#[cfg(feature = "axum")]
mod axum_router {
    use super::*;
    use axum::body::Body as AxumBody;
    use axum::routing::get as axum_get;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn send(router: axum::Router, request: Request<AxumBody>) -> (StatusCode, Bytes) {
        let response = router
            .oneshot(request)
            .await
            .expect("axum routers are infallible");
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, body)
    }

    fn request(method: Method, uri: &str, body: &str) -> Request<AxumBody> {
        Request::builder()
            .method(method)
            .uri(uri)
            .header(CONTENT_TYPE, "application/json")
            .body(AxumBody::from(body.to_owned()))
            .unwrap()
    }

    #[tokio::test]
    async fn the_router_serves_every_route() {
        let (api, store) = super::api();
        let router = biot_notifications::api::router(api);
        let body =
            subscription_json("patient", "_create", "https://plugin.example.com/").to_string();
        let (status, created) = send(router.clone(), request(Method::POST, SUBSCRIBE, &body)).await;
        assert_eq!(status, 201);
        assert!(serde_json::from_slice::<Value>(&created).unwrap()["id"].is_string());
        assert_eq!(store.count().await.unwrap(), 1);
        assert_eq!(
            send(router.clone(), request(Method::GET, SEARCH, ""))
                .await
                .0,
            200
        );
        assert_eq!(
            send(router.clone(), request(Method::GET, HEALTH_CHECK, ""))
                .await
                .0,
            200
        );
        assert_eq!(
            send(router.clone(), request(Method::POST, UNSUBSCRIBE, &body))
                .await
                .0,
            204
        );
        let (status, error) = send(router, request(Method::GET, "/elsewhere", "")).await;
        assert_eq!(status, 404);
        assert_eq!(
            serde_json::from_slice::<Value>(&error).unwrap()["code"],
            "NOT_FOUND"
        );
    }

    #[tokio::test]
    async fn the_router_merges_and_nests() {
        let (api, _) = super::api();
        let merged = axum::Router::new()
            .route("/ready", axum_get(|| async { "ok" }))
            .merge(biot_notifications::api::router(api.clone()));
        assert_eq!(
            send(merged.clone(), request(Method::GET, "/ready", ""))
                .await
                .0,
            200
        );
        assert_eq!(
            send(merged, request(Method::GET, HEALTH_CHECK, "")).await.0,
            200
        );

        let nested = axum::Router::new().nest(
            "/hooks",
            biot_notifications::api::router(rebuilt(&api, |b| b.base_path(""))),
        );
        assert_eq!(
            send(
                nested.clone(),
                request(Method::GET, "/hooks/system/healthCheck", "")
            )
            .await
            .0,
            200
        );
        let (status, _) = send(
            nested,
            request(Method::GET, "/hooks/v1/hooks/notifications", ""),
        )
        .await;
        assert_eq!(status, 200);
    }

    #[tokio::test]
    async fn the_router_cuts_off_oversized_streams() {
        let (api, _) = super::api();
        let router = biot_notifications::api::router(rebuilt(&api, |b| b.max_body_bytes(10)));
        let (status, _) = send(router, request(Method::POST, SUBSCRIBE, &" ".repeat(11))).await;
        assert_eq!(status, 413);
    }
}

#[cfg(feature = "tower")]
mod tower_service {
    use hyper_util::rt::TokioIo;
    use hyper_util::service::TowerToHyperService;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn the_api_answers_as_a_tower_service() {
        let (api, store) = api();
        let response = api.clone().oneshot(subscribe_request()).await.unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        let created: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(created["actionName"], "_create");
        assert_eq!(store.count().await.unwrap(), 1);

        // Errors too are answers, never a service error.
        let response = api.oneshot(get("/nowhere")).await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn an_authorizer_refusal_holds_through_the_service() {
        let (api, _, store) = authorized_api();
        let response = api.oneshot(subscribe_request()).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(store.count().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn plain_hyper_serves_the_api() {
        let (api, _) = api();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(api))
                .await
                .unwrap();
        });
        let mut client = tokio::net::TcpStream::connect(address).await.unwrap();
        client
            .write_all(
                format!("GET {HEALTH_CHECK} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await
            .unwrap();
        let mut answer = String::new();
        client.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.contains("\"version\""), "{answer}");
    }
}
