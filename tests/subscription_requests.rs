//! Request parsing and validation: every missing, empty or wrongly typed field is
//! reported by name, names get hints, template names have limits, and the identity is
//! normalised.

use biot_notifications::{
    BiotError, EndpointPolicy, SubscribeRequest, Subscription, SubscriptionKey, ValidationError,
};
use serde_json::json;

const GOOD: &str = r#"{"entityTypeName":"patient","actionName":"_create","endpoint":"https://plugin.example.com/hook"}"#;

fn parse_and_validate(body: &str) -> Result<SubscriptionKey, ValidationError> {
    SubscribeRequest::from_json(body.as_bytes())?.validate(&EndpointPolicy::default())
}

#[test]
fn a_good_request_validates_with_canonical_names() {
    let key = parse_and_validate(GOOD).unwrap();
    assert_eq!(key.entity_type().as_str(), "patient");
    assert_eq!(key.action().as_str(), "_create");
    assert_eq!(key.endpoint().as_str(), "https://plugin.example.com/hook");
    assert_eq!(key.template_name(), None);
}

/// (body, expected code, attribute named in details when there is one)
const BAD_BODIES: &[(&str, &str, Option<&str>)] = &[
    // Missing, null or empty mandatory fields.
    (
        r#"{"actionName":"_create","endpoint":"https://a.example.com/"}"#,
        "ATTRIBUTE_IS_MANDATORY",
        Some("entityTypeName"),
    ),
    (
        r#"{"entityTypeName":"patient","endpoint":"https://a.example.com/"}"#,
        "ATTRIBUTE_IS_MANDATORY",
        Some("actionName"),
    ),
    (
        r#"{"entityTypeName":"patient","actionName":"_create"}"#,
        "ATTRIBUTE_IS_MANDATORY",
        Some("endpoint"),
    ),
    (
        r#"{"entityTypeName":null,"actionName":"_create","endpoint":"https://a.example.com/"}"#,
        "ATTRIBUTE_IS_MANDATORY",
        Some("entityTypeName"),
    ),
    (
        r#"{"entityTypeName":"patient","actionName":null,"endpoint":"https://a.example.com/"}"#,
        "ATTRIBUTE_IS_MANDATORY",
        Some("actionName"),
    ),
    (
        r#"{"entityTypeName":"patient","actionName":"_create","endpoint":null}"#,
        "ATTRIBUTE_IS_MANDATORY",
        Some("endpoint"),
    ),
    (
        r#"{"entityTypeName":"","actionName":"_create","endpoint":"https://a.example.com/"}"#,
        "ATTRIBUTE_IS_MANDATORY",
        Some("entityTypeName"),
    ),
    (
        r#"{"entityTypeName":"patient","actionName":"  ","endpoint":"https://a.example.com/"}"#,
        "ATTRIBUTE_IS_MANDATORY",
        Some("actionName"),
    ),
    (
        r#"{"entityTypeName":"patient","actionName":"_create","endpoint":""}"#,
        "ATTRIBUTE_IS_MANDATORY",
        Some("endpoint"),
    ),
    (r#"{}"#, "ATTRIBUTE_IS_MANDATORY", Some("entityTypeName")),
    // Wrong types.
    (
        r#"{"entityTypeName":7,"actionName":"_create","endpoint":"https://a.example.com/"}"#,
        "INVALID_ATTRIBUTE",
        Some("entityTypeName"),
    ),
    (
        r#"{"entityTypeName":"patient","actionName":["_create"],"endpoint":"https://a.example.com/"}"#,
        "INVALID_ATTRIBUTE",
        Some("actionName"),
    ),
    (
        r#"{"entityTypeName":"patient","actionName":"_create","endpoint":{"url":"https://a.example.com/"}}"#,
        "INVALID_ATTRIBUTE",
        Some("endpoint"),
    ),
    (
        r#"{"entityTypeName":"patient","actionName":"_create","endpoint":true}"#,
        "INVALID_ATTRIBUTE",
        Some("endpoint"),
    ),
    (
        r#"{"entityTypeName":"patient","actionName":"_create","endpoint":"https://a.example.com/","templateName":42}"#,
        "INVALID_ATTRIBUTE",
        Some("templateName"),
    ),
    // Template name limits.
    (
        r#"{"entityTypeName":"patient","actionName":"_create","endpoint":"https://a.example.com/","templateName":""}"#,
        "INVALID_ATTRIBUTE",
        Some("templateName"),
    ),
    (
        r#"{"entityTypeName":"patient","actionName":"_create","endpoint":"https://a.example.com/","templateName":"   "}"#,
        "INVALID_ATTRIBUTE",
        Some("templateName"),
    ),
    (
        r#"{"entityTypeName":"patient","actionName":"_create","endpoint":"https://a.example.com/","templateName":"a\nb"}"#,
        "INVALID_ATTRIBUTE",
        Some("templateName"),
    ),
    (
        r#"{"entityTypeName":"patient","actionName":"_create","endpoint":"https://a.example.com/","templateName":" padded"}"#,
        "INVALID_ATTRIBUTE",
        Some("templateName"),
    ),
    // Not a JSON object.
    ("", "MALFORMED_REQUEST_BODY", None),
    ("not json", "MALFORMED_REQUEST_BODY", None),
    (
        r#"{"entityTypeName":"patient""#,
        "MALFORMED_REQUEST_BODY",
        None,
    ),
    (
        r#"["patient","_create","https://a.example.com/"]"#,
        "MALFORMED_REQUEST_BODY",
        None,
    ),
    ("null", "MALFORMED_REQUEST_BODY", None),
    (r#""patient""#, "MALFORMED_REQUEST_BODY", None),
    (
        r#"{"entityTypeName":"patient","entityTypeName":"device","actionName":"_create","endpoint":"https://a.example.com/"}"#,
        "MALFORMED_REQUEST_BODY",
        None,
    ),
    (
        r#"{"entityTypeName":"patient","actionName":"_create","endpoint":"https://a.example.com/"} trailing"#,
        "MALFORMED_REQUEST_BODY",
        None,
    ),
    // Unknown names and bad endpoints.
    (
        r#"{"entityTypeName":"spaceship","actionName":"_create","endpoint":"https://a.example.com/"}"#,
        "INVALID_ENTITY_TYPE_NAME",
        None,
    ),
    (
        r#"{"entityTypeName":"patient","actionName":"_explode","endpoint":"https://a.example.com/"}"#,
        "INVALID_ACTION_NAME",
        None,
    ),
    (
        r#"{"entityTypeName":"device","actionName":"_login","endpoint":"https://a.example.com/"}"#,
        "INVALID_ACTION_NAME",
        None,
    ),
    (
        r#"{"entityTypeName":"patient","actionName":"_read","endpoint":"https://a.example.com/"}"#,
        "INVALID_ACTION_NAME",
        None,
    ),
    (
        r#"{"entityTypeName":"patient","actionName":"_create","endpoint":"http://a.example.com/"}"#,
        "INVALID_ENDPOINT",
        None,
    ),
    (
        r#"{"entityTypeName":"patient","actionName":"_create","endpoint":"https://127.0.0.1/"}"#,
        "INVALID_ENDPOINT",
        None,
    ),
    (
        r#"{"entityTypeName":"patient","actionName":"_create","endpoint":"not a url"}"#,
        "INVALID_ENDPOINT",
        None,
    ),
];

#[test]
fn every_bad_request_is_reported_with_its_code_and_attribute() {
    for &(body, code, attribute) in BAD_BODIES {
        let err = parse_and_validate(body).expect_err(body);
        assert_eq!(err.code(), code, "{body}: {err}");
        assert_eq!(err.status(), http::StatusCode::BAD_REQUEST, "{body}");
        if let Some(attribute) = attribute {
            assert_eq!(err.details()["attributeName"], attribute, "{body}: {err}");
            assert!(err.to_string().contains(attribute), "{err}");
        }
    }
}

#[test]
fn unknown_names_in_requests_carry_hints() {
    let err = parse_and_validate(
        r#"{"entityTypeName":"usageSession","actionName":"_create","endpoint":"https://a.example.com/"}"#,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("did you mean `usage-session`?"),
        "{err}"
    );
    assert_eq!(err.details()["suggestion"], "usage-session");
}

#[test]
fn a_template_name_of_256_bytes_is_accepted_and_257_is_not() {
    let ok = SubscribeRequest::new("patient", "_create", "https://a.example.com/")
        .with_template("t".repeat(256));
    assert_eq!(
        ok.validate(&EndpointPolicy::default())
            .unwrap()
            .template_name()
            .unwrap()
            .as_str()
            .len(),
        256
    );
    let too_long = SubscribeRequest::new("patient", "_create", "https://a.example.com/")
        .with_template("t".repeat(257));
    let err = too_long.validate(&EndpointPolicy::default()).unwrap_err();
    assert_eq!(err.code(), "INVALID_ATTRIBUTE");
    assert!(err.to_string().contains("longer than 256"), "{err}");
}

#[test]
fn unknown_fields_are_ignored_and_null_template_means_none() {
    let body = r#"{"entityTypeName":"patient","actionName":"create","endpoint":"https://a.example.com/","templateName":null,"extra":{"x":[1,2]}}"#;
    let request = SubscribeRequest::from_json(body.as_bytes()).unwrap();
    assert_eq!(request.template_name, None);
    assert_eq!(request.action_name, "create");
}

#[test]
fn escaped_strings_are_decoded() {
    let body = r#"{"entityTypeName":"pati\u0065nt","actionName":"_create","endpoint":"https:\/\/a.example.com\/x"}"#;
    let key = parse_and_validate(body).unwrap();
    assert_eq!(key.endpoint().as_str(), "https://a.example.com/x");
}

#[test]
fn two_spellings_of_one_subscription_are_one_key() {
    let a = SubscribeRequest::new("patient", "create", "https://PLUGIN.example.com:443/hook")
        .validate(&EndpointPolicy::default())
        .unwrap();
    let b = SubscribeRequest::new("patient", "_create", "https://plugin.example.com/hook")
        .validate(&EndpointPolicy::default())
        .unwrap();
    assert_eq!(a, b);
    let with_template =
        SubscribeRequest::new("patient", "_create", "https://plugin.example.com/hook")
            .with_template("adult")
            .validate(&EndpointPolicy::default())
            .unwrap();
    assert_ne!(a, with_template);
    let other_path =
        SubscribeRequest::new("patient", "_create", "https://plugin.example.com/hook2")
            .validate(&EndpointPolicy::default())
            .unwrap();
    assert_ne!(a, other_path);
}

#[test]
fn unsubscribe_keys_ignore_the_policy_but_still_normalise() {
    let request = SubscribeRequest::new("patient", "_create", "http://LOCALHOST:8080/hook");
    assert_eq!(
        request
            .validate(&EndpointPolicy::default())
            .unwrap_err()
            .code(),
        "INVALID_ENDPOINT"
    );
    let key = request.key().unwrap();
    assert_eq!(key.endpoint().as_str(), "http://localhost:8080/hook");
    // Structure still counts.
    let err = SubscribeRequest::new("patient", "_create", "https://user:pw@a.example.com/")
        .key()
        .unwrap_err();
    assert_eq!(err.code(), "INVALID_ENDPOINT");
}

#[test]
fn a_subscription_serialises_as_biots_subscribe_response() {
    let key = SubscribeRequest::new("usage-session", "remotePause", "https://a.example.com/p")
        .with_template("session")
        .validate(&EndpointPolicy::default())
        .unwrap();
    let subscription = Subscription::new(key);
    let json = serde_json::to_value(&subscription).unwrap();
    assert_eq!(json["entityTypeName"], "usage-session");
    assert_eq!(json["actionName"], "_remotePause");
    assert_eq!(json["endpoint"], "https://a.example.com/p");
    assert_eq!(json["templateName"], "session");
    assert_eq!(json["id"], subscription.id().to_string());
    assert!(json["creationTime"].is_string());

    let back: Subscription = serde_json::from_value(json).unwrap();
    assert_eq!(back, subscription);
}

#[test]
fn a_subscription_serialises_to_exactly_these_bytes() {
    let key = |template: Option<&str>| {
        let request =
            SubscribeRequest::new("patient", "create", "HTTPS://Plugin.Example.com:443/hook");
        match template {
            Some(template) => request.with_template(template),
            None => request,
        }
        .key()
        .unwrap()
    };
    let id = uuid::Uuid::from_u128(0x4bbb10e4_7350_4dd9_a495_33c1e5db8dcc);
    let created = time::macros::datetime!(2026-11-27 23:30:08.891736509 UTC);
    let narrowed = Subscription::from_parts(id, key(Some("adult \"A\"")), created);
    assert_eq!(
        serde_json::to_string(&narrowed).unwrap(),
        r#"{"entityTypeName":"patient","actionName":"_create","endpoint":"https://plugin.example.com/hook","templateName":"adult \"A\"","id":"4bbb10e4-7350-4dd9-a495-33c1e5db8dcc","creationTime":"2026-11-27T23:30:08.891736509Z"}"#
    );
    let unnarrowed = Subscription::from_parts(id, key(None), created);
    assert_eq!(
        serde_json::to_string(&unnarrowed).unwrap(),
        r#"{"entityTypeName":"patient","actionName":"_create","endpoint":"https://plugin.example.com/hook","id":"4bbb10e4-7350-4dd9-a495-33c1e5db8dcc","creationTime":"2026-11-27T23:30:08.891736509Z"}"#
    );
}

/// The creation time is written without `time::serde::rfc3339`'s `String`; it must
/// write the same text, and fail where that fails.
#[test]
fn a_creation_time_is_written_as_time_s_rfc3339_writes_it() {
    #[derive(serde::Serialize)]
    struct Reference(#[serde(with = "time::serde::rfc3339")] time::OffsetDateTime);
    let key = SubscribeRequest::new("patient", "_create", "https://plugin.example.com/hook")
        .key()
        .unwrap();
    let id = uuid::Uuid::from_u128(1);
    let offsets = [
        time::UtcOffset::UTC,
        time::UtcOffset::from_hms(5, 30, 0).unwrap(),
        time::UtcOffset::from_hms(-0, -30, 0).unwrap(),
        time::UtcOffset::from_hms(-23, -59, 0).unwrap(),
        // RFC 3339 has no seconds in offsets: `time` refuses this one.
        time::UtcOffset::from_hms(1, 0, 30).unwrap(),
    ];
    let times = [
        time::macros::datetime!(2026-11-27 23:30:08 UTC),
        time::macros::datetime!(2026-11-27 23:30:08.5 UTC),
        time::macros::datetime!(2026-11-27 23:30:08.891736509 UTC),
        time::macros::datetime!(0000-01-01 00:00:00 UTC),
        time::macros::datetime!(9999-12-31 23:59:59.999999999 UTC),
        time::OffsetDateTime::UNIX_EPOCH,
    ];
    let mut refused = 0;
    for time in times {
        for offset in offsets {
            let Some(time) = time.checked_to_offset(offset) else {
                continue; // before year 0 or after 9999 in that offset: not a time here
            };
            let written = serde_json::to_value(Subscription::from_parts(id, key.clone(), time));
            match serde_json::to_value(Reference(time)) {
                Ok(reference) => assert_eq!(written.unwrap()["creationTime"], reference, "{time}"),
                Err(_) => {
                    assert!(written.is_err(), "{time}");
                    refused += 1;
                }
            }
        }
    }
    assert!(refused > 0, "some times have no RFC 3339 form");
}

#[test]
fn a_subscription_cannot_be_deserialised_without_validation() {
    let base = json!({
        "id": "8f14e45f-ceea-467f-a8f4-2a8f0c3a1b2c",
        "entityTypeName": "device",
        "actionName": "_create",
        "endpoint": "https://a.example.com/",
    });
    assert!(serde_json::from_value::<Subscription>(base.clone()).is_ok());
    for (field, bad) in [
        ("entityTypeName", json!("spaceship")),
        ("actionName", json!("_login")),
        ("endpoint", json!("ftp://a.example.com/")),
        ("endpoint", json!("https://u:p@a.example.com/")),
        ("templateName", json!("")),
        ("id", json!("not-a-uuid")),
        ("creationTime", json!("yesterday")),
    ] {
        let mut body = base.clone();
        body[field] = bad.clone();
        assert!(
            serde_json::from_value::<Subscription>(body).is_err(),
            "{field} = {bad} was accepted"
        );
    }
    let mut missing = base.clone();
    missing.as_object_mut().unwrap().remove("endpoint");
    assert!(serde_json::from_value::<Subscription>(missing).is_err());
}

#[test]
fn a_key_serialises_as_the_request_shape() {
    let key = SubscribeRequest::new("patient", "create", "https://a.example.com/")
        .key()
        .unwrap();
    assert_eq!(
        serde_json::to_value(&key).unwrap(),
        json!({"entityTypeName": "patient", "actionName": "_create", "endpoint": "https://a.example.com/"})
    );
}
