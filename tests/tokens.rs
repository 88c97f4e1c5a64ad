//! BioT tokens (feature `jwt`): the verifier refuses each kind of bad token with its
//! reason, the signing provider's tokens verify and are reused, both key forms load, and
//! the plugin kit checks what a plugin receives.
//!
//! Keys: `tests/fixtures/keys/`, generated for these tests only.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use biot_notifications::notification::Event;
use biot_notifications::token::{
    Claims, KeyError, NotificationRefusal, NotificationVerifier, PublicKey, SigningKey,
    SigningTokenProvider, TokenRefusal, TokenVerifier, ACTION_NOTIFICATION,
};
use biot_notifications::{Action, Endpoint, EntityType, EventType};
use serde_json::json;

const PRIVATE_A: &str = include_str!("fixtures/keys/test-only-a.private.pem");
const PUBLIC_A: &str = include_str!("fixtures/keys/test-only-a.public.pem");
const PUBLIC_A_BARE: &str = include_str!("fixtures/keys/test-only-a.public.base64");
const PRIVATE_B: &str = include_str!("fixtures/keys/test-only-b.private.pem");
const PUBLIC_B: &str = include_str!("fixtures/keys/test-only-b.public.pem");

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn signer_a() -> SigningKey {
    SigningKey::from_pem(PRIVATE_A).unwrap()
}

fn verifier_a() -> TokenVerifier {
    TokenVerifier::new(PublicKey::from_pem_or_base64(PUBLIC_A).unwrap())
}

fn notification_claims() -> Claims {
    Claims::new([ACTION_NOTIFICATION], now(), 300)
}

/// A compact JWS with the given header and claims and a signature of arbitrary bytes.
fn forge(header: serde_json::Value, claims: serde_json::Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

#[test]
fn a_token_from_the_signing_provider_verifies() {
    let provider = SigningTokenProvider::new(signer_a()).with_subject("dispatcher");
    let token = provider.current_token().unwrap();
    let claims = verifier_a().verify(&token, ACTION_NOTIFICATION).unwrap();
    assert!(claims.has_scope(ACTION_NOTIFICATION));
    assert_eq!(claims.sub.as_deref(), Some("dispatcher"));
    let exp = claims.exp.expect("a notification token expires");
    assert!(exp > now() && exp <= now() + 300, "a short exp: {exp}");
}

#[test]
fn the_signing_provider_reuses_its_token_until_it_is_due() {
    let provider = SigningTokenProvider::new(signer_a());
    let first = provider.current_token().unwrap();
    for _ in 0..100 {
        assert_eq!(
            provider.current_token().unwrap(),
            first,
            "signed once, reused"
        );
    }
    // A one-second token is due at once the next second.
    let short = SigningTokenProvider::new(signer_a()).with_lifetime(Duration::from_secs(1));
    let first = short.current_token().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while short.current_token().unwrap() == first {
        assert!(std::time::Instant::now() < deadline, "never refreshed");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn the_signing_provider_is_the_dispatchers_token_provider() {
    use biot_notifications::TokenProvider;
    let provider = SigningTokenProvider::new(signer_a());
    let event = Event::new(
        EventType::new(EntityType::Patient, Action::Create).unwrap(),
        json!({"_id": "p-1"}),
    );
    let token = provider.token(&event).await.unwrap();
    verifier_a().verify(&token, ACTION_NOTIFICATION).unwrap();
}

#[test]
fn a_token_signed_by_another_key_is_refused_as_a_bad_signature() {
    let token = SigningKey::from_pem(PRIVATE_B)
        .unwrap()
        .sign(&notification_claims())
        .unwrap();
    assert_eq!(
        verifier_a().verify(&token, ACTION_NOTIFICATION),
        Err(TokenRefusal::BadSignature)
    );
}

#[test]
fn an_expired_token_is_refused_beyond_the_leeway_only() {
    let mut claims = notification_claims();
    claims.exp = Some(now() - 120);
    let token = signer_a().sign(&claims).unwrap();
    assert_eq!(
        verifier_a().verify(&token, ACTION_NOTIFICATION),
        Err(TokenRefusal::Expired)
    );

    claims.exp = Some(now() - 10);
    let token = signer_a().sign(&claims).unwrap();
    assert!(
        verifier_a().verify(&token, ACTION_NOTIFICATION).is_ok(),
        "within 30 s"
    );
    assert_eq!(
        verifier_a()
            .with_leeway(Duration::ZERO)
            .verify(&token, ACTION_NOTIFICATION),
        Err(TokenRefusal::Expired)
    );
}

#[test]
fn a_token_not_valid_yet_is_refused() {
    let mut claims = notification_claims();
    claims.nbf = Some(now() + 600);
    let token = signer_a().sign(&claims).unwrap();
    assert_eq!(
        verifier_a().verify(&token, ACTION_NOTIFICATION),
        Err(TokenRefusal::NotYetValid)
    );
}

#[test]
fn a_token_without_the_permission_is_refused() {
    let token = signer_a()
        .sign(&Claims::new(
            ["DISPATCHER_SUBSCRIPTIONS_SEARCH"],
            now(),
            300,
        ))
        .unwrap();
    assert_eq!(
        verifier_a().verify(&token, ACTION_NOTIFICATION),
        Err(TokenRefusal::MissingPermission {
            required: ACTION_NOTIFICATION.to_owned()
        })
    );
    let no_scopes = signer_a().sign(&json!({"exp": now() + 300})).unwrap();
    assert!(matches!(
        verifier_a().verify(&no_scopes, ACTION_NOTIFICATION),
        Err(TokenRefusal::MissingPermission { .. })
    ));
}

#[test]
fn a_tampered_payload_is_refused_as_a_bad_signature() {
    let token = signer_a()
        .sign(&Claims::new(["SOMETHING_ELSE"], now(), 300))
        .unwrap();
    let [header, _, signature]: [&str; 3] =
        token.split('.').collect::<Vec<_>>().try_into().unwrap();
    let escalated = URL_SAFE_NO_PAD
        .encode(json!({"scopes": [ACTION_NOTIFICATION], "exp": now() + 300}).to_string());
    let tampered = format!("{header}.{escalated}.{signature}");
    assert_eq!(
        verifier_a().verify(&tampered, ACTION_NOTIFICATION),
        Err(TokenRefusal::BadSignature)
    );
}

#[test]
fn alg_none_is_refused_whatever_the_signature() {
    let claims = json!({"scopes": [ACTION_NOTIFICATION], "exp": now() + 300});
    for header in [json!({"alg": "none"}), json!({"alg": "None", "typ": "JWT"})] {
        for token in [
            forge(header.clone(), claims.clone(), b""),
            forge(header, claims.clone(), b"x"),
        ] {
            assert!(matches!(
                verifier_a().verify(&token, ACTION_NOTIFICATION),
                Err(TokenRefusal::UnsupportedAlgorithm { .. })
            ));
        }
    }
}

#[test]
fn hs512_signed_with_the_public_key_as_secret_is_refused() {
    // The classic key confusion: the public key, which everyone has, as an HMAC secret.
    let claims = json!({"scopes": [ACTION_NOTIFICATION], "exp": now() + 300});
    let header = json!({"alg": "HS512", "typ": "JWT"});
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    for secret in [PUBLIC_A.as_bytes(), PUBLIC_A_BARE.as_bytes()] {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA512, secret);
        let tag = ring::hmac::sign(&key, signing_input.as_bytes());
        let token = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()));
        assert_eq!(
            verifier_a().verify(&token, ACTION_NOTIFICATION),
            Err(TokenRefusal::UnsupportedAlgorithm {
                algorithm: "HS512".to_owned()
            })
        );
    }
    let rs256 = forge(json!({"alg": "RS256"}), claims, b"sig");
    assert!(matches!(
        verifier_a().verify(&rs256, ACTION_NOTIFICATION),
        Err(TokenRefusal::UnsupportedAlgorithm { .. })
    ));
}

#[test]
fn truncated_or_non_base64_tokens_are_malformed() {
    let token = signer_a().sign(&notification_claims()).unwrap();
    let last_dot = token.rfind('.').unwrap();
    let cases = [
        String::new(),
        "abc".to_owned(),
        token[..last_dot].to_owned(),
        token[..token.len() / 2].to_owned(),
        format!("{token}.extra"),
        token.replacen('.', ".!!!", 1),
        format!("{}!*%.{}", &token[..last_dot], &token[last_dot + 1..]),
        "a.b.c".to_owned(),
        "x".repeat(40_000),
    ];
    for case in &cases {
        let refusal = verifier_a().verify(case, ACTION_NOTIFICATION).unwrap_err();
        assert!(
            matches!(
                refusal,
                TokenRefusal::Malformed | TokenRefusal::BadSignature
            ),
            "{refusal:?}"
        );
    }
    // The header alone decides for a token cut before its signature's end.
    assert_eq!(
        verifier_a().verify(&token[..last_dot], ACTION_NOTIFICATION),
        Err(TokenRefusal::Malformed)
    );
    assert_eq!(
        verifier_a().verify("not base64!.x.y", ACTION_NOTIFICATION),
        Err(TokenRefusal::Malformed)
    );
}

#[test]
fn a_claim_of_the_wrong_type_is_malformed_not_absent() {
    // CVE-2026-25537: an `exp` or `nbf` given as a string must not skip the check.
    for claims in [
        json!({"scopes": [ACTION_NOTIFICATION], "exp": "never"}),
        json!({"scopes": [ACTION_NOTIFICATION], "nbf": "99999999999"}),
        json!({"scopes": ACTION_NOTIFICATION}),
    ] {
        let token = signer_a().sign(&claims).unwrap();
        assert_eq!(
            verifier_a().verify(&token, ACTION_NOTIFICATION),
            Err(TokenRefusal::Malformed),
            "{claims}"
        );
    }
}

#[test]
fn both_key_forms_load_and_verify() {
    let token = signer_a().sign(&notification_claims()).unwrap();
    let bare = PublicKey::from_pem_or_base64(PUBLIC_A_BARE).unwrap();
    TokenVerifier::new(bare)
        .verify(&token, ACTION_NOTIFICATION)
        .unwrap();
    // Wrapped over several lines, as it may come out of a secret store.
    let wrapped: String = PUBLIC_A_BARE
        .as_bytes()
        .chunks(64)
        .map(|line| format!("{}\n", std::str::from_utf8(line).unwrap()))
        .collect();
    let wrapped = PublicKey::from_pem_or_base64(&wrapped).unwrap();
    TokenVerifier::new(wrapped)
        .verify(&token, ACTION_NOTIFICATION)
        .unwrap();

    for garbage in ["", "not a key!", "AAAA", PRIVATE_A] {
        assert!(
            PublicKey::from_pem_or_base64(garbage).is_err(),
            "{}",
            garbage.len()
        );
    }
    assert!(matches!(
        SigningKey::from_pem(PUBLIC_A),
        Err(KeyError::NotRsa { .. })
    ));
    assert!(matches!(
        SigningKey::from_pem("AAAA"),
        Err(KeyError::NotPemOrBase64 { .. })
    ));
    // A key error never shows the key.
    let error = PublicKey::from_pem_or_base64("MIIBIjANsecret").unwrap_err();
    assert!(!error.to_string().contains("secret"), "{error}");
}

#[test]
fn keys_are_chosen_by_kid_and_rotation_tries_each() {
    let a = PublicKey::from_pem_or_base64(PUBLIC_A).unwrap();
    let b = PublicKey::from_pem_or_base64(PUBLIC_B).unwrap();

    // Rotation without ids: every key is tried.
    let rotating = TokenVerifier::new(b.clone()).with_key(a.clone());
    let token = signer_a().sign(&notification_claims()).unwrap();
    rotating.verify(&token, ACTION_NOTIFICATION).unwrap();

    // With ids: the named key.
    let by_kid = TokenVerifier::new(b.with_kid("2025")).with_key(a.with_kid("2026"));
    let token = signer_a()
        .with_kid("2026")
        .sign(&notification_claims())
        .unwrap();
    by_kid.verify(&token, ACTION_NOTIFICATION).unwrap();
    let mislabelled = signer_a()
        .with_kid("2025")
        .sign(&notification_claims())
        .unwrap();
    assert_eq!(
        by_kid.verify(&mislabelled, ACTION_NOTIFICATION),
        Err(TokenRefusal::BadSignature)
    );
    let unknown = signer_a()
        .with_kid("1999")
        .sign(&notification_claims())
        .unwrap();
    assert_eq!(
        by_kid.verify(&unknown, ACTION_NOTIFICATION),
        Err(TokenRefusal::UnknownKey)
    );
}

#[test]
fn refusals_never_contain_the_token() {
    let token = SigningKey::from_pem(PRIVATE_B)
        .unwrap()
        .sign(&notification_claims())
        .unwrap();
    let refusal = verifier_a()
        .verify(&token, ACTION_NOTIFICATION)
        .unwrap_err();
    for part in token.split('.') {
        assert!(!format!("{refusal} {refusal:?}").contains(part));
    }
}

fn received(jwt: Option<String>) -> http::Request<bytes::Bytes> {
    Event::new(
        EventType::new(EntityType::Patient, Action::Update).unwrap(),
        json!({"_id": "p-1", "_template": {"name": "adultPatient"}}),
    )
    .prepare(jwt)
    .to_request(&Endpoint::parse("https://plugin.example.com/hook").unwrap())
}

#[test]
fn the_plugin_kit_turns_a_signed_request_into_a_verified_notification() {
    let plugin = NotificationVerifier::new(TokenVerifier::new(
        PublicKey::from_pem_or_base64(PUBLIC_A_BARE).unwrap(),
    ));
    let token = SigningTokenProvider::new(signer_a())
        .current_token()
        .unwrap();
    let verified = plugin
        .verify_request(&received(Some(token.to_string())))
        .unwrap();
    assert_eq!(verified.notification.template_name(), Some("adultPatient"));
    assert!(verified.claims.has_scope(ACTION_NOTIFICATION));

    assert!(matches!(
        plugin.verify_request(&received(None)),
        Err(NotificationRefusal::MissingToken)
    ));
    let other = SigningTokenProvider::new(SigningKey::from_pem(PRIVATE_B).unwrap());
    let refusal = plugin
        .verify_request(&received(Some(other.current_token().unwrap().to_string())))
        .unwrap_err();
    assert!(matches!(
        refusal,
        NotificationRefusal::Token(TokenRefusal::BadSignature)
    ));
    assert_eq!(refusal.code(), "JWT_ERROR");
    assert_eq!(refusal.status(), http::StatusCode::UNAUTHORIZED);

    let mut not_a_notification = received(Some(token.to_string()));
    not_a_notification.headers_mut().remove("hooktype");
    assert!(matches!(
        plugin.verify_request(&not_a_notification),
        Err(NotificationRefusal::NotANotification)
    ));
    let (parts, _) = received(Some(token.to_string())).into_parts();
    assert!(matches!(
        plugin.verify(&parts.headers, b"{\"jwt\": 3}"),
        Err(NotificationRefusal::MalformedBody { .. })
    ));
}
