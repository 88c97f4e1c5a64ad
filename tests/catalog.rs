//! The catalog against CONTRACT.md's table: exactly 60 valid pairs, canonical wire
//! names, both spellings of actions accepted, helpful errors.

use std::collections::BTreeSet;

use biot_notifications::{Action, BiotError, CatalogError, EntityType, EventType};

mod common;
use common::{assert_copy, assert_send_sync};

/// CONTRACT.md's table, verbatim.
const CONTRACT: &[(&str, &str)] = &[
    ("caregiver", "_create _delete _incomingSms _login _logout _update _updateEnabledState"),
    ("command", "_create _delete _start _stop _update"),
    ("device", "_activateCertificate _command _create _delete _generateCertificate _revokeCertificate _update"),
    ("device-alert", "_clear _create _delete _update"),
    ("generic-entity", "_create _delete _update"),
    ("organization", "_create _delete _update _updateAdmin"),
    ("organization-user", "_create _delete _incomingSms _login _logout _update _updateEnabledState"),
    ("patient", "_create _delete _incomingSms _login _logout _saveMeasurement _saveMeasurementBulk _update _updateEnabledState"),
    ("patient-alert", "_clear _create _delete _update"),
    ("registration-code", "_create _delete _update"),
    ("usage-session", "_create _delete _remotePause _remoteResume _remoteStart _remoteStop _update"),
];

fn contract_pairs() -> BTreeSet<(String, String)> {
    CONTRACT
        .iter()
        .flat_map(|(entity, actions)| {
            actions
                .split_whitespace()
                .map(move |action| (entity.to_string(), action.to_string()))
        })
        .collect()
}

#[test]
fn exactly_the_contract_pairs_are_valid_among_all_11_by_21() {
    assert_eq!(EntityType::ALL.len(), 11);
    assert_eq!(Action::ALL.len(), 21);
    let expected = contract_pairs();
    assert_eq!(expected.len(), 60);

    let mut valid = BTreeSet::new();
    for &entity in EntityType::ALL {
        for &action in Action::ALL {
            let wire = (entity.to_string(), action.to_string());
            let checked = EventType::new(entity, action);
            let parsed = EventType::parse(entity.as_str(), action.as_str());
            assert_eq!(checked.is_ok(), parsed.is_ok(), "{wire:?}");
            assert_eq!(entity.supports(action), checked.is_ok(), "{wire:?}");
            match checked {
                Ok(event) => {
                    assert_eq!(event.entity_type(), entity);
                    assert_eq!(event.action(), action);
                    valid.insert(wire);
                }
                Err(err) => {
                    assert_eq!(err.code(), "INVALID_ACTION_NAME", "{wire:?}");
                    let valid_names: Vec<&str> =
                        entity.actions().iter().map(|a| a.as_str()).collect();
                    assert_eq!(
                        err.details()["validActionNames"],
                        serde_json::json!(valid_names),
                        "{wire:?}"
                    );
                }
            }
        }
    }
    assert_eq!(valid, expected);

    let listed: BTreeSet<(String, String)> = EventType::all()
        .map(|e| (e.entity_type().to_string(), e.action().to_string()))
        .collect();
    assert_eq!(listed, expected);
    assert_eq!(EventType::all().count(), EventType::COUNT);
}

#[test]
fn every_entity_type_round_trips_through_display_fromstr_and_serde() {
    for &entity in EntityType::ALL {
        let wire = entity.as_str();
        assert_eq!(entity.to_string(), wire);
        assert_eq!(wire.parse::<EntityType>().unwrap(), entity);
        assert_eq!(EntityType::try_from(wire).unwrap(), entity);
        assert_eq!(EntityType::parse(wire).unwrap(), entity);
        let json = serde_json::to_string(&entity).unwrap();
        assert_eq!(json, format!("\"{wire}\""));
        assert_eq!(serde_json::from_str::<EntityType>(&json).unwrap(), entity);
    }
}

#[test]
fn every_action_round_trips_in_its_underscore_and_bare_forms() {
    for &action in Action::ALL {
        let wire = action.as_str();
        let bare = wire
            .strip_prefix('_')
            .expect("canonical names start with `_`");
        assert_eq!(action.to_string(), wire);
        for spelling in [wire, bare] {
            assert_eq!(spelling.parse::<Action>().unwrap(), action, "{spelling}");
            assert_eq!(Action::try_from(spelling).unwrap(), action, "{spelling}");
            let json = serde_json::to_string(spelling).unwrap();
            assert_eq!(
                serde_json::from_str::<Action>(&json).unwrap(),
                action,
                "{spelling}"
            );
        }
        // Whatever was read, the underscore form is written.
        assert_eq!(
            serde_json::to_string(&action).unwrap(),
            format!("\"{wire}\"")
        );
    }
}

#[test]
fn every_valid_pair_parses_from_bare_and_underscore_action_names() {
    for (entity, action) in contract_pairs() {
        let canonical = EventType::parse(&entity, &action).unwrap();
        let bare = EventType::parse(&entity, &action[1..]).unwrap();
        assert_eq!(canonical, bare);
        assert_eq!(canonical.to_string(), format!("{entity}/{action}"));
    }
}

#[test]
fn near_misses_of_entity_types_get_a_did_you_mean_hint() {
    let cases = [
        ("usageSession", EntityType::UsageSession),
        ("usage_session", EntityType::UsageSession),
        ("Patient", EntityType::Patient),
        ("PATIENT", EntityType::Patient),
        ("patinet", EntityType::Patient),
        ("devce", EntityType::Device),
        ("deviceAlert", EntityType::DeviceAlert),
        ("organisation", EntityType::Organization),
        ("registration-cod", EntityType::RegistrationCode),
    ];
    for (input, meant) in cases {
        let err = input.parse::<EntityType>().unwrap_err();
        assert_eq!(err.code(), "INVALID_ENTITY_TYPE_NAME", "{input}");
        let message = err.to_string();
        assert!(message.contains(&format!("`{input}`")), "{message}");
        assert!(
            message.contains(&format!("did you mean `{meant}`?")),
            "{message}"
        );
        let details = err.details();
        assert_eq!(details["invalidEntityType"], input);
        assert_eq!(details["validEntityTypes"].as_array().unwrap().len(), 11);
    }
}

#[test]
fn unknown_entity_types_list_the_valid_ones_without_a_wild_guess() {
    for input in ["spaceship", "", "x", &"a".repeat(10_000)] {
        let err = input.parse::<EntityType>().unwrap_err();
        let message = err.to_string();
        assert!(!message.contains("did you mean"), "{message}");
        for entity in EntityType::ALL {
            assert!(message.contains(entity.as_str()), "{message}");
        }
        assert!(message.len() < 1024, "long input is not echoed in full");
    }
}

#[test]
fn near_misses_of_actions_get_a_hint() {
    let cases = [
        ("_Create", Action::Create),
        ("CREATE", Action::Create),
        ("_creat", Action::Create),
        ("revoke_certificate", Action::RevokeCertificate),
        ("_remotepause", Action::RemotePause),
        ("incomingSMS", Action::IncomingSms),
    ];
    for (input, meant) in cases {
        let err = input.parse::<Action>().unwrap_err();
        assert_eq!(err.code(), "INVALID_ACTION_NAME", "{input}");
        assert!(
            err.to_string()
                .contains(&format!("did you mean `{meant}`?")),
            "{input}: {err}"
        );
    }
}

#[test]
fn actions_of_another_entity_type_and_permission_verbs_list_the_valid_actions() {
    let cases = [
        ("device", "_login"),
        ("device", "login"),
        ("patient", "_read"),
        ("patient", "_list"),
        ("usage-session", "_view"),
        ("organization", "_manage"),
        ("caregiver", "_assign"),
        ("command", "_operate"),
        ("device-alert", "_monitor"),
        ("generic-entity", "_clear"),
    ];
    for (entity, action) in cases {
        let err = EventType::parse(entity, action).unwrap_err();
        assert!(
            matches!(err, CatalogError::InvalidAction { .. }),
            "{entity} {action}"
        );
        assert_eq!(err.code(), "INVALID_ACTION_NAME");
        let entity_type: EntityType = entity.parse().unwrap();
        let message = err.to_string();
        for valid in entity_type.actions() {
            assert!(message.contains(valid.as_str()), "{message}");
        }
        let details = err.details();
        assert_eq!(details["invalidActionName"], action);
        assert_eq!(details["entityTypeName"], entity);
        assert_eq!(
            details["validActionNames"].as_array().unwrap().len(),
            entity_type.actions().len()
        );
        assert!(!message.contains("did you mean"), "{message}");
    }
}

#[test]
fn a_near_miss_is_matched_against_the_entity_types_own_actions() {
    let err = EventType::parse("usage-session", "_remotPause").unwrap_err();
    assert!(
        err.to_string().contains("did you mean `_remotePause`?"),
        "{err}"
    );
}

#[test]
fn public_catalog_types_are_send_sync_and_copy() {
    assert_send_sync::<EntityType>();
    assert_send_sync::<Action>();
    assert_send_sync::<EventType>();
    assert_copy::<EntityType>();
    assert_copy::<Action>();
    assert_copy::<EventType>();
}
