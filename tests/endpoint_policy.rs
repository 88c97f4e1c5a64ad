//! Which endpoints the dispatcher accepts, through the public API only.

use std::net::IpAddr;

use biot_notifications::{
    non_public_range, AddressRange, BiotError, Endpoint, EndpointPolicy, EndpointRejection,
};

/// What validating one input should give under one policy.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expected {
    /// Accepted, with this normalised form.
    Accepted(String),
    /// Rejected, with this reason code.
    Rejected(&'static str),
}

use Expected::{Accepted, Rejected};

mod common;
use common::assert_send_sync;

fn ok(normalised: &str) -> Expected {
    Accepted(normalised.to_owned())
}

/// One row of the table: an input and its outcome under the strict and the local policy.
struct Case {
    input: String,
    strict: Expected,
    local: Expected,
}

fn case(input: &str, strict: Expected, local: Expected) -> Case {
    Case {
        input: input.to_owned(),
        strict,
        local,
    }
}

/// Accepted as is by both policies.
fn good(input: &str) -> Case {
    case(input, ok(input), ok(input))
}

/// Accepted by both policies, normalised to `normalised`.
fn good_as(input: &str, normalised: &str) -> Case {
    case(input, ok(normalised), ok(normalised))
}

/// Rejected for the same reason by both policies.
fn bad(input: &str, code: &'static str) -> Case {
    case(input, Rejected(code), Rejected(code))
}

/// Refused by the strict policy for `code`, accepted for local development as `normalised`.
fn local_only(input: &str, code: &'static str, normalised: &str) -> Case {
    case(input, Rejected(code), ok(normalised))
}

fn outcome(policy: &EndpointPolicy, input: &str) -> Expected {
    match policy.validate(input) {
        Ok(endpoint) => Accepted(endpoint.into_string()),
        Err(refused) => Rejected(refused.reason().reason_code()),
    }
}

fn cases() -> Vec<Case> {
    const PUBLIC: &str = "non_public_address";
    let path_to = |total: usize| {
        let prefix = "https://example.com/";
        format!("{prefix}{}", "a".repeat(total - prefix.len()))
    };
    let longest = path_to(2048);

    vec![
        // Good endpoints, and how they are normalised.
        good("https://example.com/hooks/notify"),
        good_as("https://example.com", "https://example.com/"),
        good("https://plugin.example.com:8443/biot/notify?tenant=acme&v=2"),
        good_as(
            "https://bücher.example/hook",
            "https://xn--bcher-kva.example/hook",
        ),
        good_as(
            "https://Plugins.EXAMPLE.com/Hook",
            "https://plugins.example.com/Hook",
        ),
        good_as("HTTPS://EXAMPLE.COM/", "https://example.com/"),
        good_as("https://example.com:443/hook", "https://example.com/hook"),
        good("https://abcdefgh.lambda-url.eu-west-1.on.aws/"),
        good("https://example.com./hook"),
        good_as("https:example.com/hook", "https://example.com/hook"),
        good_as(
            "https://example.com/a/./b/../c?q=%20",
            "https://example.com/a/c?q=%20",
        ),
        good("https://8.8.8.8/hook"),
        good("https://172.32.0.1/"),
        good("https://[2606:4700::1111]/hook"),
        good_as("https://[::ffff:8.8.8.8]/", "https://[::ffff:808:808]/"),
        // A backslash ends the host in http(s) URLs: this is example.com, not 127.0.0.1.
        good_as(
            "https://example.com\\@127.0.0.1/",
            "https://example.com/@127.0.0.1/",
        ),
        // Plain http only for local development.
        local_only(
            "http://example.com/hook",
            "insecure_scheme",
            "http://example.com/hook",
        ),
        local_only(
            "http://example.com:80/",
            "insecure_scheme",
            "http://example.com/",
        ),
        // Loopback, however it is spelled.
        local_only(
            "https://127.0.0.1:8080/hook",
            PUBLIC,
            "https://127.0.0.1:8080/hook",
        ),
        local_only("https://2130706433/", PUBLIC, "https://127.0.0.1/"),
        local_only("https://0x7f.1/", PUBLIC, "https://127.0.0.1/"),
        local_only("https://127.1/", PUBLIC, "https://127.0.0.1/"),
        local_only("https://0177.0.0.1/", PUBLIC, "https://127.0.0.1/"),
        local_only("https://%31%32%37.0.0.1/", PUBLIC, "https://127.0.0.1/"),
        local_only(
            "https://[::ffff:127.0.0.1]/",
            PUBLIC,
            "https://[::ffff:7f00:1]/",
        ),
        local_only("https://[::127.0.0.1]/", PUBLIC, "https://[::7f00:1]/"),
        local_only("https://[::1]/", PUBLIC, "https://[::1]/"),
        local_only(
            "https://[64:ff9b::7f00:1]/",
            PUBLIC,
            "https://[64:ff9b::7f00:1]/",
        ),
        local_only(
            "https://[2002:7f00:1::]/",
            PUBLIC,
            "https://[2002:7f00:1::]/",
        ),
        // Unspecified, metadata, private and other non-public ranges.
        local_only("https://[::]/", PUBLIC, "https://[::]/"),
        local_only("https://0.0.0.0/", PUBLIC, "https://0.0.0.0/"),
        local_only(
            "https://169.254.169.254/latest/meta-data",
            PUBLIC,
            "https://169.254.169.254/latest/meta-data",
        ),
        local_only(
            "https://[fd00:ec2::254]/",
            PUBLIC,
            "https://[fd00:ec2::254]/",
        ),
        local_only("https://10.0.0.8/", PUBLIC, "https://10.0.0.8/"),
        local_only("https://172.16.5.4/", PUBLIC, "https://172.16.5.4/"),
        local_only("https://172.31.255.255/", PUBLIC, "https://172.31.255.255/"),
        local_only("https://192.168.1.10/", PUBLIC, "https://192.168.1.10/"),
        local_only("https://100.64.0.1/", PUBLIC, "https://100.64.0.1/"),
        local_only("https://[fe80::1]/", PUBLIC, "https://[fe80::1]/"),
        local_only("https://[fc00::1]/", PUBLIC, "https://[fc00::1]/"),
        local_only("https://192.0.2.1/", PUBLIC, "https://192.0.2.1/"),
        local_only("https://198.51.100.7/", PUBLIC, "https://198.51.100.7/"),
        local_only("https://203.0.113.9/", PUBLIC, "https://203.0.113.9/"),
        local_only("https://[2001:db8::1]/", PUBLIC, "https://[2001:db8::1]/"),
        local_only("https://224.0.0.1/", PUBLIC, "https://224.0.0.1/"),
        local_only("https://[ff02::1]/", PUBLIC, "https://[ff02::1]/"),
        local_only(
            "https://255.255.255.255/",
            PUBLIC,
            "https://255.255.255.255/",
        ),
        local_only("https://198.18.0.1/", PUBLIC, "https://198.18.0.1/"),
        local_only("https://240.0.0.1/", PUBLIC, "https://240.0.0.1/"),
        local_only("https://192.0.0.8/", PUBLIC, "https://192.0.0.8/"),
        // Names that do not belong on the internet.
        local_only("https://localhost/", "localhost_name", "https://localhost/"),
        local_only(
            "https://LOCALHOST./",
            "localhost_name",
            "https://localhost./",
        ),
        local_only(
            "https://api.localhost/",
            "localhost_name",
            "https://api.localhost/",
        ),
        local_only(
            "https://localhost:8443/hook",
            "localhost_name",
            "https://localhost:8443/hook",
        ),
        local_only(
            "https://intranet/",
            "not_fully_qualified",
            "https://intranet/",
        ),
        local_only(
            "https://intranet./",
            "not_fully_qualified",
            "https://intranet./",
        ),
        // Hosts the URL standard tolerates but no DNS name has.
        bad("https://ex{a}mple.com/", "invalid_host"),
        bad("https://a\"b.example/", "invalid_host"),
        bad("https://exa%7Bmple.com/", "invalid_host"),
        good("https://under_score.example.com/"),
        // Credentials, under any policy, including the classic host confusions.
        bad("https://user:pass@example.com/", "credentials"),
        bad("https://user@example.com/", "credentials"),
        bad("https://@example.com/", "credentials"),
        bad("https://good.example@127.0.0.1/", "credentials"),
        // Fragments, under any policy.
        bad("https://127.0.0.1#@good.example/", "fragment"),
        bad("https://example.com/#frag", "fragment"),
        bad("https://example.com/hook?x=1#", "fragment"),
        // Other schemes and things that are not absolute URLs.
        bad("ftp://example.com/", "unsupported_scheme"),
        bad("file:///etc/passwd", "unsupported_scheme"),
        bad("javascript:alert(1)", "unsupported_scheme"),
        bad("data:text/plain,hello", "unsupported_scheme"),
        bad("/hooks", "not_a_url"),
        bad("", "not_a_url"),
        bad("example.com/hook", "not_a_url"),
        bad("https://", "not_a_url"),
        bad("https://256.0.0.1/", "not_a_url"),
        bad("https://[::1/", "not_a_url"),
        bad("https://example.com:99999/", "not_a_url"),
        // Whitespace and control characters, which the URL parser would silently drop.
        bad(" https://example.com/", "invalid_character"),
        bad("https://example.com/\n", "invalid_character"),
        bad("https://exa\tmple.com/", "invalid_character"),
        bad("https://exa mple.com/", "invalid_character"),
        bad("https://example.com/a b", "invalid_character"),
        bad("https://example.com/\u{0}", "invalid_character"),
        bad("https://example.com/\u{7f}", "invalid_character"),
        bad("https://example.com/\u{3000}", "invalid_character"),
        // Length, checked on the raw input.
        case(&longest, ok(&longest), ok(&longest)),
        Case {
            input: path_to(2049),
            strict: Rejected("too_long"),
            local: Rejected("too_long"),
        },
    ]
}

#[test]
fn the_endpoint_table_holds_under_both_policies() {
    let strict = EndpointPolicy::default();
    let local = EndpointPolicy::local_development();
    let cases = cases();
    assert!(cases.len() >= 50, "the table has only {} rows", cases.len());

    let mut failures = Vec::new();
    for Case {
        input,
        strict: expected_strict,
        local: expected_local,
    } in &cases
    {
        for (name, policy, expected) in [
            ("strict", &strict, expected_strict),
            ("local", &local, expected_local),
        ] {
            let actual = outcome(policy, input);
            if &actual != expected {
                failures.push(format!(
                    "{name} {input:?}: expected {expected:?}, got {actual:?}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn validation_errors_are_invalid_endpoint_errors_with_the_reason() {
    let err = EndpointPolicy::new()
        .validate("https://169.254.169.254/latest/meta-data")
        .unwrap_err();
    assert_eq!(err.code(), "INVALID_ENDPOINT");
    assert!(err.is_client_error());
    assert_eq!(err.input(), "https://169.254.169.254/latest/meta-data");
    assert_eq!(
        err.reason(),
        &EndpointRejection::NonPublicAddress {
            address: "169.254.169.254".parse().expect("an address"),
            range: AddressRange::CloudMetadata,
        }
    );
    assert!(
        err.to_string().contains("the cloud metadata service"),
        "{err}"
    );
}

#[test]
fn rejections_explain_themselves_without_echoing_control_characters() {
    let reason = Endpoint::parse("https://example.com/\u{1b}[31m").unwrap_err();
    assert_eq!(reason.reason_code(), "invalid_character");
    let message = reason.to_string();
    assert!(!message.contains('\u{1b}'), "{message:?}");
    assert!(message.contains("control character"), "{message}");

    let too_long = Endpoint::parse(&"x".repeat(5000)).unwrap_err();
    assert_eq!(
        too_long,
        EndpointRejection::TooLong {
            length: 5000,
            max: biot_notifications::endpoint::MAX_ENDPOINT_LEN,
        }
    );
}

#[test]
fn allowed_hosts_skip_the_name_and_address_checks_but_not_the_scheme() {
    let policy = EndpointPolicy::new()
        .allow_host("Hooks.Internal.")
        .allow_host("localhost")
        .allow_host("10.1.2.3")
        .allow_host("::1");

    for input in [
        "https://hooks.internal/notify",
        "https://HOOKS.internal./notify",
        "https://localhost:8443/",
        "https://10.1.2.3/",
        "https://[::1]/",
    ] {
        assert!(policy.validate(input).is_ok(), "{input} should be allowed");
    }
    for (input, code) in [
        ("http://hooks.internal/notify", "insecure_scheme"),
        ("https://api.localhost/", "localhost_name"),
        ("https://other.hooks.internal.localhost/", "localhost_name"),
        ("https://internal/", "not_fully_qualified"),
        ("https://10.1.2.4/", "non_public_address"),
        ("https://user@hooks.internal/", "credentials"),
    ] {
        assert_eq!(outcome(&policy, input), Rejected(code), "{input}");
    }
}

#[test]
fn allowed_networks_exempt_literal_and_resolved_addresses() {
    let policy = EndpointPolicy::new()
        .allow_network("10.20.0.0/16".parse().expect("a CIDR"))
        .allow_network("fd12:3456::/32".parse().expect("a CIDR"));

    assert_eq!(
        outcome(&policy, "https://10.20.3.4/notify"),
        ok("https://10.20.3.4/notify")
    );
    assert_eq!(
        outcome(&policy, "https://[fd12:3456::9]/"),
        ok("https://[fd12:3456::9]/")
    );
    assert_eq!(
        outcome(&policy, "https://10.21.0.1/"),
        Rejected("non_public_address")
    );
    assert_eq!(
        outcome(&policy, "http://10.20.3.4/"),
        Rejected("insecure_scheme")
    );

    let address = |text: &str| text.parse::<IpAddr>().expect("an address");
    assert_eq!(policy.check_address(address("10.20.255.1")), Ok(()));
    assert_eq!(policy.check_address(address("::ffff:10.20.0.7")), Ok(()));
    assert_eq!(policy.check_address(address("fd12:3456:ffff::1")), Ok(()));
    assert_eq!(
        policy.check_address(address("10.30.0.1")),
        Err(EndpointRejection::NonPublicAddress {
            address: address("10.30.0.1"),
            range: AddressRange::Private,
        })
    );
}

#[test]
fn resolved_addresses_are_vetted_by_the_policy() {
    let strict = EndpointPolicy::new();
    let local = EndpointPolicy::local_development();
    let address = |text: &str| text.parse::<IpAddr>().expect("an address");

    // What a rebinding attacker's name might resolve to at delivery.
    for (text, range) in [
        ("127.0.0.1", AddressRange::Loopback),
        ("169.254.169.254", AddressRange::CloudMetadata),
        ("192.168.0.1", AddressRange::Private),
        ("::ffff:10.0.0.1", AddressRange::Private),
        ("fe80::1", AddressRange::LinkLocal),
    ] {
        let rejection = strict.check_address(address(text)).unwrap_err();
        assert_eq!(rejection.reason_code(), "non_public_address");
        assert_eq!(
            rejection,
            EndpointRejection::NonPublicAddress {
                address: address(text),
                range,
            }
        );
        assert_eq!(local.check_address(address(text)), Ok(()));
    }
    for text in [
        "8.8.8.8",
        "1.1.1.1",
        "2606:4700::1111",
        "2a00:1450:4001::200e",
    ] {
        assert_eq!(strict.check_address(address(text)), Ok(()), "{text}");
    }
}

#[test]
fn non_public_range_names_the_range_or_none_for_public_addresses() {
    let cases: &[(&str, Option<AddressRange>)] = &[
        ("8.8.8.8", None),
        ("1.1.1.1", None),
        ("172.32.0.1", None),
        ("100.128.0.1", None),
        ("2606:4700::1111", None),
        ("::ffff:8.8.8.8", None),
        ("64:ff9b::808:808", None),
        ("0.1.2.3", Some(AddressRange::Unspecified)),
        ("::", Some(AddressRange::Unspecified)),
        ("127.255.0.1", Some(AddressRange::Loopback)),
        ("::1", Some(AddressRange::Loopback)),
        ("10.255.255.255", Some(AddressRange::Private)),
        ("172.16.0.0", Some(AddressRange::Private)),
        ("192.168.255.1", Some(AddressRange::Private)),
        ("100.64.0.0", Some(AddressRange::SharedCgnat)),
        ("100.127.255.255", Some(AddressRange::SharedCgnat)),
        ("169.254.1.1", Some(AddressRange::LinkLocal)),
        ("fe80::abcd", Some(AddressRange::LinkLocal)),
        ("169.254.169.254", Some(AddressRange::CloudMetadata)),
        ("fd00:ec2::254", Some(AddressRange::CloudMetadata)),
        ("255.255.255.255", Some(AddressRange::Broadcast)),
        ("239.255.255.250", Some(AddressRange::Multicast)),
        ("ff05::1:3", Some(AddressRange::Multicast)),
        ("192.0.2.55", Some(AddressRange::Documentation)),
        ("2001:db8:1::1", Some(AddressRange::Documentation)),
        ("198.19.255.255", Some(AddressRange::Benchmarking)),
        ("240.1.2.3", Some(AddressRange::Reserved)),
        ("192.0.0.170", Some(AddressRange::Reserved)),
        ("100::1", Some(AddressRange::Reserved)),
        ("2001::1", Some(AddressRange::Reserved)),
        ("fc00::1", Some(AddressRange::UniqueLocal)),
        ("fdff:ffff::1", Some(AddressRange::UniqueLocal)),
        ("::ffff:192.168.1.1", Some(AddressRange::Private)),
        ("64:ff9b::a9fe:a9fe", Some(AddressRange::CloudMetadata)),
        ("2002:a00:1::1", Some(AddressRange::Private)),
    ];
    for &(text, expected) in cases {
        let address: IpAddr = text.parse().expect("a valid address in the table");
        assert_eq!(non_public_range(address), expected, "{text}");
    }
}

#[test]
fn address_ranges_read_as_phrases() {
    assert_eq!(AddressRange::Loopback.to_string(), "a loopback address");
    assert_eq!(
        AddressRange::CloudMetadata.to_string(),
        "the cloud metadata service"
    );
    let rejection = EndpointRejection::NonPublicAddress {
        address: "10.0.0.1".parse().expect("an address"),
        range: AddressRange::Private,
    };
    assert_eq!(
        rejection.to_string(),
        "10.0.0.1 is a private-use address; only public addresses are allowed"
    );
}

#[test]
fn normalisation_is_idempotent() {
    let strict = EndpointPolicy::new();
    let local = EndpointPolicy::local_development();
    for Case {
        input,
        local: expected,
        ..
    } in cases()
    {
        if let Accepted(_) = expected {
            let endpoint = local.validate(&input).expect("accepted by the table");
            let again = local
                .validate(endpoint.as_str())
                .expect("a normalised endpoint validates");
            assert_eq!(again, endpoint, "{input}");
            assert_eq!(again.as_str(), endpoint.as_str());
            // The strict verdict does not depend on the spelling either.
            assert_eq!(
                strict.validate(&input).is_ok(),
                strict.validate(endpoint.as_str()).is_ok(),
                "{input}"
            );
        }
    }
}

#[test]
fn two_spellings_are_one_endpoint() {
    let spellings = [
        "https://EXAMPLE.com:443/hook",
        "https://example.com/hook",
        "HTTPS://Example.Com/hook",
        "https:example.com/hook",
        "https://example.com/./hook",
    ];
    let endpoints: Vec<Endpoint> = spellings
        .iter()
        .map(|s| Endpoint::parse(s).expect("a valid endpoint"))
        .collect();
    for (spelling, endpoint) in spellings.iter().zip(&endpoints) {
        assert_eq!(endpoint, &endpoints[0], "{spelling}");
    }

    let mut set = std::collections::HashSet::new();
    set.extend(endpoints);
    assert_eq!(set.len(), 1);
    // Keyed by endpoint, looked up by the normalised string.
    assert!(set.contains("https://example.com/hook"));

    assert_ne!(
        Endpoint::parse("https://example.com/hook"),
        Endpoint::parse("https://example.com/Hook")
    );
}

#[test]
fn accessors_describe_the_normalised_url() {
    let endpoint: Endpoint = "https://Plugin.Example.com:8443/notify?x=1"
        .parse()
        .expect("a valid endpoint");
    assert_eq!(endpoint.scheme(), "https");
    assert_eq!(endpoint.host_str(), "plugin.example.com");
    assert_eq!(endpoint.url().port(), Some(8443));
    assert_eq!(endpoint.url().path(), "/notify");
    assert_eq!(endpoint.to_string(), endpoint.as_str());
    assert_eq!(
        endpoint.as_ref(),
        "https://plugin.example.com:8443/notify?x=1"
    );

    let v6 = Endpoint::try_from("http://[::FFFF:7f00:1]:80/").expect("a valid endpoint");
    assert_eq!(v6.scheme(), "http");
    assert_eq!(v6.host_str(), "[::ffff:7f00:1]");
    assert_eq!(String::from(v6), "http://[::ffff:7f00:1]/");
}

#[test]
fn endpoints_serialise_as_their_normalised_string() {
    let endpoint = Endpoint::parse("https://Example.com:443/hook").expect("a valid endpoint");
    let json = serde_json::to_string(&endpoint).expect("serialises");
    assert_eq!(json, r#""https://example.com/hook""#);
    let back: Endpoint = serde_json::from_str(&json).expect("deserialises");
    assert_eq!(back, endpoint);

    // Deserialising normalises, and applies no policy (stored data stays readable).
    let loopback: Endpoint =
        serde_json::from_str(r#""http://0x7f.1/""#).expect("structurally valid");
    assert_eq!(loopback.as_str(), "http://127.0.0.1/");
}

#[test]
fn deserialising_an_invalid_endpoint_fails_with_the_reason() {
    for (json, reason) in [
        (r#""https://user:pw@example.com/""#, "credentials"),
        (r#""ftp://example.com/""#, "scheme `ftp` is not supported"),
        (r#""/relative""#, "not an absolute URL"),
        (r#""https://example.com/#x""#, "fragment"),
    ] {
        let err = serde_json::from_str::<Endpoint>(json).unwrap_err();
        assert!(err.to_string().contains(reason), "{json}: {err}");
    }
    assert!(serde_json::from_str::<Endpoint>("42").is_err());
}

#[test]
fn policy_defaults_are_strict() {
    let default = EndpointPolicy::default();
    assert_eq!(default, EndpointPolicy::new());
    assert!(!default.allows_http());
    assert!(!default.allows_non_public());

    let local = EndpointPolicy::local_development();
    assert!(local.allows_http());
    assert!(local.allows_non_public());

    let loosened = EndpointPolicy::new().allow_http(true);
    assert!(loosened.allows_http());
    assert!(!loosened.allows_non_public());
    assert_eq!(
        outcome(&loosened, "http://example.com/"),
        ok("http://example.com/")
    );
    assert_eq!(
        outcome(&loosened, "http://127.0.0.1/"),
        Rejected("non_public_address")
    );
}

#[test]
fn public_types_are_send_and_sync() {
    assert_send_sync::<Endpoint>();
    assert_send_sync::<EndpointPolicy>();
    assert_send_sync::<EndpointRejection>();
    assert_send_sync::<AddressRange>();
}

#[test]
fn host_names_with_empty_labels_are_refused_by_every_policy() {
    for input in [
        "https://example..com/",
        "https://.example.com/",
        "https://localhost../",
        "https://intranet.../hook",
    ] {
        let rejection = Endpoint::parse(input).expect_err(input);
        assert_eq!(rejection.reason_code(), "invalid_host", "{input}");
    }
    // One trailing dot is the fully qualified form, and fine.
    assert_eq!(
        Endpoint::parse("https://example.com./hook")
            .unwrap()
            .as_str(),
        "https://example.com./hook"
    );
}
