//! The token verifier's input: any text is refused cleanly, never accepted (nothing here
//! holds the private key), and never panics. Half the inputs are taken as a token as
//! they are; the other half as three parts base64url-encoded here, so the fuzzer reaches
//! the header, algorithm, key choice and signature checks past the base64 layer.
#![no_main]

use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use biot_notifications::token::{PublicKey, TokenVerifier, ACTION_NOTIFICATION};
use libfuzzer_sys::fuzz_target;

/// Test-only keys: the verifier holds both, one of them with a key id.
fn verifier() -> &'static TokenVerifier {
    static VERIFIER: OnceLock<TokenVerifier> = OnceLock::new();
    VERIFIER.get_or_init(|| {
        let a = include_str!("../../tests/fixtures/keys/test-only-a.public.pem");
        let b = include_str!("../../tests/fixtures/keys/test-only-b.public.pem");
        TokenVerifier::new(PublicKey::from_pem_or_base64(a).unwrap())
            .with_key(PublicKey::from_pem_or_base64(b).unwrap().with_kid("b"))
    })
}

fuzz_target!(|input: (bool, Vec<u8>, Vec<u8>, Vec<u8>)| {
    let (raw, header, claims, signature) = input;
    let token = if raw {
        String::from_utf8_lossy(&header).into_owned()
    } else {
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(&header),
            URL_SAFE_NO_PAD.encode(&claims),
            URL_SAFE_NO_PAD.encode(&signature)
        )
    };
    let refusal = verifier()
        .verify(&token, ACTION_NOTIFICATION)
        .expect_err("no input can be signed without the private key");
    let _ = refusal.to_string();
});
