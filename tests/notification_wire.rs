//! The notification as a plugin receives it: body, headers and trace context.

use biot_notifications::notification::{
    Event, EventStatus, Initiator, InvalidTraceParent, Notification, PreparedNotification, Subject,
    TraceParent, CONTENT_TYPE_JSON, HOOKTYPE, HOOKTYPE_NOTIFICATION, TRACEPARENT,
};
use biot_notifications::{Action, BiotError, Endpoint, EntityType, EventType};
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::Method;
use serde_json::{json, Value};
use time::macros::datetime;

mod common;
use common::assert_send_sync;

/// The shape of a captured BioT notification (CONTRACT.md), values invented, with
/// members this crate does not model (`correlationId`, the subject's `userType`, the
/// initiator's `userAgent`, `data.revision`) to prove they survive.
fn capture() -> Value {
    json!({
        "metadata": {
            "entityTypeName": "generic-entity",
            "actionName": "_update",
            "status": "SUCCESS",
            "startTime": "2026-01-05T08:00:00.123456789Z",
            "endTime": "2026-01-05T08:00:00.456Z",
            "initiator": {
                "subject": {"id": "0b5e9c1e-5f55-4e4c-8d0c-2a3f8c1d9e77", "userType": "ORGANIZATION_USER"},
                "sourceIpAddress": "198.51.100.7:50123",
                "userAgent": "biot-console/5.2"
            },
            "traceId": "4bf92f3577b34da6a3ce929d0e0e4736",
            "correlationId": "c0ffee00-1234-4abc-9def-000000000001"
        },
        "data": {
            "entity": {
                "_id": "7d3c9a10-2b4e-4f6a-8c1d-9e0f1a2b3c4d",
                "_template": {
                    "name": "bloodPressureCuff",
                    "displayName": "Blood pressure cuff",
                    "id": "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"
                },
                "_ownerOrganization": {"id": "00000000-0000-4000-8000-000000000001"},
                "_creationTime": "2025-12-30T10:15:00.000Z",
                "_lastModifiedTime": "2026-01-05T08:00:00.400Z",
                "systolic": 121,
                "diastolic": 79
            },
            "additionalData": {
                "oldEntity": {
                    "_id": "7d3c9a10-2b4e-4f6a-8c1d-9e0f1a2b3c4d",
                    "systolic": 135,
                    "diastolic": 88
                }
            },
            "revision": 4
        },
        "jwt": "eyJhbGciOiJSUzUxMiJ9.eyJzY29wZXMiOlsiQUNUSU9OX05PVElGSUNBVElPTiJdfQ.c2lnbmF0dXJl"
    })
}

fn parse(body: &Value) -> Notification {
    serde_json::from_value(body.clone()).expect("the body parses as a Notification")
}

fn patient_update() -> EventType {
    EventType::new(EntityType::Patient, Action::Update).unwrap()
}

const TRACEPARENT_EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[test]
fn a_captured_body_round_trips_unchanged() {
    let capture = capture();
    let notification = parse(&capture);
    assert_eq!(serde_json::to_value(&notification).unwrap(), capture);
}

#[test]
fn a_captured_body_reads_as_typed_fields() {
    let notification = parse(&capture());
    let metadata = &notification.metadata;
    assert_eq!(
        notification.event_type().unwrap(),
        EventType::new(EntityType::GenericEntity, Action::Update).unwrap()
    );
    assert_eq!(metadata.status, EventStatus::SUCCESS);
    assert_eq!(
        metadata.start_time,
        datetime!(2026-01-05 08:00:00.123456789 UTC)
    );
    assert_eq!(metadata.end_time, datetime!(2026-01-05 08:00:00.456 UTC));
    let initiator = metadata.initiator.as_ref().unwrap();
    assert_eq!(
        initiator.subject.as_ref().unwrap().id,
        "0b5e9c1e-5f55-4e4c-8d0c-2a3f8c1d9e77"
    );
    assert_eq!(
        initiator.source_ip_address.as_deref(),
        Some("198.51.100.7:50123")
    );
    assert_eq!(initiator.extra["userAgent"], "biot-console/5.2");
    assert_eq!(
        metadata.trace_id.as_deref(),
        Some("4bf92f3577b34da6a3ce929d0e0e4736")
    );
    assert_eq!(
        metadata.extra["correlationId"],
        "c0ffee00-1234-4abc-9def-000000000001"
    );
    assert_eq!(notification.template_name(), Some("bloodPressureCuff"));
    assert_eq!(
        notification.data.additional_data.as_ref().unwrap()["oldEntity"]["systolic"],
        135
    );
    assert_eq!(notification.data.extra["revision"], 4);
    assert!(notification.jwt.as_deref().unwrap().starts_with("eyJ"));
}

#[test]
fn bare_action_names_are_read_and_the_underscore_form_is_written() {
    let mut body = capture();
    body["metadata"]["actionName"] = json!("update");
    let written = serde_json::to_value(parse(&body)).unwrap();
    assert_eq!(written["metadata"]["actionName"], "_update");
}

#[test]
fn unknown_statuses_round_trip() {
    let mut body = capture();
    body["metadata"]["status"] = json!("PARTIAL_SUCCESS");
    let notification = parse(&body);
    assert_eq!(notification.metadata.status.as_str(), "PARTIAL_SUCCESS");
    assert!(!notification.metadata.status.is_success());
    assert_eq!(serde_json::to_value(&notification).unwrap(), body);
}

#[test]
fn optional_members_that_are_absent_stay_absent() {
    let mut body = capture();
    let metadata = body["metadata"].as_object_mut().unwrap();
    metadata.remove("initiator");
    metadata.remove("traceId");
    body["data"]
        .as_object_mut()
        .unwrap()
        .remove("additionalData");
    body.as_object_mut().unwrap().remove("jwt");

    let notification = parse(&body);
    assert!(notification.jwt.is_none());
    assert!(notification.metadata.initiator.is_none());
    assert_eq!(serde_json::to_value(&notification).unwrap(), body);
}

#[test]
fn an_entity_type_and_action_that_do_not_pair_parse_but_fail_the_check() {
    let mut body = capture();
    body["metadata"]["entityTypeName"] = json!("device");
    body["metadata"]["actionName"] = json!("_login");
    let err = parse(&body).event_type().unwrap_err();
    assert_eq!(err.code(), "INVALID_ACTION_NAME");
}

#[test]
fn unknown_entity_types_and_actions_do_not_parse() {
    for (member, value) in [("entityTypeName", "spaceship"), ("actionName", "_read")] {
        let mut body = capture();
        body["metadata"][member] = json!(value);
        assert!(
            serde_json::from_value::<Notification>(body).is_err(),
            "{member}: {value}"
        );
    }
}

#[test]
fn from_event_puts_every_part_of_the_event_in_its_place() {
    let initiator = Initiator::new()
        .with_subject(Subject::new("0b5e9c1e-5f55-4e4c-8d0c-2a3f8c1d9e77"))
        .with_source_ip_address("198.51.100.7:50123");
    let event = Event::new(
        patient_update(),
        json!({"_id": "p-1", "_template": {"name": "adultPatient"}, "weight": 70}),
    )
    .with_old_entity(json!({"_id": "p-1", "weight": 71}))
    .with_status(EventStatus::FAILURE)
    .with_times(
        datetime!(2026-01-05 08:00:00.123456789 UTC),
        datetime!(2026-01-05 09:00:00.5 +01:00),
    )
    .with_initiator(initiator.clone());

    let notification = Notification::from_event(&event, Some("token".to_owned()));
    let body = serde_json::to_value(&notification).unwrap();
    assert_eq!(
        body,
        json!({
            "metadata": {
                "entityTypeName": "patient",
                "actionName": "_update",
                "status": "FAILURE",
                "startTime": "2026-01-05T08:00:00.123456789Z",
                "endTime": "2026-01-05T08:00:00.5Z",
                "initiator": {
                    "subject": {"id": "0b5e9c1e-5f55-4e4c-8d0c-2a3f8c1d9e77"},
                    "sourceIpAddress": "198.51.100.7:50123"
                }
            },
            "data": {
                "entity": {"_id": "p-1", "_template": {"name": "adultPatient"}, "weight": 70},
                "additionalData": {"oldEntity": {"_id": "p-1", "weight": 71}}
            },
            "jwt": "token"
        })
    );
    assert_eq!(notification.metadata.initiator, Some(initiator));
    assert_eq!(notification.template_name(), Some("adultPatient"));

    let anonymous = Notification::from_event(&Event::new(patient_update(), json!({})), None);
    let body = serde_json::to_value(&anonymous).unwrap();
    assert_eq!(body["metadata"]["status"], "SUCCESS");
    assert!(body.get("jwt").is_none());
    assert!(body["metadata"].get("initiator").is_none());
    assert!(body["data"].get("additionalData").is_none());
}

#[test]
fn an_event_starts_and_ends_when_it_is_built_unless_told_otherwise() {
    let before = time::OffsetDateTime::now_utc();
    let event = Event::new(patient_update(), json!({}));
    let after = time::OffsetDateTime::now_utc();
    assert_eq!(event.start_time(), event.end_time());
    assert!(before <= event.start_time() && event.start_time() <= after);
    assert_eq!(event.status(), &EventStatus::SUCCESS);
}

#[test]
fn the_template_name_comes_from_the_entity_unless_set_explicitly() {
    let cases = [
        (
            json!({"_template": {"name": "adultPatient"}}),
            None,
            Some("adultPatient"),
        ),
        (
            json!({"_template": {"name": "adultPatient"}}),
            Some("child"),
            Some("child"),
        ),
        (json!({"_template": {"id": "a1b2"}}), None, None),
        (json!({"_template": {"name": 7}}), None, None),
        (json!({"_template": "adultPatient"}), None, None),
        (json!({}), Some("child"), Some("child")),
        (json!([1, 2]), None, None),
    ];
    for (entity, explicit, expected) in cases {
        let mut event = Event::new(patient_update(), entity.clone());
        if let Some(name) = explicit {
            event = event.with_template_name(name);
        }
        assert_eq!(event.template_name(), expected, "{entity} / {explicit:?}");
    }
}

#[test]
fn the_explicit_template_name_is_for_matching_and_leaves_the_body_alone() {
    let entity = json!({"_template": {"name": "adultPatient"}});
    let event = Event::new(patient_update(), entity.clone()).with_template_name("child");
    let notification = Notification::from_event(&event, None);
    assert_eq!(notification.data.entity, entity);
    assert_eq!(notification.template_name(), Some("adultPatient"));
}

#[test]
fn with_old_entity_sets_or_merges_the_old_entity() {
    let old = json!({"weight": 71});
    let cases = [
        (None, json!({"oldEntity": {"weight": 71}})),
        (
            Some(json!({"reason": "import"})),
            json!({"reason": "import", "oldEntity": {"weight": 71}}),
        ),
        (
            Some(json!({"oldEntity": {"weight": 1}})),
            json!({"oldEntity": {"weight": 71}}),
        ),
        (
            Some(json!("not an object")),
            json!({"oldEntity": {"weight": 71}}),
        ),
    ];
    for (additional, expected) in cases {
        let mut event = Event::new(patient_update(), json!({}));
        if let Some(additional) = additional.clone() {
            event = event.with_additional_data(additional);
        }
        let event = event.with_old_entity(old.clone());
        assert_eq!(event.additional_data(), Some(&expected), "{additional:?}");
    }

    // Setting the additional data afterwards replaces it, old entity included.
    let event = Event::new(patient_update(), json!({}))
        .with_old_entity(old)
        .with_additional_data(json!({"reason": "import"}));
    assert_eq!(event.additional_data(), Some(&json!({"reason": "import"})));
}

#[test]
fn traceparent_parsing_follows_the_w3c_rules() {
    let valid = [
        (TRACEPARENT_EXAMPLE, TRACEPARENT_EXAMPLE),
        (
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
        ),
        // Unknown flags of version 00 are carried as they are.
        (
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03",
        ),
        // A later version: the first four fields are read, more may follow a dash.
        (
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            TRACEPARENT_EXAMPLE,
        ),
        (
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-anything",
            TRACEPARENT_EXAMPLE,
        ),
    ];
    for (input, written) in valid {
        let traceparent = TraceParent::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(traceparent.to_string(), written, "{input}");
        assert_eq!(input.parse::<TraceParent>(), Ok(traceparent));
    }

    use InvalidTraceParent::*;
    let invalid = [
        ("", Length),
        ("garbage", Length),
        (
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            Length,
        ),
        (
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
            Length,
        ),
        (
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 ",
            Length,
        ),
        (
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            Length,
        ),
        (
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            Version,
        ),
        (
            "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            Version,
        ),
        (
            "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            Version,
        ),
        (
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            TraceId,
        ),
        (
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            TraceId,
        ),
        (
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
            Delimiter,
        ),
        (
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
            ParentId,
        ),
        (
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            ParentId,
        ),
        (
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0F",
            Flags,
        ),
        (
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-xx",
            Flags,
        ),
        (
            "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
            Delimiter,
        ),
        (
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            Delimiter,
        ),
        (
            "01-4bf92f3577b34da6a3ce929d0e0e47-36-00f067aa0ba902b7-01",
            Delimiter,
        ),
        (
            "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            TraceId,
        ),
        (
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-é",
            Flags,
        ),
    ];
    for (input, expected) in invalid {
        assert_eq!(TraceParent::parse(input), Err(expected), "{input:?}");
    }
}

#[test]
fn generated_traceparents_are_valid_sampled_and_distinct() {
    let first = TraceParent::generate();
    let second = TraceParent::generate();
    for traceparent in [first, second] {
        let written = traceparent.to_string();
        assert_eq!(written.len(), 55);
        assert!(
            written.starts_with("00-") && written.ends_with("-01"),
            "{written}"
        );
        assert_eq!(TraceParent::parse(&written), Ok(traceparent));
        assert!(traceparent.is_sampled());
        assert_eq!(traceparent.trace_id_hex(), written[3..35]);
    }
    assert_ne!(first.trace_id(), second.trace_id());
    assert_ne!(first.parent_id(), second.parent_id());
}

#[test]
fn a_child_keeps_the_trace_and_flags_and_gets_a_new_parent_id() {
    let parent =
        TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").unwrap();
    let child = parent.child();
    assert_eq!(child.trace_id(), parent.trace_id());
    assert_eq!(child.flags(), parent.flags());
    assert!(!child.is_sampled());
    assert_ne!(child.parent_id(), parent.parent_id());
    assert_ne!(child.parent_id(), parent.child().parent_id());
}

#[test]
fn traceparent_ids_are_never_all_zeros() {
    assert_eq!(
        TraceParent::new([0; 16], [1; 8], 1),
        Err(InvalidTraceParent::TraceId)
    );
    assert_eq!(
        TraceParent::new([1; 16], [0; 8], 1),
        Err(InvalidTraceParent::ParentId)
    );
    let traceparent = TraceParent::new([0xab; 16], [0x01; 8], 1).unwrap();
    assert_eq!(
        traceparent.to_string(),
        "00-abababababababababababababababab-0101010101010101-01"
    );
}

#[test]
fn prepare_continues_the_events_trace_or_starts_one() {
    let incoming: TraceParent = TRACEPARENT_EXAMPLE.parse().unwrap();
    let event = Event::new(patient_update(), json!({})).with_traceparent(incoming);
    assert_eq!(event.traceparent(), Some(incoming));
    let sent = event.prepare(None).traceparent();
    assert_eq!(sent.trace_id(), incoming.trace_id());
    assert_ne!(sent.parent_id(), incoming.parent_id());

    let untraced = Event::new(patient_update(), json!({}));
    let first = untraced.prepare(None).traceparent();
    let second = untraced.prepare(None).traceparent();
    assert_ne!(first.trace_id(), second.trace_id());
    assert!(first.is_sampled());
}

#[test]
fn to_request_is_a_post_with_exactly_the_notification_headers() {
    let event = Event::new(patient_update(), json!({"_id": "p-1"}));
    let prepared = event.prepare(Some("token".to_owned()));
    let endpoint =
        Endpoint::parse("https://Plugin.Example.com:443/hooks/patient?tenant=7").unwrap();

    let request = prepared.to_request(&endpoint);
    assert_eq!(request.method(), Method::POST);
    assert_eq!(request.uri().to_string(), endpoint.as_str());
    assert_eq!(
        request.uri().to_string(),
        "https://plugin.example.com/hooks/patient?tenant=7"
    );

    let headers = request.headers();
    assert_eq!(headers.len(), 3, "{headers:?}");
    assert_eq!(headers[CONTENT_TYPE], "application/json");
    assert_eq!(headers["hooktype"], "NOTIFICATION");
    assert_eq!(
        headers["traceparent"].to_str().unwrap(),
        prepared.traceparent().to_string()
    );
    assert!(headers.get(AUTHORIZATION).is_none());
    assert_eq!(
        (HOOKTYPE, HOOKTYPE_NOTIFICATION),
        (
            http::HeaderName::from_static("hooktype"),
            http::HeaderValue::from_static("NOTIFICATION")
        )
    );
    assert_eq!(TRACEPARENT.as_str(), "traceparent");
    assert_eq!(CONTENT_TYPE_JSON, "application/json");

    let expected = serde_json::to_vec(prepared.notification()).unwrap();
    assert_eq!(request.body().as_ref(), expected.as_slice());
    assert_eq!(prepared.body().as_ref(), expected.as_slice());
    let received: Notification = serde_json::from_slice(request.body()).unwrap();
    assert_eq!(&received, prepared.notification());
    assert_eq!(received.jwt.as_deref(), Some("token"));
}

#[test]
fn one_prepared_notification_shares_its_body_across_endpoints() {
    let prepared = Event::new(patient_update(), json!({"_id": "p-1"})).prepare(None);
    let copy = prepared.clone();
    let first = prepared.to_request(&Endpoint::parse("https://one.example.com/hook").unwrap());
    let second = copy.to_request(&Endpoint::parse("https://two.example.com/hook").unwrap());
    assert_eq!(first.body().as_ptr(), second.body().as_ptr());
    assert_eq!(first.body().as_ptr(), prepared.body().as_ptr());
    assert_eq!(first.headers(), second.headers());
    assert_ne!(first.uri(), second.uri());
}

#[test]
fn every_endpoint_renders_to_a_request_because_validation_refuses_what_http_cannot_carry() {
    // The URL standard allows `{` or `"` in a host name; RFC 3986 (and so `http`) does
    // not. Endpoint validation refuses them, which is what makes `to_request` infallible.
    for host in ["a{b.example", "a\"b.example", "a`b.example", "a}b.example"] {
        assert!(
            Endpoint::parse(&format!("https://{host}/hook")).is_err(),
            "{host}"
        );
    }
    let prepared = Event::new(patient_update(), json!({})).prepare(None);
    let endpoint = Endpoint::parse("https://xn--bcher-kva.example/p%20a?q=|x|").unwrap();
    assert_eq!(prepared.to_request(&endpoint).uri(), endpoint.as_str());
}

#[test]
fn public_types_are_send_and_sync() {
    assert_send_sync::<Event>();
    assert_send_sync::<Notification>();
    assert_send_sync::<PreparedNotification>();
    assert_send_sync::<TraceParent>();
    assert_send_sync::<InvalidTraceParent>();
}
