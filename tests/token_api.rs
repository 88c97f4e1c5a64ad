//! The API guarded by BioT tokens (feature `jwt`): `TokenAuthorizer` lets a bearer token
//! with the operation's permission through, and answers BioT's 401 `TOKEN_NOT_VALID`
//! and 403 `ACCESS_DENIED` otherwise, never echoing the token.
//!
//! Keys: `tests/fixtures/keys/`, generated for the tests only.

use std::time::{SystemTime, UNIX_EPOCH};

use biot_notifications::api::{Api, Permission};
use biot_notifications::notifier::DiscardingNotifier;
use biot_notifications::token::{Claims, PublicKey, SigningKey, TokenAuthorizer, TokenVerifier};
use biot_notifications::{Dispatcher, InMemoryStore};
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use serde_json::Value;

const PRIVATE_A: &str = include_str!("fixtures/keys/test-only-a.private.pem");
const PUBLIC_A: &str = include_str!("fixtures/keys/test-only-a.public.pem");
const PRIVATE_B: &str = include_str!("fixtures/keys/test-only-b.private.pem");

const SUBSCRIBE: &str = "/dispatcher/v1/hooks/notifications/subscribe";
const SEARCH: &str = "/dispatcher/v1/hooks/notifications";

fn api() -> Api {
    let authorizer = TokenAuthorizer::new(TokenVerifier::new(
        PublicKey::from_pem_or_base64(PUBLIC_A).unwrap(),
    ));
    Api::builder(Dispatcher::new(InMemoryStore::new(), DiscardingNotifier))
        .authorizer(authorizer)
        .build()
        .unwrap()
}

fn token(private_key: &str, scopes: &[&str], lifetime: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut claims = Claims::new(scopes.iter().copied(), now, 0);
    claims.exp = Some(now.checked_add_signed(lifetime).unwrap());
    claims.nbf = None;
    SigningKey::from_pem(private_key)
        .unwrap()
        .sign(&claims)
        .unwrap()
}

fn subscribe(authorization: Option<&str>) -> Request<Bytes> {
    let mut request = Request::post(SUBSCRIBE).header("content-type", "application/json");
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    request
        .body(Bytes::from_static(
            br#"{"entityTypeName": "patient", "actionName": "_create", "endpoint": "https://plugin.example.com/hook"}"#,
        ))
        .unwrap()
}

async fn answer(api: &Api, request: Request<Bytes>) -> (StatusCode, Value) {
    let response = api.handle(request.map(Full::new)).await;
    let status = response.status();
    let body = serde_json::from_slice(response.body()).unwrap_or(Value::Null);
    (status, body)
}

#[tokio::test]
async fn a_token_with_the_operations_permission_is_let_through() {
    let api = api();
    let token = token(PRIVATE_A, &[Permission::Subscribe.as_str()], 300);
    let (status, body) = answer(&api, subscribe(Some(&format!("Bearer {token}")))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // The scheme is case-insensitive.
    let search = Request::get(SEARCH)
        .header(
            "authorization",
            format!(
                "bearer {}",
                self::token(PRIVATE_A, &[Permission::Search.as_str()], 300)
            ),
        )
        .body(Bytes::new())
        .unwrap();
    assert_eq!(answer(&api, search).await.0, StatusCode::OK);
}

#[tokio::test]
async fn refused_tokens_get_biots_401_and_a_missing_permission_its_403() {
    let api = api();
    let wrong_key = token(PRIVATE_B, &[Permission::Subscribe.as_str()], 300);
    let expired = token(PRIVATE_A, &[Permission::Subscribe.as_str()], -600);
    let search_only = token(PRIVATE_A, &[Permission::Search.as_str()], 300);
    let cases = [
        (None, StatusCode::UNAUTHORIZED, "TOKEN_NOT_VALID"),
        (
            Some("Basic dXNlcjpwYXNz".to_owned()),
            StatusCode::UNAUTHORIZED,
            "TOKEN_NOT_VALID",
        ),
        (
            Some("Bearer ".to_owned()),
            StatusCode::UNAUTHORIZED,
            "TOKEN_NOT_VALID",
        ),
        (
            Some("Bearer not.a.token".to_owned()),
            StatusCode::UNAUTHORIZED,
            "TOKEN_NOT_VALID",
        ),
        (
            Some(format!("Bearer {wrong_key}")),
            StatusCode::UNAUTHORIZED,
            "TOKEN_NOT_VALID",
        ),
        (
            Some(format!("Bearer {expired}")),
            StatusCode::UNAUTHORIZED,
            "TOKEN_NOT_VALID",
        ),
        (
            Some(format!("Bearer {search_only}")),
            StatusCode::FORBIDDEN,
            "ACCESS_DENIED",
        ),
    ];
    for (authorization, status, code) in cases {
        let (answered, body) = answer(&api, subscribe(authorization.as_deref())).await;
        assert_eq!(answered, status, "{authorization:?}: {body}");
        assert_eq!(body["code"], code, "{body}");
        if let Some(authorization) = &authorization {
            let token = authorization.split_once(' ').unwrap().1;
            if token.len() > 8 {
                assert!(
                    !body.to_string().contains(token),
                    "the token is echoed: {body}"
                );
            }
        }
    }
}

#[tokio::test]
async fn each_operation_needs_its_own_permission_which_may_be_renamed() {
    let authorizer = TokenAuthorizer::new(TokenVerifier::new(
        PublicKey::from_pem_or_base64(PUBLIC_A).unwrap(),
    ))
    .with_permission(Permission::Subscribe, "PLUGINS_MANAGE");
    assert_eq!(
        authorizer.required_scope(Permission::Subscribe),
        "PLUGINS_MANAGE"
    );
    assert_eq!(
        authorizer.required_scope(Permission::Unsubscribe),
        "DISPATCHER_SUBSCRIPTIONS_UNSUBSCRIBE"
    );
    let api = Api::builder(Dispatcher::new(InMemoryStore::new(), DiscardingNotifier))
        .authorizer(authorizer)
        .build()
        .unwrap();
    let biot_name = token(PRIVATE_A, &[Permission::Subscribe.as_str()], 300);
    let renamed = token(PRIVATE_A, &["PLUGINS_MANAGE"], 300);
    assert_eq!(
        answer(&api, subscribe(Some(&format!("Bearer {biot_name}"))))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        answer(&api, subscribe(Some(&format!("Bearer {renamed}"))))
            .await
            .0,
        StatusCode::CREATED
    );
}
