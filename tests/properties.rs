//! Property tests: the catalog's parsers agree with a model on any name, endpoint
//! validation is total and idempotent, the shared search evaluator agrees with a
//! brute-force model, and no request parser panics on any input. (The exhaustive
//! round trips of every catalog name are in `catalog.rs`.)
//!
//! Case counts are kept small (see [`config`]) so the whole file runs in seconds in a
//! debug build; `PROPTEST_CASES=10000 cargo test --test properties` digs deeper.

use std::cmp::Ordering;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use biot_notifications::notification::Notification;
use biot_notifications::search::{
    Direction, FilterCondition, SearchField, SearchRequest, SortField, SortOrder,
};
use biot_notifications::{
    non_public_range, Action, BiotError, Endpoint, EndpointPolicy, EntityType, EventType,
    SubscribeRequest, Subscription, SubscriptionKey, TemplateName,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use serde_json::{json, Value};
use time::OffsetDateTime;
use url::Host;
use uuid::Uuid;

/// Few cases per property, a fixed seed so that CI runs the same cases every time, and
/// no regression files written into the source tree. `PROPTEST_CASES` and
/// `PROPTEST_RNG_SEED` override the count and the seed, to dig deeper or elsewhere.
fn config(cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(cases);
    let defaults = Config::default();
    let rng_seed = match defaults.rng_seed {
        RngSeed::Random => RngSeed::Fixed(0x5eed_b107),
        chosen => chosen,
    };
    Config {
        cases,
        rng_seed,
        failure_persistence: None,
        ..defaults
    }
}

// =====================================================================================
// Catalog

/// Every catalog name with near misses around it: case changes, separators, one edit,
/// doubled or missing underscores, permission verbs.
fn near_miss_name() -> impl Strategy<Value = String> {
    let names: Vec<&'static str> = EntityType::ALL
        .iter()
        .map(|e| e.as_str())
        .chain(Action::ALL.iter().map(|a| a.as_str()))
        .chain(Action::ALL.iter().map(|a| &a.as_str()[1..]))
        .chain(["_read", "list", "_manage", "__create", "_", ""])
        .collect();
    (
        prop::sample::select(names),
        0..6usize,
        any::<prop::sample::Index>(),
        any::<char>(),
    )
        .prop_map(|(name, mutation, at, c)| {
            let chars: Vec<char> = name.chars().collect();
            let i = if chars.is_empty() {
                0
            } else {
                at.index(chars.len())
            };
            match mutation {
                0 => name.to_owned(),
                1 => name.to_uppercase(),
                2 => format!("_{name}"),
                3 => name.replace('-', "_"),
                4 => chars
                    .iter()
                    .enumerate()
                    .filter(|&(j, _)| j != i)
                    .map(|(_, c)| c)
                    .collect(),
                _ => {
                    let mut chars = chars;
                    chars.insert(i, c);
                    chars.into_iter().collect()
                }
            }
        })
}

fn any_name() -> impl Strategy<Value = String> {
    prop_oneof![near_miss_name(), any::<String>(), "[a-zA-Z_-]{0,24}"]
}

/// Whether `s` is an action's canonical or bare wire name, by the documented rule.
fn model_action(s: &str) -> Option<Action> {
    Action::ALL
        .iter()
        .copied()
        .find(|a| a.as_str() == s || &a.as_str()[1..] == s)
}

#[test]
fn every_valid_pair_parses_in_both_action_forms_and_no_other_pair_does() {
    let mut valid = 0;
    for &entity in EntityType::ALL {
        for &action in Action::ALL {
            let built = EventType::new(entity, action);
            let wire = action.as_str();
            let parsed = [
                EventType::parse(entity.as_str(), wire),
                EventType::parse(entity.as_str(), &wire[1..]),
            ];
            if entity.supports(action) {
                valid += 1;
                let event = built.unwrap();
                assert_eq!((event.entity_type(), event.action()), (entity, action));
                assert_eq!(event.to_string(), format!("{entity}/{action}"));
                assert_eq!(EventType::try_from((entity, action)).unwrap(), event);
                assert_eq!(<(EntityType, Action)>::from(event), (entity, action));
                for parsed in parsed {
                    assert_eq!(parsed.unwrap(), event);
                }
            } else {
                assert_eq!(built.unwrap_err().code(), "INVALID_ACTION_NAME");
                for parsed in parsed {
                    assert_eq!(parsed.unwrap_err().code(), "INVALID_ACTION_NAME");
                }
            }
        }
    }
    assert_eq!(valid, EventType::COUNT);
    assert_eq!(EventType::all().count(), EventType::COUNT);
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn any_string_given_to_entity_type_parse_is_a_value_or_an_invalid_entity_type(s in any_name()) {
        let expected = EntityType::ALL.iter().copied().find(|e| e.as_str() == s);
        for result in [EntityType::parse(&s), s.parse(), EntityType::try_from(s.as_str())] {
            match (result, expected) {
                (Ok(got), Some(expected)) => prop_assert_eq!(got, expected),
                (Err(error), None) => {
                    prop_assert_eq!(error.code(), "INVALID_ENTITY_TYPE_NAME");
                    prop_assert_eq!(error.status(), 400);
                    assert_message_is_bounded(&error, &s);
                }
                (got, expected) => prop_assert!(false, "{s:?}: got {got:?}, expected {expected:?}"),
            }
        }
        // serde agrees with parse.
        let json = serde_json::to_string(&s).unwrap();
        prop_assert_eq!(serde_json::from_str::<EntityType>(&json).ok(), expected);
    }

    #[test]
    fn any_string_given_to_action_parse_is_a_value_or_an_invalid_action(s in any_name()) {
        let expected = model_action(&s);
        for result in [Action::parse(&s), s.parse(), Action::try_from(s.as_str())] {
            match (result, expected) {
                (Ok(got), Some(expected)) => prop_assert_eq!(got, expected),
                (Err(error), None) => {
                    prop_assert_eq!(error.code(), "INVALID_ACTION_NAME");
                    assert_message_is_bounded(&error, &s);
                }
                (got, expected) => prop_assert!(false, "{s:?}: got {got:?}, expected {expected:?}"),
            }
        }
        let json = serde_json::to_string(&s).unwrap();
        prop_assert_eq!(serde_json::from_str::<Action>(&json).ok(), expected);
    }

    #[test]
    fn any_pair_given_to_event_type_parse_is_a_valid_pair_or_names_the_first_bad_half(
        entity in any_name(),
        action in any_name(),
    ) {
        let known_entity = EntityType::ALL.iter().copied().find(|e| e.as_str() == entity);
        let expected = known_entity.zip(model_action(&action)).filter(|(e, a)| e.supports(*a));
        match (EventType::parse(&entity, &action), known_entity, expected) {
            (Ok(event), _, Some((e, a))) => {
                prop_assert_eq!((event.entity_type(), event.action()), (e, a));
            }
            (Err(error), None, _) => {
                prop_assert_eq!(error.code(), "INVALID_ENTITY_TYPE_NAME");
                assert_message_is_bounded(&error, &entity);
            }
            (Err(error), Some(_), None) => {
                prop_assert_eq!(error.code(), "INVALID_ACTION_NAME");
                assert_message_is_bounded(&error, &action);
            }
            (got, _, expected) => {
                prop_assert!(false, "({entity:?}, {action:?}): got {got:?}, expected {expected:?}");
            }
        }
    }
}

/// An error about hostile input stays small: messages and details echo a bounded prefix.
#[track_caller]
fn assert_message_is_bounded(error: &impl BiotError, input: &str) {
    // The longest catalog message lists every action (~400 bytes); the echo is 256
    // characters of at most 4 bytes each.
    let limit = 2_000 + 4 * 256;
    let message = error.to_string();
    assert!(
        message.len() <= limit,
        "{} bytes of message for {} bytes of input",
        message.len(),
        input.len()
    );
    let details = serde_json::to_string(&error.details()).unwrap();
    assert!(
        details.len() <= 2 * limit,
        "{} bytes of details",
        details.len()
    );
}

// =====================================================================================
// Endpoints

/// A dotted, short, decimal, octal or hex spelling of an IPv4 address, as the URL
/// standard reads them: 1 to 4 parts, the last one taking the remaining bytes.
fn ipv4_spelling() -> impl Strategy<Value = (Ipv4Addr, String)> {
    (
        any::<u32>(),
        1..=4usize,
        prop::collection::vec(0..4u8, 4),
        any::<bool>(),
    )
        .prop_map(|(bits, parts, radixes, trailing_dot)| {
            let bytes = bits.to_be_bytes();
            // The first `parts - 1` parts are one byte each; the last is the rest.
            let mut values: Vec<u64> = bytes[..parts - 1].iter().map(|&b| u64::from(b)).collect();
            let rest = bytes[parts - 1..]
                .iter()
                .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
            values.push(rest);
            let spelled: Vec<String> = values
                .iter()
                .zip(&radixes)
                .map(|(&value, &radix)| match radix {
                    0 => value.to_string(),
                    1 => format!("0x{value:x}"),
                    2 => format!("0X{value:X}"),
                    _ => format!("0{value:o}"),
                })
                .collect();
            let mut text = spelled.join(".");
            if trailing_dot {
                text.push('.');
            }
            (Ipv4Addr::from(bits), text)
        })
}

/// An IPv6 address spelled compressed, in full, upper-cased, or with an embedded IPv4
/// tail; biased towards the ranges that embed IPv4 addresses.
fn ipv6_spelling() -> impl Strategy<Value = (Ipv6Addr, String)> {
    let address = prop_oneof![
        any::<u128>().prop_map(Ipv6Addr::from),
        any::<u32>().prop_map(|v4| Ipv4Addr::from(v4).to_ipv6_mapped()),
        any::<u32>().prop_map(|v4| Ipv6Addr::from(u128::from(v4))),
        any::<u32>().prop_map(|v4| Ipv6Addr::from((0x0064_ff9b_u128 << 96) | u128::from(v4))),
        any::<u32>().prop_map(|v4| Ipv6Addr::from((0x2002_u128 << 112) | (u128::from(v4) << 80))),
        (0..128u32, any::<u128>()).prop_map(|(shift, bits)| Ipv6Addr::from(bits >> shift)),
    ];
    (address, 0..4u8).prop_map(|(address, form)| {
        let segments = address.segments();
        let text = match form {
            0 => address.to_string(),
            1 => segments
                .iter()
                .map(|s| format!("{s:04x}"))
                .collect::<Vec<_>>()
                .join(":"),
            2 => address.to_string().to_uppercase(),
            _ => {
                let [a, b, c, d] = (address.to_bits() as u32).to_be_bytes();
                let head: Vec<String> = segments[..6].iter().map(|s| format!("{s:x}")).collect();
                format!("{}:{a}.{b}.{c}.{d}", head.join(":"))
            }
        };
        (address, text)
    })
}

/// Hosts an attacker or a careless plugin might write.
fn host_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-zA-Z0-9_-]{1,10}(\\.[a-zA-Z0-9_-]{1,10}){0,3}\\.?",
        2 => ipv4_spelling().prop_map(|(_, text)| text),
        2 => ipv6_spelling().prop_map(|(_, text)| format!("[{text}]")),
        1 => ipv6_spelling().prop_map(|(_, text)| text),
        1 => ipv6_spelling().prop_map(|(_, text)| format!("[{text}%25eth0]")),
        2 => prop::sample::select(vec![
            "localhost",
            "LocalHost.",
            "bücher.example",
            "xn--bcher-kva.example",
            "例え.テスト",
            "ex%61mple.com",
            "%31%32%37.0.0.1",
            "127.0.0.1%00",
            "exa mple.com",
            "１２７.０.０.１",
            "a..b",
            ".",
            "",
            "[]",
            "[::1",
            "::1]",
            "%5B::1%5D",
            "a@b",
            "metadata.google.internal",
            "0",
            "0x",
            "256.256.256.256",
            "4294967296",
        ])
        .prop_map(str::to_owned),
        // Percent-encode a random subset of a plain host's characters.
        1 => ("[a-z0-9.]{1,12}", any::<u32>()).prop_map(|(host, mask)| host
            .chars()
            .enumerate()
            .map(|(i, c)| if (mask >> (i % 32)) & 1 == 1 {
                format!("%{:02X}", c as u32)
            } else {
                c.to_string()
            })
            .collect()),
    ]
}

/// Usually one of `usual`, sometimes one of `unusual`: pieces that are each valid most
/// of the time, so that a combination of several still often is.
fn mostly(usual: &[&'static str], unusual: &[&'static str]) -> BoxedStrategy<&'static str> {
    prop_oneof![
        9 => prop::sample::select(usual.to_vec()),
        1 => prop::sample::select(unusual.to_vec()),
    ]
    .boxed()
}

/// Strings shaped like URLs, built from pieces that each exercise a rule: scheme,
/// separators, user-info, host forms, port, path, query, fragment, stray characters.
fn url_shaped() -> impl Strategy<Value = String> {
    let scheme = mostly(
        &["https", "http", "HTTPS", "HtTp"],
        &[
            "ftp",
            "file",
            "gopher",
            "data",
            "javascript",
            "ws",
            "",
            "h ttps",
            "https+unix",
        ],
    );
    let separator = mostly(&["://"], &[":", ":/", ":///", ":\\\\", "://\\", ":\\/"]);
    let user_info = mostly(
        &[""],
        &[
            "user@",
            "user:pw@",
            "@",
            ":@",
            "a%40b@",
            "good.example@",
            "user:@",
        ],
    );
    let port = mostly(
        &["", ":443", ":80", ":8443", ":65535"],
        &[":", ":0", ":65536", ":99999", ":-1", ":abc"],
    );
    let path = mostly(
        &[
            "",
            "/",
            "/hook",
            "/a/../b",
            "/%2e%2e/x",
            "/@x",
            "/ä",
            "//x",
            "/;p",
            "\\a",
        ],
        &["/x y", "/%00", "/a\u{0}b"],
    );
    let query = mostly(&["", "?", "?a=b", "?@x", "?ü=1"], &["?x=%zz", "?a b"]);
    let fragment = mostly(&[""], &["#", "#x", "#@evil.example"]);
    let stray = prop::option::weighted(
        0.05,
        (
            prop::sample::select(vec![
                "\0", "\t", "\n", "\r", " ", "\u{7f}", "\u{85}", "\u{a0}", "\u{200b}", "\u{3000}",
                "\u{feff}", "%", "\\", "[", "]", "@", "#", "?",
            ]),
            any::<prop::sample::Index>(),
        ),
    );
    (
        scheme,
        separator,
        user_info,
        host_piece(),
        port,
        path,
        query,
        fragment,
        stray,
    )
        .prop_map(
            |(scheme, separator, user_info, host, port, path, query, fragment, stray)| {
                let mut url =
                    format!("{scheme}{separator}{user_info}{host}{port}{path}{query}{fragment}");
                if let Some((piece, at)) = stray {
                    let mut at = at.index(url.len() + 1);
                    while !url.is_char_boundary(at) {
                        at -= 1;
                    }
                    url.insert_str(at, piece);
                }
                url
            },
        )
}

fn any_endpoint_input() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => url_shaped(),
        1 => any::<String>(),
        1 => "https://[ -~]{0,40}",
    ]
}

/// The policies whose verdicts must not depend on the spelling of an endpoint.
fn policies() -> [(&'static str, EndpointPolicy); 2] {
    [
        ("default", EndpointPolicy::default()),
        ("local_development", EndpointPolicy::local_development()),
    ]
}

/// A verdict comparable across inputs: accepted, or the reason's code (errors echo
/// the input, so their messages differ).
fn verdict(policy: &EndpointPolicy, input: &str) -> Result<(), &'static str> {
    match policy.validate(input) {
        Ok(_) => Ok(()),
        Err(refused) => Err(refused.reason().reason_code()),
    }
}

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn endpoint_validation_never_panics_and_a_normalised_endpoint_parses_to_itself(
        input in any_endpoint_input(),
    ) {
        let parsed = Endpoint::parse(&input);
        for (name, policy) in policies() {
            let validated = policy.validate(&input);
            if let Err(error) = &validated {
                prop_assert_eq!(error.code(), "INVALID_ENDPOINT");
                prop_assert_eq!(error.status(), 400);
            }
            // A policy only ever narrows what parses.
            prop_assert!(validated.is_err() || parsed.is_ok(), "{}: {:?}", name, input);
        }
        let Ok(endpoint) = parsed else {
            return Ok(());
        };
        let normalised = endpoint.as_str();
        let reparsed = Endpoint::parse(normalised);
        prop_assert_eq!(reparsed.as_ref(), Ok(&endpoint), "{:?}", input);
        let from_str = normalised.parse::<Endpoint>();
        prop_assert_eq!(from_str.as_ref(), Ok(&endpoint));
        prop_assert_eq!(endpoint.to_string(), normalised);
        let url = endpoint.url();
        prop_assert_eq!(url.as_str(), normalised);
        prop_assert_eq!(endpoint.to_uri().to_string(), normalised);
        let json = serde_json::to_string(&endpoint).unwrap();
        prop_assert_eq!(serde_json::from_str::<Endpoint>(&json).unwrap(), endpoint.clone());
        // The typed host agrees with the URL standard's reading of the normalised form.
        prop_assert_eq!(Some(endpoint.host()), url.host(), "{:?}", input);
        prop_assert_eq!(endpoint.scheme(), url.scheme());
        for (name, policy) in policies() {
            prop_assert_eq!(
                verdict(&policy, &input),
                verdict(&policy, normalised),
                "{} judged {:?} and its normalised form {:?} differently",
                name,
                input,
                normalised
            );
            prop_assert_eq!(
                policy.check(&endpoint).map_err(|r| r.reason_code()),
                verdict(&policy, normalised)
            );
        }
    }

    #[test]
    fn every_numeric_spelling_of_an_ipv4_address_is_judged_as_that_address(
        (address, spelling) in ipv4_spelling(),
    ) {
        let input = format!("https://{spelling}/hook");
        let endpoint = match Endpoint::parse(&input) {
            Ok(endpoint) => endpoint,
            Err(e) => return Err(TestCaseError::fail(format!("{input:?} did not parse: {e}"))),
        };
        prop_assert_eq!(endpoint.host(), Host::<&str>::Ipv4(address), "{:?}", input);
        prop_assert_eq!(endpoint.host_str(), address.to_string());
        let strict = EndpointPolicy::default();
        prop_assert_eq!(
            strict.check(&endpoint).is_ok(),
            non_public_range(IpAddr::V4(address)).is_none(),
            "{:?}",
            input
        );
        prop_assert_eq!(verdict(&strict, &input), verdict(&strict, endpoint.as_str()));
    }

    #[test]
    fn every_spelling_of_an_ipv6_address_is_judged_as_that_address(
        (address, spelling) in ipv6_spelling(),
    ) {
        let input = format!("https://[{spelling}]:8443/hook");
        let endpoint = match Endpoint::parse(&input) {
            Ok(endpoint) => endpoint,
            Err(e) => return Err(TestCaseError::fail(format!("{input:?} did not parse: {e}"))),
        };
        prop_assert_eq!(endpoint.host(), Host::<&str>::Ipv6(address), "{:?}", input);
        let strict = EndpointPolicy::default();
        prop_assert_eq!(
            strict.check(&endpoint).is_ok(),
            non_public_range(IpAddr::V6(address)).is_none(),
            "{:?}",
            input
        );
        prop_assert_eq!(verdict(&strict, &input), verdict(&strict, endpoint.as_str()));
    }
}

// =====================================================================================
// Search: the shared evaluator against a brute-force model
//
// The model is written from the documentation of `FilterCondition`, `SearchRequest`
// and `SearchRequest::compare`, using the catalog and endpoint parsers for "the
// canonical form of a field" and nothing of the evaluator.

const ENDPOINTS: &[&str] = &[
    "https://a.example.com/patients",
    "https://A.Example.com:443/patients",
    "https://b.example.com/devices?x=1",
    "https://plugin.example.org/Hooks/Create",
    "https://xn--bcher-kva.example/",
    "https://198.51.100.7:8443/",
];

const TEMPLATES: &[&str] = &[
    "adultPatient",
    "ADULTPATIENT",
    "cuff",
    "Ünïcode",
    "ünïcode x",
];

const TIMES: &[i64] = &[0, 60, 60, 3_600, 86_400];

fn subscriptions() -> impl Strategy<Value = Vec<Subscription>> {
    let all_pairs: Vec<EventType> = EventType::all().collect();
    // A few pairs often, so sort keys tie; any pair sometimes.
    let few_pairs: Vec<EventType> = [
        ("patient", "_create"),
        ("patient", "_delete"),
        ("device", "_create"),
        ("caregiver", "_incomingSms"),
    ]
    .iter()
    .map(|(e, a)| EventType::parse(e, a).unwrap())
    .collect();
    let one = (
        prop_oneof![
            3 => prop::sample::select(few_pairs),
            1 => prop::sample::select(all_pairs),
        ],
        prop::sample::select(ENDPOINTS),
        prop::option::of(prop::sample::select(TEMPLATES)),
        prop::sample::select(TIMES),
        any::<u64>(),
    );
    prop::collection::vec(one, 0..40).prop_map(|rows| {
        rows.into_iter()
            .enumerate()
            .map(|(i, (event_type, endpoint, template, seconds, high))| {
                let key = SubscriptionKey::new(
                    event_type,
                    Endpoint::parse(endpoint).unwrap(),
                    template.map(|t| TemplateName::new(t).unwrap()),
                );
                // Unique ids (the low bits), in random order (the high bits).
                let id = Uuid::from_u128((u128::from(high) << 64) | i as u128);
                let created = OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(seconds);
                Subscription::from_parts(id, key, created)
            })
            .collect()
    })
}

/// A filter value for `field`: usually one that matches some subscription in some
/// spelling, sometimes one that equals nothing.
fn filter_value(field: SearchField, ids: Vec<Uuid>) -> BoxedStrategy<String> {
    match field {
        SearchField::Id => {
            let known = if ids.is_empty() {
                vec![Uuid::nil()]
            } else {
                ids
            };
            prop_oneof![
                3 => (prop::sample::select(known), 0..5u8).prop_map(|(id, form)| match form {
                    0 => id.hyphenated().to_string(),
                    1 => id.hyphenated().to_string().to_uppercase(),
                    2 => id.simple().to_string(),
                    3 => id.braced().to_string(),
                    _ => id.urn().to_string(),
                }),
                1 => any::<u128>().prop_map(|n| Uuid::from_u128(n).to_string()),
                1 => prop::sample::select(vec!["", "not-a-uuid", "0000"]).prop_map(str::to_owned),
            ]
            .boxed()
        }
        SearchField::EntityTypeName => prop_oneof![
            3 => prop::sample::select(EntityType::ALL).prop_map(|e| e.as_str().to_owned()),
            1 => prop::sample::select(vec!["Patient", "usageSession", "", "_patient"])
                .prop_map(str::to_owned),
        ]
        .boxed(),
        SearchField::ActionName => prop_oneof![
            3 => (prop::sample::select(Action::ALL), any::<bool>()).prop_map(|(a, bare)| {
                let wire = a.as_str();
                if bare { wire[1..].to_owned() } else { wire.to_owned() }
            }),
            1 => prop::sample::select(vec!["_read", "CREATE", "", "__create"])
                .prop_map(str::to_owned),
        ]
        .boxed(),
        SearchField::Endpoint => prop_oneof![
            3 => prop::sample::select(ENDPOINTS).prop_map(str::to_owned),
            1 => prop::sample::select(vec![
                "https://A.EXAMPLE.COM/patients",
                "https://b.example.com/devices",
                "a.example.com",
                "",
                "https://user@a.example.com/patients",
            ])
            .prop_map(str::to_owned),
        ]
        .boxed(),
        SearchField::TemplateName => prop_oneof![
            3 => prop::sample::select(TEMPLATES).prop_map(str::to_owned),
            1 => prop::sample::select(vec!["", "adultpatient", "none"]).prop_map(str::to_owned),
        ]
        .boxed(),
        other => panic!("the model does not know the search field {other}"),
    }
}

/// Substrings for `like` and free text: pieces of wire names, ids, endpoints and
/// templates, in any case, plus text that appears nowhere.
fn text_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "",
            "a",
            "E",
            "pat",
            "PATIENT",
            "_c",
            "create",
            "example.com",
            "HTTPS://",
            ":8443",
            "ünï",
            "ÜNÏ",
            "x",
            "-",
            "0",
            "ab",
            "cuff",
            "%",
            "_",
            "nowhere",
            "K",
        ])
        .prop_map(str::to_owned),
        "[a-f0-9-]{1,4}",
    ]
}

fn condition(field: SearchField, ids: Vec<Uuid>) -> impl Strategy<Value = FilterCondition> {
    let value = filter_value(field, ids);
    let values = prop::option::weighted(0.3, prop::collection::vec(value.clone(), 0..4));
    (
        prop::option::weighted(0.3, value.clone()),
        prop::option::weighted(0.3, value),
        values.clone(),
        values,
        prop::option::weighted(0.25, text_piece()),
        prop::option::weighted(0.15, any::<bool>()),
        prop::option::weighted(0.15, any::<bool>()),
    )
        .prop_map(|(eq, not, r#in, not_in, like, is_null, is_not_null)| {
            // Non-exhaustive: built from the empty condition, field by field.
            let mut condition = FilterCondition::default();
            condition.eq = eq;
            condition.not = not;
            condition.r#in = r#in;
            condition.not_in = not_in;
            condition.like = like;
            condition.is_null = is_null;
            condition.is_not_null = is_not_null;
            condition
        })
}

fn search_request(ids: Vec<Uuid>) -> impl Strategy<Value = SearchRequest> {
    let fields: Vec<SearchField> = SearchField::ALL.to_vec();
    let filters = prop::collection::vec(
        prop::sample::select(fields).prop_flat_map(move |field| {
            condition(field, ids.clone()).prop_map(move |c| (field, c))
        }),
        0..3,
    );
    let sort = prop::collection::vec(
        (
            prop::sample::select(SortField::ALL),
            prop::sample::select(Direction::ALL),
        )
            .prop_map(|(prop, order)| SortOrder::new(prop, order)),
        0..3,
    );
    let free_text = prop::option::weighted(
        0.3,
        prop::collection::vec(
            (
                text_piece(),
                prop::sample::select(vec![" ", "  ", "\t", "\u{3000}"]),
            ),
            0..3,
        )
        .prop_map(|terms| {
            terms
                .into_iter()
                .map(|(t, s)| format!("{t}{s}"))
                .collect::<String>()
        }),
    );
    (filters, sort, free_text, 1..=12u32, 0..4u32).prop_map(
        |(filters, sort, free_text, limit, page)| {
            let mut request = SearchRequest::new().with_limit(limit).with_page(page);
            for (field, condition) in filters {
                request = request.with_filter(field, condition);
            }
            for order in sort {
                request = request.with_sort(order);
            }
            if let Some(text) = free_text {
                request = request.with_free_text_search(text);
            }
            request
        },
    )
}

/// The wire text of a field (ids hyphenated, lower case), `None` for null.
fn model_text(s: &Subscription, field: SearchField) -> Option<String> {
    match field {
        SearchField::Id => Some(s.id().hyphenated().to_string()),
        SearchField::EntityTypeName => Some(s.event_type().entity_type().as_str().to_owned()),
        SearchField::ActionName => Some(s.event_type().action().as_str().to_owned()),
        SearchField::Endpoint => Some(s.endpoint().as_str().to_owned()),
        SearchField::TemplateName => s.template_name().map(|t| t.as_str().to_owned()),
        other => panic!("the model does not know the search field {other}"),
    }
}

/// "Values compare the way the field is stored": ids as UUIDs, names canonically,
/// endpoints normalised when they parse, templates exactly; null equals nothing.
fn model_equals(s: &Subscription, field: SearchField, value: &str) -> bool {
    match field {
        SearchField::Id => Uuid::parse_str(value).is_ok_and(|id| id == s.id()),
        SearchField::EntityTypeName => {
            EntityType::parse(value).is_ok_and(|e| e == s.event_type().entity_type())
        }
        SearchField::ActionName => Action::parse(value).is_ok_and(|a| a == s.event_type().action()),
        SearchField::Endpoint => match Endpoint::parse(value) {
            Ok(endpoint) => &endpoint == s.endpoint(),
            Err(_) => value == s.endpoint().as_str(),
        },
        SearchField::TemplateName => s.template_name().is_some_and(|t| t.as_str() == value),
        other => panic!("the model does not know the search field {other}"),
    }
}

fn model_contains(haystack: &str, needle: &str) -> bool {
    haystack.to_lowercase().contains(&needle.to_lowercase())
}

fn model_matches(request: &SearchRequest, s: &Subscription) -> bool {
    let filters_hold = request.filter().iter().all(|(&field, c)| {
        let text = model_text(s, field);
        let equals = |v: &String| model_equals(s, field, v);
        c.eq.iter().all(equals)
            && c.not.iter().all(|v| !equals(v))
            && c.r#in.iter().all(|vs| vs.iter().any(equals))
            && c.not_in.iter().all(|vs| !vs.iter().any(equals))
            && c.like
                .iter()
                .all(|t| text.as_deref().is_some_and(|x| model_contains(x, t)))
            && c.is_null.into_iter().all(|b| text.is_none() == b)
            && c.is_not_null.into_iter().all(|b| text.is_some() == b)
    });
    let terms: Vec<&str> = request
        .free_text_search()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let free_text_holds = terms.is_empty()
        || terms.iter().any(|term| {
            SearchField::ALL
                .iter()
                .filter_map(|&f| model_text(s, f))
                .any(|text| model_contains(&text, term))
        });
    filters_hold && free_text_holds
}

fn model_order(request: &SearchRequest, a: &Subscription, b: &Subscription) -> Ordering {
    for key in request.sort() {
        let (x, y) = match key.prop {
            SortField::EntityTypeName => (
                a.event_type().entity_type().as_str(),
                b.event_type().entity_type().as_str(),
            ),
            SortField::ActionName => (
                a.event_type().action().as_str(),
                b.event_type().action().as_str(),
            ),
            other => panic!("the model does not know the sort field {other}"),
        };
        let ordering = if key.order == Direction::Asc {
            x.cmp(y)
        } else {
            y.cmp(x)
        };
        if ordering != Ordering::Equal {
            return ordering;
        }
    }
    // Then newest first, then by id.
    b.created_at()
        .cmp(&a.created_at())
        .then(a.id().cmp(&b.id()))
}

fn subscriptions_and_request() -> impl Strategy<Value = (Vec<Subscription>, SearchRequest)> {
    subscriptions().prop_flat_map(|subscriptions| {
        let ids = subscriptions.iter().map(Subscription::id).collect();
        (Just(subscriptions), search_request(ids))
    })
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn the_search_evaluator_agrees_with_a_brute_force_model(
        (subscriptions, request) in subscriptions_and_request(),
    ) {
        let mut expected: Vec<&Subscription> =
            subscriptions.iter().filter(|s| model_matches(&request, s)).collect();
        expected.sort_by(|a, b| model_order(&request, a, b));
        let total = expected.len() as u64;
        let offset = usize::try_from(request.offset()).unwrap();
        let expected_page: Vec<Uuid> = expected
            .iter()
            .skip(offset)
            .take(request.limit() as usize)
            .map(|s| s.id())
            .collect();

        let page = request.evaluate(&subscriptions);
        let got: Vec<Uuid> = page.data.iter().map(Subscription::id).collect();
        prop_assert_eq!(page.total_results, total, "{:?}", request);
        prop_assert_eq!(&got, &expected_page, "{:?}", request);
        prop_assert_eq!((page.page, page.limit), (request.page(), request.limit()));
        for s in &subscriptions {
            prop_assert_eq!(request.matches(s), model_matches(&request, s), "{:?} on {:?}", request, s);
        }

        // The wire form of the request is the same request: a client's search is
        // answered as the one built in code.
        let reparsed = SearchRequest::from_query(Some(&request.to_query())).unwrap();
        prop_assert_eq!(&reparsed, &request);
        prop_assert_eq!(reparsed.evaluate(&subscriptions), page);
    }
}

// =====================================================================================
// Parsers: any bytes are a value or a clean error

/// Any JSON value, a few levels deep, with strings that look like the real thing.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        // Decimals of a few digits: serde_json's default float parsing is not exact for
        // every `f64` (its `float_roundtrip` feature is off), which is serde_json's
        // business, not the parsers'.
        (any::<i32>(), 0..6i32).prop_map(|(m, e)| Value::from(f64::from(m) / 10f64.powi(e))),
        any::<u64>().prop_map(Value::from),
        prop_oneof![
            any::<String>(),
            near_miss_name(),
            url_shaped(),
            prop::sample::select(vec![
                "2026-01-05T08:00:00.123456789Z",
                "9999-12-31T23:59:59Z",
                "0000-01-01T00:00:00+14:00",
                "SUCCESS",
                "ASC",
                "DESC",
                "entityTypeName",
                "actionName",
                "eq",
                "in",
            ])
            .prop_map(str::to_owned),
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((json_key(), inner), 0..6)
                .prop_map(|members| Value::Object(members.into_iter().collect())),
        ]
    })
}

/// Member names: the ones every parser knows, and others.
fn json_key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "entityTypeName", "actionName", "endpoint", "templateName",
            "filter", "sort", "freeTextSearch", "limit", "page",
            "id", "eq", "not", "in", "notIn", "like", "isNull", "isNotNull", "gt", "$OR",
            "prop", "order",
            "metadata", "data", "jwt", "status", "startTime", "endTime", "initiator",
            "subject", "sourceIpAddress", "traceId", "entity", "additionalData", "oldEntity",
            "_template", "name",
        ])
        .prop_map(str::to_owned),
        1 => any::<String>(),
    ]
}

/// Usually `good`, sometimes any JSON value: a member of the right type, or not.
fn usually(good: impl Strategy<Value = Value> + 'static) -> BoxedStrategy<Value> {
    prop_oneof![9 => good, 1 => json_value()].boxed()
}

fn string(text: impl Strategy<Value = String> + 'static) -> BoxedStrategy<Value> {
    text.prop_map(Value::String).boxed()
}

fn one_of(texts: &[&'static str]) -> BoxedStrategy<Value> {
    string(prop::sample::select(texts.to_vec()).prop_map(str::to_owned))
}

/// An object with each named member present most of the time, and sometimes a stray one.
fn object(members: Vec<(&'static str, BoxedStrategy<Value>)>) -> BoxedStrategy<Value> {
    let members: Vec<_> = members
        .into_iter()
        .map(|(name, value)| {
            prop::option::weighted(0.95, value.prop_map(move |v| (name.to_owned(), v)))
        })
        .collect();
    (
        members,
        prop::option::weighted(0.15, (json_key(), json_value())),
    )
        .prop_map(|(members, stray)| {
            Value::Object(members.into_iter().flatten().chain(stray).collect())
        })
        .boxed()
}

/// Bytes for a parser, shown as text when a case fails.
#[derive(Clone)]
struct Bytes(Vec<u8>);

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "b{:?}", String::from_utf8_lossy(&self.0))
    }
}

/// Bytes for a parser: arbitrary, JSON text, JSON text cut short, or JSON with a byte
/// changed.
fn body(json: impl Strategy<Value = Value> + 'static) -> impl Strategy<Value = Bytes> {
    let json = prop_oneof![4 => json.boxed(), 1 => json_value().boxed()]
        .prop_map(|v| serde_json::to_vec(&v).unwrap())
        .boxed();
    prop_oneof![
        1 => any::<Vec<u8>>(),
        12 => json.clone(),
        1 => (json.clone(), any::<prop::sample::Index>()).prop_map(|(mut bytes, at)| {
            bytes.truncate(at.index(bytes.len() + 1));
            bytes
        }),
        1 => (json, any::<prop::sample::Index>(), any::<u8>()).prop_map(|(mut bytes, at, b)| {
            if !bytes.is_empty() {
                let i = at.index(bytes.len());
                bytes[i] = b;
            }
            bytes
        }),
    ]
    .prop_map(Bytes)
}

fn subscribe_body() -> impl Strategy<Value = Bytes> {
    let entity = usually(string(prop_oneof![
        3 => prop::sample::select(EntityType::ALL).prop_map(|e| e.as_str().to_owned()),
        1 => near_miss_name(),
    ]));
    let action = usually(string(prop_oneof![
        3 => prop::sample::select(Action::ALL).prop_map(|a| a.as_str().to_owned()),
        1 => near_miss_name(),
    ]));
    let endpoint = usually(string(url_shaped()));
    let template = usually(string(prop_oneof![
        "[a-zA-Z]{1,12}",
        any::<String>(),
        Just(String::new()),
    ]));
    body(object(vec![
        ("entityTypeName", entity),
        ("actionName", action),
        ("endpoint", endpoint),
        ("templateName", template),
    ]))
}

fn search_body() -> impl Strategy<Value = Bytes> {
    let text = || {
        usually(string(prop_oneof![
            text_piece(),
            url_shaped(),
            near_miss_name()
        ]))
    };
    let texts = || {
        usually(
            prop::collection::vec(string(prop_oneof![text_piece(), near_miss_name()]), 0..4)
                .prop_map(Value::Array),
        )
    };
    let flag = || usually(any::<bool>().prop_map(Value::Bool));
    let condition = object(vec![
        ("eq", text()),
        ("not", text()),
        ("in", texts()),
        ("notIn", texts()),
        ("like", text()),
        ("isNull", flag()),
        ("isNotNull", flag()),
    ]);
    let field = prop_oneof![
        4 => prop::sample::select(SearchField::ALL).prop_map(|f| f.as_str().to_owned()),
        1 => json_key(),
    ];
    let filter = usually(
        prop::collection::vec((field, usually(condition)), 0..4)
            .prop_map(|fields| Value::Object(fields.into_iter().collect())),
    );
    let order = object(vec![
        (
            "prop",
            usually(one_of(&["entityTypeName", "actionName", "endpoint"])),
        ),
        ("order", usually(one_of(&["ASC", "DESC", "asc"]))),
    ]);
    let sort = usually(prop::collection::vec(order, 0..3).prop_map(Value::Array));
    let limit = usually(prop_oneof![
        4 => (1..=1000u32).prop_map(Value::from),
        1 => (0..2000u64).prop_map(Value::from),
    ]);
    let page = usually(any::<u32>().prop_map(Value::from));
    let free_text = usually(string(prop_oneof![text_piece(), any::<String>()]));
    body(object(vec![
        ("filter", filter),
        ("sort", sort),
        ("freeTextSearch", free_text),
        ("limit", limit),
        ("page", page),
    ]))
}

fn notification_body() -> impl Strategy<Value = Bytes> {
    let time = || {
        usually(one_of(&[
            "2026-01-05T08:00:00.123456789Z",
            "2026-01-05T08:00:00Z",
            "2026-01-05T10:00:00.5+02:00",
            "9999-12-31T23:59:59.999999999Z",
            "0000-01-01T00:00:00Z",
            "2026-01-05T08:00:00-00:30",
        ]))
    };
    let subject = object(vec![
        ("id", usually(string(any::<String>()))),
        ("name", json_value().boxed()),
    ]);
    let initiator = object(vec![
        ("subject", usually(subject)),
        (
            "sourceIpAddress",
            usually(one_of(&["198.51.100.7:50123", ""])),
        ),
        ("kind", json_value().boxed()),
    ]);
    let metadata = object(vec![
        (
            "entityTypeName",
            usually(string(
                prop::sample::select(EntityType::ALL).prop_map(|e| e.as_str().to_owned()),
            )),
        ),
        (
            "actionName",
            usually(string(
                prop::sample::select(Action::ALL).prop_map(|a| a.as_str()[1..].to_owned()),
            )),
        ),
        ("status", usually(one_of(&["SUCCESS", "FAILURE", ""]))),
        ("startTime", time()),
        ("endTime", time()),
        ("initiator", usually(initiator)),
        ("traceId", usually(string(any::<String>()))),
    ]);
    let data = object(vec![
        ("entity", json_value().boxed()),
        ("additionalData", json_value().boxed()),
        ("more", json_value().boxed()),
    ]);
    body(object(vec![
        ("metadata", usually(metadata)),
        ("data", usually(data)),
        ("jwt", usually(string(any::<String>()))),
    ]))
}

/// The codes a request parser may answer with: all client errors.
const SUBSCRIBE_PARSE_CODES: &[&str] = &[
    "MALFORMED_REQUEST_BODY",
    "ATTRIBUTE_IS_MANDATORY",
    "INVALID_ATTRIBUTE",
];

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn any_bytes_given_to_subscribe_request_from_json_are_a_request_or_a_client_error(
        Bytes(bytes) in subscribe_body(),
    ) {
        match SubscribeRequest::from_json(&bytes) {
            Ok(request) => {
                // Validation of whatever was read is total as well.
                validate_every_way(&request);
                // What was read is what the body said. (Members the parser skips are
                // not checked to be UTF-8, so a body serde_json's `Value` refuses can
                // be accepted; then there is nothing to compare with.)
                let Ok(value) = serde_json::from_slice::<Value>(&bytes) else {
                    return Ok(());
                };
                prop_assert_eq!(&value["entityTypeName"], &json!(request.entity_type_name));
                prop_assert_eq!(&value["actionName"], &json!(request.action_name));
                prop_assert_eq!(&value["endpoint"], &json!(request.endpoint));
                let template = request.template_name.map(Value::String);
                prop_assert_eq!(
                    value.get("templateName").filter(|v| !v.is_null()),
                    template.as_ref()
                );
            }
            Err(error) => {
                prop_assert!(SUBSCRIBE_PARSE_CODES.contains(&error.code()), "{:?}", error);
                prop_assert_eq!(error.status(), 400);
                assert_message_is_bounded(&error, "");
            }
        }
    }

    #[test]
    fn any_bytes_given_to_search_request_from_json_are_a_request_or_a_client_error(
        Bytes(bytes) in search_body(),
    ) {
        match SearchRequest::from_json(&bytes) {
            Ok(request) => {
                let again = SearchRequest::from_json(&serde_json::to_vec(&request).unwrap());
                prop_assert_eq!(again.as_ref().ok(), Some(&request));
                // Evaluating any parsed request is total too.
                let _ = request.evaluate(&Vec::<Subscription>::new());
            }
            Err(error) => {
                prop_assert_eq!(error.code(), "INVALID_SEARCH_REQUEST");
                prop_assert_eq!(error.status(), 400);
                assert_message_is_bounded(&error, "");
            }
        }
    }

    #[test]
    fn any_query_given_to_search_request_from_query_is_a_request_or_a_client_error(
        query in prop_oneof![
            any::<String>(),
            search_body().prop_map(|Bytes(bytes)| {
                let json = String::from_utf8_lossy(&bytes).into_owned();
                url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("searchRequest", &json)
                    .finish()
            }),
            "[?&=%a-zA-Z0-9{}\":\\[\\]]{0,40}",
        ],
    ) {
        match SearchRequest::from_query(Some(&query)) {
            Ok(_) => {}
            Err(error) => {
                prop_assert_eq!(error.code(), "INVALID_SEARCH_REQUEST");
                assert_message_is_bounded(&error, "");
            }
        }
    }

    #[test]
    fn any_bytes_given_to_the_notification_deserializer_are_a_notification_or_an_error(
        Bytes(bytes) in notification_body(),
    ) {
        if let Ok(notification) = serde_json::from_slice::<Notification>(&bytes) {
            // What a plugin parsed, it can write back and parse again unchanged.
            let written = serde_json::to_vec(&notification).unwrap();
            let again: Notification = serde_json::from_slice(&written).unwrap();
            prop_assert_eq!(again, notification.clone());
            let _ = notification.event_type();
            let _ = notification.template_name();
            let _ = format!("{notification:?}");
        }
    }
}

/// Validates a parsed request every way the crate does; each must return, not panic.
fn validate_every_way(request: &SubscribeRequest) {
    for result in [
        request.validate(&EndpointPolicy::default()),
        request.validate(&EndpointPolicy::local_development()),
        request.key(),
    ] {
        if let Err(error) = result {
            assert!(error.is_client_error(), "{error:?}");
        }
    }
}

#[test]
fn a_subscribe_body_that_is_not_utf8_is_malformed_even_where_the_parser_skips() {
    // RFC 8259 §8.1: JSON text is UTF-8. The 0xFF sits in a member the parser ignores.
    let mut body = br#"{"entityTypeName":"patient","actionName":"_create","endpoint":"https://plugin.example.com/","note":"?"}"#.to_vec();
    let at = body.iter().rposition(|&b| b == b'?').unwrap();
    body[at] = 0xff;
    assert!(
        serde_json::from_slice::<Value>(&body).is_err(),
        "the body is not JSON"
    );
    let parsed = SubscribeRequest::from_json(&body);
    assert_eq!(
        parsed.as_ref().map_err(BiotError::code).err(),
        Some("MALFORMED_REQUEST_BODY"),
        "{parsed:?}"
    );
}
