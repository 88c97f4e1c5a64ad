//! The HTTP surface against BioT's own dispatcher spec
//! (`tests/fixtures/biot-dispatcher-openapi-2.4.2.json`, vendored unchanged): every response the handler
//! gives on the notification routes has a status the spec declares for the route (or
//! one our contract adds, listed below), and a body that validates against the
//! schema the spec gives for it.

use std::collections::BTreeSet;
use std::path::PathBuf;

use async_trait::async_trait;
use biot_notifications::api::{AllowEveryone, Api, Authorizer, Permission};
use biot_notifications::notifier::DiscardingNotifier;
use biot_notifications::{AuthorizationError, Dispatcher, InMemoryStore};
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{Method, Request, Response};
use serde_json::{json, Value};

mod common;
use common::FailingStore;

/// Statuses CONTRACT.md adds to BioT's spec, on any route: 404 for an unknown path (and
/// for unsubscribing an unknown subscription, which the spec declares), 405 for a wrong
/// method, 409 for a duplicate subscription, 413 for a body over the limit, 415 for a
/// body that is not JSON. Their bodies are ErrorResponses too.
const CONTRACT_EXTRA_STATUSES: &[u16] = &[404, 405, 409, 413, 415];

/// The spec, vendored under `tests/fixtures/`.
struct Spec {
    document: Value,
    /// The servers' URL: the base path every spec path is relative to.
    base_path: String,
}

impl Spec {
    fn load() -> Spec {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/biot-dispatcher-openapi-2.4.2.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("BioT's spec is at {}: {e}", path.display()));
        let document: Value = serde_json::from_str(&text).expect("the spec is JSON");
        let base_path = document["servers"][0]["url"]
            .as_str()
            .expect("the spec names its server")
            .to_owned();
        Spec {
            document,
            base_path,
        }
    }

    /// The spec's path for a request path: the request path without the server's base.
    fn spec_path<'a>(&self, request_path: &'a str) -> Option<&'a str> {
        request_path.strip_prefix(self.base_path.as_str())
    }

    fn operation(&self, spec_path: &str, method: &Method) -> Option<&Value> {
        let method = method.as_str().to_ascii_lowercase();
        self.document["paths"].get(spec_path)?.get(method)
    }

    fn schema(&self, name: &str) -> &Value {
        self.document["components"]["schemas"]
            .get(name)
            .unwrap_or_else(|| panic!("the spec defines schema {name}"))
    }

    /// Follows a `$ref` of the form `#/components/schemas/Name`.
    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(reference) => {
                let name = reference
                    .strip_prefix("#/components/schemas/")
                    .unwrap_or_else(|| panic!("only local schema refs are used: {reference}"));
                self.resolve(self.schema(name))
            }
            None => schema,
        }
    }

    /// Every way `value` breaks `schema`, as `path: problem` lines.
    fn violations(&self, schema: &Value, value: &Value, path: &str) -> Vec<String> {
        let schema = self.resolve(schema);
        let mut problems = Vec::new();
        if let Some(types) = schema.get("type") {
            // OpenAPI 3.1 allows a list of types.
            let types: Vec<&str> = match types {
                Value::String(t) => vec![t.as_str()],
                Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                other => panic!("unexpected `type` {other}"),
            };
            if !types.iter().any(|t| has_type(value, t)) {
                problems.push(format!("{path}: expected {types:?}, got {value}"));
                return problems;
            }
        }
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
            if !allowed.contains(value) {
                problems.push(format!("{path}: {value} is not one of {allowed:?}"));
            }
        }
        if let Some(format) = schema.get("format").and_then(Value::as_str) {
            let valid = match format {
                "uuid" => value.as_str().is_some_and(is_uuid),
                "int32" => value.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
                "int64" => value.as_i64().is_some(),
                // Formats our responses never carry (date-time is only in filters).
                _ => true,
            };
            if !valid {
                problems.push(format!("{path}: {value} is not a valid {format}"));
            }
        }
        if let Some(minimum) = schema.get("minimum").and_then(Value::as_f64) {
            if value.as_f64().is_some_and(|n| n < minimum) {
                problems.push(format!("{path}: {value} is below {minimum}"));
            }
        }
        if let Some(object) = value.as_object() {
            for required in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if !object.contains_key(required) {
                    problems.push(format!("{path}: `{required}` is required"));
                }
            }
            let properties = schema.get("properties").and_then(Value::as_object);
            for (name, member) in object {
                let member_path = format!("{path}.{name}");
                match properties.and_then(|p| p.get(name)) {
                    Some(member_schema) => {
                        problems.extend(self.violations(member_schema, member, &member_path));
                    }
                    None => match schema.get("additionalProperties") {
                        Some(Value::Bool(false)) => {
                            problems.push(format!("{member_path}: not allowed"));
                        }
                        Some(extra) if extra.is_object() => {
                            problems.extend(self.violations(extra, member, &member_path));
                        }
                        // No `additionalProperties`: anything else is allowed.
                        _ => {}
                    },
                }
            }
        }
        if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
            for (i, item) in array.iter().enumerate() {
                problems.extend(self.violations(items, item, &format!("{path}[{i}]")));
            }
        }
        problems
    }
}

fn has_type(value: &Value, kind: &str) -> bool {
    match kind {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        other => panic!("unexpected schema type {other}"),
    }
}

fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// One exchange, as the contract check sees it.
struct Exchange {
    method: Method,
    path: String,
    status: u16,
    content_type: Option<String>,
    body: Bytes,
}

/// Validates an exchange against the spec; returns the status and the schema name it
/// was checked against, for the coverage assertions.
fn check(spec: &Spec, exchange: &Exchange) -> (u16, Option<String>) {
    let what = format!(
        "{} {} -> {}",
        exchange.method, exchange.path, exchange.status
    );
    let error_response = json!({"$ref": "#/components/schemas/ErrorResponse"});
    let declared = spec
        .spec_path(&exchange.path)
        .and_then(|path| spec.operation(path, &exchange.method))
        .and_then(|operation| operation["responses"].get(exchange.status.to_string()));
    let schema = match declared {
        Some(response) => match response.pointer("/content/application~1json/schema") {
            Some(schema) => Some(schema.clone()),
            None => {
                assert!(
                    exchange.body.is_empty(),
                    "{what}: the spec declares no body"
                );
                return (exchange.status, None);
            }
        },
        None => {
            assert!(
                CONTRACT_EXTRA_STATUSES.contains(&exchange.status),
                "{what}: neither the spec nor CONTRACT.md declares this status"
            );
            Some(error_response)
        }
    };
    let schema = schema.expect("a schema was chosen");
    assert_eq!(
        exchange.content_type.as_deref(),
        Some("application/json"),
        "{what}: the spec declares application/json"
    );
    let body: Value =
        serde_json::from_slice(&exchange.body).unwrap_or_else(|e| panic!("{what}: not JSON: {e}"));
    let problems = spec.violations(&schema, &body, "$");
    assert!(
        problems.is_empty(),
        "{what}: {body}\n{}",
        problems.join("\n")
    );
    let name = schema["$ref"]
        .as_str()
        .map(|r| r.rsplit('/').next().unwrap().to_owned());
    (exchange.status, name)
}

/// Refuses requests without a bearer token, and lets only `admin` subscribe.
#[derive(Debug)]
struct BearerAuthorizer;

#[async_trait]
impl Authorizer for BearerAuthorizer {
    async fn authorize(
        &self,
        request: &http::request::Parts,
        permission: Permission,
    ) -> Result<(), AuthorizationError> {
        match request
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        {
            None => Err(AuthorizationError::Unauthenticated {
                reason: "no bearer token".into(),
            }),
            Some("Bearer admin") => Ok(()),
            Some(_) if permission == Permission::Search => Ok(()),
            Some(_) => Err(AuthorizationError::AccessDenied {
                reason: format!("{permission} is missing"),
            }),
        }
    }
}

async fn exchange(api: &Api, request: Request<String>) -> Exchange {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response: Response<Bytes> = api.handle(request).await;
    Exchange {
        method,
        path,
        status: response.status().as_u16(),
        content_type: response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: response.into_body(),
    }
}

fn json_request(method: Method, path: &str, body: Value, token: Option<&str>) -> Request<String> {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header(CONTENT_TYPE, "application/json");
    if let Some(token) = token {
        request = request.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    request.body(body.to_string()).unwrap()
}

fn search_path(search_request: &Value) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("searchRequest", &search_request.to_string())
        .finish();
    format!("/dispatcher/v1/hooks/notifications?{query}")
}

#[tokio::test]
async fn every_response_matches_biots_dispatcher_spec() {
    let spec = Spec::load();
    assert_eq!(
        spec.base_path, "/dispatcher",
        "the default base path is the spec's server"
    );
    let store = InMemoryStore::new();
    let api = Api::builder(Dispatcher::new(store, DiscardingNotifier))
        .authorizer(BearerAuthorizer)
        .build()
        .unwrap();

    let subscribe = "/dispatcher/v1/hooks/notifications/subscribe";
    let unsubscribe = "/dispatcher/v1/hooks/notifications/unsubscribe";
    let search = "/dispatcher/v1/hooks/notifications";
    let templated = json!({"entityTypeName": "patient", "actionName": "create",
                           "endpoint": "https://plugin.example.com/patients", "templateName": "adultPatient"});
    let plain = json!({"entityTypeName": "device", "actionName": "_revokeCertificate",
                       "endpoint": "https://plugin.example.com/certs"});
    let admin = Some("admin");

    let requests = vec![
        // Successes.
        json_request(Method::POST, subscribe, templated.clone(), admin),
        json_request(Method::POST, subscribe, plain.clone(), admin),
        json_request(Method::GET, search, Value::Null, admin),
        Request::get(search_path(&json!({
            "filter": {"entityTypeName": {"in": ["patient", "device"]}, "templateName": {"isNotNull": true}},
            "sort": [{"prop": "entityTypeName"}, {"prop": "actionName", "order": "ASC"}],
            "freeTextSearch": "plugin",
            "limit": 1,
            "page": 0,
        })))
        .header(AUTHORIZATION, "Bearer reader")
        .body(String::new())
        .unwrap(),
        Request::get(search_path(&json!({"page": 5}))).header(AUTHORIZATION, "Bearer reader").body(String::new()).unwrap(),
        Request::get("/dispatcher/system/healthCheck").body(String::new()).unwrap(),
        // Client errors the spec declares.
        json_request(Method::POST, subscribe, json!({"entityTypeName": "patient", "actionName": "_read",
                                                     "endpoint": "https://plugin.example.com/"}), admin),
        json_request(Method::POST, subscribe, json!({"entityTypeName": "usageSession", "actionName": "_create",
                                                     "endpoint": "https://plugin.example.com/"}), admin),
        json_request(Method::POST, subscribe, json!({"entityTypeName": "patient", "actionName": "_create",
                                                     "endpoint": "https://127.1/"}), admin),
        json_request(Method::POST, subscribe, json!({"entityTypeName": "patient"}), admin),
        json_request(Method::POST, unsubscribe, json!([]), admin),
        Request::get(search_path(&json!({"limit": 0}))).header(AUTHORIZATION, "Bearer admin").body(String::new()).unwrap(),
        json_request(Method::POST, subscribe, plain.clone(), None),
        json_request(Method::POST, subscribe, plain.clone(), Some("reader")),
        json_request(Method::POST, unsubscribe, plain.clone(), Some("reader")),
        Request::get(search).body(String::new()).unwrap(),
        // Statuses CONTRACT.md adds.
        json_request(Method::POST, subscribe, plain.clone(), admin),
        Request::post(subscribe)
            .header(AUTHORIZATION, "Bearer admin")
            .header(CONTENT_TYPE, "text/plain")
            .body(plain.to_string())
            .unwrap(),
        Request::post(subscribe)
            .header(AUTHORIZATION, "Bearer admin")
            .header(CONTENT_TYPE, "application/json")
            .body(" ".repeat(65 * 1024))
            .unwrap(),
        json_request(Method::PUT, subscribe, plain.clone(), admin),
        Request::post("/dispatcher/system/healthCheck").body(String::new()).unwrap(),
        Request::get("/dispatcher/v1/hooks/unknown").body(String::new()).unwrap(),
        // Unsubscribing: the 204, then the spec's 404.
        json_request(Method::POST, unsubscribe, templated.clone(), admin),
        json_request(Method::POST, unsubscribe, templated.clone(), admin),
    ];

    let mut seen = BTreeSet::new();
    for request in requests {
        let exchange = exchange(&api, request).await;
        seen.insert(check(&spec, &exchange));
    }
    // Every kind of response was produced and checked against its schema.
    let expected: BTreeSet<(u16, Option<String>)> = [
        (200, Some("SearchResponseSubscribeResponse")),
        (200, Some("VersionResponse")),
        (201, Some("SubscribeResponse")),
        (204, None),
        (400, Some("ErrorResponse")),
        (401, Some("ErrorResponse")),
        (403, Some("ErrorResponse")),
        (404, Some("ErrorResponse")),
        (405, Some("ErrorResponse")),
        (409, Some("ErrorResponse")),
        (413, Some("ErrorResponse")),
        (415, Some("ErrorResponse")),
    ]
    .into_iter()
    .map(|(status, schema)| (status, schema.map(str::to_owned)))
    .collect();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn internal_errors_match_the_specs_500() {
    let spec = Spec::load();
    let api = Api::builder(Dispatcher::new(FailingStore, DiscardingNotifier))
        .authorizer(AllowEveryone)
        .build()
        .unwrap();
    let body = json!({"entityTypeName": "patient", "actionName": "_create", "endpoint": "https://plugin.example.com/"});
    for request in [
        json_request(
            Method::POST,
            "/dispatcher/v1/hooks/notifications/subscribe",
            body.clone(),
            None,
        ),
        json_request(
            Method::POST,
            "/dispatcher/v1/hooks/notifications/unsubscribe",
            body.clone(),
            None,
        ),
        Request::get("/dispatcher/v1/hooks/notifications")
            .body(String::new())
            .unwrap(),
    ] {
        let exchange = exchange(&api, request).await;
        assert_eq!(
            check(&spec, &exchange),
            (500, Some("ErrorResponse".to_owned()))
        );
    }
}

#[test]
fn the_schema_checker_catches_violations() {
    let spec = Spec::load();
    let subscribe_response = json!({"$ref": "#/components/schemas/SubscribeResponse"});
    let good = json!({"entityTypeName": "patient", "actionName": "_create",
                      "endpoint": "https://x.example.com/", "id": "0b4e7a3c-9f0e-4c5e-8d7a-2f7f1d6c9b10"});
    assert!(spec.violations(&subscribe_response, &good, "$").is_empty());
    for (bad, problem) in [
        (
            json!({"entityTypeName": "patient", "actionName": "_create", "id": "0b4e7a3c-9f0e-4c5e-8d7a-2f7f1d6c9b10"}),
            "required",
        ),
        (
            json!({"entityTypeName": "Patient", "actionName": "_create", "endpoint": "x"}),
            "is not one of",
        ),
        (
            json!({"entityTypeName": "patient", "actionName": "_create", "endpoint": 1}),
            "expected",
        ),
        (
            json!({"entityTypeName": "patient", "actionName": "_create", "endpoint": "x", "id": "nope"}),
            "valid uuid",
        ),
    ] {
        let problems = spec.violations(&subscribe_response, &bad, "$");
        assert!(
            problems.iter().any(|p| p.contains(problem)),
            "{bad}: {problems:?}"
        );
    }
    let search_response = json!({"$ref": "#/components/schemas/SearchResponseSubscribeResponse"});
    let bad_page =
        json!({"data": [], "metadata": {"page": {"totalResults": "4"}, "sort": [{"order": "UP"}]}});
    let problems = spec.violations(&search_response, &bad_page, "$");
    assert!(
        problems
            .iter()
            .any(|p| p.contains("$.metadata.page.totalResults")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("$.metadata.sort[0]: `prop` is required")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("\"UP\" is not one of")),
        "{problems:?}"
    );
    let bad_filter = json!({"data": [], "metadata": {"filter": {"actionName": {"isNull": "yes"}}}});
    let problems = spec.violations(&search_response, &bad_filter, "$");
    assert!(
        problems
            .iter()
            .any(|p| p.contains("$.metadata.filter.actionName.isNull")),
        "{problems:?}"
    );
}
