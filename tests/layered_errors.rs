//! Errors in layers, as a host sees them: a store and an authorizer written outside the
//! crate speak their own layer's error (`StoreError`, `AuthorizationError`), never the
//! HTTP layer's, and their own failures come back through the dispatcher and the API
//! as a 500 whose source is theirs. The store and the authorizer need nothing but the
//! prelude.

use std::fmt;
use std::sync::{Arc, Mutex};

use biot_notifications::prelude::*;
use biot_notifications::subscription::ValidationError;
use biot_notifications::{
    AllowEveryone, Api, ApiError, CatalogError, DiscardingNotifier, ErrorReport, ErrorResponse,
    InMemoryStore, InvalidEndpoint, InvalidSearchRequest, SubscribeRequest,
};
use bytes::Bytes;
use http::header::{ALLOW, AUTHORIZATION, CONTENT_TYPE};
use http::{Request, Response, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

const SUBSCRIBE: &str = "/dispatcher/v1/hooks/notifications/subscribe";
const UNSUBSCRIBE: &str = "/dispatcher/v1/hooks/notifications/unsubscribe";
const SEARCH: &str = "/dispatcher/v1/hooks/notifications";
const BODY: &str = r#"{"entityTypeName": "patient", "actionName": "_create", "endpoint": "https://plugin.example.com/hook"}"#;

/// A backend's own error type, which the host wants back in its logs as itself.
#[derive(Debug)]
struct VaultDown {
    shard: u8,
}

impl fmt::Display for VaultDown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "vault shard {} is down", self.shard)
    }
}

impl std::error::Error for VaultDown {}

/// What the scripted store answers every call with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Script {
    /// The identity is taken (insert) or unknown (remove).
    Refuse,
    /// The backend fails with `VaultDown`.
    Fail,
}

/// A store written outside the crate, answering as scripted.
#[derive(Debug)]
struct ScriptedStore(Mutex<Script>);

impl ScriptedStore {
    fn new(script: Script) -> Self {
        ScriptedStore(Mutex::new(script))
    }

    fn script(&self) -> Script {
        *self.0.lock().unwrap()
    }

    fn vault_down() -> StoreError {
        StoreError::backend("vault", VaultDown { shard: 7 })
    }
}

#[async_trait]
impl SubscriptionStore for ScriptedStore {
    async fn insert(&self, subscription: Subscription) -> Result<(), StoreError> {
        match self.script() {
            Script::Refuse => Err(StoreError::already_exists(subscription.key())),
            Script::Fail => Err(Self::vault_down()),
        }
    }

    async fn remove(&self, key: &SubscriptionKey) -> Result<Subscription, StoreError> {
        match self.script() {
            Script::Refuse => Err(StoreError::not_found(key)),
            Script::Fail => Err(Self::vault_down()),
        }
    }

    async fn get(&self, _: Uuid) -> Result<Option<Subscription>, StoreError> {
        Err(Self::vault_down())
    }

    async fn matching(
        &self,
        _: EventType,
        _: Option<&str>,
    ) -> Result<Vec<Arc<Subscription>>, StoreError> {
        Err(Self::vault_down())
    }

    async fn search(&self, _: &SearchRequest) -> Result<Page<Subscription>, StoreError> {
        Err(Self::vault_down())
    }

    async fn count(&self) -> Result<u64, StoreError> {
        Err(Self::vault_down())
    }
}

fn dispatcher_over(store: ScriptedStore) -> Dispatcher {
    Dispatcher::new(store, DiscardingNotifier)
}

fn post(path: &str) -> Request<String> {
    Request::post(path)
        .header(CONTENT_TYPE, "application/json")
        .body(BODY.to_owned())
        .unwrap()
}

fn body_of(response: &Response<Bytes>) -> Value {
    serde_json::from_slice(response.body()).unwrap()
}

/// The first error in `error`'s source chain of type `T`.
fn source_of<'a, T: std::error::Error + 'static>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut cause = error.source();
    while let Some(error) = cause {
        if let Some(found) = error.downcast_ref::<T>() {
            return Some(found);
        }
        cause = error.source();
    }
    None
}

#[tokio::test]
async fn a_backend_failure_comes_back_through_the_dispatcher_with_its_own_source() {
    let dispatcher = dispatcher_over(ScriptedStore::new(Script::Fail));
    let request = SubscribeRequest::new("patient", "_create", "https://plugin.example.com/hook");
    let err = dispatcher.subscribe(&request).await.unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Store(StoreError::Backend { store: "vault", .. })
        ),
        "{err:?}"
    );
    assert_eq!(err.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(err.code(), "INTERNAL_SERVER_ERROR");
    assert!(err.details().is_empty());
    let vault = source_of::<VaultDown>(&err).expect("the backend's own error is the source");
    assert_eq!(vault.shard, 7);

    let event = Event::new(
        EventType::parse("patient", "_create").unwrap(),
        json!({"_id": "p-1"}),
    );
    let err = dispatcher.dispatch(&event).await.unwrap_err();
    assert!(source_of::<VaultDown>(&err).is_some(), "{err:?}");
}

#[tokio::test]
async fn a_backend_failure_is_an_opaque_500_whose_report_keeps_the_source() {
    let api = Api::builder(dispatcher_over(ScriptedStore::new(Script::Fail)))
        .authorizer(AllowEveryone)
        .build()
        .unwrap();
    for request in [
        post(SUBSCRIBE),
        post(UNSUBSCRIBE),
        Request::get(SEARCH).body(String::new()).unwrap(),
    ] {
        let what = format!("{} {}", request.method(), request.uri());
        let response = api.handle(request).await;
        assert_eq!(response.status(), 500, "{what}");
        let body = body_of(&response);
        assert_eq!(body["code"], "INTERNAL_SERVER_ERROR", "{what}");
        assert_eq!(body["message"], "an internal error occurred", "{what}");
        assert_eq!(body["details"], json!({}), "{what}");
        assert!(!body.to_string().contains("vault"), "{what}: {body}");

        let report = response.extensions().get::<ErrorReport>().unwrap();
        assert!(
            matches!(
                report.error(),
                ApiError::Operation(Error::Store(StoreError::Backend { .. }))
            ),
            "{what}: {report:?}"
        );
        let vault = source_of::<VaultDown>(report.error()).expect("the source is kept");
        assert_eq!(vault.to_string(), "vault shard 7 is down", "{what}");
    }
}

#[tokio::test]
async fn a_taken_or_unknown_identity_from_a_custom_store_is_409_or_404_with_the_identity() {
    let api = Api::builder(dispatcher_over(ScriptedStore::new(Script::Refuse)))
        .authorizer(AllowEveryone)
        .build()
        .unwrap();
    let identity = json!({
        "entityTypeName": "patient",
        "actionName": "_create",
        "endpoint": "https://plugin.example.com/hook",
        "templateName": null,
    });

    let response = api.handle(post(SUBSCRIBE)).await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let body = body_of(&response);
    assert_eq!(body["code"], "SUBSCRIPTION_ALREADY_EXISTS");
    assert_eq!(body["details"], identity);

    let response = api.handle(post(UNSUBSCRIBE)).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body = body_of(&response);
    assert_eq!(body["code"], "SUBSCRIBER_NOT_FOUND");
    assert_eq!(body["details"], identity);
    let report = response.extensions().get::<ErrorReport>().unwrap();
    assert!(
        matches!(
            report.error(),
            ApiError::Operation(Error::Store(StoreError::NotFound { .. }))
        ),
        "{report:?}"
    );
}

/// Refuses without a token; with the token `broken`, fails on its own.
#[derive(Debug)]
struct KeyServiceAuthorizer;

#[async_trait]
impl Authorizer for KeyServiceAuthorizer {
    async fn authorize(
        &self,
        request: &http::request::Parts,
        _: Permission,
    ) -> Result<(), AuthorizationError> {
        match request.headers.get(AUTHORIZATION).map(|v| v.as_bytes()) {
            None => Err(AuthorizationError::unauthenticated("no bearer token")),
            Some(b"Bearer broken") => Err(AuthorizationError::failed(VaultDown { shard: 3 })),
            Some(_) => Ok(()),
        }
    }
}

#[tokio::test]
async fn an_authorizer_failure_is_a_500_whose_report_keeps_the_authorizers_error() {
    let api = Api::builder(Dispatcher::new(InMemoryStore::new(), DiscardingNotifier))
        .authorizer(KeyServiceAuthorizer)
        .build()
        .unwrap();

    let response = api.handle(post(SUBSCRIBE)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(body_of(&response)["code"], "TOKEN_NOT_VALID");

    let mut broken = post(SUBSCRIBE);
    broken
        .headers_mut()
        .insert(AUTHORIZATION, "Bearer broken".parse().unwrap());
    let response = api.handle(broken).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = body_of(&response);
    assert_eq!(body["code"], "INTERNAL_SERVER_ERROR");
    assert_eq!(body["message"], "an internal error occurred");
    let report = response.extensions().get::<ErrorReport>().unwrap();
    assert!(
        matches!(
            report.error(),
            ApiError::Authorization(AuthorizationError::Failed { .. })
        ),
        "{report:?}"
    );
    let vault = source_of::<VaultDown>(report.error()).expect("the authorizer's own error");
    assert_eq!(vault.shard, 3);
}

#[test]
fn every_layers_error_renders_as_biots_error_body_in_one_call() {
    let catalog: CatalogError = EventType::parse("patient", "_read").unwrap_err();
    let endpoint: InvalidEndpoint = biot_notifications::EndpointPolicy::default()
        .validate("http://plugin.example.com/")
        .unwrap_err();
    let validation: ValidationError = SubscribeRequest::from_json(b"[]").unwrap_err();
    let search: InvalidSearchRequest = SearchRequest::from_json(br#"{"limit": 0}"#).unwrap_err();
    let store = StoreError::backend("vault", VaultDown { shard: 1 });
    let errors: [(&dyn BiotError, u16, &str); 5] = [
        (&catalog, 400, "INVALID_ACTION_NAME"),
        (&endpoint, 400, "INVALID_ENDPOINT"),
        (&validation, 400, "MALFORMED_REQUEST_BODY"),
        (&search, 400, "INVALID_SEARCH_REQUEST"),
        (&store, 500, "INTERNAL_SERVER_ERROR"),
    ];
    for (error, status, code) in errors {
        assert_eq!(error.status(), status, "{code}");
        let body = ErrorResponse::from_error(
            error,
            "dispatcher",
            "test",
            "0af7651916cd43dd8448eb211c80319c",
        );
        assert_eq!(body.code, code);
        assert_eq!(body.service_name, "dispatcher");
        assert_eq!(body.environment, "test");
        assert_eq!(body.trace_id, "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(body.details, error.details(), "{code}");
        if status == 500 {
            assert_eq!(body.message, "an internal error occurred");
            assert!(body.details.is_empty());
        } else {
            assert_eq!(body.message, error.to_string());
        }
    }
}

#[test]
fn the_api_answers_a_hosts_own_errors_as_it_answers_its_own() {
    let api = Api::builder(Dispatcher::new(InMemoryStore::new(), DiscardingNotifier))
        .authorizer(AllowEveryone)
        .service_name("notifications")
        .environment("staging")
        .build()
        .unwrap();
    let err = EventType::parse("device", "_login").unwrap_err();
    let response = api.error_response(&err, "0af7651916cd43dd8448eb211c80319c");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
    let body: ErrorResponse = serde_json::from_slice(response.body()).unwrap();
    assert_eq!(body.code, "INVALID_ACTION_NAME");
    assert_eq!(body.service_name, "notifications");
    assert_eq!(body.environment, "staging");
    assert_eq!(body.details, err.details());

    let wrong_method = ApiError::MethodNotAllowed {
        method: http::Method::DELETE,
        allowed: "POST",
    };
    let response = api.error_response(&wrong_method, "0af7651916cd43dd8448eb211c80319c");
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()[ALLOW], "POST");
}
